"""celery-beat's scheduler keeps sending the tick whatever happens to its tables (both databases)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

pytestmark = pytest.mark.usefixtures("transactional_db")


def _scheduler() -> object:
    from orchestrator.beat import Scheduler
    from orchestrator.celery import app

    return Scheduler(app=app)


def _sql(statement: str) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(statement)


@contextmanager
def _table_missing(table: str) -> Iterator[None]:
    """The table is gone for a moment, as when the database is being restored."""
    _sql(f"ALTER TABLE {table} RENAME TO {table}_away")
    try:
        yield
    finally:
        _sql(f"ALTER TABLE {table}_away RENAME TO {table}")


def _probe() -> None:
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    every, _ = IntervalSchedule.objects.get_or_create(every=7, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.create(name="probe", task="baton.tick", interval=every)


def test_a_schedule_emptied_and_created_again_is_reloaded() -> None:
    # given: beat has loaded Baton's periodic tasks
    scheduler = _scheduler()
    assert {"baton.tick", "baton.reap"} <= set(scheduler.schedule)
    # when: the tables are emptied behind its back (a flush, a restore), then a task is created
    _sql("DELETE FROM django_celery_beat_periodictask")
    _sql("DELETE FROM django_celery_beat_periodictasks")
    assert scheduler.schedule == {}  # a beat pass while they are empty
    _probe()
    # then
    assert set(scheduler.schedule) == {"probe"}


def test_a_database_error_while_reloading_keeps_the_schedule_and_retries() -> None:
    # given
    from django_celery_beat.models import PeriodicTasks

    scheduler = _scheduler()
    loaded = set(scheduler.schedule)
    assert "baton.tick" in loaded
    PeriodicTasks.update_changed()
    # when: the reload fails
    with _table_missing("django_celery_beat_periodictask"):
        during = set(scheduler.schedule)
    _probe()
    # then
    assert during == loaded
    assert set(scheduler.schedule) == loaded | {"probe"}


def test_a_task_whose_schedule_row_vanished_is_left_out_and_read_again() -> None:
    # given: a task whose interval is gone, as when a reload's second query misses rows deleted meanwhile
    from django_celery_beat.models import PeriodicTasks

    scheduler = _scheduler()
    _probe()
    _sql("UPDATE django_celery_beat_periodictask SET interval_id = NULL WHERE name = 'probe'")
    PeriodicTasks.update_changed()
    # when
    during = set(scheduler.schedule)
    _sql(
        "UPDATE django_celery_beat_periodictask SET interval_id = "
        "(SELECT id FROM django_celery_beat_intervalschedule WHERE every = 7) WHERE name = 'probe'"
    )
    # then: beat goes on without it, and finds it again on the next pass without any change marker
    assert "baton.tick" in during and "probe" not in during
    assert "probe" in set(scheduler.schedule)
