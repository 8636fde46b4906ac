"""/api/v1/{tenant}/assets: declare, read, search and delete assets (JSON or YAML bodies)."""

from __future__ import annotations

from typing import Any

import yaml
from django.db.models import Q
from django.urls import path
from rest_framework import exceptions, status
from rest_framework.request import Request
from rest_framework.response import Response

from flows.api.base import YAML_PARSERS, StrictJsonParser, TenantView, paged
from flows.api.errors import ApiError
from flows.models import Asset
from flows.services.access import namespace_tree
from flows.services.assets import asset_dict, check_asset, save_asset

T = "<str:tenant>"


class AssetView(TenantView):
    def asset(self, asset_id: str) -> Asset:
        asset = Asset.objects.filter(tenant_id=self.tenant, asset_id=asset_id).first()
        if asset is None or (asset.namespace and not self.access.sees(asset.namespace)):
            raise exceptions.NotFound(f"asset `{asset_id}` not found")
        return asset


class Assets(AssetView):
    parser_classes = [StrictJsonParser, *YAML_PARSERS]

    def post(self, request: Request, tenant: str) -> Response:
        data: Any = request.data
        if isinstance(data, str):  # a YAML body, as assets are written next to flows
            try:
                data = yaml.safe_load(data)
            except yaml.YAMLError as error:
                raise ApiError(f"invalid YAML: {error}", status.HTTP_422_UNPROCESSABLE_ENTITY) from None
        fields = check_asset(data)
        if fields["namespace"]:
            self.check_namespace(fields["namespace"], write=True)
        elif not self.access.may_write(""):
            raise exceptions.PermissionDenied("an asset without a namespace needs tenant-wide write access")
        existing = Asset.objects.filter(tenant_id=tenant, asset_id=fields["asset_id"]).first()
        if existing is not None and existing.namespace and not self.access.may_write(existing.namespace):
            raise exceptions.PermissionDenied(f"no write access to asset `{existing.asset_id}`")
        asset, created = save_asset(tenant, fields)
        return Response(asset_dict(asset), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class AssetSearch(AssetView):
    def get(self, request: Request, tenant: str) -> Response:
        assets = Asset.objects.filter(tenant_id=tenant)
        if self.access.role == "RESTRICTED":  # its namespaces, and tenant-wide assets (no namespace)
            assets = assets.filter(self.access.namespace_filter() | Q(namespace=""))
        params = request.query_params
        if params.get("namespace"):
            assets = assets.filter(namespace_tree(params["namespace"]))
        if params.get("type"):
            assets = assets.filter(type=params["type"])
        if params.get("q"):
            text = params["q"]
            assets = assets.filter(Q(asset_id__icontains=text) | Q(display_name__icontains=text))
        return paged(request, assets.order_by("asset_id"), asset_dict)


class AssetDetail(AssetView):
    def get(self, request: Request, tenant: str, asset_id: str) -> Response:
        return Response(asset_dict(self.asset(asset_id)))

    def delete(self, request: Request, tenant: str, asset_id: str) -> Response:
        asset = self.asset(asset_id)
        if asset.namespace:
            self.check_namespace(asset.namespace, write=True)
        asset.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


urlpatterns = [
    path(f"{T}/assets", Assets.as_view()),
    path(f"{T}/assets/search", AssetSearch.as_view()),
    path(f"{T}/assets/<path:asset_id>", AssetDetail.as_view()),
]
