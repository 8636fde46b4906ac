"""Fire times of cron schedules across daylight saving (flows.spec.cron)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from flows.spec.cron import CronError, parse_cron


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def fires(expression: str, zone: str, start: datetime, end: datetime) -> list[str]:
    return [slot.strftime("%m-%dT%H:%M") for slot in parse_cron(expression, zone).fires_between(start, end)]


@pytest.mark.parametrize(
    ("zone", "day", "expected"),
    [
        # Paris springs forward on 2026-03-29 at 02:00 local (01:00 UTC): 02:30 does not exist
        ("Europe/Paris", 29, ["03-28T01:30", "03-29T01:00", "03-30T00:30"]),
        # New York springs forward on 2026-03-08 at 02:00 local (07:00 UTC)
        ("America/New_York", 8, ["03-07T07:30", "03-08T07:00", "03-09T06:30"]),
    ],
)
def test_a_slot_in_the_spring_forward_gap_runs_once_at_the_gap_end(
    zone: str, day: int, expected: list
) -> None:
    assert fires("30 2 * * *", zone, utc(2026, 3, day - 1), utc(2026, 3, day + 2)) == expected


def test_several_slots_in_the_gap_fold_into_one() -> None:
    # 02:00 and 02:30 do not exist; with 03:00 they are all the gap's end, fired once
    assert fires("*/30 * * * *", "Europe/Paris", utc(2026, 3, 29, 0, 15), utc(2026, 3, 29, 1, 45)) == [
        "03-29T00:30",
        "03-29T01:00",
        "03-29T01:30",
    ]


@pytest.mark.parametrize(
    ("zone", "start", "expected"),
    [
        # Paris falls back on 2026-10-25 at 03:00 CEST to 02:00 CET: 02:30 exists twice
        ("Europe/Paris", utc(2026, 10, 24), ["10-24T00:30", "10-25T00:30", "10-26T01:30"]),
        # New York falls back on 2026-11-01 at 02:00 EDT to 01:00 EST: 01:30 exists twice
        ("America/New_York", utc(2026, 10, 31), ["10-31T05:30", "11-01T05:30", "11-02T06:30"]),
    ],
)
def test_a_slot_in_the_fall_back_overlap_runs_once(zone: str, start: datetime, expected: list) -> None:
    hour = "2" if zone == "Europe/Paris" else "1"
    assert fires(f"30 {hour} * * *", zone, start, start + timedelta(days=3)) == expected


def test_an_hourly_schedule_skips_the_repeated_hour() -> None:
    # wall clock 01:00 .. 03:00 CEST/CET: 02:00 only once (its first occurrence)
    assert fires("0 * * * *", "Europe/Paris", utc(2026, 10, 24, 22, 30), utc(2026, 10, 25, 2, 30)) == [
        "10-24T23:00",
        "10-25T00:00",
        "10-25T02:00",
    ]


def test_next_and_previous_are_strict_and_inclusive() -> None:
    hourly = parse_cron("@hourly")
    assert hourly.next_after(utc(2026, 1, 1, 5)) == utc(2026, 1, 1, 6)
    assert hourly.previous_before(utc(2026, 1, 1, 5)) == utc(2026, 1, 1, 5)
    assert hourly.previous_before(utc(2026, 1, 1, 5, 59)) == utc(2026, 1, 1, 5)


def test_six_fields_have_seconds_first() -> None:
    every_ten_seconds = parse_cron("*/10 * * * * *", with_seconds=True)
    assert every_ten_seconds.next_after(utc(2026, 1, 1, 5, 30, 1)) == utc(2026, 1, 1, 5, 30, 10)


@pytest.mark.parametrize("nickname", ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight"])
def test_nicknames(nickname: str) -> None:
    assert parse_cron(nickname, "Europe/Paris").next_after(utc(2026, 6, 15, 12)).minute == 0


@pytest.mark.parametrize(
    ("expression", "zone", "with_seconds", "message"),
    [
        ("61 * * * *", None, None, "invalid cron expression"),
        ("* * *", None, None, "5 fields"),
        ("* * * * *", "Mars/Olympus", None, "unknown time zone"),
        ("* * * * *", None, True, "withSeconds needs 6 fields"),
        ("0 * * * * *", None, False, "6 fields need withSeconds"),
    ],
)
def test_bad_schedules_say_why(
    expression: str, zone: str | None, with_seconds: bool | None, message: str
) -> None:
    with pytest.raises(CronError, match=message):
        parse_cron(expression, zone, with_seconds)
