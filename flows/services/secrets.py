"""Namespace secrets: stored encrypted (Fernet), read by `secret()` from the flow's namespace or the
nearest parent that has the key. A value leaves this module only through `find_secret`, for the
run context (which masks it in logs); nothing else returns, logs or quotes it.
"""

from __future__ import annotations

import base64
import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.utils import timezone

from flows.errors import BatonError, ExpressionError
from flows.models import Secret
from flows.spec.namespaces import lineage

logger = logging.getLogger(__name__)

_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}")


class InvalidSecret(BatonError):
    code = "invalid_secret"
    http_status = 422

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class SecretNotFound(BatonError):
    code = "secret_not_found"
    http_status = 404

    def __init__(self, namespace: str, key: str) -> None:
        super().__init__(f"no secret `{key}` in namespace `{namespace}`")


class SecretUnreadable(ExpressionError):
    """`secret()` found the key but its value does not decrypt with the configured keys."""

    code = "secret_unreadable"

    def __init__(self, namespace: str, key: str) -> None:
        super().__init__(
            f"secret `{key}` of namespace `{namespace}` cannot be decrypted with the configured "
            "BATON_SECRETS_KEY (was the key changed? list the old key after the new one)"
        )


@dataclass(frozen=True)
class SecretMeta:
    """What may be shown of a secret: never its value."""

    namespace: str
    key: str
    description: str
    tags: list[dict[str, str]]


def _fernet_key(material: str) -> bytes:
    # Any string becomes a Fernet key through HKDF: operators may set a passphrase-like value.
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"baton namespace secrets").derive(
        material.encode()
    )
    return base64.urlsafe_b64encode(derived)


@lru_cache(maxsize=4)
def _cipher(configured: str | None, fallback: str) -> MultiFernet:
    # BATON_SECRETS_KEY may list several keys, newest first: values are encrypted with the first and
    # decrypted with any, so a key can be rotated without losing what was stored.
    materials = [part.strip() for part in (configured or "").split(",") if part.strip()] or [fallback]
    return MultiFernet([Fernet(_fernet_key(material)) for material in materials])


def _current_cipher() -> MultiFernet:
    return _cipher(getattr(settings, "BATON_SECRETS_KEY", None), settings.SECRET_KEY)


def encrypt_text(value: str) -> str:
    """`value` encrypted with the newest BATON_SECRETS_KEY, as text to store (other secret material:
    credentials)."""
    return _current_cipher().encrypt(value.encode()).decode()


def decrypt_text(stored: str) -> str:
    """The plain text of what `encrypt_text` returned. Raises cryptography's InvalidToken when no
    configured key decrypts it."""
    return _current_cipher().decrypt(stored.encode()).decode()


def check_key(key: Any) -> str:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise InvalidSecret(
            "`key` must be 1 to 255 letters, digits, `_`, `.` or `-`, starting with a letter, digit or `_`",
            path="key",
        )
    return key


def _check_text(value: Any, field: str, allow_empty: bool) -> str:
    if not isinstance(value, str) or (not allow_empty and value == ""):
        raise InvalidSecret(f"`{field}` must be a {'' if allow_empty else 'non-empty '}string", path=field)
    return value


def _check_tags(tags: Any) -> list[dict[str, str]]:
    if tags is None:
        return []
    if not isinstance(tags, list) or not all(
        isinstance(tag, dict) and isinstance(tag.get("key"), str) and isinstance(tag.get("value"), str)
        for tag in tags
    ):
        raise InvalidSecret("`tags` must be a list of {key, value} strings", path="tags")
    return [{"key": tag["key"], "value": tag["value"]} for tag in tags]


def _meta(row: Secret) -> SecretMeta:
    return SecretMeta(row.namespace, row.key, row.description, list(row.tags or []))


def put_secret(
    tenant: str,
    namespace: str,
    key: Any,
    value: Any,
    description: Any = None,
    tags: Any = None,
) -> SecretMeta:
    """Create or replace a secret. Raises InvalidSecret (its message never holds the value)."""
    key = check_key(key)
    value = _check_text(value, "value", allow_empty=False)
    fields: dict[str, Any] = {
        "encrypted_value": _current_cipher().encrypt(value.encode()).decode(),
        "updated": timezone.now(),
    }
    if description is not None:
        fields["description"] = _check_text(description, "description", allow_empty=True)
    if tags is not None:
        fields["tags"] = _check_tags(tags)
    row, created = Secret.objects.update_or_create(
        tenant_id=tenant, namespace=namespace, key=key, defaults=fields
    )
    logger.info(
        "secret %s key=%s namespace=%s",
        "created" if created else "replaced",
        key,
        namespace,
        extra={"tenant": tenant},
    )
    return _meta(row)


def patch_secret(
    tenant: str, namespace: str, key: str, *, value: Any = None, description: Any = None, tags: Any = None
) -> SecretMeta:
    """Change what is given of an existing secret. Raises SecretNotFound, InvalidSecret."""
    row = Secret.objects.filter(tenant_id=tenant, namespace=namespace, key=key).first()
    if row is None:
        raise SecretNotFound(namespace, key)
    if value is not None:
        row.encrypted_value = _current_cipher().encrypt(_check_text(value, "value", False).encode()).decode()
    if description is not None:
        row.description = _check_text(description, "description", allow_empty=True)
    if tags is not None:
        row.tags = _check_tags(tags)
    row.updated = timezone.now()
    row.save(update_fields=["encrypted_value", "description", "tags", "updated"])
    logger.info("secret updated key=%s namespace=%s", key, namespace, extra={"tenant": tenant})
    return _meta(row)


def delete_secret(tenant: str, namespace: str, key: str) -> None:
    """Raises SecretNotFound."""
    deleted, _ = Secret.objects.filter(tenant_id=tenant, namespace=namespace, key=key).delete()
    if not deleted:
        raise SecretNotFound(namespace, key)
    logger.info("secret deleted key=%s namespace=%s", key, namespace, extra={"tenant": tenant})


def secrets_of(tenant: str, namespace: str) -> list[SecretMeta]:
    """The secrets stored in this namespace itself, by key."""
    return [
        _meta(row) for row in Secret.objects.filter(tenant_id=tenant, namespace=namespace).order_by("key")
    ]


def inherited_keys(tenant: str, namespace: str) -> dict[str, list[str]]:
    """Keys visible from `namespace`, per namespace (the namespace first, then its parents)."""
    namespaces = lineage(namespace)
    keys: dict[str, list[str]] = {name: [] for name in namespaces}
    rows = Secret.objects.filter(tenant_id=tenant, namespace__in=namespaces).order_by("key")
    for name, key in rows.values_list("namespace", "key"):
        keys[name].append(key)
    return keys


def find_secret(tenant: str, namespace: str, key: str) -> str | None:
    """The plain value of `key` from `namespace` or its nearest parent that has it; None if none does.

    Raises SecretUnreadable when the stored value does not decrypt.
    """
    namespaces = lineage(namespace)
    rows = dict(
        Secret.objects.filter(tenant_id=tenant, namespace__in=namespaces, key=key).values_list(
            "namespace", "encrypted_value"
        )
    )
    for name in namespaces:  # nearest first
        if name in rows:
            try:
                return _current_cipher().decrypt(rows[name].encode()).decode()
            except InvalidToken:
                raise SecretUnreadable(name, key) from None
    return None
