"""The Django side of the API latency benchmark, run in the benchmark's environment; prints JSON.

    python bench/api_setup.py prepare                 # tenant, user with an ADMIN role, API token
    python bench/api_setup.py sql EXECUTION_ID        # SQL statements of one request of each endpoint

Started by `bench/api_latency.py` in a subprocess whose environment selects the database and the
broker (settings are read at import). Data is built through the services, as the tests do.
`sql` sends one request of each endpoint through Django's test client in this process, with a
wrapper on the database connection: it counts the statements and the time spent waiting for them
(the views run exactly as under gunicorn, minus the HTTP server).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository, for `orchestrator` and `flows`
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from flows.models import Role  # noqa: E402
from flows.services.access import create_token, grant  # noqa: E402
from flows.services.flows import ensure_tenant  # noqa: E402

USERNAME = "bench-api"


def prepare(tenant: str) -> dict[str, Any]:
    """The tenant, a user with the ADMIN role in it, and an API token for that user."""
    ensure_tenant(tenant)
    user = User.objects.create_user(USERNAME, password=None)
    grant(user, tenant, Role.ADMIN)
    _, token = create_token(user, "bench")
    return {"token": token, "username": USERNAME}


class _Statements:
    """An `execute_wrapper`: every statement of the connection, with the time it took."""

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self.texts: Counter[str] = Counter()

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - started
            self.count += 1
            self.texts[sql] += 1


def _measure(send: Callable[[], Any]) -> dict[str, Any]:
    statements = _Statements()
    started = time.perf_counter()
    with connection.execute_wrapper(statements):
        response = send()
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"status {response.status_code}: {response.content[:300]!r}")
    return {
        "statements": statements.count,
        "sql_seconds": statements.seconds,
        "seconds": elapsed,
        "texts": dict(statements.texts.most_common()),
        "id": response.json()["id"],
    }


def sql_per_request(
    tenant: str, namespace: str, flow_id: str, execution_id: str, token: str
) -> dict[str, Any]:
    """Statements of a warm request of each endpoint (the third of three: caches filled)."""
    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_HOST="127.0.0.1")
    results: dict[str, Any] = {}
    for _ in range(3):
        results["get"] = _measure(lambda: client.get(f"/api/v1/{tenant}/executions/{execution_id}"))
        results["start"] = _measure(lambda: client.post(f"/api/v1/{tenant}/executions/{namespace}/{flow_id}"))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["prepare", "sql"])
    parser.add_argument("execution_id", nargs="?")
    parser.add_argument("--tenant", default="main")
    parser.add_argument("--namespace", default="bench")
    parser.add_argument("--flow-id", default="api_latency")
    parser.add_argument("--token", default="")
    args = parser.parse_args()
    if args.action == "prepare":
        result = prepare(args.tenant)
    else:
        if not args.execution_id:
            parser.error("sql needs an EXECUTION_ID")
        result = sql_per_request(args.tenant, args.namespace, args.flow_id, args.execution_id, args.token)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
