"""What every tenant-scoped endpoint shares: access checks, query parameters, paging."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.db.models import QuerySet, TextField
from django.db.models.functions import Cast
from django.utils.dateparse import parse_datetime
from rest_framework import exceptions, status
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import BaseParser, FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from flows.api.errors import ApiError
from flows.api.schema import BatonAutoSchema
from flows.services.access import Access, access_of

DEFAULT_PAGE_SIZE = 10  # Kestra's
MAX_PAGE_SIZE = 1000
# The largest integer a query parameter may carry: revisions and attempts are 32-bit columns
# (PositiveIntegerField), and a page far beyond makes an OFFSET neither database takes (a 500).
MAX_INT = 2**31 - 1


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


def has_nul(value: Any) -> bool:
    """Whether a string in this JSON value (keys included) holds a NUL character, which PostgreSQL
    refuses in text and jsonb columns alike."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(has_nul(key) or has_nul(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(has_nul(item) for item in value)
    return False


def has_non_finite(value: Any) -> bool:
    """Whether this JSON value holds an infinite number (`1e999` parses as one), which neither jsonb
    nor the JSON renderer accept."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(has_non_finite(item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(has_non_finite(item) for item in value)
    return False


def _unprocessable(message: str) -> ApiError:
    return ApiError(message, status.HTTP_422_UNPROCESSABLE_ENTITY)


_NUL_REFUSED = "the body must not contain NUL characters (\\u0000)"


class StrictJsonParser(JSONParser):
    """JSON, refused (422) with a NUL character in a string or a number out of the float range:
    the database would fail on either (a 500), PostgreSQL even where SQLite took it."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        if has_nul(data):
            raise _unprocessable(_NUL_REFUSED)
        if has_non_finite(data):
            raise _unprocessable("the body holds a number out of range")
        return data


class StrictFormParser(FormParser):
    """Form fields, refused (422) with a NUL character in a name or value."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        if has_nul(dict(data.lists())):
            raise _unprocessable(_NUL_REFUSED)
        return data


class StrictMultiPartParser(MultiPartParser):
    """Multipart fields and file names, refused (422) with a NUL character (file contents may)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        parsed = super().parse(stream, media_type, parser_context)
        names = [(key, upload.name or "") for key, upload in parsed.files.items()]
        if has_nul(dict(parsed.data.lists())) or has_nul(names):
            raise _unprocessable(_NUL_REFUSED)
        return parsed


class StreamNegotiation(DefaultContentNegotiation):
    """For a view that answers a stream or a file rather than JSON: its clients ask for that type
    (`Accept: text/event-stream` from an EventSource, `text/plain`, ...), which no renderer of ours
    produces; DRF would refuse them with a 406. The view's own answer needs no renderer, and its
    errors are rendered as JSON."""

    def select_renderer(self, request: Request, renderers: Any, format_suffix: str | None = None) -> Any:
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except exceptions.NotAcceptable:
            return renderers[0], renderers[0].media_type


# The parsers of every view here unless it says otherwise: REST_FRAMEWORK's, without NUL characters.
PARSERS = [StrictJsonParser, StrictMultiPartParser, StrictFormParser]


class TenantView(APIView):
    """An endpoint under /api/v1/{tenant}/: the user must have a role in that tenant.

    Reads need any role; other methods need write rights (per namespace for RESTRICTED users,
    checked by the view with `check_namespace`); `admin_only` views need the tenant's ADMIN role.
    """

    admin_only = False
    access: Access
    tenant: str
    schema = BatonAutoSchema()
    parser_classes = PARSERS

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authentication first: anonymous gets 401
        refuse_nul(request, kwargs)
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


def refuse_nul(request: Request, path_values: dict[str, Any]) -> None:
    """422 for a NUL character in the path or the query string: no name or id holds one, and
    PostgreSQL refuses it in any text it is sent (which would otherwise be a 500)."""
    for name, value in path_values.items():
        if isinstance(value, str) and "\x00" in value:
            raise ApiError(
                f"`{name}` must not contain NUL characters", status.HTTP_422_UNPROCESSABLE_ENTITY, path=name
            )
    for name, values in request.query_params.lists():
        if "\x00" in name or any("\x00" in value for value in values):
            raise ApiError(
                f"query parameter `{name}` must not contain NUL characters",
                status.HTTP_422_UNPROCESSABLE_ENTITY,
                path=name,
            )


def query_int(request: Request, name: str, default: int, minimum: int = 1, maximum: int | None = None) -> int:
    """`?name=N` as an int in [minimum, maximum] (maximum: MAX_INT unless given)."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(f"`{name}` must be an integer, got `{raw}`", path=name) from None
    if maximum is not None and not minimum <= value <= maximum:
        raise ApiError(f"`{name}` must be between {minimum} and {maximum}, got {value}", path=name)
    if value < minimum:
        raise ApiError(f"`{name}` must be >= {minimum}, got {value}", path=name)
    if value > MAX_INT:
        raise ApiError(f"`{name}` must be <= {MAX_INT}, got {value}", path=name)
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


def query_choice(request: Request, name: str, choices: Sequence[str]) -> str | None:
    """`?name=` as one of `choices` (case-insensitive), None when absent; 400 otherwise."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    if raw.upper() not in choices:
        raise ApiError(f"`{name}` must be one of {', '.join(choices)}, got `{raw}`", path=name)
    return raw.upper()


def query_datetime(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if not raw:
        return None
    value, _ = _utc(raw.replace(" ", "+"))  # a `+` in a query string arrives as a space
    if value is None:
        raise ApiError(f"`{name}` must be an ISO-8601 date-time, got `{raw}`", path=name)
    return value


def field_error(path: str, message: str) -> ApiError:
    """422 for one field of a body: `path: message`, with the path in the error list."""
    return ApiError(f"{path}: {message}", status.HTTP_422_UNPROCESSABLE_ENTITY, path=path)


def body_datetime(value: Any, path: str) -> datetime | None:
    """A date-time field of a JSON body, in UTC (None when absent); 422 naming `path` otherwise."""
    if value is None:
        return None
    parsed, out_of_range = _utc(value) if isinstance(value, str) else (None, False)
    if parsed is None:
        reason = (
            f"out of range: `{value}`" if out_of_range else f"must be an ISO-8601 date-time, got `{value}`"
        )
        raise field_error(path, reason)
    return parsed


def _utc(raw: str) -> tuple[datetime | None, bool]:
    """(the ISO-8601 date-time in UTC, or None; whether it was out of range). Without an offset it is
    UTC. In UTC because PostgreSQL refuses offsets beyond 15:59 that Python (and ISO-8601) accept."""
    try:
        value = parse_datetime(raw)
    except ValueError:
        return None, False
    if value is None:
        return None, False
    try:
        return (value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)), False
    except OverflowError:  # out of years 1..9999 once in UTC
        return None, True


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
