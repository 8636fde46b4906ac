"""Who may call the API: users with Basic, API tokens, roles, tenants, the schema."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command

from tests.fixtures.api import PASSWORD, Api, MakeApi, basic

pytestmark = pytest.mark.django_db


def _client(authorization: str | None = None) -> object:
    from rest_framework.test import APIClient

    client = APIClient()
    if authorization:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    return client


def test_anonymous_requests_get_401_with_a_challenge(make_api: MakeApi) -> None:
    make_api("EDITOR")  # tenant main exists
    response = _client().get("/api/v1/main/flows/search")
    assert response.status_code == 401
    assert response.json()["message"] == "Authentication credentials were not provided."
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_health_needs_no_credentials() -> None:
    assert _client().get("/health").json() == {"status": "UP"}


def test_wrong_password_gets_401(api: Api) -> None:
    assert _client(basic(api.username, "wrong")).get("/api/v1/main/flows/search").status_code == 401


def test_a_remembered_password_check_ends_when_the_password_changes(api: Api) -> None:
    # given: a successful call remembered the check
    from django.contrib.auth.models import User

    assert _client(basic(api.username)).get("/api/v1/main/flows/search").status_code == 200
    # when
    user = User.objects.get(username=api.username)
    user.set_password("new password")
    user.save()
    # then
    assert _client(basic(api.username)).get("/api/v1/main/flows/search").status_code == 401
    assert _client(basic(api.username, "new password")).get("/api/v1/main/flows/search").status_code == 200


def test_a_deactivated_user_is_refused_even_when_remembered(api: Api) -> None:
    from django.contrib.auth.models import User

    assert _client(basic(api.username)).get("/api/v1/main/flows/search").status_code == 200
    User.objects.filter(username=api.username).update(is_active=False)
    assert _client(basic(api.username)).get("/api/v1/main/flows/search").status_code == 401


def test_tokens_authenticate_until_they_expire_or_are_revoked(api: Api) -> None:
    # given
    from django.contrib.auth.models import User
    from django.utils import timezone

    from flows.models import ApiToken
    from flows.services.access import create_token, revoke_token

    user = User.objects.get(username=api.username)
    token, text = create_token(user, "ci")
    expired, expired_text = create_token(user, "old", timezone.now() - timedelta(seconds=1))
    # then
    assert _client(f"Bearer {text}").get("/api/v1/main/flows/search").status_code == 200
    assert ApiToken.objects.get(pk=token.pk).last_used is not None
    assert text not in ApiToken.objects.get(pk=token.pk).secret_hash  # only a hash is stored
    refused = _client(f"Bearer {expired_text}").get("/api/v1/main/flows/search")
    assert refused.status_code == 401
    assert refused.json()["message"] == "invalid, expired or revoked API token"
    assert _client(f"Bearer {text[:-2]}xx").get("/api/v1/main/flows/search").status_code == 401
    revoke_token(token)
    assert _client(f"Bearer {text}").get("/api/v1/main/flows/search").status_code == 401


def test_a_user_without_a_role_in_the_tenant_gets_403(api_other: Api, make_api: MakeApi) -> None:
    make_api("EDITOR")
    response = api_other.client.get("/api/v1/main/flows/search")
    assert response.status_code == 403
    assert response.json()["message"] == "no access to tenant `main`"


def test_tokens_command_creates_lists_and_revokes(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    # when
    call_command("tokens", "create", api.username, "--name", "deploy", "--days", "30")
    text = capsys.readouterr().out.strip()
    # then
    assert _client(f"Bearer {text}").get("/api/v1/main/flows/search").status_code == 200
    call_command("tokens", "list", api.username)
    listed = capsys.readouterr().out
    assert "deploy" in listed and text not in listed
    call_command("tokens", "revoke", text.split("_")[1])
    assert _client(f"Bearer {text}").get("/api/v1/main/flows/search").status_code == 401


def test_tenants_command_and_api(make_api: MakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    # given
    from django.contrib.auth.models import User
    from django.core.management.base import CommandError

    from flows.models import Tenant

    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    root = _client(basic("root"))
    editor = make_api("EDITOR")
    # when
    call_command("tenants", "create", "acme", "--name", "Acme")
    created = root.post("/api/v1/tenants", {"id": "beta", "name": "Beta"}, format="json")
    duplicate = root.post("/api/v1/tenants", {"id": "beta"}, format="json")
    reserved = root.post("/api/v1/tenants", {"id": "tenants"}, format="json")
    by_editor = editor.client.post("/api/v1/tenants", {"id": "gamma"}, format="json")
    # then
    assert created.status_code == 201
    assert created.json()["name"] == "Beta"
    assert duplicate.status_code == 409
    assert reserved.status_code == 422
    assert by_editor.status_code == 403
    assert [row["id"] for row in root.get("/api/v1/tenants/search", {"size": 50}).json()["results"]] == [
        "acme",
        "beta",
        "main",
    ]
    assert root.put("/api/v1/tenants/acme", {"name": "ACME"}, format="json").json()["name"] == "ACME"
    assert root.delete("/api/v1/tenants/beta").status_code == 204
    with pytest.raises(CommandError, match="already exists"):
        call_command("tenants", "create", "acme")
    assert sorted(Tenant.objects.values_list("id", flat=True)) == ["acme", "main"]


def test_a_tenant_with_flows_cannot_be_deleted(api: Api) -> None:
    from django.contrib.auth.models import User

    from flows.models import Flow

    api.post_yaml(
        "flows", "id: f\nnamespace: n\ntasks:\n  - {id: t, type: io.kestra.plugin.core.log.Log, message: x}\n"
    )
    User.objects.create_superuser("root", "root@example.com", PASSWORD)
    response = _client(basic("root")).delete("/api/v1/tenants/main")
    assert response.status_code == 409
    assert Flow.objects.filter(tenant_id="main").count() == 1


def test_openapi_schema_and_swagger_ui_are_served_without_a_cdn(api: Api) -> None:
    schema = api.client.get("/api/v1/schema", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"] if schema["Content-Type"].endswith("json") else None
    assert paths is None or "/api/v1/{tenant}/flows/search" in paths
    docs = api.client.get("/api/v1/docs")
    assert docs.status_code == 200
    page = docs.content.decode()
    assert "drf_spectacular_sidecar" in page
    assert "cdn" not in page.lower()
