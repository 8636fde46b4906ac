"""Tenants: every row of Baton belongs to one."""

from __future__ import annotations

import re

from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from flows.errors import BatonError
from flows.models import Tenant

TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
# First segments of instance-wide API paths (/api/v1/tenants, ...): a tenant cannot be named so.
RESERVED = {
    "tenants",
    "kill-switches",
    "banners",
    "invitation",
    "invitations",
    "schema",
    "docs",
    "me",
    "configs",
}


class InvalidTenant(BatonError):
    code = "invalid_tenant"
    http_status = 422


class TenantExists(BatonError):
    code = "tenant_exists"
    http_status = 409


class TenantNotEmpty(BatonError):
    code = "tenant_not_empty"
    http_status = 409


def create_tenant(tenant_id: str, name: str = "") -> Tenant:
    """A new tenant; raises InvalidTenant for a bad id or one that exists."""
    if tenant_id in RESERVED:
        raise InvalidTenant(f"tenant id `{tenant_id}` is reserved by the API")
    if not TENANT_ID.match(tenant_id):
        raise InvalidTenant(
            f"tenant id `{tenant_id}`: lower-case letters, digits, `-` and `_`, starting with a letter or digit"
        )
    try:
        with transaction.atomic():
            return Tenant.objects.create(id=tenant_id, name=name or tenant_id)
    except IntegrityError:
        raise TenantExists(f"tenant `{tenant_id}` already exists") from None


def delete_tenant(tenant: Tenant) -> None:
    """Delete a tenant that holds nothing; raises TenantNotEmpty otherwise (nothing is lost)."""
    try:
        with transaction.atomic():
            tenant.memberships.all().delete()
            tenant.delete()
    except ProtectedError:
        raise TenantNotEmpty(
            f"tenant `{tenant.id}` still holds flows or executions: delete them first"
        ) from None
