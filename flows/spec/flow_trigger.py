"""Flow triggers (`io.kestra.plugin.core.trigger.Flow`): validation of their `states` and
`preconditions`, and the time windows in which preconditions are counted.

All window arithmetic is in UTC:
- DURATION_WINDOW: consecutive windows of `window` (default one day) counted from midnight UTC
  (1970-01-01, plus `windowAdvance`), so `PT6H` gives 00:00-06:00, 06:00-12:00, ... every day;
- SLIDING_WINDOW: the last `window` (default one day) before now;
- DAILY_TIME_DEADLINE: from midnight to `deadline` every day; after the deadline no window is open;
- DAILY_TIME_WINDOW: from `startTime` to `endTime` every day (past midnight when the end is not after
  the start); outside it no window is open.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Literal, get_args

from flows.engine.states import State
from flows.spec.durations import parse_duration
from flows.spec.marked_yaml import MarkedDict

if TYPE_CHECKING:
    from flows.spec.loader import _Checker

FLOW_TRIGGER_TYPES = ("io.kestra.plugin.core.trigger.Flow", "io.kestra.core.models.triggers.types.Flow")

FilterField = Literal["FLOW_ID", "NAMESPACE", "STATE", "EXPRESSION"]
FilterType = Literal[
    "EQUAL_TO", "NOT_EQUAL_TO", "IN", "NOT_IN", "IS_TRUE", "IS_FALSE", "IS_NULL", "IS_NOT_NULL",
    "STARTS_WITH", "ENDS_WITH", "REGEX", "CONTAINS",
]  # fmt: skip
WindowType = Literal["DURATION_WINDOW", "SLIDING_WINDOW", "DAILY_TIME_DEADLINE", "DAILY_TIME_WINDOW"]

FILTER_FIELDS: tuple[str, ...] = get_args(FilterField)
FILTER_TYPES: tuple[str, ...] = get_args(FilterType)
WINDOW_TYPES: tuple[str, ...] = get_args(WindowType)
OPERANDS = ("AND", "OR")
# IN and NOT_IN compare with `values`; every other type needs `value` (the expression itself for an
# EXPRESSION field) except the tests of the field alone.
LIST_FILTER_TYPES = frozenset({"IN", "NOT_IN"})
_UNARY_FILTER_TYPES = frozenset({"IS_TRUE", "IS_FALSE", "IS_NULL", "IS_NOT_NULL"})

DEFAULT_WINDOW = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIME = re.compile(r"(?P<hour>\d{2}):(?P<minute>\d{2})(?::(?P<second>\d{2})(?:\.(?P<fraction>\d{1,9}))?)?")

_PRECONDITION_KEYS = ("id", "flows", "where", "timeWindow", "resetOnSuccess")
_UPSTREAM_FLOW_KEYS = ("namespace", "flowId", "states", "labels")
_WHERE_KEYS = ("id", "operand", "filters")
_FILTER_KEYS = ("field", "type", "value", "values")
# The properties each window type takes (Kestra refuses the others, so do we).
_WINDOW_PROPERTIES: dict[str, tuple[str, ...]] = {
    "DURATION_WINDOW": ("window", "windowAdvance"),
    "SLIDING_WINDOW": ("window",),
    "DAILY_TIME_DEADLINE": ("deadline",),
    "DAILY_TIME_WINDOW": ("startTime", "endTime"),
}
_WINDOW_KEYS = tuple(dict.fromkeys(key for keys in _WINDOW_PROPERTIES.values() for key in keys))
_WINDOW_REQUIRED: dict[str, tuple[str, ...]] = {
    "DAILY_TIME_DEADLINE": ("deadline",),
    "DAILY_TIME_WINDOW": ("startTime", "endTime"),
}
_ID_PATTERN = r"[a-zA-Z0-9][a-zA-Z0-9_-]*"
_STATE_NAMES = tuple(state.value for state in State)


def parse_time_of_day(value: Any) -> time:
    """Parse a time of day written `HH:MM` or `HH:MM:SS[.fraction]` (Java's `LocalTime`).

    Raises `ValueError` for anything else.
    """
    match = _TIME.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"expected a time of day like '09:00:00', got {value!r}")
    fraction = (match["fraction"] or "").ljust(6, "0")[:6]
    try:
        return time(int(match["hour"]), int(match["minute"]), int(match["second"] or 0), int(fraction))
    except ValueError:
        raise ValueError(f"expected a time of day like '09:00:00', got {value!r}") from None


@dataclass(frozen=True)
class TimeWindow:
    """A precondition's `timeWindow`, read from a validated flow."""

    type: WindowType = "DURATION_WINDOW"
    window: timedelta = DEFAULT_WINDOW
    advance: timedelta = timedelta(0)
    deadline: time | None = None
    start_time: time | None = None
    end_time: time | None = None

    @classmethod
    def of(cls, data: Mapping[str, Any] | None) -> TimeWindow:
        """The window a validated `timeWindow` mapping describes (None: one day from midnight UTC)."""
        data = data or {}

        def clock(key: str) -> time | None:
            return parse_time_of_day(data[key]) if data.get(key) is not None else None

        return cls(
            type=data.get("type") or "DURATION_WINDOW",
            window=parse_duration(data["window"]) if data.get("window") is not None else DEFAULT_WINDOW,
            advance=parse_duration(data["windowAdvance"]) if data.get("windowAdvance") else timedelta(0),
            deadline=clock("deadline"),
            start_time=clock("startTime"),
            end_time=clock("endTime"),
        )

    def bounds(self, now: datetime) -> tuple[datetime, datetime] | None:
        """The (start, end) in UTC of the window `now` falls in; None when no window is open then.

        A condition met before `start` no longer counts.
        """
        now = now.astimezone(UTC)
        if self.type == "SLIDING_WINDOW":
            return now - self.window, now
        if self.type == "DURATION_WINDOW":
            origin = _EPOCH + self.advance
            start = origin + ((now - origin) // self.window) * self.window
            return start, start + self.window
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        if self.type == "DAILY_TIME_DEADLINE":
            assert self.deadline is not None  # validated by the loader
            deadline = midnight + _since_midnight(self.deadline)
            return (midnight, deadline) if now < deadline else None
        assert self.start_time is not None and self.end_time is not None  # validated by the loader
        start = midnight + _since_midnight(self.start_time)
        end = midnight + _since_midnight(self.end_time)
        if end <= start:  # the window goes past midnight: 22:00 to 02:00
            if now >= start:
                return start, end + timedelta(days=1)
            return (start - timedelta(days=1), end) if now < end else None
        return (start, end) if start <= now < end else None


def _since_midnight(value: time) -> timedelta:
    return timedelta(
        hours=value.hour, minutes=value.minute, seconds=value.second, microseconds=value.microsecond
    )


def condition_keys(preconditions: Mapping[str, Any]) -> list[str]:
    """Keys of a precondition's conditions in its window's results: `flows[0]`, ..., `where[0]`, ..."""
    flows = preconditions.get("flows") or []
    where = preconditions.get("where") or []
    return [f"flows[{index}]" for index in range(len(flows))] + [
        f"where[{index}]" for index in range(len(where))
    ]


# ---------------------------------------------------------------- validation


def check_flow_trigger(checker: _Checker, data: MarkedDict, path: str) -> None:
    """Report what is wrong with a Flow trigger at `path` through `checker`."""
    check_states(checker, data, "states", path)
    if data.get("preconditions") is None:
        return
    preconditions = checker.mapping(data, "preconditions", f"{path}.preconditions")
    if preconditions is not None:
        _check_preconditions(checker, preconditions, f"{path}.preconditions")


def check_states(checker: _Checker, data: MarkedDict, key: str, path: str) -> None:
    """`key` (`states`, `stopAfter`): a list of execution states."""
    states = checker.sequence(data, key, path)
    if states is None:
        return
    for index, state in enumerate(states):
        if state not in _STATE_NAMES:
            checker.add(
                f"{path}.{key}[{index}]",
                f"must be an execution state ({', '.join(_STATE_NAMES)}), got {state!r}",
                states.mark_of(index),
            )


def _check_preconditions(checker: _Checker, data: MarkedDict, path: str) -> None:
    checker.unknown_keys(data, path, _PRECONDITION_KEYS)
    checker.identifier(data, "id", path, f"^{_ID_PATTERN}")
    checker.boolean(data, "resetOnSuccess", path, default=True)
    flows = checker.sequence(data, "flows", path)
    where = checker.sequence(data, "where", path)
    if not data.get("flows") and not data.get("where"):
        checker.add(path, "must have `flows` or `where` (at least one condition)", data.mark)
    for index, _ in enumerate(flows or ()):
        item = checker.mapping(flows, index, f"{path}.flows[{index}]")
        if item is not None:
            _check_upstream_flow(checker, item, f"{path}.flows[{index}]")
    for index, _ in enumerate(where or ()):
        item = checker.mapping(where, index, f"{path}.where[{index}]")
        if item is not None:
            _check_where(checker, item, f"{path}.where[{index}]")
    if data.get("timeWindow") is not None:
        window = checker.mapping(data, "timeWindow", f"{path}.timeWindow")
        if window is not None:
            _check_time_window(checker, window, f"{path}.timeWindow")


def _check_upstream_flow(checker: _Checker, data: MarkedDict, path: str) -> None:
    checker.unknown_keys(data, path, _UPSTREAM_FLOW_KEYS)
    checker.string(data, "namespace", path, required=True)
    checker.string(data, "flowId", path)
    check_states(checker, data, "states", path)
    if data.get("labels") is not None:
        checker.mapping(data, "labels", f"{path}.labels", "a mapping of label keys to values")


def _check_where(checker: _Checker, data: MarkedDict, path: str) -> None:
    checker.unknown_keys(data, path, _WHERE_KEYS)
    checker.string(data, "id", path, required=True)
    checker.choice(data, "operand", path, OPERANDS, "AND")
    filters = checker.sequence(data, "filters", path)
    if not filters:
        checker.add(f"{path}.filters", "must have at least one filter", data.key_mark_of("filters"))
    for index, _ in enumerate(filters or ()):
        item = checker.mapping(filters, index, f"{path}.filters[{index}]")
        if item is not None:
            _check_filter(checker, item, f"{path}.filters[{index}]")


def _check_filter(checker: _Checker, data: MarkedDict, path: str) -> None:
    checker.unknown_keys(data, path, _FILTER_KEYS)
    for key in ("field", "type"):
        if data.get(key) is None:
            checker.add(f"{path}.{key}", "missing required property", data.key_mark_of(key))
    field = checker.choice(data, "field", path, FILTER_FIELDS, None)
    filter_type = checker.choice(data, "type", path, FILTER_TYPES, None)
    value = checker.string(data, "value", path)
    values = checker.sequence(data, "values", path)
    if values is not None:
        for index, item in enumerate(values):
            if isinstance(item, dict | list) or item is None:
                checker.add(f"{path}.values[{index}]", "must be a string", values.mark_of(index))
    if filter_type is None or field is None:
        return
    if filter_type in LIST_FILTER_TYPES:
        if data.get("values") is None:
            checker.add(f"{path}.values", f"missing required property for type {filter_type}", data.mark)
        if data.get("value") is not None:
            checker.add(
                f"{path}.value",
                f"must not be set for type {filter_type}: use `values`",
                data.mark_of("value"),
            )
        return
    if data.get("values") is not None:
        checker.add(
            f"{path}.values", f"must not be set for type {filter_type}: use `value`", data.mark_of("values")
        )
    needs_value = field == "EXPRESSION" or filter_type not in _UNARY_FILTER_TYPES
    if needs_value and data.get("value") is None:
        what = "the expression" if field == "EXPRESSION" else "the value to compare with"
        checker.add(f"{path}.value", f"missing required property ({what}) for type {filter_type}", data.mark)
    if filter_type == "REGEX" and value is not None:
        try:
            re.compile(value)
        except re.error as error:
            checker.add(f"{path}.value", f"invalid regular expression: {error}", data.mark_of("value"))


def _check_time_window(checker: _Checker, data: MarkedDict, path: str) -> None:
    checker.unknown_keys(data, path, ("type", *_WINDOW_KEYS))
    window_type = checker.choice(data, "type", path, WINDOW_TYPES, None)
    window = checker.duration(data, "window", path)
    if window is not None and window <= timedelta(0):
        checker.add(f"{path}.window", "must be longer than zero", data.mark_of("window"))
    checker.duration(data, "windowAdvance", path)
    for key in ("deadline", "startTime", "endTime"):
        if data.get(key) is not None:
            try:
                parse_time_of_day(data[key])
            except ValueError as error:
                checker.add(f"{path}.{key}", str(error), data.mark_of(key))
    if window_type is None and data.get("type") is not None:
        return  # an unknown type, already reported
    window_type = window_type or "DURATION_WINDOW"
    for key in _WINDOW_REQUIRED.get(window_type, ()):
        if data.get(key) is None:
            checker.add(f"{path}.{key}", f"missing required property for a {window_type}", data.mark)
    for key in data:
        if key in _WINDOW_KEYS and key not in _WINDOW_PROPERTIES[window_type]:
            checker.add(f"{path}.{key}", f"not a property of a {window_type}", data.key_mark_of(key))
