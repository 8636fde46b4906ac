"""Flow triggers (`io.kestra.plugin.core.trigger.Flow`): when an execution ends, start the flows
whose Flow trigger matches it (its `states`, `conditions` and `preconditions`).

Evaluated in the transaction that ends the execution, from the tenant's trigger rows and their flows
(two queries, however many Flow triggers there are), so a downstream execution starts exactly when its upstream end is committed. A flow never
triggers itself. Flow triggers see every namespace of their tenant; conditions narrow them.

Preconditions keep their window of results on the trigger's row. Two executions ending at once (in
two worker processes) must not lose each other's result: the rows to update are locked together, in
primary key order, before anything else is written or started, so two ends queue on the same rows
in the same order and never deadlock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from flows.engine.states import TERMINAL_STATES
from flows.errors import BatonError
from flows.models import Execution, Flow, Trigger
from flows.services.conditions import TriggerScope
from flows.services.flows import spec_of_source
from flows.services.preconditions import Upstream, met_conditions, record
from flows.spec.flow_trigger import FLOW_TRIGGER_TYPES

logger = logging.getLogger(__name__)


_DEFAULT_STATES = {state.value for state in TERMINAL_STATES}


@dataclass(frozen=True)
class _Match:
    """A Flow trigger this execution passed (states, conditions, and part of its preconditions)."""

    pk: int
    namespace: str
    flow_id: str
    trigger: dict[str, Any]
    scope: TriggerScope
    met: tuple[str, ...] = ()  # the preconditions' conditions it meets

    @property
    def name(self) -> str:
        return f"{self.namespace}.{self.flow_id}:{self.trigger['id']}"


def on_execution_end(execution: Execution, now: datetime | None = None) -> None:
    """Start every flow whose Flow trigger matches this ended execution, and record the
    preconditions it meets. `now` (default: the execution's end) places it in the time windows."""
    now = now or execution.end_date or timezone.now()
    upstream = Upstream(execution)
    rows = (
        Trigger.objects.filter(tenant_id=execution.tenant_id, type__in=FLOW_TRIGGER_TYPES, disabled=False)
        .exclude(namespace=execution.namespace, flow_id=execution.flow_id)
        .order_by("pk")
        .values_list("pk", "namespace", "flow_id", "trigger_id")
    )
    rows = list(rows)
    if not rows:
        return
    # the flows of those triggers, in one query however many there are
    flows = {
        (flow.namespace, flow.flow_id): flow
        for flow in Flow.objects.filter(
            tenant_id=execution.tenant_id, deleted=False, flow_id__in={row[2] for row in rows}
        ).only("namespace", "flow_id", "source", "disabled", "revision")
    }
    matches: list[_Match] = []
    for pk, namespace, flow_id, trigger_id in rows:
        try:
            match = _match(upstream, flows.get((namespace, flow_id)), pk, trigger_id)
        except BatonError as error:
            _record_error(pk, f"{namespace}.{flow_id}:{trigger_id}", execution, error)
            continue
        if match is not None:
            matches.append(match)
    if not matches:
        return
    # A savepoint inside the transaction that ends the execution; a transaction of its own for a caller
    # without one (the row locks last until it ends).
    with transaction.atomic():
        windows = _lock_windows([match.pk for match in matches if "preconditions" in match.trigger])
        for match in matches:
            try:
                preconditions = "preconditions" in match.trigger
                if preconditions and not (match.pk in windows and _count(match, windows[match.pk], now)):
                    continue  # not complete yet (or the row went away with its flow)
                with transaction.atomic():
                    match.scope.start(match.trigger)
            except BatonError as error:  # the upstream execution's end stands; the row says what failed
                _record_error(match.pk, match.name, execution, error)


def _match(upstream: Upstream, flow: Flow | None, pk: int, trigger_id: str) -> _Match | None:
    execution = upstream.execution
    if flow is None or flow.disabled:
        return None
    namespace, flow_id = flow.namespace, flow.flow_id
    spec = spec_of_source(flow.source)
    trigger = next((t for t in spec.triggers if t["id"] == trigger_id), None)
    if trigger is None or trigger.get("disabled") is True or spec.disabled:
        return None
    states = set(trigger.get("states") or _DEFAULT_STATES)
    if execution.state not in states:
        return None
    scope = TriggerScope(execution.tenant_id, spec, flow.revision, upstream.variables)
    if not scope.all_hold(trigger.get("conditions") or [], "Flow triggers", execution):
        return None
    match = _Match(pk, namespace, flow_id, trigger, scope)
    preconditions = trigger.get("preconditions")
    if preconditions is None:
        return match
    met = met_conditions(preconditions, upstream, scope)
    # An execution that meets none of the conditions changes nothing (and never fires the trigger).
    return _Match(pk, namespace, flow_id, trigger, scope, tuple(met)) if met else None


def _lock_windows(pks: list[int]) -> dict[int, Any]:
    """Lock the trigger rows of these preconditions, all in one statement in primary key order
    (PostgreSQL locks the rows after sorting them), and read their windows as committed."""
    if not pks:
        return {}
    rows = Trigger.objects.select_for_update().filter(pk__in=pks).order_by("pk").values_list("pk", "window")
    return dict(rows)


def _count(match: _Match, stored: Any, now: datetime) -> bool:
    """Record what the execution met in the trigger's window; returns whether the set is complete."""
    outcome = record(stored, match.trigger["preconditions"], match.met, now)
    if outcome is None:  # no window is open now (after the deadline, outside the daily window)
        return False
    fields: dict[str, Any] = {"window": outcome.window, "last_evaluation": now, "updated": now}
    if outcome.fire:
        fields["last_fire"] = now
    Trigger.objects.filter(pk=match.pk).update(**fields)
    return outcome.fire


def _record_error(pk: int, name: str, execution: Execution, error: BatonError) -> None:
    Trigger.objects.filter(pk=pk).update(error=f"after execution {execution.id}: {error}")
    logger.warning("flow trigger %s: %s", name, error, extra={"execution_id": execution.id})
