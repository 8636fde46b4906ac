"""`secret()` in a running flow: stored namespace secrets first (nearest namespace wins, per tenant),
then the SECRET_<KEY> environment variables; either way the value is masked in logs and outputs."""

from __future__ import annotations

import base64
from collections.abc import Callable

from tests.fixtures.executions import Finished
from tests.fixtures.modes import TEST_SECRET

RunFlow = Callable[..., Finished]

FLOW = """
    id: stored_secrets
    namespace: company.team.sub
    tasks:
      - {id: say, type: io.kestra.plugin.core.log.Log, message: "token={{ secret('STORED_TOKEN') }}"}
      - {id: give, type: io.kestra.plugin.core.debug.Return, format: "{{ secret('STORED_TOKEN') }}"}
      - {id: env, type: io.kestra.plugin.core.log.Log, message: "env={{ secret('API_TOKEN') }}"}
"""


def test_a_flow_reads_a_stored_secret_from_its_parent_namespace_masked(run_flow: RunFlow) -> None:
    from flows.services import ensure_tenant
    from flows.services.secrets import put_secret

    # given: the secret in a parent namespace, a farther one with another value, another tenant's
    ensure_tenant("main")
    ensure_tenant("other")
    put_secret("main", "company", "STORED_TOKEN", "far-away-value")
    put_secret("main", "company.team", "STORED_TOKEN", "stored-secret-value")
    put_secret("other", "company.team", "STORED_TOKEN", "other-tenant-value")
    # when
    done = run_flow(FLOW)
    # then
    assert done.state == "SUCCESS", done.logs
    assert done.messages("say") == ["token=******"]
    assert done.run("give")["outputs"] == {"value": "******"}
    assert done.messages("env") == ["env=******"]  # SECRET_API_TOKEN still answers when nothing is stored
    text = str(done.data) + str(done.logs)
    for value in ("stored-secret-value", "far-away-value", "other-tenant-value", TEST_SECRET):
        assert value not in text
    assert base64.b64encode(b"stored-secret-value").decode() not in text


def test_a_stored_secret_is_used_only_in_its_tenant(run_flow: RunFlow) -> None:
    from flows.services import ensure_tenant
    from flows.services.secrets import put_secret

    # given: the secret stored in tenant `other` only
    ensure_tenant("other")
    put_secret("other", "company.team", "STORED_TOKEN", "other-tenant-value")
    # when
    done = run_flow(FLOW, tenant="main")
    # then
    assert done.state == "FAILED"
    assert any("Cannot find secret for key 'STORED_TOKEN'" in message for message in done.messages())
    assert "other-tenant-value" not in str(done.data) + str(done.logs)
