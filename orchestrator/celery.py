"""The Celery app. Tasks are thin adapters over `flows.services`; this module is wiring only."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")

app = Celery("orchestrator")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["flows"])

EXECUTOR_QUEUE = "executor"
DEFAULT_QUEUE = "default"
# Each task's queue, by name (Celery 6 drops the per-task `queue` attribute).
_ROUTES: dict[str, dict[str, str]] = {}
app.conf.task_routes = _ROUTES


# Celery's Django fixup closes every database connection around every task unless this is set,
# which costs a new PostgreSQL session per task (measured in bench/). Baton's tasks instead close
# only obsolete or broken connections (CONN_MAX_AGE, errors), the way Django's request cycle does.
app.conf.CELERY_DB_REUSE_MAX = 2**31


def baton_task(
    name: str, queue: str = DEFAULT_QUEUE, time_limit: float | None = None
) -> Callable[[Callable[..., Any]], Any]:
    """Register a Celery task with Baton's delivery rules: late ack, requeue on worker loss, no result.

    `time_limit` (seconds; prefork workers enforce it) ends a run that hangs, so that it cannot
    hold a worker slot for good: for the periodic tasks, whose next run comes anyway.
    """

    def decorate(func: Callable[..., Any]) -> Any:
        _ROUTES[name] = {"queue": queue}

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            from django.db import InterfaceError, OperationalError, close_old_connections, connection

            close_old_connections()
            try:
                try:
                    return func(*args, **kwargs)
                except (OperationalError, InterfaceError):
                    # A reused connection the database closed (a restart, a terminated session) fails
                    # on first use. Every Baton task is safe to repeat (compare-and-set on the rows), so
                    # run it once more on a new connection rather than leave its work to the reaper.
                    connection.close()
                    return func(*args, **kwargs)
            finally:
                close_old_connections()

        return app.task(
            name=name,
            acks_late=True,
            reject_on_worker_lost=True,
            ignore_result=True,
            time_limit=time_limit,
        )(run)

    return decorate
