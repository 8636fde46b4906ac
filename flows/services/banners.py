"""Banners: announcements of the instance (maintenance, incidents) shown to every user between their
start and end dates. Clients read them from `GET /api/v1/banners/active`; the Django admin shows
them at the top of every page."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import Case, IntegerField, Q, QuerySet, Value, When
from django.utils import timezone

from flows.errors import BatonError
from flows.models import Banner
from flows.services.variables import iso

logger = logging.getLogger(__name__)

Type = Banner.Type

# The order in which banners are shown: the most severe first.
_BY_SEVERITY = (Type.ERROR, Type.WARNING, Type.INFO)
# What `update_banner` may change.
EDITABLE_FIELDS = ("message", "type", "start_date", "end_date", "active")


class InvalidBanner(BatonError):
    """A banner was refused; `field` names the offending field."""

    code = "invalid_banner"
    http_status = 422

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


def validate_banner(
    *, message: str, type: str, start_date: datetime | None, end_date: datetime | None
) -> None:
    """Check a banner's fields without writing anything; raises InvalidBanner."""
    if not (message or "").strip():
        raise InvalidBanner("message", "required: the text to show")
    if type not in Type.values:
        raise InvalidBanner("type", f"must be one of {', '.join(Type.values)}, not `{type}`")
    if start_date is None:
        raise InvalidBanner("start_date", "required")
    if end_date is not None and end_date <= start_date:
        raise InvalidBanner("end_date", f"must be after the start date ({iso(start_date)})")


def create_banner(
    *,
    message: str,
    type: str = Type.INFO,
    start_date: datetime | None = None,
    end_date: datetime | None = None,
    active: bool = True,
) -> Banner:
    """Store a new banner (starting now unless told). Raises InvalidBanner; then nothing is stored."""
    now = timezone.now()
    start_date = start_date or now
    validate_banner(message=message, type=type, start_date=start_date, end_date=end_date)
    banner = Banner.objects.create(
        message=message,
        type=type,
        start_date=start_date,
        end_date=end_date,
        active=active,
        created=now,
        updated=now,
    )
    logger.info("banner %s created: %s", banner.pk, banner)
    return banner


def update_banner(banner: Banner, **changes: Any) -> Banner:
    """Change the fields of a banner (names in EDITABLE_FIELDS); returns it with its stored values.

    Raises InvalidBanner; then nothing changes.
    """
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"update_banner: not editable: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        stored = Banner.objects.select_for_update().get(pk=banner.pk)
        changed = {name: value for name, value in changes.items() if getattr(stored, name) != value}
        for name, value in changed.items():
            setattr(stored, name, value)
        validate_banner(
            message=stored.message, type=stored.type, start_date=stored.start_date, end_date=stored.end_date
        )
        if changed:
            stored.updated = timezone.now()
            stored.save(update_fields=[*changed, "updated"])
            logger.info("banner %s updated: %s", stored.pk, ", ".join(changed))
    for field in Banner._meta.concrete_fields:
        setattr(banner, field.attname, getattr(stored, field.attname))
    return banner


def delete_banner(banner: Banner) -> None:
    Banner.objects.filter(pk=banner.pk).delete()
    logger.info("banner %s deleted", banner.pk)


def is_banner_shown(banner: Banner, now: datetime | None = None) -> bool:
    """Active, started, and not yet ended."""
    now = now or timezone.now()
    return banner.active and banner.start_date <= now and (banner.end_date is None or banner.end_date > now)


def shown_now(now: datetime | None = None) -> Q:
    """The filter of the banners shown at `now` (the database side of `is_banner_shown`)."""
    now = now or timezone.now()
    return Q(active=True, start_date__lte=now) & (Q(end_date__isnull=True) | Q(end_date__gt=now))


def active_banners(now: datetime | None = None) -> QuerySet[Banner]:
    """The banners to show now, the most severe first, then the most recent."""
    rank = Case(
        *[When(type=type, then=Value(order)) for order, type in enumerate(_BY_SEVERITY)],
        default=Value(len(_BY_SEVERITY)),
        output_field=IntegerField(),
    )
    return Banner.objects.filter(shown_now(now)).order_by(rank, "-start_date", "id")
