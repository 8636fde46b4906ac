"""Expression variables of an execution and of one of its task runs (Kestra's names and shapes)."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

from django.conf import settings

from flows.spec.model import FlowSpec


class RunLike(Protocol):
    id: str
    task_id: str
    parent_id: str | None
    value: str | None
    iteration: int | None
    outputs: dict[str, Any] | None


def iso(value: Any) -> Any:
    """A date or datetime as Kestra writes it (`...Z` for UTC); anything else unchanged."""
    return value.isoformat().replace("+00:00", "Z") if hasattr(value, "isoformat") else value


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def loop_values(run: RunLike, runs_by_id: Mapping[str, RunLike]) -> list[str]:
    """Values of the loops around a task run (its own included), outermost first."""
    values: list[str] = []
    current: RunLike | None = run
    while current is not None:
        if current.iteration is not None and current.value is not None:
            values.append(current.value)
        current = runs_by_id.get(current.parent_id) if current.parent_id else None
    values.reverse()
    return values


def outputs_tree(runs: Iterable[RunLike], runs_by_id: Mapping[str, RunLike]) -> dict[str, Any]:
    """`outputs` as expressions see it: by task id, then by loop value for tasks inside loops."""
    tree: dict[str, Any] = {}
    for run in runs:
        if run.outputs is None:
            continue
        values = loop_values(run, runs_by_id)
        if not values:
            existing = tree.get(run.task_id)
            tree[run.task_id] = {**existing, **run.outputs} if isinstance(existing, dict) else run.outputs
            continue
        node = tree.setdefault(run.task_id, {})
        for value in values[:-1]:
            node = node.setdefault(value, {})
        node[values[-1]] = run.outputs
    return tree


def envs() -> dict[str, str]:
    """Kestra's `envs`: environment variables with the configured prefix, without it, lower-cased."""
    prefix = settings.BATON_ENV_VARS_PREFIX
    return {key[len(prefix) :].lower(): value for key, value in os.environ.items() if key.startswith(prefix)}


def execution_variables(
    *,
    tenant: str,
    flow: FlowSpec,
    execution_id: str,
    start_date: Any,
    inputs: Mapping[str, Any],
    labels: list[dict[str, str]],
    trigger: Mapping[str, Any] | None,
    original_id: str | None,
    runs: list[RunLike],
) -> dict[str, Any]:
    runs_by_id = {run.id: run for run in runs}
    return {
        "flow": {"id": flow.id, "namespace": flow.namespace, "revision": flow.revision, "tenantId": tenant},
        "execution": {
            "id": execution_id,
            "startDate": iso(start_date),
            "originalId": original_id or execution_id,
        },
        "inputs": dict(inputs),
        "vars": dict(flow.variables),
        "labels": {label["key"]: label["value"] for label in labels},
        "outputs": outputs_tree(runs, runs_by_id),
        "envs": envs(),
        "globals": dict(settings.BATON_GLOBALS),
        **({"trigger": dict(trigger.get("variables") or {})} if trigger else {}),
    }


def taskrun_variables(
    base: Mapping[str, Any],
    run: RunLike,
    runs_by_id: Mapping[str, RunLike],
    *,
    task_type: str,
    attempt: int = 1,
    start_date: Any = None,
) -> dict[str, Any]:
    """Variables of one task run: the execution's plus taskrun, task, parent and parents.

    As in Kestra, `parents` lists the enclosing task runs that carry a loop value, nearest first.
    """
    parents: list[dict[str, Any]] = []
    current = runs_by_id.get(run.parent_id) if run.parent_id else None
    while current is not None:
        if current.value is not None:
            parents.append(
                {"taskrun": {"id": current.id, "value": current.value}, "outputs": current.outputs or {}}
            )
        current = runs_by_id.get(current.parent_id) if current.parent_id else None
    variables = dict(base)
    variables["taskrun"] = {
        "id": run.id,
        "startDate": iso(start_date),
        "attemptsCount": max(attempt - 1, 0),
        "parentId": run.parent_id,
        "value": run.value,
        "iteration": run.iteration,
    }
    items = (getattr(run, "memo", None) or {}).get("items")
    if items is not None:  # ForEachItem: the batch file of this run's child execution
        variables["taskrun"]["items"] = items
    variables["task"] = {"id": run.task_id, "type": task_type}
    if parents:
        variables["parent"] = parents[0]
        variables["parents"] = parents
    return variables
