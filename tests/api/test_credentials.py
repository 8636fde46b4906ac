"""/api/v1/{tenant}/credentials and the tokens behind `credential()`, against a real OAuth2 token
endpoint on loopback that checks client authentication and signed assertions as a real one would."""

from __future__ import annotations

import json
import socket
import threading
from datetime import timedelta
from typing import Any

import pytest

from tests.fixtures.api import Api, MakeApi
from tests.fixtures.oauth import (
    CLIENT_ASSERTION_TYPE,
    CLIENT_ID,
    CLIENT_SECRET,
    HMAC_SECRET,
    JWT_BEARER_GRANT,
    TokenServer,
    client_credentials,
    create,
    pem,
)
from tests.fixtures.waiting import wait_until


def _rows(tenant: str = "main") -> list[tuple[str, str]]:
    from flows.models import Credential

    return list(Credential.objects.filter(tenant_id=tenant).order_by("name").values_list("name", "type"))


def _without_times(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["created"].endswith("Z") and answer["updated"].endswith("Z")
    return {key: value for key, value in answer.items() if key not in ("created", "updated")}


@pytest.fixture
def admin(make_api: MakeApi) -> Api:
    return make_api("ADMIN")


@pytest.fixture
def admin_other(make_api: MakeApi) -> Api:
    return make_api("ADMIN", tenant="other")


# -- the API


def test_create_stores_the_secret_encrypted_and_answers_only_settings(
    admin: Api, token_server: TokenServer
) -> None:
    from flows.models import Credential

    # when
    response = admin.post(
        "credentials",
        client_credentials(token_server, description="partner API", scope="read write", audience="partner"),
        format="json",
    )
    # then
    assert response.status_code == 201
    assert _without_times(response.json()) == {
        "id": "api",
        "name": "api",
        "description": "partner API",
        "type": "OAUTH2_CLIENT_CREDENTIALS",
        "tokenUrl": token_server.url,
        "scope": "read write",
        "audience": "partner",
        "clientId": CLIENT_ID,
        "clientAuthMethod": "client_secret_basic",
        "storedSecrets": ["clientSecret"],
        "tokenExpiresAt": None,
    }
    assert CLIENT_SECRET not in response.content.decode()
    row = Credential.objects.get(tenant_id="main", name="api")
    assert CLIENT_SECRET not in row.encrypted_secrets and CLIENT_SECRET not in json.dumps(row.config)
    assert token_server.requests == []  # creating asks no token


def test_list_search_and_get_answer_only_the_tenants_own_credentials(
    admin: Api, admin_other: Api, make_api: MakeApi, token_server: TokenServer
) -> None:
    # given
    create("main", client_credentials(token_server, "billing", description="Billing API"))
    create("main", client_credentials(token_server, "crm"))
    create("main", client_credentials(token_server, "warehouse"))
    create("other", client_credentials(token_server, "theirs", description="billing too"))
    create("other", client_credentials(token_server, "crm", scope="other-tenant"))
    viewer = make_api("VIEWER")
    # when
    listed = viewer.get("credentials")
    searched = viewer.get("credentials/search", q="BILL")
    paged = viewer.get("credentials/search", sort="name:desc", page=2, size=1)
    one = viewer.get("credentials/crm")
    theirs = viewer.get("credentials/theirs")
    across = admin_other.client.get("/api/v1/main/credentials/crm")
    # then
    assert listed.status_code == 200
    assert [row["id"] for row in listed.json()["results"]] == ["billing", "crm", "warehouse"]
    assert listed.json()["total"] == 3
    assert (searched.json()["total"], [row["id"] for row in searched.json()["results"]]) == (1, ["billing"])
    assert (paged.json()["total"], [row["id"] for row in paged.json()["results"]]) == (3, ["crm"])
    assert (one.status_code, one.json()["name"], "scope" in one.json()) == (200, "crm", False)
    assert theirs.status_code == 404
    assert across.status_code == 403
    assert [row["id"] for row in admin_other.get("credentials").json()["results"]] == ["crm", "theirs"]
    for response in (listed, searched, paged, one):
        assert CLIENT_SECRET not in response.content.decode()


def test_put_replaces_settings_keeps_an_omitted_secret_and_drops_the_cached_token(
    admin: Api, token_server: TokenServer
) -> None:
    from flows.services.credentials import token_for

    # given: a credential with a cached token
    create("main", client_credentials(token_server, scope="read", description="old"))
    first = token_for("main", "api")
    assert admin.get("credentials/api").json()["tokenExpiresAt"] is not None
    # when: the settings change, the secret is not sent
    changed = admin.put(
        "credentials/api",
        {
            "type": "OAUTH2_CLIENT_CREDENTIALS",
            "tokenUrl": token_server.url,
            "clientId": CLIENT_ID,
            "scope": "write",
        },
        format="json",
    )
    second = token_for("main", "api")
    # then: the stored secret still authenticates, the new scope is asked, the old token is gone
    assert changed.status_code == 200
    assert (changed.json()["scope"], changed.json()["description"], changed.json()["tokenExpiresAt"]) == (
        "write",
        None,
        None,
    )
    assert second != first
    assert [(seen.auth, seen.form.get("scope")) for seen in token_server.requests] == [
        ("client_secret_basic", "read"),
        ("client_secret_basic", "write"),
    ]
    # when: a new secret is sent (GET's answer sent back, as a client would)
    token_server.clients[CLIENT_ID] = "rotated-secret"
    rotated = admin.put(
        "credentials/api",
        {**admin.get("credentials/api").json(), "clientSecret": "rotated-secret"},
        format="json",
    )
    # then
    assert rotated.status_code == 200
    assert token_for("main", "api") == token_server.issued[-1]
    assert token_server.requests[-1].auth == "client_secret_basic"
    assert "rotated-secret" not in rotated.content.decode()


def test_put_can_change_the_type_and_refuses_a_rename(
    admin: Api, token_server: TokenServer, ec_key: Any
) -> None:
    from flows.services.credentials import token_for

    # given
    create("main", client_credentials(token_server))
    token_server.keys[CLIENT_ID] = ec_key.public_key()
    # when
    renamed = admin.put(
        "credentials/api", {**client_credentials(token_server), "name": "other"}, format="json"
    )
    changed = admin.put(
        "credentials/api",
        {
            "type": "OAUTH2_PRIVATE_KEY_JWT",
            "tokenUrl": token_server.url,
            "clientId": CLIENT_ID,
            "privateKey": pem(ec_key),
        },
        format="json",
    )
    # then
    assert (renamed.status_code, renamed.json()["_embedded"]["errors"][0]["path"]) == (422, "name")
    assert changed.status_code == 200
    assert (changed.json()["signingAlgorithm"], changed.json()["storedSecrets"]) == ("ES256", ["privateKey"])
    assert token_for("main", "api") == token_server.issued[-1]
    assert [seen.auth for seen in token_server.requests] == ["private_key_jwt"]


def test_delete_removes_only_that_credential(admin: Api, admin_other: Api, token_server: TokenServer) -> None:
    # given
    create("main", client_credentials(token_server, "gone"))
    create("main", client_credentials(token_server, "kept"))
    create("other", client_credentials(token_server, "gone"))
    # when
    first = admin.delete("credentials/gone")
    second = admin.delete("credentials/gone")
    # then
    assert (first.status_code, second.status_code) == (204, 404)
    assert _rows() == [("kept", "OAUTH2_CLIENT_CREDENTIALS")]
    assert _rows("other") == [("gone", "OAUTH2_CLIENT_CREDENTIALS")]


def test_an_existing_name_is_409_and_changes_nothing(admin: Api, token_server: TokenServer) -> None:
    # given
    create("main", client_credentials(token_server, scope="kept"))
    # when
    response = admin.post("credentials", client_credentials(token_server, scope="replaced"), format="json")
    # then
    assert response.status_code == 409
    assert response.json()["message"] == "credential `api` already exists"
    assert admin.get("credentials/api").json()["scope"] == "kept"


@pytest.mark.parametrize("role", ["VIEWER", "EDITOR"])
def test_only_admins_write(make_api: MakeApi, token_server: TokenServer, role: str) -> None:
    # given
    create("main", client_credentials(token_server, scope="kept"))
    user = make_api(role)
    # when
    created = user.post("credentials", client_credentials(token_server, "new"), format="json")
    changed = user.put("credentials/api", client_credentials(token_server, scope="changed"), format="json")
    deleted = user.delete("credentials/api")
    read = user.get("credentials/api")
    # then
    assert (created.status_code, changed.status_code, deleted.status_code, read.status_code) == (
        403,
        403,
        403,
        200,
    )
    assert _rows() == [("api", "OAUTH2_CLIENT_CREDENTIALS")]
    assert read.json()["scope"] == "kept"


def _bad_inputs() -> list[Any]:
    url = "http://127.0.0.1:9/token"
    base = {
        "name": "api",
        "type": "OAUTH2_CLIENT_CREDENTIALS",
        "tokenUrl": url,
        "clientId": "c",
        "clientSecret": "sec-ret",
    }
    jwt_bearer = {"name": "api", "type": "OAUTH2_JWT_BEARER", "tokenUrl": url, "issuer": "me"}
    key_jwt = {"name": "api", "type": "OAUTH2_PRIVATE_KEY_JWT", "tokenUrl": url, "clientId": "c"}
    without = {key: value for key, value in base.items() if key != "tokenUrl"}
    return [
        pytest.param(without, "tokenUrl", "tokenUrl: is required", id="no tokenUrl"),
        pytest.param({**base, "tokenUrl": "ftp://host/token"}, "tokenUrl", "http:// or https://", id="ftp"),
        pytest.param({**base, "tokenUrl": "token"}, "tokenUrl", "http:// or https://", id="relative"),
        pytest.param(
            {**base, "tokenUrl": "https://u:p@host/t"}, "tokenUrl", "user or password", id="userinfo"
        ),
        pytest.param({**base, "clientId": ""}, "clientId", "clientId: is required", id="no clientId"),
        pytest.param(
            {**base, "clientSecret": None}, "clientSecret", "clientSecret: is required", id="no secret"
        ),
        pytest.param({**base, "clientSecret": 42}, "clientSecret", "non-empty string", id="secret not text"),
        pytest.param({**base, "type": "BASIC"}, "type", "type: must be one of OAUTH2_CLIENT", id="type"),
        pytest.param({**base, "name": "bad name"}, "name", "name: must be 1 to 200", id="name"),
        pytest.param({**base, "name": "search"}, "name", "reserved", id="reserved name"),
        pytest.param(
            {**base, "issuer": "me"}, "issuer", "not a setting of OAUTH2_CLIENT_CREDENTIALS", id="unknown"
        ),
        pytest.param(
            {**base, "clientAuthMethod": "magic"}, "clientAuthMethod", "client_secret_basic", id="method"
        ),
        pytest.param({**base, "scope": ["a"]}, "scope", "must be a string", id="scope"),
        pytest.param(
            {**base, "namespaces": ["bad ns"]}, "namespaces[0]", "must be a namespace", id="namespaces"
        ),
        pytest.param({**base, "description": 3}, "description", "must be a string", id="description"),
        pytest.param(jwt_bearer, "privateKey", "`privateKey` (PEM) or `hmacSecret`", id="no signing key"),
        pytest.param(
            {**jwt_bearer, "issuer": None, "hmacSecret": HMAC_SECRET}, "issuer", "required", id="issuer"
        ),
        pytest.param(
            {**jwt_bearer, "hmacSecret": "short-secret"}, "hmacSecret", "at least 32 bytes", id="short"
        ),
        pytest.param(
            {**jwt_bearer, "hmacSecret": HMAC_SECRET, "additionalClaims": {"exp": 1}},
            "additionalClaims.exp",
            "set by Baton",
            id="reserved claim",
        ),
        pytest.param(
            {**key_jwt, "privateKey": "-----BEGIN PRIVATE KEY-----\nsec-ret\n-----END PRIVATE KEY-----"},
            "privateKey",
            "unencrypted PEM private key",
            id="not a key",
        ),
        pytest.param(
            {**key_jwt, "hmacSecret": HMAC_SECRET}, "hmacSecret", "not a setting", id="hmac for pkjwt"
        ),
    ]


@pytest.mark.parametrize(("body", "path", "message"), _bad_inputs())
def test_bad_input_gets_422_with_its_path_and_stores_nothing(
    admin: Api, body: dict[str, Any], path: str, message: str
) -> None:
    # when
    response = admin.post("credentials", body, format="json")
    # then
    assert response.status_code == 422, response.content
    assert message in response.json()["message"]
    assert response.json()["_embedded"]["errors"][0]["path"] == path
    assert "sec-ret" not in response.content.decode() and HMAC_SECRET not in response.content.decode()
    assert _rows() == []


@pytest.mark.parametrize(
    ("algorithm", "message"),
    [
        ("ES256", "privateKey: ES256 needs an EC key on curve secp256r1"),
        ("HS256", "signingAlgorithm: must be one of"),
    ],
)
def test_a_key_that_does_not_fit_the_algorithm_is_refused(
    admin: Api, rsa_key: Any, algorithm: str, message: str
) -> None:
    body = {
        "name": "api",
        "type": "OAUTH2_PRIVATE_KEY_JWT",
        "tokenUrl": "https://idp.example.com/token",
        "clientId": "c",
        "privateKey": pem(rsa_key),
        "signingAlgorithm": algorithm,
    }
    # when
    response = admin.post("credentials", body, format="json")
    # then
    assert response.status_code == 422
    assert message in response.json()["message"]
    assert "PRIVATE KEY" not in response.content.decode()
    assert _rows() == []


def test_a_body_that_is_not_an_object_is_refused(admin: Api) -> None:
    response = admin.client.post(admin.url("credentials"), "[1]", content_type="application/json")
    assert response.status_code == 422
    assert _rows() == []


def test_the_test_endpoint_fetches_a_token_now_without_answering_it(
    admin: Api, make_api: MakeApi, admin_other: Api, token_server: TokenServer
) -> None:
    # given
    create("main", client_credentials(token_server, scope="read"))
    create("other", client_credentials(token_server, "theirs"))
    editor = make_api("EDITOR")
    # when
    tested = editor.post("credentials/api/test")
    again = admin.post("credentials/api/test")
    viewer = make_api("VIEWER").post("credentials/api/test")
    theirs = admin.post("credentials/theirs/test")
    # then
    assert tested.status_code == 200
    answer = tested.json()
    assert answer.pop("expiresAt").endswith("Z")
    assert answer == {"success": True, "tokenType": "Bearer", "expiresIn": 3600, "scope": "read"}
    assert again.json()["success"] is True
    assert len(token_server.requests) == 2  # each test asks the endpoint, whatever is cached
    for token in token_server.issued:
        assert token not in tested.content.decode() + again.content.decode()
        assert token not in admin.get("credentials/api").content.decode()
    assert admin.get("credentials/api").json()["tokenExpiresAt"] is not None
    assert (viewer.status_code, theirs.status_code) == (403, 404)
    assert len(token_server.requests) == 2


def test_the_test_endpoint_reports_the_token_endpoints_error(admin: Api, token_server: TokenServer) -> None:
    # given: the endpoint knows another secret for this client
    create("main", client_credentials(token_server))
    token_server.clients[CLIENT_ID] = "the-real-secret"
    # when
    response = admin.post("credentials/api/test")
    # then
    assert response.status_code == 200
    assert response.json() == {
        "success": False,
        "message": f"credential `api`: the token endpoint {token_server.url} refused with HTTP 401: "
        f"invalid_client: unknown client `{CLIENT_ID}` or wrong secret",
        "error": "invalid_client",
        "errorDescription": f"unknown client `{CLIENT_ID}` or wrong secret",
    }
    assert CLIENT_SECRET not in response.content.decode()


def test_no_answer_ever_holds_a_secret_setting_or_a_token(
    admin: Api, token_server: TokenServer, rsa_key: Any
) -> None:
    # given: one credential of each type
    token_server.keys["issuer@example.com"] = HMAC_SECRET
    token_server.keys["signer"] = rsa_key.public_key()
    private_key = pem(rsa_key)
    bodies = [
        client_credentials(token_server, "cc", clientAuthMethod="client_secret_post"),
        {
            "name": "bearer",
            "type": "OAUTH2_JWT_BEARER",
            "tokenUrl": token_server.url,
            "issuer": "issuer@example.com",
            "hmacSecret": HMAC_SECRET,
        },
        {
            "name": "signed",
            "type": "OAUTH2_PRIVATE_KEY_JWT",
            "tokenUrl": token_server.url,
            "clientId": "signer",
            "privateKey": private_key,
        },
    ]
    # when
    responses = [admin.post("credentials", body, format="json") for body in bodies]
    for body in bodies:
        responses += [
            admin.post(f"credentials/{body['name']}/test"),
            admin.get(f"credentials/{body['name']}"),
            admin.put(f"credentials/{body['name']}", {**body, "description": "changed"}, format="json"),
        ]
    responses += [admin.get("credentials"), admin.get("credentials/search", q="e")]
    responses += [admin.delete(f"credentials/{body['name']}") for body in bodies]
    # then
    assert [response.status_code for response in responses[:3]] == [201, 201, 201]
    assert [response.json()["success"] for response in responses[3:12:3]] == [True, True, True]
    key_body = private_key.splitlines()[1]
    texts = [response.content.decode() for response in responses]
    for secret in (CLIENT_SECRET, HMAC_SECRET, key_body, *token_server.issued):
        assert not [text for text in texts if secret in text]
    assert len(token_server.issued) == 3


# -- tokens


def test_a_token_is_cached_until_shortly_before_it_expires_then_refreshed(
    db: None, token_server: TokenServer
) -> None:
    from django.utils import timezone

    from flows.models import Credential
    from flows.services.credentials import REFRESH_MARGIN, token_for

    # given
    create("main", client_credentials(token_server))
    # when
    first = token_for("main", "api")
    cached = token_for("main", "api")
    # then: one request, the token kept encrypted
    assert first == cached == token_server.issued[0]
    assert len(token_server.requests) == 1
    row = Credential.objects.get(tenant_id="main", name="api")
    assert first not in row.encrypted_token
    assert timedelta(seconds=3590) < row.token_expires_at - timezone.now() <= timedelta(seconds=3600)
    # when: the token enters the refresh margin
    Credential.objects.filter(pk=row.pk).update(
        token_expires_at=timezone.now() + REFRESH_MARGIN - timedelta(seconds=1)
    )
    refreshed = token_for("main", "api")
    # then
    assert refreshed == token_server.issued[1] != first
    assert len(token_server.requests) == 2
    assert token_for("main", "api") == refreshed


@pytest.mark.parametrize("expires_in", [30, None])
def test_a_token_that_lives_less_than_the_margin_or_says_nothing_is_not_cached(
    db: None, token_server: TokenServer, expires_in: int | None
) -> None:
    from flows.models import Credential
    from flows.services.credentials import token_for

    # given
    token_server.expires_in = expires_in
    create("main", client_credentials(token_server))
    # when
    tokens = [token_for("main", "api"), token_for("main", "api")]
    # then
    assert tokens == token_server.issued and tokens[0] != tokens[1]
    assert list(Credential.objects.values_list("encrypted_token", "token_expires_at")) == [("", None)]


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
def test_client_credentials_authenticate_the_client_as_configured(
    db: None, token_server: TokenServer, method: str
) -> None:
    from flows.services.credentials import token_for

    # given
    create(
        "main", client_credentials(token_server, clientAuthMethod=method, scope="a b", audience="https://api")
    )
    # when
    token = token_for("main", "api")
    # then
    assert token == token_server.issued[0]
    [seen] = token_server.requests
    assert seen.auth == method
    expected = {"grant_type": "client_credentials", "scope": "a b", "audience": "https://api"}
    if method == "client_secret_post":
        expected |= {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    assert seen.form == expected


@pytest.mark.parametrize("key_type", ["rsa", "ec", "hmac"])
def test_jwt_bearer_sends_a_signed_assertion(
    db: None, token_server: TokenServer, rsa_key: Any, ec_key: Any, key_type: str
) -> None:
    from flows.services.credentials import token_for

    # given
    signing = {
        "rsa": ({"privateKey": pem(rsa_key)}, rsa_key.public_key(), "RS256"),
        "ec": ({"privateKey": pem(ec_key)}, ec_key.public_key(), "ES256"),
        "hmac": ({"hmacSecret": HMAC_SECRET}, HMAC_SECRET, "HS256"),
    }[key_type]
    token_server.keys["robot@example.com"] = signing[1]
    info = create(
        "main",
        {
            "name": "bearer",
            "type": "OAUTH2_JWT_BEARER",
            "tokenUrl": token_server.url,
            "issuer": "robot@example.com",
            "subject": "user-42",
            "keyId": "key-1",
            "scope": "files",
            "additionalClaims": {"scope": "files", "tenant": "acme"},
            **signing[0],
        },
    )
    # when
    token = token_for("main", "bearer")
    # then
    assert info.config["signingAlgorithm"] == signing[2]
    assert token == token_server.issued[0]
    [seen] = token_server.requests
    assert (seen.auth, seen.form["grant_type"], seen.form["scope"]) == (
        "jwt_bearer",
        JWT_BEARER_GRANT,
        "files",
    )
    assert seen.header == {"alg": signing[2], "typ": "JWT", "kid": "key-1"}
    claims = dict(seen.claims)
    assert claims.pop("exp") - claims.pop("iat") == 300
    assert len(claims.pop("jti")) == 32
    assert claims == {
        "iss": "robot@example.com",
        "sub": "user-42",
        "aud": token_server.url,
        "scope": "files",
        "tenant": "acme",
    }


@pytest.mark.parametrize("key_type", ["rsa", "ec"])
def test_private_key_jwt_authenticates_the_client_with_a_signed_assertion(
    db: None, token_server: TokenServer, rsa_key: Any, ec_key: Any, key_type: str
) -> None:
    from flows.services.credentials import token_for

    # given
    key = rsa_key if key_type == "rsa" else ec_key
    token_server.keys[CLIENT_ID] = key.public_key()
    create(
        "main",
        {
            "name": "signed",
            "type": "OAUTH2_PRIVATE_KEY_JWT",
            "tokenUrl": token_server.url,
            "clientId": CLIENT_ID,
            "privateKey": pem(key),
            "audience": "https://api.example.com",
        },
    )
    # when
    tokens = [token_for("main", "signed"), token_for("main", "signed")]
    # then
    assert tokens == [token_server.issued[0]] * 2
    [seen] = token_server.requests
    assert seen.auth == "private_key_jwt"
    assert {name: value for name, value in seen.form.items() if name != "client_assertion"} == {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "audience": "https://api.example.com",
    }
    assert (seen.claims["iss"], seen.claims["sub"], seen.claims["aud"]) == (
        CLIENT_ID,
        CLIENT_ID,
        token_server.url,
    )
    assert seen.header["alg"] == ("RS256" if key_type == "rsa" else "ES256")


def test_a_refusal_names_the_credential_and_the_endpoints_error_never_the_secret(
    db: None, token_server: TokenServer
) -> None:
    from flows.services.credentials import CredentialUnavailable, token_for

    # given: an endpoint that quotes what it was sent
    create("main", client_credentials(token_server, clientAuthMethod="client_secret_post"))
    token_server.answer = (
        400,
        json.dumps(
            {"error": "invalid_scope", "error_description": f"client_secret {CLIENT_SECRET} lacks scope"}
        ).encode(),
        {},
    )
    # when
    with pytest.raises(CredentialUnavailable) as refused:
        token_for("main", "api")
    # then
    assert str(refused.value) == (
        f"credential `api`: the token endpoint {token_server.url} refused with HTTP 400: "
        "invalid_scope: client_secret ****** lacks scope"
    )
    assert (refused.value.error, refused.value.retryable) == ("invalid_scope", False)


@pytest.mark.parametrize(
    ("answer", "message", "retryable"),
    [
        ((503, b"<html>down</html>", {}), "refused with HTTP 503: no OAuth2 error in its answer", True),
        ((200, b"not json", {}), "answered HTTP 200 without an `access_token`", False),
        ((200, b'{"token_type": "Bearer"}', {}), "answered HTTP 200 without an `access_token`", False),
        ((302, b"", {"Location": "http://127.0.0.1:9/steal"}), "refused with HTTP 302", False),
    ],
)
def test_an_answer_that_is_no_token_is_a_clear_error(
    db: None, token_server: TokenServer, answer: Any, message: str, retryable: bool
) -> None:
    from flows.services.credentials import CredentialUnavailable, token_for

    # given
    create("main", client_credentials(token_server))
    token_server.answer = answer
    # when
    with pytest.raises(CredentialUnavailable) as refused:
        token_for("main", "api")
    # then
    assert message in str(refused.value)
    assert refused.value.retryable is retryable
    assert len(token_server.requests) == 1  # a redirect is not followed


def test_an_unreachable_endpoint_is_a_retryable_error(db: None) -> None:
    from flows.services.credentials import CredentialUnavailable, token_for

    # given: a port nothing listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    create("main", {**client_credentials(TokenServer(url=f"http://127.0.0.1:{port}/token"))})
    # when
    with pytest.raises(CredentialUnavailable) as failed:
        token_for("main", "api")
    # then
    assert f"cannot reach the token endpoint http://127.0.0.1:{port}/token" in str(failed.value)
    assert failed.value.retryable is True


def test_a_credential_serves_only_its_tenant_and_namespaces(db: None, token_server: TokenServer) -> None:
    from flows.services.credentials import CredentialNotAllowed, CredentialNotFound, token_for

    # given
    create("other", client_credentials(token_server, "theirs"))
    create("main", client_credentials(token_server, "team", namespaces=["company.team"]))
    # when / then
    with pytest.raises(CredentialNotFound, match="no credential `theirs`"):
        token_for("main", "theirs")
    assert token_for("main", "team", namespace="company.team.sub") == token_server.issued[0]
    with pytest.raises(CredentialNotAllowed, match="may not be used in namespace `company.teams`"):
        token_for("main", "team", namespace="company.teams")
    assert len(token_server.requests) == 1


def test_concurrent_callers_share_one_refresh(transactional_db: None, token_server: TokenServer) -> None:
    from django.db import connection

    from flows.services.credentials import token_for

    # given: an endpoint that holds its first answer until every caller has started
    create("main", client_credentials(token_server))
    token_server.gate = threading.Event()
    started: list[int] = []
    tokens: list[str] = []

    def call() -> None:
        try:
            started.append(1)
            tokens.append(token_for("main", "api"))
        finally:
            connection.close()

    callers = [threading.Thread(target=call) for _ in range(6)]
    # when
    for caller in callers:
        caller.start()
    wait_until(lambda: len(started) == 6 and len(token_server.requests) == 1, timeout=10, message="callers")
    token_server.gate.set()
    for caller in callers:
        caller.join(timeout=30)
    # then
    assert tokens == [token_server.issued[0]] * 6
    assert len(token_server.requests) == 1
