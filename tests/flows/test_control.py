"""Control of executions: kill, pause and resume, restart, replay, change status; in both modes."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.executions import Finished, finished, gate_task, wait_execution, wait_taskrun
from tests.fixtures.waiting import wait_until

StartFlow = Callable[..., str]
RunFlow = Callable[..., Finished]


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_kill_a_running_execution_stops_its_process_and_ends_killed(
    start_flow: StartFlow, tmp_path: Path
) -> None:
    # given: a task that would run for a minute
    from flows.services.control import kill_execution

    gate = tmp_path / "gate"
    execution_id = start_flow(f"""
        id: long
        namespace: test.control
        tasks:{gate_task("wait", gate)}
          - id: never
            type: io.kestra.plugin.core.log.Log
            message: not reached
    """)
    wait_taskrun(execution_id, "wait", "RUNNING")
    pid_file = Path(f"{gate}.wait.pid")
    wait_until(lambda: pid_file.exists() and pid_file.read_text().strip(), message="the shell's pid")
    pid = int(pid_file.read_text())
    # when
    kill_execution(execution_id)
    # then
    done = finished(execution_id)
    assert done.state == "KILLED"
    assert done.states() == {"wait": "KILLED"}
    assert "KILLING" in [entry["state"] for entry in done.data["state"]["histories"]]
    wait_until(lambda: _process_gone(pid), timeout=10, message="the task's process to die")


def test_kill_a_paused_execution_and_killing_twice_changes_nothing(start_flow: StartFlow) -> None:
    # given
    from flows.services.control import kill_execution

    execution_id = start_flow("""
        id: paused
        namespace: test.control
        tasks:
          - {id: hold, type: io.kestra.plugin.core.flow.Pause}
          - {id: after, type: io.kestra.plugin.core.log.Log, message: not reached}
    """)
    wait_execution(execution_id, "PAUSED")
    # when
    kill_execution(execution_id)
    kill_execution(execution_id)
    # then
    done = finished(execution_id)
    assert done.state == "KILLED"
    assert done.states() == {"hold": "KILLED"}
    from flows.models import Timer

    assert not Timer.objects.filter(execution_id=execution_id).exists()


def test_kill_during_a_retry_back_off_ends_killed_and_disarms_the_retry(start_flow: StartFlow) -> None:
    # given: the first attempt failed; the second waits for its back-off
    from flows.models import Timer
    from flows.services.control import kill_execution

    execution_id = start_flow("""
        id: backing-off
        namespace: test.control
        tasks:
          - id: flaky
            type: io.kestra.plugin.core.execution.Fail
            retry: {type: constant, interval: PT1M, maxAttempts: 3}
    """)
    wait_taskrun(execution_id, "flaky", "RETRYING")
    # when
    kill_execution(execution_id)
    # then
    done = finished(execution_id)
    assert done.state == "KILLED"
    assert done.states() == {"flaky": "KILLED"}
    assert len(done.run("flaky")["attempts"]) == 1
    assert not Timer.objects.filter(execution_id=execution_id).exists()


def test_kill_a_queued_execution_ends_it_without_running_anything(
    start_flow: StartFlow, tmp_path: Path
) -> None:
    # given: one execution holds the only slot, a second waits QUEUED
    from flows.services.control import kill_execution

    gate = tmp_path / "gate"
    source = f"""
        id: one-at-a-time
        namespace: test.control
        concurrency: {{limit: 1, behavior: QUEUE}}
        tasks:{gate_task("wait", gate)}
    """
    first = start_flow(source)
    wait_taskrun(first, "wait", "RUNNING")
    queued = start_flow(source)
    wait_execution(queued, "QUEUED")
    # when
    kill_execution(queued)
    gate.touch()
    # then
    killed = finished(queued)
    assert killed.state == "KILLED"
    assert killed.data["taskRunList"] == []
    assert finished(first).state == "SUCCESS"


def test_kill_reaches_subflow_executions(start_flow: StartFlow, tmp_path: Path) -> None:
    # given: a parent waiting on a child that waits on a gate
    from flows import services
    from flows.models import Execution
    from flows.services.control import kill_execution

    gate = tmp_path / "gate"
    services.ensure_tenant("main")
    services.save_flow_revision(
        "main",
        f"""
id: child
namespace: test.control
tasks:{gate_task("wait", gate)}
""",
    )
    parent_id = start_flow("""
        id: parent
        namespace: test.control
        tasks:
          - {id: call, type: io.kestra.plugin.core.flow.Subflow, namespace: test.control, flowId: child}
    """)
    child = wait_until(lambda: Execution.objects.filter(parent_id=parent_id).first(), message="the child")
    wait_taskrun(child.id, "wait", "RUNNING")
    # when
    kill_execution(parent_id)
    # then
    assert finished(parent_id).state == "KILLED"
    assert finished(child.id).state == "KILLED"


def test_manual_pause_lets_running_tasks_finish_and_starts_nothing_until_resumed(
    start_flow: StartFlow, tmp_path: Path
) -> None:
    # given
    from flows.models import Execution, TaskRun
    from flows.services import resume_execution
    from flows.services.control import ControlError, pause_execution

    gate = tmp_path / "gate"
    execution_id = start_flow(f"""
        id: pausable
        namespace: test.control
        tasks:{gate_task("first", gate)}
          - {{id: second, type: io.kestra.plugin.core.log.Log, message: after the pause}}
    """)
    wait_taskrun(execution_id, "first", "RUNNING")
    # when: paused by hand while `first` runs, then `first` ends
    pause_execution(execution_id)
    with pytest.raises(ControlError):
        pause_execution(execution_id)
    gate.touch()
    wait_taskrun(execution_id, "first", "SUCCESS")
    # then: nothing new started
    assert Execution.objects.get(id=execution_id).state == "PAUSED"
    assert not TaskRun.objects.filter(execution_id=execution_id, task_id="second").exists()
    # when
    resume_execution(execution_id)
    # then
    done = finished(execution_id)
    assert done.state == "SUCCESS"
    assert done.states() == {"first": "SUCCESS", "second": "SUCCESS"}
    states = [entry["state"] for entry in done.data["state"]["histories"]]
    assert states[-3:] == ["PAUSED", "RUNNING", "SUCCESS"]


def test_restart_gives_failed_runs_a_new_attempt_and_keeps_successful_outputs(
    run_flow: RunFlow, tmp_path: Path
) -> None:
    # given: `flaky` fails until a file exists; the flow's errors branch ran
    from flows.services.control import ControlError, restart_execution

    marker = tmp_path / "fixed"
    done = run_flow(f"""
        id: restartable
        namespace: test.control
        tasks:
          - {{id: before, type: io.kestra.plugin.core.debug.Return, format: kept}}
          - id: flaky
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - test -f {marker}
          - {{id: after, type: io.kestra.plugin.core.debug.Return, format: "{{{{ outputs.before.value }}}}"}}
        errors:
          - {{id: alert, type: io.kestra.plugin.core.log.Log, message: failed}}
    """)
    assert done.state == "FAILED"
    assert done.states() == {"before": "SUCCESS", "flaky": "FAILED", "alert": "SUCCESS"}
    before_id = done.run("before")["id"]
    # when
    marker.touch()
    restart_execution(done.data["id"])
    # then
    again = finished(done.data["id"])
    assert again.state == "SUCCESS"
    assert again.states() == {"before": "SUCCESS", "flaky": "SUCCESS", "after": "SUCCESS"}
    assert again.run("before")["id"] == before_id
    assert [attempt["state"]["current"] for attempt in again.run("flaky")["attempts"]] == [
        "FAILED",
        "SUCCESS",
    ]
    assert again.run("after")["outputs"] == {"value": "kept"}
    assert "RESTARTED" in [entry["state"] for entry in again.data["state"]["histories"]]
    with pytest.raises(ControlError):
        restart_execution(done.data["id"])  # a successful execution does not restart


def test_replay_from_a_task_run_is_a_new_execution_with_earlier_outputs_and_new_inputs(
    run_flow: RunFlow,
) -> None:
    # given
    from flows.services.control import replay_execution

    done = run_flow(
        """
        id: replayable
        namespace: test.control
        inputs:
          - {id: word, type: STRING}
        tasks:
          - {id: first, type: io.kestra.plugin.core.debug.Return, format: "{{ inputs.word }}-1"}
          - {id: second, type: io.kestra.plugin.core.debug.Return, format: "{{ outputs.first.value }} {{ inputs.word }}"}
    """,
        {"word": "old"},
    )
    assert done.run("second")["outputs"] == {"value": "old-1 old"}
    # when
    replay = replay_execution(done.data["id"], done.run("second")["id"], inputs={"word": "new"})
    # then
    again = finished(replay.id)
    assert again.state == "SUCCESS"
    assert again.data["originalId"] == done.data["id"]
    assert again.run("first")["outputs"] == {"value": "old-1"}  # copied, not run again
    assert again.run("second")["outputs"] == {"value": "old-1 new"}
    assert finished(done.data["id"]).run("second")["outputs"] == {"value": "old-1 old"}


def test_change_status_of_a_failed_task_run_lets_the_flow_go_on(run_flow: RunFlow) -> None:
    # given
    from flows.services.control import ControlError, change_taskrun_state

    done = run_flow("""
        id: changeable
        namespace: test.control
        tasks:
          - {id: broken, type: io.kestra.plugin.core.execution.Fail}
          - {id: next, type: io.kestra.plugin.core.log.Log, message: went on}
    """)
    assert done.state == "FAILED"
    with pytest.raises(ControlError):
        change_taskrun_state(done.data["id"], done.run("broken")["id"], "RUNNING")
    # when
    change_taskrun_state(done.data["id"], done.run("broken")["id"], "SUCCESS")
    # then
    again = finished(done.data["id"])
    assert again.state == "SUCCESS"
    assert again.states() == {"broken": "SUCCESS", "next": "SUCCESS"}


def _max_overlap(intervals: list[tuple[str, str]]) -> int:
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def test_concurrency_queue_never_runs_more_than_the_limit_and_starts_queued_in_order(
    start_flow: StartFlow, worker: str
) -> None:
    # given: 50 executions created at once from 4 threads, limit 2
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    from flows import services
    from flows.models import Execution

    services.ensure_tenant("main")
    services.save_flow_revision(
        "main",
        """
id: limited
namespace: test.control
concurrency: {limit: 2, behavior: QUEUE}
tasks:
  - {id: work, type: io.kestra.plugin.scripts.shell.Commands, commands: ["sleep 0.1"]}
""",
    )

    def start(_: int) -> str:
        try:
            return services.start_execution(tenant="main", namespace="test.control", flow_id="limited").id
        finally:
            connection.close()

    # when
    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(start, range(50)))
    # then
    runs = [finished(execution_id, timeout=120) for execution_id in ids]
    assert {run.state for run in runs} == {"SUCCESS"}
    intervals = []
    for run in runs:
        histories = run.data["state"]["histories"]
        started = next(entry["date"] for entry in histories if entry["state"] == "RUNNING")
        intervals.append((started, histories[-1]["date"]))
    assert _max_overlap(intervals) <= 2
    queued_runs = sorted(
        (run for run in runs if "QUEUED" in [entry["state"] for entry in run.data["state"]["histories"]]),
        key=lambda run: (run.data["state"]["startDate"], run.data["id"]),
    )
    assert queued_runs, "some executions waited in the queue"
    started_order = [
        next(entry["date"] for entry in run.data["state"]["histories"] if entry["state"] == "RUNNING")
        for run in queued_runs
    ]
    assert started_order == sorted(started_order)
    assert Execution.objects.filter(id__in=ids).count() == 50


@pytest.mark.parametrize("behavior, state", [("CANCEL", "CANCELLED"), ("FAIL", "FAILED")])
def test_concurrency_cancel_and_fail_end_the_extra_execution_at_once(
    start_flow: StartFlow, tmp_path: Path, behavior: str, state: str
) -> None:
    # given: one execution holds the only slot
    from flows.services.control import kill_execution

    gate = tmp_path / "gate"
    source = f"""
        id: single-{behavior.lower()}
        namespace: test.control
        concurrency: {{limit: 1, behavior: {behavior}}}
        tasks:{gate_task("wait", gate)}
    """
    first = start_flow(source)
    wait_taskrun(first, "wait", "RUNNING")
    # when
    second = start_flow(source)
    # then
    extra = finished(second)
    assert extra.state == state
    assert extra.data["taskRunList"] == []
    assert any("concurrency limit" in message for message in extra.messages())
    kill_execution(first)
    assert finished(first).state == "KILLED"


def test_killing_the_running_execution_starts_the_queued_one(start_flow: StartFlow, tmp_path: Path) -> None:
    # given
    from flows.services.control import kill_execution

    gate = tmp_path / "gate"
    source = f"""
        id: single-queue
        namespace: test.control
        concurrency: {{limit: 1}}
        tasks:{gate_task("wait", gate)}
    """
    first = start_flow(source)
    wait_taskrun(first, "wait", "RUNNING")
    second = start_flow(source)
    third = start_flow(source)
    wait_execution(second, "QUEUED")
    # when: the queued third is killed, the running first is killed
    kill_execution(third)
    kill_execution(first)
    # then: the second starts, and ends once the gate opens
    wait_taskrun(second, "wait", "RUNNING")
    gate.touch()
    assert finished(second).state == "SUCCESS"
    assert finished(third).state == "KILLED"
    assert finished(third).data["taskRunList"] == []


def test_executions_command_kills_pauses_restarts_and_changes_status(run_flow: RunFlow) -> None:
    # given
    from django.core.management import call_command

    done = run_flow("""
        id: by-command
        namespace: test.control
        tasks:
          - {id: broken, type: io.kestra.plugin.core.execution.Fail}
    """)
    # when / then
    call_command("executions", "change-status", done.data["id"], done.run("broken")["id"], "WARNING")
    assert finished(done.data["id"]).state == "WARNING"
    with pytest.raises(SystemExit):
        call_command("executions", "restart", done.data["id"])
    call_command("executions", "kill", done.data["id"])
    assert finished(done.data["id"]).state == "WARNING"


def test_sleep_waits_on_a_timer_not_on_a_worker_and_is_killed_at_once(start_flow: StartFlow) -> None:
    # given: a short sleep, and a long one
    from flows.models import TaskRun, Timer
    from flows.services.control import kill_execution

    short = start_flow("""
        id: nap
        namespace: test.control
        tasks:
          - {id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT0.3S}
          - {id: after, type: io.kestra.plugin.core.log.Log, message: awake}
    """)
    long = start_flow("""
        id: hibernate
        namespace: test.control
        tasks:
          - {id: nap, type: io.kestra.plugin.core.flow.Sleep, duration: PT1H}
    """)
    # when / then: the short one ends with one attempt
    done = finished(short)
    assert done.states() == {"nap": "SUCCESS", "after": "SUCCESS"}
    assert len(done.run("nap")["attempts"]) == 1
    # when / then: the long one holds no worker lease while it waits, and a kill ends it
    wait_until(
        lambda: Timer.objects.filter(execution_id=long, kind="WAKE").exists(), message="the wake timer"
    )
    assert TaskRun.objects.get(execution_id=long, task_id="nap").lease_until is None
    kill_execution(long)
    assert finished(long, timeout=10).states() == {"nap": "KILLED"}
    assert not Timer.objects.filter(execution_id=long).exists()


def test_an_execution_that_is_not_moving_says_why(start_flow: StartFlow, tmp_path: Path, worker: str) -> None:
    # given: one running, one queued behind the limit, one paused, one waiting for a worker group
    from flows.models import Execution
    from flows.services.control import kill_execution, pause_execution
    from flows.services.waiting import waiting_reasons

    gate = tmp_path / "gate"
    source = f"""
        id: why-queue
        namespace: test.control
        concurrency: {{limit: 1}}
        tasks:{gate_task("wait", gate)}
    """
    running = start_flow(source)
    wait_taskrun(running, "wait", "RUNNING")
    queued = start_flow(source)
    paused = start_flow("""
        id: why-pause
        namespace: test.control
        tasks:
          - {id: hold, type: io.kestra.plugin.core.flow.Pause, pauseDuration: PT1H}
    """)
    wait_execution(paused, "PAUSED")
    grouped = start_flow("""
        id: why-group
        namespace: test.control
        tasks:
          - {id: report, type: io.kestra.plugin.core.log.Log, message: hi, workerGroup: {key: nobody}}
    """)
    # when
    reasons = {key: waiting_reasons(Execution.objects.get(id=key)) for key in (running, queued, paused)}
    # then
    assert reasons[running] == []
    assert reasons[queued] == [
        "queued: flow `test.control.why-queue` runs at its concurrency limit (1); 0 queued ahead"
    ]
    assert reasons[paused][0].startswith("paused at task `hold` until 20")
    if worker == "production":  # no worker serves group `nobody`; the embedded worker serves every group
        group_reason = waiting_reasons(Execution.objects.get(id=grouped))
        assert group_reason == ["task `report` waits for a worker of group `nobody`: none is alive"]
    pause_execution(running)
    assert waiting_reasons(Execution.objects.get(id=running)) == ["paused by hand: resume it to go on"]
    for execution_id in (running, queued, paused, grouped):
        kill_execution(execution_id)
