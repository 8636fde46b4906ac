"""The same behaviour from every storage backend (local folder, S3 via moto's server)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from flows.storage import LocalStorage, Storage, StorageError
from tests.storage.conftest import S3Endpoint

KEY = "company/team/hello/executions/exec1/tasks/write/run1/data.txt"
URI = f"kestra:///{KEY}"
MIB = 1024 * 1024


def test_put_copies_a_local_file_and_reads_back(storage: Storage, tmp_path: Path) -> None:
    # given
    source = tmp_path / "source.txt"
    source.write_bytes(b"hello storage")
    # when
    uri = storage.put("main", KEY, source)
    # then
    assert uri == URI
    assert storage.read_bytes("main", uri) == b"hello storage"
    with storage.open("main", uri) as stream:
        assert stream.read() == b"hello storage"
    assert storage.path("main", uri).read_bytes() == b"hello storage"
    assert storage.exists("main", uri) is True
    assert storage.size("main", uri) == 13


def test_put_bytes_normalizes_the_key(storage: Storage) -> None:
    # when
    uri = storage.put_bytes("main", f"/{KEY.replace('/tasks/', '/./tasks//')}", b"abc")
    # then
    assert uri == URI
    assert storage.read_bytes("main", URI) == b"abc"


def test_overwrite_replaces_content_and_the_local_copy(storage: Storage) -> None:
    # given
    storage.put_bytes("main", KEY, b"first")
    first_path = storage.path("main", URI)
    assert first_path.read_bytes() == b"first"
    # when
    storage.put_bytes("main", KEY, b"second version")
    # then
    assert storage.read_bytes("main", URI) == b"second version"
    assert storage.path("main", URI).read_bytes() == b"second version"
    assert storage.size("main", URI) == 14


def test_list_returns_the_files_below_a_folder(storage: Storage) -> None:
    # given
    base = "company/team/hello/executions"
    for key in ["exec1/a.txt", "exec1/sub/b.txt", "exec10/c.txt", "exec2/d.txt"]:
        storage.put_bytes("main", f"{base}/{key}", b"x")
    # when / then
    assert storage.list("main", f"{base}/exec1") == [
        f"kestra:///{base}/exec1/a.txt",
        f"kestra:///{base}/exec1/sub/b.txt",
    ]
    assert storage.list("main", f"kestra:///{base}/exec1/") == storage.list("main", f"{base}/exec1")
    assert len(storage.list("main", "")) == 4
    assert storage.list("main", f"{base}/missing") == []


def test_delete_removes_the_file_once(storage: Storage) -> None:
    # given
    storage.put_bytes("main", KEY, b"bye")
    storage.path("main", URI)
    # when
    first, second = storage.delete("main", URI), storage.delete("main", URI)
    # then
    assert (first, second) == (True, False)
    assert storage.exists("main", URI) is False
    assert storage.list("main", "company") == []
    with pytest.raises(StorageError, match="no file at"):
        storage.path("main", URI)


@pytest.mark.parametrize("operation", ["open", "read_bytes", "path", "size"])
def test_a_missing_file_raises_storage_error(storage: Storage, operation: str) -> None:
    with pytest.raises(StorageError, match="no file at `kestra:///company/missing.txt`"):
        getattr(storage, operation)("main", "kestra:///company/missing.txt")


def test_tenants_do_not_see_each_other(storage: Storage) -> None:
    # given
    storage.put_bytes("main", KEY, b"main's")
    storage.put_bytes("other", "company/other.txt", b"other's")
    # when / then
    assert storage.exists("other", URI) is False
    assert storage.list("other", "") == ["kestra:///company/other.txt"]
    assert storage.list("main", "") == [URI]
    with pytest.raises(StorageError):
        storage.read_bytes("other", URI)
    assert storage.delete("other", URI) is False
    assert storage.read_bytes("main", URI) == b"main's"


@pytest.mark.parametrize(
    "key",
    ["../other/company/secret.txt", "company/../../other/secret.txt", "..", "", "/"],
)
def test_traversal_and_empty_keys_are_rejected(storage: Storage, key: str) -> None:
    # given
    storage.put_bytes("other", "company/secret.txt", b"other's")
    # when / then
    with pytest.raises(StorageError, match="invalid storage path"):
        storage.put_bytes("main", key, b"x")
    with pytest.raises(StorageError, match="invalid storage path"):
        storage.read_bytes("main", f"kestra:///{key}")
    with pytest.raises(StorageError, match="invalid storage path"):
        storage.list("main", f"{key}/x/..")
    assert storage.list("main", "") == []


@pytest.mark.parametrize("tenant", ["..", "main/../other", "", "a.b"])
def test_invalid_tenant_ids_are_rejected(storage: Storage, tenant: str) -> None:
    with pytest.raises(StorageError, match="invalid tenant id"):
        storage.put_bytes(tenant, "company/x.txt", b"x")


def test_other_schemes_are_rejected(storage: Storage) -> None:
    with pytest.raises(StorageError, match="not an internal storage URI"):
        storage.read_bytes("main", "file:///etc/passwd")


def test_a_20_mb_file_goes_in_and_streams_out(storage: Storage, tmp_path: Path) -> None:
    # given: 20 MiB of varied bytes, more than one multipart chunk (8 MiB)
    source = tmp_path / "big.bin"
    expected = hashlib.sha256()
    with open(source, "wb") as out:
        for _ in range(20):
            block = os.urandom(MIB)
            expected.update(block)
            out.write(block)
    # when
    uri = storage.put("main", "company/big/executions/e/big.bin", source)
    # then: read back in 1 MiB chunks, never whole
    streamed = hashlib.sha256()
    with storage.open("main", uri) as stream:
        while chunk := stream.read(MIB):
            assert len(chunk) <= MIB
            streamed.update(chunk)
    assert streamed.hexdigest() == expected.hexdigest()
    assert storage.size("main", uri) == 20 * MIB
    assert hashlib.sha256(storage.path("main", uri).read_bytes()).hexdigest() == expected.hexdigest()


def test_s3_uploads_large_files_in_parts_below_prefix_and_tenant(
    s3_endpoint: S3Endpoint, tmp_path: Path
) -> None:
    from tests.storage.conftest import make_s3_storage

    # given
    storage = make_s3_storage(s3_endpoint, tmp_path / "cache", prefix="/team-bucket/")
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(20 * MIB))
    # when
    storage.put("main", "company/big.bin", source)
    storage.put_bytes("main", "company/small.txt", b"small")
    # then
    head = s3_endpoint.client().head_object(Bucket=s3_endpoint.bucket, Key="team-bucket/main/company/big.bin")
    assert head["ETag"].strip('"').endswith("-3")  # three 8 MiB parts: a multipart upload
    small = s3_endpoint.client().get_object(
        Bucket=s3_endpoint.bucket, Key="team-bucket/main/company/small.txt"
    )
    assert small["Body"].read() == b"small"


def test_local_storage_keeps_one_folder_per_tenant(tmp_path: Path) -> None:
    # given
    storage = LocalStorage(tmp_path)
    # when
    storage.put_bytes("main", "company/a.txt", b"a")
    # then
    assert (tmp_path / "main" / "company" / "a.txt").read_bytes() == b"a"
    assert storage.namespace_root("main", "company.team") == tmp_path / "main" / "company" / "team" / "_files"
