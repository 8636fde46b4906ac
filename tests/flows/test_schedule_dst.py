"""The tick across daylight-saving changes, on a clock frozen by time-machine and walked in 10-minute
steps through 2096's changes in Europe/Paris (March 25th, October 28th) and America/New_York (March
11th, November 4th): a slot in the spring-forward gap runs once, at the gap's end; a slot in the
fall-back overlap runs once, at its first occurrence; hourly slots run once per wall-clock hour.

2096, not this year: a production beat runs on the real clock in other processes and must never
reach these slots. `fire_due()` is called without `now`: it reads the frozen clock, as the tick does.
Assertions are on the `TriggerSlot` rows and the executions' trigger variables.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine

from flows import services
from flows.engine.states import TERMINAL_STATES
from flows.models import Execution, Trigger, TriggerSlot
from flows.services.schedules import fire_due, set_disabled
from tests.fixtures.executions import finished
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.usefixtures("worker", "transactional_db")

STEP = timedelta(minutes=10)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def walk(zone: str, cron: str, start: datetime, end: datetime) -> list[tuple[int, int]]:
    """Save a flow scheduled by `cron` in `zone` at `start`, then tick every STEP of frozen time until
    `end`, twice per step; returns, per step, the slots it fired and what its second tick started."""
    source = f"""
id: dst
namespace: company.team
tasks:
  - {{id: when, type: io.kestra.plugin.core.debug.Return, format: "{{{{ trigger.date }}}}"}}
triggers:
  - {{id: slot, type: io.kestra.plugin.core.trigger.Schedule, cron: "{cron}", timezone: {zone}}}
"""
    steps: list[tuple[int, int]] = []
    with time_machine.travel(start, tick=False) as clock:
        services.ensure_tenant("main")
        services.save_flow_revision("main", source)
        now = start
        while now < end:
            now += STEP
            clock.move_to(now)
            before = len(fired())
            fire_due()  # the embedded ticker, on the same frozen clock, may take the slot first
            for execution in Execution.objects.filter(flow_id="dst").exclude(state__in=TERMINAL_STATES):
                finished(execution.id)  # a schedule waits for the execution it started
            steps.append((len(fired()) - before, fire_due()))
        for row in Trigger.objects.filter(flow_id="dst"):
            set_disabled(row, True)
    return steps


def assert_one_slot_per_step(steps: list[tuple[int, int]], slots: int) -> None:
    """Each slot started on the step that reached it; a second tick at the same instant, nothing."""
    assert [new for new, _ in steps if new] == [1] * slots
    assert not any(again for _, again in steps)


def fired() -> list[TriggerSlot]:
    return list(TriggerSlot.objects.filter(flow_id="dst").order_by("slot"))


def on_wall_clock(slots: list[TriggerSlot], zone: str) -> list[str]:
    return [slot.slot.astimezone(ZoneInfo(zone)).strftime("%m-%d %H:%M%z") for slot in slots]


@pytest.mark.parametrize(
    ("zone", "cron", "start", "end", "expected"),
    [
        pytest.param(
            "Europe/Paris",
            "30 2 * * *",
            utc(2096, 3, 24),
            utc(2096, 3, 26, 2),
            ["03-24 02:30+0100", "03-25 03:00+0200", "03-26 02:30+0200"],  # 02:30 does not exist on the 25th
            id="paris-spring-forward",
        ),
        pytest.param(
            "Europe/Paris",
            "30 2 * * *",
            utc(2096, 10, 27),
            utc(2096, 10, 29, 3),
            ["10-27 02:30+0200", "10-28 02:30+0200", "10-29 02:30+0100"],  # not at 02:30+0100 on the 28th
            id="paris-fall-back",
        ),
        pytest.param(
            "America/New_York",
            "30 2 * * *",
            utc(2096, 3, 10, 6),
            utc(2096, 3, 12, 8),
            ["03-10 02:30-0500", "03-11 03:00-0400", "03-12 02:30-0400"],
            id="new-york-spring-forward",
        ),
        pytest.param(
            "America/New_York",
            "30 1 * * *",
            utc(2096, 11, 3, 4),
            utc(2096, 11, 5, 8),
            ["11-03 01:30-0400", "11-04 01:30-0400", "11-05 01:30-0500"],
            id="new-york-fall-back",
        ),
    ],
)
def test_a_daily_slot_in_a_gap_or_an_overlap_runs_once(
    zone: str, cron: str, start: datetime, end: datetime, expected: list[str]
) -> None:
    # when: the clock walks across the change
    ticks = walk(zone, cron, start, end)
    # then: one slot a day, each fired on the step that reached it
    slots = fired()
    assert on_wall_clock(slots, zone) == expected
    assert_one_slot_per_step(ticks, 3)
    assert all(timedelta(0) <= slot.created - slot.slot < STEP for slot in slots)
    executions = {e.id: e for e in Execution.objects.filter(flow_id="dst")}
    assert sorted(executions) == sorted(slot.execution_id for slot in slots)
    gap_or_overlap = executions[slots[1].execution_id]
    assert gap_or_overlap.trigger["variables"] == {
        "date": slots[1].slot.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "previous": slots[0].slot.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "next": slots[2].slot.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    assert_all_succeed()


@pytest.mark.parametrize(
    ("zone", "start", "expected"),
    [
        pytest.param(
            "Europe/Paris",
            utc(2096, 3, 24, 22),
            [
                "03-25 00:00+0100",
                "03-25 01:00+0100",
                "03-25 03:00+0200",
                "03-25 04:00+0200",
                "03-25 05:00+0200",
            ],
            id="paris-spring-forward",  # 02:00 does not exist: it is 03:00, once
        ),
        pytest.param(
            "Europe/Paris",
            utc(2096, 10, 27, 21),
            [
                "10-28 00:00+0200",
                "10-28 01:00+0200",
                "10-28 02:00+0200",
                "10-28 03:00+0100",
                "10-28 04:00+0100",
                "10-28 05:00+0100",
            ],
            id="paris-fall-back",  # 02:00 is there twice: the first one runs
        ),
        pytest.param(
            "America/New_York",
            utc(2096, 3, 11, 4),
            [
                "03-11 00:00-0500",
                "03-11 01:00-0500",
                "03-11 03:00-0400",
                "03-11 04:00-0400",
                "03-11 05:00-0400",
            ],
            id="new-york-spring-forward",
        ),
        pytest.param(
            "America/New_York",
            utc(2096, 11, 4, 3),
            [
                "11-04 00:00-0400",
                "11-04 01:00-0400",
                "11-04 02:00-0500",
                "11-04 03:00-0500",
                "11-04 04:00-0500",
                "11-04 05:00-0500",
            ],
            id="new-york-fall-back",
        ),
    ],
)
def test_an_hourly_schedule_runs_once_per_wall_clock_hour(
    zone: str, start: datetime, expected: list[str]
) -> None:
    # when: from 23:00 to 05:00 on the wall clock (five or seven hours of real time)
    local_start = start.astimezone(ZoneInfo(zone))
    assert local_start.hour == 23
    end = (local_start + timedelta(hours=6)).astimezone(UTC)  # aware + timedelta: wall-clock arithmetic
    ticks = walk(zone, "0 * * * *", start, end)
    # then: each wall-clock hour once, none doubled, none lost, each on time
    slots = fired()
    assert on_wall_clock(slots, zone) == expected
    assert_one_slot_per_step(ticks, len(expected))
    assert all(timedelta(0) <= slot.created - slot.slot < STEP for slot in slots)
    dates = sorted(e.trigger["variables"]["date"] for e in Execution.objects.filter(flow_id="dst"))
    assert dates == [slot.slot.strftime("%Y-%m-%dT%H:%M:%SZ") for slot in slots]
    assert_all_succeed()


def assert_all_succeed() -> None:
    """The executions started on the frozen clock run to their end on the real one."""
    executions = Execution.objects.filter(flow_id="dst")
    wait_until(
        lambda: not executions.exclude(state__in=[s.value for s in TERMINAL_STATES]).exists(),
        timeout=60,
        message="the scheduled executions to end",
    )
    assert set(executions.values_list("state", flat=True)) == {"SUCCESS"}
