"""Timers: retry back-off, Pause timeouts, SLA deadlines and subflow retries as rows with a `due_at`.

Nothing waits inside the broker (a countdown message is lost with Redis, and holds a worker's
prefetch slot). `arm()` writes a row in the caller's transaction; the tick (celery-beat in
production, a thread in the embedded default) releases due rows, each in its own transaction,
deleting the row together with what it does, so a timer fires once even with two ticks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from django.db import DatabaseError, transaction
from django.utils import timezone

from flows.models import Execution, Timer

logger = logging.getLogger(__name__)
Kind = Timer.Kind

# Set when a timer is armed in this process: the embedded ticker wakes at once to re-plan its sleep.
armed = threading.Event()


def arm(execution: Execution, kind: str, target: str, due_at: datetime) -> None:
    """Make `kind` happen for `target` at `due_at` (re-arming moves the existing timer). The caller
    holds the execution's lock (or has just created it)."""
    if not execution.has_timers:  # so that the end of an execution without timers deletes none
        execution.has_timers = True
        Execution.objects.filter(id=execution.id).update(has_timers=True)
    Timer.objects.update_or_create(
        execution=execution,
        kind=kind,
        target=target,
        defaults={"tenant_id": execution.tenant_id, "due_at": due_at},
    )
    transaction.on_commit(armed.set)


def arm_in(execution: Execution, kind: str, target: str, seconds: float) -> None:
    arm(execution, kind, target, timezone.now() + timedelta(seconds=max(seconds, 0.0)))


def disarm(execution_id: str, kind: str | None = None, target: str | None = None) -> None:
    timers = Timer.objects.filter(execution_id=execution_id)
    if kind is not None:
        timers = timers.filter(kind=kind)
    if target is not None:
        timers = timers.filter(target=target)
    timers.delete()


def next_due() -> datetime | None:
    return Timer.objects.order_by("due_at").values_list("due_at", flat=True).first()


def release_due(now: datetime | None = None, limit: int = 500) -> int:
    """Fire the timers due by `now`; returns how many fired. Safe to run in several processes."""
    now = now or timezone.now()
    ids = list(Timer.objects.filter(due_at__lte=now).order_by("due_at").values_list("id", flat=True)[:limit])
    fired = 0
    for timer_id in ids:
        try:
            fired += _fire(timer_id)
        except DatabaseError:
            raise  # the database is gone: the next tick tries again
        except Exception:  # one bad timer must not stop the others; it is retried a little later
            logger.exception("timer %s failed", timer_id)
            Timer.objects.filter(id=timer_id).update(due_at=timezone.now() + timedelta(seconds=10))
    return fired


def _fire(timer_id: int) -> int:
    with transaction.atomic():
        timer = Timer.objects.select_for_update(skip_locked=True).filter(id=timer_id).first()
        if timer is None:
            return 0  # another tick has it, or it was disarmed
        timer.delete()
        _ACTIONS[timer.kind](timer.execution_id, timer.target)
    return 1


def _retry(execution_id: str, taskrun_id: str) -> None:
    from flows.services.attempts import submit_retry

    submit_retry(execution_id, taskrun_id)


def _pause(execution_id: str, taskrun_id: str) -> None:
    from flows.services.executions import resume_paused_run

    resume_paused_run(execution_id, taskrun_id)


def _sla(execution_id: str, sla_id: str) -> None:
    from flows.services.executions import check_sla

    check_sla(execution_id, sla_id)


def _wake(execution_id: str, taskrun_id: str) -> None:
    from flows.services.attempts import wake_run

    wake_run(execution_id, taskrun_id)


def _advance(execution_id: str, _target: str) -> None:
    from flows.services.executions import advance_execution

    advance_execution(execution_id)


def _start(execution_id: str, _target: str) -> None:
    from flows.services.executions import start_scheduled

    start_scheduled(execution_id)


_ACTIONS: dict[str, Callable[[str, str], None]] = {
    Kind.RETRY: _retry,
    Kind.PAUSE: _pause,
    Kind.SLA: _sla,
    Kind.ADVANCE: _advance,
    Kind.WAKE: _wake,
    Kind.START: _start,
}
