"""Recovery: worker heartbeats and leases, and the reaper that repairs what a crash left behind.

Delivery is at least once (DESIGN.md). A worker holds a lease on each task run it runs and renews
it by heartbeat; when a worker dies (SIGKILL, lost machine) its leases expire and the reaper gives
those runs a new attempt. Messages lost by the broker (Redis restarted without persistence) leave
runs SUBMITTED: the reaper sends them again. Executions with nothing in flight (an executor that
hit a database error, a lost subflow completion) are advanced again.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from flows.engine.retry import final_state
from flows.engine.states import TERMINAL_STATES, State
from flows.models import Execution, TaskRun, Timer, Trigger, Worker
from flows.services.executions import (
    ExecutionScope,
    _advance_locked,
    add_history,
    close_attempt,
    execution_spec,
    load_rows,
)

logger = logging.getLogger(__name__)
_BATCH = 200


# ---------------------------------------------------------------------------------------------- heartbeat


def renew_leases(request_ids: list[str]) -> int:
    """Extend the leases of the runs claimed by the messages this worker is processing (one UPDATE
    for all of them; a message runs several runs one after the other when it continues a flow)."""
    if not request_ids:
        return 0
    until = timezone.now() + timedelta(seconds=settings.BATON_LEASE_SECONDS)
    return TaskRun.objects.filter(
        claimed_by__in=request_ids, state=State.RUNNING, lease_until__isnull=False
    ).update(lease_until=until)


def record_worker(hostname: str, queues: list[str]) -> None:
    now = timezone.now()
    Worker.objects.update_or_create(hostname=hostname, defaults={"queues": queues, "last_seen": now})


def live_workers() -> list[Worker]:
    """Workers seen within three heartbeats."""
    horizon = timezone.now() - timedelta(seconds=3 * heartbeat_interval())
    return list(Worker.objects.filter(last_seen__gte=horizon))


def heartbeat_interval() -> float:
    return max(settings.BATON_LEASE_SECONDS / 3.0, 0.2)


class Heartbeat:
    """A thread in each worker process: renews the leases of the task runs the worker is running
    (Celery's own list of active requests, so a child killed by the OS stops renewing at once) and
    records the worker as alive for its queues."""

    def __init__(self, hostname: str, queues: list[str]) -> None:
        self.hostname = hostname
        self.queues = queues
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="baton-heartbeat", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def beat(self) -> None:
        renew_leases(running_request_ids())
        record_worker(self.hostname, self.queues)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
            except Exception:  # a database blip must not end the heartbeat
                logger.warning("heartbeat failed", exc_info=True)
                close_old_connections()
            self._stop.wait(heartbeat_interval())
        connection.close()


def running_request_ids() -> list[str]:
    from celery.worker import state

    return [request.id for request in list(state.active_requests) if request.name == "baton.run_task"]


# ---------------------------------------------------------------------------------------------- reaper


def reap() -> dict[str, int]:
    """One pass of the reaper; returns how many runs and executions it repaired, by kind."""
    return {
        "lost": _reap_lost_workers(),
        "resent": _resend_submitted(),
        "advanced": _advance_stalled(),
        "unlocked": _release_orphan_trigger_locks(),
    }


def _release_orphan_trigger_locks() -> int:
    """A trigger waits for the execution it started to end; if that execution ended without
    releasing it (deleted, or ended by a version without the lock), release it here."""
    locked = dict(Trigger.objects.exclude(execution_id="").values_list("execution_id", "pk")[:_BATCH])
    if not locked:
        return 0
    running = set(
        Execution.objects.filter(id__in=list(locked))
        .exclude(state__in=TERMINAL_STATES)
        .values_list("id", flat=True)
    )
    orphans = [pk for execution_id, pk in locked.items() if execution_id not in running]
    return Trigger.objects.filter(pk__in=orphans).update(execution_id="", updated=timezone.now())


def _reap_lost_workers() -> int:
    now = timezone.now()
    expired = list(
        TaskRun.objects.filter(state=State.RUNNING, lease_until__lt=now).values_list(
            "id", "execution_id", "attempt"
        )[:_BATCH]
    )
    for taskrun_id, execution_id, attempt in expired:
        _worker_lost(execution_id, taskrun_id, attempt)
    return len(expired)


def _worker_lost(execution_id: str, taskrun_id: str, attempt: int) -> None:
    """The worker running this attempt stopped renewing its lease: record the attempt as KILLED and
    send a new one (or fail the run after too many losses, so a task that kills workers ends)."""
    from flows.tasks import send_run_task

    with transaction.atomic():
        execution = Execution.objects.select_for_update().filter(id=execution_id).first()
        now = timezone.now()
        row = TaskRun.objects.filter(
            id=taskrun_id, state=State.RUNNING, attempt=attempt, lease_until__lt=now
        ).first()
        if execution is None or row is None:
            return
        close_attempt(row, State.KILLED, now)
        losses = int(row.memo.get("workerLosses", 0)) + 1
        row.memo = {**row.memo, "workerLosses": losses}
        row.lease_until = None
        spec = execution_spec(execution)
        scope = ExecutionScope(
            execution, spec, [row if item.id == row.id else item for item in load_rows(execution_id)]
        )
        stopping = execution.is_terminal or execution.state == State.KILLING
        if stopping or losses >= settings.BATON_MAX_WORKER_LOSSES:
            task = scope.spec_task(row.task_id)
            state = State.KILLED if stopping else State.FAILED
            scope.log(
                "ERROR",
                f"The worker running attempt {attempt} was lost ({losses} time(s)); the task run ends {state}",
                taskrun_id=row.id,
                task_id=row.task_id,
            )
            add_history(row, final_state(task, state) if task is not None and not stopping else state, now)
            row.end_date = now
            row.save()
            if not execution.is_terminal:
                _advance_locked(execution, spec, list(scope.rows.values()))
            scope.writer.flush()
            return
        scope.log(
            "WARN",
            f"The worker running attempt {attempt} was lost; starting attempt {attempt + 1}",
            taskrun_id=row.id,
            task_id=row.task_id,
        )
        scope.writer.flush()
        add_history(row, State.RETRYING, now)
        row.state = State.SUBMITTED
        row.attempt = attempt + 1
        row.submitted_at = now
        row.save()
        transaction.on_commit(partial(send_run_task, row.id, row.attempt, row.worker_group))


def _resend_submitted() -> int:
    """Send again the message of runs still waiting for a worker after BATON_RESUBMIT_AFTER_SECONDS:
    the broker may have lost it. A duplicate is harmless (the claim is compare-and-set)."""
    from flows.tasks import send_run_task

    now = timezone.now()
    horizon = now - timedelta(seconds=settings.BATON_RESUBMIT_AFTER_SECONDS)
    stale = list(
        TaskRun.objects.filter(state=State.SUBMITTED)
        .filter(Q(submitted_at__lt=horizon) | Q(submitted_at__isnull=True))
        .values_list("id", "attempt", "worker_group", "submitted_at")[:_BATCH]
    )
    resent = 0
    for taskrun_id, attempt, worker_group, submitted_at in stale:
        updated = TaskRun.objects.filter(
            id=taskrun_id, state=State.SUBMITTED, attempt=attempt, submitted_at=submitted_at
        ).update(submitted_at=now)
        if updated:  # another reaper did not get there first
            send_run_task(taskrun_id, attempt, worker_group)
            resent += 1
    return resent


def _advance_stalled() -> int:
    """Advance unfinished executions that have nothing in flight: no run on or sent to a worker, no
    timer, not paused. Also closes Subflow runs whose child ended but whose completion was lost."""
    from flows.services.executions import advance_execution, complete_subflow

    horizon = timezone.now() - timedelta(seconds=settings.BATON_RESUBMIT_AFTER_SECONDS)
    in_flight = TaskRun.objects.filter(execution_id=OuterRef("id")).filter(
        Q(state__in=[State.SUBMITTED, State.RETRYING, State.PAUSED])
        | Q(state=State.RUNNING, lease_until__isnull=False)
    )
    stalled = list(
        Execution.objects.filter(
            state__in=[State.CREATED, State.RUNNING, State.KILLING],
            start_date__lt=horizon,
            paused_by_user=False,
        )
        .exclude(Exists(in_flight))
        .exclude(Exists(Timer.objects.filter(execution_id=OuterRef("id"))))
        .values_list("id", flat=True)[:_BATCH]
    )
    for execution_id in stalled:
        children = Execution.objects.filter(parent_id=execution_id, state__in=TERMINAL_STATES)
        for child_id in children.values_list("id", flat=True):
            complete_subflow(child_id)
        advance_execution(execution_id)
    return len(stalled)
