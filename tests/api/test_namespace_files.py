"""/api/v1/{tenant}/namespaces: namespaces, and namespace files with their revisions, where flows
read them."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.fixtures.api import Api, MakeApi

FILES = "namespaces/company.team/files"


@pytest.fixture(autouse=True)
def storage_dir(settings: Any, tmp_path: Path) -> Path:
    """Each test gets its own storage folder (files outlive the rolled-back database)."""
    settings.BATON_STORAGE_DIR = tmp_path / "storage"
    return settings.BATON_STORAGE_DIR


def _upload(api: Api, path: str, content: bytes, namespace: str = "company.team") -> Any:
    return api.client.post(
        api.url(f"namespaces/{namespace}/files") + f"?path={path}",
        {"fileContent": SimpleUploadedFile("upload.bin", content)},
        format="multipart",
    )


def _get(api: Api, endpoint: str, **params: Any) -> Any:
    """GET with query parameters (`Api.get` takes its own `path`, the endpoint's)."""
    return api.client.get(api.url(endpoint), params)


def _read(api: Api, path: str, **params: Any) -> Any:
    return _get(api, FILES, path=path, **params)


def _content(response: Any) -> bytes:
    return b"".join(response.streaming_content)


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder`, by relative path."""
    if not folder.is_dir():
        return {}
    return {
        path.relative_to(folder).as_posix(): path.read_bytes() for path in folder.rglob("*") if path.is_file()
    }


def _files(tenant: str = "main", namespace: str = "company.team") -> dict[str, bytes]:
    from flows.storage import namespace_root

    return _tree(namespace_root(tenant, namespace))


def _revisions(tenant: str = "main") -> list[tuple[str, int]]:
    from flows.models import NamespaceFileRevision

    return list(
        NamespaceFileRevision.objects.filter(tenant_id=tenant)
        .order_by("path", "revision")
        .values_list("path", "revision")
    )


# -- namespaces


def test_search_lists_namespaces_of_flows_with_their_parents(api: Api, api_other: Api) -> None:
    # given
    for namespace in ("company.team", "company.data", "finance"):
        api.post_yaml(
            "flows",
            f"id: f\nnamespace: {namespace}\ntasks:\n  - {{id: a, type: io.kestra.plugin.core.log.Log, message: x}}\n",
        )
    api_other.post_yaml(
        "flows",
        "id: f\nnamespace: hidden.ns\ntasks:\n  - {id: a, type: io.kestra.plugin.core.log.Log, message: x}\n",
    )
    # when
    everything = api.get("namespaces/search", size=100)
    searched = api.get("namespaces/search", q="COMPANY", size=2, page=1)
    descending = api.get("namespaces/search", sort="id:desc", size=1)
    # then
    assert everything.json() == {
        "results": [
            {"id": name, "deleted": False} for name in ["company", "company.data", "company.team", "finance"]
        ],
        "total": 4,
    }
    assert searched.json() == {
        "results": [{"id": "company", "deleted": False}, {"id": "company.data", "deleted": False}],
        "total": 3,
    }
    assert descending.json()["results"] == [{"id": "finance", "deleted": False}]
    assert api.get("namespaces/company.team").json() == {"id": "company.team", "deleted": False}


def test_restricted_user_finds_only_its_namespaces(api: Api, make_api: MakeApi) -> None:
    # given
    for namespace in ("company.team", "finance"):
        api.post_yaml(
            "flows",
            f"id: f\nnamespace: {namespace}\ntasks:\n  - {{id: a, type: io.kestra.plugin.core.log.Log, message: x}}\n",
        )
    restricted = make_api("RESTRICTED", namespaces=["company.team"])
    # when
    found = restricted.get("namespaces/search")
    # then
    assert [row["id"] for row in found.json()["results"]] == ["company.team"]
    assert restricted.get("namespaces/finance").status_code == 404


# -- namespace files


def test_upload_then_read_from_the_api_and_from_flows(api: Api, api_other: Api) -> None:
    from flows.services.runtime import ExpressionServicesImpl, Masker

    # given
    _upload(api, "/scripts/hello.py", b"print('main')")
    _upload(api_other, "/scripts/hello.py", b"print('other')")
    # when
    response = _read(api, "/scripts/hello.py")
    services = ExpressionServicesImpl(
        tenant="main", namespace="company.team", execution_id="x", masker=Masker()
    )
    # then
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert _content(response) == b"print('main')"
    assert _content(_read(api_other, "/scripts/hello.py")) == b"print('other')"
    assert services.read("scripts/hello.py") == "print('main')"
    assert _files() == {"scripts/hello.py": b"print('main')"}  # where flows' namespaceFiles look
    assert _read(api, "/scripts/absent.py").status_code == 404


def test_every_upload_is_a_revision_that_can_be_read_back(api: Api, api_other: Api) -> None:
    # given
    _upload(api, "/main.py", b"version 1")
    _upload(api, "/main.py", b"version 2")
    _upload(api_other, "/main.py", b"other tenant")
    # when
    revisions = _get(api, f"{FILES}/revisions", path="/main.py")
    first = _read(api, "/main.py", revision=1)
    current = _read(api, "/main.py")
    absent = _read(api, "/main.py", revision=3)
    # then
    assert revisions.json() == [{"revision": 1}, {"revision": 2}]
    assert _content(first) == b"version 1"
    assert _content(current) == b"version 2"
    assert absent.status_code == 404
    assert _get(api_other, f"{FILES}/revisions", path="/main.py").json() == [{"revision": 1}]
    assert _revisions() == [("main.py", 1), ("main.py", 2)]


def test_directory_lists_folders_then_files_with_kestra_attributes(api: Api, api_other: Api) -> None:
    # given
    _upload(api, "/b.txt", b"12345")
    _upload(api, "/lib/util.py", b"x = 1")
    _upload(api_other, "/theirs.txt", b"hidden")
    # when
    root = api.get(f"{FILES}/directory")
    lib = _get(api, f"{FILES}/directory", path="/lib")
    stats = _get(api, f"{FILES}/stats", path="/b.txt")
    # then
    assert [(entry["fileName"], entry["type"], entry["size"]) for entry in root.json()] == [
        ("lib", "Directory", 0),
        ("b.txt", "File", 5),
    ]
    assert [entry["fileName"] for entry in lib.json()] == ["util.py"]
    body = stats.json()
    assert (body["fileName"], body["type"], body["size"]) == ("b.txt", "File", 5)
    assert isinstance(body["lastModifiedTime"], int) and isinstance(body["creationTime"], int)
    assert [entry["fileName"] for entry in api_other.get(f"{FILES}/directory").json()] == ["theirs.txt"]
    assert _get(api, f"{FILES}/directory", path="/nowhere").status_code == 404
    assert _get(api, f"{FILES}/stats", path="/nowhere").status_code == 404


def test_move_renames_files_and_folders_with_their_revisions(api: Api) -> None:
    # given
    _upload(api, "/old.py", b"1")
    _upload(api, "/old.py", b"2")
    _upload(api, "/pkg/a.py", b"a")
    # when
    moved_file = api.put(f"{FILES}?from=/old.py&to=/new/name.py")
    moved_folder = api.put(f"{FILES}?from=/pkg&to=/renamed")
    # then
    assert (moved_file.status_code, moved_folder.status_code) == (204, 204)
    assert _files() == {"new/name.py": b"2", "renamed/a.py": b"a"}
    assert _revisions() == [("new/name.py", 1), ("new/name.py", 2), ("renamed/a.py", 1)]
    assert _content(_read(api, "/new/name.py", revision=1)) == b"1"


def test_move_onto_an_existing_file_is_a_conflict_and_changes_nothing(api: Api) -> None:
    # given
    _upload(api, "/a.py", b"a")
    _upload(api, "/b.py", b"b")
    # when
    response = api.put(f"{FILES}?from=/a.py&to=/b.py")
    missing = api.put(f"{FILES}?from=/nope.py&to=/c.py")
    # then
    assert response.status_code == 409
    assert "`/b.py` already exists" in response.json()["message"]
    assert missing.status_code == 404
    assert _files() == {"a.py": b"a", "b.py": b"b"}


def test_delete_removes_a_file_or_a_folder_and_their_revisions(api: Api, api_other: Api) -> None:
    # given
    _upload(api, "/keep.py", b"k")
    _upload(api, "/gone.py", b"g")
    _upload(api, "/folder/x.py", b"x")
    _upload(api_other, "/gone.py", b"theirs")
    # when
    file_deleted = api.delete(f"{FILES}?path=/gone.py")
    folder_deleted = api.delete(f"{FILES}?path=/folder")
    again = api.delete(f"{FILES}?path=/gone.py")
    # then
    assert (file_deleted.status_code, folder_deleted.status_code, again.status_code) == (204, 204, 404)
    assert _files() == {"keep.py": b"k"}
    assert _revisions() == [("keep.py", 1)]
    assert _files("other") == {"gone.py": b"theirs"}


def test_export_zips_the_namespace_files(api: Api, api_other: Api) -> None:
    # given
    _upload(api, "/a.txt", b"a")
    _upload(api, "/sub/b.txt", b"b")
    _upload(api_other, "/theirs.txt", b"t")
    # when
    response = api.get(f"{FILES}/export")
    # then
    assert response.status_code == 200
    assert 'filename="company.team_files.zip"' in response["Content-Disposition"]
    archive = zipfile.ZipFile(io.BytesIO(_content(response)))
    assert {name: archive.read(name) for name in archive.namelist()} == {"a.txt": b"a", "sub/b.txt": b"b"}


@pytest.mark.parametrize(
    "path",
    ["../escape.txt", "/a/../../escape.txt", "/../../../../etc/passwd", "a/%00b", "..%5Cescape.txt"],
)
def test_path_traversal_is_refused_and_writes_nothing(api: Api, storage_dir: Path, path: str) -> None:
    # given
    _upload(api, "/inside.txt", b"inside")
    before = _tree(storage_dir.parent)
    # when
    uploaded = _upload(api, path, b"evil")
    read = api.client.get(api.url(FILES) + f"?path={path}")
    moved = api.put(f"{FILES}?from=/inside.txt&to={path}")
    deleted = api.client.delete(api.url(FILES) + f"?path={path}")
    # then
    for response in (uploaded, read, moved, deleted):
        assert response.status_code == 422, response.content
        message = response.json()["message"]
        assert "`..` is not allowed" in message or "NUL" in message or "`\\`" in message
    assert _tree(storage_dir.parent) == before
    assert _revisions() == [("inside.txt", 1)]


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def _upload_zip(api: Api, content: bytes) -> Any:
    return api.client.post(
        api.url(FILES) + "?path=/",
        {"fileContent": SimpleUploadedFile("export.zip", content)},
        format="multipart",
    )


def test_an_uploaded_zip_is_unpacked_at_the_root_as_kestra_does(api: Api) -> None:
    # given: an export of another namespace
    _upload(api, "/a.txt", b"a", namespace="source")
    _upload(api, "/sub/b.txt", b"b", namespace="source")
    exported = _content(_get(api, "namespaces/source/files/export"))
    # when
    response = _upload_zip(api, exported)
    # then
    assert response.status_code == 204
    assert _files() == {"a.txt": b"a", "sub/b.txt": b"b"}


@pytest.mark.parametrize(
    ("entries", "status", "message"),
    [
        ({"ok.txt": b"ok", "../evil.txt": b"evil"}, 422, "`..` is not allowed"),
        ({"big.txt": b"x" * 2000}, 413, "unpacks to 2000 bytes, more than the 1000 allowed"),
    ],
)
def test_a_bad_zip_is_refused_before_anything_is_written(
    api: Api, settings: Any, storage_dir: Path, entries: dict[str, bytes], status: int, message: str
) -> None:
    # given
    settings.BATON_API_MAX_UPLOAD_BYTES = 1000
    # when
    response = _upload_zip(api, _zip(entries))
    # then
    assert response.status_code == status
    assert message in response.json()["message"]
    assert _tree(storage_dir.parent) == {}
    assert _revisions() == []


def test_a_symbolic_link_out_of_the_folder_is_not_followed(api: Api, tmp_path: Path) -> None:
    from flows.storage import namespace_root

    # given: a link to a folder outside the namespace, put there by hand
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "private.txt").write_text("private")
    root = namespace_root("main", "company.team")
    root.mkdir(parents=True)
    (root / "link").symlink_to(outside, target_is_directory=True)
    # when
    uploaded = _upload(api, "/link/evil.txt", b"evil")
    read = _read(api, "/link/private.txt")
    # then
    assert (uploaded.status_code, read.status_code) == (422, 422)
    assert "leads outside the namespace's files" in read.json()["message"]
    assert _tree(outside) == {"private.txt": b"private"}


def test_oversize_upload_gets_413_and_stores_nothing(api: Api, settings: Any) -> None:
    # given
    settings.BATON_API_MAX_UPLOAD_BYTES = 10
    # when
    response = _upload(api, "/big.bin", b"x" * 11)
    # then
    assert response.status_code == 413
    assert "more than the 10 allowed" in response.json()["message"]
    assert _files() == {}
    assert _revisions() == []


def test_upload_without_file_content_is_refused(api: Api) -> None:
    response = api.client.post(api.url(FILES) + "?path=/a.txt", {"other": "x"}, format="multipart")
    assert response.status_code == 422
    assert "`fileContent`" in response.json()["message"]
    assert _files() == {}


def test_a_file_cannot_be_uploaded_below_another_file(api: Api) -> None:
    # given
    _upload(api, "/a.txt", b"a")
    # when
    response = _upload(api, "/a.txt/b.txt", b"b")
    # then
    assert response.status_code == 409
    assert _files() == {"a.txt": b"a"}


def test_viewer_reads_but_cannot_write(api: Api, make_api: MakeApi) -> None:
    # given
    _upload(api, "/a.txt", b"a")
    viewer = make_api("VIEWER")
    # when
    read = _read(viewer, "/a.txt")
    uploaded = _upload(viewer, "/b.txt", b"b")
    deleted = viewer.delete(f"{FILES}?path=/a.txt")
    moved = viewer.put(f"{FILES}?from=/a.txt&to=/c.txt")
    # then
    assert _content(read) == b"a"
    assert (uploaded.status_code, deleted.status_code, moved.status_code) == (403, 403, 403)
    assert _files() == {"a.txt": b"a"}


def test_restricted_user_touches_only_its_namespaces(api: Api, make_api: MakeApi) -> None:
    # given
    _upload(api, "/budget.csv", b"1", namespace="finance")
    restricted = make_api("RESTRICTED", namespaces=["company"])
    # when
    own = _upload(restricted, "/mine.txt", b"m")
    elsewhere = _upload(restricted, "/budget.csv", b"0", namespace="finance")
    read_elsewhere = _get(restricted, "namespaces/finance/files", path="/budget.csv")
    listed_elsewhere = restricted.get("namespaces/finance/files/directory")
    # then
    assert own.status_code == 204
    assert (elsewhere.status_code, read_elsewhere.status_code, listed_elsewhere.status_code) == (
        404,
        404,
        404,
    )
    assert _files(namespace="finance") == {"budget.csv": b"1"}
    assert _files() == {"mine.txt": b"m"}
