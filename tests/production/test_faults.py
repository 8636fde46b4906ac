"""Faults on the production path: a worker killed mid-task, Redis restarted, PostgreSQL sessions cut,
a burst of executions, and task messages delivered out of order and twice.

All but the last need real processes (BATON_TEST_MODE=production). The last one pauses the workers'
task queue and delivers the messages itself, so it runs in both modes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.executions import finished, gate_task, wait_taskrun
from tests.fixtures.modes import (
    BEAT_APPLICATION_NAME,
    PRODUCTION,
    WORKER_APPLICATION_NAME,
    WORKER_PROCESSES,
    WorkerPool,
)
from tests.fixtures.waiting import wait_until

StartFlow = Callable[..., str]

production_only = pytest.mark.skipif(
    not PRODUCTION,
    reason="fault injection needs PostgreSQL, Redis and worker processes (BATON_TEST_MODE=production)",
)

# The steps alternate between the default queue and a worker group's, so every step is a message
# through Redis (a worker goes on with the next run itself only on the same queue).
_GROUP = "\n    workerGroup: {key: reports}"
_SLEEPS = "\n".join(
    f"""
  - id: step{index:02d}
    type: io.kestra.plugin.scripts.shell.Commands{_GROUP if index % 2 else ""}
    commands:
      - sleep 0.2"""
    for index in range(20)
)
TWENTY_STEPS = f"""
id: twenty
namespace: test.faults
tasks:{_SLEEPS}
"""


def _gated_flow(flow_id: str, gate: Path) -> str:
    """A task held until `gate` exists (`wait`), then a log line (`after`)."""
    return f"""
        id: {flow_id}
        namespace: test.faults
        tasks:{gate_task("wait", gate)}
          - id: after
            type: io.kestra.plugin.core.log.Log
            message: after the gate
    """


def _process_stat(pid: int) -> tuple[int, int]:
    """(parent pid, process group) of a live process, from /proc (psutil is not a dependency)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    # `pid (comm) state ppid pgrp ...`: comm may hold spaces and parentheses.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]), int(fields[2])


def _worker_running(pid: int, workers: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """The worker main process whose pool child is an ancestor of `pid`."""
    by_pid = {process.pid: process for process in workers}
    ancestor = pid
    for _ in range(10):
        ancestor, _ = _process_stat(ancestor)
        if ancestor in by_pid:
            return by_pid[ancestor]
        if ancestor <= 1:
            break
    raise AssertionError(f"process {pid} does not run under a worker of this session")


def _taskrun_counts(execution_id: str) -> Counter[str]:
    from flows.models import TaskRun

    return Counter(TaskRun.objects.filter(execution_id=execution_id).values_list("task_id", flat=True))


def _successes(execution_id: str) -> int:
    from flows.models import TaskRun

    return TaskRun.objects.filter(execution_id=execution_id, state="SUCCESS").count()


def _attempt_states(run: dict[str, Any]) -> list[str]:
    return [attempt["state"]["current"] for attempt in run["attempts"] or []]


def _shell_pid(gate: Path, task_id: str) -> int:
    """The pid that a `gate_task` shell wrote once it started."""
    pid_file = Path(f"{gate}.{task_id}.pid")
    return int(
        wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), message="the shell's pid")
    )


@contextlib.contextmanager
def _consumers_paused(queues: list[str]) -> Iterator[None]:
    """The session's workers stop taking messages from `queues` for the duration of the block."""
    from orchestrator.celery import app

    expected = WORKER_PROCESSES if PRODUCTION else 1

    def broadcast(command: str, queue: str) -> list[dict[str, Any]]:
        # A new connection each time: the pooled ones are dead after a broker restart.
        with app.connection_for_write() as connection:
            method = getattr(app.control, command)
            return method(queue, reply=True, timeout=10, limit=expected, connection=connection) or []

    for queue in queues:
        replies = broadcast("cancel_consumer", queue)
        assert len(replies) == expected, replies
    try:
        yield
    finally:
        for queue in queues:
            broadcast("add_consumer", queue)


# ---------------------------------------------------------------------------------------------- worker


@production_only
def test_task_of_a_killed_worker_gets_a_second_attempt_on_the_other_worker(
    start_flow: StartFlow, worker_pool: WorkerPool, tmp_path: Path
) -> None:
    # given: a task held by a gate, on one of the two workers
    gate = tmp_path / "gate"
    execution_id = start_flow(_gated_flow("killed", gate))
    wait_taskrun(execution_id, "wait", "RUNNING")
    shell = _shell_pid(gate, "wait")
    victim = _worker_running(shell, worker_pool.processes)
    _, shell_group = _process_stat(shell)
    try:
        # when: the whole worker dies (the task's shell has its own session: it goes down with the host)
        worker_pool.kill(victim)
        os.killpg(shell_group, signal.SIGKILL)
        gate.touch()
        # then
        done = finished(execution_id, timeout=120)
    finally:
        worker_pool.replace(victim)
    assert done.state == "SUCCESS"
    assert done.states() == {"wait": "SUCCESS", "after": "SUCCESS"}
    assert _attempt_states(done.run("wait")) == ["KILLED", "SUCCESS"]
    assert _attempt_states(done.run("after")) == ["SUCCESS"]
    assert _taskrun_counts(execution_id) == {"wait": 1, "after": 1}


# ---------------------------------------------------------------------------------------------- redis


def _redis_cli() -> list[str]:
    from django.conf import settings as django_settings

    url = urlparse(django_settings.CELERY_BROKER_URL)
    return ["redis-cli", "-h", url.hostname or "127.0.0.1", "-p", str(url.port or 6379)]


def _queued_tasks() -> int:
    """Messages waiting in Redis for the `default` queue."""
    from orchestrator.celery import DEFAULT_QUEUE, app

    with app.connection_for_write() as connection:
        return int(connection.default_channel.client.llen(DEFAULT_QUEUE))


def _messages_held_by_workers() -> int | None:
    """Messages that the workers received and did not acknowledge yet (running or reserved), or None
    when a worker did not answer."""
    from orchestrator.celery import app

    with app.connection_for_write() as connection:
        inspect = app.control.inspect(timeout=1.0, connection=connection)
        replies = [inspect.active() or {}, inspect.reserved() or {}]
    if any(len(reply) < WORKER_PROCESSES for reply in replies):
        return None
    return sum(len(requests) for reply in replies for requests in reply.values())


def _redis_answers() -> bool:
    ping = subprocess.run([*_redis_cli(), "ping"], capture_output=True, text=True, timeout=10)
    return ping.stdout.strip() == "PONG"


def _restart_redis() -> None:
    """Stop the broker's redis-server without saving, and start it again with the same settings."""
    cli = _redis_cli()

    def config(name: str) -> str:
        lines = subprocess.run(
            [*cli, "config", "get", name], capture_output=True, text=True, timeout=10, check=True
        ).stdout.splitlines()
        return lines[1] if len(lines) > 1 else ""

    port = cli[-1]
    command = ["redis-server", "--daemonize", "yes", "--bind", *config("bind").split(), "--port", port]
    for name in ("save", "appendonly", "dir", "logfile"):
        command += [f"--{name}", config(name)]
    subprocess.run([*cli, "shutdown", "nosave"], capture_output=True, timeout=10)
    wait_until(lambda: not _redis_answers(), timeout=30, message="redis to stop")
    subprocess.run(command, check=True, timeout=30)
    wait_until(_redis_answers, timeout=30, message="redis to answer PONG again")


@pytest.fixture
def restart_redis(worker_pool: WorkerPool) -> Iterator[Callable[[], None]]:
    """Restarts the broker; afterwards, replaces any worker that did not survive it."""
    from django.conf import settings as django_settings

    url = urlparse(django_settings.CELERY_BROKER_URL)
    if (
        url.scheme != "redis"
        or url.hostname not in ("127.0.0.1", "localhost")
        or not shutil.which("redis-server")
    ):
        pytest.skip("needs a local redis-server broker that this test can restart")
    try:
        yield _restart_redis
    finally:
        worker_pool.revive()


@production_only
def test_a_flow_survives_a_redis_restart(
    start_flow: StartFlow, worker_pool: WorkerPool, restart_redis: Callable[[], None]
) -> None:
    # given: a 20-step flow, a quarter done, whose next message waits in Redis (the workers are told
    # to stop consuming, so none holds a message when Redis stops: see the xfail test below)
    from orchestrator.celery import DEFAULT_QUEUE, EXECUTOR_QUEUE

    execution_id = start_flow(TWENTY_STEPS)
    wait_until(lambda: _successes(execution_id) >= 5, timeout=60, message="five steps to succeed")
    with _consumers_paused([DEFAULT_QUEUE, EXECUTOR_QUEUE]):
        wait_until(
            lambda: _queued_tasks() >= 1 and _messages_held_by_workers() == 0,
            timeout=30,
            message="the next step's message to wait in Redis",
        )
        # when: Redis restarts without persistence: the message is lost
        restart_redis()
        assert _queued_tasks() == 0
        wait_until(
            lambda: len(worker_pool.answering()) == WORKER_PROCESSES,
            timeout=60,
            message="the workers to reconnect",
        )
    # then: the reaper sends the lost message again
    done = finished(execution_id, timeout=120)
    assert all(process.poll() is None for process in worker_pool.processes)
    assert done.state == "SUCCESS"
    assert done.states() == {f"step{index:02d}": "SUCCESS" for index in range(20)}
    assert _taskrun_counts(execution_id) == {f"step{index:02d}": 1 for index in range(20)}


@production_only
@pytest.mark.xfail(
    strict=False,  # the crash depends on where the worker's connection is when Redis goes away
    reason="celery 5.7.0 / kombu 5.7.0: a worker holding an unacknowledged message when the Redis "
    "connection drops dies with `Unrecoverable error: AttributeError: 'NoneType' object has no attribute "
    "'hostname'` (Consumer.on_connection_error_after_connected closes the channel after collect() "
    "cleared transport.client; restore_unacked -> _connparams)",
)
def test_a_worker_running_a_task_reconnects_after_a_redis_restart(
    start_flow: StartFlow, worker_pool: WorkerPool, restart_redis: Callable[[], None], tmp_path: Path
) -> None:
    # given: a task in progress on one worker (its message is not acknowledged yet: acks_late)
    gate = tmp_path / "gate"
    execution_id = start_flow(_gated_flow("gated", gate))
    wait_taskrun(execution_id, "wait", "RUNNING")
    running = _worker_running(_shell_pid(gate, "wait"), worker_pool.processes)
    # when
    restart_redis()
    gate.touch()
    # then: the flow ends, and the worker is still there and consuming
    done = finished(execution_id, timeout=120)
    assert done.state == "SUCCESS"
    assert done.states() == {"wait": "SUCCESS", "after": "SUCCESS"}
    wait_until(
        lambda: running.poll() is not None or running in worker_pool.answering(),
        timeout=30,
        message="the worker to answer a ping or exit",
    )
    assert running.poll() is None, "the worker exited when Redis restarted"


# ---------------------------------------------------------------------------------------------- postgresql


RETRIED_ONCE = """
    id: retried
    namespace: test.faults
    tasks:
      - id: flaky
        type: io.kestra.plugin.core.execution.Fail
        retry: {type: constant, interval: PT1S, maxAttempts: 2}
"""


def _terminate_worker_sessions() -> int:
    """Cut the PostgreSQL sessions of the worker processes and of beat."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = ANY(%s)",
            [[WORKER_APPLICATION_NAME, BEAT_APPLICATION_NAME]],
        )
        return len(cursor.fetchall())


@production_only
def test_a_flow_survives_its_database_sessions_being_terminated(start_flow: StartFlow) -> None:
    # given
    execution_id = start_flow(TWENTY_STEPS)
    terminated = 0
    # when: every session of the worker processes (heartbeats, pool children) is cut, three times
    for successes in (3, 8, 13):
        wait_until(
            lambda successes=successes: _successes(execution_id) >= successes,
            timeout=120,
            message=f"{successes} steps to succeed",
        )
        terminated += _terminate_worker_sessions()
    # then
    done = finished(execution_id, timeout=120)
    assert terminated > 0
    assert done.state == "SUCCESS"
    assert done.states() == {f"step{index:02d}": "SUCCESS" for index in range(20)}
    assert _taskrun_counts(execution_id) == {f"step{index:02d}": 1 for index in range(20)}
    # and beat, whose session was cut too, still sends the tick that releases a retry
    retried = finished(start_flow(RETRIED_ONCE), timeout=60)
    assert [attempt["state"]["current"] for attempt in retried.run("flaky")["attempts"]] == [
        "FAILED",
        "FAILED",
    ]


# ---------------------------------------------------------------------------------------------- burst


@production_only
def test_two_hundred_executions_started_at_once_each_run_their_task_once(
    worker: str, transactional_db: None
) -> None:
    # given
    from django.db import connection

    from flows import services
    from flows.engine.states import TERMINAL_STATES
    from flows.models import Execution, TaskRun

    services.ensure_tenant("main")
    flow = services.save_flow_revision(
        "main",
        textwrap.dedent("""
            id: burst
            namespace: test.faults
            tasks:
              - id: hello
                type: io.kestra.plugin.core.log.Log
                message: "hello from {{ execution.id }}"
        """),
    )

    def start(_: int) -> str:
        try:
            return services.start_execution(tenant="main", namespace=flow.namespace, flow_id=flow.flow_id).id
        finally:
            connection.close()  # this thread's own connection

    # when
    with ThreadPoolExecutor(max_workers=20) as pool:
        ids = list(pool.map(start, range(200)))
    wait_until(
        lambda: Execution.objects.filter(id__in=ids, state__in=TERMINAL_STATES).count() == 200,
        timeout=120,
        message="200 executions to end",
    )
    # then
    assert len(set(ids)) == 200
    assert Counter(Execution.objects.filter(id__in=ids).values_list("state", flat=True)) == {"SUCCESS": 200}
    runs = list(
        TaskRun.objects.filter(execution_id__in=ids).values_list(
            "execution_id", "task_id", "attempt", "attempts"
        )
    )
    assert Counter(execution_id for execution_id, *_ in runs) == Counter(ids)
    assert {task_id for _, task_id, _, _ in runs} == {"hello"}
    assert Counter(attempt for _, _, attempt, _ in runs) == {1: 200}
    assert Counter(tuple(item["state"] for item in attempts) for *_, attempts in runs) == {("SUCCESS",): 200}


# ---------------------------------------------------------------------------------------------- delivery order


@pytest.fixture
def silent_workers(worker: str) -> Iterator[None]:
    """The session's workers stop consuming the task queue: the test delivers `run_task` itself."""
    from orchestrator.celery import DEFAULT_QUEUE

    with _consumers_paused([DEFAULT_QUEUE]):
        yield


def _parallel_flow(fails: list[bool]) -> str:
    """A Parallel of Return and Fail tasks, all dispatched at once, then `after`; `handler` on failure."""
    branches = "".join(
        f"""
      - id: branch{index}
        type: io.kestra.plugin.core.{"execution.Fail" if fail else "debug.Return"}"""
        + ("" if fail else f'\n        format: "branch {index}"')
        for index, fail in enumerate(fails)
    )
    return f"""
id: shuffled-parallel
namespace: test.faults
tasks:
  - id: fan
    type: io.kestra.plugin.core.flow.Parallel
    tasks:{branches}
  - id: after
    type: io.kestra.plugin.core.debug.Return
    format: after
errors:
  - id: handler
    type: io.kestra.plugin.core.debug.Return
    format: handled
"""


def _foreach_flow(values: list[str], limit: int) -> str:
    """Two steps per value, `limit` iterations at once, then one check per value, all at once."""
    return f"""
id: shuffled-foreach
namespace: test.faults
tasks:
  - id: each
    type: io.kestra.plugin.core.flow.ForEach
    values: {values!r}
    concurrencyLimit: {limit}
    tasks:
      - id: first
        type: io.kestra.plugin.core.debug.Return
        format: "first {{{{ taskrun.value }}}}"
      - id: second
        type: io.kestra.plugin.core.debug.Return
        format: "second {{{{ outputs.first[taskrun.value].value }}}}"
  - id: checks
    type: io.kestra.plugin.core.flow.ForEach
    values: {values!r}
    concurrencyLimit: 0
    tasks:
      - id: check
        type: io.kestra.plugin.core.execution.Fail
        condition: "{{{{ 'fail' in taskrun.value }}}}"
errors:
  - id: handler
    type: io.kestra.plugin.core.debug.Return
    format: handled
"""


flow_shapes = st.one_of(
    st.lists(st.booleans(), min_size=1, max_size=4).map(_parallel_flow),
    st.builds(
        _foreach_flow,
        st.lists(st.sampled_from(["ok", "fail"]), min_size=1, max_size=3).map(
            lambda kinds: [f"{kind}{index}" for index, kind in enumerate(kinds)]
        ),
        st.sampled_from([0, 1, 2]),
    ),
)

Outcome = tuple[str, list[tuple[str, str, str]]]


def _outcome(execution_id: str) -> Outcome:
    from flows.models import Execution, TaskRun

    execution = Execution.objects.get(id=execution_id)
    runs = TaskRun.objects.filter(execution_id=execution_id).values_list("task_id", "value", "state")
    return execution.state, sorted((task_id, value or "", state) for task_id, value, state in runs)


def _start(source: str) -> str:
    from flows import services

    flow = services.save_flow_revision("main", source)
    return services.start_execution(tenant="main", namespace=flow.namespace, flow_id=flow.flow_id).id


Message = tuple[str, int] | None  # run_task(taskrun_id, attempt), or None for advance(execution_id)


def _deliver(execution_id: str, choose: Callable[[list[Message]], list[Message]]) -> None:
    """Act as the workers until the execution ends: each round delivers the messages of the runs
    now SUBMITTED, plus `advance` messages and messages already delivered, in the order `choose` says."""
    from flows.engine.states import State
    from flows.models import Execution, TaskRun
    from flows.services import advance_execution
    from flows.services.attempts import run_attempt

    delivered: list[Message] = []
    for _ in range(100):
        if Execution.objects.get(id=execution_id).is_terminal:
            return
        submitted: list[Message] = list(
            TaskRun.objects.filter(execution_id=execution_id, state=State.SUBMITTED)
            .order_by("seq")
            .values_list("id", "attempt")
        )
        assert submitted, f"execution {execution_id} is not terminal and has nothing to run"
        for message in choose(submitted + delivered):
            if message is None:
                advance_execution(execution_id)
            else:
                run_attempt(*message)
        delivered += submitted
    raise AssertionError(f"execution {execution_id} did not end after 100 rounds")


def _canonical(messages: list[Message]) -> list[Message]:
    return [message for message in dict.fromkeys(messages) if message is not None]


@pytest.fixture(scope="module")
def reference() -> dict[str, Outcome]:
    """The outcome of each flow shape delivered in order, computed once per shape."""
    return {}


@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(source=flow_shapes, data=st.data())
def test_shuffled_and_duplicated_deliveries_reach_the_same_end(
    silent_workers: None,
    transactional_db: None,
    reference: dict[str, Outcome],
    source: str,
    data: st.DataObject,
) -> None:
    # given: the end reached when each message is delivered once, in creation order
    from flows.models import TaskRun

    if source not in reference:
        execution_id = _start(source)
        _deliver(execution_id, _canonical)
        reference[source] = _outcome(execution_id)
    expected = reference[source]

    def shuffled(messages: list[Message]) -> list[Message]:
        pending = [message for message in dict.fromkeys(messages) if message is not None]
        extra = data.draw(st.lists(st.sampled_from([*messages, None]), max_size=len(messages) + 2))
        return data.draw(st.permutations(pending + extra))

    # when: delivered in any order, some twice, with `advance` messages in between
    execution_id = _start(source)
    _deliver(execution_id, shuffled)
    # then
    assert _outcome(execution_id) == expected
    state, runs = expected
    has_failure = any(run_state == "FAILED" for _, _, run_state in runs)
    assert state == ("FAILED" if has_failure else "SUCCESS")
    runnable = [run for run in TaskRun.objects.filter(execution_id=execution_id) if run.attempts]
    assert {(run.attempt, len(run.attempts)) for run in runnable} == {(1, 1)}
