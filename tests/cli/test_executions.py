"""`baton executions run` against a live server, with the worker running the tasks."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.api.test_executions import GREET  # inputs name, count, doc; output greeting
from tests.cli.conftest import Baton, Server
from tests.fixtures.executions import finished

pytestmark = pytest.mark.usefixtures("worker", "transactional_db")

FAIL = """
    id: fail
    namespace: company.team
    tasks:
      - {id: boom, type: io.kestra.plugin.core.execution.Fail}
"""


def _store(source: str) -> None:
    from flows.services import save_flow_revision

    save_flow_revision("main", textwrap.dedent(source).lstrip("\n"))


def test_run_and_wait_answers_the_ended_execution(baton: Baton, server: Server, tmp_path: Path) -> None:
    # given
    _store(GREET)
    document = tmp_path / "notes.txt"
    document.write_text("file content from the client")
    # when
    result = baton(
        "executions", "run", "company.team", "greet", "--input", "name=ada", "--input", f"doc=@{document}",
        "--label", "team:data", "--wait", "--output", "json",
    )  # fmt: skip
    # then
    assert result.code == 0, result.stderr
    execution = json.loads(result.stdout)
    assert execution["state"]["current"] == "SUCCESS"
    assert execution["outputs"] == {"greeting": "hello ada x1"}
    assert {"key": "team", "value": "data"} in execution["labels"]
    assert finished(execution["id"]).messages("log") == ["file content from the client"]


def test_run_and_wait_prints_a_text_summary(baton: Baton, server: Server) -> None:
    # given
    _store(GREET)
    # when
    result = baton("executions", "run", "company.team", "greet", "--input", "name=bob", "--wait")
    # then
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("execution ") and lines[0].endswith(" company.team.greet revision 1")
    assert lines[1].startswith("state SUCCESS in ")
    assert lines[2:] == [
        '  SUCCESS   hello {"value": "hello bob x1"}',
        "  SUCCESS   log",
        'outputs {"greeting": "hello bob x1"}',
    ]


def test_a_failed_execution_exits_1(baton: Baton, server: Server) -> None:
    # given
    _store(FAIL)
    # when
    result = baton("executions", "run", "company.team", "fail", "--wait", "-o", "json")
    # then
    assert result.code == 1
    assert json.loads(result.stdout)["state"]["current"] == "FAILED"


def test_run_without_wait_returns_at_once(baton: Baton, server: Server) -> None:
    # given
    _store(GREET)
    # when
    result = baton("executions", "run", "company.team", "greet", "--input", "name=cy", "-o", "json")
    # then
    assert result.code == 0, result.stderr
    execution_id = json.loads(result.stdout)["id"]
    assert finished(execution_id).data["outputs"] == {"greeting": "hello cy x1"}


def test_a_missing_input_prints_the_servers_message(baton: Baton, server: Server) -> None:
    # given
    _store(GREET)
    # when
    result = baton("executions", "run", "company.team", "greet", "--wait")
    # then
    assert result.code == 1
    assert result.stderr.startswith("baton: error: 422 Unprocessable Entity: name: Invalid input for `name`")
    from flows.models import Execution

    assert Execution.objects.count() == 0


def test_a_timeout_stops_waiting_and_exits_1(baton: Baton, server: Server) -> None:
    # given: a flow that runs longer than the client waits
    _store(
        """
        id: slow
        namespace: company.team
        tasks:
          - {id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT3S}
        """
    )
    # when
    result = baton("executions", "run", "company.team", "slow", "--wait", "--timeout", "0.5")
    # then
    assert result.code == 1
    execution_id = result.stdout.split()[1]
    message, _, state = result.stderr.rstrip("\n").rpartition(" ")
    assert message == f"timed out after 0.5 s: execution {execution_id} is still"
    assert state in ("CREATED", "RUNNING")  # however far the worker got in half a second
    assert finished(execution_id).state == "SUCCESS"
