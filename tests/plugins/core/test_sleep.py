from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from plugins.core.sleep import Sleep
from tests.plugins.conftest import FakeRunContext, make_task


@pytest.mark.parametrize(
    ("duration", "seconds"),
    [("PT5S", 5.0), ("PT0.5S", 0.5), ("P1DT1M", 86460.0), (timedelta(seconds=2), 2.0)],
)
def test_sleep_asks_to_be_woken_after_the_duration(
    ctx: FakeRunContext, duration: str | timedelta, seconds: float
) -> None:
    # given
    task = make_task(Sleep, duration=duration)

    # when
    result = task.run(ctx)

    # then: no wait on the worker; the services arm a timer
    assert result.state == "SUCCESS"
    assert result.resume_after == seconds
    assert ctx.waits == []


def test_sleep_renders_an_expression_and_logs_the_duration(ctx: FakeRunContext) -> None:
    # given
    ctx.variables_map["inputs"] = {"wait": "PT90S"}
    task = make_task(Sleep, duration="{{ inputs.wait }}")

    # when
    result = task.run(ctx)

    # then
    assert result.resume_after == 90.0
    assert ctx.logger.entries == [("INFO", "Waiting for PT1M30S")]


def test_sleep_rejects_an_invalid_literal_duration() -> None:
    with pytest.raises(ValidationError):
        make_task(Sleep, duration="5 seconds")
