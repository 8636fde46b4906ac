"""Celery tasks: thin adapters over `flows.services`. Names are stable: queued messages carry them."""

from __future__ import annotations

import logging
from typing import Any

from celery.signals import worker_ready

from orchestrator.celery import DEFAULT_QUEUE, EXECUTOR_QUEUE, baton_task

logger = logging.getLogger(__name__)


@worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    """Each worker process renews the leases of the task runs it runs, and says which queues it serves."""
    from flows.services.recovery import Heartbeat

    queues = sorted(sender.app.amqp.queues.consume_from) if sender is not None else []
    Heartbeat(sender.hostname if sender is not None else "worker", queues).start()


@baton_task(name="baton.run_task", queue=DEFAULT_QUEUE)
def run_task(taskrun_id: str, attempt: int) -> None:
    from flows.services import run_attempt

    run_attempt(taskrun_id, attempt, request_id=run_task.request.id or "")


@baton_task(name="baton.advance", queue=EXECUTOR_QUEUE)
def advance(execution_id: str) -> None:
    from flows.services import advance_execution

    advance_execution(execution_id)


@baton_task(name="baton.complete_subflow", queue=EXECUTOR_QUEUE)
def complete_subflow(child_execution_id: str) -> None:
    from flows.services import complete_subflow as complete

    complete(child_execution_id)


# A tick or a reaper pass that hangs (a lock it waits for, a lost connection) is ended, so it never
# holds a worker slot for good: the next one comes with beat's next beat.
PERIODIC_TIME_LIMIT = 300.0


@baton_task(name="baton.tick", queue=EXECUTOR_QUEUE, time_limit=PERIODIC_TIME_LIMIT)
def tick() -> None:
    """Sent by celery-beat every second: fire due timers (retries, pauses, sleeps, SLA deadlines)
    and due schedules, and send the due polling triggers to workers."""
    from flows.services.polling import dispatch_due
    from flows.services.schedules import fire_due
    from flows.services.timers import release_due

    release_due()
    fire_due()
    dispatch_due()


# On the workers' queue, like a task run: the call may take its whole timeout, which must not hold
# the executor queue that advances executions (Kestra also evaluates polling triggers on workers).
@baton_task(name="baton.poll_trigger", queue=DEFAULT_QUEUE)
def poll_trigger(trigger_pk: int, claimed_at: str, lease: str) -> None:
    """Evaluate one polling trigger that a tick claimed until `lease`."""
    from flows.services.polling import evaluate
    from flows.services.variables import parse_iso

    evaluate(trigger_pk, parse_iso(claimed_at), parse_iso(lease))


@baton_task(name="baton.reap", queue=EXECUTOR_QUEUE, time_limit=PERIODIC_TIME_LIMIT)
def reap() -> None:
    """Sent by celery-beat: recover task runs whose worker vanished and executions that stopped moving."""
    from flows.services.recovery import reap as reap_now

    reap_now()


@baton_task(name="baton.kill", queue=EXECUTOR_QUEUE)
def kill(execution_id: str, reason: str | None = None) -> None:
    from flows.services.control import kill_execution

    kill_execution(execution_id, reason=reason)


@baton_task(name="baton.wake", queue=DEFAULT_QUEUE)
def wake() -> None:
    """Does nothing: sent to wake a worker's consumer loop (embedded worker shutdown)."""


def worker_queue(worker_group: str) -> str:
    from django.conf import settings

    if not worker_group or settings.EMBEDDED_BROKER:  # the in-process worker serves every group
        return DEFAULT_QUEUE
    return f"group.{worker_group}"


def send_run_task(taskrun_id: str, attempt: int, worker_group: str = "") -> None:
    _send(run_task, (taskrun_id, attempt), queue=worker_queue(worker_group))


def send_advance(execution_id: str) -> None:
    _send(advance, (execution_id,))


def send_complete_subflow(child_execution_id: str) -> None:
    _send(complete_subflow, (child_execution_id,))


def send_kill(execution_id: str, reason: str | None = None) -> None:
    _send(kill, (execution_id, reason))


def send_poll_trigger(trigger_pk: int, claimed_at: str, lease: str) -> None:
    _send(poll_trigger, (trigger_pk, claimed_at, lease))  # lost: the lease expires, a tick claims it again


def _send(task: Any, args: tuple[Any, ...], queue: str | None = None) -> None:
    """Publish after commit. A broker outage loses the message, never the state change: the row
    says what must happen, and the reaper sends it again (DESIGN.md: at least once)."""
    try:
        task.apply_async(args, queue=queue)
    except Exception:  # kombu raises several types for a broker that is down
        logger.warning(
            "could not publish %s%r; the reaper will send it again", task.name, args, exc_info=True
        )
