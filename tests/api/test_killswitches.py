"""/api/v1/kill-switches: superusers only, through the service (validated, audited, soft-deleted)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from flows import services
from flows.models import Execution, KillSwitch, KillSwitchAudit
from flows.services.killswitches import create_switch, forget_cached_switches
from flows.services.variables import iso
from tests.fixtures.api import PASSWORD, Api, MakeApi, basic

pytestmark = pytest.mark.django_db

START = "2026-01-01T08:00:00Z"  # in the past: switches starting then are active
FLOW = "id: job\nnamespace: team\ntasks:\n  - {id: a, type: io.kestra.plugin.core.log.Log, message: m}\n"


@pytest.fixture(autouse=True)
def _fresh_switch_cache() -> Iterator[None]:
    """Each test rolls its switches back: no copy of them may outlive it in this process."""
    forget_cached_switches()
    yield
    forget_cached_switches()


@pytest.fixture
def root(make_api: MakeApi) -> Any:
    """A superuser's client (tenants `main` and `other` exist)."""
    from django.contrib.auth.models import User
    from rest_framework.test import APIClient

    make_api("EDITOR", tenant="main")
    make_api("EDITOR", tenant="other")
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=basic("root"))
    return client


def body(**fields: Any) -> dict[str, Any]:
    return {"tenantId": "main", "type": "CANCEL", "startDate": START, "reason": "incident 42", **fields}


def stored(**fields: Any) -> KillSwitch:
    values: dict[str, Any] = {
        "tenant": "main",
        "type": "CANCEL",
        "reason": "incident 42",
        "start_date": timezone.now() - timedelta(hours=1),
    }
    return create_switch(**{**values, **fields})


def test_a_superuser_creates_a_switch_and_it_is_audited(root: Any) -> None:
    # when
    response = root.post("/api/v1/kill-switches", body(namespace="team", flowId="job"), format="json")
    # then
    assert response.status_code == 201
    answer = response.json()
    switch = KillSwitch.objects.get()
    assert answer == {
        "id": switch.pk,
        "tenantId": "main",
        "type": "CANCEL",
        "namespace": "team",
        "flowId": "job",
        "executionId": None,
        "startDate": START,
        "endDate": None,
        "reason": "incident 42",
        "created": iso(switch.created),
        "createdBy": "root",
        "deleted": False,
        "active": True,
    }
    assert list(KillSwitchAudit.objects.values_list("action", "user")) == [("CREATED", "root")]


def test_a_switch_starts_now_unless_told(root: Any) -> None:
    # given
    before = timezone.now()
    # when
    without_start = root.post(
        "/api/v1/kill-switches", {"tenantId": "main", "type": "KILL", "reason": "now"}, format="json"
    )
    null_start = root.post("/api/v1/kill-switches", body(startDate=None), format="json")
    # then
    assert (without_start.status_code, null_start.status_code) == (201, 201)
    assert [switch.start_date >= before for switch in KillSwitch.objects.order_by("id")] == [True, True]
    assert without_start.json()["active"] is True


def test_dates_are_stored_in_utc_whatever_their_offset(root: Any) -> None:
    # when: an offset Python accepts and PostgreSQL would refuse
    response = root.post("/api/v1/kill-switches", body(startDate="2026-01-01T08:00:00-16:03"), format="json")
    # then
    assert response.status_code == 201
    assert response.json()["startDate"] == "2026-01-02T00:03:00Z"


def test_a_kill_switch_created_through_the_api_kills_new_and_running_executions(
    root: Any,
    api: Api,
    django_capture_on_commit_callbacks,  # noqa: ANN001
) -> None:
    # given: a running execution of team.job, and one in another namespace
    api.post_yaml("flows", FLOW)
    running = services.start_execution(tenant="main", namespace="team", flow_id="job")
    api.post_yaml("flows", FLOW.replace("namespace: team", "namespace: elsewhere"))
    spared = services.start_execution(tenant="main", namespace="elsewhere", flow_id="job")
    spared_state = spared.state
    # when
    with django_capture_on_commit_callbacks(execute=True):
        created = root.post("/api/v1/kill-switches", body(type="KILL", namespace="team"), format="json")
    started = api.post("executions/team/job")
    # then
    assert created.status_code == 201
    assert started.status_code == 200
    assert started.json()["state"]["current"] == "KILLED"
    assert Execution.objects.get(id=running.id).state == "KILLED"
    assert Execution.objects.get(id=spared.id).state == spared_state


@pytest.mark.parametrize(
    ("fields", "path", "message"),
    [
        ({"type": "STOP"}, "type", "type: must be one of KILL, CANCEL, IGNORE, not `STOP`"),
        ({"reason": "  "}, "reason", "reason: required: say why executions are stopped"),
        ({"endDate": START}, "endDate", "endDate: must be after the start date (2026-01-01T08:00:00Z)"),
        ({"flowId": "job"}, "namespace", "namespace: required with a flow (`job`)"),
        ({"tenantId": "nobody"}, "tenantId", "tenantId: no tenant `nobody`"),
        (
            {"startDate": "yesterday"},
            "startDate",
            "startDate: must be an ISO-8601 date-time, got `yesterday`",
        ),
        ({"namespace": 42}, "namespace", "namespace: must be a string, got `42`"),
        ({"startDate": "0001-01-01T00:00:00+01:00"}, "startDate", "startDate: out of range"),
        ({"flow_id": "job"}, "flow_id", "flow_id: unknown field; one of: "),
        ({"executionId": "E" * 33}, "executionId", "executionId: at most 32 characters"),
    ],
)
def test_an_invalid_switch_gets_422_with_its_path_and_nothing_is_stored(
    root: Any, fields: dict[str, Any], path: str, message: str
) -> None:
    # when
    response = root.post("/api/v1/kill-switches", body(**fields), format="json")
    # then
    assert response.status_code == 422
    error = response.json()["_embedded"]["errors"][0]
    assert error["path"] == path
    assert error["message"].startswith(message)
    assert KillSwitch.objects.count() == 0
    assert KillSwitchAudit.objects.count() == 0


def test_a_superuser_updates_a_switch_and_it_is_audited(root: Any) -> None:
    # given
    switch = stored(namespace="team")
    read = root.get(f"/api/v1/kill-switches/{switch.pk}").json()
    # when: what was read, sent back with a change
    response = root.put(
        f"/api/v1/kill-switches/{switch.pk}",
        {key: value for key, value in read.items() if key != "audit"} | {"reason": "incident 43"},
        format="json",
    )
    # then
    assert response.status_code == 200
    assert response.json()["reason"] == "incident 43"
    assert KillSwitch.objects.get(pk=switch.pk).reason == "incident 43"
    assert list(KillSwitchAudit.objects.order_by("id").values_list("action", "user")) == [
        ("CREATED", ""),
        ("UPDATED", "root"),
    ]
    detail = root.get(f"/api/v1/kill-switches/{switch.pk}").json()
    assert [row["action"] for row in detail["audit"]] == ["CREATED", "UPDATED"]
    assert detail["audit"][1]["snapshot"]["reason"] == "incident 43"


def test_an_invalid_update_gets_422_and_changes_nothing(root: Any) -> None:
    # given
    switch = stored(namespace="team")
    # when
    response = root.put(
        f"/api/v1/kill-switches/{switch.pk}",
        {"reason": "later", "namespace": None, "flowId": "job"},
        format="json",
    )
    # then
    assert response.status_code == 422
    assert response.json()["_embedded"]["errors"][0]["path"] == "namespace"
    after = KillSwitch.objects.get(pk=switch.pk)
    assert (after.reason, after.namespace, after.flow_id) == ("incident 42", "team", "")
    assert KillSwitchAudit.objects.count() == 1


def test_delete_is_soft_and_a_deleted_switch_cannot_be_changed(root: Any) -> None:
    # given
    switch = stored(namespace="team")
    # when
    deleted = root.delete(f"/api/v1/kill-switches/{switch.pk}")
    again = root.delete(f"/api/v1/kill-switches/{switch.pk}")
    changed = root.put(f"/api/v1/kill-switches/{switch.pk}", {"reason": "revived"}, format="json")
    # then
    assert (deleted.status_code, again.status_code, changed.status_code) == (204, 204, 409)
    read = root.get(f"/api/v1/kill-switches/{switch.pk}").json()
    assert (read["deleted"], read["active"], read["reason"]) == (True, False, "incident 42")
    assert [row["action"] for row in read["audit"]] == ["CREATED", "DELETED"]
    assert root.get("/api/v1/kill-switches/search").json() == {"results": [], "total": 0}
    assert [
        row["id"] for row in root.get("/api/v1/kill-switches/search", {"deleted": "true"}).json()["results"]
    ] == [switch.pk]


def test_search_filters_by_tenant_type_and_activity(root: Any) -> None:
    # given
    kill = stored(type="KILL", namespace="team")
    later = stored(type="IGNORE", start_date=timezone.now() + timedelta(hours=1))
    elsewhere = stored(tenant="other", namespace="team")

    def ids(**params: str) -> list[int]:
        response = root.get("/api/v1/kill-switches/search", params)
        assert response.status_code == 200
        return [row["id"] for row in response.json()["results"]]

    # then (newest first)
    assert ids() == [elsewhere.pk, later.pk, kill.pk]
    assert ids(tenant="main") == [later.pk, kill.pk]
    assert ids(tenant="other") == [elsewhere.pk]
    assert ids(type="KILL") == [kill.pk]
    assert ids(active="true", tenant="main") == [kill.pk]
    assert ids(active="false") == [later.pk]
    assert ids(namespace="team") == [elsewhere.pk, kill.pk]
    assert root.get("/api/v1/kill-switches/search", {"size": 1, "page": 2}).json()["total"] == 3
    assert root.get("/api/v1/kill-switches/search", {"type": "STOP"}).status_code == 400


@pytest.mark.parametrize("switch_id", ["999999", "abc", "1²"])
def test_unknown_switches_are_404(root: Any, switch_id: str) -> None:
    assert root.get(f"/api/v1/kill-switches/{switch_id}").status_code == 404
    assert root.put(f"/api/v1/kill-switches/{switch_id}", {"reason": "x"}, format="json").status_code == 404
    assert root.delete(f"/api/v1/kill-switches/{switch_id}").status_code == 404


def test_anonymous_gets_401_and_others_than_superusers_403(make_api: MakeApi) -> None:
    # given: the tenant's ADMIN is no instance administrator
    from rest_framework.test import APIClient

    admin = make_api("ADMIN")
    switch = stored()
    anonymous = APIClient()
    # when
    calls = [
        ("post", "/api/v1/kill-switches", body()),
        ("get", "/api/v1/kill-switches/search", None),
        ("get", f"/api/v1/kill-switches/{switch.pk}", None),
        ("put", f"/api/v1/kill-switches/{switch.pk}", {"reason": "x"}),
        ("delete", f"/api/v1/kill-switches/{switch.pk}", None),
    ]
    # then
    for method, url, data in calls:
        assert getattr(anonymous, method)(url, data, format="json").status_code == 401, (method, url)
        assert getattr(admin.client, method)(url, data, format="json").status_code == 403, (method, url)
    after = KillSwitch.objects.get()
    assert (after.reason, after.deleted, KillSwitch.objects.count()) == ("incident 42", False, 1)
