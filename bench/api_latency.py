"""API request latency of start-execution and get-execution under concurrent clients, on loopback.

    .venv/bin/python bench/api_latency.py [--clients 50] [--requests N] [--database postgres|sqlite]
                                          [--workers N] [--worker-class sync|gthread] [--threads N]
                                          [--no-worker] [--profile DIR] [--dump FILE] [--output FILE]

Sets up a throwaway Baton (PostgreSQL database `baton_bench_api` and Redis db 12, or `--database
sqlite`: a SQLite file in a temporary BATON_DATA_DIR, still with Redis as the broker, since the web
and worker processes must share one), migrates it, creates a user with an API token (the
services), deploys a one-task flow (one Log task) through the API, and serves `orchestrator.wsgi`
with gunicorn on 127.0.0.1 as docker/compose.yml does (sync workers, 2 x cores + 1 of them as
docker/.env.example advises, access log on), next to a `celery worker` (prefork 2, as bench/run.py)
that runs the executions. Then, for each endpoint, one client alone (the service time) and
`--clients` clients at once (threads with an `http.client` connection each, kept alive where the
server allows it, spread over `--client-processes` processes so the clients' GIL does not queue
the measurements), each timing its own requests with `time.perf_counter`:

- start: `POST /api/v1/main/executions/bench/api_latency` (no wait), every answer a 200 with an id;
- get: `GET /api/v1/main/executions/{id}` over the executions the start phases created, after the
  worker ran them all (every one must have ended SUCCESS).

Each client first sends `--warmup` unmeasured requests (one client alone: 4 per gunicorn worker at
least, so that every worker has imported and cached what it needs); then all clients draw the phase's
`--requests` from one shared budget, so every client stays busy until the end. Any error (a status
other than 200, a connection failure, an execution that did not succeed) fails the run: the report
is printed but not recorded, and the exit status is 1. Otherwise the report replaces the "API
latency" section of bench/results.md. Every process started here is stopped, and the database
dropped, even on error or SIGTERM.

Why sync workers by default (as docker/compose.yml): gthread workers keep connections alive, and
a connection stays with the worker that accepted it, so under 50 clients one worker process (one
GIL) serves four times the requests of another (the "requests per gunicorn worker" detail) while
its clients queue: 10-25 % more throughput (no connection per request), but a p95 three to seven
times the p50, against about 1.2 times with sync workers, which close each connection and whose
idle worker accepts the next one, in order. `--worker-class gthread` measures the other.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import http.client
import json
import math
import multiprocessing
import os
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any, Literal

import cpu
from run import PG_ADMIN_URL, REDIS_URL, machine, py_spy, worker_processes

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PYTHON = sys.executable

PG_DATABASE = "baton_bench_api"
REDIS_DB = 12  # bench/run.py uses 9 and 10, the production tests 5
TENANT = "main"
NAMESPACE = "bench"
FLOW_ID = "api_latency"
FLOW_YAML = f"""id: {FLOW_ID}
namespace: {NAMESPACE}

tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: "hello from {{{{ execution.id }}}}"
"""
# Variables that select a mode: only the ones set here may reach the servers.
MODE_VARIABLES = ("DATABASE_URL", "CELERY_BROKER_URL", "BATON_DATA_DIR", "BATON_STORAGE_DIR")
SECTION = "## API latency"
# gunicorn's default access log line, after the worker's pid (which this counts requests by).
ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
REQUEST_TIMEOUT = 60.0  # seconds; a request that takes longer is an error, not a data point
SLOW_GET = 0.100  # p95 of get-execution under load above this gets an explanation (seconds)

Kind = Literal["start", "get"]


# ---------------------------------------------------------------------------------------------- clients


@dataclass
class PhaseResult:
    kind: Kind
    clients: int
    latencies: list[float] = field(default_factory=list)  # seconds, measured requests only
    starts: list[float] = field(default_factory=list)  # perf_counter when each of them was sent
    senders: list[int] = field(default_factory=list)  # the client that sent each of them
    connects: list[float] = field(default_factory=list)  # seconds of each spent connecting (0: kept alive)
    checkpoints: int | None = None  # PostgreSQL checkpoints during the measured window
    errors: list[str] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)  # start: the executions created (warm-up included)
    first: float = math.inf  # perf_counter of the first measured request (same clock in every process)
    last: float = 0.0  # perf_counter at the end of the last one
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per role during the measured window
    per_worker: list[int] = field(default_factory=list)  # requests per gunicorn worker, warm-up included

    @property
    def seconds(self) -> float:
        return self.last - self.first if self.latencies else 0.0

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class ClientJob:
    """What one client thread does: `warmup` requests of its own, then requests from the phase's
    shared budget until it is spent (so every client stays busy until the end), on one connection."""

    kind: Kind
    index: int  # the client's number: where its warm-up reads start in `ids`
    warmup: int
    total: int  # the phase's measured requests, all clients together
    ids: tuple[str, ...] = ()  # get: the executions read; the n-th request of the phase reads ids[n % len]


@dataclass
class Shared:
    """The synchronisation of a phase's client processes (inherited by spawn when they start)."""

    barrier: Barrier  # every client has warmed up (and the driver is ready): the measured window opens
    tickets: Synchronized[int]  # measured requests handed out so far
    results: multiprocessing.Queue[Any]
    release: Event  # set by the driver after its last CPU snapshot: the client processes may exit


def _request(
    connection: http.client.HTTPConnection, kind: Kind, path: str, headers: dict[str, str]
) -> tuple[float, float, float, int, bytes]:
    """One request; returns (started, seconds, seconds connecting, status, body). The clock stops
    when the body is read; it includes opening a connection when the server closed the last one."""
    started = time.perf_counter()
    if connection.sock is None:
        connection.connect()
    connected = time.perf_counter()
    connection.request("POST" if kind == "start" else "GET", path, headers=headers)
    response = connection.getresponse()
    body = response.read()
    return started, time.perf_counter() - started, connected - started, response.status, body


def _next_ticket(tickets: Synchronized[int], total: int) -> int | None:
    with tickets.get_lock():
        ticket = tickets.value
        if ticket >= total:
            return None
        tickets.value = ticket + 1
        return ticket


def _client_thread(
    port: int, token: str, job: ClientJob, shared: Shared, result: PhaseResult, lock: threading.Lock
) -> None:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    start_path = f"/api/v1/{TENANT}/executions/{NAMESPACE}/{FLOW_ID}"
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    latencies: list[float] = []
    starts: list[float] = []
    connects: list[float] = []
    errors: list[str] = []
    ids: list[str] = []
    first = last = 0.0

    def send(number: int) -> tuple[float, float, float] | None:
        """When the request was sent, how long it took and how long connecting took, or None after
        recording an error."""
        path = (
            start_path
            if job.kind == "start"
            else f"/api/v1/{TENANT}/executions/{job.ids[number % len(job.ids)]}"
        )
        try:
            started, seconds, connecting, status, body = _request(connection, job.kind, path, headers)
        except (OSError, http.client.HTTPException) as error:
            errors.append(f"{job.kind} {path}: {type(error).__name__}: {error}")
            connection.close()  # the next request opens a new connection
            return None
        error = _check(job.kind, path, status, body, ids)
        if error:
            errors.append(error)
            return None
        return started, seconds, connecting

    try:
        for number in range(job.warmup):
            send(job.index + number * 7919)  # a prime stride: warm-up reads spread over the ids
        shared.barrier.wait(timeout=300)
        first = time.perf_counter()
        while (ticket := _next_ticket(shared.tickets, job.total)) is not None:
            sent = send(ticket)
            if sent is not None:
                starts.append(sent[0])
                latencies.append(sent[1])
                connects.append(sent[2])
        last = time.perf_counter()
    finally:
        connection.close()
    with lock:
        result.latencies.extend(latencies)
        result.starts.extend(starts)
        result.senders.extend([job.index] * len(starts))
        result.connects.extend(connects)
        result.errors.extend(errors)
        result.ids.extend(ids)
        if latencies:
            result.first = min(result.first, first)
            result.last = max(result.last, last)


def _check(kind: Kind, path: str, status: int, body: bytes, ids: list[str]) -> str:
    """An error message for a wrong answer, '' for a right one (a start's id goes to `ids`)."""
    if status != 200:
        return f"{kind} {path}: status {status}: {body[:300]!r}"
    try:
        answer = json.loads(body)
    except ValueError:
        return f"{kind} {path}: not JSON: {body[:300]!r}"
    if kind == "start":
        if not answer.get("id") or answer.get("flowId") != FLOW_ID:
            return f"{kind} {path}: no execution in the answer: {body[:300]!r}"
        ids.append(answer["id"])
    elif not path.endswith("/" + str(answer.get("id"))):
        return f"{kind} {path}: another execution in the answer: {body[:300]!r}"
    return ""


def _client_process(port: int, token: str, jobs: list[ClientJob], shared: Shared) -> None:
    """One client process: a thread per job; sends its part of the phase's result to the driver."""
    result = PhaseResult(kind=jobs[0].kind, clients=len(jobs))
    lock = threading.Lock()
    threads = [
        threading.Thread(target=_client_thread, args=(port, token, job, shared, result, lock)) for job in jobs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    shared.results.put(result)
    shared.release.wait(timeout=600)  # alive until the driver's CPU snapshot, which counts its time


def run_phase(
    port: int,
    token: str,
    kind: Kind,
    clients: int,
    requests: int,
    warmup: int,
    processes: int,
    ids: list[str],
    roles: dict[int, str],
) -> PhaseResult:
    """`requests` measured requests of `kind` from `clients` concurrent clients (after `warmup` each);
    `roles` names the servers' sessions (leader pid → role) in the CPU accounting."""
    context = multiprocessing.get_context("spawn")
    jobs = [ClientJob(kind, index, warmup, requests, tuple(ids)) for index in range(clients)]
    processes = max(1, min(processes, clients))
    shared = Shared(
        barrier=context.Barrier(clients + 1),  # the driver too: it takes the CPU snapshot at the start
        tickets=context.Value("q", 0),
        results=context.Queue(),
        release=context.Event(),
    )
    workers = [
        context.Process(target=_client_process, args=(port, token, jobs[index::processes], shared))
        for index in range(processes)
    ]
    for process in workers:
        process.start()
    pids = [process.pid for process in workers if process.pid is not None]
    completed = False
    try:
        shared.barrier.wait(timeout=600)
        before = cpu.snapshot()
        parts = [shared.results.get(timeout=REQUEST_TIMEOUT * (requests + warmup * clients)) for _ in workers]
        after = cpu.snapshot()
        completed = True
    finally:
        shared.release.set()
        for process in workers:
            process.join(timeout=30 if completed else 0)  # on an error or SIGTERM, at once
            if process.is_alive():
                process.kill()
                process.join()
    result = PhaseResult(kind=kind, clients=clients)
    for part in parts:
        result.latencies.extend(part.latencies)
        result.starts.extend(part.starts)
        result.senders.extend(part.senders)
        result.connects.extend(part.connects)
        result.errors.extend(part.errors)
        result.ids.extend(part.ids)
        result.first = min(result.first, part.first)
        result.last = max(result.last, part.last)
    result.cpu = _cpu_by_role(before, after, pids, roles)
    if len(result.latencies) < requests and not result.errors:
        result.errors.append(f"{kind}: {requests - len(result.latencies)} requests missing (a client failed)")
    return result


def _cpu_by_role(
    before: cpu.Snapshot, after: cpu.Snapshot, client_pids: list[int], roles: dict[int, str]
) -> dict[str, float]:
    """CPU seconds per role between two snapshots: ours by session (`roles`: gunicorn, celery
    worker), clients, postgres, redis, other (a test suite's own gunicorn or worker too);
    `unattributed`, the rest of `busy` (processes that exited meanwhile, kernel threads); and
    `busy`, the whole machine's."""
    used: dict[str, float] = {}
    for pid, (comm, seconds, cmdline) in after[0].items():
        previous = before[0].get(pid)
        spent = seconds - (previous[1] if previous is not None and previous[0] == comm else 0.0)
        name = roles.get(_session(pid) or 0) or cpu.role(pid, comm, cmdline, client_pids)
        if spent > 0 and name:
            used[name] = used.get(name, 0.0) + spent
    busy = after[1] - before[1]
    used["unattributed"] = max(0.0, busy - sum(used.values()))
    result = {name: round(seconds, 2) for name, seconds in sorted(used.items(), key=lambda item: -item[1])}
    result["busy"] = round(busy, 2)
    return result


def _session(pid: int) -> int | None:
    """The session id of a process (our servers lead their own), None if it has exited."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(errors="replace")
    except OSError:
        return None
    # After the command name in parentheses: state, ppid, pgrp, session.
    return int(stat[stat.rindex(")") + 2 :].split()[3])


# ---------------------------------------------------------------------------------------------- statistics


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (share in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share / 100 * len(ordered)) - 1)]


def summary_row(name: str, result: PhaseResult) -> str:
    if not result.latencies:
        return f"| {name} | {result.clients} | 0 | | | | | | {len(result.errors)} |"
    values = result.latencies
    return (
        f"| {name} | {result.clients} | {len(values)} | {_ms(percentile(values, 50))} "
        f"| {_ms(percentile(values, 95))} | {_ms(percentile(values, 99))} | {_ms(max(values))} "
        f"| {result.per_second:.0f} | {len(result.errors)} |"
    )


def slowest(result: PhaseResult, share: float = 1.0) -> str:
    """When the slowest `share` % of the requests were sent: all at one moment points at a stall
    (a checkpoint, another process), spread over the phase at queueing."""
    count = max(1, int(len(result.latencies) * share / 100))
    ranked = sorted(zip(result.latencies, result.starts, strict=True), reverse=True)[:count]
    offsets = sorted(started - result.first for _, started in ranked)
    return (
        f"the slowest {share:g} % ({count}, {_ms(ranked[-1][0])} and more) were sent between "
        f"+{offsets[0]:.1f} s and +{offsets[-1]:.1f} s of the {result.seconds:.1f} s"
    )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


# ---------------------------------------------------------------------------------------------- processes


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _mode_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in MODE_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HERE)])
    env["DJANGO_SETTINGS_MODULE"] = "orchestrator.settings"
    env.update(extra)
    return env


def _stop_group(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGTERM to the process group (graceful), then SIGKILL whatever is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


@contextlib.contextmanager
def gunicorn(
    env: dict[str, str], port: int, args: argparse.Namespace, log_dir: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """gunicorn serving orchestrator.wsgi on 127.0.0.1:port, as docker/compose.yml runs it (access
    log to a file), in its own process group; yields once /health answers UP."""
    command = [
        PYTHON, "-m", "gunicorn", "orchestrator.wsgi", f"--bind=127.0.0.1:{port}",
        f"--workers={args.workers}", f"--worker-class={args.worker_class}",
        # gunicorn runs `sync` with more than one thread as gthread: sync means one thread.
        f"--threads={args.threads if args.worker_class == 'gthread' else 1}",
        f"--access-logfile={log_dir / 'access.log'}", f"--access-logformat=%(p)s {ACCESS_LOG_FORMAT}",
        "--worker-tmp-dir=/dev/shm", "--no-control-socket",
        "--keep-alive=30",  # the clients pause between phases; gunicorn's 2 s would close their connections
    ]  # fmt: skip
    log = log_dir / "gunicorn.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            command, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        _wait_healthy(process, port, log)
        yield process
    finally:
        _stop_group(process)


def _wait_healthy(process: subprocess.Popen[bytes], port: int, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", "/health")
            response = connection.getresponse()
            if response.status == 200 and json.loads(response.read()).get("status") == "UP":
                return
        except (OSError, http.client.HTTPException, ValueError):
            pass  # not listening yet
        finally:
            connection.close()
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn: /health not UP after {timeout} s:\n{log.read_text()[-3000:]}")


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
        connection.execute(sql)  # type: ignore[arg-type]


@contextlib.contextmanager
def database(kind: str, data_dir: Path) -> Iterator[dict[str, str]]:
    """The mode's database settings (a throwaway PostgreSQL database, or SQLite in `data_dir`)."""
    if kind == "sqlite":
        yield {}
        return
    _pg_admin(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
    _pg_admin(f'CREATE DATABASE "{PG_DATABASE}"')
    try:
        yield {"DATABASE_URL": PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{PG_DATABASE}"}
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')


@contextlib.contextmanager
def broker() -> Iterator[str]:
    import redis

    url = f"{REDIS_URL}/{REDIS_DB}"
    redis.Redis.from_url(url).flushdb()
    try:
        yield url
    finally:
        redis.Redis.from_url(url).flushdb()


def _run_json(args: list[str], env: dict[str, str], timeout: float = 180) -> Any:
    done = subprocess.run([PYTHON, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:2])} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _api(port: int, token: str, method: str, path: str, body: bytes, content_type: str) -> Any:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    try:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        answer = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise RuntimeError(f"{method} {path}: status {response.status}: {answer[:500]!r}")
    return json.loads(answer)


def execution_states(kind: str, env: dict[str, str], data_dir: Path) -> dict[str, int]:
    """How many executions are in each state, and how many have not ended (`unfinished`)."""
    sql = (
        "SELECT state, COUNT(*), SUM(CASE WHEN end_date IS NULL THEN 1 ELSE 0 END) "
        "FROM flows_execution GROUP BY state"
    )
    if kind == "sqlite":
        with contextlib.closing(sqlite3.connect(data_dir / "baton.sqlite3", timeout=30)) as connection:
            rows = connection.execute(sql).fetchall()
    else:
        import psycopg

        with psycopg.connect(env["DATABASE_URL"]) as connection:
            rows = connection.execute(sql).fetchall()  # type: ignore[arg-type]
    counts = {state: int(count) for state, count, _ in rows}
    counts["unfinished"] = sum(int(unfinished or 0) for _, _, unfinished in rows)
    return counts


def wait_executions_ended(
    kind: str, env: dict[str, str], data_dir: Path, timeout: float
) -> tuple[dict[str, int], float]:
    """Wait until every execution has ended; returns the counts per state and the time it took."""
    started = time.monotonic()
    while True:
        counts = execution_states(kind, env, data_dir)
        if counts["unfinished"] == 0:
            return counts, time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise RuntimeError(f"executions still running after {timeout:.0f} s: {counts}")
        time.sleep(0.2)


# ---------------------------------------------------------------------------------------------- the run


@dataclass
class Run:
    phases: list[tuple[str, PhaseResult]] = field(default_factory=list)
    states: dict[str, int] = field(default_factory=dict)
    drain_seconds: float = 0.0
    sql: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    worker: bool = False

    def add(self, name: str, result: PhaseResult) -> PhaseResult:
        self.phases.append((name, result))
        self.errors.extend(result.errors)
        print(summary_row(name, result), flush=True)
        return result


def measure(args: argparse.Namespace, logs: Path) -> Run:
    run = Run(worker=not args.no_worker)
    data_dir = Path(tempfile.mkdtemp(prefix="baton-bench-api-"))
    try:
        with broker() as broker_url, database(args.database, data_dir) as database_env:
            env = _mode_env(
                CELERY_BROKER_URL=broker_url,
                BATON_DATA_DIR=str(data_dir),
                BATON_LOG_LEVEL="WARNING",
                **database_env,
            )
            subprocess.run(
                [PYTHON, "manage.py", "migrate", "--verbosity=0"], env=env, cwd=REPO, check=True, timeout=180
            )
            token = _run_json(["bench/api_setup.py", "prepare", f"--tenant={TENANT}"], env)["token"]
            port = _free_port()
            with contextlib.ExitStack() as stack:
                server = stack.enter_context(gunicorn(env, port, args, logs))
                roles = {server.pid: "gunicorn"}  # session leaders: their process groups are ours
                if run.worker:
                    worker = stack.enter_context(
                        worker_processes("orchestrator", "default,executor", env, REPO, logs / "worker.log")
                    )
                _api(port, token, "POST", f"/api/v1/{TENANT}/flows", FLOW_YAML.encode(), "application/x-yaml")
                stack.enter_context(
                    py_spy(server.pid, args.profile / "gunicorn.txt" if args.profile else None)
                )
                if run.worker:
                    roles[worker.pid] = "celery worker"
                _measure_phases(run, args, port, token, env, data_dir, logs, roles)
                if not run.errors and run.phases[0][1].ids:
                    run.sql = _run_json(
                        ["bench/api_setup.py", "sql", run.phases[0][1].ids[0], f"--tenant={TENANT}",
                         f"--namespace={NAMESPACE}", f"--flow-id={FLOW_ID}", f"--token={token}"],
                        env,
                    )  # fmt: skip
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return run


def _measure_phases(
    run: Run,
    args: argparse.Namespace,
    port: int,
    token: str,
    env: dict[str, str],
    data_dir: Path,
    logs: Path,
    roles: dict[int, str],
) -> None:
    clients = args.clients

    def phase(kind: Kind, concurrency: int, count: int, ids: list[str]) -> PhaseResult:
        name = f"{kind}, one client" if concurrency == 1 else f"{kind}, {concurrency} clients"
        offset = _size(logs / "access.log")
        checkpoints = _checkpoints(env)
        # One client alone warms up longer: every gunicorn worker's first requests import and cache
        # what the later ones reuse (a cold worker's first start takes ~300 ms).
        warmup = args.warmup if concurrency > 1 else max(args.warmup, 4 * args.workers)
        result = run_phase(port, token, kind, concurrency, count, warmup, args.client_processes, ids, roles)
        result.per_worker = _requests_per_worker(logs / "access.log", offset)
        after = _checkpoints(env)
        if checkpoints is not None and after is not None:
            result.checkpoints = after - checkpoints
        return run.add(name, result)

    print(TABLE_HEADER, flush=True)
    ids: list[str] = []
    for concurrency, count in ((1, args.baseline_requests), (clients, args.requests)):
        result = phase("start", concurrency, count, [])
        ids += result.ids
        if result.errors:
            return
    if run.worker:
        # The get phases read ended executions, with their task run, on a machine the worker no
        # longer shares: a start phase leaves a backlog behind (the worker is slower than the API).
        run.states, run.drain_seconds = wait_executions_ended(
            args.database, env, data_dir, args.drain_timeout
        )
        failed = {
            state: count for state, count in run.states.items() if state not in ("SUCCESS", "unfinished")
        }
        if failed:
            run.errors.append(f"executions that did not succeed: {failed}")
            return
    else:
        run.states = execution_states(args.database, env, data_dir)
    stored = sum(count for state, count in run.states.items() if state != "unfinished")
    if stored != len(ids):
        run.errors.append(f"{len(ids)} start calls answered 200, but {stored} executions are stored")
        return
    for concurrency, count in ((1, args.baseline_requests), (clients, args.requests)):
        if phase("get", concurrency, count, ids).errors:
            return


def dump(run: Run, path: Path) -> None:
    """Every measured request as a JSON line: phase, client, sent (seconds into the phase), seconds,
    connecting (seconds of it)."""
    with path.open("w") as out:
        for name, result in run.phases:
            rows = zip(result.senders, result.starts, result.latencies, result.connects, strict=True)
            for sender, started, seconds, connecting in rows:
                record = {
                    "phase": name,
                    "client": sender,
                    "sent": started - result.first,
                    "seconds": seconds,
                    "connecting": connecting,
                }
                out.write(json.dumps(record) + "\n")


def _checkpoints(env: dict[str, str]) -> int | None:
    """PostgreSQL's checkpoints so far (None on SQLite). A checkpoint writes every dirty page and
    stalls commits while the disk is busy: another database's DROP requests one, on a shared server."""
    if "DATABASE_URL" not in env:
        return None
    import psycopg

    with psycopg.connect(env["DATABASE_URL"]) as connection:
        row = connection.execute(
            "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter"
        ).fetchone()
    return int(row[0]) if row else None


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _requests_per_worker(access_log: Path, offset: int) -> list[int]:
    """Requests each gunicorn worker process served since `offset` (the access log starts with the
    pid), most first: with keep-alive, a connection stays with the worker that accepted it."""
    with access_log.open("rb") as log:
        log.seek(offset)
        pids = [line.split(b" ", 1)[0] for line in log.read().splitlines() if line]
    counts: dict[bytes, int] = {}
    for pid in pids:
        counts[pid] = counts.get(pid, 0) + 1
    return sorted(counts.values(), reverse=True)


# ---------------------------------------------------------------------------------------------- report

TABLE_HEADER = (
    "| Endpoint, concurrency | Clients | Requests | p50 | p95 | p99 | max | Throughput (req/s) | Errors |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def report(run: Run, args: argparse.Namespace, took: float) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    database_name = (
        f"PostgreSQL (`{PG_DATABASE}`, 127.0.0.1)"
        if args.database == "postgres"
        else "SQLite (WAL, one file)"
    )
    threads = f" × {args.threads} threads" if args.worker_class == "gthread" else ""
    keep_alive = "kept alive" if args.worker_class == "gthread" else "sync workers close it after each answer"
    worker = (
        "a `celery worker` (prefork 2) ran the executions meanwhile"
        if run.worker
        else "**no Celery worker** (`--no-worker`): the executions stay RUNNING"
    )
    lines = [
        SECTION,
        "",
        f"{now}. Machine: {machine()}. Took {took:.0f} s.",
        "",
        f"Reproduce: `{shlex.join(['.venv/bin/python', 'bench/api_latency.py', *_measuring_arguments()])}` (PostgreSQL "
        "and Redis as in bench/README.md; bench/api_latency.py says what it does). Client-side time of each "
        "request, from sending it (connecting included) to reading the whole answer, on loopback; "
        f"{args.warmup} unmeasured warm-up requests per client first ({max(args.warmup, 4 * args.workers)} for one "
        f"client alone, so that every gunicorn worker has served some). gunicorn {args.workers} "
        f"`{args.worker_class}` workers{threads} (access log to a file, as in docker/compose.yml); "
        f"{database_name}; Redis db {REDIS_DB} as the broker; {worker}. The clients are threads with an "
        f"`http.client` connection each ({keep_alive}), over {args.client_processes} processes, on the same "
        "CPUs as the servers: with every client waiting for its answer before the next request, the mean "
        "latency is the clients divided by the throughput, which the CPUs bound.",
        "",
        TABLE_HEADER,
        *(summary_row(name, result) for name, result in run.phases),
        "",
        "Details:",
        "",
    ]
    for name, result in run.phases:
        cpu_line = ", ".join(
            f"{role} {seconds:.1f} s" for role, seconds in result.cpu.items() if role != "busy"
        )
        count = max(1, len(result.latencies))
        per_request = ", ".join(
            f"{role} {_ms(result.cpu.get(role, 0.0) / count)}" for role in ("gunicorn", "clients", "busy")
        ).replace("busy", "whole machine")
        mean = sum(result.latencies) / count
        little = result.clients / result.per_second if result.per_second else 0.0
        checkpoints = (
            "" if result.checkpoints is None else f"; PostgreSQL checkpoints meanwhile: {result.checkpoints}"
        )
        lines.append(
            f"- {name}: {result.seconds:.1f} s measured, mean {_ms(mean)} (clients ÷ throughput: {_ms(little)}); "
            f"{slowest(result)}{checkpoints}; CPU used meanwhile ({os.cpu_count()} CPUs = "
            f"{(os.cpu_count() or 1) * result.seconds:.1f} s): {cpu_line}, busy {result.cpu.get('busy', 0.0):.1f} s; "
            f"CPU per request: {per_request}; requests per gunicorn worker (warm-up included): "
            + ", ".join(str(served) for served in result.per_worker)
        )
    lines.append(interference(run))
    lines.extend(capacity(run))
    if run.worker:
        states = ", ".join(f"{state} {count}" for state, count in run.states.items() if state != "unfinished")
        lines.append(
            f"- executions: {states}; the worker ended the last one {run.drain_seconds:.1f} s after the last "
            "start phase"
        )
    for kind in ("get", "start"):
        data = run.sql.get(kind)
        if not data:
            continue
        texts = "; ".join(f"{count}× `{_short(sql)}`" for sql, count in data["texts"].items())
        lines.append(
            f"- SQL of one warm {kind} request (Django test client, one process, no load): "
            f"{data['statements']} statements, {_ms(data['sql_seconds'])} waiting for them, "
            f"{_ms(data['seconds'])} in all: {texts}"
        )
    return "\n".join(lines)


def capacity(run: Run) -> list[str]:
    """What the CPUs allow: with `clients` each waiting for its answer, the mean latency is
    clients × (CPU time per request) ÷ CPUs, whatever the server does."""
    cpus = os.cpu_count() or 1
    lines = []
    for name, result in run.phases:
        busy = result.cpu.get("busy", 0.0) / max(1, len(result.latencies))
        if result.clients == 1 or not busy:
            continue
        slow = result.kind == "get" and result.latencies and percentile(result.latencies, 95) > SLOW_GET
        lines.append(
            f"- {name}: the machine spent {_ms(busy)} of CPU per request (server, database, worker, clients, "
            f"kernel), so {cpus} CPUs answer at most {cpus / busy:.0f} requests/s and {result.clients} clients "
            f"wait {_ms(result.clients * busy / cpus)} each on average"
            + (f"; a p95 under {_ms(SLOW_GET)} needs less CPU per request or more CPUs" if slow else "")
        )
    return lines


def _measuring_arguments() -> list[str]:
    """This run's command-line arguments, without those that only say where the output goes
    (`--profile` stays: py-spy slows the server down)."""
    arguments, skip = [], False
    for argument in sys.argv[1:]:
        if skip:
            skip = False
        elif argument in ("--output", "--dump"):
            skip = True
        elif not argument.startswith(("--output=", "--dump=")):
            arguments.append(argument)
    return arguments


def interference(run: Run) -> str:
    """Whether other processes of the machine took a noticeable share of the CPUs meanwhile."""
    shares = []
    for name, result in run.phases:
        available = (os.cpu_count() or 1) * result.seconds
        other = result.cpu.get("other", 0.0) + result.cpu.get("unattributed", 0.0)
        if available and other >= 0.1 * available:
            shares.append(f"{name} {other:.1f} s of {available:.1f} s")
    if not shares:
        return "- quiet machine: other and unattributed CPU time below 10 % of the CPUs in every phase"
    return (
        "- **not a quiet machine**: other processes (other + unattributed) used "
        + ", ".join(shares)
        + " of CPU time; run it again before comparing"
    )


def _short(sql: str, width: int = 110) -> str:
    text = re.sub(r"^SELECT (DISTINCT )?.+? FROM ", r"SELECT \1… FROM ", sql)
    text = re.sub(r"^INSERT INTO (\S+) \(.+?\) VALUES .*$", r"INSERT INTO \1 (…) VALUES (…)", text)
    text = text if len(text) <= width else text[: width - 3] + "..."
    return text.replace("|", "/").replace("`", "'")


def record(section: str, output: Path) -> None:
    """Replace the "API latency" section of the results file (bench/run.py keeps it), or append it."""
    text = output.read_text(encoding="utf-8") if output.exists() else "# Baton benchmark results\n"
    start = text.find("\n" + SECTION + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    else:
        end = text.find("\n## ", start + 1)
        text = text[:start] + "\n" + section + "\n" + (text[end:] if end >= 0 else "")
    output.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cores = os.cpu_count() or 1
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients of the loaded phases")
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per loaded phase")
    parser.add_argument(
        "--baseline-requests", type=int, default=200, help="measured requests of one client alone"
    )
    parser.add_argument("--warmup", type=int, default=5, help="unmeasured requests per client first")
    parser.add_argument("--database", choices=["postgres", "sqlite"], default="postgres")
    # docker/.env.example's advice (WEB_CONCURRENCY, about 2 x cores + 1) and compose's worker class.
    parser.add_argument("--workers", type=int, default=2 * cores + 1, help="gunicorn worker processes")
    parser.add_argument("--worker-class", choices=["sync", "gthread"], default="sync")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker (gthread only)")
    parser.add_argument("--client-processes", type=int, default=2 * cores, help="processes the clients use")
    parser.add_argument("--no-worker", action="store_true", help="no Celery worker: executions are not run")
    parser.add_argument(
        "--drain-timeout", type=float, default=300.0, help="seconds for the worker to catch up"
    )
    parser.add_argument("--profile", type=Path, default=None, help="py-spy of gunicorn into DIR/gunicorn.txt")
    parser.add_argument("--output", type=Path, default=HERE / "results.md")
    parser.add_argument("--dump", type=Path, default=None, help="every measured request, as JSON lines")
    args = parser.parse_args()
    if args.clients < 1 or args.requests < args.clients or args.baseline_requests < 1:
        parser.error("--clients must be >= 1 and --requests >= --clients")
    if args.profile is not None:
        args.profile = args.profile.resolve()
        args.profile.mkdir(parents=True, exist_ok=True)
    # SIGTERM unwinds like Ctrl-C: servers stopped, database dropped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="baton-bench-api-logs-") as logs:
        run = measure(args, Path(logs))
    if args.dump is not None:
        dump(run, args.dump)
    section = report(run, args, time.monotonic() - started)
    print("\n" + section)
    if run.errors:
        print(f"\nFAILED: {len(run.errors)} error(s); not recorded. The first ones:", file=sys.stderr)
        for error in run.errors[:10]:
            print(f"  {error}", file=sys.stderr)
        sys.exit(1)
    record(section, args.output)
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
