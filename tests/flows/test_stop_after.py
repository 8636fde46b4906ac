"""`stopAfter`: a trigger disables itself once an execution it started ends in one of the listed states."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flows import services
from flows.errors import FlowValidationError
from flows.models import Execution, Trigger
from flows.services.schedules import fire_due, set_disabled
from tests.fixtures.executions import finished

pytestmark = pytest.mark.usefixtures("worker", "transactional_db")

DAILY = """
id: daily
namespace: company.team
inputs:
  - {id: fail, type: BOOLEAN, defaults: false}
tasks:
  - id: maybe
    type: io.kestra.plugin.core.flow.If
    condition: "{{ inputs.fail }}"
    then:
      - {id: boom, type: io.kestra.plugin.core.execution.Fail}
triggers:
  - id: every_day
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 6 * * *"
    inputs: {fail: FAIL_INPUT}
    stopAfter: [SUCCESS]
"""


def save(fail: bool) -> None:
    services.ensure_tenant("main")
    services.save_flow_revision("main", DAILY.replace("FAIL_INPUT", "true" if fail else "false"))


def row() -> Trigger:
    return Trigger.objects.get(tenant_id="main", flow_id="daily", trigger_id="every_day")


def fire_and_finish() -> str:
    """Fire the trigger's next slot and wait for its execution to end."""
    assert fire_due(now=row().next_fire + timedelta(seconds=1)) == 1
    execution = Execution.objects.filter(flow_id="daily").order_by("-start_date").first()
    assert execution is not None
    return finished(execution.id).state


def test_a_schedule_stops_after_an_execution_ends_in_a_listed_state() -> None:
    # given
    save(fail=False)
    # when
    state = fire_and_finish()
    # then: the trigger disabled itself and the next slot starts nothing
    assert state == "SUCCESS"
    assert row().disabled
    assert fire_due(now=row().next_fire + timedelta(days=1)) == 0
    assert Execution.objects.filter(flow_id="daily").count() == 1


def test_an_execution_ending_in_another_state_leaves_the_trigger_running() -> None:
    # given
    save(fail=True)
    # when
    state = fire_and_finish()
    # then
    assert state == "FAILED"
    assert not row().disabled
    assert fire_and_finish() == "FAILED"


def test_an_operator_enables_a_stopped_trigger_again() -> None:
    # given: stopped after its success
    save(fail=False)
    fire_and_finish()
    assert row().disabled
    # when: enabled at 05:00, two days later
    later = row().next_fire + timedelta(days=2, hours=-1)
    set_disabled(row(), False, now=later)
    # then: it goes on with the next upcoming slot, 06:00 that day
    assert row().next_fire == later + timedelta(hours=1)
    assert fire_and_finish() == "SUCCESS"


def test_a_stop_after_state_that_does_not_exist_is_refused_with_its_line() -> None:
    # when
    with pytest.raises(FlowValidationError) as error:
        services.save_flow_revision("main", DAILY.replace("[SUCCESS]", "[SUCCESS, DONE]"))
    # then
    (violation,) = error.value.violations
    assert violation.path == "triggers[0].stopAfter[1]"
    assert violation.line == 17
    assert "DONE" in violation.message
