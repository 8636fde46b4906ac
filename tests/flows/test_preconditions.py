"""Flow trigger `preconditions`: a flow starts once a set of upstream executions ended within a time
window (UTC), as Kestra's `io.kestra.plugin.core.trigger.Flow` does.

Time windows are tested with an explicit `now` given to `on_execution_end` (the flow listening is saved
after its upstream executions ended, so their real end did not count), which works with worker
processes too; one embedded test moves the whole process's clock with time-machine instead.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine

from flows import services
from flows.models import Execution, Trigger
from flows.services.flowtriggers import on_execution_end
from flows.services.preconditions import filter_holds
from flows.services.variables import iso
from tests.fixtures.executions import Finished, finished, gate_task, wait_taskrun
from tests.fixtures.modes import PRODUCTION, ROOT
from tests.fixtures.waiting import wait_until

CONFORMANCE_FLOWS = ROOT.parent / "shared" / "conformance" / "kestra" / "flows"


def upstream(flow_id: str, labels: str = "{}", namespace: str = "company.team", tasks: str = "") -> str:
    """A flow ending in SUCCESS (FAILED with input `fail`) after `tasks` (YAML list items), if any."""
    first = textwrap.indent(textwrap.dedent(tasks).strip("\n"), "  ")
    return f"""
id: {flow_id}
namespace: {namespace}
labels: {labels}
inputs:
  - {{id: n, type: INT, defaults: 0}}
  - {{id: fail, type: BOOLEAN, defaults: false}}
tasks:
{first}
  - {{id: only, type: io.kestra.plugin.core.debug.Return, format: "{flow_id} {{{{ inputs.n }}}}"}}
  - id: maybe
    type: io.kestra.plugin.core.flow.If
    condition: "{{{{ inputs.fail }}}}"
    then:
      - {{id: boom, type: io.kestra.plugin.core.execution.Fail}}
"""


def listener(preconditions: str, extra: str = "", flow_id: str = "listen") -> str:
    """A flow in company.other whose trigger `all` has these preconditions (and `extra` properties)."""
    return f"""
id: {flow_id}
namespace: company.other
tasks:
  - id: saw
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ trigger.flowId }}}} {{{{ trigger.executionId }}}}"
triggers:
  - id: all
    type: io.kestra.plugin.core.trigger.Flow
{textwrap.indent(textwrap.dedent(extra).strip(), "    ")}
    preconditions:
{textwrap.indent(textwrap.dedent(preconditions).strip(), "      ")}
"""


BOTH = """
id: both
flows:
  - {namespace: company.team, flowId: a}
  - {namespace: company.team, flowId: b, states: [SUCCESS]}
"""


@pytest.fixture(autouse=True)
def _clear_of_midnight() -> None:
    """The default window is the UTC day: upstream executions ending on both sides of midnight would
    rightly not count together, so a test does not start in the last two minutes of a UTC day."""
    wait_until(
        lambda: datetime.now(UTC).hour < 23 or datetime.now(UTC).minute < 58,
        timeout=150,
        message="the UTC day to turn",
    )


def save(source: str) -> None:
    services.ensure_tenant("main")
    services.save_flow_revision("main", textwrap.dedent(source))


def started(flow_id: str = "listen") -> list[Execution]:
    return list(Execution.objects.filter(flow_id=flow_id).order_by("start_date", "id"))


def window(flow_id: str = "listen") -> Any:
    return Trigger.objects.get(flow_id=flow_id).window


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def run(run_flow: Callable[..., Finished], flow_id: str, labels: str = "{}", **inputs: Any) -> Execution:
    """Run an upstream flow of company.team to its end; returns its row."""
    done = run_flow(upstream(flow_id, labels), inputs=inputs)
    return Execution.objects.get(id=done.data["id"])


def ends_at(execution: Execution, when: str) -> None:
    """The end of `execution` seen by the Flow triggers as if it happened at `when` (UTC)."""
    on_execution_end(execution, now=at(when))


def conformance_flows() -> dict[str, str]:
    if not CONFORMANCE_FLOWS.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"conformance flows missing: {CONFORMANCE_FLOWS}")
        pytest.skip("../shared/conformance is not beside this clone")
    prefix = "flow-trigger-preconditions-flow"
    return {name: (CONFORMANCE_FLOWS / f"{prefix}-{name}.yaml").read_text() for name in ("listen", "a", "b")}


# ---------------------------------------------------------------- Kestra's scenario


def test_the_kestra_conformance_scenario_starts_the_listener_once(run_flow: Callable[..., Finished]) -> None:
    # given: Kestra's three flows, read as they are
    source = conformance_flows()
    save(source["listen"])
    listen = "flow-trigger-preconditions-flow-listen"
    # when: flow-a twice, then flow-b once
    runs = [run_flow(source["a"]), run_flow(source["a"]), run_flow(source["b"])]
    # then: one execution of the listener, started in the transaction that ended flow-b; it succeeds
    assert [done.state for done in runs] == ["SUCCESS", "SUCCESS", "SUCCESS"]
    (execution,) = started(listen)
    assert execution.trigger["variables"]["executionId"] == runs[2].data["id"]
    done = finished(execution.id)
    assert (done.state, done.run("only")["outputs"]) == ("SUCCESS", {"value": "It works"})
    assert started(listen) == [execution]
    assert window(listen)["results"] == {}


# ---------------------------------------------------------------- flows, states, reset


def test_one_of_two_upstream_flows_starts_nothing_and_the_window_shows_it(
    run_flow: Callable[..., Finished],
) -> None:
    # given
    save(listener(BOTH))
    # when
    a = run(run_flow, "a")
    # then: nothing starts; the default window is the UTC day of the end, flows[0] met at the end
    assert started() == []
    assert a.end_date is not None
    day = a.end_date.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    assert window() == {
        "id": "both",
        "start": iso(day),
        "end": iso(day + timedelta(days=1)),
        "results": {"flows[0]": iso(a.end_date.astimezone(UTC))},
    }
    assert Trigger.objects.get(flow_id="listen").error == ""


def test_states_of_an_upstream_flow_and_of_the_trigger_are_checked_first(
    run_flow: Callable[..., Finished],
) -> None:
    # given: b counts only when it succeeds; the trigger itself only looks at SUCCESS and FAILED
    save(listener(BOTH, extra="states: [SUCCESS, FAILED]"))
    # when: a fails (counts), b fails (does not count for flows[1])
    run(run_flow, "a", fail=True)
    run(run_flow, "b", fail=True)
    # then
    assert started() == []
    assert list(window()["results"]) == ["flows[0]"]
    # when: b succeeds
    b = run(run_flow, "b")
    # then
    (execution,) = started()
    assert execution.trigger["variables"]["executionId"] == b.id


def test_labels_of_an_upstream_flow_must_all_match(run_flow: Callable[..., Finished]) -> None:
    # given
    save(
        listener("""
        id: labelled
        flows:
          - {namespace: company.team, labels: {team: data, tier: 1}}
        """)
    )
    # when
    run(run_flow, "a", labels="{team: data}")
    run(run_flow, "b", labels="{team: ops, tier: 1}")
    # then
    assert started() == []
    assert window() is None
    # when
    c = run(run_flow, "c", labels="{team: data, tier: 1}")
    # then: any flow of the namespace with both labels
    assert [e.trigger["variables"]["executionId"] for e in started()] == [c.id]


@pytest.mark.parametrize(
    ("reset_on_success", "expected"),
    [
        # a+b fires; a alone again does not; b completes the set again
        pytest.param("true", [1, 1, 2], id="reset"),
        # a+b fires; then each a or b fires again, as long as the window keeps both results
        pytest.param("false", [1, 2, 3], id="keep"),
    ],
)
def test_reset_on_success_decides_whether_the_whole_set_must_be_met_again(
    reset_on_success: str, expected: list[int], run_flow: Callable[..., Finished]
) -> None:
    # given
    save(listener(f"{BOTH}\nresetOnSuccess: {reset_on_success}"))
    counts = []
    # when: round 1 (a, b), then a, then b
    run(run_flow, "a")
    run(run_flow, "b")
    counts.append(len(started()))
    run(run_flow, "a")
    counts.append(len(started()))
    run(run_flow, "b")
    counts.append(len(started()))
    # then
    assert counts == expected


def test_an_unrelated_execution_never_fires_a_kept_window(run_flow: Callable[..., Finished]) -> None:
    # given: a window that stays complete after firing
    save(listener(f"{BOTH}\nresetOnSuccess: false"))
    run(run_flow, "a")
    run(run_flow, "b")
    before = window()
    # when: a flow that meets no condition ends
    run(run_flow, "other")
    # then
    assert len(started()) == 1
    assert window() == before


def test_a_new_preconditions_id_starts_from_nothing(a_and_b: tuple[Execution, Execution]) -> None:
    # given: a met under the id `both`
    a, b = a_and_b
    save(listener(BOTH))
    ends_at(a, "2026-03-10T07:00:00")
    # when: the flow is saved with another id, then b ends
    save(listener(BOTH.replace("id: both", "id: renamed")))
    ends_at(b, "2026-03-10T08:00:00")
    # then: as in Kestra, whose windows are keyed by that id, a no longer counts
    assert started() == []
    assert (window()["id"], window()["results"]) == ("renamed", {"flows[1]": "2026-03-10T08:00:00Z"})


# ---------------------------------------------------------------- time windows (UTC)


@pytest.fixture
def a_and_b(run_flow: Callable[..., Finished]) -> tuple[Execution, Execution]:
    """Two ended upstream executions (a, b); no listener saw them end."""
    return run(run_flow, "a"), run(run_flow, "b")


def test_a_duration_window_starts_again_empty_in_the_next_window(
    a_and_b: tuple[Execution, Execution],
) -> None:
    # given: windows of six hours from midnight UTC
    a, b = a_and_b
    save(listener(f"{BOTH}\ntimeWindow: {{type: DURATION_WINDOW, window: PT6H}}"))
    # when: a in 06:00-12:00, b in 12:00-18:00
    ends_at(a, "2026-03-10T07:00:00")
    ends_at(b, "2026-03-10T13:00:00")
    # then
    assert started() == []
    assert window() == {
        "id": "both",
        "start": "2026-03-10T12:00:00Z",
        "end": "2026-03-10T18:00:00Z",
        "results": {"flows[1]": "2026-03-10T13:00:00Z"},
    }
    # when: a in the same window as b
    ends_at(a, "2026-03-10T17:59:59")
    # then
    assert len(started()) == 1


def test_a_duration_window_moves_by_its_advance(a_and_b: tuple[Execution, Execution]) -> None:
    # given: one-day windows from 06:00 UTC
    a, b = a_and_b
    save(listener(f"{BOTH}\ntimeWindow: {{window: P1D, windowAdvance: PT6H}}"))
    # when: a before 06:00, b after
    ends_at(a, "2026-03-10T05:00:00")
    ends_at(b, "2026-03-10T07:00:00")
    # then
    assert started() == []
    assert (window()["start"], window()["end"]) == ("2026-03-10T06:00:00Z", "2026-03-11T06:00:00Z")
    # when: a again, in b's window (at 05:00 the next day)
    ends_at(a, "2026-03-11T05:00:00")
    # then
    assert len(started()) == 1


def test_a_sliding_window_forgets_what_is_older_than_the_window(a_and_b: tuple[Execution, Execution]) -> None:
    # given
    a, b = a_and_b
    save(listener(f"{BOTH}\ntimeWindow: {{type: SLIDING_WINDOW, window: PT1H}}"))
    # when: b 59 minutes after a
    ends_at(a, "2026-03-10T10:00:00")
    ends_at(b, "2026-03-10T10:59:00")
    # then
    assert len(started()) == 1
    # when: b 61 minutes after a
    ends_at(a, "2026-03-10T12:00:00")
    ends_at(b, "2026-03-10T13:01:00")
    # then: a no longer counts
    assert len(started()) == 1
    assert window() == {
        "id": "both",
        "start": "2026-03-10T12:01:00Z",
        "end": "2026-03-10T13:01:00Z",
        "results": {"flows[1]": "2026-03-10T13:01:00Z"},
    }


def test_after_a_daily_deadline_an_end_counts_for_nothing(a_and_b: tuple[Execution, Execution]) -> None:
    # given
    a, b = a_and_b
    save(listener(f'{BOTH}\ntimeWindow: {{type: DAILY_TIME_DEADLINE, deadline: "09:00:00"}}'))
    # when: a before the deadline, b after it
    ends_at(a, "2026-03-10T08:00:00")
    ends_at(b, "2026-03-10T09:30:00")
    # then: b was not recorded
    assert started() == []
    assert window()["results"] == {"flows[0]": "2026-03-10T08:00:00Z"}
    # when: the next morning, b before the deadline (yesterday's a no longer counts), then a
    ends_at(b, "2026-03-11T08:30:00")
    assert started() == []
    ends_at(a, "2026-03-11T08:45:00")
    # then
    assert len(started()) == 1


def test_a_daily_time_window_counts_only_between_its_times(a_and_b: tuple[Execution, Execution]) -> None:
    # given
    a, b = a_and_b
    save(
        listener(
            f'{BOTH}\ntimeWindow: {{type: DAILY_TIME_WINDOW, startTime: "06:00:00", endTime: "09:00:00"}}'
        )
    )
    # when: a before the window, b inside it
    ends_at(a, "2026-03-10T05:59:59")
    ends_at(b, "2026-03-10T06:30:00")
    # then
    assert started() == []
    assert window() == {
        "id": "both",
        "start": "2026-03-10T06:00:00Z",
        "end": "2026-03-10T09:00:00Z",
        "results": {"flows[1]": "2026-03-10T06:30:00Z"},
    }
    # when: a inside it
    ends_at(a, "2026-03-10T08:59:00")
    # then
    assert len(started()) == 1


@pytest.mark.skipif(PRODUCTION, reason="time-machine moves this process's clock, not the worker processes'")
def test_the_deadline_follows_the_clock_of_the_worker_ending_the_execution(
    run_flow: Callable[..., Finished],
) -> None:
    # given
    save(listener(f'{BOTH}\ntimeWindow: {{type: DAILY_TIME_DEADLINE, deadline: "09:00:00"}}'))
    # when: both end after the deadline (the embedded worker shares this process's clock)
    with time_machine.travel(datetime(2026, 3, 10, 9, 30, tzinfo=UTC)):
        run(run_flow, "a")
        run(run_flow, "b")
    # then
    assert started() == []
    assert window() is None
    # when: both end before it the next day
    with time_machine.travel(datetime(2026, 3, 11, 8, 0, tzinfo=UTC)):
        run(run_flow, "a")
        run(run_flow, "b")
    # then
    (execution,) = started()
    assert execution.start_date.date() == datetime(2026, 3, 11).date()


# ---------------------------------------------------------------- where filters


def test_where_filters_on_every_field(run_flow: Callable[..., Finished]) -> None:
    # given: one condition per field, all to meet
    save(
        listener("""
        id: fields
        where:
          - id: by_flow
            filters: [{field: FLOW_ID, type: IN, values: [a, z]}]
          - id: by_namespace
            filters: [{field: NAMESPACE, type: REGEX, value: "company\\\\.t.*"}]
          - id: by_state
            filters: [{field: STATE, type: EQUAL_TO, value: FAILED}]
          - id: by_expression
            filters:
              - field: EXPRESSION
                type: IS_TRUE
                value: "{{ execution.flowId == 'c' and inputs.n == 3 and outputs.only.value == 'c 3' and flow.id == 'listen' and trigger.state == 'SUCCESS' and labels.team == 'data' }}"
        """)
    )
    # when: a (by_flow, by_namespace), b failing (by_namespace, by_state)
    run(run_flow, "a")
    run(run_flow, "b", fail=True)
    # then
    assert started() == []
    assert sorted(window()["results"]) == ["where[0]", "where[1]", "where[2]"]
    # when: c with the expected input, output and label
    run(run_flow, "c", labels="{team: data}", n=3)
    # then
    assert len(started()) == 1


@pytest.mark.parametrize(("operand", "expected"), [("AND", ["a_ops"]), ("OR", ["a_data", "ops", "a_ops"])])
def test_the_operand_joins_the_filters_of_a_condition(
    operand: str, expected: list[str], run_flow: Callable[..., Finished]
) -> None:
    # given: a single condition, so each execution meeting it fires the trigger
    save(
        listener(f"""
        id: one
        where:
          - id: ops
            operand: {operand}
            filters:
              - {{field: FLOW_ID, type: STARTS_WITH, value: "a_"}}
              - {{field: EXPRESSION, type: IS_TRUE, value: "{{{{ labels.team == 'ops' }}}}"}}
        """)
    )
    # when
    for flow_id, team in (("a_data", "data"), ("ops", "ops"), ("data", "data"), ("a_ops", "ops")):
        run(run_flow, flow_id, labels=f"{{team: {team}}}")
    # then
    assert [e.trigger["variables"]["flowId"] for e in started()] == expected


def test_a_failing_expression_is_recorded_on_the_trigger_and_the_upstream_end_stands(
    run_flow: Callable[..., Finished],
) -> None:
    # given: an expression on a label the upstream flow does not carry
    save(
        listener("""
        id: strict
        where:
          - id: team
            filters: [{field: EXPRESSION, type: IS_TRUE, value: "{{ labels.team == 'ops' }}"}]
        """)
    )
    # when
    a = run(run_flow, "a")
    # then
    assert a.state == "SUCCESS"
    assert started() == []
    row = Trigger.objects.get(flow_id="listen")
    assert row.error.startswith(f"after execution {a.id}: ")
    assert "team" in row.error
    assert row.window is None


@pytest.mark.parametrize(
    ("field_value", "filter_type", "value", "values", "expected"),
    [
        ("a", "EQUAL_TO", "a", None, True),
        ("a", "EQUAL_TO", "b", None, False),
        (None, "EQUAL_TO", "a", None, False),
        ("a", "NOT_EQUAL_TO", "b", None, True),
        ("a", "NOT_EQUAL_TO", "a", None, False),
        ("a", "IN", None, ["a", "b"], True),
        ("c", "IN", None, ["a", "b"], False),
        ("1", "IN", None, [1, 2], True),
        ("c", "NOT_IN", None, ["a", "b"], True),
        ("a", "NOT_IN", None, ["a", "b"], False),
        ("true", "IS_TRUE", "{{ x }}", None, True),
        ("yes", "IS_TRUE", "{{ x }}", None, True),
        ("false", "IS_TRUE", "{{ x }}", None, False),
        ("0", "IS_TRUE", "{{ x }}", None, False),
        ("", "IS_TRUE", "{{ x }}", None, False),
        (None, "IS_TRUE", "{{ x }}", None, False),
        ("false", "IS_FALSE", "{{ x }}", None, True),
        ("true", "IS_FALSE", "{{ x }}", None, False),
        (None, "IS_NULL", None, None, True),
        ("", "IS_NULL", None, None, False),
        ("a", "IS_NOT_NULL", None, None, True),
        (None, "IS_NOT_NULL", None, None, False),
        ("company.team", "STARTS_WITH", "company", None, True),
        ("company.team", "STARTS_WITH", "team", None, False),
        (None, "STARTS_WITH", "team", None, False),
        ("company.team", "ENDS_WITH", ".team", None, True),
        ("company.team", "ENDS_WITH", "company", None, False),
        ("company.team", "REGEX", "company\\..*", None, True),
        ("company.team", "REGEX", "company", None, False),  # the whole value must match, as Java's matches()
        (None, "REGEX", ".*", None, False),
        ("company.team", "CONTAINS", "y.t", None, True),
        ("company.team", "CONTAINS", "ops", None, False),
    ],
)
def test_filter_types(
    field_value: str | None, filter_type: str, value: Any, values: list[Any] | None, expected: bool
) -> None:
    assert filter_holds(field_value, filter_type, value, values) is expected


# ---------------------------------------------------------------- concurrency and cost


def test_upstream_executions_ending_at_once_are_all_recorded_and_start_the_flow_once(
    start_flow: Callable[..., str], tmp_path: Path
) -> None:
    # given: four upstream flows all required, each held by a task until the gate opens
    gate = tmp_path / "gate"
    flows = ["a", "b", "c", "d"]
    save(
        listener(
            "id: four\nflows:\n"
            + "".join(f"  - {{namespace: company.team, flowId: {flow_id}}}\n" for flow_id in flows)
        )
    )
    ids = [start_flow(upstream(flow_id, tasks=gate_task("hold", gate))) for flow_id in flows]
    for id_ in ids:
        wait_taskrun(id_, "hold", "RUNNING", timeout=60)
    # when: the gate opens: the four end together (on several worker threads or processes)
    gate.touch()
    ends = [finished(id_) for id_ in ids]
    # then: no result was lost, so the flow started, and only once
    assert [done.state for done in ends] == ["SUCCESS"] * 4
    (execution,) = started()
    assert finished(execution.id).state == "SUCCESS"
    assert window()["results"] == {}
    assert Trigger.objects.get(flow_id="listen").error == ""


# Measured: 6 (the trigger rows, the listening flow, savepoint, lock, window update, release).
MAX_QUERIES_PER_PRECONDITION = 6


def test_recording_a_precondition_costs_a_bounded_number_of_queries(
    a_and_b: tuple[Execution, Execution], django_assert_max_num_queries: Any
) -> None:
    # given
    a, _ = a_and_b
    save(listener(BOTH))
    # when / then
    with django_assert_max_num_queries(MAX_QUERIES_PER_PRECONDITION):
        ends_at(a, "2026-03-10T07:00:00")
    assert list(window()["results"]) == ["flows[0]"]
