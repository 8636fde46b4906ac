"""/api/v1/{tenant}/assets: declare, read, search and delete assets."""

from __future__ import annotations

import pytest

from tests.fixtures.api import Api, MakeApi

pytestmark = pytest.mark.django_db

TABLE = {
    "id": "warehouse.orders",
    "namespace": "company.team",
    "type": "io.kestra.plugin.ee.assets.Table",
    "displayName": "Orders",
    "metadata": {"database": "dwh", "rows": 12},
}


def test_create_get_replace_search_and_delete(api: Api, api_other: Api) -> None:
    # given: an asset of the same id in another tenant
    api_other.post("assets", {**TABLE, "displayName": "Theirs"}, format="json")
    # when
    created = api.post("assets", TABLE, format="json")
    replaced = api.post("assets", {**TABLE, "description": "all orders"}, format="json")
    got = api.get("assets/warehouse.orders")
    found = api.get("assets/search", q="order").json()
    deleted = api.delete("assets/warehouse.orders")
    # then
    assert created.status_code == 201
    assert created.json()["displayName"] == "Orders"
    assert replaced.status_code == 200
    assert got.json()["description"] == "all orders"
    assert got.json()["metadata"] == {"database": "dwh", "rows": 12}
    assert found["total"] == 1
    assert found["results"][0]["tenantId"] == "main"
    assert deleted.status_code == 204
    assert api.get("assets/warehouse.orders").status_code == 404
    assert api_other.get("assets/warehouse.orders").json()["displayName"] == "Theirs"


def test_a_yaml_body_declares_an_asset(api: Api) -> None:
    # when
    response = api.post_yaml(
        "assets",
        """
        id: s3://bucket/report.csv
        type: io.kestra.plugin.ee.assets.File
        metadata: {owner: data}
        """,
    )
    # then
    assert response.status_code == 201
    assert api.get("assets/s3://bucket/report.csv").json()["metadata"] == {"owner": "data"}


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"namespace": "company.team"}, "id"),
        ({"id": "../x"}, "id"),
        ({"id": "a", "metadata": [1]}, "metadata"),
        ({"id": "a", "namespace": "a..b"}, "namespace"),
        ({"id": "a", "colour": "red"}, "colour"),
    ],
)
def test_bad_input_gets_422_with_the_field_and_stores_nothing(api: Api, body: dict, path: str) -> None:
    from flows.models import Asset

    # when
    response = api.post("assets", body, format="json")
    # then
    assert response.status_code == 422
    assert response.json()["_embedded"]["errors"][0]["path"] == path
    assert not Asset.objects.exists()


def test_roles_viewers_read_restricted_users_stay_in_their_namespaces(api: Api, make_api: MakeApi) -> None:
    # given
    api.post("assets", TABLE, format="json")
    api.post("assets", {**TABLE, "id": "finance.ledger", "namespace": "finance"}, format="json")
    viewer = make_api("VIEWER")
    restricted = make_api("RESTRICTED", namespaces=["company"])
    # when
    viewer_write = viewer.post("assets", {"id": "x"}, format="json")
    restricted_list = restricted.get("assets/search").json()
    restricted_hidden = restricted.get("assets/finance.ledger")
    restricted_elsewhere = restricted.post("assets", {"id": "y", "namespace": "finance"}, format="json")
    restricted_delete = restricted.delete("assets/finance.ledger")
    # then
    assert viewer.get("assets/finance.ledger").status_code == 200
    assert viewer_write.status_code == 403
    assert [asset["id"] for asset in restricted_list["results"]] == ["warehouse.orders"]
    assert restricted_hidden.status_code == 404
    assert restricted_elsewhere.status_code == 404
    assert restricted_delete.status_code == 404
    assert api.get("assets/finance.ledger").status_code == 200


def test_anonymous_gets_401() -> None:
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/main/assets/search").status_code == 401
