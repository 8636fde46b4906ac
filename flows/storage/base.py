"""What every internal storage backend offers, and the `kestra://` key rules they share."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Protocol

from flows.errors import BatonError

SCHEME = "kestra://"
# Tenant ids are slugs (Tenant.id is a SlugField): no `/`, no `.`, so a tenant folder or key
# prefix can never name another tenant's or climb out of the storage root.
_TENANT = re.compile(r"^[A-Za-z0-9_-]+$")


class StorageError(BatonError):
    """No such file, or a key or URI that storage refuses (traversal, another scheme)."""

    code = "storage"
    http_status = 404


class StorageUnavailable(BatonError):
    """The storage backend did not answer or refused the request (network, credentials, 5xx)."""

    code = "storage_unavailable"
    http_status = 503
    retryable = True


class Storage(Protocol):
    """Internal storage of one configuration. Keys are relative (`ns/flow/executions/<id>/...`),
    URIs are `kestra:///<key>`; every call is scoped by tenant and never sees another tenant's files.
    """

    def put(self, tenant: str, key: str, source_path: Path) -> str:
        """Copy a local file to `key`; returns its `kestra:///key` URI."""
        ...

    def put_bytes(self, tenant: str, key: str, data: bytes) -> str: ...

    def open(self, tenant: str, uri: str) -> BinaryIO:
        """A binary stream of the file, read as it goes; close it (or use `with`)."""
        ...

    def read_bytes(self, tenant: str, uri: str) -> bytes: ...

    def path(self, tenant: str, uri: str) -> Path:
        """A local path holding the file, for code that needs one; raises StorageError when missing."""
        ...

    def exists(self, tenant: str, uri: str) -> bool: ...

    def delete(self, tenant: str, uri: str) -> bool:
        """Remove the file; returns whether there was one."""
        ...

    def list(self, tenant: str, prefix: str) -> list[str]:
        """URIs of the files below the folder `prefix` (a key or a URI), sorted."""
        ...

    def size(self, tenant: str, uri: str) -> int: ...


def check_tenant(tenant: str) -> str:
    if not _TENANT.match(tenant):
        raise StorageError(f"invalid tenant id `{tenant}` for storage")
    return tenant


def clean_key(key: str) -> str:
    """The normalized form of a relative key; raises StorageError on `..` or an empty key."""
    relative = PurePosixPath(key.lstrip("/"))
    if ".." in relative.parts:
        raise StorageError(f"invalid storage path `{key}`")
    cleaned = str(relative)
    if cleaned in ("", "."):
        raise StorageError(f"invalid storage path `{key}`")
    return cleaned


def key_of(uri: str) -> str:
    if not uri.startswith(SCHEME):
        raise StorageError(f"not an internal storage URI: `{uri}`")
    return clean_key(uri[len(SCHEME) :])


def uri_of(key: str) -> str:
    return f"{SCHEME}/{key}"


def folder_of(prefix: str) -> str:
    """The key folder a `list` prefix names: "" for the tenant's whole storage."""
    raw = prefix[len(SCHEME) :] if prefix.startswith(SCHEME) else prefix
    if raw.strip("/") == "":
        return ""
    return clean_key(raw)


def namespace_of_key(key: str) -> str | None:
    """The namespace a key belongs to, from Kestra's layout; None for a key outside it.

    `a/b/flow/executions/<id>/...` belongs to `a.b` and `a/b/_files/...` (namespace files) to
    `a.b`. Namespaces and flow ids cannot start with `_`, so the first `executions` (after at
    least a namespace and a flow) or `_files` segment decides.
    """
    parts = key.split("/")
    for index, part in enumerate(parts):
        if part == "_files" and index >= 1:
            return ".".join(parts[:index])
        if part == "executions" and index >= 2:
            return ".".join(parts[: index - 1])
    return None
