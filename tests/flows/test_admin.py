"""The Django admin shows flows and executions and cannot edit them (edits go through services)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from flows import services
from flows.models import Execution, Flow

SOURCE = (
    "id: shown\nnamespace: test.admin\ntasks:\n  - {id: a, type: io.kestra.plugin.core.log.Log, message: m}\n"
)


@pytest.fixture
def operator(django_user_model) -> Client:  # noqa: ANN001
    user = django_user_model.objects.create_superuser("operator", "op@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_flows_and_executions_are_listed_with_filters(operator: Client) -> None:
    # given
    services.ensure_tenant("main")
    services.save_flow_revision("main", SOURCE)
    execution = services.start_execution(tenant="main", namespace="test.admin", flow_id="shown")
    # when
    flows_page = operator.get("/admin/flows/flow/?namespace=test.admin")
    executions_page = operator.get(f"/admin/flows/execution/?state__exact={execution.state}")
    detail = operator.get(f"/admin/flows/execution/{execution.id}/change/")
    # then
    assert flows_page.status_code == 200 and b"shown" in flows_page.content
    assert executions_page.status_code == 200 and execution.id.encode() in executions_page.content
    assert detail.status_code == 200 and b"test.admin" in detail.content


@pytest.mark.django_db
def test_flows_and_executions_are_read_only(operator: Client) -> None:
    # given
    services.ensure_tenant("main")
    flow = services.save_flow_revision("main", SOURCE)
    # when
    add = operator.get("/admin/flows/execution/add/")
    edit = operator.post(f"/admin/flows/flow/{flow.pk}/change/", {"source": "id: hacked"})
    delete = operator.post(f"/admin/flows/flow/{flow.pk}/delete/", {"post": "yes"})
    # then
    assert add.status_code == 403
    assert edit.status_code == 403
    assert delete.status_code == 403
    assert Flow.objects.get(pk=flow.pk).source == SOURCE
    assert Execution.objects.count() == 0


@pytest.mark.django_db
def test_execution_page_shows_logs_and_never_a_secret_input(operator: Client) -> None:
    # given
    services.ensure_tenant("main")
    services.save_flow_revision(
        "main",
        "id: secretive\nnamespace: test.admin\ninputs:\n  - {id: token, type: SECRET}\n"
        "tasks:\n  - {id: a, type: io.kestra.plugin.core.log.Log, message: m}\n",
    )
    execution = services.start_execution(
        tenant="main", namespace="test.admin", flow_id="secretive", inputs={"token": "hunter2-secret"}
    )
    from flows.models import LogEntry

    LogEntry.objects.create(
        tenant_id="main",
        namespace="test.admin",
        flow_id="secretive",
        execution=execution,
        task_id="a",
        level="INFO",
        message="visible line",
    )
    # when
    page = operator.get(f"/admin/flows/execution/{execution.id}/change/")
    # then
    assert page.status_code == 200
    assert b"visible line" in page.content
    assert b"hunter2-secret" not in page.content
    assert b"******" in page.content


# ---------------------------------------------------------------------------------------------- access, secrets,
# invitations, banners, credentials, assets

PLAIN_SECRET = "hunter2-plain-secret"


@pytest.fixture
def instance_rows(db: None) -> dict[str, Any]:
    """One row of each model the admin lists, made through the services where they exist."""
    from django.contrib.auth.models import User

    from flows.models import Credential
    from flows.services import assets, banners, invitations, nsfiles, secrets
    from flows.services.access import create_token, grant

    services.ensure_tenant("main")
    user = User.objects.create_user("ada", "ada@example.com", "pw")
    membership = grant(user, "main", "RESTRICTED", ["team"])
    token, token_text = create_token(user, "ci-token")
    secrets.put_secret("main", "team", "DB_PASSWORD", PLAIN_SECRET)
    nsfiles.put_file("main", "team", "/scripts/run.sh", [b"echo hi"])
    invitation = invitations.create_invitation(tenant="main", email="bob@example.com", role="VIEWER")
    banner = banners.create_banner(message="maintenance tonight", type="WARNING")
    credential = Credential.objects.create(
        tenant_id="main",
        name="warehouse",
        type="OAUTH2_CLIENT_CREDENTIALS",
        config={"tokenUrl": "https://auth.example.com/token"},
        encrypted_secrets=secrets.encrypt_text(f'{{"clientSecret": "{PLAIN_SECRET}"}}'),
        encrypted_token=secrets.encrypt_text("cached-access-token-value"),
    )
    asset, _ = assets.save_asset("main", assets.check_asset({"id": "warehouse.orders", "namespace": "team"}))
    return {
        "membership": membership,
        "apitoken": token,
        "token_text": token_text,
        "invitation": invitation,
        "banner": banner,
        "credential": credential,
        "asset": asset,
    }


@pytest.mark.parametrize(
    ("model", "shown"),
    [
        ("membership", b"RESTRICTED"),
        ("apitoken", b"ci-token"),
        ("secret", b"DB_PASSWORD"),
        ("namespacefilerevision", b"scripts/run.sh"),
        ("invitation", b"bob@example.com"),
        ("banner", b"maintenance tonight"),
        ("credential", b"warehouse"),
        ("asset", b"warehouse.orders"),
    ],
)
def test_each_changelist_and_detail_page_renders(
    operator: Client, instance_rows: dict[str, Any], model: str, shown: bytes
) -> None:
    # given
    from flows.models import NamespaceFileRevision, Secret

    row = (
        instance_rows.get(model)
        or {"secret": Secret, "namespacefilerevision": NamespaceFileRevision}[model].objects.get()
    )
    # when
    listed = operator.get(f"/admin/flows/{model}/")
    detail = operator.get(f"/admin/flows/{model}/{row.pk}/change/")
    # then
    assert listed.status_code == 200 and shown in listed.content
    assert detail.status_code == 200


def test_secret_material_never_reaches_a_page(operator: Client, instance_rows: dict[str, Any]) -> None:
    # given
    from flows.models import ApiToken, Credential, Secret

    secret = Secret.objects.get()
    token = ApiToken.objects.get()
    credential = Credential.objects.get()
    forbidden = [
        PLAIN_SECRET,
        secret.encrypted_value,
        token.secret_hash,
        instance_rows["token_text"],
        credential.encrypted_secrets,
        credential.encrypted_token,
        "cached-access-token-value",
        "encrypted_value",
        "secret_hash",
        "encrypted_secrets",
        "encrypted_token",
    ]
    # when
    pages = [
        operator.get(url)
        for url in [
            "/admin/flows/secret/",
            f"/admin/flows/secret/{secret.pk}/change/",
            "/admin/flows/apitoken/",
            f"/admin/flows/apitoken/{token.pk}/change/",
            "/admin/flows/credential/",
            f"/admin/flows/credential/{credential.pk}/change/",
        ]
    ]
    # then
    assert [page.status_code for page in pages] == [200] * 6
    for page in pages:
        text = page.content.decode()
        assert [value for value in forbidden if value in text] == []


def test_secrets_tokens_and_credentials_are_not_written_here(
    operator: Client, instance_rows: dict[str, Any]
) -> None:
    # given
    from flows.models import ApiToken, Credential, Secret

    secret = Secret.objects.get()
    # when
    answers = [
        operator.get("/admin/flows/secret/add/").status_code,
        operator.post(f"/admin/flows/secret/{secret.pk}/change/", {"key": "OTHER"}).status_code,
        operator.get("/admin/flows/apitoken/add/").status_code,
        operator.get("/admin/flows/credential/add/").status_code,
        operator.post(
            f"/admin/flows/apitoken/{instance_rows['apitoken'].pk}/delete/", {"post": "yes"}
        ).status_code,
    ]
    # then
    assert answers == [403, 403, 403, 403, 403]
    assert (Secret.objects.get().key, ApiToken.objects.count(), Credential.objects.count()) == (
        "DB_PASSWORD",
        1,
        1,
    )


def test_the_revoke_action_revokes_tokens(operator: Client, instance_rows: dict[str, Any]) -> None:
    # given
    from flows.models import ApiToken
    from flows.services.access import user_of_token

    token = instance_rows["apitoken"]
    # when
    response = operator.post("/admin/flows/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    # then
    assert response.status_code == 302
    assert ApiToken.objects.get(pk=token.pk).revoked_at is not None
    assert user_of_token(instance_rows["token_text"]) is None


def test_an_invitation_added_here_is_emailed_and_its_link_shown(
    operator: Client, db: None, mailoutbox: list[Any]
) -> None:
    # given
    from flows.models import Invitation

    services.ensure_tenant("main")
    # when
    response = operator.post(
        "/admin/flows/invitation/add/",
        {"tenant": "main", "email": "cy@example.com", "role": "RESTRICTED", "namespaces": '["team"]'},
    )
    # then
    assert response.status_code == 302
    invitation = Invitation.objects.get()
    assert (invitation.email, invitation.role, invitation.namespaces) == (
        "cy@example.com",
        "RESTRICTED",
        ["team"],
    )
    assert invitation.invited_by is not None and invitation.invited_by.username == "operator"
    link = f"http://testserver/api/v1/invitation/accept/{invitation.pk}"
    assert [mail.to for mail in mailoutbox] == [["cy@example.com"]] and link in mailoutbox[0].body
    page = operator.get(f"/admin/flows/invitation/{invitation.pk}/change/")
    assert page.status_code == 200 and link.encode() in page.content


def test_a_refused_invitation_or_membership_is_a_form_error_and_stores_nothing(
    operator: Client, instance_rows: dict[str, Any], mailoutbox: list[Any]
) -> None:
    # given
    from django.contrib.auth.models import User

    from flows.models import Invitation, Membership

    invitations_before = Invitation.objects.count()
    other = User.objects.create_user("bo", "bo@example.com", "pw")
    # when
    invitation = operator.post(
        "/admin/flows/invitation/add/",
        {"tenant": "main", "email": "cy@example.com", "role": "RESTRICTED", "namespaces": "[]"},
    )
    membership = operator.post(
        "/admin/flows/membership/add/",
        {"user": other.pk, "tenant": "main", "role": "RESTRICTED", "namespaces": "[]"},
    )
    # then
    assert invitation.status_code == 200 and b"required with the RESTRICTED role" in invitation.content
    assert membership.status_code == 200 and b"required with the RESTRICTED role" in membership.content
    assert Invitation.objects.count() == invitations_before
    assert not Membership.objects.filter(user=other).exists()
    assert mailoutbox == []


def test_a_membership_added_here_gives_the_role(operator: Client, instance_rows: dict[str, Any]) -> None:
    # given
    from django.contrib.auth.models import User

    from flows.services.access import access_of

    other = User.objects.create_user("bo", "bo@example.com", "pw")
    # when
    response = operator.post(
        "/admin/flows/membership/add/",
        {"user": other.pk, "tenant": "main", "role": "EDITOR", "namespaces": "[]"},
    )
    # then
    assert response.status_code == 302
    access = access_of(other, "main")
    assert access is not None and access.role == "EDITOR"


def test_active_banners_top_every_admin_page_escaped(operator: Client, db: None) -> None:
    # given
    from datetime import timedelta

    from django.utils import timezone

    from flows.services.banners import create_banner

    now = timezone.now()
    create_banner(message="<script>alert('x')</script> upgrade tonight", type="ERROR")
    create_banner(message="long gone", start_date=now - timedelta(days=2), end_date=now - timedelta(days=1))
    create_banner(message="not yet", start_date=now + timedelta(days=1))
    # when
    pages = [operator.get("/admin/"), operator.get("/admin/flows/flow/"), Client().get("/admin/login/")]
    # then
    for page in pages:
        text = page.content.decode()
        assert page.status_code == 200
        assert "baton-banner-ERROR" in text
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; upgrade tonight" in text
        assert "<script>alert" not in text
        assert "long gone" not in text and "not yet" not in text


def test_a_banner_added_here_is_validated_by_the_service(operator: Client, db: None) -> None:
    # given
    from flows.models import Banner

    form = {
        "message": "maintenance",
        "type": "WARNING",
        "start_date_0": "2026-01-02",
        "start_date_1": "08:00:00",
        "end_date_0": "2026-01-01",
        "end_date_1": "08:00:00",
        "active": "on",
    }
    # when
    refused = operator.post("/admin/flows/banner/add/", form)
    accepted = operator.post("/admin/flows/banner/add/", {**form, "end_date_0": "2026-01-03"})
    # then
    assert refused.status_code == 200 and b"must be after the start date" in refused.content
    assert accepted.status_code == 302
    assert list(Banner.objects.values_list("message", "type")) == [("maintenance", "WARNING")]


def test_triggers_are_listed_and_disabled_enabled_or_unlocked_from_the_admin(operator: Client) -> None:
    from flows import services
    from flows.models import Trigger

    # given
    services.ensure_tenant("main")
    services.save_flow_revision(
        "main",
        """
id: nightly
namespace: team
tasks: [{id: a, type: io.kestra.plugin.core.log.Log, message: hi}]
triggers:
  - {id: night, type: io.kestra.plugin.core.trigger.Schedule, cron: "0 3 * * *"}
""",
    )
    row = Trigger.objects.get()
    Trigger.objects.filter(pk=row.pk).update(error="stuck")
    # when
    listed = operator.get("/admin/flows/trigger/")
    disabled = operator.post("/admin/flows/trigger/", {"action": "disable", "_selected_action": [row.pk]})
    after_disable = Trigger.objects.get().disabled
    operator.post("/admin/flows/trigger/", {"action": "enable", "_selected_action": [row.pk]})
    operator.post("/admin/flows/trigger/", {"action": "unlock", "_selected_action": [row.pk]})
    # then
    assert listed.status_code == 200 and b"night" in listed.content
    assert disabled.status_code == 302
    assert after_disable is True
    final = Trigger.objects.get()
    assert (final.disabled, final.error) == (False, "")
