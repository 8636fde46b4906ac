"""Flow triggers: a flow starts when another one ends, as its states and conditions say."""

from __future__ import annotations

import textwrap
from collections.abc import Callable

import pytest

from flows import services
from flows.errors import FlowValidationError
from flows.models import Execution, Trigger
from tests.fixtures.executions import Finished, finished
from tests.fixtures.waiting import wait_until

UPSTREAM = """
    id: upstream
    namespace: company.team
    labels: {team: data}
    inputs:
      - {id: fail, type: BOOLEAN, defaults: false}
    outputs:
      - {id: rows, type: INT, value: 42}
    tasks:
      - id: maybe
        type: io.kestra.plugin.core.flow.If
        condition: "{{ inputs.fail }}"
        then:
          - {id: boom, type: io.kestra.plugin.core.execution.Fail}
"""


def downstream(trigger: str, flow_id: str = "downstream", namespace: str = "company.other") -> str:
    return f"""
id: {flow_id}
namespace: {namespace}
inputs:
  - {{id: upstream_rows, type: INT, defaults: 0}}
tasks:
  - id: saw
    type: io.kestra.plugin.core.debug.Return
    format: "{{{{ trigger.flowId }}}} {{{{ trigger.state }}}} {{{{ trigger.executionId }}}} {{{{ inputs.upstream_rows }}}}"
triggers:
{textwrap.indent(textwrap.dedent(trigger).strip(), "  ")}
"""


def save(source: str) -> None:
    services.ensure_tenant("main")
    services.save_flow_revision("main", textwrap.dedent(source))


def started(flow_id: str = "downstream") -> list[Execution]:
    return list(Execution.objects.filter(flow_id=flow_id).order_by("start_date"))


def test_a_flow_starts_when_the_watched_flow_succeeds(run_flow: Callable[..., Finished]) -> None:
    # given
    save(
        downstream("""
        - id: after_upstream
          type: io.kestra.plugin.core.trigger.Flow
          states: [SUCCESS]
          inputs: {upstream_rows: "{{ trigger.outputs.rows }}"}
          conditions:
            - {type: io.kestra.plugin.core.condition.ExecutionFlow, namespace: company.team, flowId: upstream}
        """)
    )
    # when
    upstream = run_flow(UPSTREAM)
    # then: started in the transaction that ended the upstream execution
    (execution,) = started()
    assert execution.trigger["type"] == "io.kestra.plugin.core.trigger.Flow"
    assert execution.trigger["variables"]["labels"] == {
        "team": "data",
        "system.correlationId": upstream.data["id"],
    }
    done = finished(execution.id)
    assert done.run("saw")["outputs"] == {"value": f"upstream SUCCESS {upstream.data['id']} 42"}


def test_states_and_conditions_decide(run_flow: Callable[..., Finished]) -> None:
    # given: one watcher of failures in company.*, one of executions labelled team=ops
    save(
        downstream(
            """
        - id: failures
          type: io.kestra.plugin.core.trigger.Flow
          states: [FAILED]
          conditions:
            - {type: io.kestra.plugin.core.condition.ExecutionNamespace, namespace: company, comparison: PREFIX}
        """,
            flow_id="on_failure",
        )
    )
    save(
        downstream(
            """
        - id: ops
          type: io.kestra.plugin.core.trigger.Flow
          conditions:
            - type: io.kestra.plugin.core.condition.ExecutionLabels
              labels: {team: ops}
        """,
            flow_id="on_ops",
        )
    )
    # when
    run_flow(UPSTREAM)
    run_flow(UPSTREAM, inputs={"fail": True})
    # then
    assert [e.trigger["variables"]["state"] for e in started("on_failure")] == ["FAILED"]
    assert started("on_ops") == []


def test_an_expression_condition_sees_the_trigger_variables(run_flow: Callable[..., Finished]) -> None:
    # given
    save(
        downstream("""
        - id: big
          type: io.kestra.plugin.core.trigger.Flow
          conditions:
            - type: io.kestra.plugin.core.condition.Expression
              expression: "{{ trigger.outputs.rows > 40 and trigger.namespace == 'company.team' }}"
        """)
    )
    # when
    run_flow(UPSTREAM)
    # then
    assert len(started()) == 1


def test_a_disabled_or_deleted_watcher_starts_nothing(run_flow: Callable[..., Finished]) -> None:
    from flows.models import Flow
    from flows.services.flows import delete_flow

    # given
    save(
        downstream("""
        - {id: any, type: io.kestra.plugin.core.trigger.Flow, disabled: true}
    """)
    )
    save(
        downstream(
            """
        - {id: any, type: io.kestra.plugin.core.trigger.Flow}
    """,
            flow_id="deleted",
        )
    )
    delete_flow(Flow.objects.get(flow_id="deleted"))
    # when
    run_flow(UPSTREAM)
    # then
    assert started() == [] and started("deleted") == []
    assert not Trigger.objects.filter(flow_id="deleted").exists()


def test_a_watcher_of_another_tenant_sees_nothing(run_flow: Callable[..., Finished]) -> None:
    # given
    services.ensure_tenant("other")
    services.save_flow_revision("other", downstream("- {id: any, type: io.kestra.plugin.core.trigger.Flow}"))
    # when
    run_flow(UPSTREAM)
    # then
    assert started() == []


def test_a_chain_of_flow_triggers_runs_each_once(run_flow: Callable[..., Finished]) -> None:
    # given: upstream -> second -> third
    save(
        downstream(
            """
        - id: first
          type: io.kestra.plugin.core.trigger.Flow
          conditions: [{type: io.kestra.plugin.core.condition.ExecutionFlow, namespace: company.team, flowId: upstream}]
    """,
            flow_id="second",
        )
    )
    save(
        downstream(
            """
        - id: next
          type: io.kestra.plugin.core.trigger.Flow
          conditions: [{type: io.kestra.plugin.core.condition.ExecutionFlow, namespace: company.other, flowId: second}]
    """,
            flow_id="third",
        )
    )
    # when
    run_flow(UPSTREAM)
    # then
    second = wait_until(lambda: started("second"), message="second")[0]
    finished(second.id)
    third = wait_until(lambda: started("third"), message="third")[0]
    assert finished(third.id).state == "SUCCESS"
    assert len(started("second")) == 1 and len(started("third")) == 1


@pytest.mark.usefixtures("transactional_db")
def test_a_condition_that_fails_to_evaluate_is_recorded_on_the_trigger(
    run_flow: Callable[..., Finished],
) -> None:
    # given
    save(
        downstream("""
        - id: broken
          type: io.kestra.plugin.core.trigger.Flow
          conditions: [{type: io.kestra.plugin.core.condition.Expression, expression: "{{ 1 / 0 }}"}]
    """)
    )
    # when
    upstream = run_flow(UPSTREAM)
    # then: the upstream execution ended as it did; the trigger says why nothing started
    assert upstream.state == "SUCCESS"
    assert started() == []
    assert upstream.data["id"] in Trigger.objects.get(flow_id="downstream").error


def test_an_unsupported_condition_is_refused_with_its_line(transactional_db: None) -> None:
    # when
    with pytest.raises(FlowValidationError) as error:
        save(
            downstream("""
            - id: odd
              type: io.kestra.plugin.core.trigger.Flow
              conditions: [{type: io.kestra.plugin.core.condition.ExecutionOutputs, expression: "x"}]
            """)
        )
    # then
    (violation,) = error.value.violations
    assert violation.path == "triggers[0].conditions[0].type"
    assert violation.line == 13
    assert "ExecutionOutputs" in violation.message


SYSTEM_ALERT = """
id: alert
namespace: system
tasks:
  - id: saw
    type: io.kestra.plugin.core.debug.Return
    format: "{{ trigger.namespace }}.{{ trigger.flowId }} {{ trigger.state }}"
triggers:
  - id: on_failure
    type: io.kestra.plugin.core.trigger.Flow
    states: [FAILED, WARNING]
    preconditions:
      id: company
      where:
        - id: company
          filters:
            - {field: NAMESPACE, type: STARTS_WITH, value: company}
"""


def test_a_system_flow_watches_every_namespace_of_its_tenant(run_flow: Callable[..., Finished]) -> None:
    # given: Kestra's system-flow pattern, in this tenant and in another one
    save(SYSTEM_ALERT)
    services.ensure_tenant("other")
    services.save_flow_revision("other", SYSTEM_ALERT)
    # when: flows of two namespaces fail in this tenant, one succeeds, and one fails in the other tenant
    failed = run_flow(UPSTREAM, inputs={"fail": True})
    run_flow(UPSTREAM.replace("company.team", "company.sales.eu"), inputs={"fail": True})
    run_flow(UPSTREAM)
    run_flow(UPSTREAM, inputs={"fail": True}, tenant="other")
    run_flow(UPSTREAM.replace("company.team", "acme"), inputs={"fail": True})
    # then: one alert per failure of this tenant's company namespaces, none for the other tenant's
    alerts = Execution.objects.filter(tenant_id="main", namespace="system", flow_id="alert")
    seen = sorted(finished(alert.id).run("saw")["outputs"]["value"] for alert in alerts)
    assert seen == ["company.sales.eu.upstream FAILED", "company.team.upstream FAILED"]
    assert failed.data["id"] in {alert.trigger["variables"]["executionId"] for alert in alerts}
    other = Execution.objects.get(tenant_id="other", namespace="system", flow_id="alert")
    assert finished(other.id).run("saw")["outputs"]["value"] == "company.team.upstream FAILED"
