"""The Celery app of the benchmark's Baton workers: Baton's own app, plus statistics per message.

    python -m celery -A bench_worker worker -Q default,executor --pool=prefork --concurrency=2

Nothing of Baton changes: this module imports `orchestrator.celery.app` and connects to Celery's
and Django's signals. With `BENCH_WORKER_STATS_DIR` set, each worker process counts, per Celery
task name, the messages it ran, their wall time and CPU time (of the task's thread), and the SQL statements they sent (count and time
spent waiting for the database, per statement text: Django's SQL with `%s` placeholders; the commit
of a `transaction.atomic()` block counts as a statement `COMMIT`, a statement outside one commits
by itself in PostgreSQL's autocommit), and writes
them to `<dir>/<pid>.json` at most every 0.2 s. With `BENCH_WORKER_PROFILE_DIR` set too, each process
also runs cProfile around every task and writes `<dir>/<pid>.prof` (pstats) at most every second,
timing wall time, or CPU time of the process with `BENCH_PROFILE_CLOCK=cpu`.
"""

from __future__ import annotations

import cProfile
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from celery.signals import task_postrun, task_prerun, worker_process_init
from django.db.backends.signals import connection_created

from orchestrator.celery import app

__all__ = ["app"]

STATS_DIR = os.environ.get("BENCH_WORKER_STATS_DIR", "")
PROFILE_DIR = os.environ.get("BENCH_WORKER_PROFILE_DIR", "")


class _Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tasks: dict[str, list[float]] = {}  # name -> [messages, seconds, statements, sql s, cpu s]
        self.sql: dict[str, list[float]] = {}  # statement -> [count, seconds]
        self.in_task = threading.local()
        self.statements = 0
        self.sql_seconds = 0.0
        self.dirty = False
        self.profiler: cProfile.Profile | None = None
        self.profile_dumped = 0.0

    # -- SQL (every statement of every connection of this process, inside a task or not)
    def wrap(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            spent = time.perf_counter() - started
            with self.lock:
                entry = self.sql.setdefault(sql, [0, 0.0])
                entry[0] += 1
                entry[1] += spent
                if getattr(self.in_task, "on", False):
                    self.statements += 1
                    self.sql_seconds += spent

    # -- tasks
    def prerun(self) -> None:
        self.in_task.on = True
        self.in_task.started = time.perf_counter()
        self.in_task.cpu = time.thread_time()
        self.in_task.statements, self.in_task.sql_seconds = self.statements, self.sql_seconds
        if self.profiler is not None:
            self.profiler.enable()

    def postrun(self, name: str) -> None:
        if self.profiler is not None:
            self.profiler.disable()
            if time.monotonic() - self.profile_dumped > 1.0:
                self.profile_dumped = time.monotonic()
                self.profiler.dump_stats(Path(PROFILE_DIR) / f"{os.getpid()}.prof")
        spent = time.perf_counter() - self.in_task.started
        cpu = time.thread_time() - self.in_task.cpu
        with self.lock:
            entry = self.tasks.setdefault(name, [0, 0.0, 0, 0.0, 0.0])
            entry[0] += 1
            entry[1] += spent
            entry[2] += self.statements - self.in_task.statements
            entry[3] += self.sql_seconds - self.in_task.sql_seconds
            entry[4] += cpu
            self.dirty = True
        self.in_task.on = False

    def dump(self) -> None:
        with self.lock:
            if not self.dirty:
                return
            self.dirty = False
            data = {"tasks": self.tasks, "sql": self.sql}
            text = json.dumps(data)
        path = Path(STATS_DIR) / f"{os.getpid()}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(text)
        temporary.replace(path)

    def flush_forever(self) -> None:
        while True:
            time.sleep(0.2)
            self.dump()


_stats = _Stats()

if STATS_DIR:
    from django.db.backends.base.base import BaseDatabaseWrapper

    _commit = BaseDatabaseWrapper.commit

    def _counted_commit(self: Any) -> None:
        """Explicit commits (the end of `transaction.atomic()`), counted as the statement COMMIT."""
        _stats.wrap(lambda *_: _commit(self), "COMMIT", None, False, None)

    BaseDatabaseWrapper.commit = _counted_commit  # type: ignore[method-assign]

    def _on_connection(sender: Any, connection: Any, **_: Any) -> None:
        if _stats.wrap not in connection.execute_wrappers:
            connection.execute_wrappers.append(_stats.wrap)

    connection_created.connect(_on_connection, weak=False)

    @worker_process_init.connect(weak=False)
    def _child_started(**_: Any) -> None:
        """In each pool process (after fork): start from zero, flush in the background."""
        _stats.tasks.clear()
        _stats.sql.clear()
        if PROFILE_DIR:
            clock = time.process_time if os.environ.get("BENCH_PROFILE_CLOCK") == "cpu" else time.perf_counter
            _stats.profiler = cProfile.Profile(clock)
        threading.Thread(target=_stats.flush_forever, name="bench-stats", daemon=True).start()

    @task_prerun.connect(weak=False)
    def _prerun(**_: Any) -> None:
        _stats.prerun()

    @task_postrun.connect(weak=False)
    def _postrun(sender: Any = None, **_: Any) -> None:
        _stats.postrun(getattr(sender, "name", "?"))
