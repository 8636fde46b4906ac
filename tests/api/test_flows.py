"""/api/v1/{tenant}/flows: YAML in, Kestra's Flow JSON out; every tenant sees only its own flows."""

from __future__ import annotations

import textwrap

import pytest

from tests.fixtures.api import Api, MakeApi

HELLO = """
    id: hello
    namespace: company.team
    labels:
      env: prod
    tasks:
      - id: say
        type: io.kestra.plugin.core.log.Log
        message: hi
"""


def _flow_rows(tenant: str = "main") -> list[tuple[str, str, int, bool]]:
    from flows.models import Flow

    return list(
        Flow.objects.filter(tenant_id=tenant).values_list("namespace", "flow_id", "revision", "deleted")
    )


def test_create_answers_the_flow_with_its_source(api: Api) -> None:
    # when
    response = api.post_yaml("flows", HELLO)
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["id"], body["namespace"], body["revision"], body["tenantId"]) == (
        "hello",
        "company.team",
        1,
        "main",
    )
    assert body["labels"] == [{"key": "env", "value": "prod"}]
    assert body["tasks"][0]["type"] == "io.kestra.plugin.core.log.Log"
    assert body["source"] == textwrap.dedent(HELLO)
    assert (body["deleted"], body["disabled"]) == (False, False)


def test_invalid_flow_gets_422_with_line_and_path_and_stores_nothing(api: Api) -> None:
    # when
    response = api.post_yaml(
        "flows",
        """
        id: broken
        namespace: company.team
        tasks:
          - id: say
            type: io.kestra.plugin.core.log.Nope
        """,
    )
    # then
    assert response.status_code == 422
    body = response.json()
    error = body["_embedded"]["errors"][0]
    assert error["path"] == "tasks[0].type"
    assert error["line"] == 6
    assert "io.kestra.plugin.core.log.Nope" in body["message"]
    assert _flow_rows() == []


def test_malformed_yaml_gets_422_with_its_line(api: Api) -> None:
    response = api.post_yaml("flows", "id: x\nnamespace: a\ntasks: [\n")
    assert response.status_code == 422
    assert response.json()["_embedded"]["errors"][0]["line"] == 4
    assert _flow_rows() == []


def test_create_of_an_existing_flow_is_a_conflict_and_keeps_it(api: Api) -> None:
    # given
    api.post_yaml("flows", HELLO)
    # when
    response = api.post_yaml("flows", HELLO.replace("message: hi", "message: changed"))
    # then
    assert response.status_code == 409
    assert _flow_rows() == [("company.team", "hello", 1, False)]


def test_a_json_body_is_refused_with_415(api: Api) -> None:
    response = api.post("flows", {"id": "x"}, format="json")
    assert response.status_code == 415
    assert "application/x-yaml" in response.json()["message"]


def test_update_makes_a_revision_and_get_reads_any_revision(api: Api) -> None:
    # given
    api.post_yaml("flows", HELLO)
    # when
    updated = api.post_yaml("flows/company.team/hello", HELLO.replace("message: hi", "message: bye"), "put")
    # then
    assert updated.status_code == 200
    assert updated.json()["revision"] == 2
    current = api.get("flows/company.team/hello").json()
    assert (current["revision"], current["tasks"][0]["message"]) == (2, "bye")
    assert "source" not in current
    first = api.get("flows/company.team/hello", revision=1, source="true").json()
    assert (first["revision"], first["tasks"][0]["message"]) == (1, "hi")
    assert "message: hi" in first["source"]
    revisions = api.get("flows/company.team/hello/revisions").json()
    assert [revision["revision"] for revision in revisions] == [1, 2]


def test_update_with_another_id_than_the_path_is_refused(api: Api) -> None:
    api.post_yaml("flows", HELLO)
    response = api.post_yaml("flows/company.team/hello", HELLO.replace("id: hello", "id: other"), "put")
    assert response.status_code == 422
    assert _flow_rows() == [("company.team", "hello", 1, False)]


def test_delete_is_soft_and_hides_the_flow(api: Api) -> None:
    # given
    api.post_yaml("flows", HELLO)
    # when
    response = api.delete("flows/company.team/hello")
    # then
    assert response.status_code == 204
    assert api.get("flows/company.team/hello").status_code == 404
    assert api.get("flows/company.team/hello", allowDeleted="true").json()["deleted"] is True
    assert api.get("flows/search").json() == {"results": [], "total": 0}
    assert _flow_rows() == [("company.team", "hello", 1, True)]


def test_a_read_only_flow_refuses_edits_through_the_api(api: Api) -> None:
    # given
    read_only = HELLO.replace("env: prod", 'env: prod\n      system.readOnly: "true"')
    assert api.post_yaml("flows", read_only).status_code == 200
    # when
    updated = api.post_yaml(
        "flows/company.team/hello", read_only.replace("message: hi", "message: no"), "put"
    )
    deleted = api.delete("flows/company.team/hello")
    # then
    assert (updated.status_code, deleted.status_code) == (403, 403)
    assert "read-only" in updated.json()["message"]
    assert _flow_rows() == [("company.team", "hello", 1, False)]


def test_search_filters_sorts_and_pages(api: Api) -> None:
    # given
    for namespace, flow_id in [
        ("company.team", "b"),
        ("company.team", "a"),
        ("company.team.sub", "c"),
        ("other", "d"),
    ]:
        api.post_yaml(
            "flows", HELLO.replace("id: hello", f"id: {flow_id}").replace("company.team", namespace)
        )
    # when
    by_namespace = api.get("flows/search", namespace="company.team")
    page_two = api.get("flows/search", namespace="company.team", sort="id:desc", size=2, page=2)
    by_text = api.get("flows/search", q="d")
    by_label = api.get("flows/search", labels="env:prod", size=100)
    # then
    assert [flow["id"] for flow in by_namespace.json()["results"]] == ["a", "b", "c"]
    assert by_namespace.json()["total"] == 3
    assert [flow["id"] for flow in page_two.json()["results"]] == ["a"]
    assert [flow["id"] for flow in by_text.json()["results"]] == ["d"]
    assert by_label.json()["total"] == 4
    assert api.get("flows/distinct-namespaces").json() == ["company.team", "company.team.sub", "other"]
    assert [flow["id"] for flow in api.get("flows/company.team").json()] == ["a", "b"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"size": "x"}, "`size` must be an integer"),
        ({"page": "0"}, "`page` must be >= 1"),
        ({"sort": "nope:asc"}, "cannot sort by `nope`"),
    ],
)
def test_bad_search_parameters_get_400(api: Api, params: dict[str, str], message: str) -> None:
    response = api.get("flows/search", **params)
    assert response.status_code == 400
    assert message in response.json()["message"]


def test_validate_answers_one_result_per_document(api: Api) -> None:
    # when
    response = api.post_yaml(
        "flows/validate",
        HELLO + "---\nid: bad\nnamespace: company.team\ntasks:\n  - id: x\n    type: nope.Task\n",
    )
    # then
    assert response.status_code == 200
    good, bad = response.json()
    assert (good["index"], good["flow"], good["constraints"]) == (0, "hello", None)
    assert (bad["index"], bad["flow"], bad["namespace"]) == (1, "bad", "company.team")
    assert "nope.Task" in bad["constraints"]
    assert bad["errors"][0]["path"] == "tasks[0].type"
    assert bad["errors"][0]["line"] == 5
    assert _flow_rows() == []


def test_namespace_update_deploys_all_documents_and_deletes_the_others_on_request(api: Api) -> None:
    # given
    api.post_yaml("flows", HELLO.replace("id: hello", "id: old"))
    two = HELLO + "---\n" + textwrap.dedent(HELLO).replace("id: hello", "id: second")
    # when
    kept = api.post_yaml("flows/company.team", two)
    replaced = api.post_yaml("flows/company.team?delete=true", two)
    # then
    assert kept.status_code == 200
    assert [flow["id"] for flow in kept.json()] == ["hello", "second"]
    assert replaced.status_code == 200
    assert sorted(_flow_rows()) == [
        ("company.team", "hello", 1, False),
        ("company.team", "old", 1, True),
        ("company.team", "second", 1, False),
    ]


def test_namespace_update_with_one_invalid_document_changes_nothing(api: Api) -> None:
    # given
    api.post_yaml("flows", HELLO)
    documents = (
        HELLO.replace("message: hi", "message: new") + "---\nid: bad\nnamespace: company.team\ntasks: []\n"
    )
    # when
    response = api.post_yaml("flows/company.team?delete=true", documents)
    wrong_namespace = api.post_yaml("flows/company.other", HELLO)
    # then
    assert response.status_code == 422
    assert "index 1" in response.json()["message"]
    assert wrong_namespace.status_code == 422
    assert _flow_rows() == [("company.team", "hello", 1, False)]


def test_flows_of_another_tenant_are_invisible(api: Api, api_other: Api) -> None:
    # given: the same namespace and id in both tenants
    api.post_yaml("flows", HELLO)
    api_other.post_yaml("flows", HELLO.replace("message: hi", "message: other tenant"))
    # when
    mine = api.get("flows/company.team/hello").json()
    theirs = api_other.get("flows/company.team/hello").json()
    # then
    assert (mine["tasks"][0]["message"], theirs["tasks"][0]["message"]) == ("hi", "other tenant")
    assert api.get("flows/search").json()["total"] == 1
    # and a user of `other` cannot reach `main` at all
    other_in_main = api_other.client.get("/api/v1/main/flows/company.team/hello")
    assert other_in_main.status_code == 403
    assert api_other.client.delete("/api/v1/main/flows/company.team/hello").status_code == 403
    assert _flow_rows("main") == [("company.team", "hello", 1, False)]


def test_viewer_reads_but_cannot_write(api: Api, make_api: MakeApi) -> None:
    # given
    api.post_yaml("flows", HELLO)
    viewer = make_api("VIEWER")
    # when
    read = viewer.get("flows/company.team/hello")
    write = viewer.post_yaml("flows/company.team/hello", HELLO.replace("hi", "x"), "put")
    # then
    assert read.status_code == 200
    assert write.status_code == 403
    assert _flow_rows() == [("company.team", "hello", 1, False)]


def test_restricted_user_sees_and_writes_only_its_namespaces(api: Api, make_api: MakeApi) -> None:
    # given
    api.post_yaml("flows", HELLO)
    api.post_yaml("flows", HELLO.replace("company.team", "finance"))
    restricted = make_api("RESTRICTED", namespaces=["company"])
    # when / then
    assert [flow["namespace"] for flow in restricted.get("flows/search").json()["results"]] == [
        "company.team"
    ]
    assert restricted.get("flows/finance/hello").status_code == 404
    assert (
        restricted.post_yaml(
            "flows", HELLO.replace("company.team", "finance").replace("id: hello", "id: n")
        ).status_code
        == 404
    )
    assert restricted.post_yaml("flows", HELLO.replace("id: hello", "id: mine")).status_code == 200
    assert restricted.get("flows/distinct-namespaces").json() == ["company.team"]


def test_unknown_tenant_is_404(make_api: MakeApi) -> None:
    from django.contrib.auth.models import User
    from rest_framework.test import APIClient

    from tests.fixtures.api import basic

    User.objects.create_superuser("root", "root@example.com", "pw")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=basic("root", "pw"))
    response = client.get("/api/v1/nowhere/flows/search")
    assert response.status_code == 404
    assert response.json()["message"] == "tenant `nowhere` not found"


def test_graph_of_a_flow(api: Api, api_other: Api) -> None:
    api.post_yaml("flows", HELLO)
    graph = api.get("flows/company.team/hello/graph").json()
    assert [node["uid"] for node in graph["nodes"]] == ["root.root", "root.end", "root.say"]
    assert api_other.get("flows/company.team/hello/graph").status_code == 404


@pytest.mark.parametrize("path", ["graph", "revisions"])
def test_graph_and_revisions_are_read_only(api: Api, path: str) -> None:
    # given: they inherited the flow's PUT and DELETE (a PUT on /graph saved a revision), as the
    # generated OpenAPI schema showed
    api.post_yaml("flows", HELLO)
    # when
    put = api.post_yaml(f"flows/company.team/hello/{path}", HELLO.replace("hi", "changed"), method="put")
    delete = api.delete(f"flows/company.team/hello/{path}")
    # then
    assert (put.status_code, delete.status_code) == (405, 405)
    assert _flow_rows() == [("company.team", "hello", 1, False)]


def test_a_page_beyond_the_integer_range_gets_400(api: Api) -> None:
    # given: an OFFSET past 64 bits was a 500 on both databases
    api.post_yaml("flows", HELLO)
    # when
    response = api.get("flows/search", page="99999999999999999999")
    # then
    assert response.status_code == 400, response.content
    assert response.json()["message"] == "`page` must be <= 2147483647, got 99999999999999999999"
