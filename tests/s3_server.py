"""A real S3-protocol server for the tests: moto's standalone server in its own process on 127.0.0.1.

As s3fs's own test suite does, the tests talk HTTP to ``moto.server`` (not to mocked calls). The server is
started on a free port, the fake credentials and the endpoint go into the environment (so subprocesses and
Dask workers started by a test reach the same server), and the server is stopped at teardown.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest

BUCKET = "jo-test"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto's S3 server exited with code {process.returncode} before it answered")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    raise RuntimeError(f"moto's S3 server did not answer at {url} within {timeout:.0f} s")


@contextlib.contextmanager
def moto_s3_server() -> Iterator[str]:
    """Run ``python -m moto.server`` on a free port of 127.0.0.1; yield its endpoint URL."""
    pytest.importorskip("moto.server")
    pytest.importorskip("flask")  # server mode needs it (the moto[server] extra)
    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_until_up(endpoint + "/", process)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a server that ignores SIGTERM
            process.kill()
            process.wait()


@contextlib.contextmanager
def s3_environment(endpoint: str) -> Iterator[None]:
    """Fake credentials and the endpoint in ``os.environ`` (botocore reads ``AWS_ENDPOINT_URL_S3``)."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in CREDENTIALS.items():
            mp.setenv(name, value)
        mp.setenv("AWS_ENDPOINT_URL_S3", endpoint)
        mp.setenv("AWS_ENDPOINT_URL", endpoint)
        for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            mp.delenv(name, raising=False)
        mp.setenv("AWS_CONFIG_FILE", os.devnull)  # no profile of the machine's user is read
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        yield


def boto3_client(endpoint: str):
    """A plain boto3 client on the server: the tests check what is really stored, not what our code says."""
    boto3 = pytest.importorskip("boto3")
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """One moto S3 server for the test session, with credentials and endpoint in the environment."""
    pytest.importorskip("s3fs")
    with moto_s3_server() as endpoint, s3_environment(endpoint):
        boto3_client(endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint


@pytest.fixture
def s3_url(s3_endpoint: str) -> Iterator[str]:
    """A fresh ``s3://`` prefix in the test bucket (each test its own), emptied at teardown."""
    prefix = f"cache-{uuid.uuid4().hex[:12]}"
    yield f"s3://{BUCKET}/{prefix}"
    client = boto3_client(s3_endpoint)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/"):
        for item in page.get("Contents", []):
            client.delete_object(Bucket=BUCKET, Key=item["Key"])
