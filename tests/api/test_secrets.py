"""/api/v1/{tenant}/namespaces/{namespace}/secrets: values go in encrypted and never come out."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.api import Api, MakeApi

VALUE = "hunter2-correct-horse"


def _put(api: Api, namespace: str, body: dict[str, Any]) -> Any:
    return api.put(f"namespaces/{namespace}/secrets", body, format="json")


def _rows(tenant: str = "main") -> list[tuple[str, str, str]]:
    from flows.models import Secret

    return list(
        Secret.objects.filter(tenant_id=tenant)
        .order_by("namespace", "key")
        .values_list("namespace", "key", "description")
    )


def _find(namespace: str, key: str, tenant: str = "main") -> str | None:
    from flows.services.secrets import find_secret

    return find_secret(tenant, namespace, key)


def test_put_stores_the_value_encrypted_and_answers_only_metadata(api: Api) -> None:
    from flows.models import Secret

    # when
    response = _put(api, "company.team", {"key": "DB_PASSWORD", "value": VALUE, "description": "main db"})
    # then
    assert response.status_code == 200
    assert response.json() == [{"key": "DB_PASSWORD", "description": "main db", "tags": []}]
    assert VALUE not in response.content.decode()
    stored = Secret.objects.get(tenant_id="main", namespace="company.team", key="DB_PASSWORD")
    assert VALUE not in stored.encrypted_value
    assert _find("company.team", "DB_PASSWORD") == VALUE


def test_list_answers_keys_and_descriptions_of_the_tenants_own_secrets(api: Api, api_other: Api) -> None:
    # given
    _put(api, "company.team", {"key": "B_TOKEN", "value": VALUE, "tags": [{"key": "env", "value": "prod"}]})
    _put(api, "company.team", {"key": "A_PASSWORD", "value": VALUE, "description": "db"})
    _put(api, "company", {"key": "PARENT_ONLY", "value": VALUE})
    _put(api_other, "company.team", {"key": "OTHER_TENANT", "value": "their value"})
    # when
    response = api.get("namespaces/company.team/secrets")
    searched = api.get("namespaces/company.team/secrets", q="token", size=1)
    # then
    assert response.status_code == 200
    assert response.json() == {
        "readOnly": False,
        "results": [
            {"key": "A_PASSWORD", "description": "db", "tags": []},
            {"key": "B_TOKEN", "description": None, "tags": [{"key": "env", "value": "prod"}]},
        ],
        "total": 2,
    }
    assert searched.json()["results"] == [
        {"key": "B_TOKEN", "description": None, "tags": [{"key": "env", "value": "prod"}]}
    ]
    assert VALUE not in response.content.decode()
    assert [row["key"] for row in api_other.get("namespaces/company.team/secrets").json()["results"]] == [
        "OTHER_TENANT"
    ]
    assert api_other.client.get("/api/v1/main/namespaces/company.team/secrets").status_code == 403


def test_patch_changes_description_and_value_and_keeps_the_rest(api: Api) -> None:
    # given
    _put(api, "company.team", {"key": "TOKEN", "value": VALUE, "description": "old"})
    # when
    described = api.client.patch(
        api.url("namespaces/company.team/secrets/TOKEN"), {"description": "new"}, format="json"
    )
    revalued = api.client.patch(
        api.url("namespaces/company.team/secrets/TOKEN"), {"value": "rotated-value"}, format="json"
    )
    missing = api.client.patch(
        api.url("namespaces/company.team/secrets/NOPE"), {"description": "x"}, format="json"
    )
    # then
    assert described.json() == [{"key": "TOKEN", "description": "new", "tags": []}]
    assert revalued.status_code == 200
    assert "rotated-value" not in revalued.content.decode()
    assert _find("company.team", "TOKEN") == "rotated-value"
    assert _rows() == [("company.team", "TOKEN", "new")]
    assert missing.status_code == 404


def test_delete_removes_only_that_secret(api: Api, api_other: Api) -> None:
    # given
    _put(api, "company.team", {"key": "GONE", "value": VALUE})
    _put(api, "company.team", {"key": "KEPT", "value": VALUE})
    _put(api_other, "company.team", {"key": "GONE", "value": VALUE})
    # when
    first = api.delete("namespaces/company.team/secrets/GONE")
    second = api.delete("namespaces/company.team/secrets/GONE")
    # then
    assert (first.status_code, first.json()) == (200, ["GONE"])
    assert second.status_code == 404
    assert _rows() == [("company.team", "KEPT", "")]
    assert _rows("other") == [("company.team", "GONE", "")]


def test_a_flow_sees_the_nearest_namespaces_secret(api: Api, api_other: Api) -> None:
    # given
    _put(api, "company", {"key": "SHARED", "value": "from-company"})
    _put(api, "company", {"key": "OVERRIDDEN", "value": "from-company"})
    _put(api, "company.team", {"key": "OVERRIDDEN", "value": "from-team"})
    _put(api_other, "company.team.sub", {"key": "THEIRS", "value": "other-tenant"})
    # when
    found = {key: _find("company.team.sub", key) for key in ("SHARED", "OVERRIDDEN", "THEIRS")}
    inherited = api.get("namespaces/company.team.sub/inherited-secrets")
    # then
    assert found == {"SHARED": "from-company", "OVERRIDDEN": "from-team", "THEIRS": None}
    assert _find("company", "OVERRIDDEN") == "from-company"
    assert _find("company.team.sub", "THEIRS", tenant="other") == "other-tenant"
    assert inherited.json() == {
        "company.team.sub": [],
        "company.team": ["OVERRIDDEN"],
        "company": ["OVERRIDDEN", "SHARED"],
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"value": VALUE}, "`key` must be 1 to 255 letters"),
        ({"key": "bad key", "value": VALUE}, "`key` must be 1 to 255 letters"),
        ({"key": "K"}, "`value` must be a non-empty string"),
        ({"key": "K", "value": ""}, "`value` must be a non-empty string"),
        ({"key": "K", "value": 123456789}, "`value` must be a non-empty string"),
        ({"key": "K", "value": VALUE, "description": 5}, "`description` must be a string"),
        ({"key": "K", "value": VALUE, "tags": ["x"]}, "`tags` must be a list of {key, value} strings"),
    ],
)
def test_bad_input_gets_422_without_the_value_and_stores_nothing(
    api: Api, body: dict[str, Any], message: str
) -> None:
    # when
    response = _put(api, "company.team", body)
    # then
    assert response.status_code == 422
    assert message in response.json()["message"]
    assert VALUE not in response.content.decode()
    assert "123456789" not in response.content.decode()
    assert _rows() == []


def test_a_body_that_is_not_an_object_is_refused(api: Api) -> None:
    response = api.client.put(
        api.url("namespaces/company.team/secrets"), "[1]", content_type="application/json"
    )
    assert response.status_code == 422
    assert _rows() == []


def test_viewer_lists_but_cannot_write(api: Api, make_api: MakeApi) -> None:
    # given
    _put(api, "company.team", {"key": "TOKEN", "value": VALUE})
    viewer = make_api("VIEWER")
    # when
    listed = viewer.get("namespaces/company.team/secrets")
    written = _put(viewer, "company.team", {"key": "TOKEN", "value": "changed"})
    deleted = viewer.delete("namespaces/company.team/secrets/TOKEN")
    # then
    assert [row["key"] for row in listed.json()["results"]] == ["TOKEN"]
    assert (written.status_code, deleted.status_code) == (403, 403)
    assert _find("company.team", "TOKEN") == VALUE


def test_restricted_user_works_only_in_its_namespaces(api: Api, make_api: MakeApi) -> None:
    # given
    _put(api, "company", {"key": "PARENT", "value": VALUE})
    _put(api, "finance", {"key": "BANK", "value": VALUE})
    restricted = make_api("RESTRICTED", namespaces=["company.team"])
    # when
    own = _put(restricted, "company.team", {"key": "MINE", "value": VALUE})
    elsewhere = _put(restricted, "finance", {"key": "BANK", "value": "overwritten"})
    listed_elsewhere = restricted.get("namespaces/finance/secrets")
    deleted_elsewhere = restricted.delete("namespaces/finance/secrets/BANK")
    inherited = restricted.get("namespaces/company.team/inherited-secrets")
    # then
    assert own.status_code == 200
    assert (elsewhere.status_code, listed_elsewhere.status_code, deleted_elsewhere.status_code) == (
        404,
        404,
        404,
    )
    assert inherited.json() == {"company.team": ["MINE"]}  # `company` is not its to see
    assert _find("finance", "BANK") == VALUE


def test_rotating_baton_secrets_key_keeps_stored_values_readable(api: Api, settings: Any) -> None:
    from flows.services.secrets import SecretUnreadable

    # given: a secret stored under the old key
    settings.BATON_SECRETS_KEY = "old-key-material"
    _put(api, "company.team", {"key": "TOKEN", "value": VALUE})
    # when / then: the new key first, the old one still listed
    settings.BATON_SECRETS_KEY = "new-key-material,old-key-material"
    assert _find("company.team", "TOKEN") == VALUE
    # and without the old key the value cannot be read, and the error does not show it
    settings.BATON_SECRETS_KEY = "new-key-material"
    with pytest.raises(SecretUnreadable) as error:
        _find("company.team", "TOKEN")
    assert "cannot be decrypted" in str(error.value)
    assert VALUE not in str(error.value)
