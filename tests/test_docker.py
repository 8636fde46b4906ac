"""docker/ and the web process: the compose file renders with Docker Compose (the v2 plugin or
docker-compose 1.29), .env.example documents every setting, and gunicorn + whitenoise serve
/health and compressed static files.

There is no Docker engine here: `compose config` validates and renders the file without one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.test import Client

from tests.fixtures.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
SERVICES = {"postgres", "redis", "migrate", "web", "worker", "beat"}
PROFILE_SERVICES = {"worker-group": "groups", "flower": "flower"}
TEST_KEY = "a-test-secret-key"
_VARIABLE_LINE = re.compile(r"^(?:# )?([A-Z][A-Z0-9_]*)=")


def _compose_clis() -> list[list[str]]:
    """Every working Compose CLI here; none fails the test under CI and skips it elsewhere."""
    docker, legacy = shutil.which("docker"), shutil.which("docker-compose")
    candidates = ([[docker, "compose"]] if docker else []) + ([[legacy]] if legacy else [])
    clis = [
        cli
        for cli in candidates
        if subprocess.run([*cli, "version"], capture_output=True, timeout=60).returncode == 0
    ]
    if not clis:
        message = "neither `docker compose` nor `docker-compose` works here (scripts/services installs Debian's docker-compose as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return clis


def _env_file(secret_key: str | None = TEST_KEY, **overrides: str) -> str:
    """docker/.env.example as a user fills it in: the secret key and the given variables set."""
    text = (DOCKER / ".env.example").read_text()
    settings = {"BATON_SECRET_KEY": secret_key or "", **overrides}
    for name, value in settings.items():
        text, count = re.subn(rf"(?m)^(?:# )?{name}=.*$", f"{name}={value}", text)
        assert count == 1, f"{name} is not in docker/.env.example"
    return text


def _render(
    cli: list[str], folder: Path, env_text: str, profiles: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """`compose config` on a copy of docker/ whose .env is `env_text` (compose reads `.env` beside
    compose.yml for both `env_file` and `${VAR}`, so the copy keeps the repository's docker/ untouched)."""
    project = folder / "docker"
    project.mkdir(exist_ok=True)
    shutil.copy(DOCKER / "compose.yml", project / "compose.yml")
    (project / ".env").write_text(env_text)
    options = [argument for profile in profiles for argument in ("--profile", profile)]
    # Only PATH and HOME: a variable of this process (DATABASE_URL in production test mode) would win over .env.
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run(
        [*cli, "-f", str(project / "compose.yml"), *options, "config"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _services(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


def _argv(command: list[str] | str) -> str:
    return " ".join(command) if isinstance(command, list) else command


def test_compose_file_renders_every_process(tmp_path: Path) -> None:
    for index, cli in enumerate(_compose_clis()):
        # given
        folder = tmp_path / str(index)
        folder.mkdir()
        # when
        services = _services(_render(cli, folder, _env_file()))
        # then
        assert SERVICES <= set(services), cli
        for name in ("web", "worker", "beat"):
            assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
            assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
            assert services[name]["environment"]["BATON_SECRET_KEY"] == TEST_KEY
            assert (
                services[name]["environment"]["DATABASE_URL"] == "postgres://baton:baton@postgres:5432/baton"
            )
            assert services[name]["environment"]["CELERY_BROKER_URL"] == "redis://redis:6379/0"
        assert "migrate" in _argv(services["migrate"]["command"])
        assert "gunicorn orchestrator.wsgi" in _argv(services["web"]["command"])
        assert "-Q default,executor --concurrency=4 --pool=prefork" in _argv(services["worker"]["command"])
        assert int(services["worker"]["deploy"]["replicas"]) == 2
        assert "--scheduler orchestrator.beat:Scheduler" in _argv(services["beat"]["command"])
        assert int(services["beat"]["deploy"]["replicas"]) == 1
        assert {name for name, service in services.items() if "healthcheck" in service} >= {
            "postgres",
            "redis",
            "web",
        }


def test_compose_profiles_add_a_worker_group_and_flower(tmp_path: Path) -> None:
    for index, cli in enumerate(_compose_clis()):
        # given
        folder = tmp_path / str(index)
        folder.mkdir()
        env_text = _env_file(
            WORKER_GROUP_KEY="gpu", WORKER_REPLICAS="5", WORKER_CONCURRENCY="16", WORKER_POOL="threads"
        )
        # when
        services = _services(_render(cli, folder, env_text, profiles=tuple(PROFILE_SERVICES.values())))
        # then
        assert set(services) == SERVICES | set(PROFILE_SERVICES), cli
        for name, profile in PROFILE_SERVICES.items():
            assert services[name]["profiles"] == [profile]
        assert "-Q group.gpu " in _argv(services["worker-group"]["command"])
        assert "celery -A orchestrator flower" in _argv(services["flower"]["command"])
        assert services["flower"]["build"]["args"]["EXTRAS"] == "flower"
        assert "--concurrency=16 --pool=threads" in _argv(services["worker"]["command"])
        assert int(services["worker"]["deploy"]["replicas"]) == 5


def test_compose_refuses_to_start_without_a_secret_key(tmp_path: Path) -> None:
    for index, cli in enumerate(_compose_clis()):
        # given
        folder = tmp_path / str(index)
        folder.mkdir()
        # when
        result = _render(cli, folder, _env_file(secret_key=None))
        # then
        assert result.returncode != 0
        assert "BATON_SECRET_KEY" in result.stderr


def test_env_example_documents_every_setting() -> None:
    # given
    lines = (DOCKER / ".env.example").read_text().splitlines()
    read = set()
    for module in (ROOT / "orchestrator").glob("*.py"):
        read |= set(
            re.findall(
                r'\benv_(?:str|int|float|bool|secret|json_object)\(\s*"([A-Z0-9_]+)"', module.read_text()
            )
        )
    interpolated = set(re.findall(r"\$\{([A-Z0-9_]+)", (DOCKER / "compose.yml").read_text()))
    # when
    documented = {match.group(1) for line in lines if (match := _VARIABLE_LINE.match(line))}
    uncommented = [
        line
        for previous, line in zip(["", *lines], lines, strict=False)
        if _VARIABLE_LINE.match(line) and (not previous.startswith("#") or _VARIABLE_LINE.match(previous))
    ]
    # then
    assert sorted(read - documented) == []
    assert sorted(interpolated - documented) == []
    assert uncommented == []


@pytest.mark.django_db
def test_health_is_up_without_login_when_the_database_answers() -> None:
    # when
    response = Client().get("/health")
    # then
    assert response.status_code == 200
    assert response.json() == {"status": "UP"}
    assert "no-store" in response["Cache-Control"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _baton_env(**variables: str) -> dict[str, str]:
    env = {
        name: value for name, value in os.environ.items() if name not in {"DATABASE_URL", "CELERY_BROKER_URL"}
    }
    return {**env, "PYTHONPATH": str(ROOT), "DJANGO_SETTINGS_MODULE": "orchestrator.settings", **variables}


def test_health_is_503_when_the_database_does_not_answer() -> None:
    # given: a PostgreSQL URL on a loopback port where nothing listens
    script = (
        "import json, django; django.setup()\n"
        "from django.test.utils import setup_test_environment; setup_test_environment()\n"
        "from django.test import Client\n"
        "response = Client().get('/health')\n"
        "print(json.dumps([response.status_code, response.json()]))\n"
    )
    env = _baton_env(DATABASE_URL=f"postgres://baton@127.0.0.1:{_free_port()}/baton")
    # when
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    # then
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == [
        503,
        {"status": "DOWN", "message": "the database does not answer"},
    ]


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes] | None:
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers or {}), timeout=5
        ) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()
    except OSError:
        return None  # not listening yet


def test_web_command_serves_health_and_compressed_static_files(tmp_path: Path) -> None:
    # given: the image's build step (collectstatic) and compose's web command on a loopback port
    env = _baton_env(BATON_DATA_DIR=str(tmp_path))
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=120,
    )
    compose = yaml.safe_load((DOCKER / "compose.yml").read_text())
    command = list(compose["services"]["web"]["command"])
    port = _free_port()
    command = [str(Path(sys.executable).parent / command[0]), *command[1:]]
    command = [  # with compose's `${VAR:-default}` interpolation
        re.sub(r"\$\{(\w+):-([^}]*)\}", lambda found: env.get(found[1], found[2]), argument)
        for argument in command
    ]
    command = [
        f"--bind=127.0.0.1:{port}" if argument.startswith("--bind") else argument for argument in command
    ]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # when
        health = wait_until(lambda: _get(f"http://127.0.0.1:{port}/health"), timeout=30, message="gunicorn")
        static = _get(f"http://127.0.0.1:{port}/static/admin/css/base.css", {"Accept-Encoding": "gzip"})
    finally:
        server.terminate()
        _, errors = server.communicate(timeout=30)
    # then
    assert health[0] == 200 and json.loads(health[2]) == {"status": "UP"}, errors
    assert static is not None and static[0] == 200
    assert static[1]["Content-Encoding"] == "gzip"
