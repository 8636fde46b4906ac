"""What every tenant-scoped endpoint shares: access checks, query parameters, paging."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast
from django.utils.dateparse import parse_datetime
from rest_framework import exceptions
from rest_framework.parsers import BaseParser
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from flows.api.errors import ApiError
from flows.services.access import Access, access_of

DEFAULT_PAGE_SIZE = 10  # Kestra's
MAX_PAGE_SIZE = 1000


class YamlParser(BaseParser):
    """A flow as written: the body is kept as text (its lines are what errors point at)."""

    media_type = "application/x-yaml"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> str:
        data = stream.read() if stream is not None else b""
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise exceptions.ParseError(f"the body is not UTF-8 text: {error}") from error


class PlainYamlParser(YamlParser):
    media_type = "application/yaml"


class TextParser(YamlParser):
    media_type = "text/*"


YAML_PARSERS = [YamlParser, PlainYamlParser, TextParser]


class TenantView(APIView):
    """An endpoint under /api/v1/{tenant}/: the user must have a role in that tenant.

    Reads need any role; other methods need write rights (per namespace for RESTRICTED users,
    checked by the view with `check_namespace`); `admin_only` views need the tenant's ADMIN role.
    """

    admin_only = False
    access: Access
    tenant: str

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authentication first: anonymous gets 401
        self.tenant = kwargs["tenant"]
        access = access_of(request.user, self.tenant)
        if access is None:
            raise exceptions.PermissionDenied(f"no access to tenant `{self.tenant}`")
        if self.admin_only and not access.is_admin:
            raise exceptions.PermissionDenied("needs the ADMIN role in this tenant")
        if request.method not in SAFE_METHODS and access.role == "VIEWER":
            raise exceptions.PermissionDenied("the VIEWER role is read only")
        self.access = access

    def check_namespace(self, namespace: str, write: bool = False) -> None:
        """404 for a namespace this user cannot see (as if absent); 403 to write where it may not."""
        if not self.access.sees(namespace):
            raise exceptions.NotFound(f"namespace `{namespace}` not found")
        if write and not self.access.may_write(namespace):
            raise exceptions.PermissionDenied(f"no write access to namespace `{namespace}`")


def query_int(request: Request, name: str, default: int, minimum: int = 1, maximum: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(f"`{name}` must be an integer, got `{raw}`", path=name) from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        raise ApiError(f"`{name}` must be {bound}, got {value}", path=name)
    return value


def query_bool(request: Request, name: str, default: bool = False) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise ApiError(f"`{name}` must be true or false, got `{raw}`", path=name)


def query_datetime(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        value = parse_datetime(raw.replace(" ", "+"))  # a `+` in a query string arrives as a space
    except ValueError:
        value = None
    if value is None:
        raise ApiError(f"`{name}` must be an ISO-8601 date-time, got `{raw}`", path=name)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


def query_labels(request: Request, name: str = "labels") -> list[tuple[str, str]]:
    """`?labels=key:value` (repeated) as pairs."""
    pairs = []
    for raw in request.query_params.getlist(name):
        key, separator, value = raw.partition(":")
        if not separator or not key:
            raise ApiError(f"`{name}` must be `key:value`, got `{raw}`", path=name)
        pairs.append((key, value))
    return pairs


def query_sort(request: Request, allowed: dict[str, str], default: Sequence[str]) -> list[str]:
    """`?sort=field:asc|desc` (repeated) as ORM orderings; `allowed` maps API fields to columns."""
    orderings = []
    for raw in request.query_params.getlist("sort"):
        field, _, direction = raw.partition(":")
        if field not in allowed:
            raise ApiError(f"cannot sort by `{field}`; one of: {', '.join(sorted(allowed))}", path="sort")
        if direction not in ("", "asc", "desc"):
            raise ApiError(f"sort direction must be asc or desc, got `{direction}`", path="sort")
        orderings.append(("-" if direction == "desc" else "") + allowed[field])
    return orderings or list(default)


def paged(request: Request, rows: QuerySet[Any] | Sequence[Any], render: Callable[[Any], Any]) -> Response:
    """`{"results": [...], "total": N}` for `?page` (1-based) and `?size`."""
    page = query_int(request, "page", 1)
    size = query_int(request, "size", DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
    total = rows.count() if isinstance(rows, QuerySet) else len(rows)
    start = (page - 1) * size
    window: Iterable[Any] = rows[start : start + size]
    return Response({"results": [render(row) for row in window], "total": total})


def with_label(rows: QuerySet[Any], field: str, key: str, value: str) -> QuerySet[Any]:
    """Rows whose `[{key, value}]` JSON list holds this label: jsonb containment on PostgreSQL, a
    match on the stored JSON text on SQLite (which has no containment lookup)."""
    if connection.vendor == "postgresql":
        return rows.filter(**{f"{field}__contains": [{"key": key, "value": value}]})
    needle = json.dumps({"key": key, "value": value})
    alias = f"{field}_as_text"
    return rows.alias(**{alias: Cast(field, TextField())}).filter(**{f"{alias}__contains": needle})
