"""Instance administration: /api/v1/tenants (superusers only)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from flows.api.base import PARSERS, paged, refuse_nul
from flows.api.errors import ApiError
from flows.api.schema import BatonAutoSchema, errors
from flows.api.shapes import (
    NO_CONTENT,
    PAGING,
    TenantCreateShape,
    TenantShape,
    TenantUpdateShape,
    paged_shape,
    query,
)
from flows.models import Tenant
from flows.services.tenants import create_tenant, delete_tenant
from flows.services.variables import iso


class InstanceAdminView(APIView):
    """Endpoints of the whole instance: superusers only."""

    schema = BatonAutoSchema()
    parser_classes = PARSERS

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        if not request.user.is_superuser:
            raise exceptions.PermissionDenied("needs an instance administrator (superuser)")
        refuse_nul(request, kwargs)


def tenant_dict(tenant: Tenant) -> dict[str, Any]:
    return {"id": tenant.id, "name": tenant.name, "created": iso(tenant.created)}


def _body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ApiError("send a JSON object", status.HTTP_400_BAD_REQUEST)
    return request.data


_TAGS = ["Tenants"]


class Tenants(InstanceAdminView):
    @extend_schema(
        operation_id="createTenant",
        summary="Create a tenant",
        tags=_TAGS,
        request={"application/json": TenantCreateShape},
        responses={201: TenantShape, **errors(409, 422)},
    )
    def post(self, request: Request) -> Response:
        body = _body(request)
        tenant_id = body.get("id")
        if not isinstance(tenant_id, str):
            raise ApiError("`id` is required (a string)", path="id")
        tenant = create_tenant(tenant_id, str(body.get("name") or ""))
        return Response(tenant_dict(tenant), status=status.HTTP_201_CREATED)


class TenantSearch(InstanceAdminView):
    @extend_schema(
        operation_id="searchTenants",
        summary="Search tenants",
        tags=_TAGS,
        parameters=[query("q", "text in the id"), *PAGING],
        responses={200: paged_shape("PagedTenants", TenantShape(many=True))},
    )
    def get(self, request: Request) -> Response:
        tenants = Tenant.objects.order_by("id")
        text = request.query_params.get("q")
        if text:
            tenants = tenants.filter(id__icontains=text)
        return paged(request, tenants, tenant_dict)


class TenantDetail(InstanceAdminView):
    def _tenant(self, tenant_id: str) -> Tenant:
        tenant = Tenant.objects.filter(id=tenant_id).first()
        if tenant is None:
            raise exceptions.NotFound(f"tenant `{tenant_id}` not found")
        return tenant

    @extend_schema(operation_id="getTenant", summary="A tenant", tags=_TAGS, responses={200: TenantShape})
    def get(self, request: Request, tenant_id: str) -> Response:
        return Response(tenant_dict(self._tenant(tenant_id)))

    @extend_schema(
        operation_id="updateTenant",
        summary="Rename a tenant",
        tags=_TAGS,
        request={"application/json": TenantUpdateShape},
        responses={200: TenantShape},
    )
    def put(self, request: Request, tenant_id: str) -> Response:
        tenant = self._tenant(tenant_id)
        name = _body(request).get("name")
        if not isinstance(name, str):
            raise ApiError("`name` is required (a string)", path="name")
        Tenant.objects.filter(pk=tenant.pk).update(name=name)
        tenant.name = name
        return Response(tenant_dict(tenant))

    @extend_schema(
        operation_id="deleteTenant",
        summary="Delete a tenant that holds no flows or executions",
        tags=_TAGS,
        responses={**NO_CONTENT, **errors(409)},
    )
    def delete(self, request: Request, tenant_id: str) -> Response:
        delete_tenant(self._tenant(tenant_id))
        return Response(status=status.HTTP_204_NO_CONTENT)
