"""/api/v1/{tenant}/triggers: trigger states (next and last fire, disabled, errors), disable and
enable, unlock, and backfills of schedules."""

from __future__ import annotations

from typing import Any

from django.db.models import Q
from django.urls import path
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response

from flows.api.base import TenantView, body_datetime, paged
from flows.api.errors import ApiError
from flows.models import Trigger
from flows.services import schedules
from flows.services.access import namespace_tree
from flows.services.variables import iso

T = "<str:tenant>"


def trigger_dict(row: Trigger) -> dict[str, Any]:
    """Kestra's shape: the trigger's context (its state)."""
    context = {
        "tenantId": row.tenant_id,
        "namespace": row.namespace,
        "flowId": row.flow_id,
        "triggerId": row.trigger_id,
        "type": row.type,
        "date": iso(row.last_fire),
        "nextExecutionDate": iso(row.next_fire),
        "lastEvaluation": iso(row.last_evaluation),
        "disabled": row.disabled,
        # held by the execution it started (Kestra's lock), or by a polling evaluation under way
        "locked": bool(row.execution_id) or row.locked_until is not None,
        "executionId": row.execution_id or None,
        "evaluateRunningDate": iso(row.locked_until),
        "updatedDate": iso(row.updated),
        "error": row.error or None,
        "backfill": row.backfill,
        "preconditionsWindow": row.window,  # a Flow trigger's preconditions met so far
    }
    return {
        "triggerContext": context,
        "abstractTrigger": {"id": row.trigger_id, "type": row.type, **row.config},
    }


def _object(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ApiError("send a JSON object", status.HTTP_400_BAD_REQUEST)
    return request.data


class TriggerView(TenantView):
    def row(self, namespace: Any, flow_id: Any, trigger_id: Any, write: bool = False) -> Trigger:
        if not all(isinstance(part, str) and part for part in (namespace, flow_id, trigger_id)):
            raise ApiError("give `namespace`, `flowId` and `triggerId`", 422, path="triggerId")
        self.check_namespace(namespace, write=write)
        row = Trigger.objects.filter(
            tenant_id=self.tenant, namespace=namespace, flow_id=flow_id, trigger_id=trigger_id
        ).first()
        if row is None:
            raise exceptions.NotFound(f"trigger `{namespace}.{flow_id}:{trigger_id}` not found")
        return row

    def row_of_body(self, body: dict[str, Any]) -> Trigger:
        return self.row(body.get("namespace"), body.get("flowId"), body.get("triggerId"), write=True)


class TriggerSearch(TriggerView):
    def get(self, request: Request, tenant: str) -> Response:
        rows = Trigger.objects.filter(tenant_id=tenant).filter(self.access.namespace_filter())
        params = request.query_params
        if params.get("namespace"):
            rows = rows.filter(namespace_tree(params["namespace"]))
        if params.get("flowId"):
            rows = rows.filter(flow_id=params["flowId"])
        if params.get("q"):
            text = params["q"]
            rows = rows.filter(Q(trigger_id__icontains=text) | Q(flow_id__icontains=text))
        return paged(request, rows.order_by("namespace", "flow_id", "trigger_id"), trigger_dict)


class TriggerSetDisabled(TriggerView):
    """`{"triggers": [{namespace, flowId, triggerId}], "disabled": true}`, or one trigger with `disabled`."""

    def put(self, request: Request, tenant: str) -> Response:
        body = _object(request)
        disabled = body.get("disabled")
        if not isinstance(disabled, bool):
            raise ApiError("`disabled` must be true or false", 422, path="disabled")
        items = body.get("triggers") if "triggers" in body else [body]
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise ApiError(
                "`triggers` must be a list of {namespace, flowId, triggerId}", 422, path="triggers"
            )
        rows = [self.row_of_body(item) for item in items]  # all found before any changes
        return Response({"count": len([schedules.set_disabled(row, disabled) for row in rows])})


class TriggerUnlock(TriggerView):
    def post(self, request: Request, tenant: str, namespace: str, flow_id: str, trigger_id: str) -> Response:
        row = self.row(namespace, flow_id, trigger_id, write=True)
        return Response(trigger_dict(schedules.unlock(row)))


class BackfillCreate(TriggerView):
    """`{namespace, flowId, triggerId, backfill: {start, end, inputs, labels}}`."""

    def put(self, request: Request, tenant: str) -> Response:
        body = _object(request)
        row = self.row_of_body(body)
        backfill = body.get("backfill")
        if not isinstance(backfill, dict):
            raise ApiError("`backfill` must be an object with `start`", 422, path="backfill")
        start = body_datetime(backfill.get("start"), "backfill.start")
        if start is None:
            raise ApiError("`backfill.start` is required", 422, path="backfill.start")
        inputs = backfill.get("inputs") or {}
        if not isinstance(inputs, dict):
            raise ApiError("`backfill.inputs` must be an object", 422, path="backfill.inputs")
        schedules.create_backfill(
            row, start, body_datetime(backfill.get("end"), "backfill.end"), inputs, backfill.get("labels")
        )
        return Response(trigger_dict(row))


class BackfillControl(TriggerView):
    action = ""

    def handle(self, request: Request) -> Response:
        row = self.row_of_body(_object(request))
        if self.action == "delete":
            schedules.delete_backfill(row)
        else:
            schedules.pause_backfill(row, paused=self.action == "pause")
        return Response(trigger_dict(row))

    def put(self, request: Request, tenant: str) -> Response:
        return self.handle(request)

    def post(self, request: Request, tenant: str) -> Response:
        return self.handle(request)


urlpatterns = [
    path(f"{T}/triggers/search", TriggerSearch.as_view()),
    path(f"{T}/triggers/set-disabled", TriggerSetDisabled.as_view()),
    path(f"{T}/triggers/set-disabled/by-triggers", TriggerSetDisabled.as_view()),
    path(f"{T}/triggers/backfill/create", BackfillCreate.as_view()),
    path(f"{T}/triggers/backfill/pause", BackfillControl.as_view(action="pause")),
    path(f"{T}/triggers/backfill/unpause", BackfillControl.as_view(action="unpause")),
    path(f"{T}/triggers/backfill/delete", BackfillControl.as_view(action="delete")),
    path(f"{T}/triggers/<str:namespace>/<str:flow_id>/<str:trigger_id>/unlock", TriggerUnlock.as_view()),
]
