"""Flow trigger `preconditions` in the loader (errors with path and line) and their time windows (UTC)."""

from __future__ import annotations

from datetime import UTC, datetime, time
from textwrap import dedent, indent
from zoneinfo import ZoneInfo

import pytest

from flows.errors import FlowValidationError, Violation
from flows.spec import load_flow
from flows.spec.flow_trigger import TimeWindow, condition_keys, parse_time_of_day
from tests.spec.conftest import FakeRegistry

FLOW = "io.kestra.plugin.core.trigger.Flow"
HEADER_LINES = 7  # the trigger's own properties start on line 8


def flow_with(trigger: str) -> str:
    """A flow whose only trigger is a Flow trigger with these properties (line 8 onwards)."""
    return dedent(f"""\
        id: listen
        namespace: company.team
        tasks:
          - {{id: only, type: io.kestra.plugin.core.log.Log, message: hi}}
        triggers:
          - id: upstream
            type: {FLOW}
        """) + indent(dedent(trigger), "    ")


def violations(source: str, registry: FakeRegistry) -> list[Violation]:
    with pytest.raises(FlowValidationError) as error:
        load_flow(source, registry)
    return error.value.violations


P = "triggers[0].preconditions"


def test_a_valid_precondition_loads_as_written(registry: FakeRegistry) -> None:
    # given
    source = flow_with("""\
        states: [SUCCESS, FAILED]
        preconditions:
          id: both
          resetOnSuccess: false
          flows:
            - {namespace: company.team, flowId: a, states: [SUCCESS], labels: {team: data}}
          where:
            - id: b
              operand: OR
              filters:
                - {field: FLOW_ID, type: IN, values: [b, c]}
                - {field: EXPRESSION, type: IS_TRUE, value: "{{ labels.x == 'y' }}"}
                - {field: NAMESPACE, type: IS_NOT_NULL}
                - {field: STATE, type: REGEX, value: "SUCC.*"}
          timeWindow: {type: DAILY_TIME_WINDOW, startTime: "06:00:00", endTime: "09:30"}
        """)
    # when
    flow = load_flow(source, registry)
    # then
    preconditions = flow.triggers[0]["preconditions"]
    assert preconditions["timeWindow"] == {
        "type": "DAILY_TIME_WINDOW",
        "startTime": "06:00:00",
        "endTime": "09:30",
    }
    assert condition_keys(preconditions) == ["flows[0]", "where[0]"]


def filters(*items: str) -> str:
    """Preconditions with one `where` condition of these filters (the first on line 13)."""
    return "preconditions:\n  id: p\n  where:\n    - id: w\n      filters:\n" + "".join(
        f"        - {item}\n" for item in items
    )


def time_window(window: str) -> str:
    """Preconditions on one upstream flow with this `timeWindow` (on line 11)."""
    return f"preconditions:\n  id: p\n  flows: [{{namespace: company.team}}]\n  timeWindow: {window}\n"


STATE_NAMES = (
    "CREATED, SUBMITTED, QUEUED, RUNNING, PAUSED, RESTARTED, KILLING, SUCCESS, WARNING, FAILED, KILLED, "
    "CANCELLED, RETRYING, RETRIED, SKIPPED"
)
F = f"{P}.where[0].filters"
W = f"{P}.timeWindow"
# (the trigger's properties, then every violation as (path, message, line))
INVALID: dict[str, tuple[str, list[tuple[str, str, int]]]] = {
    "no-id": (
        "preconditions:\n  flows: [{namespace: company.team, flowId: a}]\n",
        [(f"{P}.id", "missing required property", 9)],
    ),
    "neither-flows-nor-where": (
        "preconditions:\n  id: nothing\n  timeWindow: {type: SLIDING_WINDOW}\n",
        [(P, "must have `flows` or `where` (at least one condition)", 9)],
    ),
    "flow-without-namespace-and-unknown-state": (
        "preconditions:\n  id: p\n  flows:\n    - {flowId: a, states: [DONE]}\n",
        [
            (f"{P}.flows[0].namespace", "missing required property", 11),
            (f"{P}.flows[0].states[0]", f"must be an execution state ({STATE_NAMES}), got 'DONE'", 11),
        ],
    ),
    "unknown-trigger-state": (
        "states: [SUCCESS, ENDED]\npreconditions:\n  id: p\n  flows: [{namespace: company.team}]\n",
        [("triggers[0].states[1]", f"must be an execution state ({STATE_NAMES}), got 'ENDED'", 8)],
    ),
    "unknown-field-and-type": (
        filters("{field: LABEL, type: EQUAL_TO, value: x}", "{field: FLOW_ID, type: LIKE, value: x}"),
        [
            (f"{F}[0].field", "must be one of FLOW_ID, NAMESPACE, STATE, EXPRESSION, got 'LABEL'", 13),
            (
                f"{F}[1].type",
                "must be one of EQUAL_TO, NOT_EQUAL_TO, IN, NOT_IN, IS_TRUE, IS_FALSE, IS_NULL, IS_NOT_NULL, "
                "STARTS_WITH, ENDS_WITH, REGEX, CONTAINS, got 'LIKE'",
                14,
            ),
        ],
    ),
    "in-without-values": (
        filters("{field: FLOW_ID, type: IN, value: a}"),
        [
            (f"{F}[0].values", "missing required property for type IN", 13),
            (f"{F}[0].value", "must not be set for type IN: use `values`", 13),
        ],
    ),
    "value-missing-or-misplaced": (
        filters(
            "{field: NAMESPACE, type: STARTS_WITH}",
            "{field: EXPRESSION, type: IS_TRUE}",
            "{field: FLOW_ID, type: EQUAL_TO, value: a, values: [a]}",
            "{field: STATE, type: IS_NULL}",  # a test of the field alone: no value needed
        ),
        [
            (
                f"{F}[0].value",
                "missing required property (the value to compare with) for type STARTS_WITH",
                13,
            ),
            (f"{F}[1].value", "missing required property (the expression) for type IS_TRUE", 14),
            (f"{F}[2].values", "must not be set for type EQUAL_TO: use `value`", 15),
        ],
    ),
    "bad-regex": (
        filters('{field: FLOW_ID, type: REGEX, value: "a("}'),
        [
            (
                f"{F}[0].value",
                "invalid regular expression: missing ), unterminated subpattern at position 1",
                13,
            )
        ],
    ),
    "bad-operand-and-no-filters": (
        "preconditions:\n  id: p\n  where:\n    - id: w\n      operand: XOR\n      filters: []\n",
        [
            (f"{P}.where[0].operand", "must be one of AND, OR, got 'XOR'", 12),
            (f"{P}.where[0].filters", "must have at least one filter", 13),
        ],
    ),
    "unknown-window-type": (
        time_window("{type: WEEKLY}"),
        [
            (
                f"{W}.type",
                "must be one of DURATION_WINDOW, SLIDING_WINDOW, DAILY_TIME_DEADLINE, DAILY_TIME_WINDOW, "
                "got 'WEEKLY'",
                11,
            )
        ],
    ),
    "bad-duration": (
        time_window("{window: 6 hours, windowAdvance: PT0S}"),
        [
            (
                f"{W}.window",
                "invalid ISO-8601 duration '6 hours': expected a value like 'PT30S', 'PT1H30M' or 'P1D'",
                11,
            )
        ],
    ),
    "empty-window": (
        time_window("{type: SLIDING_WINDOW, window: PT0S}"),
        [(f"{W}.window", "must be longer than zero", 11)],
    ),
    "deadline-missing": (
        time_window("{type: DAILY_TIME_DEADLINE, window: PT1H}"),
        [
            (f"{W}.deadline", "missing required property for a DAILY_TIME_DEADLINE", 11),
            (f"{W}.window", "not a property of a DAILY_TIME_DEADLINE", 11),
        ],
    ),
    "end-time-missing": (
        time_window('{type: DAILY_TIME_WINDOW, startTime: "06:00:00"}'),
        [(f"{W}.endTime", "missing required property for a DAILY_TIME_WINDOW", 11)],
    ),
    "bad-time": (
        time_window('{type: DAILY_TIME_DEADLINE, deadline: "25:00:00"}'),
        [(f"{W}.deadline", "expected a time of day like '09:00:00', got '25:00:00'", 11)],
    ),
}


@pytest.mark.parametrize(("trigger", "expected"), INVALID.values(), ids=INVALID.keys())
def test_an_invalid_precondition_is_rejected_with_path_and_line(
    trigger: str, expected: list[tuple[str, str, int]], registry: FakeRegistry
) -> None:
    # given
    source = flow_with(trigger)
    # when
    found = violations(source, registry)
    # then: (path, message, line), in document order
    assert [(v.path, v.message, v.line) for v in found] == expected


def test_the_window_types_are_checked_on_their_line(registry: FakeRegistry) -> None:
    # given: the line counts from the flow's first line, the column points at the value
    source = flow_with("""\
        preconditions:
          id: p
          flows: [{namespace: company.team}]
          timeWindow:
            type: DAILY_TIME_WINDOW
            startTime: "6am"
            endTime: "09:00:00"
        """)
    # when
    (found,) = violations(source, registry)
    # then
    assert found == Violation(
        f"{P}.timeWindow.startTime", "expected a time of day like '09:00:00', got '6am'", HEADER_LINES + 6, 20
    )


# ---------------------------------------------------------------- time windows (all UTC)


def at(text: str) -> datetime:
    """A UTC moment of March 2026 written `DDTHH:MM[:SS]`, or a full ISO date-time."""
    return datetime.fromisoformat(text if "-" in text else f"2026-03-{text}").replace(tzinfo=UTC)


DEADLINE = {"type": "DAILY_TIME_DEADLINE", "deadline": "09:00:00"}
MORNING = {"type": "DAILY_TIME_WINDOW", "startTime": "06:00:00", "endTime": "09:00:00"}
OVERNIGHT = {"type": "DAILY_TIME_WINDOW", "startTime": "22:00", "endTime": "02:00"}
# (timeWindow, now, expected start and end; None: no window is open then)
WINDOWS = {
    "default-day": ({}, "10T15:20", ("10T00:00", "11T00:00")),
    "six-hours": ({"window": "PT6H"}, "10T07:00", ("10T06:00", "10T12:00")),
    "first-six-hours": ({"window": "PT6H"}, "10T05:59:59", ("10T00:00", "10T06:00")),
    "advance-not-reached": ({"window": "P1D", "windowAdvance": "PT6H"}, "10T03:00", ("09T06:00", "10T06:00")),
    "advance-three-hours": (
        {"window": "PT6H", "windowAdvance": "PT3H"},
        "10T10:00",
        ("10T09:00", "10T15:00"),
    ),
    "ten-minutes": ({"window": "PT10M"}, "10T10:25", ("10T10:20", "10T10:30")),
    "sliding": ({"type": "SLIDING_WINDOW", "window": "PT1H"}, "10T10:25", ("10T09:25", "10T10:25")),
    "before-deadline": (DEADLINE, "10T08:59:59", ("10T00:00", "10T09:00")),
    "at-deadline": (DEADLINE, "10T09:00", None),
    "daily-window-open": (MORNING, "10T06:00", ("10T06:00", "10T09:00")),
    "daily-window-not-yet": (MORNING, "10T05:59", None),
    "overnight-after-midnight": (OVERNIGHT, "10T01:00", ("09T22:00", "10T02:00")),
    "overnight-before-midnight": (OVERNIGHT, "10T23:00", ("10T22:00", "11T02:00")),
    "overnight-closed": (OVERNIGHT, "10T12:00", None),
}


@pytest.mark.parametrize(("window", "now", "expected"), WINDOWS.values(), ids=WINDOWS.keys())
def test_window_bounds(window: dict[str, str], now: str, expected: tuple[str, str] | None) -> None:
    # when
    bounds = TimeWindow.of(window).bounds(at(now))
    # then
    assert bounds == (None if expected is None else (at(expected[0]), at(expected[1])))


def test_a_window_is_computed_in_utc_whatever_the_zone_of_now() -> None:
    # given: 01:30 in Paris (winter time) is 00:30 UTC, in the first six hours of the UTC day
    now = datetime(2026, 3, 10, 1, 30, tzinfo=ZoneInfo("Europe/Paris"))
    # when
    bounds = TimeWindow.of({"window": "PT6H"}).bounds(now)
    # then
    assert bounds == (at("10T00:00"), at("10T06:00"))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("09:00:00", time(9)), ("23:59", time(23, 59)), ("00:00:01.5", time(0, 0, 1, 500000))],
)
def test_a_time_of_day_is_read_as_java_reads_it(text: str, expected: time) -> None:
    assert parse_time_of_day(text) == expected


@pytest.mark.parametrize("text", ["9:00", "24:00:00", "09:60", "09:00:00Z", 900])
def test_a_malformed_time_of_day_is_refused(text: object) -> None:
    with pytest.raises(ValueError, match="time of day"):
        parse_time_of_day(text)
