"""Flow triggers (`io.kestra.plugin.core.trigger.Flow`): when an execution ends, start the flows
whose Flow trigger matches it (its `states` and `conditions`).

Evaluated in the transaction that ends the execution, from the tenant's trigger rows (one indexed
query), so a downstream execution starts exactly when its upstream end is committed. A flow never
triggers itself. Flow triggers see every namespace of their tenant; conditions narrow them.
"""

from __future__ import annotations

import logging

from django.db import transaction

from flows.engine.states import TERMINAL_STATES
from flows.errors import BatonError
from flows.models import Execution, Flow, Trigger
from flows.services.conditions import TriggerScope, UnsupportedCondition
from flows.services.flows import spec_of_source
from flows.spec.flow_trigger import FLOW_TRIGGER_TYPES

logger = logging.getLogger(__name__)


_DEFAULT_STATES = {state.value for state in TERMINAL_STATES}


def on_execution_end(execution: Execution) -> None:
    """Start every flow whose Flow trigger matches this ended execution."""
    rows = list(
        Trigger.objects.filter(tenant_id=execution.tenant_id, type__in=FLOW_TRIGGER_TYPES, disabled=False)
        .exclude(namespace=execution.namespace, flow_id=execution.flow_id)
        .values_list("pk", "namespace", "flow_id", "trigger_id")
    )
    for pk, namespace, flow_id, trigger_id in rows:
        try:
            with transaction.atomic():
                _evaluate(execution, namespace, flow_id, trigger_id)
        except BatonError as error:  # the upstream execution's end stands; the row says what failed
            Trigger.objects.filter(pk=pk).update(error=f"after execution {execution.id}: {error}")
            logger.warning("flow trigger %s.%s:%s: %s", namespace, flow_id, trigger_id, error)


def _evaluate(execution: Execution, namespace: str, flow_id: str, trigger_id: str) -> None:
    from flows.services.executions import label_pairs, start_execution

    flow = (
        Flow.objects.filter(
            tenant_id=execution.tenant_id, namespace=namespace, flow_id=flow_id, deleted=False
        )
        .only("source", "disabled", "revision")
        .first()
    )
    if flow is None or flow.disabled:
        return
    spec = spec_of_source(flow.source)
    trigger = next((t for t in spec.triggers if t["id"] == trigger_id), None)
    if trigger is None or trigger.get("disabled") is True or spec.disabled:
        return
    if trigger.get("preconditions"):
        raise UnsupportedCondition("`preconditions` are not evaluated yet: the trigger starts nothing")
    states = set(trigger.get("states") or _DEFAULT_STATES)
    if execution.state not in states:
        return
    variables = {
        "executionId": execution.id,
        "namespace": execution.namespace,
        "flowId": execution.flow_id,
        "flowRevision": execution.flow_revision,
        "state": execution.state,
        "labels": {label["key"]: label["value"] for label in execution.labels},
        "outputs": execution.outputs or {},
    }
    scope = TriggerScope(execution.tenant_id, spec, flow.revision, variables)
    if not scope.all_hold(trigger.get("conditions") or [], "Flow triggers", execution):
        return
    inputs = scope.inputs(trigger)
    start_execution(
        tenant=execution.tenant_id,
        namespace=namespace,
        flow_id=flow_id,
        inputs=inputs if isinstance(inputs, dict) else {},
        labels=label_pairs(trigger.get("labels") or {}),
        trigger={"id": trigger_id, "type": trigger["type"], "variables": variables},
    )
