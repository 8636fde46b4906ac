"""Internal storage in an S3-compatible bucket: object `<prefix><tenant>/<key>`."""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, cast

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from flows.storage.base import (
    StorageError,
    StorageUnavailable,
    check_tenant,
    clean_key,
    folder_of,
    key_of,
    uri_of,
)

_MIB = 1024 * 1024
# Above 8 MiB boto3's managed transfer sends (and fetches) the file in parallel 8 MiB parts, so
# a large file neither sits in memory nor depends on one long request.
_TRANSFER = TransferConfig(multipart_threshold=8 * _MIB, multipart_chunksize=8 * _MIB, max_concurrency=4)
_MISSING = {"404", "NoSuchKey", "NotFound"}


class S3Storage:
    """Objects in one bucket, below an optional key prefix, one `<tenant>/` folder per tenant.

    `path()` downloads into `cache_dir` and reuses the copy while the object's ETag is unchanged.
    """

    def __init__(
        self,
        *,
        bucket: str,
        cache_dir: Path,
        region: str = "",
        endpoint_url: str = "",
        access_key: str = "",
        secret_key: str = "",
        prefix: str = "",
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        # One cache folder per bucket and prefix: two configurations never share a cached file.
        identity = f"{endpoint_url}|{bucket}|{self.prefix}".encode()
        self.cache_dir = cache_dir / hashlib.sha256(identity).hexdigest()[:16]
        options: dict[str, Any] = {
            "connect_timeout": 10,
            "read_timeout": 60,
            "retries": {"max_attempts": 5, "mode": "standard"},
        }
        if endpoint_url:
            # MinIO, Ceph and most self-hosted endpoints only answer path-style requests.
            options["s3"] = {"addressing_style": "path"}
        # A session per storage: boto3's default session is not safe to share between threads.
        self._client = boto3.session.Session().client(
            "s3",
            region_name=region or None,
            endpoint_url=endpoint_url or None,
            aws_access_key_id=access_key or None,
            aws_secret_access_key=secret_key or None,
            config=Config(**options),
        )

    def __repr__(self) -> str:
        return f"S3Storage(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def _object_key(self, tenant: str, key: str) -> str:
        return f"{self.prefix}{check_tenant(tenant)}/{clean_key(key)}"

    @contextmanager
    def _errors(self, uri: str) -> Iterator[None]:
        try:
            yield
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                raise StorageError(f"no file at `{uri}`") from exc
            raise StorageUnavailable(f"S3 bucket `{self.bucket}` refused `{uri}`: {exc}") from exc
        except (BotoCoreError, Boto3Error) as exc:
            raise StorageUnavailable(f"S3 bucket `{self.bucket}` unreachable for `{uri}`: {exc}") from exc

    def _head(self, tenant: str, uri: str) -> dict[str, Any]:
        with self._errors(uri):
            return self._client.head_object(Bucket=self.bucket, Key=self._object_key(tenant, key_of(uri)))

    def put(self, tenant: str, key: str, source_path: Path) -> str:
        uri = uri_of(clean_key(key))
        with self._errors(uri):
            self._client.upload_file(
                str(source_path), self.bucket, self._object_key(tenant, key), Config=_TRANSFER
            )
        return uri

    def put_bytes(self, tenant: str, key: str, data: bytes) -> str:
        uri = uri_of(clean_key(key))
        with self._errors(uri):
            self._client.upload_fileobj(
                io.BytesIO(data), self.bucket, self._object_key(tenant, key), Config=_TRANSFER
            )
        return uri

    def open(self, tenant: str, uri: str) -> BinaryIO:
        with self._errors(uri):
            answer = self._client.get_object(Bucket=self.bucket, Key=self._object_key(tenant, key_of(uri)))
        # botocore's StreamingBody is an IOBase reading the HTTP response as it is consumed.
        return cast(BinaryIO, answer["Body"])

    def read_bytes(self, tenant: str, uri: str) -> bytes:
        with self.open(tenant, uri) as body:
            return body.read()

    def path(self, tenant: str, uri: str) -> Path:
        key = key_of(uri)
        etag = self._head(tenant, uri)["ETag"]
        target = self.cache_dir / "files" / check_tenant(tenant) / key
        marker = self.cache_dir / "etags" / tenant / key
        if target.is_file() and marker.is_file() and marker.read_text() == etag:
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".download-")
        os.close(handle)
        try:
            with self._errors(uri):
                self._client.download_file(
                    self.bucket, self._object_key(tenant, key), temporary, Config=_TRANSFER
                )
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(etag)
        return target

    def exists(self, tenant: str, uri: str) -> bool:
        try:
            self._head(tenant, uri)
        except StorageError:
            return False
        return True

    def delete(self, tenant: str, uri: str) -> bool:
        if not self.exists(tenant, uri):
            return False
        key = key_of(uri)
        with self._errors(uri):
            self._client.delete_object(Bucket=self.bucket, Key=self._object_key(tenant, key))
        (self.cache_dir / "files" / tenant / key).unlink(missing_ok=True)
        (self.cache_dir / "etags" / tenant / key).unlink(missing_ok=True)
        return True

    def list(self, tenant: str, prefix: str) -> list[str]:
        base = f"{self.prefix}{check_tenant(tenant)}/"
        folder = folder_of(prefix)
        uris: list[str] = []
        with self._errors(uri_of(folder)):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{base}{folder}/" if folder else base
            )
            for page in pages:
                uris.extend(uri_of(item["Key"][len(base) :]) for item in page.get("Contents", []))
        return sorted(uris)

    def size(self, tenant: str, uri: str) -> int:
        return int(self._head(tenant, uri)["ContentLength"])
