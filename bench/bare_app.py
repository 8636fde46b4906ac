"""The baseline: a bare Celery app with one no-op task, run as a chain and as a group of N, as
M independent messages (throughput), and one message at a time (send → task start latency).

Same delivery settings as Baton (late ack, requeue on worker loss, prefetch 1, no result, JSON).
Completion is signalled without polling: every task increments a counter and the task that
brings it to N pushes onto a list the driver waits on with BLPOP (Redis), or sets an event
(in-process worker on kombu's memory:// transport, the embedded default's setup).

Worker:  python -m celery -A bare_app worker -Q bare --pool=prefork --concurrency=2
Driver:  python bare_app.py --size 40 --repeat 5 [--in-process]   (prints JSON)
         python bare_app.py --scenarios throughput,latency --messages 1000 --latency-runs 100  (Redis)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from celery import Celery, chain, group
from worker_stats import median_run, percentile

BROKER_URL = os.environ.get("BARE_BROKER_URL", "memory://localhost/")
SIGNAL_REDIS_URL = os.environ.get("BARE_SIGNAL_REDIS_URL", "")
QUEUE = "bare"

app = Celery("bare_app", set_as_current=False)
app.conf.update(
    broker_url=BROKER_URL,
    broker_transport_options={"polling_interval": 0.001} if BROKER_URL.startswith("memory://") else {},
    broker_connection_retry_on_startup=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    task_ignore_result=True,
    worker_prefetch_multiplier=1,
    task_default_queue=QUEUE,
    task_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
)


class _LocalSignal:
    """Counter and completion events for an in-process worker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._done: dict[str, threading.Event] = {}

    def hit(self, run_id: str, size: int) -> None:
        with self._lock:
            count = self._counts.get(run_id, 0) + 1
            self._counts[run_id] = count
            event = self._done.setdefault(run_id, threading.Event())
        if count == size:
            event.set()

    def wait(self, run_id: str, timeout: float) -> bool:
        with self._lock:
            event = self._done.setdefault(run_id, threading.Event())
        return event.wait(timeout)


class _RedisSignal:
    """INCR a counter per run; the Nth task RPUSHes to a list the driver BLPOPs."""

    def __init__(self, url: str) -> None:
        import redis

        self._redis = redis.Redis.from_url(url)

    def hit(self, run_id: str, size: int) -> None:
        if self._redis.incr(f"bare:count:{run_id}") == size:
            self._redis.rpush(f"bare:done:{run_id}", "1")

    def wait(self, run_id: str, timeout: float) -> bool:
        return self._redis.blpop([f"bare:done:{run_id}"], timeout=timeout) is not None

    def stamp(self, run_id: str, when: float) -> None:
        self._redis.rpush(f"bare:stamp:{run_id}", repr(when))

    def wait_stamp(self, run_id: str, timeout: float) -> float:
        popped = self._redis.blpop([f"bare:stamp:{run_id}"], timeout=timeout)
        if popped is None:
            raise TimeoutError(f"bare stamp {run_id} not seen in {timeout} s")
        return float(popped[1])


_signal: _LocalSignal | _RedisSignal = _RedisSignal(SIGNAL_REDIS_URL) if SIGNAL_REDIS_URL else _LocalSignal()


@app.task(name="bare.noop", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def noop(run_id: str, size: int) -> None:
    _signal.hit(run_id, size)


@app.task(name="bare.stamp", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def stamp(run_id: str) -> None:
    """Records when it started (the clock of the same machine as the sender's)."""
    started = time.time()
    assert isinstance(_signal, _RedisSignal), "latency needs the Redis signal"
    _signal.stamp(run_id, started)


def run_once(shape: str, size: int, timeout: float = 60.0) -> float:
    """Send one chain or group of `size` no-op tasks; seconds until the last one finished."""
    run_id = uuid.uuid4().hex
    signatures = [noop.si(run_id, size) for _ in range(size)]
    canvas = chain(signatures) if shape == "chain" else group(signatures)
    started = time.perf_counter()
    canvas.apply_async()
    if not _signal.wait(run_id, timeout):
        raise TimeoutError(f"bare {shape} of {size} did not finish in {timeout} s")
    return time.perf_counter() - started


@contextlib.contextmanager
def in_process_worker(threads: int) -> Iterator[None]:
    """A worker thread pool inside this process, as Baton's embedded default runs one."""
    from celery.contrib.testing.worker import TestWorkController, setup_app_for_worker
    from celery.worker import state

    setup_app_for_worker(app, "WARNING", None)
    worker = TestWorkController(
        app=app,
        concurrency=threads,
        hostname=f"bare-{os.getpid()}@localhost",
        pool="threads",
        loglevel="WARNING",
        logfile=None,
        ready_callback=None,
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        queues=[QUEUE],
    )
    thread = threading.Thread(target=worker.start, name="bare-worker", daemon=True)
    thread.start()
    worker.ensure_started()
    try:
        yield
    finally:
        state.should_stop = 0  # the daemon thread ends with the process


def throughput(messages: int, warmup: int, timeout: float = 120.0) -> dict[str, Any]:
    """`messages` independent one-task messages sent in a loop; first send → last task done."""
    from cpu import by_role, snapshot

    for _ in range(warmup):
        run_once("group", 10)
    run_id = uuid.uuid4().hex
    before = snapshot()
    started = time.perf_counter()
    for _ in range(messages):
        noop.apply_async((run_id, messages))
    sent = time.perf_counter() - started
    if not _signal.wait(run_id, timeout):
        raise TimeoutError(f"bare throughput of {messages} did not finish in {timeout} s")
    seconds = time.perf_counter() - started
    return {
        "messages": messages,
        "seconds": seconds,
        "per_second": messages / seconds,
        "send_seconds": sent,
        "cpu": by_role(before, snapshot(), [os.getpid()]),
    }


def latency(runs: int, warmup: int, timeout: float = 30.0) -> dict[str, Any]:
    """One message at a time: from just before `apply_async()` to the task's first line."""
    samples = []
    for index in range(warmup + runs):
        run_id = uuid.uuid4().hex
        called = time.time()
        stamp.apply_async((run_id,))
        started = _signal.wait_stamp(run_id, timeout)  # type: ignore[union-attr]
        if index >= warmup:
            samples.append(started - called)
    return {
        "runs": runs,
        "median": statistics.median(samples),
        "p95": percentile(samples, 0.95),
        "max": max(samples),
    }


def measure(
    size: int, repeat: int, warmup: int, shapes: tuple[str, ...] = ("chain", "group")
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for shape in shapes:
        for _ in range(warmup):
            run_once(shape, size)
        times = [run_once(shape, size) for _ in range(repeat)]
        result[shape] = {"times": times, "median": statistics.median(times)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--in-process", type=int, default=0, metavar="THREADS")
    parser.add_argument("--scenarios", default="chain,group", help="chain,group,throughput,latency")
    parser.add_argument("--messages", type=int, default=1000, help="throughput: messages to send")
    parser.add_argument("--latency-runs", type=int, default=100)
    parser.add_argument("--throughput-repeat", type=int, default=3, help="throughput: runs (median reported)")
    args = parser.parse_args()
    scenarios = args.scenarios.split(",")
    worker: contextlib.AbstractContextManager[None] = (
        in_process_worker(args.in_process) if args.in_process else contextlib.nullcontext()
    )
    with worker:
        shapes = tuple(shape for shape in ("chain", "group") if shape in scenarios)
        result = measure(args.size, args.repeat, args.warmup, shapes)
        if "latency" in scenarios:
            result["latency"] = latency(args.latency_runs, max(args.warmup, 1) * 5)
        if "throughput" in scenarios:
            runs = [throughput(args.messages, max(args.warmup, 1)) for _ in range(args.throughput_repeat)]
            result["throughput"] = median_run(runs, "per_second")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
