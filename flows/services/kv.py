"""The KV store of a namespace: typed values with an optional expiry, as Kestra's KV store.

Flows reach it through the run context (`kv()` and the `io.kestra.plugin.core.kv.*` tasks), the
REST API through these functions directly.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Literal

from django.utils import timezone

from flows.errors import BatonError
from flows.models import KVEntry

KVType = Literal["STRING", "NUMBER", "BOOLEAN", "DATETIME", "DATE", "DURATION", "JSON"]

# Kestra's KVStore.validateKey.
_KEY = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._-]*")
# Kestra reads back any string of this shape as a Duration (days and time parts only, as Java's
# Duration.parse accepts): its type is then DURATION, whoever stored it.
_DURATION = re.compile(r"P(?=[^T]|T.)(?:\d*D)?(?:T(?=.)(?:\d*H)?(?:\d*M)?(?:\d*S)?)?")
# An unquoted ION timestamp in a request body: a date, or a date and time with an offset.
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})", re.IGNORECASE)
# An unquoted ION symbol (`hello`): Kestra's ION reader takes it as a string.
_SYMBOL = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


class InvalidKey(BatonError):
    code = "kv_invalid_key"
    http_status = 422

    def __init__(self, key: str) -> None:
        super().__init__(
            f"invalid key `{key}`: a key must start with an alphanumeric character (uppercase or "
            "lowercase) and can contain alphanumeric characters, dots (.), underscores (_), and "
            "hyphens (-) only"
        )


class InvalidValue(BatonError):
    code = "kv_invalid_value"
    http_status = 422


class KVNotFound(BatonError):
    code = "kv_not_found"
    http_status = 404

    def __init__(self, namespace: str, key: str) -> None:
        super().__init__(f"No value found for key '{key}' in namespace '{namespace}'")  # Kestra's wording


class KVExpired(BatonError):
    """The key existed but its TTL has passed (Kestra answers 410 Gone, and forgets the key)."""

    code = "kv_expired"
    http_status = 410

    def __init__(self, namespace: str, key: str) -> None:
        super().__init__(f"The requested value has expired: key '{key}' in namespace '{namespace}'")


@dataclass(frozen=True)
class TypedValue:
    type: KVType
    value: Any


def check_key(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise InvalidKey(key)
    return key


def type_of(value: Any, stored_type: str | None = None) -> KVType:
    """The KV type Kestra reports for a value: dates keep the type they were stored with."""
    if stored_type in ("DATE", "DATETIME") and isinstance(value, str):
        return stored_type  # type: ignore[return-value]
    if value is None:
        return "STRING"
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int | float):
        return "NUMBER"
    if isinstance(value, str):
        return "DURATION" if _DURATION.fullmatch(value) else "STRING"
    return "JSON"


def parse_value(text: str) -> TypedValue:
    """A request body as Kestra reads it (ION, a superset of JSON): `"a"` is a STRING, `1` a NUMBER,
    `true` a BOOLEAN, `2024-01-31` a DATE, `2024-01-31T10:00:00Z` a DATETIME, `{...}`/`[...]` JSON.
    Raises InvalidValue, whose message quotes no more than the start of the body."""
    body = text.strip()
    if not body:
        raise InvalidValue("the body is empty: send the value as JSON (a string in double quotes)")
    if _DATE.fullmatch(body):
        try:
            date.fromisoformat(body)
        except ValueError as error:
            raise InvalidValue(f"invalid date `{body}`: {error}") from error
        return TypedValue("DATE", body)
    if _DATETIME.fullmatch(body):
        try:
            datetime.fromisoformat(body.upper().replace("Z", "+00:00"))
        except ValueError as error:
            raise InvalidValue(f"invalid date-time `{body}`: {error}") from error
        return TypedValue("DATETIME", body)
    if _SYMBOL.fullmatch(body) and body not in ("true", "false", "null"):
        return TypedValue("STRING", body)
    try:
        value = json.loads(body)
    except ValueError:
        shown = body if len(body) <= 40 else body[:40] + "..."
        raise InvalidValue(f"invalid JSON value: {shown}") from None
    return TypedValue(type_of(value), value)


def _live(entry: KVEntry | None) -> bool:
    return entry is not None and (entry.expires_at is None or entry.expires_at > timezone.now())


def lookup(tenant: str, namespace: str, key: str) -> tuple[bool, Any]:
    """(found, value) for flows: an expired key is missing."""
    entry = KVEntry.objects.filter(tenant_id=tenant, namespace=namespace, key=key).first()
    if entry is None or not _live(entry):
        return False, None
    return True, entry.value


def get_value(tenant: str, namespace: str, key: str) -> TypedValue:
    """The value of a key with its type. Raises KVNotFound, or KVExpired (and deletes the key)."""
    check_key(key)
    entry = KVEntry.objects.filter(tenant_id=tenant, namespace=namespace, key=key).first()
    if entry is None:
        raise KVNotFound(namespace, key)
    if not _live(entry):
        KVEntry.objects.filter(pk=entry.pk, updated=entry.updated).delete()  # unless rewritten meanwhile
        raise KVExpired(namespace, key)
    return TypedValue(type_of(entry.value, entry.value_type), entry.value)


def set_value(
    tenant: str,
    namespace: str,
    key: str,
    value: Any,
    *,
    value_type: str | None = None,
    ttl: timedelta | None = None,
    description: str | None = None,
) -> KVEntry:
    """Store `value` under `key` (replacing any value). Without `value_type`, it is inferred."""
    check_key(key)
    now = timezone.now()
    defaults: dict[str, Any] = {
        "value": value,
        "value_type": value_type or type_of(value),
        "expires_at": now + ttl if ttl else None,
        "updated": now,
    }
    if description is not None:
        defaults["description"] = description
    entry, _ = KVEntry.objects.update_or_create(
        tenant_id=tenant, namespace=namespace, key=key, defaults=defaults
    )
    return entry


def delete_value(tenant: str, namespace: str, key: str) -> bool:
    """Delete a key; True if it existed (expired or not)."""
    deleted, _ = KVEntry.objects.filter(tenant_id=tenant, namespace=namespace, key=key).delete()
    return deleted > 0


def live_entries(tenant: str, namespace: str) -> list[KVEntry]:
    """The keys of a namespace that have not expired, by key."""
    now = timezone.now()
    return list(
        KVEntry.objects.filter(tenant_id=tenant, namespace=namespace)
        .exclude(expires_at__lte=now)
        .order_by("key")
    )
