"""Assets: the tables, files and datasets flows produce or read, declared once per tenant with an
id, a type and free metadata (Kestra's asset shape)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.db import transaction
from django.utils import timezone

from flows.errors import BatonError
from flows.models import Asset
from flows.services.variables import iso

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,299}")
_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*")
_TEXT_FIELDS = {"type": 200, "displayName": 300, "description": 10_000}


class InvalidAsset(BatonError):
    code = "invalid_asset"
    http_status = 422

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


def check_asset(data: Any) -> dict[str, Any]:
    """The asset's fields from a request body; raises InvalidAsset naming the bad field."""
    if not isinstance(data, Mapping):
        raise InvalidAsset("an asset is an object with at least an `id`", "")
    unknown = sorted(set(data) - {"id", "namespace", "metadata", *_TEXT_FIELDS})
    if unknown:
        raise InvalidAsset(f"unknown field `{unknown[0]}`", unknown[0])
    asset_id = data.get("id")
    if not isinstance(asset_id, str) or not _ID.fullmatch(asset_id):
        raise InvalidAsset("`id` is required: letters, digits and `_ . : / -`, at most 300", "id")
    namespace = data.get("namespace") or ""
    if not isinstance(namespace, str) or (namespace and not _NAMESPACE.fullmatch(namespace)):
        raise InvalidAsset("`namespace` must be a dot-separated namespace name", "namespace")
    fields: dict[str, Any] = {"asset_id": asset_id, "namespace": namespace}
    for name, limit in _TEXT_FIELDS.items():
        value = data.get(name) or ""
        if not isinstance(value, str) or len(value) > limit:
            raise InvalidAsset(f"`{name}` must be a string of at most {limit} characters", name)
        fields["display_name" if name == "displayName" else name] = value
    metadata = data.get("metadata") or {}
    if not isinstance(metadata, Mapping):
        raise InvalidAsset("`metadata` must be an object", "metadata")
    fields["metadata"] = dict(metadata)
    return fields


def save_asset(tenant: str, fields: Mapping[str, Any]) -> tuple[Asset, bool]:
    """Create or replace the asset with this id; returns (asset, created)."""
    values = {key: value for key, value in fields.items() if key != "asset_id"}
    with transaction.atomic():
        asset, created = Asset.objects.select_for_update().get_or_create(
            tenant_id=tenant, asset_id=fields["asset_id"], defaults=values
        )
        if not created:
            for key, value in values.items():
                setattr(asset, key, value)
            asset.updated = timezone.now()
            asset.save()
    return asset, created


def asset_dict(asset: Asset) -> dict[str, Any]:
    return {
        "id": asset.asset_id,
        "tenantId": asset.tenant_id,
        "namespace": asset.namespace or None,
        "type": asset.type or None,
        "displayName": asset.display_name or None,
        "description": asset.description or None,
        "metadata": asset.metadata,
        "created": iso(asset.created),
        "updated": iso(asset.updated),
    }
