"""Why an unfinished execution is not moving, in words a person can act on.

Computed when asked (a few small queries), never stored: the rows already say it.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings

from flows.engine.states import State
from flows.models import Execution, TaskRun, Timer
from flows.services.variables import iso


def waiting_reasons(execution: Execution) -> list[str]:
    """Empty when the execution has ended or some task of it is running on a worker."""
    if execution.is_terminal:
        return []
    if execution.state == State.QUEUED:
        return [_queued(execution)]
    if execution.state == State.CREATED and execution.schedule_date is not None:
        return [f"scheduled: starts at {iso(execution.schedule_date)}"]
    if execution.paused_by_user:
        return ["paused by hand: resume it to go on"]
    runs = list(
        TaskRun.objects.filter(
            execution_id=execution.id,
            state__in=[State.SUBMITTED, State.RETRYING, State.PAUSED, State.RUNNING],
        ).order_by("seq")
    )
    if execution.state == State.KILLING:
        on_worker = sum(1 for run in runs if run.state == State.RUNNING and run.lease_until)
        return [f"killing: waiting for {on_worker} task run(s) on workers to stop"]
    timers = {
        (timer.kind, timer.target): timer.due_at for timer in Timer.objects.filter(execution_id=execution.id)
    }
    reasons: list[str] = []
    for run in runs:
        reason = _run_reason(run, timers)
        if reason:
            reasons.append(reason)
    if any(run.state == State.RUNNING and run.lease_until for run in runs):
        return []  # something is moving; the others wait for it
    return reasons


def _run_reason(run: TaskRun, timers: dict[tuple[str, str], datetime]) -> str | None:
    due = timers.get((Timer.Kind.PAUSE, run.id))
    if run.state == State.PAUSED:
        return f"paused at task `{run.task_id}` until " + (iso(due) if due else "resumed")
    if run.state == State.RETRYING:
        retry = timers.get((Timer.Kind.RETRY, run.id))
        return f"task `{run.task_id}` retries (attempt {run.attempt}) at {iso(retry) if retry else 'once released'}"
    if run.state == State.SUBMITTED:
        if run.worker_group and not settings.EMBEDDED_BROKER and not _group_alive(run.worker_group):
            return f"task `{run.task_id}` waits for a worker of group `{run.worker_group}`: none is alive"
        return f"task `{run.task_id}` waits for a free worker"
    wake = timers.get((Timer.Kind.WAKE, run.id))
    if run.state == State.RUNNING and wake:
        return f"task `{run.task_id}` sleeps until {iso(wake)}"
    child_id = run.memo.get("childId") if run.state == State.RUNNING else None
    if child_id and run.memo.get("wait", True):
        child = Execution.objects.filter(id=child_id).values_list("namespace", "flow_id").first()
        name = f"{child[0]}.{child[1]}" if child else "?"
        return f"task `{run.task_id}` waits on subflow `{name}` (execution {child_id})"
    return None


def _queued(execution: Execution) -> str:
    from flows.services.executions import execution_spec

    spec = execution_spec(execution)
    limit = spec.concurrency.limit if spec.concurrency else "?"
    ahead = Execution.objects.filter(
        tenant_id=execution.tenant_id,
        namespace=execution.namespace,
        flow_id=execution.flow_id,
        state=State.QUEUED,
        start_date__lt=execution.start_date,
    ).count()
    return f"queued: flow `{execution.namespace}.{execution.flow_id}` runs at its concurrency limit ({limit}); {ahead} queued ahead"


def _group_alive(group: str) -> bool:
    from flows.services.recovery import live_workers

    queue = f"group.{group}"
    return any(queue in worker.queues for worker in live_workers())
