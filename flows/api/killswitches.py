"""/api/v1/kill-switches: an operator's brake on a tenant, a namespace, a flow or an execution
(superusers only). Every write goes through `flows.services.killswitches`: validated, audited, and a
DELETE is soft (the switch stays readable, marked `deleted`)."""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.urls import path
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from flows.api.base import body_datetime, field_error, paged, query_bool, query_choice
from flows.api.errors import ApiError
from flows.api.instance import InstanceAdminView
from flows.api.schema import errors
from flows.api.shapes import NO_CONTENT, PAGING, boolean, paged_shape, query
from flows.models import KillSwitch, KillSwitchAudit
from flows.services import killswitches
from flows.services.variables import iso

# API field (camelCase, as Kestra) -> the service's field.
_FIELDS = {
    "tenantId": "tenant",
    "type": "type",
    "namespace": "namespace",
    "flowId": "flow_id",
    "executionId": "execution_id",
    "startDate": "start_date",
    "endDate": "end_date",
    "reason": "reason",
}
_PATHS = {field: name for name, field in _FIELDS.items()}
_DATES = ("startDate", "endDate")
# The columns' sizes (PostgreSQL refuses longer text; the service checks meaning, not size).
_MAX_LENGTHS = {
    field: KillSwitch._meta.get_field(field).max_length for field in ("namespace", "flow_id", "execution_id")
}
# What a client may send back from a GET (a PUT of the object it read): ignored.
_READ_ONLY = {"id", "created", "createdBy", "deleted", "active", "audit"}


_TAGS = ["Kill switches"]
_TYPES = list(KillSwitch.Type.values)


class KillSwitchAuditShape(serializers.Serializer):
    action = serializers.ChoiceField(["CREATED", "UPDATED", "DELETED"])
    user = serializers.CharField(allow_null=True)
    date = serializers.CharField()
    snapshot = serializers.JSONField(help_text="the switch after the change")


class KillSwitchShape(serializers.Serializer):
    """A kill switch, read and written (one shape, so that its `type` enum gets its own name).

    POST: `tenantId`, `type` and `reason` are required, `startDate` defaults to now. PUT: the fields
    sent are changed, the others kept. No namespace, flow or execution: the whole tenant."""

    id = serializers.IntegerField(read_only=True)
    tenantId = serializers.CharField(required=False)  # noqa: N815
    type = serializers.ChoiceField(_TYPES, required=False)
    namespace = serializers.CharField(required=False, allow_null=True, help_text="with its child namespaces")
    flowId = serializers.CharField(required=False, allow_null=True, help_text="needs `namespace`")  # noqa: N815
    executionId = serializers.CharField(required=False, allow_null=True)  # noqa: N815
    startDate = serializers.DateTimeField(required=False, allow_null=True)  # noqa: N815
    endDate = serializers.DateTimeField(required=False, allow_null=True)  # noqa: N815
    reason = serializers.CharField(required=False)
    created = serializers.CharField(read_only=True)
    createdBy = serializers.CharField(read_only=True, allow_null=True)  # noqa: N815
    deleted = serializers.BooleanField(read_only=True)
    active = serializers.BooleanField(
        read_only=True, help_text="not deleted, and now between its start and end dates"
    )
    audit = KillSwitchAuditShape(many=True, read_only=True, required=False, help_text="in GET {id} only")


def switch_dict(switch: KillSwitch) -> dict[str, Any]:
    return {
        "id": switch.pk,
        "tenantId": switch.tenant_id,
        "type": str(switch.type),
        "namespace": switch.namespace or None,
        "flowId": switch.flow_id or None,
        "executionId": switch.execution_id or None,
        "startDate": iso(switch.start_date),
        "endDate": iso(switch.end_date),
        "reason": switch.reason,
        "created": iso(switch.created),
        "createdBy": switch.created_by or None,
        "deleted": switch.deleted,
        "active": killswitches.is_switch_active(switch),
    }


def _audit_dict(row: KillSwitchAudit) -> dict[str, Any]:
    return {"action": row.action, "user": row.user or None, "date": iso(row.at), "snapshot": row.snapshot}


def _refused(error: killswitches.InvalidKillSwitch) -> ApiError:
    """The service's error with the API's field name as its path."""
    if not error.field:
        return ApiError(str(error), status.HTTP_422_UNPROCESSABLE_ENTITY)
    return field_error(_PATHS.get(error.field, error.field), error.message)


def _changes(request: Request) -> dict[str, Any]:
    """The body's fields as the service's keyword arguments, each type-checked (422 with its path)."""
    body = request.data
    if not isinstance(body, dict):
        raise ApiError("send a JSON object", status.HTTP_422_UNPROCESSABLE_ENTITY)
    unknown = sorted(set(body) - set(_FIELDS) - _READ_ONLY)
    if unknown:
        raise field_error(unknown[0], f"unknown field; one of: {', '.join(_FIELDS)}")
    changes: dict[str, Any] = {}
    for name, field in _FIELDS.items():
        if name not in body:
            continue
        value = body[name]
        if name in _DATES:
            changes[field] = body_datetime(value, name)
        elif value is None and name not in ("tenantId", "type", "reason"):
            changes[field] = ""  # no namespace, flow or execution: a wider scope
        elif not isinstance(value, str):
            raise field_error(name, f"must be a string, got `{value}`")
        elif "\x00" in value:
            raise field_error(name, "must not contain a NUL character")
        elif len(value) > (_MAX_LENGTHS.get(field) or len(value)):
            raise field_error(name, f"at most {_MAX_LENGTHS[field]} characters")
        else:
            changes[field] = value
    return changes


class KillSwitches(InstanceAdminView):
    @extend_schema(
        operation_id="createKillSwitch",
        summary="Create a kill switch (an active KILL switch kills what it covers at once)",
        tags=_TAGS,
        request=KillSwitchShape,
        responses={201: KillSwitchShape, **errors(422)},
    )
    def post(self, request: Request) -> Response:
        fields = _changes(request)
        if fields.get("start_date") is None:
            fields["start_date"] = timezone.now()  # a brake applies now unless told
        fields.setdefault("tenant", "")
        fields.setdefault("type", "")
        fields.setdefault("reason", "")
        try:
            switch = killswitches.create_switch(**fields, user=request.user.get_username())
        except killswitches.InvalidKillSwitch as error:
            raise _refused(error) from None
        return Response(switch_dict(switch), status=status.HTTP_201_CREATED)


class KillSwitchSearch(InstanceAdminView):
    @extend_schema(
        operation_id="searchKillSwitches",
        summary="Search kill switches, newest first",
        tags=_TAGS,
        parameters=[
            query("tenant", "the switches of this tenant"),
            query("type", "", enum=_TYPES),
            query("namespace", "switches on exactly this namespace"),
            query("flowId", ""),
            query("executionId", ""),
            boolean("active", "true: in force now; false: not started or ended"),
            boolean("deleted", "true: only deleted switches (default: only the others)"),
            query("q", "text in the reason"),
            *PAGING,
        ],
        responses={200: paged_shape("PagedKillSwitches", KillSwitchShape(many=True))},
    )
    def get(self, request: Request) -> Response:
        switches: QuerySet[KillSwitch] = KillSwitch.objects.filter(
            deleted=query_bool(request, "deleted", False)
        ).order_by("-id")
        params = request.query_params
        for name in ("tenant", "namespace", "flowId", "executionId"):
            if params.get(name):
                field = "tenant_id" if name == "tenant" else _FIELDS[name]
                switches = switches.filter(**{field: params[name]})
        kind = query_choice(request, "type", KillSwitch.Type.values)
        if kind:
            switches = switches.filter(type=kind)
        if params.get("active"):
            now = timezone.now()
            live = Q(start_date__lte=now) & (Q(end_date__isnull=True) | Q(end_date__gt=now))
            switches = switches.filter(live) if query_bool(request, "active") else switches.exclude(live)
        if params.get("q"):
            switches = switches.filter(reason__icontains=params["q"])
        return paged(request, switches, switch_dict)


class KillSwitchDetail(InstanceAdminView):
    def _switch(self, switch_id: str) -> KillSwitch:
        is_number = switch_id.isascii() and switch_id.isdigit() and len(switch_id) <= 18  # a 64-bit id
        switch = KillSwitch.objects.filter(pk=int(switch_id)).first() if is_number else None
        if switch is None:
            raise exceptions.NotFound(f"kill switch {switch_id} not found")
        return switch

    @extend_schema(
        operation_id="getKillSwitch",
        summary="A kill switch (deleted ones too) and its audit",
        tags=_TAGS,
        responses={200: KillSwitchShape},
    )
    def get(self, request: Request, switch_id: str) -> Response:
        switch = self._switch(switch_id)
        audit = KillSwitchAudit.objects.filter(switch=switch).order_by("at", "id")
        return Response({**switch_dict(switch), "audit": [_audit_dict(row) for row in audit]})

    @extend_schema(
        operation_id="updateKillSwitch",
        summary="Change a kill switch (the fields sent)",
        tags=_TAGS,
        request=KillSwitchShape,
        responses={200: KillSwitchShape, **errors(409, 422)},
    )
    def put(self, request: Request, switch_id: str) -> Response:
        switch = self._switch(switch_id)
        changes = _changes(request)
        if switch.deleted:
            raise ApiError(
                f"kill switch {switch_id} is deleted and can't be changed", status.HTTP_409_CONFLICT
            )
        try:
            killswitches.update_switch(switch, user=request.user.get_username(), **changes)
        except killswitches.InvalidKillSwitch as error:
            raise _refused(error) from None
        return Response(switch_dict(switch))

    @extend_schema(
        operation_id="deleteKillSwitch",
        summary="Delete a kill switch (softly: it stays readable, with its audit)",
        tags=_TAGS,
        responses={**NO_CONTENT},
    )
    def delete(self, request: Request, switch_id: str) -> Response:
        killswitches.delete_switch(self._switch(switch_id), user=request.user.get_username())
        return Response(status=status.HTTP_204_NO_CONTENT)


urlpatterns = [
    path("kill-switches", KillSwitches.as_view()),
    path("kill-switches/search", KillSwitchSearch.as_view()),
    path("kill-switches/<str:switch_id>", KillSwitchDetail.as_view()),
]
