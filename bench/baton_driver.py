"""Run the benchmark scenarios on Baton in the mode the environment selects; print JSON.

Started by `bench/run.py` in a subprocess with the mode's environment (settings are read at
import). Embedded mode (no DATABASE_URL / CELERY_BROKER_URL) runs Baton's in-process worker, as
`runflow` does; production mode only starts executions and waits: the workers are separate
processes started by `run.py` (which passes `--worker-stats`, where they write what they did).

Scenarios: `sequential` and `parallel` (one N-task execution at a time), `latency` (one-task
executions started one at a time: start call → attempt start), `throughput` (one-task executions
started by several client processes at once, each with its own database connection).

SQL statements are counted on every database connection of this process (a wrapper installed
by the `connection_created` signal), except the driver's own polling; on PostgreSQL the commit of
each `transaction.atomic()` counts as a statement COMMIT (on SQLite, its BEGIN is a statement). In embedded mode that is
all of Baton's statements (the worker threads live here); in production mode only the start.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository, for `orchestrator` and `flows`
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db.backends.signals import connection_created  # noqa: E402
from flow_yaml import (  # noqa: E402
    NAMESPACE,
    PARALLEL_ID,
    SEQUENTIAL_ID,
    SINGLE_ID,
    parallel_flow,
    sequential_flow,
    single_flow,
)
from worker_stats import median_run, percentile, read_stats, stats_delta  # noqa: E402

from flows import services  # noqa: E402
from flows.bootstrap import ensure_database  # noqa: E402
from flows.engine.states import TERMINAL_STATES  # noqa: E402
from flows.models import Execution, TaskRun  # noqa: E402
from flows.services.variables import parse_iso  # noqa: E402

POLL = float(os.environ.get("BENCH_POLL", "0.005"))  # seconds between two looks at the execution's state
TENANT = "main"
TIMEOUT = 120.0


class QueryCounter:
    """Counts SQL statements by their first keyword, on every connection of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self.counts: Counter[str] = Counter()
        self.statements: Counter[str] = Counter()  # by statement text (placeholders, not values)

    def install(self) -> None:
        connection_created.connect(self._on_connection, weak=False)
        from django.db import connection

        if connection.vendor == "sqlite":
            return  # SQLite: Django sends BEGIN as a statement (counted), its COMMIT is not one
        # PostgreSQL: psycopg's BEGIN is implicit; count each transaction's COMMIT instead, as
        # bench_worker.py does, so one statement per transaction counts in both modes.
        from django.db.backends.base.base import BaseDatabaseWrapper

        commit = BaseDatabaseWrapper.commit
        if getattr(commit, "counted", False):
            return

        def counted_commit(connection: Any) -> None:
            self._wrap(lambda *_: commit(connection), "COMMIT", None, False, None)

        counted_commit.counted = True  # type: ignore[attr-defined]
        BaseDatabaseWrapper.commit = counted_commit  # type: ignore[method-assign]

    def _on_connection(self, sender: Any, connection: Any, **_: Any) -> None:
        # The signal fires on every reconnection of the same wrapper (Celery closes old
        # connections around each task): install once.
        if self._wrap not in connection.execute_wrappers:
            connection.execute_wrappers.append(self._wrap)

    def _wrap(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if not getattr(self._local, "paused", False):
            words = sql.split(None, 1)
            with self._lock:
                self.counts[words[0].upper() if words else "?"] += 1
                self.statements[sql] += 1
        return execute(sql, params, many, context)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        self._local.paused = True
        try:
            yield
        finally:
            self._local.paused = False

    def take(self) -> Counter[str]:
        with self._lock:
            counts, self.counts = self.counts, Counter()
        return counts

    def take_statements(self) -> dict[str, int]:
        with self._lock:
            statements, self.statements = self.statements, Counter()
        return dict(statements.most_common())


QUERIES = QueryCounter()


def run_once(flow_id: str) -> dict[str, Any]:
    """Start one execution and wait for its end; its timings and statement counts."""
    QUERIES.take()
    started = time.perf_counter()
    execution = services.start_execution(tenant=TENANT, namespace=NAMESPACE, flow_id=flow_id, inputs={})
    deadline = started + TIMEOUT
    with QUERIES.paused():
        while True:
            state = Execution.objects.filter(id=execution.id).values_list("state", flat=True).first()
            if state in TERMINAL_STATES:
                break
            if time.perf_counter() > deadline:
                raise TimeoutError(f"execution {execution.id} of {flow_id} still {state} after {TIMEOUT} s")
            time.sleep(POLL)
        end_to_end = time.perf_counter() - started
        counts = QUERIES.take()
        execution = Execution.objects.get(id=execution.id)
        runs = list(
            TaskRun.objects.filter(execution_id=execution.id).values("start_date", "claimed_at", "end_date")
        )
    if execution.state != "SUCCESS":
        raise RuntimeError(f"execution {execution.id} of {flow_id} ended {execution.state}")
    assert execution.end_date is not None
    worked = [run for run in runs if run["claimed_at"] is not None]  # not the Parallel run itself
    return {
        # created (SUBMITTED) → claimed by a worker: broker and worker pick-up latency
        "to_claim": statistics.median(
            (run["claimed_at"] - run["start_date"]).total_seconds() for run in worked
        ),
        # claimed → end_date stamped: the attempt itself, up to recording its result
        "claim_to_end": statistics.median(
            (run["end_date"] - run["claimed_at"]).total_seconds() for run in worked
        ),
        "end_to_end": end_to_end,
        "execution": (execution.end_date - execution.start_date).total_seconds(),
        "taskruns": len(runs),
        "queries": sum(counts.values()),
        "queries_by_kind": dict(counts),
    }


def measure(flow_id: str, repeat: int, warmup: int) -> dict[str, Any]:
    for _ in range(warmup):
        run_once(flow_id)
    QUERIES.take_statements()
    runs = [run_once(flow_id) for _ in range(repeat)]
    kinds: Counter[str] = Counter()
    for run in runs:
        kinds.update(run["queries_by_kind"])
    return {
        "end_to_end": statistics.median(run["end_to_end"] for run in runs),
        "execution": statistics.median(run["execution"] for run in runs),
        "end_to_end_all": [run["end_to_end"] for run in runs],
        "execution_all": [run["execution"] for run in runs],
        "executions": len(runs),
        "worker_executions": warmup + repeat,  # what the workers' statistics cover
        "taskruns": runs[0]["taskruns"],
        "to_claim": statistics.median(run["to_claim"] for run in runs),
        "claim_to_end": statistics.median(run["claim_to_end"] for run in runs),
        "queries": statistics.median(run["queries"] for run in runs),
        "queries_by_kind": {kind: count / len(runs) for kind, count in kinds.most_common()},
        "statements": QUERIES.take_statements(),
    }


# ---------------------------------------------------------------------------------------------- latency


def latency(runs: int, warmup: int) -> dict[str, Any]:
    """Start one-task executions one at a time: from the start call to the task's attempt starting."""
    samples = []
    for index in range(warmup + runs):
        if index == warmup:
            QUERIES.take_statements()
        QUERIES.take()
        called = time.time()
        execution = services.start_execution(tenant=TENANT, namespace=NAMESPACE, flow_id=SINGLE_ID, inputs={})
        returned = time.time()
        queries = sum(QUERIES.take().values())
        with QUERIES.paused():
            _wait_terminal([execution.id])
            run = TaskRun.objects.filter(execution_id=execution.id).values("claimed_at", "attempts").get()
        claimed = run["claimed_at"].timestamp()
        start_date = parse_iso(run["attempts"][0]["startDate"]).timestamp()
        if index >= warmup:
            samples.append(
                {"latency": claimed - called, "call": returned - called, "start_date": start_date - called,
                 "queries": queries}
            )  # fmt: skip
    latencies = [sample["latency"] for sample in samples]
    return {
        "runs": runs,
        "worker_executions": warmup + runs,
        "median": statistics.median(latencies),
        "p95": percentile(latencies, 0.95),
        "max": max(latencies),
        "call_median": statistics.median(sample["call"] for sample in samples),
        "after_call_median": statistics.median(sample["latency"] - sample["call"] for sample in samples),
        "start_date_median": statistics.median(sample["start_date"] for sample in samples),
        "start_queries": statistics.median(sample["queries"] for sample in samples),
        "start_statements": {sql: count / runs for sql, count in QUERIES.take_statements().items()},
    }


def _wait_terminal(ids: list[str], timeout: float = TIMEOUT, poll: float = POLL) -> None:
    deadline = time.perf_counter() + timeout
    while Execution.objects.filter(id__in=ids).exclude(state__in=TERMINAL_STATES).exists():
        if time.perf_counter() > deadline:
            raise TimeoutError(
                f"executions still running after {timeout} s (a lost broker message: was Redis restarted?)"
            )
        time.sleep(poll)


# ---------------------------------------------------------------------------------------------- throughput


def _client(count: int, warmup: int, ready: Any, go: Any, done: Any, results: Any, profile: str) -> None:
    """One client process (own DB connection): `warmup` starts, then `count` starts as fast as it can."""
    from django.db import connection

    QUERIES.install()
    connection.ensure_connection()
    warm = [
        services.start_execution(tenant=TENANT, namespace=NAMESPACE, flow_id=SINGLE_ID, inputs={}).id
        for _ in range(warmup)
    ]
    ready.put(warm)
    go.wait()
    profiler = None
    if profile:
        import cProfile

        clock = time.process_time if os.environ.get("BENCH_PROFILE_CLOCK") == "cpu" else time.perf_counter
        profiler = cProfile.Profile(clock)
        profiler.enable()
    QUERIES.take()
    cpu = time.process_time()
    first = time.time()
    ids = [
        services.start_execution(tenant=TENANT, namespace=NAMESPACE, flow_id=SINGLE_ID, inputs={}).id
        for _ in range(count)
    ]
    last = time.time()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(Path(profile) / f"client-{os.getpid()}.prof")
    results.put(
        {"first": first, "last": last, "ids": ids, "queries": sum(QUERIES.take().values()),
         "cpu": time.process_time() - cpu}
    )  # fmt: skip
    done.wait()  # alive until the driver has read everyone's CPU time


def throughput(executions: int, clients: int, warmup: int, profile: str = "") -> dict[str, Any]:
    """`executions` one-task executions started by `clients` processes at once; executions per second
    from the first start call to the last end (the executions' own end_date)."""
    import multiprocessing

    from cpu import by_role, snapshot

    context = multiprocessing.get_context("spawn")
    ready, results = context.Queue(), context.Queue()
    go, done = context.Event(), context.Event()
    shares = [executions // clients + (1 if index < executions % clients else 0) for index in range(clients)]
    processes = [
        context.Process(target=_client, args=(share, warmup, ready, go, done, results, profile), daemon=True)
        for share in shares
    ]
    for process in processes:
        process.start()
    try:
        warm = [item for _ in processes for item in ready.get(timeout=TIMEOUT)]
        _wait_terminal(warm)
        before = snapshot()
        go.set()
        reports = [results.get(timeout=TIMEOUT) for _ in processes]
        ids = [item for report in reports for item in report["ids"]]
        _wait_terminal(ids, timeout=180.0, poll=0.05)
        after = snapshot()
    finally:
        done.set()
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    rows = list(Execution.objects.filter(id__in=ids).values("state", "start_date", "end_date"))
    states = Counter(row["state"] for row in rows)
    if states != {"SUCCESS": executions}:
        raise RuntimeError(f"throughput executions ended {dict(states)}")
    first = min(report["first"] for report in reports)
    last_end = max(row["end_date"] for row in rows).timestamp()
    durations = [(row["end_date"] - row["start_date"]).total_seconds() for row in rows]
    wall = last_end - first
    return {
        "executions": executions,
        "clients": clients,
        "worker_executions": executions + warmup * clients,
        "seconds": wall,
        "per_second": executions / wall,
        "starts_seconds": max(report["last"] for report in reports) - first,
        "starts_per_second": executions / (max(report["last"] for report in reports) - first),
        "client_cpu_per_start": sum(report["cpu"] for report in reports) / executions,
        "start_queries": sum(report["queries"] for report in reports) / executions,
        "duration_median": statistics.median(durations),
        "duration_p95": percentile(durations, 0.95),
        "cpu": by_role(before, after, [process.pid for process in processes if process.pid] + [os.getpid()]),
    }


# ---------------------------------------------------------------------------------------------- main


def _with_worker_stats(directory: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """`run()`, plus what the out-of-process workers recorded meanwhile (production mode)."""
    if not directory:
        return run()
    from cpu import by_role, snapshot

    before, cpu_before = read_stats(Path(directory)), snapshot()
    result = run()
    cpu_after = snapshot()  # before the sleep: CPU seconds of the scenario, warm-up runs included
    time.sleep(0.5)  # the workers write their statistics every 0.2 s
    result["workers"] = stats_delta(before, read_stats(Path(directory)))
    result["scenario_cpu"] = by_role(cpu_before, cpu_after, [os.getpid()], "driver")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="sequential,parallel")
    parser.add_argument("--size", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--executions", type=int, default=1000, help="throughput: executions to start")
    parser.add_argument("--clients", type=int, default=4, help="throughput: client processes")
    parser.add_argument("--throughput-repeat", type=int, default=3, help="throughput: runs (median reported)")
    parser.add_argument("--latency-runs", type=int, default=100)
    parser.add_argument("--worker-stats", default="", help="directory where the workers write statistics")
    parser.add_argument("--profile", default="", help="directory for the throughput clients' cProfile")
    args = parser.parse_args()
    scenarios = args.scenarios.split(",")
    QUERIES.install()
    ensure_database()  # embedded only; production databases are migrated by run.py
    services.ensure_tenant(TENANT)
    services.save_flow_revision(TENANT, sequential_flow(args.size))
    services.save_flow_revision(TENANT, parallel_flow(args.size))
    services.save_flow_revision(TENANT, single_flow())
    worker: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if settings.EMBEDDED_BROKER:
        from flows.worker import embedded_worker

        worker = embedded_worker()
    result: dict[str, Any] = {"embedded_worker": settings.EMBEDDED_BROKER}
    with worker:
        for flow_id in (SEQUENTIAL_ID, PARALLEL_ID):
            if flow_id in scenarios:
                result[flow_id] = _with_worker_stats(
                    args.worker_stats, lambda flow_id=flow_id: measure(flow_id, args.repeat, args.warmup)
                )
        if "latency" in scenarios:
            result["latency"] = _with_worker_stats(
                args.worker_stats, lambda: latency(args.latency_runs, max(args.warmup, 1) * 5)
            )
        if "throughput" in scenarios:
            from django.db import connection

            connection.close()  # not shared with the client processes

            def repeated() -> dict[str, Any]:
                runs = [
                    throughput(args.executions, args.clients, max(args.warmup, 1) * 5, args.profile)
                    for _ in range(args.throughput_repeat)
                ]
                chosen = median_run(runs, "per_second")
                chosen["worker_executions"] = sum(run["worker_executions"] for run in runs)
                return chosen

            result["throughput"] = _with_worker_stats(args.worker_stats, repeated)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
