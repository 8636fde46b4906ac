"""celery-beat's scheduler: django-celery-beat's DatabaseScheduler, made to survive its database.

Two behaviours of the upstream scheduler (django-celery-beat 2.x) would stop Baton's tick, and
with it every retry, pause, sleep and SLA deadline:

- It reloads the schedule only when the change marker's time is *later* than the last one it
  saw. When the marker row disappears (the tables were emptied, a backup was restored) and comes
  back, it never sees a change, and keeps whatever it loaded before, possibly nothing. Here any
  difference in the marker counts as a change.
- A database error while it reloads the schedule escapes and stops the beat process (a restarted
  PostgreSQL, a terminated session). Here it keeps the schedule it has and reloads on the next
  pass.
- A periodic task whose schedule row vanished between the two queries of a reload (the rows are
  read first, their intervals and crontabs after) has no schedule, and building its entry raises
  AttributeError, which also stops beat. Seen in CI when the test database was emptied and filled
  again while beat reloaded. Here that task is left out and the schedule is read again on the next
  pass.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db import DatabaseError, InterfaceError, close_old_connections
from django_celery_beat.schedulers import DatabaseScheduler

logger = logging.getLogger(__name__)


class Scheduler(DatabaseScheduler):
    _reload = False  # the last reload failed: try again on the next pass

    _partial = False  # the last reload left out a task whose schedule row vanished

    def schedule_changed(self) -> bool:
        seen = self._last_timestamp
        changed = super().schedule_changed()
        return changed or self._reload or self._partial or self._last_timestamp != seen

    def all_as_schedule(self) -> dict[str, Any]:
        self._partial = False
        schedule: dict[str, Any] = {}
        for model in self.enabled_models():
            try:
                schedule[model.name] = self.Entry(model, app=self.app)
            except ValueError:
                continue  # as upstream: an entry it cannot build is left out
            except (AttributeError, ObjectDoesNotExist):
                logger.warning(
                    "periodic task %s has no schedule row (changed meanwhile?); reading again", model.name
                )
                self._partial = True
        return schedule

    @property
    def schedule(self) -> dict[str, Any]:
        try:
            schedule = super().schedule
        except (DatabaseError, InterfaceError):
            logger.warning(
                "could not read the periodic tasks; keeping the schedule loaded before", exc_info=True
            )
            self._reload = True
            close_old_connections()  # a broken connection is replaced on the next pass
            if self._schedule is None:
                self._schedule = {}
            return self._schedule
        self._reload = False
        return schedule
