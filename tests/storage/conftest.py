"""Storage backends under test: a local folder, and moto's S3 server as a real HTTP endpoint."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from flows.storage import LocalStorage, Storage
from tests.fixtures.waiting import wait_until

# moto accepts any credentials; these only have to be consistent.
S3_KEYS = {"access_key": "baton-test-key", "secret_key": "baton-test-secret"}
S3_REGION = "us-east-1"


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    bucket: str

    def client(self) -> Any:
        """A plain boto3 client, to look at the bucket behind the storage's back."""
        import boto3

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.url,
            region_name=S3_REGION,
            aws_access_key_id=S3_KEYS["access_key"],
            aws_secret_access_key=S3_KEYS["secret_key"],
        )

    def override(self, prefix: str) -> dict[str, str]:
        """This bucket as a BATON_STORAGE_OVERRIDES value."""
        return {
            "type": "s3",
            "bucket": self.bucket,
            "region": S3_REGION,
            "endpointUrl": self.url,
            "accessKey": S3_KEYS["access_key"],
            "secretKey": S3_KEYS["secret_key"],
            "prefix": prefix,
        }


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # an HTTP error is still an answer
    except OSError:
        return False


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Endpoint]:
    """moto's S3 server in a subprocess on a free loopback port, with one bucket."""
    url = f"http://127.0.0.1:{_free_port()}"
    log = tmp_path_factory.mktemp("moto") / "server.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", url.rsplit(":", 1)[1]],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(
            lambda: process.poll() is not None or _answers(url), timeout=60, message="moto's S3 server"
        )
        if process.poll() is not None:
            raise RuntimeError(f"moto's S3 server exited ({process.returncode}): {log.read_text()}")
        endpoint = S3Endpoint(url=url, bucket="baton-test")
        endpoint.client().create_bucket(Bucket=endpoint.bucket)
        yield endpoint
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def make_s3_storage(endpoint: S3Endpoint, cache_dir: Path, prefix: str | None = None) -> Storage:
    from flows.storage.s3 import S3Storage

    return S3Storage(
        bucket=endpoint.bucket,
        region=S3_REGION,
        endpoint_url=endpoint.url,
        prefix=prefix if prefix is not None else f"test-{uuid.uuid4().hex[:12]}",
        cache_dir=cache_dir,
        **S3_KEYS,
    )


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """Each backend in turn; an S3 storage gets a fresh key prefix so tests never see each other."""
    if request.param == "local":
        return LocalStorage(tmp_path / "storage")
    return make_s3_storage(request.getfixturevalue("s3_endpoint"), tmp_path / "cache")
