"""Webhook triggers (`io.kestra.plugin.core.trigger.Webhook`): an HTTP call with a flow's key starts
the flow, when the trigger's conditions hold for the request.

The key is the only secret: the endpoint takes no login. It is compared in constant time, and a
wrong key, an unknown flow and a disabled trigger all answer the same 404.
"""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from flows.errors import BatonError, InputValidationError
from flows.models import Execution, Flow
from flows.services.conditions import TriggerScope
from flows.services.flows import spec_of_source
from flows.services.runtime import ExpressionServicesImpl, Masker, renderer
from flows.spec.loader import WEBHOOK_TRIGGER_TYPES
from flows.spec.model import FlowSpec

# Never handed to the flow: they authenticate the caller to a proxy, not to the flow.
HIDDEN_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


class WebhookNotFound(BatonError):
    code = "webhook_not_found"
    http_status = 404


@dataclass(frozen=True)
class WebhookCall:
    """The request as the flow sees it: `trigger.body`, `trigger.headers`, `trigger.parameters`."""

    body: Any = None
    headers: Mapping[str, list[str]] = field(default_factory=dict)
    parameters: Mapping[str, list[str]] = field(default_factory=dict)

    @classmethod
    def parse(
        cls, raw: bytes, content_type: str, headers: Mapping[str, str], query: Mapping[str, list[str]]
    ) -> WebhookCall:
        return cls(
            body=_body_of(raw, content_type),
            headers={
                name.lower(): [value] for name, value in headers.items() if name.lower() not in HIDDEN_HEADERS
            },
            parameters={name: list(values) for name, values in query.items()},
        )

    def variables(self) -> dict[str, Any]:
        return {"body": self.body, "headers": dict(self.headers), "parameters": dict(self.parameters)}


def _body_of(raw: bytes, content_type: str) -> Any:
    """JSON as data, a form as `{name: value}`, text as text, anything else base64 (as Kestra)."""
    if not raw:
        return None
    media = content_type.split(";")[0].strip().lower()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii")
    if media == "application/json" or media.endswith("+json"):
        try:
            return json.loads(text)
        except ValueError:
            return text
    if media == "application/x-www-form-urlencoded":
        return {name: values[0] if len(values) == 1 else values for name, values in parse_qs(text).items()}
    return text


@dataclass(frozen=True)
class Fired:
    """What a webhook call did: the execution it started, or None when its conditions did not hold."""

    execution: Execution | None
    trigger: Mapping[str, Any]

    @property
    def wait(self) -> bool:
        return bool(self.trigger.get("wait"))

    @property
    def return_outputs(self) -> bool:
        return bool(self.trigger.get("returnOutputs"))


def fire_webhook(tenant: str, namespace: str, flow_id: str, key: str, call: WebhookCall) -> Fired:
    """Start the flow whose Webhook trigger has this key, if the trigger's conditions hold.

    Raises WebhookNotFound (404), ExpressionError or InputValidationError (422): then nothing is stored.
    """
    flow = (
        Flow.objects.for_tenant(tenant)
        .filter(namespace=namespace, flow_id=flow_id, deleted=False, disabled=False)
        .only("source", "revision")
        .first()
    )
    spec = spec_of_source(flow.source) if flow is not None else None
    trigger = _trigger_of(tenant, spec, key) if spec is not None else None
    if flow is None or spec is None or trigger is None:
        raise WebhookNotFound(  # one answer, as Kestra words it, whatever is missing: nothing leaks
            f"Not Found: Flow not found, or no webhook of `{namespace}.{flow_id}` with this key"
        )
    variables = call.variables()
    scope = TriggerScope(tenant, spec, flow.revision, variables)
    if not scope.all_hold(trigger.get("conditions") or [], "webhooks"):
        return Fired(None, trigger)
    inputs = scope.inputs(trigger)
    if not isinstance(inputs, dict):
        raise InputValidationError("inputs", "the webhook's `inputs` must render to a map")
    execution = scope.start(trigger, inputs=inputs)
    return Fired(execution, trigger)


def _trigger_of(tenant: str, spec: FlowSpec, key: str) -> Mapping[str, Any] | None:
    for trigger in spec.triggers:
        if trigger.get("type") not in WEBHOOK_TRIGGER_TYPES or trigger.get("disabled") is True:
            continue
        expected = str(trigger.get("key") or "")
        if "{{" in expected:  # e.g. "{{ secret('WEBHOOK_KEY') }}"
            try:
                expected = str(renderer.render(expected, {}, _services(tenant, spec.namespace)))
            except BatonError:
                continue
        if expected and hmac.compare_digest(expected.encode(), key.encode()):
            return trigger
    return None


def _services(tenant: str, namespace: str) -> ExpressionServicesImpl:
    return ExpressionServicesImpl(tenant=tenant, namespace=namespace, execution_id="", masker=Masker())
