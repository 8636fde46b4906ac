"""Trigger conditions (`conditions:` of Schedule, Webhook and Flow triggers): their kinds and what a
valid one looks like. Pure: for the loader (`check_condition`), and for the services, which check a
condition again before they evaluate it (a flow stored before a check existed fails clearly too)."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flows.errors import Violation
from flows.spec.marked_yaml import join_path, mark_of, violation

EXPRESSION_KINDS = ("Expression", "Variable")
EXECUTION_KINDS = ("ExecutionFlow", "ExecutionNamespace", "ExecutionStatus", "ExecutionLabels")
DATE_KINDS = ("DayWeek", "DayWeekInMonth", "Weekend", "DateTimeBetween", "TimeBetween", "PublicHoliday")
LOGIC_KINDS = ("Not", "Or")
DAYS_OF_WEEK = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
DAYS_IN_MONTH = ("FIRST", "SECOND", "THIRD", "FOURTH", "LAST")
COMPARISONS = ("EQUALS", "PREFIX", "SUFFIX")
_ZONE_SUFFIX = re.compile(r"\[([^\]]+)\]$")


def condition_kind(type_name: Any) -> str:
    """`io.kestra.plugin.core.condition.DayWeek` and its legacy names
    (`io.kestra.core.models.conditions.types.DayWeekCondition`, ...) are all `DayWeek`."""
    return str(type_name or "").rsplit(".", 1)[-1].removesuffix("Condition")


def parse_instant(value: Any) -> datetime:
    """An ISO date-time with its offset (`2026-07-14T10:00:00+02:00`, `...Z`), optionally followed by
    a zone as Java writes it (`...+02:00[Europe/Paris]`). Raises ValueError."""
    text = str(value).strip()
    suffix = _ZONE_SUFFIX.search(text)
    if suffix:
        text = text[: suffix.start()]
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no offset (write it like 2026-07-14T10:00:00+02:00 or ...Z)")
    if suffix:
        try:
            parsed = parsed.astimezone(ZoneInfo(suffix.group(1)))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone in {value!r}") from None
    return parsed


def parse_time(value: Any) -> time:
    """An ISO time, with an offset (`08:00:00+02:00`, `08:00Z`) or without one (read on the wall
    clock of the date it is compared with). Raises ValueError."""
    return time.fromisoformat(str(value).strip())


def check_condition(data: Any, path: str, *, with_execution: bool) -> list[Violation]:
    """What is wrong with the condition `data` found at `path` (`triggers[0].conditions[1]`), nested
    ones included; empty when it is valid. `with_execution`: the trigger has an ended execution to
    test (Flow triggers), so the execution conditions are allowed."""
    return [violation for _, violation in condition_problems(data, path, with_execution=with_execution)]


def condition_problems(data: Any, path: str, *, with_execution: bool) -> list[tuple[str, Violation]]:
    """`check_condition` with, for each violation, the kind of the condition it is about."""
    if not isinstance(data, Mapping):
        return [("", violation(path, "a condition must be a mapping with a `type`", None))]
    kind = condition_kind(data.get("type"))
    found = _Found(data, path, kind)
    if not data.get("type"):
        found.add("type", "missing required property")
    elif kind in EXECUTION_KINDS and not with_execution:
        found.add("type", f"{kind} tests an ended execution: only Flow triggers have one")
    elif kind in EXPRESSION_KINDS:
        found.required("expression")
    elif kind in EXECUTION_KINDS:
        _check_execution(found)
    elif kind in DATE_KINDS:
        _check_date(found)
    elif kind in LOGIC_KINDS:
        nested = data.get("conditions")
        if not isinstance(nested, list) or not nested:
            found.add("conditions", "must be a non-empty list of conditions")
        else:
            for index, item in enumerate(nested):
                where = f"{join_path(path, 'conditions')}[{index}]"
                found.problems.extend(condition_problems(item, where, with_execution=with_execution))
    else:
        found.add("type", f"unsupported condition type `{data.get('type')}`")
    return found.problems


class _Found:
    """The problems of one condition, each with the position of its property."""

    def __init__(self, data: Mapping[str, Any], path: str, kind: str) -> None:
        self.data, self.path, self.kind = data, path, kind
        self.problems: list[tuple[str, Violation]] = []

    def add(self, key: str, message: str) -> None:
        self.problems.append(
            (self.kind, violation(join_path(self.path, key), message, mark_of(self.data, key)))
        )

    def required(self, key: str) -> Any:
        value = self.data.get(key)
        if value is None or value == "":
            self.add(key, "missing required property")
        return value

    def choice(self, key: str, choices: tuple[str, ...]) -> None:
        value = self.required(key)
        if value is not None and value != "" and value not in choices:
            self.add(key, f"must be one of {', '.join(choices)}, got {value!r}")


def _check_execution(found: _Found) -> None:
    if found.kind == "ExecutionFlow":
        found.required("namespace")
        found.required("flowId")
    elif found.kind == "ExecutionNamespace":
        found.required("namespace")
        if found.data.get("comparison") is not None:
            found.choice("comparison", COMPARISONS)
    elif found.kind == "ExecutionLabels":
        found.required("labels")


def _check_date(found: _Found) -> None:
    data = found.data
    written = data.get("date")
    if written is not None and not isinstance(written, str):
        found.add("date", "must be a string: an expression or an ISO date-time")
    elif written and "{{" not in written:
        try:
            datetime.fromisoformat(_ZONE_SUFFIX.sub("", written.strip()))
        except ValueError as error:
            found.add("date", f"not an ISO date or date-time: {error}")
    if found.kind in ("DayWeek", "DayWeekInMonth"):
        found.choice("dayOfWeek", DAYS_OF_WEEK)
    if found.kind == "DayWeekInMonth":
        found.choice("dayInMonth", DAYS_IN_MONTH)
    if found.kind in ("DateTimeBetween", "TimeBetween"):
        parse = parse_instant if found.kind == "DateTimeBetween" else parse_time
        for key in ("after", "before"):
            if data.get(key) is not None:
                try:
                    parse(data[key])
                except ValueError as error:
                    found.add(key, f"not an ISO {'date-time' if parse is parse_instant else 'time'}: {error}")
        if data.get("after") is None and data.get("before") is None:
            found.add("after", "needs `after`, `before` or both")
    if found.kind == "PublicHoliday":
        country = found.required("country")
        subdivision = data.get("subDivision")
        if "{{" not in f"{country}{subdivision}" and country:
            problem = holiday_calendar_problem(str(country), subdivision)
            if problem is not None:
                found.add(*problem)


def holiday_calendar_problem(country: str, subdivision: Any) -> tuple[str, str] | None:
    """The property (`country` or `subDivision`) that names no calendar of the `holidays` package,
    and why; None when they name one."""
    code = country.strip().upper()
    calendars = _calendars()
    if code not in calendars:
        return "country", f"unknown country `{country}`: an ISO 3166-1 code such as FR, US or DE"
    wanted = subdivision_code(code, subdivision)
    if wanted is not None and wanted not in calendars[code].values():
        known = ", ".join(calendars[code].values()) or "none"
        return "subDivision", f"`{subdivision}` is not a subdivision of {code} ({known})"
    return None


def subdivision_code(country: str, subdivision: Any) -> str | None:
    """The `holidays` package's code of a subdivision: `BY`, `by` and `DE-BY` are all Bavaria's."""
    if subdivision is None or subdivision == "":
        return None
    code = country.strip().upper()
    wanted = str(subdivision).strip().upper().removeprefix(f"{code}-")
    return _calendars().get(code, {}).get(wanted, wanted)


@functools.cache
def _calendars() -> dict[str, dict[str, str]]:
    """Country code -> {upper-cased subdivision code: the package's spelling of it}."""
    import holidays  # ~60 ms the first time: only when a PublicHoliday condition is checked

    return {
        code.upper(): {subdivision.upper(): subdivision for subdivision in subdivisions}
        for code, subdivisions in holidays.list_supported_countries().items()
    }
