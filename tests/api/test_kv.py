"""/api/v1/{tenant}/namespaces/{namespace}/kv: Kestra's typed KV store, per tenant and namespace."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from tests.fixtures.api import Api, MakeApi


def _put(api: Api, namespace: str, key: str, body: str, **headers: str) -> Any:
    extra = {f"HTTP_{name.upper()}": value for name, value in headers.items()}
    return api.client.put(
        api.url(f"namespaces/{namespace}/kv/{key}"), body, content_type="application/json", **extra
    )


def _rows(tenant: str = "main") -> list[tuple[str, str, Any, str]]:
    from flows.models import KVEntry

    return list(
        KVEntry.objects.filter(tenant_id=tenant)
        .order_by("namespace", "key")
        .values_list("namespace", "key", "value", "value_type")
    )


@pytest.mark.parametrize(
    ("body", "kv_type", "value"),
    [
        ('"hello"', "STRING", "hello"),
        ("1", "NUMBER", 1),
        ("1.5", "NUMBER", 1.5),
        ("true", "BOOLEAN", True),
        ("false", "BOOLEAN", False),
        ("2021-09-01", "DATE", "2021-09-01"),
        ("2021-09-01T01:02:03Z", "DATETIME", "2021-09-01T01:02:03Z"),
        ('"PT5S"', "DURATION", "PT5S"),
        ('{"hello": "world"}', "JSON", {"hello": "world"}),
        ('["hello", "world"]', "JSON", ["hello", "world"]),
    ],
)
def test_put_infers_the_type_as_kestra_and_get_answers_it(
    api: Api, body: str, kv_type: str, value: Any
) -> None:
    # when
    stored = _put(api, "company.team", "my-key", body)
    # then
    assert stored.status_code == 200, stored.content
    response = api.get("namespaces/company.team/kv/my-key")
    assert response.status_code == 200
    assert response.json() == {"type": kv_type, "value": value}
    assert _rows() == [("company.team", "my-key", value, kv_type)]


def test_get_reads_only_the_tenants_own_value(api: Api, api_other: Api) -> None:
    # given: the same key in both tenants
    _put(api, "company.team", "colour", '"blue"')
    _put(api_other, "company.team", "colour", '"red"')
    # when
    mine = api.get("namespaces/company.team/kv/colour")
    theirs = api_other.get("namespaces/company.team/kv/colour")
    missing = api.get("namespaces/company.team/kv/nothing")
    # then
    assert mine.json() == {"type": "STRING", "value": "blue"}
    assert theirs.json() == {"type": "STRING", "value": "red"}
    assert missing.status_code == 404
    assert missing.json()["message"] == "No value found for key 'nothing' in namespace 'company.team'"
    assert api_other.client.get("/api/v1/main/namespaces/company.team/kv/colour").status_code == 403


def test_list_shows_keys_with_description_and_expiry_and_hides_other_tenants(
    api: Api, api_other: Api
) -> None:
    # given
    before = timezone.now()
    _put(api, "company.team", "b-key", '"x"', ttl="PT5M", description="five minutes")
    _put(api, "company.team", "a-key", "1")
    _put(api, "company.team.sub", "child-key", "1")
    _put(api_other, "company.team", "theirs", '"y"')
    after = timezone.now()
    # when
    response = api.get("namespaces/company.team/kv")
    # then
    assert response.status_code == 200
    entries = response.json()
    assert [entry["key"] for entry in entries] == ["a-key", "b-key"]
    first, second = entries
    assert (first["description"], first["expirationDate"]) == (None, None)
    assert second["description"] == "five minutes"
    expires = parse_datetime(second["expirationDate"])
    assert before + timedelta(minutes=5) <= expires <= after + timedelta(minutes=5)
    assert set(second) == {"key", "description", "creationDate", "updateDate", "expirationDate"}
    assert [entry["key"] for entry in api_other.get("namespaces/company.team/kv").json()] == ["theirs"]


def test_an_expired_key_is_gone_for_the_api_and_for_flows(api: Api) -> None:
    from flows.models import KVEntry
    from flows.services.runtime import kv_lookup

    # given: a key whose TTL has passed
    _put(api, "company.team", "old", '"stale"', ttl="PT1S")
    _put(api, "company.team", "fresh", '"ok"')
    KVEntry.objects.filter(key="old").update(expires_at=timezone.now() - timedelta(seconds=1))
    # when
    listed = api.get("namespaces/company.team/kv")
    flow_view = kv_lookup("main", "company.team", "old")
    response = api.get("namespaces/company.team/kv/old")
    # then: Kestra answers 410 Gone and forgets the key
    assert [entry["key"] for entry in listed.json()] == ["fresh"]
    assert flow_view == (False, None)
    assert response.status_code == 410
    assert "expired" in response.json()["message"]
    assert _rows() == [("company.team", "fresh", "ok", "STRING")]


def test_values_stored_through_the_api_are_what_flows_read(api: Api) -> None:
    from flows.services.runtime import kv_lookup

    # given
    _put(api, "company.team", "limits", '{"max": 3}')
    # when
    found = kv_lookup("main", "company.team", "limits")
    # then
    assert found == (True, {"max": 3})


def test_delete_answers_whether_the_key_existed(api: Api, api_other: Api) -> None:
    # given
    _put(api, "company.team", "gone", '"x"')
    _put(api_other, "company.team", "gone", '"kept"')
    # when
    first = api.delete("namespaces/company.team/kv/gone")
    second = api.delete("namespaces/company.team/kv/gone")
    # then
    assert (first.status_code, first.json()) == (200, True)
    assert (second.status_code, second.json()) == (200, False)
    assert _rows() == []
    assert _rows("other") == [("company.team", "gone", "kept", "STRING")]


def test_bulk_delete_answers_the_keys_it_deleted(api: Api) -> None:
    # given
    _put(api, "company.team", "one", "1")
    _put(api, "company.team", "two", "2")
    # when
    response = api.delete("namespaces/company.team/kv", data={"keys": ["one", "absent"]}, format="json")
    # then
    assert response.status_code == 200
    assert response.json() == {"keys": ["one"]}
    assert _rows() == [("company.team", "two", 2, "NUMBER")]


def test_bulk_delete_of_a_key_with_a_nul_character_gets_422_and_deletes_nothing(api: Api) -> None:
    # given
    _put(api, "company.team", "one", "1")
    # when
    response = api.delete("namespaces/company.team/kv", data={"keys": ["one", "a\x00"]}, format="json")
    # then
    assert response.status_code == 422, response.content
    assert "NUL" in response.json()["message"]
    assert _rows() == [("company.team", "one", 1, "NUMBER")]


def test_inheritance_lists_the_keys_of_each_parent_namespace(api: Api, api_other: Api) -> None:
    # given
    _put(api, "company", "top", "1")
    _put(api, "company.team", "middle", "2")
    _put(api, "company.team.sub", "own", "3")
    _put(api_other, "company", "theirs", "4")
    # when
    response = api.get("namespaces/company.team.sub/kv/inheritance")
    # then
    assert response.status_code == 200
    assert [
        (level["namespace"], [entry["key"] for entry in level["kvEntries"]]) for level in response.json()
    ] == [("company.team.sub", ["own"]), ("company.team", ["middle"]), ("company", ["top"])]


@pytest.mark.parametrize(
    ("key", "body", "headers", "status", "message"),
    [
        ("bad$key", '"x"', {}, 422, "invalid key `bad$key`"),
        ("-dash", '"x"', {}, 422, "a key must start with an alphanumeric character"),
        ("good", "{oops", {}, 422, "invalid JSON value: {oops"),
        ("good", "", {}, 422, "the body is empty"),
        ("good", "2021-02-30", {}, 422, "invalid date `2021-02-30`"),
        ("good", '"x"', {"ttl": "5 minutes"}, 422, "header `ttl`: invalid ISO-8601 duration"),
        # Found by tests/api/test_openapi.py: a 500 on PostgreSQL, and on reading the value back.
        ("good", '"a\\u0000b"', {}, 422, "the value must not contain NUL characters"),
        ("good", "[1e999]", {}, 422, "a number of the value is out of range"),
    ],
)
def test_bad_input_gets_a_4xx_with_a_message_and_stores_nothing(
    api: Api, key: str, body: str, headers: dict[str, str], status: int, message: str
) -> None:
    # when
    response = _put(api, "company.team", key, body, **headers)
    # then
    assert response.status_code == status, response.content
    assert message in response.json()["message"]
    assert _rows() == []


def test_an_invalid_namespace_is_refused(api: Api) -> None:
    response = _put(api, "company..team", "key", '"x"')
    assert response.status_code == 422
    assert "invalid namespace `company..team`" in response.json()["message"]
    assert _rows() == []


def test_viewer_reads_but_cannot_write(api: Api, make_api: MakeApi) -> None:
    # given
    _put(api, "company.team", "key", '"value"')
    viewer = make_api("VIEWER")
    # when
    read = viewer.get("namespaces/company.team/kv/key")
    written = _put(viewer, "company.team", "key", '"changed"')
    deleted = viewer.delete("namespaces/company.team/kv/key")
    # then
    assert read.json() == {"type": "STRING", "value": "value"}
    assert (written.status_code, deleted.status_code) == (403, 403)
    assert _rows() == [("company.team", "key", "value", "STRING")]


def test_restricted_user_reads_and_writes_only_its_namespaces(api: Api, make_api: MakeApi) -> None:
    # given
    _put(api, "company", "parent-key", '"p"')
    _put(api, "finance", "budget", "100")
    restricted = make_api("RESTRICTED", namespaces=["company.team"])
    # when
    own = _put(restricted, "company.team.sub", "mine", '"m"')
    elsewhere = _put(restricted, "finance", "budget", "0")
    read_elsewhere = restricted.get("namespaces/finance/kv/budget")
    list_elsewhere = restricted.get("namespaces/finance/kv")
    inherited = restricted.get("namespaces/company.team.sub/kv/inheritance")
    # then
    assert own.status_code == 200
    assert (elsewhere.status_code, read_elsewhere.status_code, list_elsewhere.status_code) == (404, 404, 404)
    assert [level["namespace"] for level in inherited.json()] == ["company.team.sub", "company.team"]
    assert _rows() == [
        ("company", "parent-key", "p", "STRING"),
        ("company.team.sub", "mine", "m", "STRING"),
        ("finance", "budget", 100, "NUMBER"),
    ]
