"""/api/v1/banners: superusers write and search; every signed-in user reads the ones shown now."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from flows.models import Banner
from flows.services.banners import create_banner
from flows.services.variables import iso
from tests.fixtures.api import PASSWORD, Api, MakeApi, basic

pytestmark = pytest.mark.django_db


@pytest.fixture
def root(db: None) -> Any:
    """A superuser's client."""
    from django.contrib.auth.models import User
    from rest_framework.test import APIClient

    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=basic("root"))
    return client


def test_a_superuser_creates_a_banner(root: Any) -> None:
    # when
    response = root.post(
        "/api/v1/banners",
        {"message": "Maintenance at 18:00", "type": "WARNING", "startDate": "2026-01-01T08:00:00Z"},
        format="json",
    )
    # then
    assert response.status_code == 201
    banner = Banner.objects.get()
    assert response.json() == {
        "id": banner.pk,
        "message": "Maintenance at 18:00",
        "type": "WARNING",
        "startDate": "2026-01-01T08:00:00Z",
        "endDate": None,
        "active": True,
        "shown": True,
        "created": iso(banner.created),
        "updated": iso(banner.updated),
    }


def test_only_the_banners_of_now_are_returned_to_any_user(root: Any, make_api: MakeApi) -> None:
    # given: one past, one future, one now, one now but switched off; and a viewer
    now = timezone.now()
    create_banner(message="past", start_date=now - timedelta(days=2), end_date=now - timedelta(days=1))
    create_banner(message="future", start_date=now + timedelta(days=1))
    create_banner(
        message="now", type="ERROR", start_date=now - timedelta(hours=1), end_date=now + timedelta(hours=1)
    )
    create_banner(message="off", start_date=now - timedelta(hours=1), active=False)
    viewer = make_api("VIEWER")
    # when
    response = viewer.client.get("/api/v1/banners/active")
    # then
    assert response.status_code == 200
    assert [(banner["message"], banner["type"]) for banner in response.json()] == [("now", "ERROR")]


def test_active_banners_come_most_severe_first(make_api: MakeApi) -> None:
    # given
    start = timezone.now() - timedelta(hours=1)
    for kind in ("INFO", "ERROR", "WARNING"):
        create_banner(message=kind.lower(), type=kind, start_date=start)
    viewer = make_api("VIEWER")
    # when
    shown = viewer.client.get("/api/v1/banners/active").json()
    # then
    assert [banner["type"] for banner in shown] == ["ERROR", "WARNING", "INFO"]


@pytest.mark.parametrize(
    ("fields", "path", "message"),
    [
        ({"message": " "}, "message", "message: required: the text to show"),
        ({"type": "DEBUG"}, "type", "type: must be one of INFO, WARNING, ERROR, not `DEBUG`"),
        (
            {"startDate": "2026-01-02T00:00:00Z", "endDate": "2026-01-01T00:00:00Z"},
            "endDate",
            "endDate: must be after the start date (2026-01-02T00:00:00Z)",
        ),
        ({"endDate": "tomorrow"}, "endDate", "endDate: must be an ISO-8601 date-time, got `tomorrow`"),
        (
            {"startDate": "0001-01-01T00:00:00+01:00"},
            "startDate",
            "startDate: out of range: `0001-01-01T00:00:00+01:00`",
        ),
        ({"active": "yes"}, "active", "active: must be true or false, got `yes`"),
        ({"message": 42}, "message", "message: must be a string, got `42`"),
        (
            {"colour": "red"},
            "colour",
            "colour: unknown field; one of: message, type, startDate, endDate, active",
        ),
    ],
)
def test_an_invalid_banner_gets_422_with_its_path_and_nothing_is_stored(
    root: Any, fields: dict[str, Any], path: str, message: str
) -> None:
    # when
    response = root.post("/api/v1/banners", {"message": "hello", **fields}, format="json")
    # then
    assert response.status_code == 422
    assert response.json()["_embedded"]["errors"] == [{"message": message, "path": path}]
    assert Banner.objects.count() == 0


def test_a_superuser_updates_and_deletes_a_banner(root: Any) -> None:
    # given
    banner = create_banner(message="hello", start_date=timezone.now() - timedelta(hours=1))
    read = root.get(f"/api/v1/banners/{banner.pk}").json()
    # when
    updated = root.put(
        f"/api/v1/banners/{banner.pk}", {**read, "type": "ERROR", "active": False}, format="json"
    )
    refused = root.put(f"/api/v1/banners/{banner.pk}", {"endDate": "2000-01-01T00:00:00Z"}, format="json")
    # then
    assert updated.status_code == 200
    assert (updated.json()["type"], updated.json()["active"], updated.json()["shown"]) == (
        "ERROR",
        False,
        False,
    )
    assert refused.status_code == 422
    assert refused.json()["_embedded"]["errors"][0]["path"] == "endDate"
    stored = Banner.objects.get(pk=banner.pk)
    assert (stored.type, stored.active, stored.end_date) == ("ERROR", False, None)
    # when
    deleted = root.delete(f"/api/v1/banners/{banner.pk}")
    # then
    assert deleted.status_code == 204
    assert Banner.objects.count() == 0
    assert root.get(f"/api/v1/banners/{banner.pk}").status_code == 404


def test_search_is_paged_and_filtered(root: Any) -> None:
    # given
    now = timezone.now()
    past = create_banner(
        message="old news", start_date=now - timedelta(days=2), end_date=now - timedelta(days=1)
    )
    current = create_banner(message="maintenance", type="WARNING", start_date=now - timedelta(hours=1))

    def messages(**params: str) -> list[str]:
        response = root.get("/api/v1/banners/search", params)
        assert response.status_code == 200
        return [banner["message"] for banner in response.json()["results"]]

    # then (most recent start first)
    assert messages() == [current.message, past.message]
    assert messages(shown="true") == [current.message]
    assert messages(shown="false") == [past.message]
    assert messages(type="WARNING") == [current.message]
    assert messages(q="NEWS") == [past.message]
    assert root.get("/api/v1/banners/search", {"size": 1}).json()["total"] == 2


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_unknown_banners_are_404(root: Any, method: str) -> None:
    assert getattr(root, method)("/api/v1/banners/nope", {"message": "x"}, format="json").status_code == 404


def test_anonymous_gets_401_and_others_than_superusers_403_on_writes(api: Api, make_api: MakeApi) -> None:
    # given: a tenant ADMIN is no instance administrator
    from rest_framework.test import APIClient

    admin = make_api("ADMIN")
    banner = create_banner(message="hello", start_date=timezone.now() - timedelta(hours=1))
    anonymous = APIClient()
    calls = [
        ("post", "/api/v1/banners", {"message": "hacked"}),
        ("get", "/api/v1/banners/search", None),
        ("get", f"/api/v1/banners/{banner.pk}", None),
        ("put", f"/api/v1/banners/{banner.pk}", {"message": "hacked"}),
        ("delete", f"/api/v1/banners/{banner.pk}", None),
    ]
    # then
    for method, url, data in calls:
        assert getattr(anonymous, method)(url, data, format="json").status_code == 401, (method, url)
        assert getattr(admin.client, method)(url, data, format="json").status_code == 403, (method, url)
        assert getattr(api.client, method)(url, data, format="json").status_code == 403, (method, url)
    assert anonymous.get("/api/v1/banners/active").status_code == 401
    assert list(Banner.objects.values_list("message", flat=True)) == ["hello"]
