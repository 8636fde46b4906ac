"""Internal storage in a local folder: `<root>/<tenant>/<key>`."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from flows.storage.base import StorageError, check_tenant, clean_key, folder_of, key_of, uri_of


class LocalStorage:
    """Files under one root folder, one sub-folder per tenant."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, tenant: str, key: str) -> Path:
        return self.root / check_tenant(tenant) / clean_key(key)

    def _existing(self, tenant: str, uri: str) -> Path:
        path = self._path(tenant, key_of(uri))
        if not path.is_file():
            raise StorageError(f"no file at `{uri}`")
        return path

    def _write(self, target: Path, copy: Callable[[BinaryIO], object]) -> None:
        # Written beside the target then renamed: a reader never sees half a file.
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".upload-")
        try:
            with os.fdopen(handle, "wb") as out:
                copy(out)
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def put(self, tenant: str, key: str, source_path: Path) -> str:
        target = self._path(tenant, key)

        def copy(out: BinaryIO) -> None:
            with open(source_path, "rb") as source:
                shutil.copyfileobj(source, out, 1024 * 1024)

        self._write(target, copy)
        return uri_of(clean_key(key))

    def put_bytes(self, tenant: str, key: str, data: bytes) -> str:
        self._write(self._path(tenant, key), lambda out: out.write(data))
        return uri_of(clean_key(key))

    def open(self, tenant: str, uri: str) -> BinaryIO:
        return open(self._existing(tenant, uri), "rb")

    def read_bytes(self, tenant: str, uri: str) -> bytes:
        return self._existing(tenant, uri).read_bytes()

    def path(self, tenant: str, uri: str) -> Path:
        """Local path of a `kestra://` URI; raises StorageError when it does not exist."""
        return self._existing(tenant, uri)

    def exists(self, tenant: str, uri: str) -> bool:
        return self._path(tenant, key_of(uri)).is_file()

    def delete(self, tenant: str, uri: str) -> bool:
        path = self._path(tenant, key_of(uri))
        if not path.is_file():
            return False
        path.unlink(missing_ok=True)
        return True

    def list(self, tenant: str, prefix: str) -> list[str]:
        base = self.root / check_tenant(tenant)
        folder = folder_of(prefix)
        start = base / folder if folder else base
        if not start.is_dir():
            return []
        return sorted(
            uri_of(path.relative_to(base).as_posix())
            for path in start.rglob("*")
            if path.is_file() and not path.name.startswith(".upload-")
        )

    def size(self, tenant: str, uri: str) -> int:
        return self._existing(tenant, uri).stat().st_size

    def namespace_root(self, tenant: str, namespace: str) -> Path:
        return self._path(tenant, "/".join(namespace.split(".")) + "/_files")
