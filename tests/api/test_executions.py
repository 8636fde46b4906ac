"""/api/v1/{tenant}/executions and /logs: start, wait, read, search and act on executions."""

from __future__ import annotations

import pytest

from tests.fixtures.api import Api, MakeApi
from tests.fixtures.executions import finished, wait_execution
from tests.fixtures.waiting import wait_until

pytestmark = pytest.mark.usefixtures("worker", "transactional_db")

GREET = """
    id: greet
    namespace: company.team
    inputs:
      - {id: name, type: STRING}
      - {id: count, type: INT, defaults: 1}
      - {id: doc, type: FILE, required: false}
    outputs:
      - {id: greeting, type: STRING, value: "{{ outputs.hello.value }}"}
    tasks:
      - id: hello
        type: io.kestra.plugin.core.debug.Return
        format: "hello {{ inputs.name }} x{{ inputs.count }}"
      - id: log
        type: io.kestra.plugin.core.log.Log
        message: "{{ inputs.doc is defined and inputs.doc is not none ? read(inputs.doc) : 'no file' }}"
"""


def _executions(tenant: str = "main") -> list[str]:
    from flows.models import Execution

    return list(Execution.objects.filter(tenant_id=tenant).values_list("state", flat=True))


def test_start_with_wait_answers_the_ended_execution_with_its_outputs(api: Api) -> None:
    # given
    api.post_yaml("flows", GREET)
    # when
    response = api.post(
        "executions/company.team/greet?wait=true&labels=team:data", {"name": "ada", "count": "3"}
    )
    # then
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["state"]["current"] == "SUCCESS"
    assert body["outputs"] == {"greeting": "hello ada x3"}
    assert body["inputs"]["count"] == 3
    assert {"key": "team", "value": "data"} in body["labels"]
    assert [run["taskId"] for run in body["taskRunList"]] == ["hello", "log"]


def test_a_file_part_becomes_a_file_input(api: Api, tmp_path: object) -> None:
    # given
    import io

    api.post_yaml("flows", GREET)
    upload = io.BytesIO(b"file content from the client")
    upload.name = "../../etc/notes.txt"  # a client-chosen name never becomes a path
    # when
    response = api.post("executions/company.team/greet?wait=true", {"name": "ada", "doc": upload})
    # then
    body = response.json()
    assert body["state"]["current"] == "SUCCESS"
    assert body["inputs"]["doc"].startswith("kestra:///company/team/greet/executions/")
    assert body["inputs"]["doc"].endswith("/notes.txt")
    logs = api.get(f"logs/{body['id']}", taskId="log").json()
    assert [entry["message"] for entry in logs] == ["file content from the client"]
    download = api.client.get(api.url(f"executions/{body['id']}/file"), {"path": body["inputs"]["doc"]})
    assert download.status_code == 200
    assert b"".join(download.streaming_content) == b"file content from the client"


def test_a_wrong_input_gets_422_and_starts_nothing(api: Api) -> None:
    # given
    api.post_yaml("flows", GREET)
    # when
    missing = api.post("executions/company.team/greet", {})
    wrong = api.post("executions/company.team/greet", {"name": "ada", "count": "three"})
    unknown = api.post("executions/company.team/nope", {"name": "ada"})
    # then
    assert missing.status_code == 422
    assert "name" in missing.json()["message"]
    assert wrong.status_code == 422
    assert "count" in wrong.json()["message"]
    assert unknown.status_code == 404
    assert _executions() == []


def test_expression_in_an_input_is_data_not_code(api: Api) -> None:
    # given
    api.post_yaml("flows", GREET)
    # when
    body = api.post("executions/company.team/greet?wait=true", {"name": "{{ 7 * 7 }}"}).json()
    # then
    assert body["outputs"] == {"greeting": "hello {{ 7 * 7 }} x1"}


def test_get_search_and_logs(api: Api, api_other: Api) -> None:
    # given: one execution in each tenant
    api.post_yaml("flows", GREET)
    api_other.post_yaml("flows", GREET)
    mine = api.post("executions/company.team/greet?wait=true", {"name": "ada"}).json()
    theirs = api_other.post("executions/company.team/greet?wait=true", {"name": "bob"}).json()
    # when
    got = api.get(f"executions/{mine['id']}")
    search = api.get("executions/search", namespace="company", state="SUCCESS")
    by_flow = api.get("executions/search", flowId="greet", labels="nope:x")
    logs = api.get(f"logs/{mine['id']}", minLevel="INFO")
    text = api.client.get(api.url(f"logs/{mine['id']}/download"))
    # then
    assert got.status_code == 200
    assert got.json()["taskRunList"][0]["outputs"] == {"value": "hello ada x1"}
    assert [row["id"] for row in search.json()["results"]] == [mine["id"]]
    assert search.json()["total"] == 1
    assert by_flow.json() == {"results": [], "total": 0}
    assert [entry["message"] for entry in logs.json()] == ["no file"]
    assert b"no file" in b"".join(text.streaming_content)
    # and the other tenant's execution does not exist for `main`
    assert api.get(f"executions/{theirs['id']}").status_code == 404
    assert api.get(f"logs/{theirs['id']}").status_code == 404
    assert api.client.get(f"/api/v1/other/executions/{theirs['id']}").status_code == 403


def test_search_rejects_unknown_states_and_bad_dates(api: Api) -> None:
    assert api.get("executions/search", state="DONE").status_code == 400
    bad_date = api.get("executions/search", startDate="yesterday")
    assert bad_date.status_code == 400
    assert "startDate" in bad_date.json()["message"]


SLOW = """
    id: slow
    namespace: company.team
    tasks:
      - id: wait
        type: io.kestra.plugin.core.flow.Pause
      - id: after
        type: io.kestra.plugin.core.debug.Return
        format: resumed
"""


def test_kill_a_paused_execution(api: Api) -> None:
    # given
    api.post_yaml("flows", SLOW)
    execution_id = api.post("executions/company.team/slow").json()["id"]
    wait_execution(execution_id, "PAUSED")
    # when
    response = api.delete(f"executions/{execution_id}/actions/kill")
    # then
    assert response.status_code == 202
    assert finished(execution_id).state == "KILLED"


def test_resume_a_paused_execution(api: Api) -> None:
    # given
    api.post_yaml("flows", SLOW)
    execution_id = api.post("executions/company.team/slow").json()["id"]
    wait_execution(execution_id, "PAUSED")
    # when
    response = api.post(f"executions/{execution_id}/actions/resume")
    # then
    assert response.status_code == 204
    done = finished(execution_id)
    assert done.state == "SUCCESS"
    assert done.run("after")["outputs"] == {"value": "resumed"}


FAILING = """
    id: failing
    namespace: company.team
    tasks:
      - {id: first, type: io.kestra.plugin.core.debug.Return, format: one}
      - {id: boom, type: io.kestra.plugin.core.execution.Fail}
"""


def test_restart_replay_and_change_status(api: Api) -> None:
    # given
    api.post_yaml("flows", FAILING)
    failed = api.post("executions/company.team/failing?wait=true").json()
    assert failed["state"]["current"] == "FAILED"
    boom = next(run for run in failed["taskRunList"] if run["taskId"] == "boom")
    # when
    replay = api.post(f"executions/{failed['id']}/actions/replay?taskRunId={boom['id']}")
    changed = api.post(
        f"executions/{failed['id']}/actions/change-status?taskRunId={boom['id']}&status=SUCCESS"
    )
    # then
    assert replay.status_code == 200
    assert replay.json()["originalId"] == failed["id"]
    assert finished(replay.json()["id"]).state == "FAILED"
    assert changed.status_code == 200
    assert finished(failed["id"]).state == "SUCCESS"
    # when: restart of a successful execution is refused, nothing changes
    refused = api.post(f"executions/{failed['id']}/actions/restart")
    assert refused.status_code == 409
    assert finished(failed["id"]).state == "SUCCESS"


def test_pause_by_hand_and_delete(api: Api) -> None:
    # given
    api.post_yaml("flows", SLOW)
    execution_id = api.post("executions/company.team/slow").json()["id"]
    wait_execution(execution_id, "PAUSED")
    # when: a running (paused) execution cannot be deleted
    refused = api.delete(f"executions/{execution_id}")
    api.delete(f"executions/{execution_id}/actions/kill")
    finished(execution_id)
    deleted = api.delete(f"executions/{execution_id}")
    # then
    assert refused.status_code == 409
    assert deleted.status_code == 204
    assert api.get(f"executions/{execution_id}").status_code == 404
    from flows.models import LogEntry

    assert not LogEntry.objects.filter(execution_id=execution_id).exists()


def test_a_file_outside_the_execution_is_not_served(api: Api) -> None:
    # given
    api.post_yaml("flows", GREET)
    body = api.post("executions/company.team/greet?wait=true", {"name": "ada"}).json()
    # when
    other = api.client.get(
        api.url(f"executions/{body['id']}/file"), {"path": "kestra:///company/team/_files/x"}
    )
    traversal = api.client.get(
        api.url(f"executions/{body['id']}/file"),
        {"path": f"kestra:///company/team/greet/executions/{body['id']}/../../../../secret"},
    )
    # then
    assert other.status_code == 404
    assert traversal.status_code in (400, 404)


def test_viewer_cannot_start_or_kill(api: Api, make_api: MakeApi) -> None:
    api.post_yaml("flows", GREET)
    viewer = make_api("VIEWER")
    assert viewer.post("executions/company.team/greet", {"name": "x"}).status_code == 403
    assert _executions() == []


def test_wait_returns_only_once_the_outputs_are_committed(api: Api) -> None:
    # given
    api.post_yaml("flows", GREET)
    # when: many waits in a row (a race between the answer and the commit would show as missing outputs)
    bodies = [api.post("executions/company.team/greet?wait=true", {"name": str(n)}).json() for n in range(5)]
    # then
    assert [body["outputs"]["greeting"] for body in bodies] == [f"hello {n} x1" for n in range(5)]
    wait_until(lambda: len(_executions()) == 5)


def _events(response: object) -> list[tuple[str, dict]]:
    """(event, data) pairs of a Server-Sent Events answer, read to its end."""
    import json

    text = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields.get("event", "message"), json.loads(fields["data"])))
    return events


def test_follow_streams_the_execution_until_it_ends(api: Api) -> None:
    # given
    api.post_yaml("flows", SLOW)
    execution_id = api.post("executions/company.team/slow").json()["id"]
    wait_execution(execution_id, "PAUSED")
    api.post(f"executions/{execution_id}/actions/resume")
    # when
    response = api.client.get(api.url(f"executions/{execution_id}/follow"))
    # then
    assert response["Content-Type"] == "text/event-stream"
    events = _events(response)
    assert events[-1][0] == "end"
    assert events[-1][1]["state"]["current"] == "SUCCESS"
    assert all(data["id"] == execution_id for _, data in events)


def test_follow_logs_sends_every_entry_then_ends(api: Api) -> None:
    # given
    api.post_yaml("flows", GREET)
    execution_id = api.post("executions/company.team/greet", {"name": "ada"}).json()["id"]
    # when
    events = _events(api.client.get(api.url(f"logs/{execution_id}/follow")))
    # then
    streamed = [data["message"] for event, data in events if event == "message"]
    assert streamed[-1] == "no file"
    assert streamed == [entry["message"] for entry in api.get(f"logs/{execution_id}").json()]
    assert events[-1] == ("end", {"executionId": execution_id})


def test_eval_renders_in_the_execution_context_and_masks_secrets(api: Api) -> None:
    # given
    from tests.fixtures.modes import TEST_SECRET

    api.post_yaml("flows", GREET)
    execution_id = api.post("executions/company.team/greet?wait=true", {"name": "ada"}).json()["id"]
    # when
    ok = api.client.post(
        api.url(f"executions/{execution_id}/actions/eval"),
        "{{ outputs.hello.value | upper }} {{ inputs.name }}",
        content_type="text/plain",
    )
    secret = api.client.post(
        api.url(f"executions/{execution_id}/actions/eval"),
        "{{ secret('API_TOKEN') }}",
        content_type="text/plain",
    )
    broken = api.client.post(
        api.url(f"executions/{execution_id}/actions/eval"), "{{ nope.missing }}", content_type="text/plain"
    )
    sandboxed = api.client.post(
        api.url(f"executions/{execution_id}/actions/eval"),
        "{{ ''.__class__.__mro__ }}",
        content_type="text/plain",
    )
    # then
    assert ok.json() == {"result": "HELLO ADA X1 ada", "error": None, "stackTrace": None}
    assert TEST_SECRET not in secret.content.decode()
    assert secret.json()["result"] == "******"
    assert broken.json()["result"] is None
    assert "nope" in broken.json()["error"]
    assert sandboxed.json()["result"] is None


def test_bulk_kill_by_ids_and_by_query(api: Api, api_other: Api) -> None:
    # given: three paused executions, one of another tenant
    api.post_yaml("flows", SLOW)
    api_other.post_yaml("flows", SLOW)
    ids = [api.post("executions/company.team/slow").json()["id"] for _ in range(3)]
    theirs = api_other.post("executions/company.team/slow").json()["id"]
    for execution_id in [*ids, theirs]:
        wait_execution(execution_id, "PAUSED")
    # when
    foreign = api.client.delete(api.url("executions/kill/by-ids"), [ids[0], theirs], format="json")
    by_ids = api.client.delete(api.url("executions/kill/by-ids"), ids[:2], format="json")
    by_query = api.client.delete(api.url("executions/kill/by-query") + "?namespace=company&state=PAUSED")
    # then
    assert foreign.status_code == 404
    assert theirs in foreign.json()["message"]
    assert by_ids.json() == {"count": 2}
    assert by_query.json() == {"count": 1}
    assert [finished(execution_id).state for execution_id in ids] == ["KILLED"] * 3
    from flows.models import Execution

    assert Execution.objects.get(id=theirs).state == "PAUSED"
    api_other.delete(f"executions/{theirs}/actions/kill")


def test_schedule_date_holds_the_execution_until_then(api: Api) -> None:
    from datetime import UTC, datetime, timedelta

    from flows.services.variables import parse_iso

    # given
    api.post_yaml("flows", GREET)
    at = datetime.now(UTC) + timedelta(seconds=1)
    # when
    started = api.post(f"executions/company.team/greet?scheduleDate={at.isoformat()}", {"name": "later"})
    # then: answered CREATED, and run once its date has come
    assert started.status_code == 200
    assert started.json()["state"]["current"] == "CREATED"
    done = finished(started.json()["id"])
    assert done.state == "SUCCESS"
    running = next(item for item in done.data["state"]["histories"] if item["state"] == "RUNNING")
    assert parse_iso(running["date"]) >= at


def test_a_scheduled_execution_waits_and_can_be_killed_before_it_starts(api: Api) -> None:
    from flows.models import Timer

    # given
    api.post_yaml("flows", GREET)
    execution_id = api.post(
        "executions/company.team/greet?scheduleDate=2999-01-01T00:00:00Z", {"name": "never"}
    ).json()["id"]
    waiting = api.get(f"executions/{execution_id}").json()
    # when
    killed = api.delete(f"executions/{execution_id}/actions/kill")
    # then: it said why it waited; it ended KILLED with no task run, its timer gone
    assert waiting["state"]["current"] == "CREATED"
    assert waiting["scheduleDate"].startswith("2999-01-01T00:00:00")
    assert waiting["waitingReasons"] == [f"scheduled: starts at {waiting['scheduleDate']}"]
    assert killed.status_code == 202
    done = finished(execution_id)
    assert done.state == "KILLED"
    assert done.data["taskRunList"] == []
    assert not Timer.objects.filter(execution_id=execution_id).exists()


def test_a_bad_schedule_date_gets_400_and_starts_nothing(api: Api) -> None:
    # given
    api.post_yaml("flows", GREET)
    # when
    response = api.post("executions/company.team/greet?scheduleDate=tomorrow", {"name": "x"})
    # then
    assert response.status_code == 400
    assert response.json()["_embedded"]["errors"][0]["path"] == "scheduleDate"
    assert _executions() == []


def test_change_status_of_an_ended_execution(api: Api) -> None:
    # given
    api.post_yaml("flows", FAILING)
    failed = api.post("executions/company.team/failing?wait=true").json()
    # when
    running_state = api.post(f"executions/{failed['id']}/actions/change-status?status=RUNNING")
    changed = api.post(
        f"executions/{failed['id']}/actions/change-status", {"status": "WARNING"}, format="json"
    )
    # then: only ended states are allowed; the task runs keep theirs; a log line records it
    assert running_state.status_code == 409
    assert "SUCCESS, WARNING, FAILED, KILLED, CANCELLED" in running_state.json()["message"]
    assert changed.status_code == 200
    assert changed.json()["state"]["current"] == "WARNING"
    assert [h["state"] for h in changed.json()["state"]["histories"]][-2:] == ["FAILED", "WARNING"]
    assert {run["taskId"]: run["state"]["current"] for run in changed.json()["taskRunList"]}[
        "boom"
    ] == "FAILED"
    logs = api.get(f"logs/{failed['id']}").json()
    assert any("from FAILED to WARNING" in entry["message"] for entry in logs)


def test_change_status_of_a_running_execution_is_refused(api: Api) -> None:
    # given
    api.post_yaml("flows", SLOW)
    execution_id = api.post("executions/company.team/slow").json()["id"]
    wait_execution(execution_id, "PAUSED")
    # when
    response = api.post(f"executions/{execution_id}/actions/change-status?status=SUCCESS")
    # then
    assert response.status_code == 409
    assert api.get(f"executions/{execution_id}").json()["state"]["current"] == "PAUSED"


APPROVAL = """
    id: approval
    namespace: company.team
    inputs:
      - {id: name, type: STRING, defaults: nobody}
    tasks:
      - id: gate
        type: io.kestra.plugin.core.flow.Pause
        onResume:
          - {id: reason, type: STRING}
      - id: after
        type: io.kestra.plugin.core.debug.Return
        format: "{{ inputs.name }} / {{ outputs.gate.onResume.reason }}"
"""


def test_expressions_in_resume_and_replay_inputs_are_data_not_code(api: Api) -> None:
    # given
    api.post_yaml("flows", APPROVAL)
    execution_id = api.post("executions/company.team/approval").json()["id"]
    wait_execution(execution_id, "PAUSED")
    # when: resumed with an expression as the input value
    resumed = api.post(f"executions/{execution_id}/actions/resume", {"reason": "{{ 6 * 7 }}"})
    done = finished(execution_id)
    # then: rendered as text, never evaluated
    assert resumed.status_code == 204
    assert done.run("after")["outputs"] == {"value": "nobody / {{ 6 * 7 }}"}
    # when: replayed from the start with new inputs carrying expressions
    gate = done.run("gate")
    replay = api.post(
        f"executions/{execution_id}/actions/replay?taskRunId={gate['id']}", {"name": "{{ secret('X') }}"}
    )
    replayed = replay.json()["id"]
    wait_execution(replayed, "PAUSED")
    api.post(f"executions/{replayed}/actions/resume", {"reason": "{% raw %}x"})
    # then
    assert finished(replayed).run("after")["outputs"] == {"value": "{{ secret('X') }} / {% raw %}x"}


# Answers that were a 500 (or a 406), found with tests/api/test_openapi.py and the schema it reads.


@pytest.mark.parametrize("path", ["logs/search", "logs/{id}"])
def test_an_unknown_min_level_gets_400(api: Api, path: str) -> None:
    # given
    api.post_yaml("flows", GREET)
    execution_id = api.post("executions/company.team/greet?wait=true", {"name": "ada"}).json()["id"]
    # when
    response = api.get(path.format(id=execution_id), minLevel="LOUD")
    # then
    assert response.status_code == 400, response.content
    assert (
        response.json()["message"] == "`minLevel` must be one of TRACE, DEBUG, INFO, WARN, ERROR, got `LOUD`"
    )


@pytest.mark.parametrize("path", ["executions/search", "logs/search", "executions/kill/by-query"])
def test_a_date_with_any_utc_offset_is_read_in_utc(api: Api, path: str) -> None:
    # given: an offset PostgreSQL would refuse (beyond 15:59), and one that leaves years 1..9999 in UTC
    method = api.client.delete if path.endswith("by-query") else api.client.get
    # when
    far_offset = method(api.url(path) + "?startDate=2020-01-01T00:00:00-16:03")
    past_the_last_year = method(api.url(path) + "?startDate=9999-12-31T23:00:00-05:00")
    # then
    assert far_offset.status_code == 200, far_offset.content
    assert past_the_last_year.status_code == 400, past_the_last_year.content
    assert past_the_last_year.json()["message"].startswith("`startDate` must be an ISO-8601 date-time")


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("get", "executions/search?q=a%00b", None),
        ("get", "executions/a%00b", None),
        ("get", "logs/search?a%00b=1", None),
        ("post", "executions/restart/by-ids", ["ok", "a\x00b"]),
        ("post", "executions/company.team/greet", {"name": "a\x00b"}),
    ],
)
def test_a_nul_character_gets_422_and_changes_nothing(api: Api, method: str, path: str, data: object) -> None:
    # given: PostgreSQL refuses NUL in any text it is sent
    api.post_yaml("flows", GREET)
    # when
    send = getattr(api.client, method)
    if isinstance(data, list):
        response = send(api.url(path), data, format="json")
    else:
        response = send(api.url(path), data)
    # then
    assert response.status_code == 422, response.content
    assert "NUL" in response.json()["message"]
    assert _executions() == []


def test_follow_and_download_answer_clients_that_accept_only_their_media_type(api: Api) -> None:
    # given: an EventSource sends `Accept: text/event-stream`; it got a 406
    api.post_yaml("flows", GREET)
    execution_id = api.post("executions/company.team/greet?wait=true", {"name": "ada"}).json()["id"]
    # when
    follow = api.client.get(api.url(f"executions/{execution_id}/follow"), HTTP_ACCEPT="text/event-stream")
    logs = api.client.get(api.url(f"logs/{execution_id}/follow"), HTTP_ACCEPT="text/event-stream")
    text = api.client.get(api.url(f"logs/{execution_id}/download"), HTTP_ACCEPT="text/plain")
    missing = api.client.get(api.url("executions/nope/follow"), HTTP_ACCEPT="text/event-stream")
    # then
    assert _events(follow)[-1][1]["state"]["current"] == "SUCCESS"
    assert _events(logs)[-1] == ("end", {"executionId": execution_id})
    assert b"no file" in b"".join(text.streaming_content)
    assert (missing.status_code, missing["Content-Type"]) == (404, "application/json")
    assert missing.json()["message"] == "execution `nope` not found"


def test_search_pages_by_cursor_over_the_newest_first_order(api: Api, api_other: Api) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from flows.models import Execution

    # given: seven executions a second apart (and one in another tenant)
    api.post_yaml("flows", FAILING)
    api_other.post_yaml("flows", FAILING)
    api_other.post("executions/company.team/failing")
    ids = [api.post("executions/company.team/failing").json()["id"] for _ in range(7)]
    base = timezone.now() - timedelta(hours=1)
    for offset, execution_id in enumerate(ids):
        Execution.objects.filter(pk=execution_id).update(start_date=base + timedelta(seconds=offset))
    # when: pages of three, following nextCursor
    seen, pages, cursor = [], 0, None
    while True:
        params = {"size": 3, **({"after": cursor} if cursor else {})}
        page = api.get("executions/search", **params).json()
        seen += [execution["id"] for execution in page["results"]]
        pages += 1
        cursor = page.get("nextCursor")
        if cursor is None:
            break
    # then: every execution once, newest first; bad cursors are refused
    assert seen == list(reversed(ids))
    assert pages == 3
    assert page["total"] == 7
    assert api.get("executions/search", after="garbage").status_code == 400
    assert api.get("executions/search", after=cursor or "x", sort="id:asc").status_code == 400
    assert "nextCursor" not in api.get("executions/search", page=1, size=3).json()
