"""The embedded default's worker: a real Celery worker inside this process (threads pool)."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

from django.conf import settings

from orchestrator.celery import DEFAULT_QUEUE, EXECUTOR_QUEUE, app

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def embedded_worker(threads: int | None = None, stop_timeout: float = 0.2) -> Iterator[None]:
    """Run a Celery worker on kombu's in-memory transport for the duration of the block.

    Not `task_always_eager`: messages go through the broker and are consumed by worker threads,
    so Parallel branches really run at the same time, exactly as on separate worker processes.
    """
    from celery.contrib.testing.worker import TestWorkController, setup_app_for_worker
    from celery.worker import state

    setup_app_for_worker(app, "WARNING", None)
    worker = TestWorkController(
        app=app,
        concurrency=threads or settings.BATON_EMBEDDED_WORKER_THREADS,
        hostname=f"embedded-{threading.get_ident()}@localhost",
        pool="threads",
        loglevel="WARNING",
        logfile=None,
        ready_callback=None,
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        queues=[DEFAULT_QUEUE, EXECUTOR_QUEUE],
    )
    thread = threading.Thread(target=worker.start, name="baton-embedded-worker", daemon=True)
    thread.start()
    worker.ensure_started()
    from flows.services.recovery import Heartbeat

    heartbeat = Heartbeat(worker.hostname, [DEFAULT_QUEUE, EXECUTOR_QUEUE]).start()
    ticker = Ticker().start()
    try:
        yield
    finally:
        ticker.stop()
        heartbeat.stop()
        # Ask the worker to stop and give it a moment. The thread is a daemon: callers end the
        # block once the executions they care about are terminal, so whatever is left (the
        # consumer blocked in a 2 s drain, a fire-and-forget subflow) ends with the process.
        state.should_stop = 0
        # The consumer blocks up to 2 s draining an empty queue; a message wakes it to stop now.
        from flows.tasks import wake

        wake.apply_async(queue=DEFAULT_QUEUE)
        thread.join(stop_timeout)
        if not thread.is_alive():
            state.should_stop = None


class Ticker:
    """celery-beat's part in the embedded default: fire due timers, schedules and polling triggers,
    and run the reaper, in a thread.

    It sleeps until the next timer is due (at most one tick interval) and wakes at once when this
    process arms a timer, so a 100 ms retry back-off waits 100 ms, not a whole tick.
    """

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="baton-ticker", daemon=True)

    def start(self) -> Ticker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        from flows.services.timers import armed

        armed.set()

    def _run(self) -> None:
        from django.db import close_old_connections, connection
        from django.utils import timezone

        from flows.services import polling, schedules
        from flows.services.recovery import reap
        from flows.services.timers import armed, next_due, release_due

        next_reap = time.monotonic() + settings.BATON_REAPER_INTERVAL_SECONDS
        while not self._stop.is_set():
            armed.clear()
            wait = settings.BATON_TICK_INTERVAL_SECONDS
            try:
                release_due()
                schedules.fire_due()
                polling.dispatch_due()
                if time.monotonic() >= next_reap:
                    reap()
                    next_reap = time.monotonic() + settings.BATON_REAPER_INTERVAL_SECONDS
                dues = (next_due(), schedules.next_due(), polling.next_due())
                due = min((when for when in dues if when), default=None)
                if due is not None:
                    wait = min(wait, max((due - timezone.now()).total_seconds(), 0.0))
            except Exception:  # the ticker outlives a bad pass; the next one tries again
                logger.exception("embedded ticker pass failed")
                close_old_connections()
            if wait > 0:
                armed.wait(wait)
        connection.close()
