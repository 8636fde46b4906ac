"""What Webhook, Schedule and Flow triggers share: the context their conditions and inputs render
in, and the conditions themselves."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flows.errors import BatonError
from flows.expressions import is_truthy
from flows.models import Execution
from flows.services.runtime import ExpressionServicesImpl, Masker, renderer
from flows.spec.model import FlowSpec


class UnsupportedCondition(BatonError):
    code = "unsupported_condition"
    http_status = 422


class TriggerScope:
    """A flow's trigger about to start it: `flow.*` and `trigger.*` for its conditions and inputs."""

    def __init__(self, tenant: str, spec: FlowSpec, revision: int, variables: Mapping[str, Any]) -> None:
        self.context = {
            "flow": {"id": spec.id, "namespace": spec.namespace, "revision": revision, "tenantId": tenant},
            "trigger": variables,
        }
        self.services = ExpressionServicesImpl(
            tenant=tenant, namespace=spec.namespace, execution_id="", masker=Masker()
        )

    def render(self, value: Any) -> Any:
        return renderer.render_typed(value, self.context, self.services)

    def inputs(self, trigger: Mapping[str, Any]) -> Any:
        return self.render(trigger.get("inputs") or {})

    def all_hold(
        self, conditions: Iterable[Mapping[str, Any]], where: str, execution: Execution | None = None
    ) -> bool:
        """Whether every condition holds; the execution ones need the `execution` that ended.
        Raises UnsupportedCondition naming `where` (webhooks, schedules, Flow triggers)."""
        return all(self._holds(condition, where, execution) for condition in conditions)

    def _holds(self, condition: Mapping[str, Any], where: str, execution: Execution | None) -> bool:
        # `io.kestra.plugin.core.condition.ExecutionFlow` and its legacy `...ExecutionFlowCondition`
        kind = str(condition.get("type", "")).rsplit(".", 1)[-1].removesuffix("Condition")
        if kind in ("Expression", "Variable"):
            return is_truthy(self.render(condition.get("expression")))
        if execution is not None:
            held = _execution_holds(kind, condition, execution)
            if held is not None:
                return held
        raise UnsupportedCondition(
            f"condition type `{condition.get('type')}` is not supported on {where} yet"
        )


def _execution_holds(kind: str, condition: Mapping[str, Any], execution: Execution) -> bool | None:
    """A condition on the ended execution of a Flow trigger; None for another kind."""
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
    if kind == "ExecutionLabels":
        wanted = condition.get("labels") or {}
        pairs = wanted.items() if isinstance(wanted, Mapping) else ((i["key"], i["value"]) for i in wanted)
        have = {label["key"]: label["value"] for label in execution.labels}
        return all(have.get(str(key)) == str(value) for key, value in pairs)
    return None
