"""/api/v1/{tenant}/executions/webhook/{namespace}/{flowId}/{key}: flows started by an HTTP call."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.fixtures.api import Api
from tests.fixtures.executions import finished

pytestmark = pytest.mark.usefixtures("worker", "transactional_db")

KEY = "4wjtkzwVGBM9yKnjm3yv8r"
HOOKED = f"""
    id: hooked
    namespace: company.team
    inputs:
      - {{id: who, type: STRING, defaults: nobody}}
    outputs:
      - {{id: said, type: STRING, value: "{{{{ outputs.say.value }}}}"}}
    tasks:
      - id: say
        type: io.kestra.plugin.core.debug.Return
        format: "{{{{ inputs.who }}}} {{{{ trigger.body.hello ?? '-' }}}} {{{{ trigger.parameters.p ?? '-' }}}}"
    triggers:
      - id: hook
        type: io.kestra.plugin.core.trigger.Webhook
        key: {KEY}
        inputs:
          who: "{{{{ trigger.headers['x-who'] ?? ['anonymous'] | first }}}}"
"""


def url(key: str = KEY, flow_id: str = "hooked", tenant: str = "main") -> str:
    return f"/api/v1/{tenant}/executions/webhook/company.team/{flow_id}/{key}"


def _count() -> int:
    from flows.models import Execution

    return Execution.objects.count()


def test_a_post_starts_the_flow_with_the_request_as_trigger_variables(api: Api) -> None:
    from flows.models import Execution

    # given
    api.post_yaml("flows", HOOKED)
    anonymous = APIClient()
    # when: no login, the key is the secret
    response = anonymous.post(
        url() + "?p=1", {"hello": "world"}, format="json", HTTP_X_WHO="alice", HTTP_AUTHORIZATION="Bearer x"
    )
    # then: the execution is stored before the answer
    assert response.status_code == 200
    body = response.json()
    assert Execution.objects.filter(pk=body["id"]).exists()
    assert body["trigger"]["id"] == "hook"
    assert body["trigger"]["type"] == "io.kestra.plugin.core.trigger.Webhook"
    variables = body["trigger"]["variables"]
    assert variables["body"] == {"hello": "world"}
    assert variables["parameters"] == {"p": ["1"]}
    assert variables["headers"]["x-who"] == ["alice"]
    assert "authorization" not in variables["headers"]  # never handed to the flow
    done = finished(body["id"])
    assert done.state == "SUCCESS"
    assert done.run("say")["outputs"] == {"value": 'alice world ["1"]'}


def test_get_and_put_with_a_form_body(api: Api) -> None:
    # given
    api.post_yaml("flows", HOOKED)
    anonymous = APIClient()
    # when
    got = anonymous.get(url(), {"p": "x"})
    put = anonymous.put(url(), "hello=form&x=1", content_type="application/x-www-form-urlencoded")
    # then
    assert got.status_code == 200
    assert got.json()["trigger"]["variables"]["body"] is None
    assert put.status_code == 200
    assert put.json()["trigger"]["variables"]["body"] == {"hello": "form", "x": "1"}
    assert finished(put.json()["id"]).run("say")["outputs"] == {"value": "anonymous form -"}


def test_wait_and_return_outputs_answer_the_flow_outputs(api: Api) -> None:
    # given
    api.post_yaml(
        "flows",
        HOOKED.replace("        key:", "        wait: true\n        returnOutputs: true\n        key:"),
    )
    # when
    response = APIClient().post(url(), {"hello": "sync"}, format="json")
    # then
    assert response.status_code == 200
    assert response.json() == {"said": "anonymous sync -"}


def test_conditions_decide_on_the_request_and_unwanted_calls_start_nothing(api: Api) -> None:
    # given
    api.post_yaml(
        "flows",
        HOOKED
        + """
        conditions:
          - type: io.kestra.plugin.core.condition.Expression
            expression: "{{ trigger.body.hello == 'world' }}"
    """,
    )
    anonymous = APIClient()
    # when
    unwanted = anonymous.post(url(), {"hello": "nope"}, format="json")
    wanted = anonymous.post(url(), {"hello": "world"}, format="json")
    # then
    assert unwanted.status_code == 204
    assert wanted.status_code == 200
    assert _count() == 1


def test_a_wrong_key_an_unknown_flow_or_tenant_answer_404_and_start_nothing(api: Api, api_other: Api) -> None:
    # given: the same flow in another tenant, with another key
    api.post_yaml("flows", HOOKED)
    api_other.post_yaml("flows", HOOKED.replace(KEY, "other-tenant-key-123"))
    anonymous = APIClient()
    # when
    answers = [
        anonymous.post(url(key="wrong"), {}, format="json"),
        anonymous.post(url(flow_id="missing"), {}, format="json"),
        anonymous.post(url(tenant="nowhere"), {}, format="json"),
        anonymous.post(url(key="other-tenant-key-123"), {}, format="json"),  # other's key on main
        anonymous.post(url(tenant="other"), {}, format="json"),  # main's key on other
    ]
    # then
    assert [answer.status_code for answer in answers] == [404] * 5
    assert "with this key" in answers[0].json()["message"]
    assert _count() == 0


def test_a_disabled_trigger_or_flow_answers_404(api: Api) -> None:
    # given
    api.post_yaml("flows", HOOKED.replace("        key:", "        disabled: true\n        key:"))
    # when
    response = APIClient().post(url(), {}, format="json")
    # then
    assert response.status_code == 404
    assert _count() == 0


def test_the_key_can_be_a_namespace_secret(api: Api) -> None:
    from flows.services.secrets import put_secret

    # given
    put_secret("main", "company.team", "HOOK_KEY", "from-the-secret-store")
    api.post_yaml("flows", HOOKED.replace(KEY, "\"{{ secret('HOOK_KEY') }}\""))
    anonymous = APIClient()
    # when
    literal = anonymous.post(url(key="{{ secret('HOOK_KEY') }}"), {}, format="json")
    right = anonymous.post(url(key="from-the-secret-store"), {}, format="json")
    # then
    assert literal.status_code == 404
    assert right.status_code == 200


def test_inputs_that_do_not_validate_answer_422_and_start_nothing(api: Api) -> None:
    # given: the trigger passes a header as an INT input
    api.post_yaml(
        "flows",
        HOOKED.replace("type: STRING, defaults: nobody", "type: INT, defaults: 1"),
    )
    # when
    response = APIClient().post(url(), {}, format="json", HTTP_X_WHO="not a number")
    # then
    assert response.status_code == 422
    assert _count() == 0


def test_a_webhook_trigger_without_key_is_an_invalid_flow(api: Api) -> None:
    # when
    response = api.post_yaml(
        "flows",
        """
        id: nokey
        namespace: company.team
        tasks: [{id: a, type: io.kestra.plugin.core.log.Log, message: hi}]
        triggers:
          - {id: hook, type: io.kestra.plugin.core.trigger.Webhook}
        """,
    )
    # then
    assert response.status_code == 422
    error = response.json()["_embedded"]["errors"][0]
    assert error["path"] == "triggers[0].key"
    assert error["line"] == 6
