"""`Sleep`: wait for a duration without holding a worker."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from pydantic import field_validator

from flows.spec.durations import format_duration
from plugins.base import RunContext, RunnableTask, TaskProperties, TaskResult
from plugins.core import check_duration, render_duration


class SleepProperties(TaskProperties):
    duration: timedelta | str

    @field_validator("duration")
    @classmethod
    def _check_duration(cls, value: timedelta | str) -> timedelta | str:
        return check_duration(value)


class Sleep(RunnableTask):
    """Wait for `duration` (ISO-8601, e.g. `PT5S`), then succeed.

    Killing the execution ends the wait at once and the task run in KILLED.
    """

    type_name: ClassVar[str] = "io.kestra.plugin.core.flow.Sleep"
    aliases: ClassVar[tuple[str, ...]] = ("io.kestra.core.tasks.flows.Sleep",)
    Properties = SleepProperties
    props: SleepProperties

    def run(self, ctx: RunContext) -> TaskResult:
        duration = render_duration(ctx, self.props.duration, "duration")
        ctx.logger.info(f"Waiting for {format_duration(duration)}")
        # The wait is a timer in the database: the worker slot is free while it lasts, and killing
        # the execution ends it at once.
        return TaskResult(resume_after=duration.total_seconds())
