"""Internal storage behind `kestra://` URIs: which backend serves a tenant or namespace.

The instance default comes from BATON_STORAGE (a local folder, or an S3-compatible bucket);
BATON_STORAGE_OVERRIDES moves a tenant, or a namespace and its children, to another one. An
object lives in the storage chosen for the namespace its key starts with, so a URI is read back
from the same place whichever execution reads it (`storage_for_uri`).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from django.conf import settings

from flows.storage.base import (
    SCHEME,
    Storage,
    StorageError,
    StorageUnavailable,
    key_of,
    namespace_of_key,
)
from flows.storage.config import LocalConfig, StorageConfig, StorageSelection, selection_from_settings
from flows.storage.local import LocalStorage

__all__ = [
    "SCHEME",
    "LocalStorage",
    "Storage",
    "StorageError",
    "StorageUnavailable",
    "check_configuration",
    "execution_prefix",
    "get_storage",
    "namespace_file",
    "namespace_root",
    "storage_for",
    "storage_for_uri",
]

_lock = threading.Lock()
_selection: tuple[tuple[Any, ...], StorageSelection] | None = None
_instances: dict[StorageConfig, Storage] = {}


def execution_prefix(namespace: str, flow_id: str, execution_id: str) -> str:
    return f"{'/'.join(namespace.split('.'))}/{flow_id}/executions/{execution_id}"


def _current_selection() -> StorageSelection:
    global _selection
    # Compared on every call so that a changed setting (override_settings in tests) takes effect.
    raw = (
        settings.BATON_STORAGE,
        settings.BATON_STORAGE_DIR,
        settings.BATON_STORAGE_S3_BUCKET,
        settings.BATON_STORAGE_S3_REGION,
        settings.BATON_STORAGE_S3_ENDPOINT_URL,
        settings.BATON_STORAGE_S3_ACCESS_KEY,
        settings.BATON_STORAGE_S3_SECRET_KEY,
        settings.BATON_STORAGE_S3_PREFIX,
        settings.BATON_STORAGE_OVERRIDES,
    )
    cached = _selection
    if cached is None or cached[0] != raw:
        cached = (raw, selection_from_settings(settings))
        _selection = cached
    return cached[1]


def _instance(config: StorageConfig) -> Storage:
    with _lock:
        storage = _instances.get(config)
        if storage is None:
            if isinstance(config, LocalConfig):
                storage = LocalStorage(config.directory)
            else:
                from flows.storage.s3 import S3Storage  # boto3 is only imported when S3 is configured

                storage = S3Storage(
                    bucket=config.bucket,
                    region=config.region,
                    endpoint_url=config.endpoint_url,
                    access_key=config.access_key,
                    secret_key=config.secret_key,
                    prefix=config.prefix,
                    cache_dir=settings.BATON_STORAGE_CACHE_DIR,
                )
            _instances[config] = storage
        return storage


def check_configuration() -> None:
    """Parse the storage settings now; raises ImproperlyConfigured naming the bad variable."""
    _current_selection()


def storage_for(tenant: str, namespace: str | None = None) -> Storage:
    """The storage of a tenant's namespace: the longest matching override, else the default."""
    return _instance(_current_selection().config_for(tenant, namespace))


def get_storage(tenant: str | None = None, namespace: str | None = None) -> Storage:
    """The instance default storage, or with a tenant, `storage_for(tenant, namespace)`."""
    selection = _current_selection()
    return _instance(selection.default if tenant is None else selection.config_for(tenant, namespace))


def storage_for_uri(tenant: str, uri: str) -> Storage:
    """The storage holding a `kestra://` URI, chosen by the namespace its key starts with."""
    return storage_for(tenant, namespace_of_key(key_of(uri)))


def namespace_root(tenant: str, namespace: str) -> Path:
    """Folder of a namespace's files.

    Namespace files stay in the instance's local folder (BATON_STORAGE_DIR) whatever storage
    serves the namespace, until the namespace files API moves them behind `Storage`.
    """
    return LocalStorage(settings.BATON_STORAGE_DIR).namespace_root(tenant, namespace)


def namespace_file(tenant: str, uri: str) -> Path | None:
    """Local path of a namespace file URI (`kestra:///a/b/_files/x`), None for any other URI."""
    key = key_of(uri)
    namespace = namespace_of_key(key)
    folder = f"{'/'.join((namespace or '').split('.'))}/_files/"
    if namespace is None or not key.startswith(folder):
        return None
    path = namespace_root(tenant, namespace) / key[len(folder) :]
    return path if path.is_file() else None
