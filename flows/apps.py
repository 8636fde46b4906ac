from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class FlowsConfig(AppConfig):
    name = "flows"
    verbose_name = "Flows and executions"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from flows.storage import check_configuration

        check_configuration()  # a bad storage setting stops the process at start, not at first use
        post_migrate.connect(_ensure_periodic_tasks, sender=self)


# celery-beat's periodic tasks (DESIGN.md): created once, then the admin's to edit.
PERIODIC_TASKS = {
    "baton.tick": "BATON_TICK_INTERVAL_SECONDS",
    "baton.reap": "BATON_REAPER_INTERVAL_SECONDS",
}


def _ensure_periodic_tasks(using: str = "default", **_: Any) -> None:
    from django.conf import settings
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    for name, setting in PERIODIC_TASKS.items():
        seconds = getattr(settings, setting)
        if PeriodicTask.objects.using(using).filter(name=name).exists():
            continue
        every, _created = IntervalSchedule.objects.using(using).get_or_create(
            every=max(int(seconds), 1), period=IntervalSchedule.SECONDS
        )
        PeriodicTask.objects.using(using).create(
            name=name,
            task=name,
            interval=every,
            expire_seconds=max(int(seconds) * 5, 5),  # a tick that waited this long is dropped
            description=f"Baton: {settings_help(setting)}",
        )


def settings_help(setting: str) -> str:
    return {
        "BATON_TICK_INTERVAL_SECONDS": "fire due timers (retries, pauses, sleeps, SLA deadlines)",
        "BATON_REAPER_INTERVAL_SECONDS": "recover lost workers, lost messages and stalled executions",
    }[setting]
