"""Namespace files: the folder flows read with `read()` and `namespaceFiles`, and its history.

The current version of each file stays where flows have always found it (`namespace_root`); every
upload also keeps a copy of its bytes under the namespace's `_files_revisions` folder, recorded as a
`NamespaceFileRevision`, so any earlier version can be read back. Paths are relative to the
namespace's files (`/a/b.py` and `a/b.py` are the same file) and can never leave that folder.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from django.db import IntegrityError, transaction
from django.db.models import Max, Min, QuerySet, Value
from django.db.models.functions import Concat, Substr

from flows.errors import BatonError
from flows.models import NamespaceFileRevision, new_id
from flows.storage import namespace_root

logger = logging.getLogger(__name__)

REVISIONS_FOLDER = "_files_revisions"  # beside `_files`: no namespace or flow id starts with `_`
MAX_PATH_LENGTH = 512  # NamespaceFileRevision.path
MAX_NAME_LENGTH = 255  # one file or folder name, as most file systems allow
MAX_ARCHIVE_ENTRIES = 10_000
_TEMPORARY_PREFIX = ".upload-"


class InvalidPath(BatonError):
    code = "invalid_namespace_file_path"
    http_status = 422

    def __init__(self, message: str, path: str = "path") -> None:
        super().__init__(message)
        self.path = path


class FileNotFound(BatonError):
    code = "namespace_file_not_found"
    http_status = 404


class FileConflict(BatonError):
    code = "namespace_file_conflict"
    http_status = 409


class InvalidArchive(BatonError):
    code = "invalid_namespace_files_archive"
    http_status = 422


class ArchiveTooLarge(BatonError):
    code = "namespace_files_archive_too_large"
    http_status = 413


@dataclass(frozen=True)
class FileAttributes:
    name: str
    is_directory: bool
    size: int
    created: datetime
    modified: datetime


def clean_path(raw: str | None, parameter: str = "path", allow_root: bool = False) -> str:
    """The relative form of a namespace file path (`/a//b.py` -> `a/b.py`; `""` for the root).

    Raises InvalidPath for NUL characters, backslashes, `..` segments and over-long names.
    """
    text = raw or ""
    if "\x00" in text:
        raise InvalidPath(f"`{parameter}` must not contain NUL characters", parameter)
    if "\\" in text:
        raise InvalidPath(f"`{parameter}` must use `/` as separator, not `\\`", parameter)
    parts = [part for part in text.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise InvalidPath(
            f"`{parameter}` must stay inside the namespace's files: `..` is not allowed (got `{text}`)",
            parameter,
        )
    if any(len(part) > MAX_NAME_LENGTH for part in parts):
        raise InvalidPath(
            f"`{parameter}`: a file or folder name exceeds {MAX_NAME_LENGTH} characters", parameter
        )
    relative = "/".join(parts)
    if len(relative) > MAX_PATH_LENGTH:
        raise InvalidPath(f"`{parameter}` is longer than {MAX_PATH_LENGTH} characters", parameter)
    if not relative and not allow_root:
        raise InvalidPath(f"`{parameter}` must name a file or folder, e.g. `/scripts/main.py`", parameter)
    return relative


def _shown(relative: str) -> str:
    return "/" + relative


def _root(tenant: str, namespace: str) -> Path:
    return namespace_root(tenant, namespace)


def _revisions_folder(tenant: str, namespace: str) -> Path:
    return _root(tenant, namespace).parent / REVISIONS_FOLDER


def _local(tenant: str, namespace: str, relative: str) -> Path:
    root = _root(tenant, namespace)
    target = root / relative if relative else root
    # A symbolic link placed in the folder by hand must not lead out of it (nor one of its folders,
    # for a file still to be written: `resolve` follows the part of the path that exists).
    if not target.resolve().is_relative_to(root.resolve()):
        raise InvalidPath(f"`{_shown(relative)}` leads outside the namespace's files")
    return target


def _attributes(path: Path, created: datetime | None = None) -> FileAttributes:
    stat = path.stat()
    modified = datetime.fromtimestamp(stat.st_mtime, tz=UTC)
    return FileAttributes(
        name=path.name if path.name != "_files" else "",
        is_directory=path.is_dir(),
        size=0 if path.is_dir() else stat.st_size,
        created=created or modified,
        modified=modified,
    )


def _first_uploads(tenant: str, namespace: str, paths: list[str]) -> dict[str, datetime]:
    rows = (
        NamespaceFileRevision.objects.filter(tenant_id=tenant, namespace=namespace, path__in=paths)
        .values("path")
        .annotate(first=Min("created"))
    )
    return {row["path"]: row["first"] for row in rows}


def _existing(tenant: str, namespace: str, raw_path: str | None) -> tuple[str, Path]:
    """A file or folder that must exist. The root folder always does: it is created when missing,
    as Kestra does on the first look at a namespace's files."""
    relative = clean_path(raw_path, allow_root=True)
    target = _local(tenant, namespace, relative)
    if not relative:
        target.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        raise FileNotFound(f"no file or folder `{_shown(relative)}` in namespace `{namespace}`")
    return relative, target


def stats(tenant: str, namespace: str, raw_path: str | None) -> FileAttributes:
    """Size, type and dates of a file or folder."""
    relative, target = _existing(tenant, namespace, raw_path)
    return _attributes(target, _first_uploads(tenant, namespace, [relative]).get(relative))


def list_directory(tenant: str, namespace: str, raw_path: str | None) -> list[FileAttributes]:
    """The entries of a folder, folders first then by name."""
    relative, folder = _existing(tenant, namespace, raw_path)
    if not folder.is_dir():
        raise InvalidPath(f"`{_shown(relative)}` is a file, not a folder")
    children = sorted(
        (child for child in folder.iterdir() if not child.name.startswith(_TEMPORARY_PREFIX)),
        key=lambda child: (not child.is_dir(), child.name),
    )
    paths = [f"{relative}/{child.name}" if relative else child.name for child in children]
    created = _first_uploads(tenant, namespace, paths)
    return [_attributes(child, created.get(path)) for child, path in zip(children, paths, strict=True)]


def revisions(tenant: str, namespace: str, raw_path: str | None) -> list[int]:
    """Revision numbers of a file, oldest first. A file put in the folder by hand has one: 1."""
    relative = clean_path(raw_path)
    target = _local(tenant, namespace, relative)
    if not target.is_file():
        raise FileNotFound(f"no file `{_shown(relative)}` in namespace `{namespace}`")
    numbers = list(
        NamespaceFileRevision.objects.filter(tenant_id=tenant, namespace=namespace, path=relative)
        .order_by("revision")
        .values_list("revision", flat=True)
    )
    return numbers or [1]


def file_to_read(tenant: str, namespace: str, raw_path: str | None, revision: int | None = None) -> Path:
    """Local path of a file's content: the current one, or that of an earlier `revision`."""
    relative = clean_path(raw_path)
    target = _local(tenant, namespace, relative)
    if target.is_dir():
        raise InvalidPath(f"`{_shown(relative)}` is a folder: list it with /files/directory")
    if not target.is_file():
        raise FileNotFound(f"no file `{_shown(relative)}` in namespace `{namespace}`")
    if revision is None:
        return target
    row = NamespaceFileRevision.objects.filter(
        tenant_id=tenant, namespace=namespace, path=relative, revision=revision
    ).first()
    if row is not None:
        return _revisions_folder(tenant, namespace) / row.blob
    if (
        revision == 1
        and not NamespaceFileRevision.objects.filter(
            tenant_id=tenant, namespace=namespace, path=relative
        ).exists()
    ):
        return target
    raise FileNotFound(f"file `{_shown(relative)}` of namespace `{namespace}` has no revision {revision}")


def _write(target: Path, chunks: Iterable[bytes]) -> int:
    # Written beside the target, then renamed: a flow reading the file never sees half of it.
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=_TEMPORARY_PREFIX)
    size = 0
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                size += len(chunk)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return size


def _check_parents_are_folders(root: Path, relative: str) -> None:
    parent = root
    for part in relative.split("/")[:-1]:
        parent = parent / part
        if parent.is_file():
            raise FileConflict(f"`{_shown(relative)}`: `{part}` is a file, not a folder")


def put_file(tenant: str, namespace: str, raw_path: str | None, chunks: Iterable[bytes]) -> int:
    """Store a new version of a file (creating its folders); returns its revision number."""
    relative = clean_path(raw_path)
    root = _root(tenant, namespace)
    target = _local(tenant, namespace, relative)
    if target.is_dir():
        raise FileConflict(f"`{_shown(relative)}` is a folder")
    _check_parents_are_folders(root, relative)
    blob = new_id()
    blob_path = _revisions_folder(tenant, namespace) / blob
    size = _write(blob_path, chunks)
    try:
        with transaction.atomic():
            latest = NamespaceFileRevision.objects.filter(
                tenant_id=tenant, namespace=namespace, path=relative
            ).aggregate(latest=Max("revision"))["latest"]
            revision = (latest or 0) + 1
            NamespaceFileRevision.objects.create(
                tenant_id=tenant, namespace=namespace, path=relative, revision=revision, size=size, blob=blob
            )
            with open(blob_path, "rb") as source:
                _write(target, iter(lambda: source.read(1024 * 1024), b""))
    except IntegrityError:
        blob_path.unlink(missing_ok=True)
        raise FileConflict(
            f"`{_shown(relative)}` was uploaded at the same time by another request: retry"
        ) from None
    except BaseException:
        blob_path.unlink(missing_ok=True)
        raise
    logger.info("namespace file stored path=%s revision=%s", relative, revision, extra={"tenant": tenant})
    return revision


def import_zip(tenant: str, namespace: str, archive_file: IO[bytes], max_bytes: int) -> list[str]:
    """Store every file of a zip at its path in the archive, as Kestra does with an uploaded `.zip`.

    Every entry is checked before anything is written; returns the paths stored. Raises
    InvalidArchive, InvalidPath (an entry outside the folder), ArchiveTooLarge (more than
    `max_bytes` once unpacked: the sizes the archive declares bound what is read).
    """
    try:
        archive = zipfile.ZipFile(archive_file)
    except zipfile.BadZipFile as error:
        raise InvalidArchive(f"`fileContent` is not a valid zip archive: {error}") from error
    with archive:
        entries = [info for info in archive.infolist() if not info.is_dir()]
        if len(entries) > MAX_ARCHIVE_ENTRIES:
            raise InvalidArchive(f"the archive has {len(entries)} files, more than {MAX_ARCHIVE_ENTRIES}")
        unpacked = sum(info.file_size for info in entries)
        if unpacked > max_bytes:
            raise ArchiveTooLarge(
                f"the archive unpacks to {unpacked} bytes, more than the {max_bytes} allowed"
            )
        paths = [clean_path(info.filename, "fileContent") for info in entries]
        for info, relative in zip(entries, paths, strict=True):
            with archive.open(info) as source:
                put_file(
                    tenant, namespace, relative, iter(lambda source=source: source.read(1024 * 1024), b"")
                )
    return paths


def create_directory(tenant: str, namespace: str, raw_path: str | None) -> None:
    relative = clean_path(raw_path, allow_root=True)
    target = _local(tenant, namespace, relative)
    if target.is_file():
        raise FileConflict(f"`{_shown(relative)}` is a file")
    _check_parents_are_folders(_root(tenant, namespace), relative + "/x")
    target.mkdir(parents=True, exist_ok=True)


def _revision_rows(
    tenant: str, namespace: str, relative: str, is_directory: bool
) -> QuerySet[NamespaceFileRevision]:
    rows = NamespaceFileRevision.objects.filter(tenant_id=tenant, namespace=namespace)
    return rows.filter(path__startswith=f"{relative}/") if is_directory else rows.filter(path=relative)


def _forget(tenant: str, namespace: str, relative: str, is_directory: bool) -> None:
    """Delete the revision rows (and their stored bytes) of a file, or of everything in a folder."""
    rows = _revision_rows(tenant, namespace, relative, is_directory)
    blobs = list(rows.values_list("blob", flat=True))
    rows.delete()
    folder = _revisions_folder(tenant, namespace)
    transaction.on_commit(lambda: [(folder / blob).unlink(missing_ok=True) for blob in blobs])


def move(tenant: str, namespace: str, raw_from: str | None, raw_to: str | None) -> None:
    """Rename a file or folder (its revisions follow it). The target must not exist."""
    source_relative = clean_path(raw_from, "from")
    target_relative = clean_path(raw_to, "to")
    source = _local(tenant, namespace, source_relative)
    target = _local(tenant, namespace, target_relative)
    if not source.exists():
        raise FileNotFound(f"no file or folder `{_shown(source_relative)}` in namespace `{namespace}`")
    if target.exists():
        raise FileConflict(f"`{_shown(target_relative)}` already exists")
    if target_relative.startswith(f"{source_relative}/"):
        raise InvalidPath(f"cannot move `{_shown(source_relative)}` into itself", "to")
    _check_parents_are_folders(_root(tenant, namespace), target_relative)
    is_directory = source.is_dir()
    with transaction.atomic():
        _forget(tenant, namespace, target_relative, is_directory)  # rows left by files put by hand
        rows = _revision_rows(tenant, namespace, source_relative, is_directory)
        if is_directory:
            rows.update(path=Concat(Value(target_relative), Substr("path", len(source_relative) + 1)))
        else:
            rows.update(path=target_relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(source, target)


def delete(tenant: str, namespace: str, raw_path: str | None) -> None:
    """Delete a file, or a folder and everything in it, with their revisions."""
    relative = clean_path(raw_path)
    target = _local(tenant, namespace, relative)
    if not target.exists():
        raise FileNotFound(f"no file or folder `{_shown(relative)}` in namespace `{namespace}`")
    is_directory = target.is_dir()
    with transaction.atomic():
        _forget(tenant, namespace, relative, is_directory)
        if is_directory:
            shutil.rmtree(target)
        else:
            target.unlink()


def export_zip(tenant: str, namespace: str) -> IO[bytes]:
    """A zip of every file of the namespace (paths relative to its root), open at its start."""
    root = _root(tenant, namespace)
    archive_file = tempfile.TemporaryFile()
    with zipfile.ZipFile(archive_file, "w", zipfile.ZIP_DEFLATED) as archive:
        if root.is_dir():
            for path in sorted(root.rglob("*")):
                if path.is_file() and not path.name.startswith(_TEMPORARY_PREFIX) and not path.is_symlink():
                    archive.write(path, path.relative_to(root).as_posix())
    archive_file.seek(0)
    return archive_file
