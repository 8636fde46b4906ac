"""Polling triggers (io.kestra.plugin.core.http.Trigger): a real HTTP server on 127.0.0.1 answers,
the tick claims due triggers, a worker calls the URL and starts the flow when the condition holds."""

from __future__ import annotations

import base64
import json
import socket
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import pytest

from flows import services
from flows.models import Execution, Trigger
from flows.services.polling import Outcome, claim_due, dispatch_due, evaluate
from tests.fixtures.api import Api
from tests.fixtures.executions import finished, gate_task
from tests.fixtures.modes import LOG_DIR, PRODUCTION, TEST_SECRET
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.usefixtures("worker", "transactional_db")
T = TypeVar("T")


@dataclass
class Peer:
    """An HTTP server on 127.0.0.1: records every request and gives the answer the test sets."""

    url: str = ""
    status: int = 200
    body: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    # set: answer at once; cleared: hold each answer until set (or 5 s), for timeouts
    go: threading.Event = field(default_factory=threading.Event)

    def answer(self, status: int, body: Any = "", **headers: str) -> None:
        self.status, self.headers = status, headers
        self.body = body if isinstance(body, str) else json.dumps(body)


@pytest.fixture
def peer() -> Iterator[Peer]:
    peer = Peer()
    peer.go.set()

    class Handler(BaseHTTPRequestHandler):
        def handle_one(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            peer.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": self.rfile.read(length).decode(),
                }
            )
            peer.go.wait(5)
            payload = peer.body.encode()
            self.send_response(peer.status)
            for name, value in peer.headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = handle_one

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    peer.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield peer
    peer.go.set()
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    """A loopback port nothing listens on: connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


WATCH = """
id: watch
namespace: company.team
inputs:
  - {id: name, type: STRING, defaults: none}
tasks:
  - id: seen
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.code }} {{ trigger.headers['X-Stock'][0] }} {{ inputs.name }} {{ trigger.uri }}"
triggers:
  - id: http
    type: io.kestra.plugin.core.http.Trigger
    uri: URL/stock
    headers:
      Authorization: "Bearer {{ secret('API_TOKEN') }}"
    responseCondition: "{{ response.statusCode == 200 and json(response.body).inStock }}"
    interval: PT1H
    inputs: {name: "{{ json(trigger.body).name }}"}
    labels: {origin: http}
"""


def save(source: str, url: str) -> None:
    services.ensure_tenant("main")
    services.save_flow_revision("main", source.replace("URL", url))


def row() -> Trigger:
    return Trigger.objects.get(tenant_id="main", flow_id="watch", trigger_id="http")


def executions() -> list[Execution]:
    return list(Execution.objects.filter(flow_id="watch"))


def evaluated_at(when: datetime | None = None) -> Trigger:
    """Wait until the trigger's evaluation (the one planned at `when`, else its first) has ended."""
    return wait_until(
        lambda: (
            (found := row()).locked_until is None
            and found.last_evaluation is not None
            and (when is None or found.last_evaluation == when)
            and found
        ),
        timeout=30,
        message=f"the evaluation at {when or 'first'}",
    )


def first_evaluation() -> Trigger:
    """A new trigger is due at once: this tick (or the embedded ticker, or beat) sends it to a worker."""
    dispatch_due()
    return evaluated_at()


def test_the_trigger_starts_the_flow_when_the_response_condition_holds(peer: Peer) -> None:
    # given
    peer.answer(200, {"inStock": True, "name": "widget"}, X_Stock="yes")
    save(WATCH, peer.url)
    # when
    state = first_evaluation()
    # then: one call, with the secret rendered into its header
    assert [(r["method"], r["path"]) for r in peer.requests] == [("GET", "/stock")]
    assert peer.requests[0]["headers"]["Authorization"] == f"Bearer {TEST_SECRET}"
    (execution,) = executions()
    assert execution.trigger["id"] == "http"
    assert execution.trigger["variables"]["body"] == '{"inStock": true, "name": "widget"}'
    assert {"key": "origin", "value": "http"} in execution.labels
    assert finished(execution.id).run("seen")["outputs"] == {"value": f"200 yes widget {peer.url}/stock"}
    assert state.last_fire == state.last_evaluation
    assert state.next_fire == state.last_evaluation + timedelta(hours=1)
    assert state.error == ""


WAITING = """
id: watch
namespace: company.team
tasks:
  - {id: hello, type: io.kestra.plugin.core.log.Log, message: hi}
triggers:
  - id: http
    type: io.kestra.plugin.core.http.Trigger
    uri: URL/ready
    interval: PT1H
"""


@pytest.mark.parametrize(
    ("condition", "status", "calls"),
    [
        pytest.param("", 503, 1, id="default-condition-on-an-error-status"),
        pytest.param(
            "    responseCondition: '{{ response.body == \"go\" }}'\n", 200, 1, id="false-condition"
        ),
        pytest.param(
            "    conditions:\n"
            "      - {type: io.kestra.plugin.core.condition.Expression, expression: '{{ 1 > 2 }}'}\n",
            200,
            0,
            id="false-trigger-condition-skips-the-call",
        ),
    ],
)
def test_nothing_starts_when_a_condition_does_not_hold(
    peer: Peer, condition: str, status: int, calls: int
) -> None:
    # given
    peer.answer(status, "wait")
    save(WAITING + condition, peer.url)
    # when
    state = first_evaluation()
    # then: evaluated, the next evaluation planned, nothing started
    assert len(peer.requests) == calls
    assert executions() == []
    assert (state.last_fire, state.error) == (None, "")
    assert state.next_fire == state.last_evaluation + timedelta(hours=1)


def test_the_next_evaluation_waits_for_the_interval(peer: Peer) -> None:
    # given: evaluated once, the answer does not start anything
    peer.answer(404)
    save(WAITING, peer.url)
    first = first_evaluation().last_evaluation
    due = first + timedelta(hours=1)
    # when: ticks before, then at the next evaluation time
    early = dispatch_due(now=due - timedelta(seconds=1))
    on_time = dispatch_due(now=due)
    state = evaluated_at(due)
    # then
    assert (early, on_time) == (0, 1)
    assert len(peer.requests) == 2
    assert state.next_fire == due + timedelta(hours=1)


def test_two_ticks_at_once_call_the_url_once(peer: Peer) -> None:
    from django.db import connection

    # given
    peer.answer(404)
    save(WAITING, peer.url)
    due = first_evaluation().last_evaluation + timedelta(hours=1)
    barrier = threading.Barrier(4)
    sent: list[int] = []

    def tick() -> None:
        try:
            barrier.wait()
            sent.append(dispatch_due(now=due))
        finally:
            connection.close()

    # when: four ticks claim at the same moment
    threads = [threading.Thread(target=tick) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    evaluated_at(due)
    # then: one of them claimed it, one call was made
    assert sorted(sent) == [0, 0, 0, 1]
    assert len(peer.requests) == 2


def test_a_claim_whose_message_was_lost_is_taken_again_after_its_lease(peer: Peer) -> None:
    # given: a tick claimed the trigger, and its message never reached a worker
    peer.answer(404)
    save(WAITING, peer.url)
    due = first_evaluation().last_evaluation + timedelta(hours=1)
    (lost,) = claim_due(now=due)
    # when
    while_locked = dispatch_due(now=due + timedelta(seconds=1))
    after_lease = dispatch_due(now=lost.lease + timedelta(seconds=1))
    state = evaluated_at(lost.lease + timedelta(seconds=1))
    late = evaluate(lost.trigger_pk, lost.claimed_at, lost.lease)  # the lost message, delivered at last
    # then: evaluated once more, by the new claim only
    assert (while_locked, after_lease, late) == (0, 1, Outcome.LOST)
    assert len(peer.requests) == 2
    assert state.next_fire == lost.lease + timedelta(seconds=1, hours=1)


def test_unlock_releases_a_claimed_trigger(peer: Peer, api: Api) -> None:
    # given: claimed, its worker gone
    peer.answer(404)
    save(WAITING, peer.url)
    due = first_evaluation().last_evaluation + timedelta(hours=1)
    claim_due(now=due)
    # when
    response = api.post("triggers/company.team/watch/http/unlock")
    again = dispatch_due(now=due + timedelta(seconds=1))
    evaluated_at(due + timedelta(seconds=1))
    # then
    assert response.status_code == 200
    assert response.json()["triggerContext"]["locked"] is False
    assert again == 1
    assert len(peer.requests) == 2


def test_a_disabled_trigger_is_not_evaluated_and_enabling_plans_it_at_once(peer: Peer, api: Api) -> None:
    # given
    peer.answer(404)
    save(WAITING, peer.url)
    due = first_evaluation().last_evaluation + timedelta(hours=1)
    who = {"namespace": "company.team", "flowId": "watch", "triggerId": "http"}
    # when
    api.put("triggers/set-disabled", {**who, "disabled": True}, format="json")
    while_disabled = dispatch_due(now=due)
    enabled = api.put("triggers/set-disabled", {**who, "disabled": False}, format="json")
    # then: planned for the next tick, which evaluates it
    assert while_disabled == 0
    assert enabled.status_code == 200
    planned = row().next_fire
    assert planned < due
    dispatch_due()
    wait_until(lambda: (state := row()).locked_until is None and state.last_evaluation >= planned)
    assert len(peer.requests) == 2


def test_a_refused_connection_is_recorded_without_the_secret_and_retried_after_the_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # given: nothing listens; the secret is in the header and the query string
    port = closed_port()
    source = WAITING.replace(
        "uri: URL/ready",
        f"uri: \"http://127.0.0.1:{port}/ready?token={{{{ secret('API_TOKEN') }}}}\"\n"
        "    headers: {X-Token: \"{{ secret('API_TOKEN') }}\"}",
    )
    save(source, "")
    # when
    state = first_evaluation()
    # then: the error names the call, never the secret; nothing started; the next evaluation is planned
    assert state.error.startswith(f"GET http://127.0.0.1:{port}/ready?token=******: ")
    assert "Connection refused" in state.error
    assert TEST_SECRET not in state.error
    assert executions() == []
    assert state.next_fire == state.last_evaluation + timedelta(hours=1)
    logged = [line for line in operator_logs(caplog) if "polling trigger" in line]
    assert logged and all(TEST_SECRET not in line for line in logged)


def operator_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The operator log lines of whoever evaluated: the worker processes in production mode."""
    if not PRODUCTION:
        return [record.getMessage() for record in caplog.records]
    lines = [
        line for log in sorted(Path(LOG_DIR).glob("worker-*.log")) for line in log.read_text().splitlines()
    ]
    return lines


def test_no_new_evaluation_while_the_started_execution_runs(peer: Peer, tmp_path: Path) -> None:
    # given: the trigger started an execution that waits on a gate
    gate = tmp_path / "gate"
    peer.answer(200)
    hold = textwrap.indent(textwrap.dedent(gate_task("hold", gate)).strip("\n"), "  ")
    source = WAITING.replace("  - {id: hello, type: io.kestra.plugin.core.log.Log, message: hi}", hold)
    save(source, peer.url)
    state = first_evaluation()
    (execution,) = executions()
    due = state.next_fire
    # when: due while it runs, then after it ended
    while_running = dispatch_due(now=due)
    gate.touch()
    finished(execution.id)
    after_end = dispatch_due(now=due)
    evaluated_at(due)
    # then
    assert state.execution_id == execution.id
    assert (while_running, after_end) == (0, 1)
    assert len(peer.requests) == 2


@pytest.mark.parametrize(
    ("lines", "hold", "error"),
    [
        pytest.param("    options: {readTimeout: PT0.3S}\n", True, "Read timed out", id="read-timeout"),
        pytest.param(
            "    inputs: {count: '{{ trigger.body }}'}\n",
            False,
            "Expected `INT` but received `many`",
            id="invalid-input",
        ),
    ],
)
def test_a_failed_evaluation_is_recorded_starts_nothing_and_plans_the_next(
    peer: Peer, lines: str, hold: bool, error: str
) -> None:
    # given: an answer that comes too late, or a body that is not a valid input
    peer.answer(200, "many")
    if hold:
        peer.go.clear()
    source = WAITING.replace("tasks:", "inputs:\n  - {id: count, type: INT, defaults: 0}\ntasks:")
    save(source + lines, peer.url)
    # when
    state = first_evaluation()
    # then
    assert error in state.error
    assert executions() == []
    assert (state.last_fire, state.execution_id) == (None, "")
    assert state.next_fire == state.last_evaluation + timedelta(hours=1)


def test_saving_a_changed_trigger_plans_it_at_once_and_an_unchanged_one_keeps_its_state(peer: Peer) -> None:
    # given: evaluated, next due in an hour
    peer.answer(404)
    save(WAITING, peer.url)
    planned = first_evaluation().next_fire
    # when
    save(WAITING.replace("tasks:", "description: same trigger\ntasks:"), peer.url)
    unchanged = row().next_fire
    save(WAITING.replace("PT1H", "PT2H"), peer.url)
    changed = row().next_fire
    # then
    assert unchanged == planned
    assert changed < planned - timedelta(minutes=59)
    assert row().config["interval"] == "PT2H"


def test_a_tick_reads_the_due_triggers_once_and_leases_them_in_one_update(peer: Peer) -> None:
    # given: three polling triggers, each evaluated once
    peer.answer(404)
    triggers = "".join(
        f"  - {{id: {name}, type: io.kestra.plugin.core.http.Trigger, uri: URL/{name}, interval: PT1H}}\n"
        for name in ("a", "b", "c")
    )
    save(WAITING.split("triggers:")[0] + "triggers:\n" + triggers, peer.url)
    dispatch_due()

    def all_evaluated() -> list[Trigger]:
        rows = Trigger.objects.filter(flow_id="watch", locked_until=None).exclude(last_evaluation=None)
        return list(rows) if rows.count() == 3 else []

    rows = wait_until(all_evaluated, message="three first evaluations")
    # when
    nothing_due = statements(
        lambda: claim_due(now=min(found.next_fire for found in rows) - timedelta(seconds=1))
    )
    three_due = statements(lambda: claim_due(now=max(found.next_fire for found in rows)))
    # then
    assert nothing_due == ([], ["SELECT"])
    assert (len(three_due[0]), three_due[1]) == (3, ["SELECT", "UPDATE"])


def statements(action: Callable[[], T]) -> tuple[T, list[str]]:
    """What `action` returns, and the SQL statements it ran (their verbs; transaction control left out)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        result = action()
    verbs = [query["sql"].split()[0] for query in queries.captured_queries]
    return result, [verb for verb in verbs if verb in ("SELECT", "UPDATE", "INSERT", "DELETE")]


@pytest.mark.parametrize(
    ("lines", "method", "body", "headers"),
    [
        pytest.param(
            '    method: POST\n    body: \'{"day": "{{ trigger.date | date("yyyy") }}"}\'\n'
            "    contentType: application/json\n",
            "POST",
            '{"day": "YEAR"}',
            {"Content-Type": "application/json"},
            id="body",
        ),
        pytest.param(
            "    method: POST\n    formData: {name: widget, count: 2}\n",
            "POST",
            "name=widget&count=2",
            {"Content-Type": "application/x-www-form-urlencoded"},
            id="form",
        ),
        pytest.param(
            "    options:\n      auth: {type: BASIC, username: me, password: \"{{ secret('API_TOKEN') }}\"}\n",
            "GET",
            "",
            {"Authorization": "Basic " + base64.b64encode(f"me:{TEST_SECRET}".encode()).decode()},
            id="basic-auth",
        ),
    ],
)
def test_the_request_is_built_from_the_rendered_properties(
    peer: Peer, lines: str, method: str, body: str, headers: dict[str, str]
) -> None:
    # given
    peer.answer(404)
    save(WAITING + lines, peer.url)
    # when
    state = first_evaluation()
    # then
    (request,) = peer.requests
    assert (request["method"], request["body"]) == (
        method,
        body.replace("YEAR", str(state.last_evaluation.year)),
    )
    assert {name: request["headers"].get(name) for name in headers} == headers
    assert state.error == ""


def test_an_evaluation_that_starts_nothing_costs_five_statements(peer: Peer) -> None:
    # given: claimed by a tick, its message about to be handled
    peer.answer(404)
    save(WAITING, peer.url)
    due = first_evaluation().next_fire
    (claim,) = claim_due(now=due)
    # when
    outcome, run = statements(lambda: evaluate(claim.trigger_pk, claim.claimed_at, claim.lease))
    # then: read the claim and the flow, take the claim over; then lock, release and plan in one transaction
    assert run == ["SELECT", "SELECT", "UPDATE", "SELECT", "UPDATE"]
    assert outcome == Outcome.IDLE
    assert row().next_fire == due + timedelta(hours=1)


def test_stop_after_disables_the_trigger_once_its_execution_succeeds(peer: Peer) -> None:
    # given
    peer.answer(200)
    save(WAITING + "    stopAfter: [SUCCESS]\n", peer.url)
    state = first_evaluation()
    (execution,) = executions()
    # when
    ended = finished(execution.id).state
    # then: disabled, and never claimed again
    assert ended == "SUCCESS"
    assert wait_until(lambda: row().disabled)
    assert dispatch_due(now=state.next_fire + timedelta(days=1)) == 0
    assert len(peer.requests) == 1
