"""A task's files go to the storage of its tenant and namespace (RunContext, read())."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from flows.services.runtime import ExpressionServicesImpl, LogWriter, Masker, RunContextImpl, TaskLogger
from flows.storage import namespace_root, storage_for
from flows.storage.s3 import S3Storage
from tests.storage.conftest import S3Endpoint


def _run_context(
    tmp_path: Path, *, tenant: str, namespace: str
) -> tuple[RunContextImpl, ExpressionServicesImpl]:
    masker = Masker()
    writer = LogWriter(
        tenant=tenant, namespace=namespace, flow_id="hello", execution_id="exec1", masker=masker
    )
    services = ExpressionServicesImpl(tenant=tenant, namespace=namespace, execution_id="exec1", masker=masker)
    ctx = RunContextImpl(
        tenant=tenant,
        namespace=namespace,
        flow_id="hello",
        execution_id="exec1",
        taskrun_id="run1",
        task_id="write",
        attempt=1,
        working_dir=tmp_path / "work",
        logger=TaskLogger(writer, taskrun_id="run1", task_id="write", attempt=1, min_level=None),
        variables={},
        services=services,
        deadline=None,
        is_killed=lambda: False,
    )
    return ctx, services


@pytest.fixture
def team_on_s3(settings: Any, tmp_path: Path, s3_endpoint: S3Endpoint) -> None:
    settings.BATON_STORAGE_DIR = tmp_path / "storage"
    settings.BATON_STORAGE_OVERRIDES = {"acme/company.team": s3_endpoint.override(prefix="runtime")}


def test_files_of_an_overridden_namespace_go_to_its_bucket(team_on_s3: None, tmp_path: Path) -> None:
    # given
    ctx, services = _run_context(tmp_path, tenant="acme", namespace="company.team")
    source = tmp_path / "report.csv"
    source.write_text("a,b\n1,2\n")
    # when
    uri = ctx.put_file(source)
    # then
    assert uri == "kestra:///company/team/hello/executions/exec1/tasks/write/run1/report.csv"
    assert isinstance(storage_for("acme", "company.team"), S3Storage)
    assert storage_for("acme", "company.team").read_bytes("acme", uri) == b"a,b\n1,2\n"
    assert storage_for("acme", "other").exists("acme", uri) is False
    assert ctx.get_file(uri).read_text() == "a,b\n1,2\n"
    assert services.read(uri) == "a,b\n1,2\n"


def test_another_namespace_reads_the_file_from_where_it_was_written(team_on_s3: None, tmp_path: Path) -> None:
    # given: a file of company.team (S3), handed to a subflow in `other` (local folder)
    uri = _run_context(tmp_path, tenant="acme", namespace="company.team")[0].put_file(
        _written(tmp_path / "in.txt", "from the parent")
    )
    child, child_services = _run_context(tmp_path, tenant="acme", namespace="other")
    # when / then
    assert child.get_file(uri).read_text() == "from the parent"
    assert child_services.read(uri) == "from the parent"


def test_namespace_files_are_read_from_the_local_folder(team_on_s3: None, tmp_path: Path) -> None:
    # given
    root = namespace_root("acme", "company.team")
    root.mkdir(parents=True)
    (root / "query.sql").write_text("select 1")
    ctx, services = _run_context(tmp_path, tenant="acme", namespace="company.team")
    # when / then
    assert ctx.namespace_files() == {"query.sql": root / "query.sql"}
    assert ctx.get_file("kestra:///company/team/_files/query.sql") == root / "query.sql"
    assert services.read("kestra:///company/team/_files/query.sql") == "select 1"
    assert services.read("query.sql") == "select 1"


def _written(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
