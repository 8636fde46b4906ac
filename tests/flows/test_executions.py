"""Executions through the services and a real worker (in-process, or worker processes in production mode)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.executions import Finished
from tests.fixtures.modes import TEST_SECRET

RunFlow = Callable[..., Finished]


def test_sequential_flow_runs_in_order_with_outputs_and_flow_outputs(run_flow: RunFlow) -> None:
    # given / when
    done = run_flow(
        """
        id: seq
        namespace: test.e2e
        inputs:
          - {id: n, type: INT}
        tasks:
          - {id: first, type: io.kestra.plugin.core.debug.Return, format: "{{ inputs.n + 1 }}"}
          - {id: second, type: io.kestra.plugin.core.debug.Return, format: "{{ outputs.first.value }}!"}
        outputs:
          - {id: result, type: STRING, value: "{{ outputs.second.value }}"}
    """,
        {"n": "41"},
    )
    # then
    assert done.state == "SUCCESS"
    assert [run["taskId"] for run in done.data["taskRunList"]] == ["first", "second"]
    assert done.run("second")["outputs"] == {"value": "42!"}
    assert done.data["outputs"] == {"result": "42!"}
    assert done.data["inputs"] == {"n": 41}
    assert [entry["state"] for entry in done.data["state"]["histories"]] == ["CREATED", "RUNNING", "SUCCESS"]


def test_parallel_branches_really_run_at_the_same_time(run_flow: RunFlow, tmp_path: Path) -> None:
    # given: each branch waits for the other's file, so they only finish if they overlap
    # when
    done = run_flow(f"""
        id: overlap
        namespace: test.e2e
        tasks:
          - id: both
            type: io.kestra.plugin.core.flow.Parallel
            tasks:
              - id: left
                type: io.kestra.plugin.scripts.shell.Commands
                timeout: PT20S
                commands:
                  - touch {tmp_path}/left
                  - while [ ! -f {tmp_path}/right ]; do sleep 0.01; done
              - id: right
                type: io.kestra.plugin.scripts.shell.Commands
                timeout: PT20S
                commands:
                  - touch {tmp_path}/right
                  - while [ ! -f {tmp_path}/left ]; do sleep 0.01; done
    """)
    # then
    assert done.state == "SUCCESS"
    assert done.states() == {"both": "SUCCESS", "left": "SUCCESS", "right": "SUCCESS"}


def test_failure_runs_errors_then_finally_and_fails_the_execution(run_flow: RunFlow) -> None:
    done = run_flow("""
        id: errs
        namespace: test.e2e
        tasks:
          - {id: ok, type: io.kestra.plugin.core.log.Log, message: fine}
          - {id: boom, type: io.kestra.plugin.core.execution.Fail, errorMessage: broken on purpose}
          - {id: never, type: io.kestra.plugin.core.log.Log, message: not reached}
        errors:
          - {id: handler, type: io.kestra.plugin.core.debug.Return, format: "{{ errorLogs()[0].message }}"}
        finally:
          - {id: cleanup, type: io.kestra.plugin.core.log.Log, message: cleaning}
    """)
    assert done.state == "FAILED"
    assert done.states() == {"ok": "SUCCESS", "boom": "FAILED", "handler": "SUCCESS", "cleanup": "SUCCESS"}
    assert "broken on purpose" in done.run("handler")["outputs"]["value"]
    assert "broken on purpose" in done.messages("boom")


def test_retries_add_attempts_to_the_same_task_run(run_flow: RunFlow) -> None:
    done = run_flow("""
        id: retry
        namespace: test.e2e
        tasks:
          - id: flaky
            type: io.kestra.plugin.core.debug.Return
            format: "{{ taskrun.attemptsCount == 2 ? 'ok' : missing_variable }}"
            retry: {type: constant, interval: PT0.1S, maxAttempts: 5}
    """)
    assert done.state == "SUCCESS"
    run = done.run("flaky")
    assert [attempt["state"]["current"] for attempt in run["attempts"]] == ["FAILED", "FAILED", "SUCCESS"]
    assert run["outputs"] == {"value": "ok"}


def test_timeout_kills_the_process_group_and_fails_the_task(run_flow: RunFlow, tmp_path: Path) -> None:
    marker = tmp_path / "survived"
    done = run_flow(f"""
        id: slow
        namespace: test.e2e
        tasks:
          - id: sleeper
            type: io.kestra.plugin.scripts.shell.Commands
            timeout: PT1S
            commands:
              - (sleep 3 && touch {marker}) &
              - sleep 30
    """)
    assert done.state == "FAILED"
    assert done.run("sleeper")["state"]["current"] == "FAILED"
    assert any("timeout" in message.lower() for message in done.messages("sleeper"))
    assert not marker.exists()


def test_if_switch_and_foreach_with_values(run_flow: RunFlow) -> None:
    done = run_flow("""
        id: branches
        namespace: test.e2e
        tasks:
          - id: each
            type: io.kestra.plugin.core.flow.ForEach
            values: ["a", "b"]
            concurrencyLimit: 0
            tasks:
              - id: echo
                type: io.kestra.plugin.core.debug.Return
                format: "{{ taskrun.value }}-{{ parent.taskrun.value ?? 'top' }}"
          - id: check
            type: io.kestra.plugin.core.flow.If
            condition: "{{ outputs.echo.a.value == 'a-top' }}"
            then:
              - {id: yes, type: io.kestra.plugin.core.debug.Return, format: "{{ outputs.echo.b.value }}"}
          - id: pick
            type: io.kestra.plugin.core.flow.Switch
            value: "{{ outputs.yes.value }}"
            cases:
              b-top: [{id: matched, type: io.kestra.plugin.core.log.Log, message: matched}]
    """)
    assert done.state == "SUCCESS"
    assert sorted((run["value"], run["outputs"]["value"]) for run in done.runs("echo")) == [
        ("a", "a-top"),
        ("b", "b-top"),
    ]
    assert done.run("pick")["outputs"] == {"value": "b-top", "defaults": False}
    assert done.run("matched")["state"]["current"] == "SUCCESS"


def test_subflow_waits_and_exposes_child_outputs(run_flow: RunFlow) -> None:
    from flows import services

    services.ensure_tenant("main")
    services.save_flow_revision(
        "main",
        """
id: child
namespace: test.e2e
inputs:
  - {id: word, type: STRING}
tasks:
  - {id: shout, type: io.kestra.plugin.core.debug.Return, format: "{{ inputs.word | upper }}"}
outputs:
  - {id: loud, type: STRING, value: "{{ outputs.shout.value }}"}
""",
    )
    done = run_flow("""
        id: parent
        namespace: test.e2e
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: test.e2e
            flowId: child
            inputs: {word: hello}
          - {id: after, type: io.kestra.plugin.core.debug.Return, format: "{{ outputs.call.outputs.loud }}"}
    """)
    assert done.state == "SUCCESS"
    assert done.run("after")["outputs"] == {"value": "HELLO"}
    assert done.run("call")["outputs"]["state"] == "SUCCESS"


def test_subflow_schedule_date_starts_the_child_later(run_flow: RunFlow) -> None:
    from flows import services
    from flows.models import Execution
    from flows.services.variables import parse_iso

    services.ensure_tenant("main")
    services.save_flow_revision(
        "main",
        """
id: later
namespace: test.e2e
tasks:
  - {id: done, type: io.kestra.plugin.core.debug.Return, format: ok}
""",
    )
    done = run_flow("""
        id: parent
        namespace: test.e2e
        tasks:
          - id: call
            type: io.kestra.plugin.core.flow.Subflow
            namespace: test.e2e
            flowId: later
            scheduleDate: "{{ now() | dateAdd(1, 'SECONDS') }}"
    """)
    assert done.state == "SUCCESS"
    child = Execution.objects.get(pk=done.run("call")["outputs"]["executionId"])
    running = next(item for item in child.histories if item["state"] == "RUNNING")
    assert child.schedule_date is not None
    assert parse_iso(running["date"]) >= child.schedule_date


def test_pause_with_duration_resumes_by_itself(run_flow: RunFlow) -> None:
    done = run_flow("""
        id: pause
        namespace: test.e2e
        tasks:
          - {id: wait, type: io.kestra.plugin.core.flow.Pause, pauseDuration: PT0.5S}
          - {id: after, type: io.kestra.plugin.core.log.Log, message: resumed}
    """)
    assert done.state == "SUCCESS"
    assert [entry["state"] for entry in done.run("wait")["state"]["histories"]] == [
        "CREATED",
        "RUNNING",
        "PAUSED",
        "RUNNING",
        "SUCCESS",
    ]
    assert "PAUSED" in [entry["state"] for entry in done.data["state"]["histories"]]


def test_kv_set_then_get(run_flow: RunFlow) -> None:
    done = run_flow("""
        id: kv
        namespace: test.e2e
        tasks:
          - {id: put, type: io.kestra.plugin.core.kv.Set, key: colour, value: blue}
          - {id: fetch, type: io.kestra.plugin.core.kv.Get, key: colour}
          - {id: expr, type: io.kestra.plugin.core.debug.Return, format: "{{ kv('colour') }}"}
    """)
    assert done.state == "SUCCESS"
    assert done.run("fetch")["outputs"] == {"value": "blue"}
    assert done.run("expr")["outputs"] == {"value": "blue"}


def test_secrets_are_masked_in_logs_and_outputs(run_flow: RunFlow) -> None:
    # given: SECRET_API_TOKEN (tests/fixtures/modes.py)
    # when
    done = run_flow("""
        id: secrets
        namespace: test.e2e
        tasks:
          - {id: say, type: io.kestra.plugin.core.log.Log, message: "token={{ secret('API_TOKEN') }}"}
          - {id: give, type: io.kestra.plugin.core.debug.Return, format: "{{ secret('API_TOKEN') }}"}
    """)
    # then
    assert done.state == "SUCCESS"
    assert done.messages("say") == ["token=******"]
    assert done.run("give")["outputs"] == {"value": "******"}
    assert TEST_SECRET not in str(done.data) + str(done.logs)
    assert base64.b64encode(TEST_SECRET.encode()).decode() not in str(done.logs)


def test_secret_inputs_are_masked(run_flow: RunFlow) -> None:
    done = run_flow(
        """
        id: secret-input
        namespace: test.e2e
        inputs:
          - {id: password, type: SECRET}
        tasks:
          - {id: say, type: io.kestra.plugin.core.log.Log, message: "pw={{ inputs.password }}"}
    """,
        {"password": "hunter22"},
    )
    assert done.messages("say") == ["pw=******"]
    assert done.data["inputs"] == {"password": "******"}


def test_labels_task_and_exit_task(run_flow: RunFlow) -> None:
    done = run_flow("""
        id: exit
        namespace: test.e2e
        labels: {team: data}
        tasks:
          - {id: tag, type: io.kestra.plugin.core.execution.Labels, labels: {stage: done}}
          - {id: stop, type: io.kestra.plugin.core.execution.Exit, state: WARNING}
          - {id: never, type: io.kestra.plugin.core.log.Log, message: unreachable}
    """)
    assert done.state == "WARNING"
    assert "never" not in done.states()
    labels = {label["key"]: label["value"] for label in done.data["labels"]}
    assert labels["team"] == "data" and labels["stage"] == "done"


def test_python_script_outputs_and_log_level(run_flow: RunFlow) -> None:
    done = run_flow("""
        id: py
        namespace: test.e2e
        tasks:
          - id: compute
            type: io.kestra.plugin.scripts.python.Script
            logLevel: INFO
            script: |
              import json, sys
              print("hello from python")
              print("::" + json.dumps({"outputs": {"total": 6 * 7}}) + "::")
              print("::" + json.dumps({"metrics": [{"name": "rows", "type": "counter", "value": 3}]}) + "::")
    """)
    assert done.state == "SUCCESS"
    assert done.run("compute")["outputs"]["vars"] == {"total": 42}
    [attempt] = done.run("compute")["attempts"]
    assert [(metric["name"], metric["value"]) for metric in attempt["metrics"]] == [("rows", 3)]
    assert "hello from python" in done.messages("compute")
    assert all(log["level"] != "DEBUG" for log in done.logs)


def test_working_directory_shares_files_between_tasks(run_flow: RunFlow) -> None:
    done = run_flow("""
        id: wd
        namespace: test.e2e
        tasks:
          - id: dir
            type: io.kestra.plugin.core.flow.WorkingDirectory
            outputFiles: [result.txt]
            tasks:
              - {id: write, type: io.kestra.plugin.scripts.shell.Commands, commands: ["echo shared > data.txt"]}
              - {id: read, type: io.kestra.plugin.scripts.shell.Commands, commands: ["cat data.txt > result.txt"]}
    """)
    assert done.state == "SUCCESS"
    uri = done.run("dir")["outputs"]["outputFiles"]["result.txt"]
    assert uri.startswith("kestra:///test/e2e/wd/executions/")


def test_two_tenants_do_not_share_flows_or_kv(run_flow: RunFlow) -> None:
    source = """
        id: same
        namespace: test.e2e
        tasks:
          - {id: get, type: io.kestra.plugin.core.kv.Get, key: k}
          - {id: set, type: io.kestra.plugin.core.kv.Set, key: k, value: "{{ flow.tenantId }}"}
    """
    first = run_flow(source, tenant="main")
    other = run_flow(source, tenant="other")
    assert first.run("get")["outputs"] == {"value": None} or first.run("get")["outputs"] is None
    assert other.run("get")["outputs"] == {"value": None} or other.run("get")["outputs"] is None
    assert first.data["tenantId"] == "main" and other.data["tenantId"] == "other"


def test_scripts_see_namespace_files_and_their_execution_context(run_flow: RunFlow) -> None:
    # given: a namespace file (the namespace files API comes with the REST API issue)
    from flows.storage import namespace_root

    root = namespace_root("main", "test.e2e")
    (root / "lib").mkdir(parents=True, exist_ok=True)
    (root / "lib" / "greeting.txt").write_text("hi from a namespace file")
    # when
    done = run_flow("""
        id: nsfiles
        namespace: test.e2e
        tasks:
          - id: dir
            type: io.kestra.plugin.core.flow.WorkingDirectory
            namespaceFiles: {enabled: true}
            tasks:
              - id: show
                type: io.kestra.plugin.scripts.python.Script
                script: |
                  import json
                  context = json.load(open(".kestra-execution-context.json"))
                  text = open("lib/greeting.txt").read()
                  print("::" + json.dumps({"outputs": {"text": text, "task": context["task"]["id"]}}) + "::")
          - {id: read, type: io.kestra.plugin.core.debug.Return, format: "{{ read('lib/greeting.txt') }}"}
    """)
    # then
    assert done.state == "SUCCESS", done.logs
    assert done.run("show")["outputs"]["vars"] == {"text": "hi from a namespace file", "task": "show"}
    assert done.run("read")["outputs"] == {"value": "hi from a namespace file"}


def test_manual_resume_validates_on_resume_inputs(worker: str, transactional_db: None) -> None:
    from flows import services
    from flows.errors import InputValidationError
    from flows.models import Execution
    from tests.fixtures.executions import finished
    from tests.fixtures.waiting import wait_until

    # given: an execution paused on a Pause with onResume inputs
    services.ensure_tenant("main")
    services.save_flow_revision(
        "main",
        """
id: approve
namespace: test.e2e
tasks:
  - id: gate
    type: io.kestra.plugin.core.flow.Pause
    onResume:
      - {id: approved, type: BOOLEAN}
  - {id: after, type: io.kestra.plugin.core.debug.Return, format: "{{ outputs.gate.onResume.approved }}"}
""",
    )
    execution = services.start_execution(tenant="main", namespace="test.e2e", flow_id="approve")
    wait_until(lambda: Execution.objects.get(id=execution.id).state == "PAUSED", message="PAUSED")
    # when: a wrong value is refused and changes nothing
    with pytest.raises(InputValidationError):
        services.resume_execution(execution.id, {"approved": "perhaps"})
    assert Execution.objects.get(id=execution.id).state == "PAUSED"
    # when: a valid one resumes
    services.resume_execution(execution.id, {"approved": "true"})
    done = finished(execution.id)
    # then
    assert done.state == "SUCCESS"
    assert done.run("gate")["outputs"] == {"onResume": {"approved": True}}
    assert done.run("after")["outputs"] == {"value": "true"}


def test_worker_group_tasks_run_on_that_group(run_flow: RunFlow) -> None:
    # given: the test workers serve `group.reports` (production) or every group (embedded)
    done = run_flow("""
        id: grouped
        namespace: test.e2e
        tasks:
          - id: report
            type: io.kestra.plugin.core.debug.Return
            format: grouped
            workerGroup: {key: reports}
    """)
    assert done.state == "SUCCESS"
    assert done.run("report")["outputs"] == {"value": "grouped"}
    from flows.tasks import worker_queue
    from tests.fixtures.modes import PRODUCTION

    assert worker_queue("reports") == ("group.reports" if PRODUCTION else "default")


def test_subflow_without_wait_and_with_a_pinned_revision(run_flow: RunFlow) -> None:
    from flows import services
    from flows.models import Execution
    from tests.fixtures.executions import finished

    # given: a child flow with two revisions
    services.ensure_tenant("main")
    child = "id: pinned\nnamespace: test.e2e\ntasks:\n  - {id: say, type: io.kestra.plugin.core.debug.Return, format: 'rev VALUE'}\n"
    services.save_flow_revision("main", child.replace("VALUE", "one"))
    services.save_flow_revision("main", child.replace("VALUE", "two"))
    # when
    done = run_flow("""
        id: launcher
        namespace: test.e2e
        tasks:
          - {id: fire, type: io.kestra.plugin.core.flow.Subflow, namespace: test.e2e, flowId: pinned, revision: 1, wait: false}
    """)
    # then: the parent did not wait, and the child ran revision 1
    assert done.state == "SUCCESS"
    child_id = done.run("fire")["outputs"]["executionId"]
    child_done = finished(child_id)
    assert child_done.data["flowRevision"] == 1
    assert child_done.run("say")["outputs"] == {"value": "rev one"}
    assert Execution.objects.get(id=child_id).parent_id == done.data["id"]


def test_log_lines_are_stored_while_the_task_still_runs(
    worker: str, transactional_db: None, tmp_path: Path
) -> None:
    from flows import services
    from flows.models import Execution, LogEntry
    from tests.fixtures.executions import finished
    from tests.fixtures.waiting import wait_until

    # given: a task that logs, then waits for the test to let it finish
    release = tmp_path / "release"
    services.ensure_tenant("main")
    services.save_flow_revision(
        "main",
        f"""
id: streaming
namespace: test.e2e
tasks:
  - id: talk
    type: io.kestra.plugin.scripts.shell.Commands
    timeout: PT30S
    commands:
      - echo first
      - echo second
      - while [ ! -f {release} ]; do sleep 0.05; done
""",
    )
    execution = services.start_execution(tenant="main", namespace="test.e2e", flow_id="streaming")
    # when
    wait_until(
        lambda: LogEntry.objects.filter(execution_id=execution.id, message="second").exists(),
        message="the second line to be stored",
    )
    # then: it was stored while the task was still running
    assert Execution.objects.get(id=execution.id).state == "RUNNING"
    release.touch()
    assert finished(execution.id).state == "SUCCESS"


def test_a_large_output_is_stored_as_a_file_and_one_over_the_hard_limit_fails_its_task(
    run_flow: RunFlow,
) -> None:
    # given: the test settings put the inline limit at 64 KiB and the hard limit at 1 MiB
    from flows.storage import storage_for

    big = 'printf \'::{"outputs":{"big":"%s"}}::\\n\' "$(head -c 100000 /dev/zero | tr \'\\0\' x)"'
    huge = big.replace("100000", "2000000")
    # when
    done = run_flow(f"""
        id: outputs-limits
        namespace: test.e2e
        tasks:
          - id: big
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - {json_string(big)}
          - id: huge
            type: io.kestra.plugin.scripts.shell.Commands
            commands:
              - {json_string(huge)}
          - {{id: never, type: io.kestra.plugin.core.log.Log, message: not reached}}
    """)
    # then
    uri = done.run("big")["outputs"]["vars"]  # the output `vars` ({"big": ...}) went to a file
    assert uri.startswith("kestra:///test/e2e/outputs-limits/executions/")
    assert json.loads(storage_for("main", "test.e2e").read_bytes("main", uri)) == {"big": "x" * 100000}
    assert done.states() == {"big": "SUCCESS", "huge": "FAILED"}
    assert done.run("huge")["outputs"] in (None, {})
    assert any("limit" in message for message in done.messages("huge"))


def json_string(text: str) -> str:
    return json.dumps(text)
