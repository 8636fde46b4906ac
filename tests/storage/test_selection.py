"""Which storage serves a tenant or namespace: instance default, BATON_STORAGE_OVERRIDES, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from flows.storage import (
    LocalStorage,
    check_configuration,
    get_storage,
    namespace_file,
    namespace_root,
    storage_for,
    storage_for_uri,
)
from flows.storage.s3 import S3Storage
from tests.storage.conftest import S3Endpoint

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def overrides(settings: Any, tmp_path: Path, s3_endpoint: S3Endpoint) -> dict[str, Path]:
    """acme -> folder `tenant`; acme/company -> folder `company`; acme/company.team -> S3."""
    folders = {
        "default": tmp_path / "default",
        "tenant": tmp_path / "tenant",
        "company": tmp_path / "company",
    }
    settings.BATON_STORAGE_DIR = folders["default"]
    settings.BATON_STORAGE_OVERRIDES = {
        "acme": {"type": "local", "dir": str(folders["tenant"])},
        "acme/company": {"type": "local", "dir": str(folders["company"])},
        "acme/company.team": s3_endpoint.override(prefix="overrides"),
    }
    return folders


def _where(storage: object) -> str:
    if isinstance(storage, S3Storage):
        return f"s3:{storage.prefix}"
    assert isinstance(storage, LocalStorage)
    return storage.root.name


def test_default_is_the_local_storage_folder(settings: Any, tmp_path: Path) -> None:
    # given
    settings.BATON_STORAGE_DIR = tmp_path / "storage"
    # when
    storage = get_storage()
    # then
    assert isinstance(storage, LocalStorage) and storage.root == tmp_path / "storage"
    assert storage_for("main", "company.team") is storage


@pytest.mark.parametrize(
    ("tenant", "namespace", "expected"),
    [
        ("acme", None, "tenant"),
        ("acme", "other", "tenant"),
        ("acme", "companyx", "tenant"),  # namespaces match by whole segments
        ("acme", "company", "company"),
        ("acme", "company.data", "company"),
        ("acme", "company.team", "s3:overrides/"),
        ("acme", "company.team.sub.deep", "s3:overrides/"),  # the longest match wins
        ("main", "company.team", "default"),
        ("main", None, "default"),
    ],
)
def test_overrides_apply_to_a_tenant_a_namespace_and_its_children(
    overrides: dict[str, Path], tenant: str, namespace: str | None, expected: str
) -> None:
    assert _where(storage_for(tenant, namespace)) == expected
    assert get_storage(tenant, namespace) is storage_for(tenant, namespace)


def test_instances_are_cached_per_config(overrides: dict[str, Path], settings: Any) -> None:
    # given
    before = storage_for("acme", "company.team")
    # when: another key with an equal config
    settings.BATON_STORAGE_OVERRIDES = {
        **settings.BATON_STORAGE_OVERRIDES,
        "beta/shared": settings.BATON_STORAGE_OVERRIDES["acme/company.team"],
    }
    # then
    assert storage_for("beta", "shared") is before
    assert storage_for("acme", "company.team") is before
    assert get_storage() is get_storage()


def test_a_uri_is_read_from_the_storage_of_its_namespace(overrides: dict[str, Path]) -> None:
    # given: a file written by an execution of acme/company.team.sub (on S3)
    uri = storage_for("acme", "company.team.sub").put_bytes(
        "acme", "company/team/sub/flow/executions/e1/tasks/t/r/out.txt", b"on s3"
    )
    # when: read by an execution of another namespace (a subflow in `other`, on the tenant folder)
    storage = storage_for_uri("acme", uri)
    # then
    assert _where(storage) == "s3:overrides/"
    assert storage.read_bytes("acme", uri) == b"on s3"
    assert storage_for("acme", "other").exists("acme", uri) is False


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("kestra:///company/team/flow/executions/e1/x.txt", "s3:overrides/"),
        ("kestra:///company/flow/executions/e1/tasks/t/r/_files/x.txt", "company"),
        ("kestra:///company/team/_files/lib/x.py", "s3:overrides/"),
        ("kestra:///company/_files/x.py", "company"),
        ("kestra:///unrelated/x.txt", "tenant"),
    ],
)
def test_the_namespace_of_a_uri_comes_from_its_key(
    overrides: dict[str, Path], uri: str, expected: str
) -> None:
    assert _where(storage_for_uri("acme", uri)) == expected


def test_namespace_files_stay_in_the_instance_folder(overrides: dict[str, Path]) -> None:
    # given
    root = namespace_root("acme", "company.team")
    (root / "lib").mkdir(parents=True)
    (root / "lib" / "x.py").write_text("print(1)")
    # when / then
    assert root == overrides["default"] / "acme" / "company" / "team" / "_files"
    assert namespace_file("acme", "kestra:///company/team/_files/lib/x.py") == root / "lib" / "x.py"
    assert namespace_file("acme", "kestra:///company/team/_files/lib/missing.py") is None
    assert namespace_file("acme", "kestra:///company/team/flow/executions/e/x.py") is None


def test_secrets_in_overrides_are_read_from_the_environment(
    settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, s3_endpoint: S3Endpoint
) -> None:
    # given
    config = s3_endpoint.override(prefix="from-env")
    monkeypatch.setenv("ACME_S3_KEY", config["accessKey"])
    secret_file = tmp_path / "secret"
    secret_file.write_text(config["secretKey"] + "\n")
    monkeypatch.setenv("ACME_S3_SECRET_FILE", str(secret_file))
    settings.BATON_STORAGE_OVERRIDES = {
        "acme": {**config, "accessKey": {"env": "ACME_S3_KEY"}, "secretKey": {"env": "ACME_S3_SECRET"}}
    }
    # when
    storage = storage_for("acme")
    storage.put_bytes("acme", "company/x.txt", b"signed with env credentials")
    # then
    assert storage.read_bytes("acme", "kestra:///company/x.txt") == b"signed with env credentials"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"BATON_STORAGE": "gcs"}, "BATON_STORAGE must be `local` or `s3`, got 'gcs'"),
        ({"BATON_STORAGE": "s3"}, r"BATON_STORAGE_S3_BUCKET \(BATON_STORAGE=s3\) must not be empty"),
        (
            {"BATON_STORAGE": "s3", "BATON_STORAGE_S3_BUCKET": "b", "BATON_STORAGE_S3_ACCESS_KEY": "k"},
            "BATON_STORAGE_S3_ACCESS_KEY .* and BATON_STORAGE_S3_SECRET_KEY .*: give both",
        ),
        (
            {
                "BATON_STORAGE": "s3",
                "BATON_STORAGE_S3_BUCKET": "b",
                "BATON_STORAGE_S3_ENDPOINT_URL": "minio:9000",
            },
            "BATON_STORAGE_S3_ENDPOINT_URL .* must start with http",
        ),
        (
            {"BATON_STORAGE_OVERRIDES": {"acme": {"type": "gcs"}}},
            r"\['acme'\]: `type` must be `local` or `s3`",
        ),
        ({"BATON_STORAGE_OVERRIDES": {"acme": "s3"}}, r"\['acme'\] must be an object with a `type`"),
        ({"BATON_STORAGE_OVERRIDES": {"acme": {"type": "s3"}}}, "`bucket` is required for type s3"),
        ({"BATON_STORAGE_OVERRIDES": {"acme": {"type": "local"}}}, "`dir` is required for type local"),
        (
            {"BATON_STORAGE_OVERRIDES": {"acme": {"type": "s3", "bucket": "b", "endpointURL": "x"}}},
            "unknown field.s. endpointURL; allowed: accessKey, bucket, endpointUrl",
        ),
        (
            {"BATON_STORAGE_OVERRIDES": {"acme": {"type": "s3", "bucket": "b", "secretKey": "s"}}},
            r"\['acme'\].accessKey and .*\['acme'\].secretKey: give both",
        ),
        (
            {"BATON_STORAGE_OVERRIDES": {"acme": {"type": "s3", "bucket": {"env": "BATON_TEST_UNSET"}}}},
            r"\['acme'\].bucket: environment variable BATON_TEST_UNSET is not set",
        ),
        (
            {"BATON_STORAGE_OVERRIDES": {"acme": {"type": "s3", "bucket": 3}}},
            r"\['acme'\].bucket must be a string or \{\"env\": \"VARIABLE\"\}",
        ),
        ({"BATON_STORAGE_OVERRIDES": {"acme/../x": {"type": "local", "dir": "/x"}}}, "must be `tenant` or"),
        ({"BATON_STORAGE_OVERRIDES": {"": {"type": "local", "dir": "/x"}}}, "must be `tenant` or"),
        ({"BATON_STORAGE_OVERRIDES": {"acme/": {"type": "local", "dir": "/x"}}}, "must be `tenant` or"),
    ],
)
def test_an_invalid_configuration_names_what_is_wrong(
    settings: Any, changes: dict[str, Any], message: str
) -> None:
    # given
    for name, value in changes.items():
        setattr(settings, name, value)
    # when / then
    with pytest.raises(ImproperlyConfigured, match=message):
        check_configuration()
    with pytest.raises(ImproperlyConfigured):
        get_storage()


def test_an_invalid_secret_never_appears_in_the_error(settings: Any) -> None:
    settings.BATON_STORAGE_OVERRIDES = {"acme": {"type": "s3", "bucket": "b", "secretKey": "hunter2-secret"}}
    with pytest.raises(ImproperlyConfigured) as raised:
        check_configuration()
    assert "hunter2-secret" not in str(raised.value)


def test_settings_refuse_an_unknown_storage_mode_at_startup() -> None:
    # given
    env = {**os.environ, "BATON_STORAGE": "gcs", "PYTHONPATH": str(ROOT)}
    # when
    result = subprocess.run(
        [sys.executable, "-c", "import orchestrator.settings"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # then
    assert result.returncode == 1
    assert "BATON_STORAGE must be `local` or `s3`, got 'gcs'" in result.stderr
