"""Fire times of cron schedules in a time zone, as instants in UTC.

Slots are found on the wall clock of the schedule's zone, then placed on the time line:

- a wall-clock time that does not exist (the spring-forward gap) fires once, at the gap's end;
- a wall-clock time that exists twice (the fall-back overlap) fires once, at its first occurrence.

Two slots that land on the same instant are one slot (the gap can fold several onto its end).
Kestra's `@` nicknames are accepted; six fields mean seconds first (Kestra's `withSeconds`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MAX_GAP = timedelta(hours=3)  # longer than any real daylight-saving jump


class CronError(ValueError):
    """A cron expression or time zone that cannot be used; the message says why."""


@dataclass(frozen=True)
class Cron:
    expression: str  # five fields, or six with seconds first
    zone: ZoneInfo

    @property
    def with_seconds(self) -> bool:
        return len(self.expression.split()) == 6

    def next_after(self, instant: datetime) -> datetime:
        """The first fire time strictly after `instant` (aware), in UTC."""
        return next(self.fires_after(instant))

    def fires_after(self, instant: datetime) -> Iterator[datetime]:
        """Fire times strictly after `instant`, in order, in UTC (without end)."""
        local = _wall(instant, self.zone)
        # Start a little before: a gap slot just before `instant` on the wall clock may land after it.
        walker = croniter(self.expression, local - _MAX_GAP, second_at_beginning=self.with_seconds)
        last: datetime | None = None
        while True:
            slot = _place(walker.get_next(datetime), self.zone)
            if slot > instant and (last is None or slot > last):
                last = slot
                yield slot

    def fires_between(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Fire times in (start, end], in UTC."""
        for slot in self.fires_after(start):
            if slot > end:
                return
            yield slot

    def previous_before(self, instant: datetime) -> datetime:
        """The last fire time at or before `instant`, in UTC."""
        local = _wall(instant, self.zone) + timedelta(seconds=1)
        walker = croniter(self.expression, local + _MAX_GAP, second_at_beginning=self.with_seconds)
        while True:
            slot = _place(walker.get_prev(datetime), self.zone)
            if slot <= instant:
                return slot


def parse_cron(expression: str, timezone: str | None = None, with_seconds: bool | None = None) -> Cron:
    """A schedule from a cron expression (5 fields, 6 with seconds first, or `@daily`-like) and an
    IANA zone name (UTC when None). Raises CronError."""
    text = " ".join(str(expression).split())
    text = NICKNAMES.get(text.lower(), text)
    fields = len(text.split())
    if with_seconds and fields == 5:
        raise CronError(f"`{expression}`: withSeconds needs 6 fields (seconds first)")
    if fields not in (5, 6):
        raise CronError(f"`{expression}`: a cron expression has 5 fields (6 with seconds first)")
    if with_seconds is False and fields == 6:
        raise CronError(f"`{expression}`: 6 fields need withSeconds: true")
    try:
        zone = ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise CronError(f"unknown time zone `{timezone}` (an IANA name such as Europe/Paris)") from None
    try:
        croniter(text, datetime(2000, 1, 1), second_at_beginning=fields == 6).get_next(datetime)
    except (CroniterBadCronError, CroniterBadDateError, ValueError, KeyError) as error:
        raise CronError(f"invalid cron expression `{expression}`: {error}") from None
    return Cron(text, zone)


def _wall(instant: datetime, zone: ZoneInfo) -> datetime:
    """The naive wall-clock time of `instant` in `zone`."""
    if instant.tzinfo is None:
        raise ValueError("an aware datetime is needed")
    return instant.astimezone(zone).replace(tzinfo=None)


def _exists(wall: datetime, zone: ZoneInfo) -> bool:
    # through UTC: astimezone() to the datetime's own zone would return it unchanged
    return _wall(wall.replace(tzinfo=zone).astimezone(UTC), zone) == wall


def _place(wall: datetime, zone: ZoneInfo) -> datetime:
    """The instant (UTC) of a wall-clock slot: its first occurrence, or the end of its gap."""
    if not _exists(wall, zone):
        step = timedelta(minutes=1)
        probe = wall.replace(second=0, microsecond=0) + step
        while not _exists(probe, zone):
            probe += step
        wall = probe
    return wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
