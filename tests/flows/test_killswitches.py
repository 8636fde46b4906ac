"""Kill switches: which executions a switch covers, the audit of every change, the admin, the cache."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from flows import services
from flows.models import Execution, KillSwitch, KillSwitchAudit
from flows.services.killswitches import (
    InvalidKillSwitch,
    active_switch,
    create_switch,
    delete_switch,
    forget_cached_switches,
    matching_executions,
    update_switch,
)
from flows.services.variables import iso

START = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)  # in the past: switches starting here are active


@pytest.fixture(autouse=True)
def _fresh_switch_cache() -> Iterator[None]:
    """Each test rolls its switches back: no copy of them may outlive it in this process."""
    forget_cached_switches()
    yield
    forget_cached_switches()


@pytest.fixture
def tenants(db: None) -> None:
    services.ensure_tenant("main")
    services.ensure_tenant("other")


@pytest.fixture
def operator(django_user_model) -> Client:  # noqa: ANN001
    user = django_user_model.objects.create_superuser("operator", "op@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


def switch(**fields: Any) -> KillSwitch:
    values: dict[str, Any] = {
        "tenant": "main",
        "type": "CANCEL",
        "start_date": START,
        "reason": "incident 42",
    }
    return create_switch(**{**values, **fields})


def start(tenant: str, namespace: str, flow_id: str = "job") -> Execution:
    services.save_flow_revision(
        tenant,
        f"id: {flow_id}\nnamespace: {namespace}\ntasks:\n  - {{id: a, type: io.kestra.plugin.core.log.Log, message: m}}\n",
    )
    return services.start_execution(tenant=tenant, namespace=namespace, flow_id=flow_id)


# ---------------------------------------------------------------------------------------------- matching


@pytest.mark.parametrize(
    ("scope", "execution", "covered"),
    [
        ({}, ("any.where", "job", "E1"), True),
        ({"namespace": "team"}, ("team", "job", "E1"), True),
        ({"namespace": "team"}, ("team.sub.deep", "job", "E1"), True),
        ({"namespace": "team"}, ("teams", "job", "E1"), False),
        ({"namespace": "team.sub"}, ("team", "job", "E1"), False),
        ({"namespace": "team", "flow_id": "job"}, ("team", "job", "E1"), True),
        ({"namespace": "team", "flow_id": "job"}, ("team", "other", "E1"), False),
        ({"namespace": "team", "flow_id": "job"}, ("team.sub", "job", "E1"), False),
        ({"execution_id": "E1"}, ("any.where", "job", "E1"), True),
        ({"execution_id": "E1"}, ("any.where", "job", "E2"), False),
        ({"execution_id": "E1"}, ("any.where", "job", None), False),
    ],
)
def test_a_switch_covers_its_scope_in_its_tenant_only(
    tenants: None, scope: dict[str, str], execution: tuple[str, str, str | None], covered: bool
) -> None:
    # given
    created = switch(**scope)
    # when
    found = active_switch("main", *execution)
    elsewhere = active_switch("other", *execution)
    # then
    assert found == (created if covered else None)
    assert elsewhere is None


@pytest.mark.parametrize(
    ("start_offset", "end_offset", "active"),
    [
        (timedelta(hours=-1), None, True),
        (timedelta(hours=-1), timedelta(hours=1), True),
        (timedelta(hours=1), None, False),
        (timedelta(hours=-2), timedelta(minutes=-1), False),
    ],
)
def test_a_switch_applies_between_its_start_and_end_dates(
    tenants: None, start_offset: timedelta, end_offset: timedelta | None, active: bool
) -> None:
    # given
    now = timezone.now()
    created = switch(start_date=now + start_offset, end_date=now + end_offset if end_offset else None)
    # when
    found = active_switch("main", "team", "job", "E1")
    # then
    assert found == (created if active else None)


def test_a_switch_ending_later_no_longer_applies_then(tenants: None) -> None:
    # given
    now = timezone.now()
    switch(start_date=now - timedelta(hours=1), end_date=now + timedelta(hours=1))
    # when
    found = active_switch("main", "team", "job", "E1", now=now + timedelta(hours=2))
    # then
    assert found is None


def test_a_deleted_switch_no_longer_applies(tenants: None) -> None:
    # given
    created = switch(namespace="team")
    # when
    delete_switch(created, user="alice")
    # then
    assert active_switch("main", "team", "job", "E1") is None
    assert KillSwitch.objects.get(pk=created.pk).deleted is True


@pytest.mark.parametrize(
    ("execution", "expected_type"),
    [
        (("team", "job", "E1"), "KILL"),
        (("elsewhere", "job", "E1"), "KILL"),
        (("team", "job", "E9"), "CANCEL"),
        (("team", "other", "E9"), "CANCEL"),
        (("elsewhere", "job", "E9"), "IGNORE"),
    ],
)
def test_the_strongest_switch_wins(
    tenants: None, execution: tuple[str, str, str], expected_type: str
) -> None:
    # given: a weak switch on the whole tenant, stronger ones on narrower scopes
    switch(type="IGNORE")
    switch(type="CANCEL", namespace="team")
    switch(type="KILL", namespace="team", flow_id="job", start_date=timezone.now() + timedelta(hours=1))
    switch(type="KILL", execution_id="E1", start_date=timezone.now() - timedelta(minutes=1))
    switch(type="CANCEL", namespace="team", flow_id="job")
    # when
    found = active_switch("main", *execution)
    # then
    assert found is not None and found.type == expected_type


def test_matching_executions_are_the_unfinished_ones_in_scope(tenants: None) -> None:
    # given
    in_scope = [start("main", "team"), start("main", "team.sub")]
    start("main", "teams")
    start("other", "team")
    finished = start("main", "team", "done")
    Execution.objects.filter(id=finished.id).update(state="SUCCESS")  # a shortcut: no worker here
    created = switch(type="KILL", namespace="team", start_date=timezone.now() + timedelta(hours=1))
    # when
    matching = sorted(matching_executions(created).values_list("id", flat=True))
    # then
    assert matching == sorted(execution.id for execution in in_scope)


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ({}, ["team/job", "team.sub/job", "teams/job", "team/other"]),
        ({"namespace": "team", "flow_id": "job"}, ["team/job"]),
    ],
)
def test_matching_executions_of_a_tenant_or_a_flow(
    tenants: None, scope: dict[str, str], expected: list[str]
) -> None:
    # given
    for namespace, flow_id in (("team", "job"), ("team.sub", "job"), ("teams", "job"), ("team", "other")):
        start("main", namespace, flow_id)
    start("other", "team", "job")
    created = switch(**scope)
    # when
    matching = matching_executions(created)
    # then
    assert sorted(f"{execution.namespace}/{execution.flow_id}" for execution in matching) == sorted(expected)


def test_matching_executions_of_an_execution_switch(tenants: None) -> None:
    # given
    target = start("main", "team")
    start("main", "team")
    created = switch(execution_id=target.id)
    # when
    matching = list(matching_executions(created).values_list("id", flat=True))
    # then
    assert matching == [target.id]


# ---------------------------------------------------------------------------------------------- writes


def test_creating_a_switch_writes_an_audit_row_with_its_snapshot(tenants: None) -> None:
    # when
    created = switch(namespace="team", flow_id="job", end_date=START + timedelta(hours=2), user="alice")
    # then
    assert created.created_by == "alice"
    audit = list(KillSwitchAudit.objects.filter(switch=created).values("action", "user", "snapshot"))
    assert audit == [
        {
            "action": "CREATED",
            "user": "alice",
            "snapshot": {
                "id": created.pk,
                "tenant": "main",
                "type": "CANCEL",
                "namespace": "team",
                "flow_id": "job",
                "execution_id": "",
                "start_date": "2026-01-01T08:00:00Z",
                "end_date": "2026-01-01T10:00:00Z",
                "reason": "incident 42",
                "created": iso(created.created),
                "created_by": "alice",
                "deleted": False,
            },
        }
    ]


def test_updating_a_switch_writes_an_audit_row_and_no_change_writes_none(tenants: None) -> None:
    # given
    created = switch(namespace="team", user="alice")
    # when
    update_switch(created, user="bob", reason="incident 43", type="IGNORE")
    update_switch(created, user="carol", reason="incident 43")  # nothing changes
    # then
    assert (created.reason, created.type) == ("incident 43", "IGNORE")
    stored = KillSwitch.objects.get(pk=created.pk)
    assert (stored.reason, stored.type) == ("incident 43", "IGNORE")
    audit = list(KillSwitchAudit.objects.filter(switch=created).order_by("id"))
    assert [(row.action, row.user) for row in audit] == [("CREATED", "alice"), ("UPDATED", "bob")]
    assert audit[1].snapshot["reason"] == "incident 43"
    assert audit[1].snapshot["type"] == "IGNORE"
    assert audit[0].snapshot["reason"] == "incident 42"


def test_deleting_a_switch_is_soft_and_audited_once(tenants: None) -> None:
    # given
    created = switch(user="alice")
    # when
    delete_switch(created, user="bob")
    delete_switch(created, user="bob")
    # then
    stored = KillSwitch.objects.get(pk=created.pk)
    assert stored.deleted is True
    audit = list(KillSwitchAudit.objects.filter(switch=created).order_by("id"))
    assert [(row.action, row.user, row.snapshot["deleted"]) for row in audit] == [
        ("CREATED", "alice", False),
        ("DELETED", "bob", True),
    ]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"reason": ""}, "reason: required: say why executions are stopped"),
        ({"reason": "   "}, "reason: required: say why executions are stopped"),
        ({"start_date": None}, "start_date: required"),
        ({"end_date": START}, "end_date: must be after the start date (2026-01-01T08:00:00Z)"),
        (
            {"end_date": START - timedelta(hours=1)},
            "end_date: must be after the start date (2026-01-01T08:00:00Z)",
        ),
        ({"type": "STOP"}, "type: must be one of KILL, CANCEL, IGNORE, not `STOP`"),
        ({"flow_id": "job"}, "namespace: required with a flow (`job`)"),
        ({"tenant": "nobody"}, "tenant: no tenant `nobody`"),
    ],
)
def test_an_invalid_switch_is_refused_and_nothing_is_stored(
    tenants: None, fields: dict[str, Any], message: str
) -> None:
    # when
    with pytest.raises(InvalidKillSwitch) as refused:
        switch(**fields)
    # then
    assert str(refused.value) == message
    assert KillSwitch.objects.count() == 0
    assert KillSwitchAudit.objects.count() == 0


def test_an_invalid_update_changes_nothing(tenants: None) -> None:
    # given
    created = switch(namespace="team")
    # when
    with pytest.raises(InvalidKillSwitch) as refused:
        update_switch(created, user="bob", reason="later", end_date=START - timedelta(days=1))
    # then
    assert str(refused.value) == "end_date: must be after the start date (2026-01-01T08:00:00Z)"
    stored = KillSwitch.objects.get(pk=created.pk)
    assert (stored.reason, stored.end_date) == ("incident 42", None)
    assert (created.reason, created.end_date) == ("incident 42", None)
    assert list(KillSwitchAudit.objects.values_list("action", flat=True)) == ["CREATED"]


def test_a_deleted_switch_cannot_be_updated(tenants: None) -> None:
    # given
    created = switch()
    delete_switch(created)
    # when
    with pytest.raises(InvalidKillSwitch) as refused:
        update_switch(created, reason="revived")
    # then
    assert str(refused.value) == f"kill switch {created.pk} is deleted and can't be changed"
    assert KillSwitch.objects.get(pk=created.pk).reason == "incident 42"
    assert KillSwitchAudit.objects.count() == 2


def test_a_kill_switch_kills_the_unfinished_executions_it_covers_after_commit(
    tenants: None,
    django_capture_on_commit_callbacks,  # noqa: ANN001
) -> None:
    # given
    covered = [start("main", "team"), start("main", "team.sub")]
    spared = [start("main", "teams"), start("other", "team")]
    spared_states = [execution.state for execution in spared]
    # when
    with django_capture_on_commit_callbacks(execute=True):
        switch(type="KILL", namespace="team")
    # then
    assert [Execution.objects.get(id=execution.id).state for execution in covered] == ["KILLED", "KILLED"]
    assert [Execution.objects.get(id=execution.id).state for execution in spared] == spared_states


def test_a_switch_becoming_an_active_kill_switch_kills_then_and_only_then(
    tenants: None,
    django_capture_on_commit_callbacks,  # noqa: ANN001
) -> None:
    # given: a KILL switch that starts later, and a CANCEL switch
    execution = start("main", "team")
    state_before = execution.state
    with django_capture_on_commit_callbacks(execute=True):
        later = switch(type="KILL", namespace="team", start_date=timezone.now() + timedelta(hours=1))
        cancel = switch(type="CANCEL", namespace="team")
    assert Execution.objects.get(id=execution.id).state == state_before
    # when
    with django_capture_on_commit_callbacks(execute=True):
        update_switch(cancel, user="bob", type="KILL")
    # then
    assert Execution.objects.get(id=execution.id).state == "KILLED"
    assert KillSwitch.objects.get(pk=later.pk).type == "KILL"


# ---------------------------------------------------------------------------------------------- cache


def test_a_switch_written_by_another_process_is_seen_after_the_copy_is_refreshed(tenants: None) -> None:
    # given: this process has loaded its copy (no switch yet)
    assert active_switch("main", "team", "job", "E1") is None
    # when: another process writes a switch (the ORM here stands for it: nothing tells this process)
    written = KillSwitch.objects.create(tenant_id="main", type="KILL", start_date=START, reason="elsewhere")
    stale = active_switch("main", "team", "job", "E1")
    forget_cached_switches()
    fresh = active_switch("main", "team", "job", "E1")
    # then
    assert stale is None
    assert fresh == written


def test_the_copy_is_reloaded_after_the_refresh_delay(tenants: None, settings: Any) -> None:
    # given: a copy that is always too old
    settings.BATON_KILL_SWITCH_REFRESH_SECONDS = 0
    assert active_switch("main", "team", "job", "E1") is None
    # when
    written = KillSwitch.objects.create(tenant_id="main", type="KILL", start_date=START, reason="elsewhere")
    # then
    assert active_switch("main", "team", "job", "E1") == written


def test_a_change_made_in_this_process_is_seen_at_once(tenants: None) -> None:
    # given: this process has loaded its copy
    assert active_switch("main", "team", "job", "E1") is None
    # when / then
    created = switch(type="IGNORE", namespace="team")
    assert active_switch("main", "team", "job", "E1") == created
    update_switch(created, type="KILL", start_date=timezone.now() + timedelta(hours=1))
    assert active_switch("main", "team", "job", "E1") is None
    update_switch(created, start_date=START)
    found = active_switch("main", "team", "job", "E1")
    assert found is not None and found.type == "KILL"
    delete_switch(created)
    assert active_switch("main", "team", "job", "E1") is None


def test_active_switch_costs_at_most_one_query_per_refresh(
    tenants: None,
    django_assert_max_num_queries,  # noqa: ANN001
) -> None:
    # given
    switch(type="IGNORE", namespace="team")
    switch(type="CANCEL", tenant="other")
    switch(type="KILL", execution_id="E7")
    forget_cached_switches()
    # when / then
    with django_assert_max_num_queries(1):
        found = [active_switch("main", "team.sub", "job", f"E{index}") for index in range(100)]
    assert [item.type if item else None for item in found] == [
        "KILL" if index == 7 else "IGNORE" for index in range(100)
    ]


# ---------------------------------------------------------------------------------------------- admin


def form(**fields: str) -> dict[str, str]:
    """An admin add/change form, with the management form of the read-only audit inline."""
    values = {
        "tenant": "main",
        "type": "CANCEL",
        "namespace": "team",
        "flow_id": "",
        "execution_id": "",
        "start_date_0": "2026-01-01",
        "start_date_1": "08:00:00",
        "end_date_0": "",
        "end_date_1": "",
        "reason": "incident 42",
        "audit-TOTAL_FORMS": "0",
        "audit-INITIAL_FORMS": "0",
        "audit-MIN_NUM_FORMS": "0",
        "audit-MAX_NUM_FORMS": "1000",
    }
    return {**values, **fields}


def test_admin_adds_a_switch_through_the_service(tenants: None, operator: Client) -> None:
    # when
    response = operator.post("/admin/flows/killswitch/add/", form())
    # then
    assert response.status_code == 302
    created = KillSwitch.objects.get()
    assert (created.tenant_id, created.type, created.namespace, created.start_date, created.created_by) == (
        "main",
        "CANCEL",
        "team",
        START,
        "operator",
    )
    assert list(KillSwitchAudit.objects.values_list("action", "user")) == [("CREATED", "operator")]
    assert active_switch("main", "team", "job", "E1") == created


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"end_date_0": "2026-01-01", "end_date_1": "07:00:00"}, b"must be after the start date"),
        ({"namespace": "", "flow_id": "job"}, b"required with a flow"),
        ({"reason": ""}, b"This field is required."),
        ({"type": "STOP"}, b"Select a valid choice."),
    ],
)
def test_admin_shows_a_refused_switch_as_form_errors_and_stores_nothing(
    tenants: None, operator: Client, fields: dict[str, str], message: bytes
) -> None:
    # when
    response = operator.post("/admin/flows/killswitch/add/", form(**fields))
    # then
    assert response.status_code == 200
    assert message in response.content
    assert KillSwitch.objects.count() == 0
    assert KillSwitchAudit.objects.count() == 0


def test_admin_changes_a_switch_through_the_service(tenants: None, operator: Client) -> None:
    # given
    created = switch(namespace="team", user="alice")
    # when
    response = operator.post(
        f"/admin/flows/killswitch/{created.pk}/change/",
        form(reason="incident 43", end_date_0="2026-01-02", end_date_1="08:00:00"),
    )
    # then
    assert response.status_code == 302
    stored = KillSwitch.objects.get(pk=created.pk)
    assert (stored.reason, stored.end_date, stored.created_by) == (
        "incident 43",
        START + timedelta(days=1),
        "alice",
    )
    audit = list(KillSwitchAudit.objects.filter(switch=created).order_by("id"))
    assert [(row.action, row.user) for row in audit] == [("CREATED", "alice"), ("UPDATED", "operator")]
    assert audit[1].snapshot["end_date"] == "2026-01-02T08:00:00Z"


def test_admin_refuses_an_invalid_change_and_changes_nothing(tenants: None, operator: Client) -> None:
    # given
    created = switch(namespace="team")
    # when
    response = operator.post(
        f"/admin/flows/killswitch/{created.pk}/change/", form(namespace="", flow_id="job", reason="changed")
    )
    # then
    assert response.status_code == 200
    assert b"required with a flow" in response.content
    stored = KillSwitch.objects.get(pk=created.pk)
    assert (stored.namespace, stored.flow_id, stored.reason) == ("team", "", "incident 42")
    assert KillSwitchAudit.objects.count() == 1


def test_admin_deletes_softly_and_the_switch_stays_listed(tenants: None, operator: Client) -> None:
    # given
    created = switch(namespace="team")
    # when
    response = operator.post(f"/admin/flows/killswitch/{created.pk}/delete/", {"post": "yes"})
    # then
    assert response.status_code == 302
    assert KillSwitch.objects.get(pk=created.pk).deleted is True
    assert list(KillSwitchAudit.objects.order_by("id").values_list("action", "user")) == [
        ("CREATED", ""),
        ("DELETED", "operator"),
    ]
    listed = operator.get("/admin/flows/killswitch/?deleted__exact=1")
    assert listed.status_code == 200 and b"namespace team (and children)" in listed.content
    assert active_switch("main", "team", "job", "E1") is None


def test_admin_bulk_delete_is_soft(tenants: None, operator: Client) -> None:
    # given
    first, second = switch(namespace="team"), switch(tenant="other")
    # when
    response = operator.post(
        "/admin/flows/killswitch/",
        {"action": "delete_selected", "_selected_action": [first.pk, second.pk], "post": "yes"},
    )
    # then
    assert response.status_code == 302
    assert list(KillSwitch.objects.order_by("id").values_list("deleted", flat=True)) == [True, True]
    assert sorted(KillSwitchAudit.objects.filter(action="DELETED").values_list("switch_id", flat=True)) == [
        first.pk,
        second.pk,
    ]


def test_admin_cannot_edit_or_delete_a_deleted_switch(tenants: None, operator: Client) -> None:
    # given
    created = switch(namespace="team")
    delete_switch(created, user="alice")
    # when
    page = operator.get(f"/admin/flows/killswitch/{created.pk}/change/")
    edit = operator.post(f"/admin/flows/killswitch/{created.pk}/change/", form(reason="revived"))
    delete = operator.post(f"/admin/flows/killswitch/{created.pk}/delete/", {"post": "yes"})
    # then
    assert page.status_code == 200 and b"DELETED" in page.content  # the audit inline
    assert edit.status_code == 403
    assert delete.status_code == 403
    assert KillSwitch.objects.get(pk=created.pk).reason == "incident 42"
    assert KillSwitchAudit.objects.count() == 2


def test_admin_lists_switches_filtered_by_tenant(tenants: None, operator: Client) -> None:
    # given
    switch(namespace="shown.here")
    switch(tenant="other", namespace="hidden.there")
    # when
    page = operator.get("/admin/flows/killswitch/?tenant__id__exact=main")
    # then
    assert page.status_code == 200
    assert b"shown.here" in page.content
    assert b"hidden.there" not in page.content


def test_admin_audit_log_is_read_only(tenants: None, operator: Client) -> None:
    # given
    created = switch()
    audit = KillSwitchAudit.objects.get()
    # when
    listed = operator.get("/admin/flows/killswitchaudit/")
    add = operator.get("/admin/flows/killswitchaudit/add/")
    edit = operator.post(f"/admin/flows/killswitchaudit/{audit.pk}/change/", {"action": "FORGED"})
    delete = operator.post(f"/admin/flows/killswitchaudit/{audit.pk}/delete/", {"post": "yes"})
    # then
    assert listed.status_code == 200 and b"CREATED" in listed.content
    assert (add.status_code, edit.status_code, delete.status_code) == (403, 403, 403)
    assert list(KillSwitchAudit.objects.values_list("switch_id", "action")) == [(created.pk, "CREATED")]
