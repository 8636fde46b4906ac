"""/api/v1/{tenant}/triggers: trigger states, disable and enable, unlock, backfills."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.fixtures.api import Api, MakeApi
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.usefixtures("worker", "transactional_db")

YEARLY = """
    id: yearly
    namespace: company.team
    inputs:
      - {id: note, type: STRING, defaults: live}
    tasks:
      - {id: when, type: io.kestra.plugin.core.debug.Return, format: "{{ inputs.note }}"}
    triggers:
      - id: new_year
        type: io.kestra.plugin.core.trigger.Schedule
        cron: "0 0 1 1 *"
        timezone: Europe/Paris
"""
WHO = {"namespace": "company.team", "flowId": "yearly", "triggerId": "new_year"}


def _row():
    from flows.models import Trigger

    return Trigger.objects.get(tenant_id="main", flow_id="yearly")


def _dates() -> list[str]:
    from flows.models import Execution

    return sorted(e.trigger["variables"]["date"] for e in Execution.objects.filter(tenant_id="main"))


def test_search_lists_the_tenants_trigger_states(api: Api, api_other: Api) -> None:
    # given
    api.post_yaml("flows", YEARLY)
    api_other.post_yaml("flows", YEARLY.replace("new_year", "theirs"))
    # when
    found = api.get("triggers/search", namespace="company").json()
    # then
    assert found["total"] == 1
    context = found["results"][0]["triggerContext"]
    assert (context["triggerId"], context["tenantId"], context["disabled"]) == ("new_year", "main", False)
    assert context["nextExecutionDate"].endswith("-12-31T23:00:00Z")
    assert found["results"][0]["abstractTrigger"]["cron"] == "0 0 1 1 *"


def test_disable_then_enable_goes_on_with_the_next_slot(api: Api) -> None:
    from flows.models import Trigger

    # given: a trigger whose next slot is long past
    api.post_yaml("flows", YEARLY)
    # when
    disabled = api.put("triggers/set-disabled", {"triggers": [WHO], "disabled": True}, format="json")
    Trigger.objects.filter(pk=_row().pk).update(next_fire=datetime(2020, 12, 31, 23, tzinfo=UTC))
    enabled = api.put("triggers/set-disabled", {**WHO, "disabled": False}, format="json")
    # then: no missed slot replayed; the next upcoming one is planned
    assert disabled.json() == {"count": 1}
    assert enabled.status_code == 200
    assert _row().next_fire > datetime.now(UTC)
    assert _dates() == []


def test_unknown_triggers_and_bad_bodies_change_nothing(api: Api) -> None:
    # given
    api.post_yaml("flows", YEARLY)
    # when
    unknown = api.put(
        "triggers/set-disabled",
        {"triggers": [WHO, {**WHO, "triggerId": "nope"}], "disabled": True},
        format="json",
    )
    not_bool = api.put("triggers/set-disabled", {**WHO, "disabled": "yes"}, format="json")
    # then: the known one is not disabled either
    assert unknown.status_code == 404
    assert not_bool.status_code == 422
    assert _row().disabled is False


def test_unlock_clears_the_lock_and_error(api: Api) -> None:
    from django.utils import timezone

    from flows.models import Trigger

    # given
    api.post_yaml("flows", YEARLY)
    Trigger.objects.filter(pk=_row().pk).update(locked_until=timezone.now(), error="boom", next_fire=None)
    # when
    response = api.post("triggers/company.team/yearly/new_year/unlock")
    # then
    assert response.status_code == 200
    row = _row()
    assert (row.locked_until, row.error) == (None, "")
    assert row.next_fire is not None


def test_backfill_fires_each_missed_slot_once_and_never_moves_the_schedule(api: Api) -> None:
    # given: one slot already has an execution
    api.post_yaml("flows", YEARLY)
    live_next = _row().next_fire
    first = {"start": "2022-06-01T00:00:00Z", "end": "2023-06-01T00:00:00Z"}
    api.put("triggers/backfill/create", {**WHO, "backfill": first}, format="json")
    wait_until(lambda: _row().backfill is None, message="the first backfill to end")
    # when
    wide = {"start": "2020-01-01T00:00:00Z", "end": "2024-06-01T00:00:00Z", "inputs": {"note": "again"}}
    created = api.put("triggers/backfill/create", {**WHO, "backfill": wide}, format="json")
    wait_until(lambda: _row().backfill is None, message="the backfill to end")
    # then
    assert created.status_code == 200
    assert _dates() == [
        "2020-12-31T23:00:00Z",
        "2021-12-31T23:00:00Z",
        "2022-12-31T23:00:00Z",
        "2023-12-31T23:00:00Z",
    ]
    assert _row().next_fire == live_next
    from flows.models import Execution

    labels = Execution.objects.filter(tenant_id="main").first().labels
    assert {"key": "system.backfill", "value": "true"} in labels


def test_a_backfill_can_be_paused_resumed_and_deleted(api: Api) -> None:
    from flows.models import Trigger

    # given: a paused backfill (paused before any tick takes it)
    api.post_yaml("flows", YEARLY)
    row = _row()
    Trigger.objects.filter(pk=row.pk).update(
        backfill={
            "start": "2020-01-01T00:00:00Z",
            "end": "2021-06-01T00:00:00Z",
            "currentDate": "2020-01-01T00:00:00Z",
            "inputs": {},
            "labels": {},
            "paused": True,
        }
    )
    # when
    second = api.put(
        "triggers/backfill/create", {**WHO, "backfill": {"start": "2020-01-01T00:00:00Z"}}, format="json"
    )
    resumed = api.put("triggers/backfill/unpause", WHO, format="json")
    wait_until(lambda: _row().backfill is None, message="the backfill to end")
    gone = api.post("triggers/backfill/delete", WHO, format="json")
    # then
    assert second.status_code == 422
    assert resumed.status_code == 200
    assert _dates() == ["2020-12-31T23:00:00Z"]
    assert gone.status_code == 404  # it had ended: no backfill left


def test_backfill_input_is_checked(api: Api) -> None:
    # given
    api.post_yaml("flows", YEARLY)
    # when
    no_start = api.put("triggers/backfill/create", {**WHO, "backfill": {}}, format="json")
    bad_date = api.put("triggers/backfill/create", {**WHO, "backfill": {"start": "yesterday"}}, format="json")
    future = api.put(
        "triggers/backfill/create", {**WHO, "backfill": {"start": "2999-01-01T00:00:00Z"}}, format="json"
    )
    # then
    assert [no_start.status_code, bad_date.status_code, future.status_code] == [422, 422, 422]
    assert bad_date.json()["_embedded"]["errors"][0]["path"] == "backfill.start"
    assert _row().backfill is None


def test_viewers_read_but_do_not_change_triggers(api: Api, make_api: MakeApi) -> None:
    # given
    api.post_yaml("flows", YEARLY)
    viewer = make_api("VIEWER")
    restricted = make_api("RESTRICTED", namespaces=["finance"])
    # when / then
    assert viewer.get("triggers/search").json()["total"] == 1
    assert viewer.put("triggers/set-disabled", {**WHO, "disabled": True}, format="json").status_code == 403
    assert restricted.get("triggers/search").json()["total"] == 0
    assert (
        restricted.put("triggers/set-disabled", {**WHO, "disabled": True}, format="json").status_code == 404
    )
    assert _row().disabled is False


def test_a_trigger_held_by_its_execution_says_so_until_unlocked(api: Api) -> None:
    from flows.models import Trigger

    # given: a schedule held by the execution it started (Kestra's lock)
    api.post_yaml("flows", YEARLY)
    Trigger.objects.filter(pk=_row().pk).update(execution_id="0" * 22)
    # when
    held = api.get("triggers/search", namespace="company.team").json()["results"][0]["triggerContext"]
    unlocked = api.post("triggers/company.team/yearly/new_year/unlock")
    after = api.get("triggers/search", namespace="company.team").json()["results"][0]["triggerContext"]
    # then
    assert (held["locked"], held["executionId"]) == (True, "0" * 22)
    assert unlocked.status_code == 200
    assert (after["locked"], after["executionId"]) == (False, None)
    assert _row().execution_id == ""
