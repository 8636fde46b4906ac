"""What Webhook, Schedule and Flow triggers share: the context their conditions and inputs render
in, and the conditions themselves.

Date conditions (DayWeek, DayWeekInMonth, Weekend, DateTimeBetween, TimeBetween, PublicHoliday) test
their `date` (an expression, `{{ trigger.date }}` by default; now when it renders empty, as on a
webhook). The date is read in its own offset (UTC for `...Z` and for now), or in the scope's `zone`
when one is given (a schedule's time zone).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from flows.errors import BatonError, ExpressionError
from flows.expressions import is_truthy
from flows.expressions.dates import to_datetime
from flows.models import Execution
from flows.services.executions import label_pairs, start_execution
from flows.services.runtime import ExpressionServicesImpl, Masker, renderer
from flows.spec.conditions import (
    DATE_KINDS,
    DAYS_IN_MONTH,
    DAYS_OF_WEEK,
    EXPRESSION_KINDS,
    condition_kind,
    condition_problems,
    holiday_calendar_problem,
    parse_instant,
    parse_time,
    subdivision_code,
)
from flows.spec.model import FlowSpec

if TYPE_CHECKING:
    from holidays import HolidayBase


class UnsupportedCondition(BatonError):
    code = "unsupported_condition"
    http_status = 422


class ConditionError(BatonError):
    """A condition with a missing or invalid property, or a `date` that is not a date."""

    code = "invalid_condition"
    http_status = 422


class TriggerScope:
    """A flow's trigger about to start it: `flow.*` and `trigger.*` for its conditions and inputs.
    `zone`: where date conditions read their date (a schedule's time zone); None: the date's own offset."""

    def __init__(
        self,
        tenant: str,
        spec: FlowSpec,
        revision: int,
        variables: Mapping[str, Any],
        zone: tzinfo | None = None,
    ) -> None:
        self.tenant, self.spec = tenant, spec
        self.context = {
            "flow": {"id": spec.id, "namespace": spec.namespace, "revision": revision, "tenantId": tenant},
            "trigger": variables,
        }
        self.services = ExpressionServicesImpl(
            tenant=tenant, namespace=spec.namespace, execution_id="", masker=Masker()
        )
        self.zone = zone

    def render(self, value: Any, extra: Mapping[str, Any] | None = None) -> Any:
        """`value` rendered with `flow.*`, `trigger.*` and the `extra` variables, if any."""
        return renderer.render_typed(
            value, {**self.context, **extra} if extra else self.context, self.services
        )

    def inputs(self, trigger: Mapping[str, Any]) -> Any:
        return self.render(trigger.get("inputs") or {})

    def start(
        self,
        trigger: Mapping[str, Any],
        inputs: Mapping[str, Any] | None = None,
        labels: Iterable[tuple[str, str]] = (),
    ) -> Execution:
        """Start the flow for this trigger, with the `trigger.*` variables, the trigger's `labels` and
        then `labels`, and `inputs` (default: the trigger's own, rendered; not a map: none)."""
        if inputs is None:
            rendered = self.inputs(trigger)
            inputs = rendered if isinstance(rendered, dict) else {}
        return start_execution(
            tenant=self.tenant,
            namespace=self.spec.namespace,
            flow_id=self.spec.id,
            inputs=dict(inputs),
            labels=[*label_pairs(trigger.get("labels") or {}), *labels],
            trigger={"id": trigger["id"], "type": trigger["type"], "variables": self.context["trigger"]},
        )

    def all_hold(
        self, conditions: Iterable[Mapping[str, Any]], where: str, execution: Execution | None = None
    ) -> bool:
        """Whether every condition holds; the execution ones need the `execution` that ended.
        Raises UnsupportedCondition naming `where` (webhooks, schedules, Flow triggers), or
        ConditionError naming the condition and its property."""
        listed = list(conditions)
        paths = [f"conditions[{index}]" for index in range(len(listed))]
        for condition, path in zip(listed, paths, strict=True):
            _check(condition, path, where, with_execution=execution is not None)
        return all(self._holds(c, path, execution) for c, path in zip(listed, paths, strict=True))

    def _holds(self, condition: Mapping[str, Any], path: str, execution: Execution | None) -> bool:
        kind = condition_kind(condition.get("type"))
        if kind in EXPRESSION_KINDS:
            return is_truthy(self.render(condition.get("expression")))
        if kind in ("Not", "Or"):
            nested = (
                self._holds(item, f"{path}.conditions[{index}]", execution)
                for index, item in enumerate(condition["conditions"])
            )
            return not any(nested) if kind == "Not" else any(nested)  # Kestra's Not: none holds
        if kind in DATE_KINDS:
            return self._date_holds(kind, condition, path)
        if execution is None:  # _check let it through: a Flow trigger's condition
            raise UnsupportedCondition(f"{path}: {kind} needs an ended execution")
        return _execution_holds(kind, condition, execution)

    def _date_holds(self, kind: str, condition: Mapping[str, Any], path: str) -> bool:
        moment = self._date(kind, condition, path)
        day = moment.date()
        if kind == "DayWeek":
            return day.weekday() == DAYS_OF_WEEK.index(condition["dayOfWeek"])
        if kind == "Weekend":
            return day.weekday() >= 5
        if kind == "DayWeekInMonth":
            return _is_nth_weekday(day, condition["dayOfWeek"], condition["dayInMonth"])
        if kind == "DateTimeBetween":
            after, before = (condition.get(key) for key in ("after", "before"))
            return (after is None or moment > parse_instant(after)) and (
                before is None or moment < parse_instant(before)
            )
        if kind == "TimeBetween":
            return _time_between(moment, condition.get("after"), condition.get("before"))
        return self._is_holiday(condition, day, path)

    def _date(self, kind: str, condition: Mapping[str, Any], path: str) -> datetime:
        """The condition's date, aware: its own offset, or the scope's zone."""
        expression = condition.get("date")
        try:
            if expression is None:
                value = self.context["trigger"].get("date")
            else:  # `{{ trigger.date }}` written out reads as the default: empty on a webhook
                trigger = {"date": "", **self.context["trigger"]}
                value = renderer.render_typed(expression, {**self.context, "trigger": trigger}, self.services)
            moment = timezone.now() if value is None or value == "" else to_datetime(value)
        except ExpressionError as error:
            raise ConditionError(f"{path}.date ({kind}): {error}") from None
        return moment.astimezone(self.zone) if self.zone is not None else moment

    def _is_holiday(self, condition: Mapping[str, Any], day: date, path: str) -> bool:
        country = str(self.render(condition["country"])).strip().upper()
        subdivision = condition.get("subDivision")
        if subdivision is not None:
            subdivision = self.render(subdivision)
        problem = holiday_calendar_problem(country, subdivision)
        if problem is not None:  # a rendered value the loader could not check
            raise ConditionError(f"{path}.{problem[0]} (PublicHoliday): {problem[1]}")
        return day in _holidays(country, subdivision_code(country, subdivision), day.year)


def _check(condition: Any, path: str, where: str, *, with_execution: bool) -> None:
    """Raise for the first problem of a condition (the loader reports them all when a flow is saved)."""
    found = condition_problems(condition, path, with_execution=with_execution)
    if not found:
        return
    kind, violation = found[0]
    if violation.path.endswith(".type") and violation.message != "missing required property":
        raise UnsupportedCondition(f"{violation.path}: {violation.message} (on {where})")
    raise ConditionError(f"{violation.path} ({kind or 'condition'}): {violation.message}")


def _is_nth_weekday(day: date, day_of_week: str, which: str) -> bool:
    if day.weekday() != DAYS_OF_WEEK.index(day_of_week):
        return False
    if which == "LAST":
        return (day + timedelta(days=7)).month != day.month
    return (day.day - 1) // 7 == DAYS_IN_MONTH.index(which)  # FIRST: days 1-7, SECOND: 8-14, ...


def _time_between(moment: datetime, after: Any, before: Any) -> bool:
    """Kestra's OffsetTime order: a time of day less its offset, with no wrap at midnight. A bound
    without an offset takes the date's: a wall-clock time."""
    offset = moment.utcoffset() or timedelta()

    def key(value: time) -> float:
        own = value.utcoffset()  # None without an offset; timedelta(0) for Z
        seconds = value.hour * 3600 + value.minute * 60 + value.second + value.microsecond / 1e6
        return seconds - (offset if own is None else own).total_seconds()

    current = key(moment.time())
    return (after is None or current > key(parse_time(after))) and (
        before is None or current < key(parse_time(before))
    )


@functools.lru_cache(maxsize=256)
def _holidays(country: str, subdivision: str | None, year: int) -> HolidayBase:
    """One country's (or subdivision's) public holidays of one year, observed days included. Built
    for that year only, so a lookup in it never mutates it (shared by threads)."""
    import holidays

    return holidays.country_holidays(country, subdiv=subdivision, years=year)


def _execution_holds(kind: str, condition: Mapping[str, Any], execution: Execution) -> bool:
    """A condition on the ended execution of a Flow trigger."""
    if kind == "ExecutionFlow":
        return execution.namespace == condition.get("namespace") and execution.flow_id == condition.get(
            "flowId"
        )
    if kind == "ExecutionNamespace":
        wanted = str(condition.get("namespace", ""))
        comparison = str(condition.get("comparison") or ("PREFIX" if condition.get("prefix") else "EQUALS"))
        if comparison == "PREFIX":
            return execution.namespace.startswith(wanted)
        if comparison == "SUFFIX":
            return execution.namespace.endswith(wanted)
        return execution.namespace == wanted
    if kind == "ExecutionStatus":
        allowed, refused = condition.get("in"), condition.get("notIn")
        return (not allowed or execution.state in allowed) and (not refused or execution.state not in refused)
    wanted = condition.get("labels") or {}  # ExecutionLabels
    pairs = wanted.items() if isinstance(wanted, Mapping) else ((i["key"], i["value"]) for i in wanted)
    have = {label["key"]: label["value"] for label in execution.labels}
    return all(have.get(str(key)) == str(value) for key, value in pairs)
