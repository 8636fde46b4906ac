"""`{% active_banners as banners %}`: the banners shown now, for the admin's pages (and the UI's)."""

from __future__ import annotations

from django import template

from flows.models import Banner
from flows.services.banners import active_banners as banners_shown_now

register = template.Library()


@register.simple_tag
def active_banners() -> list[Banner]:
    return list(banners_shown_now())
