"""`baton flows` and `baton namespaces` against a live server; stored flows are read from the DB."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from flows.cli.client import Client
from flows.cli.config import Context
from tests.cli.conftest import Baton, Server, run_subprocess, write

pytestmark = pytest.mark.usefixtures("transactional_db")

HELLO = """
    id: hello
    namespace: company.team
    tasks:
      - id: say
        type: io.kestra.plugin.core.log.Log
        message: hi
"""
HELLO_V2 = HELLO.replace("message: hi", "message: hi again")
CHILD = """
    id: child
    namespace: company.team.sub
    tasks:
      - {id: say, type: io.kestra.plugin.core.log.Log, message: child}
"""
BROKEN = """
    id: broken
    namespace: company.team
    tasks:
      - id: say
        type: io.kestra.plugin.core.log.Nope
"""


def _revisions(tenant: str = "main") -> list[tuple[str, str, int]]:
    from flows.models import FlowRevision

    return list(
        FlowRevision.objects.filter(flow__tenant_id=tenant)
        .order_by("flow__namespace", "flow__flow_id", "revision")
        .values_list("flow__namespace", "flow__flow_id", "revision")
    )


def _store(source: str, tenant: str = "main") -> None:
    from flows.services import save_flow_revision

    save_flow_revision(tenant, textwrap.dedent(source).lstrip("\n"))


def test_validate_prints_file_and_line_of_each_problem_and_exits_1(
    baton: Baton, server: Server, tmp_path: Path
) -> None:
    # given
    write(tmp_path, "hello.yml", HELLO)
    write(tmp_path, "nested/broken.yaml", BROKEN)
    write(tmp_path, ".github/workflows/ci.yml", "on: push\n")  # hidden folders are not flows
    # when
    result = baton("flows", "validate", str(tmp_path))
    # then
    assert result.code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"{tmp_path}/hello.yml: valid (company.team.hello)"
    assert lines[1].startswith(f"{tmp_path}/nested/broken.yaml:5:")
    assert "tasks[0].type: " in lines[1] and "io.kestra.plugin.core.log.Nope" in lines[1]
    assert lines[-1] == "1 valid, 1 invalid"
    assert _revisions() == []


def test_validate_of_valid_files_exits_0_and_answers_json(
    baton: Baton, server: Server, tmp_path: Path
) -> None:
    # given
    write(tmp_path, "hello.yml", HELLO)
    # when
    result = baton("flows", "validate", str(tmp_path), "--output", "json")
    # then
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout) == [
        {
            "file": f"{tmp_path}/hello.yml",
            "valid": True,
            "flows": [{"namespace": "company.team", "id": "hello"}],
            "problems": [],
        }
    ]


def test_deploy_creates_then_skips_a_changed_flow_without_override(
    baton: Baton, server: Server, tmp_path: Path
) -> None:
    # given
    flow = write(tmp_path, "hello.yml", HELLO)
    write(tmp_path, "sub/child.yml", CHILD)  # a child namespace of the one deployed to
    first = baton("flows", "deploy", str(tmp_path), "--namespace", "company.team")
    flow.write_text(textwrap.dedent(HELLO_V2).lstrip("\n"))
    # when
    second = baton("flows", "deploy", str(tmp_path), "--namespace", "company.team")
    # then
    assert first.code == 0, first.stderr
    assert first.stdout.splitlines() == [
        "created   company.team.hello (revision 1)",
        "created   company.team.sub.child (revision 1)",
        "2 created, 0 updated, 0 unchanged, 0 skipped, 0 failed",
    ]
    assert second.code == 0, second.stderr
    assert second.stdout.splitlines() == [
        "skipped   company.team.hello (revision 1): exists on the server with another source "
        "(use --override to replace it)",
        "unchanged company.team.sub.child (revision 1)",
        "0 created, 0 updated, 1 unchanged, 1 skipped, 0 failed",
    ]
    assert _revisions() == [("company.team", "hello", 1), ("company.team.sub", "child", 1)]


def test_deploy_with_override_stores_a_new_revision(baton: Baton, server: Server, tmp_path: Path) -> None:
    # given
    _store(HELLO)
    write(tmp_path, "hello.yml", HELLO_V2)
    # when
    result = baton(
        "flows", "deploy", str(tmp_path), "--namespace", "company.team", "--override", "-o", "json"
    )
    # then
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout)["results"] == [
        {
            "file": f"{tmp_path}/hello.yml",
            "action": "updated",
            "namespace": "company.team",
            "id": "hello",
            "revision": 2,
            "message": "",
        }
    ]
    assert _revisions() == [("company.team", "hello", 1), ("company.team", "hello", 2)]
    from flows.models import Flow

    assert Flow.objects.get(flow_id="hello").source == textwrap.dedent(HELLO_V2).lstrip("\n")


def test_deploy_refuses_a_flow_of_another_namespace(baton: Baton, server: Server, tmp_path: Path) -> None:
    # given
    write(tmp_path, "hello.yml", HELLO)
    # when: `company.teams` is not a child of `company.team`, only a longer name
    result = baton("flows", "deploy", str(tmp_path), "--namespace", "company.tea")
    # then
    assert result.code == 1
    assert result.stderr == (
        "failed    company.team.hello: namespace `company.team` is not `company.tea` nor one of its children\n"
    )
    assert _revisions() == []


@pytest.mark.parametrize(
    ("flags", "stored"),
    [([], [("company.team", "hello", 1)]), (["--fail-fast"], [])],
)
def test_fail_fast_stops_at_the_first_failure(
    baton: Baton, server: Server, tmp_path: Path, flags: list[str], stored: list[tuple[str, str, int]]
) -> None:
    # given: files are deployed in name order, the broken one first
    write(tmp_path, "a_broken.yml", BROKEN)
    write(tmp_path, "b_hello.yml", HELLO)
    # when
    result = baton("flows", "deploy", str(tmp_path), "--namespace", "company.team", *flags)
    # then
    assert result.code == 1
    assert result.stderr.startswith(f"failed    {tmp_path}/a_broken.yml:5:")
    assert _revisions() == stored


def test_list_and_get_show_only_the_tenants_flows(baton: Baton, server: Server) -> None:
    # given
    _store(HELLO)
    _store(CHILD)
    _store(HELLO.replace("company.team", "elsewhere"))
    _store(HELLO, tenant="other")
    # when
    listed = baton("flows", "list", "--namespace", "company.team")
    got = baton("flows", "get", "company.team", "hello")
    # then
    assert listed.code == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "NAMESPACE         ID     REVISION  DISABLED",
        "company.team      hello  1         False",
        "company.team.sub  child  1         False",
    ]
    assert got.code == 0, got.stderr
    assert got.stdout == textwrap.dedent(HELLO).lstrip("\n")


def test_search_is_read_page_after_page(server: Server) -> None:
    # given
    for number in range(5):
        _store(HELLO.replace("id: hello", f"id: hello{number}"))
    client = Client(Context(server=server.url, token=server.token))
    # when
    flows = client.pages("flows/search", {"namespace": "company.team"}, size=2)
    # then
    assert [flow["id"] for flow in flows] == [f"hello{number}" for number in range(5)]


def test_a_missing_flow_prints_the_servers_message(baton: Baton, server: Server) -> None:
    # when
    result = baton("flows", "get", "company.team", "nope")
    # then
    assert result.code == 1
    assert result.stderr == "baton: error: 404 Not Found: flow `company.team.nope` not found\n"


def test_a_bad_token_is_a_clear_error(baton: Baton, server: Server) -> None:
    # when
    result = baton("flows", "list", "--token", "baton_0000_wrong")
    # then
    assert result.code == 1
    assert result.stdout == ""
    assert result.stderr == "baton: error: 401 Unauthorized: invalid, expired or revoked API token\n"


def test_the_environment_wins_over_the_context_and_flags_over_both(
    baton: Baton, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a context pointing nowhere useful, with the user's password
    _store(HELLO)
    baton(
        "config",
        "add",
        "ci",
        "--server",
        "http://127.0.0.1:9",
        "--username",
        "ci",
        "--password",
        server.password,
    )
    # when / then: BATON_SERVER and BATON_TOKEN (set by `server`) replace the context's server and user
    assert baton("flows", "list").code == 0
    # when / then: a flag beats the environment
    assert baton("flows", "list", "--server", "http://127.0.0.1:9").code == 1
    # when / then: without the environment, the context's Basic credentials are used
    monkeypatch.delenv("BATON_TOKEN")
    monkeypatch.delenv("BATON_SERVER")
    assert baton("flows", "list", "--server", server.url).stdout.splitlines()[1:] == [
        "company.team  hello  1         False"
    ]


def test_namespaces_list(baton: Baton, server: Server) -> None:
    # given
    _store(HELLO)
    _store(CHILD)
    _store(HELLO.replace("company.team", "hidden.elsewhere"), tenant="other")
    # when
    result = baton("namespaces", "list", "--output", "json")
    # then
    assert result.code == 0, result.stderr
    names = json.loads(result.stdout)
    assert {"company.team", "company.team.sub"} <= set(names)
    assert [name for name in names if name.startswith("hidden")] == []


def test_the_installed_command_deploys_and_reports_errors_without_a_traceback(
    server: Server, tmp_path: Path
) -> None:
    # given
    write(tmp_path, "hello.yml", HELLO)
    env = {"BATON_SERVER": server.url, "BATON_TOKEN": server.token, "BATON_CONFIG": str(tmp_path / "c.json")}
    # when
    deployed = run_subprocess("flows", "deploy", str(tmp_path), "--namespace", "company", env=env)
    refused = run_subprocess("flows", "list", env={**env, "BATON_TOKEN": "baton_0000_wrong"})
    # then
    assert deployed.code == 0, deployed.stderr
    assert deployed.stdout.splitlines()[0] == "created   company.team.hello (revision 1)"
    assert _revisions() == [("company.team", "hello", 1)]
    assert (refused.code, refused.stdout) == (1, "")
    assert refused.stderr == "baton: error: 401 Unauthorized: invalid, expired or revoked API token\n"
