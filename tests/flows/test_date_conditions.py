"""Trigger conditions on dates (DayWeek, DayWeekInMonth, Weekend, DateTimeBetween, TimeBetween,
PublicHoliday) and their combinations (Not, Or), on schedules, webhooks and Flow triggers."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import time_machine

from flows import services
from flows.engine.states import TERMINAL_STATES
from flows.errors import Violation
from flows.models import Execution, Trigger, TriggerSlot
from flows.services.conditions import ConditionError, TriggerScope, UnsupportedCondition
from flows.services.flows import spec_of_source
from flows.services.schedules import fire_due
from flows.spec.conditions import check_condition
from flows.spec.marked_yaml import load_marked
from tests.fixtures.api import Api
from tests.fixtures.executions import Finished
from tests.fixtures.waiting import wait_until

CORE = "io.kestra.plugin.core.condition."
LEGACY = "io.kestra.core.models.conditions.types."
SPEC = spec_of_source(
    "id: watched\nnamespace: company.team\ntasks:\n  - {id: x, type: io.kestra.plugin.core.log.Log, message: x}\n"
)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def holds(condition: dict[str, Any], date: str | None = None, zone: ZoneInfo | None = None) -> bool:
    """The condition, on a trigger whose `trigger.date` is `date` (none: a webhook's)."""
    variables = {} if date is None else {"date": date}
    return TriggerScope("main", SPEC, 1, variables, zone).all_hold([condition], "tests")


# ------------------------------------------------------------------------------- each condition


def core(kind: str, **properties: Any) -> dict[str, Any]:
    """A condition of Kestra's core plugin."""
    return {"type": CORE + kind, **properties}


def nth_monday(which: str) -> dict[str, Any]:
    return core("DayWeekInMonth", dayOfWeek="MONDAY", dayInMonth=which)


JULY = core("DateTimeBetween", after="2026-07-01T00:00:00Z", before="2026-08-01T00:00:00Z")
OFFICE_HOURS = core("TimeBetween", after="08:00", before="18:00")


@pytest.mark.parametrize(
    ("condition", "date", "expected"),
    [
        (core("DayWeek", dayOfWeek="TUESDAY"), "2026-07-14T10:00:00Z", True),
        (core("DayWeek", dayOfWeek="MONDAY"), "2026-07-14T10:00:00Z", False),
        (core("DayWeek", dayOfWeek="TUESDAY"), "2026-07-14", True),  # a plain date
        (core("Weekend"), "2026-11-21T09:00:00Z", True),  # Saturday
        (core("Weekend"), "2026-11-22T23:59:59Z", True),  # Sunday
        (core("Weekend"), "2026-11-23T00:00:00Z", False),  # Monday
        # Mondays of November 2026: 2, 9, 16, 23, 30
        (nth_monday("FIRST"), "2026-11-02", True),
        (nth_monday("FIRST"), "2026-11-09", False),
        (nth_monday("SECOND"), "2026-11-09", True),
        (nth_monday("THIRD"), "2026-11-16", True),
        (nth_monday("FOURTH"), "2026-11-23", True),
        (nth_monday("LAST"), "2026-11-23", False),
        (nth_monday("LAST"), "2026-11-30", True),
        (nth_monday("FIRST") | {"dayOfWeek": "TUESDAY"}, "2026-11-02", False),
        # DateTimeBetween: both bounds excluded, compared as instants
        (core("DateTimeBetween", after="2026-07-14T10:00:00+02:00"), "2026-07-14T08:00:01Z", True),
        (core("DateTimeBetween", after="2026-07-14T10:00:00+02:00"), "2026-07-14T08:00:00Z", False),
        (core("DateTimeBetween", before="2026-07-14T00:00:00Z"), "2026-07-13T23:59:59Z", True),
        (JULY, "2026-07-14T12:00:00+02:00", True),
        (JULY, "2026-08-01T01:00:00+02:00", True),  # 23:00 UTC on July 31st
        (JULY, "2026-08-01T00:00:00Z", False),
        # TimeBetween: times with an offset compare as instants; without one, on the date's wall clock
        (core("TimeBetween", after="08:00:00+02:00"), "2026-07-14T06:30:00Z", True),
        (core("TimeBetween", after="08:00:00+02:00"), "2026-07-14T07:30:00+02:00", False),
        (OFFICE_HOURS, "2026-07-14T17:59:00+02:00", True),
        (OFFICE_HOURS, "2026-07-14T18:30:00+02:00", False),
        (core("TimeBetween", before="12:00Z"), "2026-07-14T13:30:00+02:00", True),
        # PublicHoliday (the `holidays` package; observed days count)
        (core("PublicHoliday", country="FR"), "2026-07-14", True),
        (core("PublicHoliday", country="FR"), "2026-07-15", False),
        (core("PublicHoliday", country="US"), "2026-07-04T15:00:00Z", True),
        (core("PublicHoliday", country="US"), "2026-07-03", True),  # observed on Friday
        (core("PublicHoliday", country="US"), "2026-07-06", False),
        (core("PublicHoliday", country="DE", subDivision="BY"), "2026-01-06", True),
        (core("PublicHoliday", country="DE", subDivision="DE-BE"), "2026-01-06", False),
        (core("PublicHoliday", country="DE", subDivision="be"), "2026-03-08", True),
        (core("PublicHoliday", country="DE"), "2026-03-08", False),  # Berlin's only
    ],
)
def test_each_date_condition_holds_or_not(condition: dict[str, Any], date: str, expected: bool) -> None:
    assert holds(condition, date) is expected


def test_a_date_is_read_in_its_own_offset() -> None:
    # given: 00:30 on Sunday in Paris is still Saturday in UTC
    sunday_in_paris = "2026-03-29T00:30:00+01:00"
    # when / then
    assert holds(core("DayWeek", dayOfWeek="SUNDAY"), sunday_in_paris)
    assert not holds(core("DayWeek", dayOfWeek="SUNDAY"), "2026-03-28T23:30:00Z")
    assert holds(core("DayWeek", dayOfWeek="SUNDAY"), "2026-03-29T00:30:00+01:00[Europe/Paris]")


def test_a_scope_zone_reads_the_date_on_that_wall_clock() -> None:
    # given: a schedule's slot at midnight in Paris, Monday, stored in UTC (Sunday 23:00)
    slot = "2026-11-22T23:00:00Z"
    paris = ZoneInfo("Europe/Paris")
    # when / then
    assert holds(core("DayWeek", dayOfWeek="MONDAY"), slot, zone=paris)
    assert not holds(core("DayWeek", dayOfWeek="MONDAY"), slot)
    assert holds(core("TimeBetween", before="00:30"), slot, zone=paris)


def test_an_explicit_date_expression_is_rendered() -> None:
    # given
    condition = core("PublicHoliday", country="{{ 'F' ~ 'R' }}", date="{{ trigger.day }}")
    # when / then
    assert TriggerScope("main", SPEC, 1, {"day": "2026-05-01"}).all_hold([condition], "tests")
    assert not TriggerScope("main", SPEC, 1, {"day": "2026-05-04"}).all_hold([condition], "tests")


@pytest.mark.parametrize("written", [None, "{{ trigger.date }}", "{{ '' }}"])
def test_without_a_trigger_date_the_date_is_now(written: str | None) -> None:
    # given: a webhook or Flow trigger has no trigger.date
    condition = core("Weekend") | ({"date": written} if written else {})
    # when
    with time_machine.travel(utc(2026, 11, 21, 12), tick=False):  # Saturday
        on_saturday = holds(condition)
    with time_machine.travel(utc(2026, 11, 23, 12), tick=False):  # Monday
        on_monday = holds(condition)
    # then
    assert (on_saturday, on_monday) == (True, False)


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        (LEGACY + "DayWeekCondition", {"dayOfWeek": "TUESDAY"}),
        (CORE + "DayWeekCondition", {"dayOfWeek": "TUESDAY"}),
        (LEGACY + "DayWeekInMonthCondition", {"dayOfWeek": "TUESDAY", "dayInMonth": "SECOND"}),
        (LEGACY + "DateTimeBetweenCondition", {"after": "2026-07-14T00:00:00Z"}),
        (LEGACY + "TimeBetweenCondition", {"before": "12:00:00Z"}),
        (LEGACY + "PublicHolidayCondition", {"country": "FR"}),
        (LEGACY + "NotCondition", {"conditions": [{"type": LEGACY + "WeekendCondition"}]}),
        (
            LEGACY + "OrCondition",
            {
                "conditions": [
                    {"type": LEGACY + "WeekendCondition"},
                    core("Weekend"),
                    core("PublicHoliday", country="FR"),
                ]
            },
        ),
    ],
)
def test_legacy_type_names_are_the_same_conditions(name: str, extra: dict[str, Any]) -> None:
    # given: Tuesday July 14th, 10:00 UTC: Bastille Day, the second Tuesday of July
    date = "2026-07-14T10:00:00Z"
    # when / then
    assert holds({"type": name, **extra}, date)


WORKING_DAY_FR = core("Not", conditions=[core("Weekend"), core("PublicHoliday", country="FR")])


@pytest.mark.parametrize(
    ("date", "expected"),
    [("2026-07-13", True), ("2026-07-14", False), ("2026-07-18", False)],  # Monday, Bastille Day, Saturday
)
def test_not_holds_when_none_of_its_conditions_holds(date: str, expected: bool) -> None:
    assert holds(WORKING_DAY_FR, date) is expected


def test_or_holds_when_any_holds_and_nests_with_not_and_expressions() -> None:
    # given: weekends, and working days after the 20th of the month
    day_20_or_before = core("Expression", expression="{{ trigger.date | date('d') | number <= 20 }}")
    holiday_or_weekend = WORKING_DAY_FR | core("Or")
    condition = core(
        "Or", conditions=[core("Weekend"), core("Not", conditions=[day_20_or_before, holiday_or_weekend])]
    )
    # when / then
    dates = ["2026-07-11", "2026-07-13", "2026-07-14", "2026-07-21", "2026-07-25"]
    assert [holds(condition, date) for date in dates] == [True, False, False, True, True]


# ------------------------------------------------------------------------------- invalid conditions


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (core("DayWeek"), "conditions[0].dayOfWeek (DayWeek): missing required property"),
        (
            core("Not", conditions=[nth_monday("FIFTH")]),
            "conditions[0].conditions[0].dayInMonth (DayWeekInMonth): must be one of FIRST, SECOND, THIRD, "
            "FOURTH, LAST, got 'FIFTH'",
        ),
        (
            core("DateTimeBetween"),
            "conditions[0].after (DateTimeBetween): needs `after`, `before` or both",
        ),
        (
            core("PublicHoliday", country="{{ 'XX' }}"),
            "conditions[0].country (PublicHoliday): unknown country `XX`",
        ),
        (
            core("DayWeek", dayOfWeek="MONDAY", date="{{ 'Monday' }}"),
            "conditions[0].date (DayWeek): Text 'Monday' could not be parsed as a date",
        ),
    ],
)
def test_a_missing_or_invalid_property_names_the_condition_and_the_property(
    condition: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConditionError) as raised:
        holds(condition, "2026-07-14T10:00:00Z")
    assert str(raised.value).startswith(message)
    assert raised.value.http_status == 422


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        (
            core("ExecutionFlow", namespace="a", flowId="b"),
            "conditions[0].type: ExecutionFlow tests an ended execution: only Flow triggers have one (on tests)",
        ),
        (
            core("MultipleCondition"),
            f"conditions[0].type: unsupported condition type `{CORE}MultipleCondition` (on tests)",
        ),
    ],
)
def test_conditions_that_cannot_be_evaluated_here_are_unsupported(
    condition: dict[str, Any], message: str
) -> None:
    with pytest.raises(UnsupportedCondition) as raised:
        holds(condition, "2026-07-14T10:00:00Z")
    assert str(raised.value) == message


def test_check_condition_reports_every_problem_with_its_path_and_line() -> None:
    # given: a flow's conditions as the loader reads them
    conditions = load_marked(
        textwrap.dedent("""\
        - type: io.kestra.plugin.core.condition.DayWeek
          dayOfWeek: MON
        - type: io.kestra.plugin.core.condition.Or
          conditions:
            - type: io.kestra.plugin.core.condition.TimeBetween
              after: "25:00"
            - type: io.kestra.plugin.core.condition.PublicHoliday
              country: DE
              subDivision: XY
        - type: io.kestra.plugin.core.condition.Not
          conditions: []
        - type: io.kestra.plugin.core.condition.DateTimeBetween
          before: 2026-07-14T10:00:00
        - type: io.kestra.plugin.core.condition.ExecutionStatus
        - type: io.kestra.plugin.core.condition.Weekend
          date: 14/07/2026
        """)
    )
    # when
    found = [
        v
        for i, item in enumerate(conditions)
        for v in check_condition(item, f"triggers[0].conditions[{i}]", with_execution=False)
    ]
    # then
    assert [(v.path, v.line) for v in found] == [
        ("triggers[0].conditions[0].dayOfWeek", 2),
        ("triggers[0].conditions[1].conditions[0].after", 6),
        ("triggers[0].conditions[1].conditions[1].subDivision", 9),
        ("triggers[0].conditions[2].conditions", 11),
        ("triggers[0].conditions[3].before", 13),
        ("triggers[0].conditions[4].type", 14),
        ("triggers[0].conditions[5].date", 16),
    ]
    assert (
        found[0].message
        == "must be one of MONDAY, TUESDAY, WEDNESDAY, THURSDAY, FRIDAY, SATURDAY, SUNDAY, got 'MON'"
    )
    assert found[2].message.startswith("`XY` is not a subdivision of DE (BB, BE, BW, BY")
    assert "has no offset" in found[4].message
    assert check_condition(conditions[4], "c", with_execution=True) == []
    assert check_condition(core("Weekend"), "c", with_execution=False) == []
    assert check_condition("Weekend", "c", with_execution=False) == [
        Violation("c", "a condition must be a mapping with a `type`")
    ]


# ------------------------------------------------------------------------------- through triggers


def save(source: str) -> None:
    services.ensure_tenant("main")
    services.save_flow_revision("main", textwrap.dedent(source))


def save_before_november(source: str) -> None:
    """Save on October 31st 2026, so that a schedule starts with November's slots. They are the past
    for any tick on the real clock (a production beat): it would fire the same slots, once."""
    with time_machine.travel(utc(2026, 10, 31, 12), tick=False):
        save(source)


def settled() -> None:
    """Every execution started has ended (none left running into the next test's flush)."""
    wait_until(
        lambda: not Execution.objects.exclude(state__in=[state.value for state in TERMINAL_STATES]).exists(),
        message="the started executions to end",
    )


def started_on(trigger_id: str) -> list[str]:
    """The days (UTC) of the slots of a trigger that started an execution."""
    executions = Execution.objects.filter(flow_id="dated", trigger__id=trigger_id)
    return sorted(execution.trigger["variables"]["date"][:10] for execution in executions)


def schedule(trigger_id: str, conditions: str) -> str:
    return f"""
  - id: {trigger_id}
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 9 1-11 11 *"
    conditions:
{textwrap.indent(textwrap.dedent(conditions).strip(), "      ")}"""


def flow(flow_id: str, namespace: str = "company.team") -> str:
    """A flow of one task, up to its `triggers:` key."""
    return f"""
id: {flow_id}
namespace: {namespace}
tasks:
  - {{id: x, type: io.kestra.plugin.core.debug.Return, format: x}}
triggers:"""


DATED = flow("dated")


@pytest.mark.usefixtures("worker", "transactional_db")
def test_a_schedule_starts_only_the_slots_whose_conditions_hold() -> None:
    # given: 09:00 UTC from November 1st to 11th 2026 (the 1st and the 11th are French holidays; the
    # 1st, 7th and 8th are a weekend), one trigger per condition
    source = DATED + "".join(
        [
            schedule("mondays", f"- {{type: {LEGACY}DayWeekCondition, dayOfWeek: MONDAY}}"),
            schedule(
                "second_monday", f"- {{type: {CORE}DayWeekInMonth, dayOfWeek: MONDAY, dayInMonth: SECOND}}"
            ),
            schedule("weekends", f"- {{type: {CORE}Weekend}}"),
            schedule(
                "working_days",
                f"""
                - type: {CORE}Not
                  conditions:
                    - {{type: {CORE}Weekend}}
                    - {{type: {CORE}PublicHoliday, country: FR}}""",
            ),
            schedule("holidays", f"- {{type: {CORE}PublicHoliday, country: FR}}"),
            schedule(
                "sundays_or_5th_to_6th_noon",
                f"""
                - type: {CORE}Or
                  conditions:
                    - {{type: {CORE}DayWeek, dayOfWeek: SUNDAY}}
                    - {{type: {CORE}DateTimeBetween, after: "2026-11-05T00:00:00+01:00", before: "2026-11-06T12:00:00Z"}}""",
            ),
            schedule("mornings", f'- {{type: {CORE}TimeBetween, after: "08:59:59Z", before: "09:00:01Z"}}'),
        ]
    )
    save_before_november(source)
    # when: the tick comes after the 11th
    fire_due(now=utc(2026, 11, 12))
    # then: every slot was considered once (by this tick, or by a beat's: they are the past for it)
    wait_until(lambda: TriggerSlot.objects.filter(flow_id="dated").count() == 7 * 11, message="77 slots")
    days = lambda *numbers: [f"2026-11-{n:02d}" for n in numbers]  # noqa: E731
    assert {
        t: started_on(t) for t in ("mondays", "second_monday", "weekends", "working_days", "holidays")
    } == {
        "mondays": days(2, 9),
        "second_monday": days(9),
        "weekends": days(1, 7, 8),
        "working_days": days(2, 3, 4, 5, 6, 9, 10),
        "holidays": days(1, 11),
    }
    assert started_on("sundays_or_5th_to_6th_noon") == days(1, 5, 6, 8)
    assert started_on("mornings") == days(*range(1, 12))
    assert set(Trigger.objects.filter(flow_id="dated").values_list("error", flat=True)) == {""}
    settled()


@pytest.mark.usefixtures("worker", "transactional_db")
def test_a_schedule_in_a_time_zone_reads_its_slots_on_its_wall_clock() -> None:
    # given: midnight in Paris from November 1st to 10th, on Mondays (23:00 UTC on Sundays)
    source = DATED + schedule("mondays", f"- {{type: {CORE}DayWeek, dayOfWeek: MONDAY}}").replace(
        'cron: "0 9 1-11 11 *"', 'cron: "0 0 1-10 11 *"\n    timezone: Europe/Paris'
    )
    save_before_november(source)
    # when
    fire_due(now=utc(2026, 11, 11))
    # then
    wait_until(lambda: TriggerSlot.objects.filter(flow_id="dated").count() == 10, message="10 slots")
    dates = Execution.objects.filter(flow_id="dated").values_list("trigger__variables__date", flat=True)
    assert sorted(dates) == ["2026-11-01T23:00:00Z", "2026-11-08T23:00:00Z"]
    settled()


@pytest.mark.usefixtures("worker", "transactional_db")
@pytest.mark.parametrize(
    ("condition", "error"),
    [
        (
            f"- {{type: {CORE}DayWeek, dayOfWeek: MONDAY, date: \"{{{{ trigger.date | date('EEEE') }}}}\"}}",
            "conditions[0].date (DayWeek): Text 'Monday' could not be parsed as a date",
        ),
    ],
)
def test_a_condition_that_cannot_be_evaluated_is_recorded_on_the_schedule(condition: str, error: str) -> None:
    # given
    save_before_november(DATED + schedule("broken", condition).replace("1-11 11", "2 11"))
    # when
    fire_due(now=utc(2026, 11, 3))
    # then: nothing started, the row says which slot, condition and property
    row = wait_until(
        lambda: Trigger.objects.filter(flow_id="dated").exclude(error="").first(), message="error"
    )
    assert row.error == f"slot 2026-11-02T09:00:00Z: {error}"
    assert started_on("broken") == []


HOOKED = (
    flow("hooked")
    + f"""
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: a-long-webhook-key
    conditions:
      - type: {CORE}Or
        conditions:
          - {{type: {CORE}PublicHoliday, country: "{{{{ trigger.parameters.country | first }}}}", date: "{{{{ trigger.body.day }}}}"}}
          - {{type: {CORE}Weekend}}
"""
)


@pytest.mark.usefixtures("worker", "transactional_db")
def test_a_webhook_tests_the_date_it_is_given_or_now(api: Api) -> None:
    from rest_framework.test import APIClient

    # given: holidays of the country in the query, on the day in the body; or a call on a weekend
    api.post_yaml("flows", HOOKED)
    anonymous = APIClient()
    url = "/api/v1/main/executions/webhook/company.team/hooked/a-long-webhook-key"

    def call(country: str, day: str) -> int:
        return anonymous.post(f"{url}?country={country}", {"day": day}, format="json").status_code

    # when
    with time_machine.travel(utc(2026, 11, 23, 12), tick=False):  # Monday
        weekday = [call("FR", "2026-07-14"), call("US", "2026-07-14"), call("US", "2026-07-04")]
    with time_machine.travel(utc(2026, 11, 22, 12), tick=False):  # Sunday
        weekend = call("US", "2026-07-14")
    broken = anonymous.post(f"{url}?country=XX", {"day": "2026-07-14"}, format="json")
    # then
    assert weekday == [200, 204, 200]
    assert weekend == 200
    assert broken.status_code == 422
    assert broken.json()["message"].startswith(
        "conditions[0].conditions[0].country (PublicHoliday): unknown country `XX`"
    )
    assert Execution.objects.filter(flow_id="hooked").count() == 3
    settled()


UPSTREAM = """
id: upstream
namespace: company.team
labels: {team: data}
inputs: [{id: fail, type: BOOLEAN, defaults: false}, {id: day, type: STRING, defaults: "2026-11-23"}]
outputs: [{id: day, type: STRING, value: "{{ inputs.day }}"}]
tasks: [{id: maybe, type: io.kestra.plugin.core.execution.Fail, condition: "{{ inputs.fail }}"}]
"""


@pytest.mark.usefixtures("transactional_db")
def test_a_flow_trigger_nests_execution_and_date_conditions(run_flow: Callable[..., Finished]) -> None:
    # given: after upstream (or any flow labelled team=ops), unless it failed or its day is a weekend
    save(
        flow("downstream", "company.other")
        + f"""
  - id: after
    type: io.kestra.plugin.core.trigger.Flow
    conditions:
      - type: {LEGACY}OrCondition
        conditions:
          - {{type: {CORE}ExecutionFlow, namespace: company.team, flowId: upstream}}
          - type: {CORE}ExecutionLabels
            labels: {{team: ops}}
      - type: {CORE}Not
        conditions:
          - {{type: {CORE}ExecutionStatus, in: [FAILED]}}
          - {{type: {CORE}Weekend, date: "{{{{ trigger.outputs.day ?? '' }}}}"}}
"""
    )
    # when
    run_flow(UPSTREAM)  # Monday
    run_flow(UPSTREAM, inputs={"fail": True})
    run_flow(UPSTREAM, inputs={"day": "2026-11-22"})  # Sunday
    # then: only the successful upstream of Monday started it
    started = list(Execution.objects.filter(flow_id="downstream"))
    assert [(e.trigger["variables"]["state"], e.trigger["variables"]["outputs"]) for e in started] == [
        ("SUCCESS", {"day": "2026-11-23"})
    ]
    assert Trigger.objects.get(flow_id="downstream").error == ""
    settled()
