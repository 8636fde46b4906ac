"""Flow trigger `preconditions`: which of a trigger's conditions an ended execution meets, and the
window of results on the trigger's row that decides when the set is complete.

A condition is one `flows[i]` (an ended execution of that namespace and flow, in its states, with its
labels) or one `where[i]` (filters on the execution, joined by AND or OR). The results are
`{"id", "start", "end", "results": {"flows[0]": <UTC time met>, ...}}`, kept on `Trigger.window`; a
result met before the current window's start no longer counts (see
`flows.spec.flow_trigger.TimeWindow`), and a new preconditions `id` starts from nothing, as Kestra
keys its windows by that id.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from flows.expressions import is_truthy, to_string
from flows.models import Execution, TaskRun
from flows.services.conditions import TriggerScope
from flows.services.variables import iso, outputs_tree, parse_iso
from flows.spec.flow_trigger import TimeWindow, condition_keys


class Upstream:
    """The execution that ended, as Flow triggers see it (computed once for all the triggers)."""

    def __init__(self, execution: Execution) -> None:
        self.execution = execution
        self.labels = {label["key"]: label["value"] for label in execution.labels}
        # `trigger.*` of the execution a Flow trigger starts, and of its conditions and inputs.
        self.variables = {
            "executionId": execution.id,
            "namespace": execution.namespace,
            "flowId": execution.flow_id,
            "flowRevision": execution.flow_revision,
            "state": execution.state,
            "labels": self.labels,
            "outputs": execution.outputs or {},
        }

    @functools.cached_property
    def task_outputs(self) -> dict[str, Any]:
        """`outputs` as the upstream execution's own expressions see them (one query, when asked)."""
        from flows.services.executions import to_view

        runs = [
            to_view(row) for row in TaskRun.objects.filter(execution_id=self.execution.id).order_by("seq")
        ]
        return outputs_tree(runs, {run.id: run for run in runs})

    def expression_variables(self) -> dict[str, Any]:
        """What an EXPRESSION filter sees besides the listening flow's `flow` and the `trigger`
        variables: the upstream execution's `execution`, `labels`, `inputs` and `outputs`."""
        execution = self.execution
        return {
            "execution": {
                "id": execution.id,
                "namespace": execution.namespace,
                "flowId": execution.flow_id,
                "flowRevision": execution.flow_revision,
                "state": execution.state,
                "startDate": iso(execution.start_date),
                "endDate": iso(execution.end_date),
                "originalId": execution.original_id or execution.id,
            },
            "labels": self.labels,
            "inputs": dict(execution.inputs or {}),
            "outputs": self.task_outputs,
        }


def filter_holds(field_value: str | None, filter_type: str, value: Any, values: Sequence[Any] | None) -> bool:
    """Whether one `where` filter holds for the field's value (None: the field has no value).

    As in Kestra, `value` is the comparand of every type but IN and NOT_IN (which use `values`),
    REGEX must match the whole value, and IS_TRUE is false for `false`, `0`, `-0` and the empty string.
    """
    comparand = None if value is None else to_string(value)
    listed = [to_string(item) for item in values or ()]
    if filter_type == "EQUAL_TO":
        return field_value == comparand
    if filter_type == "NOT_EQUAL_TO":
        return field_value != comparand
    if filter_type == "IN":
        return field_value in listed
    if filter_type == "NOT_IN":
        return field_value not in listed
    if filter_type == "IS_TRUE":
        return is_truthy(field_value)
    if filter_type == "IS_FALSE":
        return not is_truthy(field_value)
    if filter_type == "IS_NULL":
        return field_value is None
    if filter_type == "IS_NOT_NULL":
        return field_value is not None
    if field_value is None or comparand is None:
        return False
    if filter_type == "STARTS_WITH":
        return field_value.startswith(comparand)
    if filter_type == "ENDS_WITH":
        return field_value.endswith(comparand)
    if filter_type == "REGEX":
        return re.fullmatch(comparand, field_value) is not None
    if filter_type == "CONTAINS":
        return comparand in field_value
    raise ValueError(f"unknown filter type {filter_type!r}")  # the loader lets none through


def met_conditions(preconditions: Mapping[str, Any], upstream: Upstream, scope: TriggerScope) -> list[str]:
    """Keys of the conditions (`flows[0]`, `where[1]`, ...) the upstream execution meets.

    Raises ExpressionError when an EXPRESSION filter fails to render.
    """
    met = [
        f"flows[{index}]"
        for index, condition in enumerate(preconditions.get("flows") or [])
        if _upstream_flow_holds(condition, upstream)
    ]
    for index, where in enumerate(preconditions.get("where") or []):
        checks = (_filter_of(item, upstream, scope) for item in where.get("filters") or [])
        # Short-circuit as Kestra does: a later filter (an expression on a label only some flows
        # carry) is not rendered once an earlier one decided.
        if any(checks) if where.get("operand") == "OR" else all(checks):
            met.append(f"where[{index}]")
    return met


def _upstream_flow_holds(condition: Mapping[str, Any], upstream: Upstream) -> bool:
    execution = upstream.execution
    if execution.namespace != condition.get("namespace"):
        return False
    if condition.get("flowId") is not None and execution.flow_id != condition["flowId"]:
        return False
    if condition.get("states") and execution.state not in condition["states"]:
        return False
    labels = condition.get("labels") or {}
    return all(upstream.labels.get(str(key)) == _label_text(value) for key, value in labels.items())


def _label_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _filter_of(item: Mapping[str, Any], upstream: Upstream, scope: TriggerScope) -> bool:
    execution = upstream.execution
    field = item.get("field")
    field_value: str | None
    if field == "FLOW_ID":
        field_value = execution.flow_id
    elif field == "NAMESPACE":
        field_value = execution.namespace
    elif field == "STATE":
        field_value = execution.state
    else:  # EXPRESSION: `value` is rendered against the upstream execution
        rendered = scope.render(item.get("value"), upstream.expression_variables())
        field_value = None if rendered is None else to_string(rendered)
    return filter_holds(field_value, str(item.get("type")), item.get("value"), item.get("values"))


class Outcome(NamedTuple):
    window: dict[str, Any]  # what `Trigger.window` becomes
    fire: bool  # every condition is met: start the flow


def record(
    stored: Mapping[str, Any] | None, preconditions: Mapping[str, Any], met: Sequence[str], now: datetime
) -> Outcome | None:
    """Add the conditions met at `now` to the stored window; None when no window is open at `now`
    (after a DAILY_TIME_DEADLINE, outside a DAILY_TIME_WINDOW): then nothing counts.

    Results met before the window's start, or under another preconditions `id`, are dropped. When
    every condition is met the trigger fires; with `resetOnSuccess` (the default) the results are
    then cleared.
    """
    bounds = TimeWindow.of(preconditions.get("timeWindow")).bounds(now)
    if bounds is None:
        return None
    start, end = bounds
    keys = condition_keys(preconditions)
    stored = stored if stored and stored.get("id") == preconditions.get("id") else {}
    results = {
        key: when
        for key, when in (stored.get("results") or {}).items()
        if key in keys and parse_iso(when) >= start
    }
    for key in met:
        results[key] = iso(now.astimezone(UTC))
    fire = bool(met) and all(key in results for key in keys)
    if fire and preconditions.get("resetOnSuccess", True) is not False:
        results = {}
    window = {"id": preconditions.get("id"), "start": iso(start), "end": iso(end), "results": results}
    return Outcome(window, fire)
