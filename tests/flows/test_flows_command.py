"""`manage.py flows validate|deploy|sync DIR`: a folder of flow files and the stored flows, through
the services."""

from __future__ import annotations

import io
import json
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

pytestmark = pytest.mark.usefixtures("db")

HELLO = textwrap.dedent(
    """\
    id: hello
    namespace: company.team
    tasks:
      - {id: say, type: io.kestra.plugin.core.log.Log, message: hi}
    """
)
BYE = HELLO.replace("id: hello", "id: bye")
BROKEN = textwrap.dedent(
    """\
    id: broken
    namespace: company.team
    tasks:
      - id: say
        type: io.kestra.plugin.core.log.Nope
    """
)


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str


def flows(*args: str) -> Ran:
    """`manage.py flows ...` in this process; a CommandError becomes its exit code."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("flows", *args, stdout=out, stderr=err)
    except CommandError as error:
        return Ran(error.returncode, out.getvalue(), err.getvalue() + str(error))
    return Ran(0, out.getvalue(), err.getvalue())


def store(source: str, tenant: str = "main") -> int:
    from flows.services import save_flow_revision

    return save_flow_revision(tenant, source).revision


def stored(tenant: str = "main") -> dict[str, tuple[int, str]]:
    from flows.models import Flow

    return {
        f"{flow.namespace}.{flow.flow_id}": (flow.revision, flow.source)
        for flow in Flow.objects.for_tenant(tenant).filter(deleted=False)
    }


def state(folder: Path) -> dict[str, int]:
    body = json.loads((folder / ".baton-sync.json").read_text())
    assert body["tenant"] == "main"
    return {key: entry["revision"] for key, entry in body["flows"].items()}


def test_validate_names_file_and_line_and_exits_1(tmp_path: Path) -> None:
    # given
    (tmp_path / "hello.yml").write_text(HELLO)
    (tmp_path / "broken.yaml").write_text(BROKEN)
    # when
    result = flows("validate", str(tmp_path))
    # then
    assert result.code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{tmp_path}/broken.yaml:5:")
    assert "tasks[0].type: " in lines[0]
    assert lines[1:] == [f"{tmp_path}/hello.yml: valid (company.team.hello)", "1 valid, 1 invalid"]
    assert stored() == {}


def test_deploy_creates_skips_and_overrides(tmp_path: Path) -> None:
    # given
    flow = tmp_path / "hello.yml"
    flow.write_text(HELLO)
    created = flows("deploy", str(tmp_path))
    flow.write_text(HELLO.replace("message: hi", "message: hey"))
    # when
    skipped = flows("deploy", str(tmp_path))
    updated = flows("deploy", str(tmp_path), "--override")
    # then
    assert created.stdout.splitlines()[0] == "created   company.team.hello (revision 1)"
    assert skipped.code == 0
    assert skipped.stdout.splitlines()[0] == (
        "skipped   company.team.hello: stored with another source (use --override to replace it)"
    )
    assert updated.stdout.splitlines()[0] == "updated   company.team.hello (revision 2)"
    assert stored() == {"company.team.hello": (2, HELLO.replace("message: hi", "message: hey"))}


def test_deploy_fails_on_an_invalid_file_and_another_namespace(tmp_path: Path) -> None:
    # given
    (tmp_path / "a.yml").write_text(BROKEN)
    (tmp_path / "b.yml").write_text(HELLO.replace("company.team", "elsewhere"))
    (tmp_path / "c.yml").write_text(HELLO)
    # when
    result = flows("deploy", str(tmp_path), "--namespace", "company")
    # then
    assert result.code == 1
    assert result.stdout.splitlines() == [
        "created   company.team.hello (revision 1)",
        "1 created, 0 updated, 0 unchanged, 0 skipped, 2 failed",
    ]
    assert stored() == {"company.team.hello": (1, HELLO)}


def test_sync_writes_the_servers_flows_into_the_folder(tmp_path: Path) -> None:
    # given
    store(HELLO)
    store(BYE)
    store(BYE.replace("company.team", "elsewhere"), tenant="other")
    # when
    result = flows("sync", str(tmp_path))
    # then
    assert result.code == 0, result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        ".baton-sync.json",
        "company.team.bye.yml",
        "company.team.hello.yml",
    ]
    assert (tmp_path / "company.team.hello.yml").read_text() == HELLO
    assert state(tmp_path) == {"company.team.bye": 1, "company.team.hello": 1}
    assert result.stdout.splitlines()[-1] == "0 up, 2 down, 0 in sync, 0 conflict(s), 0 error(s)"


def test_sync_saves_new_and_changed_local_files_as_revisions(tmp_path: Path) -> None:
    # given
    flow = tmp_path / "flows" / "hello.yml"
    flow.parent.mkdir()
    flow.write_text(HELLO)
    first = flows("sync", str(tmp_path))
    flow.write_text(HELLO.replace("message: hi", "message: hey"))
    # when
    second = flows("sync", str(tmp_path))
    # then
    assert first.stdout.splitlines()[0] == f"up        company.team.hello: {flow} -> revision 1"
    assert second.stdout.splitlines()[0] == f"up        company.team.hello: {flow} -> revision 2"
    assert stored() == {"company.team.hello": (2, HELLO.replace("message: hi", "message: hey"))}
    assert state(tmp_path) == {"company.team.hello": 2}
    assert sorted(path.name for path in tmp_path.iterdir()) == [".baton-sync.json", "flows"]


def test_sync_pulls_a_flow_changed_on_the_server_into_its_own_file(tmp_path: Path) -> None:
    # given
    flow = tmp_path / "hello.yml"
    flow.write_text(HELLO)
    flows("sync", str(tmp_path))
    store(HELLO.replace("message: hi", "message: from the server"))
    # when
    result = flows("sync", str(tmp_path))
    # then
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"down      company.team.hello: revision 2 -> {flow}"
    assert flow.read_text() == HELLO.replace("message: hi", "message: from the server")
    assert state(tmp_path) == {"company.team.hello": 2}


def test_a_flow_changed_on_both_sides_is_a_conflict_and_neither_is_overwritten(tmp_path: Path) -> None:
    # given
    flow = tmp_path / "hello.yml"
    flow.write_text(HELLO)
    flows("sync", str(tmp_path))
    store(HELLO.replace("message: hi", "message: server"))
    flow.write_text(HELLO.replace("message: hi", "message: local"))
    # when
    result = flows("sync", str(tmp_path))
    # then
    assert result.code == 1
    assert result.stderr.splitlines()[0] == (
        f"conflict  company.team.hello: changed locally ({flow}) and on the server "
        "(revision 2; last sync: revision 1)"
    )
    assert flow.read_text() == HELLO.replace("message: hi", "message: local")
    assert stored() == {"company.team.hello": (2, HELLO.replace("message: hi", "message: server"))}
    assert state(tmp_path) == {"company.team.hello": 1}


@pytest.mark.parametrize(
    ("direction", "revision", "files"),
    [
        (
            "up",
            2,
            [".baton-sync.json", "local.yml"],
        ),  # the local file goes up, the server's new flow stays there
        ("down", 1, [".baton-sync.json", "company.team.bye.yml", "local.yml"]),
    ],
)
def test_direction_limits_the_sync_to_one_way(
    tmp_path: Path, direction: str, revision: int, files: list[str]
) -> None:
    # given
    store(HELLO)
    (tmp_path / "local.yml").write_text(HELLO)
    flows("sync", str(tmp_path))
    store(BYE)
    (tmp_path / "local.yml").write_text(HELLO.replace("message: hi", "message: changed"))
    # when
    result = flows("sync", str(tmp_path), "--direction", direction)
    # then
    assert result.code == 0, result.stderr
    assert stored()["company.team.hello"][0] == revision
    assert sorted(path.name for path in tmp_path.iterdir()) == files
