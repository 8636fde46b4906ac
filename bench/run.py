"""Baton's benchmark against bare Celery on the same broker, on the same machine, in one run.

    .venv/bin/python bench/run.py [--only sequential,parallel,throughput,latency]
                                  [--mode embedded|production|all] [--repeat N] [--size N]
                                  [--executions N] [--clients N] [--latency-runs N] [--profile DIR]

Scenarios (README.md explains each column):
- sequential / parallel: an N-task sequential flow against an N-link chain, an N-branch Parallel
  against a group of N; embedded and production modes. SQL per task run in both modes.
- throughput (production): M one-task executions started by several client processes at once (each
  with its own database connection), first start → last end, against M one-task messages.
- latency (production): one-task executions started one at a time, start call → attempt start,
  against send → task start of one message at a time.

Prints Markdown tables and writes them, with the machine, the date and the command, to
bench/results.md. Production mode creates (and drops) its own PostgreSQL database and flushes its
own Redis databases, and starts (and stops) its own worker processes. `--profile DIR` also runs
py-spy on the workers and the driver, and cProfile in every worker process and throughput client.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PYTHON = sys.executable

PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PG_DATABASE = "baton_bench"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379")
BATON_REDIS_DB = 9
BARE_REDIS_DB = 10
CONCURRENCY = 2
EMBEDDED_THREADS = int(os.environ.get("BATON_EMBEDDED_WORKER_THREADS") or 8)  # Baton's default
# Variables that select a mode: the embedded run must see none of them.
MODE_VARIABLES = ("DATABASE_URL", "CELERY_BROKER_URL", "BATON_DATA_DIR", "BATON_STORAGE_DIR")
SCENARIOS = ("sequential", "parallel", "throughput", "latency")
FLOW_SCENARIOS = ("sequential", "parallel")
SEQUENTIAL_TARGET = 2.0  # × bare Celery (the production issue)
THROUGHPUT_TARGET = 100.0  # executions per second on 2 workers


# ---------------------------------------------------------------------------------------------- processes


def _base_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in MODE_VARIABLES}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HERE)])
    env["DJANGO_SETTINGS_MODULE"] = "orchestrator.settings"
    env.update(extra)
    return env


@contextlib.contextmanager
def py_spy(pid: int, output: Path | None) -> Iterator[None]:
    """`py-spy record` of a process and its children (raw collapsed stacks) while the block runs."""
    if output is None or shutil.which("py-spy") is None:
        yield
        return
    spy = subprocess.Popen(
        ["py-spy", "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--rate", "200",
         "--format", "raw", "--output", str(output)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)  # attached
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


def _run_json(
    args: list[str], env: dict[str, str], timeout: float, spy: Path | None = None
) -> dict[str, Any]:
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen([PYTHON, *args], env=env, cwd=REPO, stdout=out, stderr=err, text=True)
        try:
            with py_spy(process.pid, spy):
                returncode = process.wait(timeout=timeout)
        except BaseException:
            process.kill()
            process.wait()
            raise
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({returncode}):\n{stderr[-3000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def worker_processes(
    app: str, queues: str, env: dict[str, str], cwd: Path, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A `celery worker` (prefork, CONCURRENCY children) in its own process group, killed on exit."""
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                PYTHON, "-m", "celery", "-A", app, "worker", "-Q", queues,
                "--pool=prefork", f"--concurrency={CONCURRENCY}", "--loglevel=INFO",
            ],
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        _wait_ready(process, log)
        yield process
    finally:
        _stop_group(process)


def _wait_ready(process: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"worker exited ({process.returncode}):\n{log.read_text()[-3000:]}")
        if " ready." in log.read_text():
            return
        time.sleep(0.1)
    raise RuntimeError(f"worker not ready after {timeout} s:\n{log.read_text()[-3000:]}")


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """Warm shutdown of the worker's process group, then SIGKILL whatever is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


# ---------------------------------------------------------------------------------------------- services


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as connection:
        connection.execute(sql)  # type: ignore[arg-type]


@contextlib.contextmanager
def throwaway_database() -> Iterator[str]:
    _pg_admin(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
    _pg_admin(f'CREATE DATABASE "{PG_DATABASE}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{PG_DATABASE}"
    finally:
        _pg_admin(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')


@contextlib.contextmanager
def throwaway_redis(*dbs: int) -> Iterator[None]:
    import redis

    def flush() -> None:
        for db in dbs:
            redis.Redis.from_url(f"{REDIS_URL}/{db}").flushdb()

    flush()
    try:
        yield
    finally:
        flush()


# ---------------------------------------------------------------------------------------------- modes


def _common(args: argparse.Namespace, scenarios: list[str]) -> list[str]:
    return [
        f"--scenarios={','.join(scenarios)}", f"--size={args.size}", f"--repeat={args.repeat}",
        f"--warmup={args.warmup}", f"--latency-runs={args.latency_runs}",
        f"--throughput-repeat={args.throughput_repeat}",
    ]  # fmt: skip


def run_embedded(args: argparse.Namespace, scenarios: list[str]) -> dict[str, Any]:
    flows = [name for name in scenarios if name in FLOW_SCENARIOS]
    if not flows:
        return {}
    data_dir = Path(tempfile.mkdtemp(prefix="baton-bench-"))
    try:
        baton = _run_json(
            ["bench/baton_driver.py", *_common(args, flows)],
            _base_env(BATON_DATA_DIR=str(data_dir)),
            args.timeout,
        )
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    shapes = ["chain" if name == "sequential" else "group" for name in flows]
    bare = _run_json(
        ["bench/bare_app.py", *_common(args, shapes), f"--in-process={EMBEDDED_THREADS}"],
        _base_env(BARE_BROKER_URL="memory://localhost/"),
        args.timeout,
    )
    return {"baton": baton, "bare": bare, "label": f"memory://, in-process, {EMBEDDED_THREADS} threads"}


def run_production(args: argparse.Namespace, scenarios: list[str], logs: Path) -> dict[str, Any]:
    broker = f"{REDIS_URL}/{BATON_REDIS_DB}"
    data_dir = Path(tempfile.mkdtemp(prefix="baton-bench-"))
    stats_dir = logs / "worker-stats"
    stats_dir.mkdir()
    profile: Path | None = args.profile
    extra: dict[str, str] = {"BENCH_WORKER_STATS_DIR": str(stats_dir)}
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
    cprofile = profile is not None and args.profile_clock != "off"
    if cprofile:
        extra["BENCH_WORKER_PROFILE_DIR"] = str(profile)
        extra["BENCH_PROFILE_CLOCK"] = args.profile_clock
    driver_args = [
        *_common(args, scenarios), f"--executions={args.executions}", f"--clients={args.clients}",
        f"--worker-stats={stats_dir}", *([f"--profile={profile}"] if cprofile else []),
    ]  # fmt: skip
    bare_args = [
        *_common(args, ["chain" if name == "sequential" else "group" if name == "parallel" else name
                        for name in scenarios]),
        f"--messages={args.executions}",
    ]  # fmt: skip
    try:
        with throwaway_redis(BATON_REDIS_DB, BARE_REDIS_DB), throwaway_database() as database_url:
            env = _base_env(DATABASE_URL=database_url, CELERY_BROKER_URL=broker, BATON_DATA_DIR=str(data_dir))
            subprocess.run(
                [PYTHON, "manage.py", "migrate", "--verbosity=0"], env=env, cwd=REPO, check=True, timeout=120
            )
            worker_env = {**env, **extra}
            with worker_processes(
                "bench_worker", "default,executor", worker_env, REPO, logs / "baton-worker.log"
            ) as worker:
                with py_spy(worker.pid, profile / "baton-worker.txt" if profile else None):
                    baton = _run_json(
                        ["bench/baton_driver.py", *driver_args],
                        {**env, "BENCH_PROFILE_CLOCK": args.profile_clock},
                        args.timeout + 240,
                        spy=profile / "baton-driver.txt" if profile else None,
                    )
            bare_url = f"{REDIS_URL}/{BARE_REDIS_DB}"
            bare_env = _base_env(BARE_BROKER_URL=bare_url, BARE_SIGNAL_REDIS_URL=bare_url)
            with worker_processes("bare_app", "bare", bare_env, HERE, logs / "bare-worker.log"):
                bare = _run_json(["bench/bare_app.py", *bare_args], bare_env, args.timeout)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    return {"baton": baton, "bare": bare, "label": f"Redis, prefork {CONCURRENCY}"}


# ---------------------------------------------------------------------------------------------- report


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _ms1(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _workers_sql(data: dict[str, Any]) -> tuple[float, float] | None:
    """SQL statements and SQL seconds the workers sent during a scenario (None in embedded mode)."""
    workers = data.get("workers")
    if workers is None:
        return None
    return (
        sum(values[0] for values in workers["sql"].values()),
        sum(values[1] for values in workers["sql"].values()),
    )


def sql_per_taskrun(mode: str, data: dict[str, Any]) -> float:
    """Every statement of one execution (start, workers, executor) per task run."""
    taskruns = int(data["taskruns"])
    if mode == "embedded":
        return float(data["queries"]) / taskruns
    workers = _workers_sql(data)
    assert workers is not None
    return (float(data["queries"]) + workers[0] / data["worker_executions"]) / taskruns


def summary(results: dict[str, Any], args: argparse.Namespace) -> str:
    size = args.size
    lines = [
        "| Scenario | Baton | bare Celery | Ratio (Baton cost ÷ bare cost) | Target |",
        "|---|---|---|---|---|",
    ]
    for mode in ("embedded", "production"):
        data = results.get(mode)
        if not data:
            continue
        baton, bare, label = data["baton"], data["bare"], data["label"]
        for flow, shape, name in (
            ("sequential", "chain", f"{size}-task sequential flow vs {size}-link chain"),
            ("parallel", "group", f"{size}-branch Parallel vs group of {size}"),
        ):
            if flow not in baton:
                continue
            ratio = baton[flow]["end_to_end"] / bare[shape]["median"]
            target = ""
            if flow == "sequential" and mode == "production":
                target = f"≤ {SEQUENTIAL_TARGET:.0f}× → {'met' if ratio <= SEQUENTIAL_TARGET else 'not met'}"
            lines.append(
                f"| {mode}: {name} (end to end, median) | {_ms(baton[flow]['end_to_end'])} "
                f"| {_ms(bare[shape]['median'])} ({label}) | {ratio:.1f}× | {target} |"
            )
        if "throughput" in baton:
            ours, theirs = baton["throughput"], bare["throughput"]
            met = "met" if ours["per_second"] >= THROUGHPUT_TARGET else "not met"
            lines.append(
                f"| {mode}: {ours['executions']} one-task executions ({ours['clients']} client processes) vs "
                f"{theirs['messages']} one-task messages, {CONCURRENCY} prefork workers "
                f"(median of {len(ours['per_second_all'])} runs) "
                f"| {ours['per_second']:.1f} executions/s ({ours['seconds']:.2f} s) "
                f"| {theirs['per_second']:.0f} tasks/s ({theirs['seconds']:.2f} s) "
                f"| {theirs['per_second'] / ours['per_second']:.1f}× "
                f"| ≥ {THROUGHPUT_TARGET:.0f}/s → {met} ({ours['per_second'] / THROUGHPUT_TARGET:.0%} of it) |"
            )
        if "latency" in baton:
            ours, theirs = baton["latency"], bare["latency"]
            for key, name in (("median", "median"), ("p95", "p95")):
                lines.append(
                    f"| {mode}: trigger → first task start, {name} of {ours['runs']} "
                    f"(start_execution → claimed_at vs apply_async → task start) "
                    f"| {_ms1(ours[key])} | {_ms1(theirs[key])} | {ours[key] / theirs[key]:.1f}× | |"
                )
    for mode in ("embedded", "production"):
        baton = (results.get(mode) or {}).get("baton", {})
        for flow in ("sequential", "throughput"):
            if flow not in baton or (flow == "throughput" and "workers" not in baton[flow]):
                continue
            if flow == "sequential":
                value = sql_per_taskrun(mode, baton[flow])
                where = "in-process, every statement" if mode == "embedded" else "start + workers"
                name = f"{size}-task sequential flow ({where})"
            else:
                data = baton[flow]
                workers = _workers_sql(data)
                assert workers is not None
                value = data["start_queries"] + workers[0] / data["worker_executions"]
                name = "one-task executions of the throughput run (start + workers)"
            lines.append(f"| {mode}: SQL statements per task run, {name} | {value:.1f} | 0 | — | bounded |")
    return "\n".join(lines)


def interference(results: dict[str, Any]) -> str:
    """A warning when other processes of the machine took a noticeable share of the CPUs."""
    throughput = (results.get("production") or {}).get("baton", {}).get("throughput")
    if not throughput:
        return ""
    available = (os.cpu_count() or 1) * throughput["seconds"]
    other = throughput["cpu"].get("other", 0.0)
    if other < 0.1 * available:
        return ""
    return (
        f"\n\n**Not a quiet machine**: other processes used {other:.1f} s of the {available:.1f} s of CPU "
        "during the Baton throughput run; run it again before comparing."
    )


def flows_table(results: dict[str, Any], size: int) -> str:
    lines = [
        "| Mode | Flow | Baton execution (DB start→end) | Baton end-to-end | Bare Celery end-to-end "
        "| Ratio Baton/bare (end-to-end) | Baton overhead per task | SQL per task run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode in ("embedded", "production"):
        data = results.get(mode)
        if not data:
            continue
        for flow, shape in (("sequential", "chain"), ("parallel", "group")):
            baton = data["baton"].get(flow)
            if baton is None:
                continue
            bare = data["bare"][shape]["median"]
            end_to_end = float(baton["end_to_end"])
            per_task = (end_to_end - bare) / size
            lines.append(
                f"| {mode} | {flow} ({size} tasks, {baton['taskruns']} task runs) "
                f"| {_ms(baton['execution'])} | {_ms(end_to_end)} | {_ms(bare)} — {shape} ({data['label']}) "
                f"| {end_to_end / bare:.1f}× | {per_task * 1000:.1f} ms | {sql_per_taskrun(mode, baton):.1f} |"
            )
    return "\n".join(lines)


def _workers_line(data: dict[str, Any], per: float, unit: str) -> str:
    workers = data.get("workers")
    if not workers:
        return ""
    parts = []
    for name, (messages, seconds, statements, sql_seconds, cpu) in sorted(workers["tasks"].items()):
        parts.append(
            f"{name} {messages / per:.1f} messages/{unit} at {_ms1(seconds / messages)} each "
            f"({_ms1(cpu / messages)} CPU; {statements / messages:.1f} SQL statements, "
            f"{_ms1(sql_seconds / messages)} waiting for them)"
        )
    return "; workers: " + ", ".join(parts)


def _cpu_line(data: dict[str, Any], per: float, unit: str) -> str:
    """CPU time of each process role during a scenario, per unit of work (production mode)."""
    cpu = data.get("scenario_cpu")
    if not cpu:
        return ""
    roles = ", ".join(f"{name} {_ms1(seconds / per)}" for name, seconds in cpu.items() if name != "busy")
    return f"; CPU per {unit} (warm-up runs included): {roles}, whole machine {_ms1(cpu['busy'] / per)}"


def details(results: dict[str, Any]) -> str:
    lines = []
    for mode in ("embedded", "production"):
        data = results.get(mode)
        if not data:
            continue
        baton, bare = data["baton"], data["bare"]
        for flow in FLOW_SCENARIOS:
            row = baton.get(flow)
            if row is None:
                continue
            kinds = ", ".join(f"{kind} {count:.0f}" for kind, count in row["queries_by_kind"].items())
            runs = ", ".join(_ms(value) for value in row["end_to_end_all"])
            where = "" if mode == "embedded" else " (driver: the start call)"
            lines.append(
                f"- {mode} {flow}: end-to-end runs {runs}; per task run (median): "
                f"submitted→claimed {_ms1(row['to_claim'])}, claimed→ended {_ms1(row['claim_to_end'])}; "
                f"SQL per execution{where}: {kinds or '—'}"
                + _workers_line(row, row["worker_executions"], "execution")
                + _cpu_line(row, row["worker_executions"] * row["taskruns"], "task run")
            )
        if "throughput" in baton:
            ours, theirs = baton["throughput"], bare["throughput"]
            cpu = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in ours["cpu"].items())
            bare_cpu = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in theirs["cpu"].items())
            runs = ", ".join(f"{value:.1f}" for value in ours["per_second_all"])
            bare_runs = ", ".join(f"{value:.0f}" for value in theirs["per_second_all"])
            lines.append(
                f"- {mode} throughput runs: Baton {runs} executions/s, bare {bare_runs} tasks/s (the median run "
                "is reported; the figures below are of that run)"
            )
            lines.append(
                f"- {mode} throughput: the {ours['clients']} clients made their {ours['executions']} start calls "
                f"in {ours['starts_seconds']:.2f} s ({ours['starts_per_second']:.0f}/s, "
                f"{_ms1(ours['client_cpu_per_start'])} client CPU and {ours['start_queries']:.1f} SQL statements "
                f"each); execution start→end under load: median {_ms(ours['duration_median'])}, "
                f"p95 {_ms(ours['duration_p95'])}; CPU used during the {ours['seconds']:.1f} s "
                f"(2 CPUs = {2 * ours['seconds']:.1f} s): {cpu}"
                + _workers_line(ours, ours["worker_executions"], "execution")
            )
            lines.append(
                f"- {mode} throughput, bare: {theirs['messages']} sends took {theirs['send_seconds']:.2f} s "
                f"(one process); CPU used during the {theirs['seconds']:.2f} s: {bare_cpu}"
            )
        if "latency" in baton:
            ours, theirs = baton["latency"], bare["latency"]
            lines.append(
                f"- {mode} latency: Baton median {_ms1(ours['median'])} = start_execution() call "
                f"{_ms1(ours['call_median'])} ({ours['start_queries']:.0f} SQL statements) + commit → claimed "
                f"{_ms1(ours['after_call_median'])}; max {_ms1(ours['max'])}; bare max {_ms1(theirs['max'])}"
                + _workers_line(ours, ours["worker_executions"], "execution")
                + _cpu_line(ours, ours["worker_executions"], "execution")
            )
    return "\n".join(lines)


def top_statements(results: dict[str, Any], limit: int = 12) -> str:
    """The statements production workers sent most in the sequential flow, per task run."""
    row = (results.get("production") or {}).get("baton", {}).get("sequential")
    if not row or "workers" not in row:
        return ""
    per = row["worker_executions"] * row["taskruns"]
    statements = sorted(row["workers"]["sql"].items(), key=lambda item: -item[1][0])[:limit]
    lines = ["| per task run | ms each | statement (workers, production sequential) |", "|---|---|---|"]
    for sql, (count, seconds) in statements:
        lines.append(f"| {count / per:.2f} | {seconds / count * 1000:.2f} | `{_short(sql, 160)}` |")
    return "\n".join(lines)


def one_task_statements(results: dict[str, Any], limit: int = 16) -> str:
    """Every statement of a one-task execution: the start call (latency runs) and the workers (throughput)."""
    baton = (results.get("production") or {}).get("baton", {})
    rows: list[tuple[str, float, float | None]] = []
    if "latency" in baton:
        rows += [
            (f"start: `{_short(sql)}`", count, None)
            for sql, count in baton["latency"]["start_statements"].items()
        ]
    throughput = baton.get("throughput", {})
    if "workers" in throughput:
        per = throughput["worker_executions"]
        ordered = sorted(throughput["workers"]["sql"].items(), key=lambda item: -item[1][0])
        rows += [
            (f"worker: `{_short(sql)}`", count / per, seconds / count) for sql, (count, seconds) in ordered
        ]
    if not rows:
        return ""
    lines = ["| per execution | ms each (under load) | statement |", "|---|---|---|"]
    for name, count, seconds in rows[: limit * 2]:
        if count >= 0.05:
            each = f"{seconds * 1000:.2f}" if seconds is not None else ""
            lines.append(f"| {count:.2f} | {each} | {name} |")
    return "\n".join(lines)


def _short(sql: str, width: int = 180) -> str:
    """A statement with its column lists elided, so the table, joins and conditions show."""
    import re

    text = re.sub(r"^SELECT (DISTINCT )?.+? FROM ", r"SELECT \1… FROM ", sql)
    text = re.sub(r"^INSERT INTO (\S+) \(.+?\) VALUES .*$", r"INSERT INTO \1 (…) VALUES (…)", text)
    text = text if len(text) <= width else text[: width - 3] + "..."
    return text.replace("|", "/")


def machine() -> str:
    import sqlite3

    import celery
    import django

    return (
        f"{platform.node()} — {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), "
        f"{platform.platform()}, Python {platform.python_version()}, Django {django.get_version()}, "
        f"Celery {celery.__version__}, SQLite {sqlite3.sqlite_version}"
    )


# Sections other benchmarks write into the same file (bench/api_latency.py): kept as they are.
KEPT_SECTIONS = ("## API latency",)


def kept_sections(output: Path) -> str:
    """The sections of the existing report that another benchmark wrote, to write back unchanged."""
    if not output.exists():
        return ""
    text = output.read_text(encoding="utf-8")
    kept = []
    for title in KEPT_SECTIONS:
        start = text.find("\n" + title + "\n")
        if start >= 0:
            end = text.find("\n## ", start + 1)
            kept.append(text[start + 1 : end if end >= 0 else len(text)].strip("\n"))
    return "\n\n".join(kept)


def command() -> str:
    """The command line of this run, as typed from the repository."""
    return shlex.join([".venv/bin/python", "bench/run.py", *sys.argv[1:]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["embedded", "production", "all"], default="all")
    parser.add_argument(
        "--only", default=",".join(SCENARIOS), help=f"comma-separated, of {','.join(SCENARIOS)}"
    )
    parser.add_argument("--repeat", type=int, default=5, help="measured runs per flow (median reported)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured runs per flow first")
    parser.add_argument("--size", type=int, default=40, help="tasks per flow")
    parser.add_argument("--executions", type=int, default=1000, help="throughput: executions (and messages)")
    parser.add_argument("--clients", type=int, default=4, help="throughput: client processes starting them")
    parser.add_argument("--latency-runs", type=int, default=100, help="latency: executions (and messages)")
    parser.add_argument(
        "--throughput-repeat", type=int, default=3, help="throughput: runs of each side (median reported)"
    )
    parser.add_argument("--timeout", type=float, default=150.0, help="seconds per driver process")
    parser.add_argument("--profile", type=Path, default=None, help="write py-spy and cProfile output here")
    parser.add_argument(
        "--profile-clock",
        choices=["wall", "cpu", "off"],
        default="wall",
        help="what cProfile times (--profile); off: py-spy only",
    )
    parser.add_argument("--output", type=Path, default=HERE / "results.md")
    args = parser.parse_args()
    scenarios = [name for name in SCENARIOS if name in args.only.split(",")]
    unknown = set(args.only.split(",")) - set(SCENARIOS)
    if unknown or not scenarios:
        parser.error(
            f"--only: unknown scenario(s) {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}"
        )
    if args.mode == "embedded" and not any(name in FLOW_SCENARIOS for name in scenarios):
        parser.error("throughput and latency run in production mode only (--mode production or all)")
    if args.profile is not None:
        args.profile = args.profile.resolve()
    # SIGTERM unwinds like Ctrl-C, so worker process groups, database and Redis are cleaned up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="baton-bench-logs-") as logs:
        if args.mode in ("embedded", "all"):
            results["embedded"] = run_embedded(args, scenarios)
        if args.mode in ("production", "all"):
            results["production"] = run_production(args, scenarios, Path(logs))
    if args.profile is not None:
        (args.profile / "results.json").write_text(json.dumps(results, indent=1))
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    sections = [
        "# Baton benchmark results",
        f"{now}. Machine: {machine()}. Took {time.monotonic() - started:.0f} s.",
        f"Reproduce: `{command()}` (from the repository root; PostgreSQL and Redis as in "
        "bench/README.md). See bench/README.md for what each scenario and column measures.",
        "## Summary\n\n" + summary(results, args) + interference(results),
    ]
    if any(name in scenarios for name in FLOW_SCENARIOS):
        sections.append(
            f"## Flows\n\nMedian of {args.repeat} runs after {args.warmup} warm-up runs per flow.\n\n"
            + flows_table(results, args.size)
        )
    sections.append("## Details\n\n" + details(results))
    statements = top_statements(results)
    if statements:
        sections.append("## SQL statements per task run, most frequent\n\n" + statements)
    statements = one_task_statements(results)
    if statements:
        sections.append(
            "## SQL statements of a one-task execution\n\nThe start call (counted in the latency runs) "
            "and the workers (throughput runs; their time is under full load).\n\n" + statements
        )
    kept = kept_sections(args.output)
    if kept:
        sections.append(kept)
    report = "\n\n".join(sections)
    print(summary(results, args))
    args.output.write_text(report + "\n", encoding="utf-8")
    print(f"\nwritten to {args.output}")


if __name__ == "__main__":
    main()
