"""The `baton` client against a real HTTP server on loopback (pytest-django's `live_server`).

Each test gets its own config file (`BATON_CONFIG`) and no `BATON_*` variable from the outside;
`server` adds an EDITOR of tenant `main` with an API token and points the client at it through
the environment, as a CI job would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flows.cli.main import main
from tests.fixtures.api import PASSWORD
from tests.fixtures.modes import ROOT

_VARIABLES = ("BATON_SERVER", "BATON_TENANT", "BATON_TOKEN", "BATON_USERNAME", "BATON_PASSWORD")


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Server:
    url: str
    token: str
    username: str
    password: str


Baton = Callable[..., Result]


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where this test's `baton` keeps its contexts; no BATON_* variable leaks in."""
    path = tmp_path / "home" / "baton" / "config.json"
    monkeypatch.setenv("BATON_CONFIG", str(path))
    for name in _VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return path


@pytest.fixture
def baton(capsys: pytest.CaptureFixture[str], config_file: Path) -> Baton:
    """`baton("flows", "list")`: the CLI in this process; its exit code and what it printed."""

    def run(*argv: str) -> Result:
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def server(
    live_server: Any, transactional_db: None, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> Server:
    """The live server, an EDITOR of `main` with a token, and BATON_SERVER / BATON_TOKEN set."""
    from django.contrib.auth.models import User

    from flows.services import ensure_tenant
    from flows.services.access import create_token, grant

    ensure_tenant("main")
    user = User.objects.create_user("ci", "ci@example.com", PASSWORD)
    grant(user, "main", "EDITOR")
    _, token = create_token(user, "ci")
    monkeypatch.setenv("BATON_SERVER", live_server.url)
    monkeypatch.setenv("BATON_TOKEN", token)
    return Server(live_server.url, token, "ci", PASSWORD)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def run_subprocess(*argv: str, env: dict[str, str]) -> Result:
    """`baton` as a user runs it: the installed console script (or `python -m flows.cli.main`)."""
    script = Path(sys.executable).parent / "baton"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "flows.cli.main"]
    completed = subprocess.run(
        [*command, *argv],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Result(completed.returncode, completed.stdout, completed.stderr)
