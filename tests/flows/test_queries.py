"""SQL per task run is bounded by a constant, whatever the length of the flow.

Runs in the test's own transaction: on-commit messages never leave, so the test thread plays the
worker by calling `run_attempt` for each dispatched task run.
"""

from __future__ import annotations

import pytest

from flows import services
from flows.models import TaskRun

# Measured: 10 (read, claim, rows, begin, logs, lock, rows, record, next run, commit).
MAX_QUERIES_PER_TASK_RUN = 11
# A worker going on with the next run itself creates it claimed, and has its rows: measured 7
# (begin, logs, lock, rows, record, next run, commit).
MAX_QUERIES_PER_CONTINUED_TASK_RUN = 8


def _flow(size: int) -> str:
    tasks = "\n".join(
        f"  - {{id: t{index}, type: io.kestra.plugin.core.debug.Return, format: '{{{{ inputs.word }}}} {index}'}}"
        for index in range(size)
    )
    return f"id: long\nnamespace: test.queries\ninputs:\n  - {{id: word, type: STRING}}\ntasks:\n{tasks}\n"


@pytest.mark.django_db
def test_each_task_run_costs_a_bounded_number_of_queries(django_assert_max_num_queries, settings) -> None:  # noqa: ANN001
    # given: every run goes through a message (the worker never goes on by itself)
    settings.BATON_WORKER_CONTINUE_SECONDS = 0
    services.ensure_tenant("main")
    services.save_flow_revision("main", _flow(30))
    execution = services.start_execution(
        tenant="main", namespace="test.queries", flow_id="long", inputs={"word": "x"}
    )
    # when / then: every attempt, early or late in the flow, stays under the same bound
    for index in range(30):
        run = TaskRun.objects.get(execution=execution, task_id=f"t{index}")
        with django_assert_max_num_queries(MAX_QUERIES_PER_TASK_RUN):
            services.run_attempt(run.id, 1)
    execution.refresh_from_db()
    assert execution.state == "SUCCESS"
    assert TaskRun.objects.filter(execution=execution, state="SUCCESS").count() == 30


@pytest.mark.django_db
def test_a_worker_going_on_with_the_next_run_costs_fewer_queries_per_run(
    django_assert_max_num_queries,
) -> None:  # noqa: ANN001
    # given
    services.ensure_tenant("main")
    services.save_flow_revision("main", _flow(30))
    execution = services.start_execution(
        tenant="main", namespace="test.queries", flow_id="long", inputs={"word": "x"}
    )
    first = TaskRun.objects.get(execution=execution, task_id="t0")
    # when: one message; each result makes the next run ready on the same queue
    with django_assert_max_num_queries(30 * MAX_QUERIES_PER_CONTINUED_TASK_RUN):
        services.run_attempt(first.id, 1, request_id="message-1")
    # then
    execution.refresh_from_db()
    assert execution.state == "SUCCESS"
    runs = TaskRun.objects.filter(execution=execution)
    assert [run.outputs["value"] for run in runs] == [f"x {index}" for index in range(30)]
    assert {run.claimed_by for run in runs} == {"message-1"}
    assert {run.attempt for run in runs} == {1}


@pytest.mark.django_db
def test_saving_an_invalid_flow_changes_nothing() -> None:
    from flows.errors import FlowValidationError
    from flows.models import Flow, FlowRevision

    services.ensure_tenant("main")
    services.save_flow_revision(
        "main",
        "id: keep\nnamespace: test.queries\ntasks:\n  - {id: a, type: io.kestra.plugin.core.log.Log, message: m}\n",
    )
    with pytest.raises(FlowValidationError) as raised:
        services.save_flow_revision(
            "main", "id: keep\nnamespace: test.queries\ntasks:\n  - {id: a, type: nope.Nope}\n"
        )
    assert raised.value.violations[0].path == "tasks[0].type"
    assert raised.value.violations[0].line == 4
    flow = Flow.objects.get(flow_id="keep")
    assert flow.revision == 1
    assert FlowRevision.objects.filter(flow=flow).count() == 1
    assert "log.Log" in flow.source


@pytest.mark.django_db
def test_every_save_is_a_new_revision_and_an_unchanged_one_is_not() -> None:
    from flows.models import FlowRevision

    services.ensure_tenant("main")
    source = "id: rev\nnamespace: test.queries\ntasks:\n  - {id: a, type: io.kestra.plugin.core.log.Log, message: m}\n"
    services.save_flow_revision("main", source)
    services.save_flow_revision("main", source)
    services.save_flow_revision("main", source.replace("message: m", "message: n"))
    assert list(FlowRevision.objects.filter(flow__flow_id="rev").values_list("revision", flat=True)) == [2, 1]
