"""`baton config`: contexts in a 0600 file; listing them never shows a secret."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.cli.conftest import Baton

TOKEN = "baton_0123456789abcdef_not-a-real-secret"
SECRET_PASSWORD = "hunter2-very-secret"


def test_add_writes_a_private_file_and_list_hides_the_token(baton: Baton, config_file: Path) -> None:
    # when
    added = baton("config", "add", "prod", "--server", "https://baton.example.com/", "--token", TOKEN)
    listed = baton("config", "list")
    # then
    assert added.code == 0, added.stderr
    assert added.stdout == f"context `prod` saved in {config_file} (current)\n"
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_file.parent.stat().st_mode) == 0o700
    assert json.loads(config_file.read_text()) == {
        "current": "prod",
        "contexts": {"prod": {"server": "https://baton.example.com", "tenant": "main", "token": TOKEN}},
    }
    assert listed.code == 0
    assert listed.stdout.splitlines() == [
        "   NAME  SERVER                     TENANT  AUTH",
        "*  prod  https://baton.example.com  main    token",
    ]
    assert TOKEN not in listed.stdout + listed.stderr


def test_use_switches_the_current_context_and_json_list_has_no_password(
    baton: Baton, config_file: Path
) -> None:
    # given
    baton("config", "add", "prod", "--server", "https://baton.example.com", "--token", TOKEN)
    baton(
        "config", "add", "local", "--server", "http://localhost:8080", "--tenant", "dev",
        "--username", "ada", "--password", SECRET_PASSWORD,
    )  # fmt: skip
    # when
    used = baton("config", "use", "local")
    listed = baton("config", "list", "--output", "json")
    # then
    assert used.stdout == "using context `local`\n"
    assert json.loads(listed.stdout) == [
        {
            "name": "local",
            "server": "http://localhost:8080",
            "tenant": "dev",
            "auth": "basic (ada)",
            "current": True,
        },
        {
            "name": "prod",
            "server": "https://baton.example.com",
            "tenant": "main",
            "auth": "token",
            "current": False,
        },
    ]
    assert SECRET_PASSWORD not in listed.stdout and TOKEN not in listed.stdout
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600


def test_an_existing_loose_file_is_tightened_on_save(baton: Baton, config_file: Path) -> None:
    # given
    config_file.parent.mkdir(parents=True)
    config_file.write_text('{"current": null, "contexts": {}}')
    config_file.chmod(0o644)
    # when
    result = baton("config", "add", "prod", "--server", "https://baton.example.com", "--token", TOKEN)
    # then
    assert result.code == 0
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["config", "use", "nope"], "no context `nope`"),
        (["config", "add", "x", "--server", "ftp://host"], "--server must be an http:// or https:// URL"),
        (["flows", "list"], "no server: run `baton config add NAME --server URL`"),
        (["flows", "list", "--context", "nope", "--server", "http://127.0.0.1:9"], "no context `nope`"),
    ],
)
def test_configuration_mistakes_exit_1_with_a_message(baton: Baton, argv: list[str], message: str) -> None:
    # when
    result = baton(*argv)
    # then
    assert result.code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("baton: error: ")
    assert message in result.stderr


def test_an_unreachable_server_is_a_clear_error(baton: Baton) -> None:
    # when: nothing listens on port 9 of loopback
    result = baton("flows", "list", "--server", "http://127.0.0.1:9")
    # then
    assert result.code == 1
    assert result.stderr.startswith("baton: error: cannot reach the server at http://127.0.0.1:9: ")
    assert "Traceback" not in result.stderr


def test_usage_errors_exit_2(baton: Baton) -> None:
    assert baton("flows", "deploy", "somewhere").code == 2  # --namespace is required


def test_the_client_imports_nothing_but_the_standard_library() -> None:
    # given: a fresh interpreter, as on a CI runner where baton was installed with --no-deps
    import subprocess
    import sys

    from tests.fixtures.modes import ROOT

    code = "import sys, flows.cli.main; print(' '.join(sorted(m.split('.')[0] for m in sys.modules)))"
    # when
    loaded = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    # then
    assert set(loaded.stdout.split()) & {"django", "rest_framework", "celery", "yaml", "plugins"} == set()
    assert {"flows", "urllib", "argparse"} <= set(loaded.stdout.split())
