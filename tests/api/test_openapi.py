"""Schemathesis against the OpenAPI schema the API serves (/api/v1/schema), over a real HTTP server.

For every operation of the schema, Hypothesis generates requests from its description (valid ones,
and in negative mode invalid ones: wrong types, NUL bytes, huge integers, broken bodies) and sends
them as a superuser. Each answer must be no server error, have a status the schema declares, and a
body that matches the schema's shape for that status.

Path parameters are either generated or, half of the time, those of seeded data (tenant `main`, a
flow, an ended execution, a KV entry), so that reads and actions on ids reach real rows. Seeded
data that an operation deleted is put back before the next request.

The run is reproducible (fixed seed, derandomized) and bounded: MAX_EXAMPLES cases per operation
and phase, and the API's own waits (`?wait=true`, the SSE `follow` streams) cut to a second.

The schema is read from the application when the module is collected, so that each operation is a
test of its own; `test_live_server_serves_the_schema_the_test_uses` checks the live server serves
the same one. (schemathesis.pytest.from_fixture, which would read it from the live server, breaks
on pytest 9.2: it sets `Function._nodeid`, which no longer exists.)
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import hypothesis
import pytest
import schemathesis
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fixtures.api import PASSWORD
from tests.fixtures.executions import finished

# Operations of endpoints still being written by others, whose schema does not describe them yet
# (their bodies, parameters and answers): excluded until it does. By "METHOD /path", as
# schemathesis names them. Nothing else is excluded: the waits of
# `?wait=true` and of the SSE `follow` streams are cut to a second instead (see `seed`).
NOT_YET_DESCRIBED: list[str] = []

# Fixed, so that CI is reproducible; set BATON_OPENAPI_SEED / BATON_OPENAPI_EXAMPLES to hunt further.
SEED = int(os.environ.get("BATON_OPENAPI_SEED") or 20240611)
MAX_EXAMPLES = int(os.environ.get("BATON_OPENAPI_EXAMPLES") or 20)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
USERNAME = "oas-admin"

HELLO = """
    id: hello
    namespace: company.team
    tasks:
      - id: say
        type: io.kestra.plugin.core.log.Log
        message: hi
"""


@dataclass
class Seed:
    """The rows generated path parameters may point at, restored before each request."""

    tenant: str = "main"
    namespace: str = "company.team"
    flow_id: str = "hello"
    kv_key: str = "greeting"
    execution_id: str = ""

    def restore(self) -> None:
        """Put back what earlier requests deleted: the tenant, the flow, the KV entry, the execution."""
        from flows import services
        from flows.models import Execution, Flow
        from flows.services import kv

        services.ensure_tenant(self.tenant)
        if not Flow.objects.filter(
            tenant_id=self.tenant, namespace=self.namespace, flow_id=self.flow_id, deleted=False
        ).exists():
            services.save_flow_revision(self.tenant, textwrap.dedent(HELLO))
        if not any(entry.key == self.kv_key for entry in kv.live_entries(self.tenant, self.namespace)):
            kv.set_value(self.tenant, self.namespace, self.kv_key, "hello", value_type="STRING")
        if not Execution.objects.filter(id=self.execution_id, deleted=False).exists():
            execution = services.start_execution(
                tenant=self.tenant, namespace=self.namespace, flow_id=self.flow_id, inputs={}
            )
            self.execution_id = execution.id

    def path_values(self) -> dict[str, str]:
        """Seeded values by path parameter name."""
        return {
            "tenant": self.tenant,
            "tenant_id": self.tenant,
            "namespace": self.namespace,
            "flow_id": self.flow_id,
            "execution_id": self.execution_id,
            "key": self.kv_key,
        }


# The seed of the running test; read when Hypothesis draws path parameters (see `_seeded` below).
_current: list[Seed] = []


@pytest.fixture
def seed(worker: str, transactional_db: None, settings: Any) -> Iterator[Seed]:
    """A superuser, and tenant `main` with a flow, an ended execution of it and a KV entry."""
    from django.contrib.auth.models import User

    # `?wait=true` and the `follow` streams hold a request until an execution ends, at most this long.
    settings.BATON_API_WAIT_SECONDS = 1.0
    User.objects.create_superuser(USERNAME, f"{USERNAME}@example.com", PASSWORD)
    seed = Seed()
    seed.restore()
    finished(seed.execution_id)
    _current.append(seed)
    yield seed
    _current.remove(seed)


def _served_schema() -> Any:
    """The schema /api/v1/schema serves, fetched from the application at collection time (the test
    ids are its operations; the live server only starts when a test runs)."""
    from orchestrator.wsgi import application

    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "auth": {"basic": {"username": USERNAME, "password": PASSWORD}},
            "request-timeout": 30,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        }
    )
    loaded = schemathesis.openapi.from_wsgi("/api/v1/schema", application, config=config)
    loaded.app = None  # requests go over HTTP to the live server (`base_url`), not through WSGI
    return loaded


schema = _served_schema().exclude(name=NOT_YET_DESCRIBED)


@schema.hook("flatmap_path_parameters")
def _seeded(context: Any, path_parameters: dict[str, Any]) -> Any:
    """Half of the cases point at the seeded rows instead of generated names and ids."""

    def pick(use_seed: bool) -> dict[str, Any] | None:
        if not use_seed or not _current or not path_parameters:
            return path_parameters
        known = _current[-1].path_values()  # at draw time: a restored execution has a new id
        return {name: known.get(name, value) for name, value in path_parameters.items()}

    return st.booleans().map(pick)


@schema.parametrize()
# `seed` is set up once per operation: its rows are restored before each case instead.
@hypothesis.settings(suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture])
def test_api_answers_as_its_schema_says(case: Any, seed: Seed, live_server: Any) -> None:
    seed.restore()
    case.call_and_validate(base_url=live_server.url, checks=CHECKS)


def test_the_schema_is_valid_openapi() -> None:
    from drf_spectacular.validation import validate_schema

    validate_schema(schema.raw_schema)  # raises on a schema Swagger UI and client generators would reject


def test_live_server_serves_the_schema_the_test_uses(live_server: Any) -> None:
    # when
    served = schemathesis.openapi.from_url(f"{live_server.url}/api/v1/schema")
    # then
    assert served.raw_schema == schema.raw_schema
