"""Invitations: a tenant's ADMIN invites by email; whoever holds the link accepts it once, before it
expires, with a new account or an existing one."""

from __future__ import annotations

import socket
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from flows.models import Invitation, Membership
from tests.fixtures.api import PASSWORD, Api, MakeApi, basic

pytestmark = pytest.mark.django_db


def anonymous(authorization: str | None = None) -> Any:
    from rest_framework.test import APIClient

    client = APIClient()
    if authorization:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    return client


@pytest.fixture
def admin(make_api: MakeApi) -> Api:
    """An ADMIN of tenant `main`."""
    return make_api("ADMIN")


def invite(admin: Api, **fields: Any) -> Any:
    response = admin.post(
        "invitations", {"email": "ada@example.com", "role": "EDITOR", **fields}, format="json"
    )
    assert response.status_code == 201, response.json()
    return response.json()


def accept_url(invitation_id: str) -> str:
    return f"/api/v1/invitation/accept/{invitation_id}"


# ---------------------------------------------------------------------------------------------- invite


def test_an_admin_invites_and_the_email_carries_the_link(admin: Api, mailoutbox: list[Any]) -> None:
    # when
    response = admin.post(
        "invitations",
        {"email": "ada@example.com", "role": "RESTRICTED", "namespaces": ["team"]},
        format="json",
    )
    # then
    assert response.status_code == 201
    answer = response.json()
    invitation = Invitation.objects.get()
    link = f"http://testserver/api/v1/invitation/accept/{invitation.pk}"
    assert {
        key: answer[key] for key in ("id", "tenantId", "email", "role", "namespaces", "status", "invitedBy")
    } == {
        "id": invitation.pk,
        "tenantId": "main",
        "email": "ada@example.com",
        "role": "RESTRICTED",
        "namespaces": ["team"],
        "status": "PENDING",
        "invitedBy": admin.username,
    }
    assert (answer["link"], answer["emailSent"], answer["acceptedAt"]) == (link, True, None)
    assert invitation.expires_at - invitation.created == timedelta(days=7)
    assert [mail.to for mail in mailoutbox] == [["ada@example.com"]]
    assert link in mailoutbox[0].body
    assert "main" in mailoutbox[0].subject


def test_links_start_with_the_public_url_and_expire_after_the_configured_days(
    admin: Api, mailoutbox: list[Any], settings: Any
) -> None:
    # given
    settings.BATON_PUBLIC_URL = "https://baton.example.com"
    settings.BATON_INVITATION_DAYS = 2
    # when
    answer = invite(admin)
    # then
    invitation = Invitation.objects.get()
    assert answer["link"] == f"https://baton.example.com/api/v1/invitation/accept/{invitation.pk}"
    assert answer["link"] in mailoutbox[0].body
    assert invitation.expires_at - invitation.created == timedelta(days=2)


def test_an_unsent_email_still_stores_the_invitation_with_its_link(
    admin: Api, settings: Any, mailoutbox: list[Any]
) -> None:
    # given: a mail server that refuses connections (a loopback port nobody listens on)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    # when
    answer = invite(admin)
    # then
    assert answer["emailSent"] is False
    assert answer["link"].endswith(Invitation.objects.get().pk)


@pytest.mark.parametrize(
    ("fields", "path", "message"),
    [
        ({"email": "not-an-email"}, "email", "email: not an email address: `not-an-email`"),
        ({"role": "OWNER"}, "role", "role: must be one of ADMIN, EDITOR, VIEWER, RESTRICTED, not `OWNER`"),
        ({"role": "RESTRICTED"}, "namespaces", "namespaces: required with the RESTRICTED role"),
        (
            {"role": "RESTRICTED", "namespaces": ["ok", "bad/one"]},
            "namespaces[1]",
            "namespaces[1]: invalid namespace",
        ),
        ({"role": "RESTRICTED", "namespaces": "team"}, "namespaces", "namespaces: must be a list"),
        (
            {"role": "EDITOR", "namespaces": ["team"]},
            "namespaces",
            "namespaces: only for the RESTRICTED role",
        ),
        ({"email": 7}, "email", "email: must be a string, got `7`"),
        ({"email": "a" * 250 + "@example.com"}, "email", "email: not an email address"),
        ({"tenant": "other"}, "tenant", "tenant: unknown field"),
    ],
)
def test_an_invalid_invitation_gets_422_with_its_path_and_nothing_is_stored_or_sent(
    admin: Api, mailoutbox: list[Any], fields: dict[str, Any], path: str, message: str
) -> None:
    # when
    response = admin.post("invitations", {"email": "ada@example.com", **fields}, format="json")
    # then
    assert response.status_code == 422
    error = response.json()["_embedded"]["errors"][0]
    assert error["path"] == path
    assert error["message"].startswith(message)
    assert Invitation.objects.count() == 0
    assert mailoutbox == []


@pytest.mark.parametrize("role", ["EDITOR", "VIEWER"])
def test_only_the_tenants_admins_manage_invitations(make_api: MakeApi, admin: Api, role: str) -> None:
    # given
    member = make_api(role)
    other_admin = make_api("ADMIN", tenant="other")
    invitation_id = invite(admin)["id"]
    calls = [
        ("post", "/api/v1/main/invitations", {"email": "eve@example.com"}),
        ("get", "/api/v1/main/invitations/search", None),
        ("get", f"/api/v1/main/invitations/{invitation_id}", None),
        ("delete", f"/api/v1/main/invitations/{invitation_id}", None),
    ]
    # then
    for method, url, data in calls:
        assert getattr(anonymous(), method)(url, data, format="json").status_code == 401, (method, url)
        assert getattr(member.client, method)(url, data, format="json").status_code == 403, (method, url)
        assert getattr(other_admin.client, method)(url, data, format="json").status_code == 403, (method, url)
    assert list(Invitation.objects.values_list("email", flat=True)) == ["ada@example.com"]


def test_a_superuser_is_admin_of_every_tenant(admin: Api) -> None:
    # given
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    # when
    response = anonymous(basic("root")).post(
        "/api/v1/main/invitations", {"email": "bo@example.com"}, format="json"
    )
    # then
    assert response.status_code == 201
    assert (response.json()["role"], response.json()["invitedBy"]) == ("VIEWER", "root")


def test_read_search_and_delete_stay_within_the_tenant(admin: Api, make_api: MakeApi) -> None:
    # given: an invitation in main, one accepted, one expired, and one in another tenant
    other_admin = make_api("ADMIN", tenant="other")
    pending = invite(admin, email="ada@example.com")
    accepted = invite(admin, email="bob@example.com")
    anonymous().post(accept_url(accepted["id"]), {"username": "bob", "password": PASSWORD}, format="json")
    expired = invite(admin, email="cy@example.com")
    Invitation.objects.filter(pk=expired["id"]).update(expires_at=timezone.now() - timedelta(minutes=1))
    hidden = invite(other_admin, email="ada@example.com")

    def emails(**params: str) -> list[str]:
        response = admin.get("invitations/search", **params)
        assert response.status_code == 200
        return [row["email"] for row in response.json()["results"]]

    # then
    assert sorted(emails()) == ["ada@example.com", "bob@example.com", "cy@example.com"]
    assert emails(status="PENDING") == ["ada@example.com"]
    assert emails(status="accepted") == ["bob@example.com"]
    assert emails(status="EXPIRED") == ["cy@example.com"]
    assert emails(email="ADA@example.com") == ["ada@example.com"]
    assert admin.get("invitations/search", status="LOST").status_code == 400
    read = admin.get(f"invitations/{accepted['id']}").json()
    assert (read["status"], read["acceptedBy"]) == ("ACCEPTED", "bob")
    assert admin.get(f"invitations/{hidden['id']}").status_code == 404
    assert admin.delete(f"invitations/{hidden['id']}").status_code == 404
    assert admin.get("invitations/nope").status_code == 404
    # when
    deleted = admin.delete(f"invitations/{pending['id']}")
    # then
    assert deleted.status_code == 204
    assert admin.get(f"invitations/{pending['id']}").status_code == 404
    assert Invitation.objects.filter(pk=hidden["id"]).exists()
    assert (
        anonymous().post(accept_url(pending["id"]), {"username": "ada", "password": PASSWORD}).status_code
        == 404
    )


# ---------------------------------------------------------------------------------------------- accept


def test_accepting_creates_a_user_who_can_use_the_api_with_the_role(admin: Api) -> None:
    # given
    invitation_id = invite(admin, role="VIEWER")["id"]
    # when
    response = anonymous().post(
        accept_url(invitation_id),
        {"username": "ada", "password": "a long passphrase", "name": "Ada Lovelace"},
    )
    # then
    assert response.status_code == 201
    assert response.json() == {
        "username": "ada",
        "created": True,
        "tenantId": "main",
        "role": "VIEWER",
        "namespaces": [],
    }
    user = User.objects.get(username="ada")
    assert (user.email, user.first_name, user.last_name) == ("ada@example.com", "Ada", "Lovelace")
    assert list(Membership.objects.filter(user=user).values_list("tenant_id", "role")) == [("main", "VIEWER")]
    ada = anonymous(basic("ada", "a long passphrase"))
    assert ada.get("/api/v1/main/flows/search").status_code == 200
    assert ada.post("/api/v1/main/invitations", {"email": "x@example.com"}, format="json").status_code == 403
    invitation = Invitation.objects.get(pk=invitation_id)
    assert (invitation.accepted_by, invitation.accepted_at is not None) == (user, True)


def test_the_link_shows_what_it_offers_without_credentials(admin: Api) -> None:
    # given
    invitation_id = invite(admin, role="RESTRICTED", namespaces=["team"])["id"]
    # when
    response = anonymous().get(accept_url(invitation_id))
    # then
    assert response.status_code == 200
    assert {key: value for key, value in response.json().items() if key != "expiresAt"} == {
        "tenantId": "main",
        "email": "ada@example.com",
        "role": "RESTRICTED",
        "namespaces": ["team"],
        "status": "PENDING",
    }


def test_a_signed_in_user_accepts_for_its_own_account(admin: Api, make_api: MakeApi) -> None:
    # given: a user of another tenant
    other = make_api("VIEWER", tenant="other")
    invitation_id = invite(admin, role="RESTRICTED", namespaces=["team"])["id"]
    users_before = User.objects.count()
    # when
    response = other.client.post(accept_url(invitation_id))
    # then
    assert response.status_code == 200
    assert (response.json()["username"], response.json()["created"]) == (other.username, False)
    assert User.objects.count() == users_before
    memberships = Membership.objects.filter(user__username=other.username).order_by("tenant_id")
    assert [(row.tenant_id, row.role, row.namespaces) for row in memberships] == [
        ("main", "RESTRICTED", ["team"]),
        ("other", "VIEWER", []),
    ]


def test_accepting_twice_is_409_and_changes_nothing(admin: Api) -> None:
    # given
    invitation_id = invite(admin)["id"]
    first = anonymous().post(accept_url(invitation_id), {"username": "ada", "password": PASSWORD})
    # when
    second = anonymous().post(accept_url(invitation_id), {"username": "eve", "password": PASSWORD})
    # then
    assert (first.status_code, second.status_code) == (201, 409)
    assert second.json()["message"] == "this invitation was already accepted"
    assert not User.objects.filter(username="eve").exists()
    assert Invitation.objects.get(pk=invitation_id).accepted_by == User.objects.get(username="ada")


def test_an_expired_invitation_is_410_and_creates_nobody(admin: Api) -> None:
    # given
    invitation_id = invite(admin)["id"]
    Invitation.objects.filter(pk=invitation_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    # when
    response = anonymous().post(accept_url(invitation_id), {"username": "ada", "password": PASSWORD})
    # then
    assert response.status_code == 410
    assert response.json()["message"].startswith("this invitation expired on ")
    assert not User.objects.filter(username="ada").exists()
    assert Invitation.objects.get(pk=invitation_id).accepted_at is None


def test_an_unknown_invitation_is_404(db: None) -> None:
    assert anonymous().post(accept_url("nope"), {"username": "ada", "password": PASSWORD}).status_code == 404
    assert anonymous().get(accept_url("nope")).status_code == 404


@pytest.mark.parametrize(
    ("fields", "path", "message"),
    [
        ({"password": PASSWORD}, "username", "username: required to create your account"),
        ({"username": "ada", "password": ""}, "password", "password: required"),
        ({"username": "ada lovelace", "password": PASSWORD}, "username", "username: Enter a valid username."),
        ({"username": "TAKEN", "password": PASSWORD}, "username", "username: `TAKEN` is taken"),
        ({"username": "ada", "password": "short"}, "password", "password: This password is too short."),
        ({"username": "ada", "password": PASSWORD, "email": "x@y.z"}, "email", "email: unknown field"),
        ({"username": "ada", "password": 12345678}, "password", "password: must be a string"),
    ],
)
def test_a_refused_account_is_422_with_its_path_and_changes_nothing(
    admin: Api, settings: Any, fields: dict[str, Any], path: str, message: str
) -> None:
    # given: Django's password validators apply
    settings.AUTH_PASSWORD_VALIDATORS = [
        {
            "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
            "OPTIONS": {"min_length": 8},
        }
    ]
    User.objects.create_user("taken", "taken@example.com", PASSWORD)
    invitation_id = invite(admin)["id"]
    users_before = User.objects.count()
    # when
    response = anonymous().post(accept_url(invitation_id), fields, format="json")
    # then
    assert response.status_code == 422
    error = response.json()["_embedded"]["errors"][0]
    assert error["path"] == path
    assert error["message"].startswith(message)
    assert User.objects.count() == users_before
    assert Invitation.objects.get(pk=invitation_id).accepted_at is None


def test_wrong_credentials_on_accept_are_401_and_change_nothing(admin: Api) -> None:
    # given
    invitation_id = invite(admin)["id"]
    # when
    response = anonymous(basic(admin.username, "wrong")).post(accept_url(invitation_id))
    # then
    assert response.status_code == 401
    assert Invitation.objects.get(pk=invitation_id).accepted_at is None
