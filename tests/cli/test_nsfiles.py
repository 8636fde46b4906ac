"""`baton nsfiles` against a live server. Skipped while the server has no namespace-file routes
(they answer Django's plain 404 for an unknown URL, not an API error)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import Baton, Server, write


@pytest.fixture
def files_server(server: Server, settings: Any, tmp_path: Path) -> Server:
    """The live server, provided it has the namespace-file endpoints, storing into a folder of this
    test's own (files outlive the rolled-back database)."""
    settings.BATON_STORAGE_DIR = tmp_path / "storage"
    request = urllib.request.Request(
        f"{server.url}/api/v1/main/namespaces/company.team/files/directory?path=/",
        headers={"Authorization": f"Bearer {server.token}", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10):
            pass
    except urllib.error.HTTPError as error:
        body = error.read()
        if error.code == 404 and not body.lstrip().startswith(b"{"):
            pytest.skip("the server has no namespace-file endpoints yet")
    return server


def test_upload_a_folder_then_list_get_and_delete(baton: Baton, files_server: Server, tmp_path: Path) -> None:
    # given
    write(tmp_path, "project/main.py", "print('hi')\n")
    write(tmp_path, "project/lib/util.py", "X = 1\n")
    write(tmp_path, "project/.env", "SECRET=1\n")  # hidden files stay home
    # when
    uploaded = baton(
        "nsfiles", "upload", str(tmp_path / "project"), "--namespace", "company.team", "--path", "/app"
    )
    listed = baton(
        "nsfiles", "list", "--namespace", "company.team", "--path", "/app", "--recursive", "-o", "json"
    )
    got = baton("nsfiles", "get", "--namespace", "company.team", "--path", "/app/lib/util.py")
    deleted = baton("nsfiles", "delete", "--namespace", "company.team", "--path", "/app/main.py")
    after = baton("nsfiles", "list", "--namespace", "company.team", "--path", "/app")
    # then
    assert uploaded.code == 0, uploaded.stderr
    assert uploaded.stdout.splitlines() == [
        "uploaded  /app/lib/util.py",
        "uploaded  /app/main.py",
        "2 uploaded, 0 skipped, 0 failed",
    ]
    assert listed.code == 0, listed.stderr
    assert [(entry["path"], entry["type"].upper()) for entry in json.loads(listed.stdout)] == [
        ("/app/lib", "DIRECTORY"),
        ("/app/lib/util.py", "FILE"),
        ("/app/main.py", "FILE"),
    ]
    assert (got.code, got.stdout) == (0, "X = 1\n")
    assert (deleted.code, deleted.stdout) == (0, "deleted /app/main.py\n")
    assert after.stdout.splitlines() == ["/app/lib/"]


def test_an_existing_file_is_skipped_unless_override(
    baton: Baton, files_server: Server, tmp_path: Path
) -> None:
    # given
    script = write(tmp_path, "run.sh", "echo one\n")
    baton("nsfiles", "upload", str(script), "--namespace", "company.team")
    script.write_text("echo two\n")
    # when
    skipped = baton("nsfiles", "upload", str(script), "--namespace", "company.team")
    kept = baton("nsfiles", "get", "--namespace", "company.team", "--path", "/run.sh")
    replaced = baton("nsfiles", "upload", str(script), "--namespace", "company.team", "--override")
    now = baton("nsfiles", "get", "--namespace", "company.team", "--path", "/run.sh")
    # then
    assert skipped.code == 0, skipped.stderr
    assert skipped.stdout.splitlines() == [
        "skipped   /run.sh: exists (use --override to replace it)",
        "0 uploaded, 1 skipped, 0 failed",
    ]
    assert kept.stdout == "echo one\n"
    assert replaced.stdout.splitlines()[0] == "uploaded  /run.sh"
    assert now.stdout == "echo two\n"


def test_get_of_a_missing_file_prints_the_servers_message(baton: Baton, files_server: Server) -> None:
    # when
    result = baton("nsfiles", "get", "--namespace", "company.team", "--path", "/nope.py")
    # then
    assert result.code == 1
    assert result.stderr.startswith("baton: error: 404 Not Found: ")
    assert "nope.py" in result.stderr
