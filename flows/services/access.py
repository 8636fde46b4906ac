"""Who may do what: API tokens and roles per tenant."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import User
from django.db.models import Q
from django.utils import timezone

from flows.errors import BatonError
from flows.models import ApiToken, Membership, Role, Tenant
from flows.spec.namespaces import within

TOKEN_PREFIX = "baton_"
# Recording `last_used` costs a write; once a minute per token is enough to see stale tokens.
_LAST_USED_RESOLUTION = timedelta(minutes=1)


class TenantNotFound(BatonError):
    code = "tenant_not_found"
    http_status = 404


def _hash(secret: str) -> str:
    # The secret is 256 random bits: a plain SHA-256 is enough (no dictionary to attack).
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(user: User, name: str, expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """A new API token for `user`; returns the row and the token text, which is never stored."""
    key = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user, name=name, key=key, secret_hash=_hash(secret), expires_at=expires_at
    )
    return token, f"{TOKEN_PREFIX}{key}_{secret}"


def revoke_token(token: ApiToken) -> None:
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())


def user_of_token(text: str) -> User | None:
    """The active user a token belongs to, or None (unknown, wrong secret, expired or revoked)."""
    if not text.startswith(TOKEN_PREFIX):
        return None
    key, _, secret = text[len(TOKEN_PREFIX) :].partition("_")
    token = ApiToken.objects.select_related("user").filter(key=key).first()
    if token is None or not secrets.compare_digest(token.secret_hash, _hash(secret)):
        return None
    now = timezone.now()
    if token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now):
        return None
    if not token.user.is_active:
        return None
    if token.last_used is None or now - token.last_used > _LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used=now)
    return token.user


@dataclass(frozen=True)
class Access:
    """A user's rights in one tenant."""

    tenant: str
    role: Role
    namespaces: tuple[str, ...] = ()  # RESTRICTED: these namespaces and their children

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    def sees(self, namespace: str) -> bool:
        if self.role != Role.RESTRICTED:
            return True
        return any(within(namespace, allowed) for allowed in self.namespaces)

    def may_write(self, namespace: str | None = None) -> bool:
        """Write rights (in `namespace`, or anywhere in the tenant when None)."""
        if self.role in (Role.ADMIN, Role.EDITOR):
            return True
        if self.role == Role.RESTRICTED:
            return namespace is not None and self.sees(namespace)
        return False

    def namespace_filter(self, field: str = "namespace") -> Q:
        """A filter that keeps only the rows of namespaces this access sees."""
        if self.role != Role.RESTRICTED:
            return Q()
        condition = Q(pk__in=[])
        for allowed in self.namespaces:
            condition |= namespace_tree(allowed, field)
        return condition


def namespace_tree(namespace: str, field: str = "namespace") -> Q:
    """Rows of `namespace` and of its descendants (the database side of `within`)."""
    return Q(**{field: namespace}) | Q(**{f"{field}__startswith": f"{namespace}."})


def access_of(user: User, tenant: str) -> Access | None:
    """The user's rights in `tenant`, None if it has none. Raises TenantNotFound."""
    membership = (
        Membership.objects.filter(user=user, tenant_id=tenant).values_list("role", "namespaces").first()
    )
    if membership is not None:
        role, namespaces = membership
        return Access(tenant, Role(role), tuple(namespaces or ()))
    if not Tenant.objects.filter(id=tenant).exists():
        raise TenantNotFound(f"tenant `{tenant}` not found")
    if user.is_superuser:
        return Access(tenant, Role.ADMIN)
    return None


def grant(user: User, tenant: str, role: Role | str, namespaces: list[str] | None = None) -> Membership:
    """Give `user` a role in `tenant` (replacing the one it had)."""
    membership, _ = Membership.objects.update_or_create(
        user=user, tenant_id=tenant, defaults={"role": Role(role), "namespaces": list(namespaces or [])}
    )
    return membership
