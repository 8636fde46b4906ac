"""Schedule triggers: trigger state kept in step with flow revisions, each slot fired once, missed
slots recovered as asked, and a real tick starting executions."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command

from flows import services
from flows.models import Execution, Flow, Trigger, TriggerSlot
from flows.services.control import kill_execution
from flows.services.flows import delete_flow
from flows.services.recovery import reap
from flows.services.schedules import fire_due, unlock
from tests.fixtures.executions import finished
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.usefixtures("worker", "transactional_db")

YEARLY = """
id: yearly
namespace: company.team
inputs:
  - {id: day, type: STRING, defaults: none}
tasks:
  - {id: when, type: io.kestra.plugin.core.debug.Return, format: "{{ inputs.day }} {{ trigger.date }}"}
triggers:
  - id: every_year
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 0 1 1 *"
    timezone: Europe/Paris
    inputs: {day: "{{ trigger.date | date('yyyy') }}"}
    labels: {origin: schedule}
"""


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# Flows are saved on a clock set far ahead, so a production beat on the real clock never reaches
# the slots these tests fire with an explicit `now`.
SAVED_AT = utc(2096, 11, 21)


def save(source: str, at: datetime | None = SAVED_AT) -> None:
    services.ensure_tenant("main")
    if at is None:
        services.save_flow_revision("main", source)
        return
    with time_machine.travel(at, tick=False):
        services.save_flow_revision("main", source)


def state(trigger_id: str = "every_year") -> Trigger:
    return Trigger.objects.get(tenant_id="main", flow_id="yearly", trigger_id=trigger_id)


def executions() -> list[Execution]:
    return list(Execution.objects.filter(flow_id="yearly").order_by("start_date"))


def fire_until_quiet(now: datetime) -> int:
    """Tick at `now` until nothing more starts, letting each started execution end first (a schedule
    waits for the execution it started); returns how many started."""
    started = 0
    while fire_due(now=now):
        started += 1
        finished(Execution.objects.filter(flow_id="yearly").latest("start_date").id)
    return started


def test_saving_a_flow_schedules_it_and_each_slot_fires_once() -> None:
    # given
    save(YEARLY)
    next_fire = state().next_fire
    # when: the tick passes the slot, twice
    first = fire_due(now=utc(2097, 1, 1, 0, 0, 30))
    second = fire_due(now=utc(2097, 1, 1, 0, 0, 31))
    # then: midnight in Paris, fired once, with its trigger variables
    assert next_fire.month == 12 and next_fire.day == 31 and next_fire.hour == 23  # New Year in Paris
    assert (first, second) == (1, 0)
    (execution,) = executions()
    assert execution.trigger["variables"] == {
        "date": "2096-12-31T23:00:00Z",
        "next": "2097-12-31T23:00:00Z",
        "previous": "2095-12-31T23:00:00Z",
    }
    assert {"key": "origin", "value": "schedule"} in execution.labels
    assert finished(execution.id).run("when")["outputs"] == {"value": "2096 2096-12-31T23:00:00Z"}
    row = state()
    assert row.last_fire == utc(2096, 12, 31, 23)
    assert row.next_fire == utc(2097, 12, 31, 23)


def test_a_slot_fires_once_even_when_a_second_beat_replays_it() -> None:
    # given: fired once
    save(YEARLY)
    slot = state().next_fire
    fire_due(now=slot)
    # when: another beat that read the old state fires the same slot again
    Trigger.objects.filter(pk=state().pk).update(next_fire=slot)
    again = fire_due(now=slot)
    # then
    assert again == 0
    assert len(executions()) == 1
    assert TriggerSlot.objects.filter(slot=slot).count() == 1


@pytest.mark.parametrize(("recover", "expected"), [("ALL", 4), ("LAST", 1), ("NONE", 0)])
def test_missed_slots_are_recovered_as_asked(recover: str, expected: int) -> None:
    # given: four New Years passed while nothing ran
    save(YEARLY.replace("    labels:", f"    recoverMissedSchedules: {recover}\n    labels:"))
    # when
    started = fire_until_quiet(now=utc(2100, 1, 2))
    # then
    assert started == expected
    years = sorted(e.trigger["variables"]["date"][:4] for e in executions())
    assert years == ["2096", "2097", "2098", "2099"][4 - expected :]
    assert state().next_fire == utc(2100, 12, 31, 23)


def test_late_maximum_delay_skips_slots_fired_too_late() -> None:
    # given
    save(YEARLY.replace("    labels:", "    lateMaximumDelay: P2D\n    labels:"))
    # when: the tick comes one day late, then a slot three days late
    on_time = fire_due(now=utc(2097, 1, 2))
    Trigger.objects.filter(pk=state().pk).update(next_fire=utc(2097, 12, 31, 23))
    too_late = fire_due(now=utc(2098, 1, 4))
    # then
    assert (on_time, too_late) == (1, 0)


def test_a_new_revision_reschedules_and_deleting_the_flow_stops_it() -> None:
    # given
    save(YEARLY)
    before = state().next_fire
    # when: the cron changes
    save(YEARLY.replace('cron: "0 0 1 1 *"', 'cron: "0 0 1 6 *"'))
    moved = state().next_fire
    # then
    assert before.month == 12 and moved.month in (5, 6)  # June 1st, midnight in Paris
    # when: the flow is deleted
    delete_flow(Flow.objects.get(flow_id="yearly"))
    # then
    assert not Trigger.objects.filter(flow_id="yearly").exists()
    assert fire_due(now=utc(2101, 1, 1)) == 0


def test_a_disabled_trigger_or_flow_starts_nothing_but_moves_on() -> None:
    # given
    save(YEARLY.replace("    labels:", "    disabled: true\n    labels:"))
    # when
    started = fire_due(now=utc(2097, 1, 2))
    # then
    assert started == 0
    assert executions() == []
    assert state().next_fire == utc(2097, 12, 31, 23)


def test_an_expression_condition_decides_on_the_slot() -> None:
    # given: only even years
    save(
        YEARLY.replace(
            "    labels:",
            "    conditions:\n"
            "      - type: io.kestra.plugin.core.condition.Expression\n"
            "        expression: \"{{ (trigger.date | date('yyyy') | number) % 2 == 0 }}\"\n"
            "    labels:",
        )
    )
    # when
    fire_until_quiet(now=utc(2100, 1, 2))
    # then
    assert sorted(e.trigger["variables"]["date"][:4] for e in executions()) == ["2096", "2098"]


def test_the_tick_starts_a_schedule_every_second() -> None:
    # given: a schedule with seconds, on the real clock
    save(
        """
id: yearly
namespace: company.team
tasks:
  - {id: when, type: io.kestra.plugin.core.debug.Return, format: "{{ trigger.date }}"}
triggers:
  - id: every_second
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "* * * * * *"
    withSeconds: true
""",
        at=None,
    )
    # when: the embedded ticker or celery-beat's tick runs
    first = wait_until(lambda: executions(), timeout=30, message="a scheduled execution")[0]
    # then
    assert first.trigger["id"] == "every_second"
    assert finished(first.id).state == "SUCCESS"
    delete_flow(Flow.objects.get(flow_id="yearly"))  # stop it


def test_the_sync_command_creates_the_rows_of_flows_stored_before_triggers_existed() -> None:
    from io import StringIO

    from django.core.management import call_command

    # given: a flow whose trigger rows are missing (stored by an earlier version)
    save(YEARLY)
    Trigger.objects.all().delete()
    out = StringIO()
    # when
    call_command("triggers", "sync", stdout=out)
    call_command("triggers", "list", stdout=out)
    # then
    assert state().next_fire is not None
    assert "synced the triggers of 1 flow(s)" in out.getvalue()
    assert "company.team.yearly\tevery_year\tnext " in out.getvalue()


HELD = """
id: yearly
namespace: company.team
tasks:
  - {id: hold, type: io.kestra.plugin.core.flow.Pause}
triggers:
  - id: every_year
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 0 1 1 *"
    timezone: Europe/Paris
"""


def paused() -> Execution:
    return wait_until(
        lambda: Execution.objects.filter(flow_id="yearly", state="PAUSED").first(), message="a paused run"
    )


def test_a_schedule_waits_for_the_execution_it_started_then_catches_up() -> None:
    # given: the 2096 slot started an execution that is still paused at 2098
    save(HELD)
    assert fire_due(now=utc(2097, 1, 1)) == 1
    first = paused()
    # when: the next slots come while it runs
    waiting = fire_due(now=utc(2098, 1, 2))
    # then: the trigger is held by that execution, and nothing else started
    assert waiting == 0
    assert state().execution_id == first.id
    listed = StringIO()
    call_command("triggers", "list", stdout=listed)
    assert f"every_year\tnext 2097-12-31T23:00:00Z\twaits for {first.id}" in listed.getvalue()
    # when: it ends
    kill_execution(first.id)
    finished(first.id)
    # then: the missed 2097 slot starts on the next tick
    assert state().execution_id == ""
    assert fire_due(now=utc(2098, 1, 2)) == 1
    assert paused().trigger["variables"]["date"] == "2097-12-31T23:00:00Z"


def test_unlocking_a_trigger_lets_it_fire_while_its_execution_still_runs() -> None:
    # given: held by a paused execution
    save(HELD)
    fire_due(now=utc(2097, 1, 1))
    first = paused()
    # when
    unlock(state(), now=utc(2097, 6, 1))
    started = fire_due(now=utc(2098, 1, 2))
    # then
    assert started == 1
    assert state().execution_id not in ("", first.id)
    for execution in Execution.objects.filter(flow_id="yearly"):
        kill_execution(execution.id)
        finished(execution.id)


def test_the_reaper_releases_a_trigger_whose_execution_is_gone() -> None:
    # given: held by an execution that was deleted meanwhile
    save(HELD)
    Trigger.objects.filter(pk=state().pk).update(execution_id="0" * 22)
    # when: a reaper pass (this one, or the embedded ticker's own, whichever comes first)
    reap()
    # then
    assert state().execution_id == ""
