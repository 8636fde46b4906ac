"""Invitations: a tenant's admin invites an email address with a role; whoever holds the link accepts it
once, before it expires, as a new user (username and password chosen then) or as a user who already
has an account. The invitation's id is the secret of the link (`flows.models.new_id`: 131 random bits).

The link points at the API (`POST /api/v1/invitation/accept/{id}`) on BATON_PUBLIC_URL, or on the
address the admin's request came to when that is unset. Emails go through Django's email backend.
"""

from __future__ import annotations

import logging
import re
import smtplib
from datetime import datetime, timedelta
from enum import StrEnum

from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import get_connection, send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from flows.errors import BatonError
from flows.models import Invitation, Role, Tenant
from flows.services.access import grant
from flows.services.variables import iso

logger = logging.getLogger(__name__)

# Segments of letters, digits, `_` and `-`, joined by dots (the API's namespace names).
_NAMESPACE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*")
# The size of Invitation.email (Django's EmailField); PostgreSQL refuses longer text.
_EMAIL_MAX_LENGTH = 254
# Django's SMTP backend waits forever by default; an admin's request must not.
_EMAIL_TIMEOUT_SECONDS = 10.0


class Status(StrEnum):
    PENDING = "PENDING"
    ACCEPTED = "ACCEPTED"
    EXPIRED = "EXPIRED"


class InvalidInvitation(BatonError):
    """An invitation (or the account that accepts it) was refused; `field` names the offending field."""

    code = "invalid_invitation"
    http_status = 422

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class InvitationNotFound(BatonError):
    code = "invitation_not_found"
    http_status = 404


class InvitationAccepted(BatonError):
    code = "invitation_accepted"
    http_status = 409


class InvitationExpired(BatonError):
    code = "invitation_expired"
    http_status = 410


# ---------------------------------------------------------------------------------------------- invite


def validate_role(role: str, namespaces: object) -> None:
    """A role, and the namespaces a RESTRICTED role is limited to; raises InvalidInvitation."""
    if role not in Role.values:
        raise InvalidInvitation("role", f"must be one of {', '.join(Role.values)}, not `{role}`")
    if not isinstance(namespaces, list) or not all(isinstance(name, str) for name in namespaces):
        raise InvalidInvitation("namespaces", "must be a list of namespace names")
    if role != Role.RESTRICTED:
        if namespaces:
            raise InvalidInvitation("namespaces", f"only for the RESTRICTED role, not {role}")
        return
    if not namespaces:
        raise InvalidInvitation("namespaces", "required with the RESTRICTED role: the namespaces it may use")
    for index, name in enumerate(namespaces):
        if len(name) > 300 or not _NAMESPACE.fullmatch(name):
            raise InvalidInvitation(
                f"namespaces[{index}]",
                f"invalid namespace `{name}`: dot-separated names of letters, digits, `_` and `-`",
            )


def validate_invitation(*, tenant: str, email: str, role: str, namespaces: object) -> None:
    """Check an invitation's fields without writing anything; raises InvalidInvitation."""
    try:
        if len(email) > _EMAIL_MAX_LENGTH:
            raise ValidationError("too long")
        validate_email(email)
    except ValidationError:
        raise InvalidInvitation("email", f"not an email address: `{email}`") from None
    validate_role(role, namespaces)
    if not Tenant.objects.filter(id=tenant).exists():
        raise InvalidInvitation("tenant", f"no tenant `{tenant}`")


def create_invitation(
    *,
    tenant: str,
    email: str,
    role: str = Role.VIEWER,
    namespaces: list[str] | None = None,
    invited_by: User | None = None,
) -> Invitation:
    """Store an invitation that expires in BATON_INVITATION_DAYS. Raises InvalidInvitation; then nothing
    is stored. The email is sent by `send_invitation`."""
    email = (email or "").strip()
    namespaces = [] if namespaces is None else namespaces
    validate_invitation(tenant=tenant, email=email, role=role, namespaces=namespaces)
    now = timezone.now()
    invitation = Invitation.objects.create(
        tenant_id=tenant,
        email=email,
        role=role,
        namespaces=list(namespaces),
        invited_by=invited_by,
        created=now,
        expires_at=now + timedelta(days=settings.BATON_INVITATION_DAYS),
    )
    logger.info(
        "invitation %s… of %s to %s as %s by %s",
        invitation.pk[:4],  # the id is the link's secret: not in logs
        email,
        tenant,
        role,
        invited_by.get_username() if invited_by else "-",
    )
    return invitation


def invitation_link(invitation: Invitation, base_url: str = "") -> str:
    """The accept link: on BATON_PUBLIC_URL, else on `base_url` (where the admin's request came),
    else only the path."""
    base = (settings.BATON_PUBLIC_URL or base_url).rstrip("/")
    return base + reverse("invitation-accept", args=[invitation.pk])


def send_invitation(invitation: Invitation, link: str) -> bool:
    """Email the invitation and its link; False when the mail server refused it or could not be
    reached (logged: the admin can still pass the link on)."""
    inviter = invitation.invited_by.get_username() if invitation.invited_by else "An administrator"
    subject = f"Invitation to {invitation.tenant_id} on Baton"
    body = (
        f"{inviter} invites you to the tenant `{invitation.tenant_id}` of Baton with the role "
        f"{invitation.role}"
        + (f" (namespaces: {', '.join(invitation.namespaces)})" if invitation.namespaces else "")
        + f".\n\nThe invitation link, valid until {iso(invitation.expires_at)}:\n\n    {link}\n\n"
        "Accept it with a new account:\n\n"
        f"    curl -X POST {link} -H 'Content-Type: application/json' \\\n"
        '         -d \'{"username": "you", "password": "..."}\'\n\n'
        "or with the account you already have:\n\n"
        f"    curl -X POST -u YOUR_USERNAME {link}\n\n"
        "If you did not expect this invitation, ignore this email.\n"
    )
    timeout = getattr(settings, "EMAIL_TIMEOUT", None) or _EMAIL_TIMEOUT_SECONDS
    try:
        send_mail(subject, body, None, [invitation.email], connection=get_connection(timeout=timeout))
    except (smtplib.SMTPException, OSError):
        logger.exception("invitation %s…: the email to %s was not sent", invitation.pk[:4], invitation.email)
        return False
    return True


def delete_invitation(invitation: Invitation) -> None:
    """Withdraw an invitation: its link stops working (a role it already gave stays)."""
    Invitation.objects.filter(pk=invitation.pk).delete()
    logger.info("invitation %s… to %s withdrawn", invitation.pk[:4], invitation.tenant_id)


# ---------------------------------------------------------------------------------------------- status


def status_of(invitation: Invitation, now: datetime | None = None) -> Status:
    if invitation.accepted_at is not None:
        return Status.ACCEPTED
    if invitation.expires_at <= (now or timezone.now()):
        return Status.EXPIRED
    return Status.PENDING


def with_status(status: Status, now: datetime | None = None) -> Q:
    """The filter of the invitations in `status` (the database side of `status_of`)."""
    now = now or timezone.now()
    if status == Status.ACCEPTED:
        return Q(accepted_at__isnull=False)
    if status == Status.EXPIRED:
        return Q(accepted_at__isnull=True, expires_at__lte=now)
    return Q(accepted_at__isnull=True, expires_at__gt=now)


# ---------------------------------------------------------------------------------------------- accept


def accept_invitation(
    invitation_id: str,
    *,
    user: User | None = None,
    username: str = "",
    password: str = "",
    name: str = "",
) -> tuple[Invitation, User, bool]:
    """Accept an invitation: give its role to `user`, or to a new user made from `username`,
    `password` (Django's password validators apply) and `name`, with the invitation's email.

    Returns (invitation, user, whether the user was created). Raises InvitationNotFound,
    InvitationAccepted, InvitationExpired or InvalidInvitation; then nothing changes.
    """
    invitation = Invitation.objects.filter(pk=invitation_id).first()
    if invitation is None:
        raise InvitationNotFound("invitation not found (or withdrawn)")
    _check_open(invitation)
    first_name, last_name = "", ""
    if user is None:
        first_name, _, last_name = (name or "").strip().partition(" ")
        _check_account(username, password, first_name, last_name.strip(), invitation.email)
    try:
        with transaction.atomic():
            created = user is None
            if user is None:
                user = User.objects.create_user(
                    username,
                    email=invitation.email,
                    password=password,
                    first_name=first_name,
                    last_name=last_name.strip(),
                )
            now = timezone.now()
            # Compare-and-set: of two accepts at once, one wins; the other's new user is rolled back.
            claimed = Invitation.objects.filter(
                pk=invitation.pk, accepted_at__isnull=True, expires_at__gt=now
            ).update(accepted_at=now, accepted_by=user)
            if claimed == 0:
                _check_open(Invitation.objects.filter(pk=invitation.pk).first() or invitation, now)
                raise InvitationNotFound("invitation not found (or withdrawn)")
            grant(user, invitation.tenant_id, invitation.role, invitation.namespaces)
    except IntegrityError:
        # The username was taken between the check and the insert.
        raise InvalidInvitation("username", f"`{username}` is taken: choose another") from None
    invitation.refresh_from_db()
    logger.info(
        "invitation %s… accepted by %s (%s): %s in %s",
        invitation.pk[:4],
        user.get_username(),
        "new user" if created else "existing user",
        invitation.role,
        invitation.tenant_id,
    )
    return invitation, user, created


def _check_open(invitation: Invitation, now: datetime | None = None) -> None:
    status = status_of(invitation, now)
    if status == Status.ACCEPTED:
        raise InvitationAccepted("this invitation was already accepted")
    if status == Status.EXPIRED:
        raise InvitationExpired(
            f"this invitation expired on {iso(invitation.expires_at)}: ask an admin for a new one"
        )


def _check_account(username: str, password: str, first_name: str, last_name: str, email: str) -> None:
    if not username:
        raise InvalidInvitation(
            "username",
            "required to create your account (or call with the credentials of the account you have)",
        )
    if len(username) > 150:
        raise InvalidInvitation("username", "at most 150 characters")
    try:
        User.username_validator(username)
    except ValidationError as error:
        raise InvalidInvitation("username", " ".join(error.messages)) from None
    if User.objects.filter(username__iexact=username).exists():
        raise InvalidInvitation(
            "username",
            f"`{username}` is taken: choose another, or call with your credentials to use that account",
        )
    if len(first_name) > 150 or len(last_name) > 150:
        raise InvalidInvitation("name", "at most 150 characters for the first and for the last name")
    if not password:
        raise InvalidInvitation("password", "required")
    candidate = User(username=username, email=email, first_name=first_name, last_name=last_name)
    try:
        validate_password(password, user=candidate)
    except ValidationError as error:
        raise InvalidInvitation("password", " ".join(error.messages)) from None
