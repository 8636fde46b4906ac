"""`credential()` in a running flow: the tenant's credential gives an access token, fetched once and
cached across tasks, masked in logs and outputs like a secret."""

from __future__ import annotations

from collections.abc import Callable

from tests.fixtures.executions import Finished
from tests.fixtures.oauth import CLIENT_SECRET, TokenServer, client_credentials, create

RunFlow = Callable[..., Finished]

FLOW = """
    id: uses_a_credential
    namespace: company.team
    tasks:
      - {id: say, type: io.kestra.plugin.core.log.Log, message: "Authorization: Bearer {{ credential('partner') }}"}
      - {id: give, type: io.kestra.plugin.core.debug.Return, format: "{{ credential('partner') }}"}
"""


def test_a_flow_gets_a_cached_token_masked_in_logs_and_outputs(
    run_flow: RunFlow,
    token_server: TokenServer,
) -> None:
    # given
    create("main", client_credentials(token_server, "partner", scope="orders"))
    # when
    done = run_flow(FLOW)
    # then
    assert done.state == "SUCCESS", done.logs
    assert done.messages("say") == ["Authorization: Bearer ******"]
    assert done.run("give")["outputs"] == {"value": "******"}
    assert len(token_server.requests) == 1  # the second task used the cached token
    [token] = token_server.issued
    text = str(done.data) + str(done.logs)
    assert token not in text and CLIENT_SECRET not in text


def test_another_tenants_credential_is_not_found(
    run_flow: RunFlow,
    token_server: TokenServer,
) -> None:
    # given: the credential exists in tenant `other` only
    create("other", client_credentials(token_server, "partner"))
    # when
    done = run_flow(FLOW, tenant="main")
    # then
    assert done.state == "FAILED"
    assert any("no credential `partner`" in message for message in done.messages("say"))
    assert token_server.requests == []


def test_a_refusing_token_endpoint_fails_the_task_with_its_error(
    run_flow: RunFlow,
    token_server: TokenServer,
) -> None:
    # given: the endpoint knows another secret for this client
    create("main", client_credentials(token_server, "partner"))
    token_server.clients["baton-client"] = "the-real-secret"
    # when
    done = run_flow(FLOW)
    # then
    assert done.state == "FAILED"
    [message] = done.messages("say")
    assert "credential `partner`: the token endpoint" in message
    assert "refused with HTTP 401: invalid_client: unknown client `baton-client` or wrong secret" in message
    assert CLIENT_SECRET not in str(done.data) + str(done.logs)


def test_a_credential_limited_to_other_namespaces_fails_the_task(
    run_flow: RunFlow,
    token_server: TokenServer,
) -> None:
    # given
    create("main", client_credentials(token_server, "partner", namespaces=["finance"]))
    # when
    done = run_flow(FLOW)
    # then
    assert done.state == "FAILED"
    assert any("may not be used in namespace `company.team`" in message for message in done.messages("say"))
    assert token_server.requests == []
