"""Fixtures that run the airegistry server under a real uvicorn on 127.0.0.1, port 0.

Reusable by other server tests: ``start_server(app)`` is a context manager yielding the
base URL; ``server`` is a running app over a fresh ObjectStore with one access key;
``client_factory`` builds real boto3 clients pointed at it.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import uvicorn
from botocore.config import Config

from airegistry.server.app import ServerOptions, ServerServices, create_app
from airegistry.server.auth import AuthConfig
from airegistry.storage.objects import ObjectStore

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"


@contextlib.contextmanager
def start_server(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a daemon thread; yield ``http://127.0.0.1:<port>``."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                            lifespan="on", access_log=False, timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    # Wait for startup (no wall-clock assertion: a bounded join-like wait).
    for _ in range(2000):
        if server.started or not thread.is_alive():
            break
        threading.Event().wait(0.01)
    if not server.started:
        raise RuntimeError("uvicorn did not start")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@dataclass
class RunningServer:
    url: str
    port: int
    app: Any
    objects: ObjectStore
    access_key: str
    secret_key: str
    home: Path

    def client(self, service: str, *, addressing_style: str = "path", host: str | None = None,
               access_key: str | None = None, secret_key: str | None = None,
               **config: Any) -> Any:
        endpoint = self.url if host is None else f"http://{host}:{self.port}"
        s3_cfg = {"addressing_style": addressing_style}
        cfg = Config(s3=s3_cfg, retries={"max_attempts": 1, "mode": "standard"},
                     connect_timeout=10, read_timeout=60, **config)
        return boto3.client(
            service, endpoint_url=endpoint, region_name=REGION,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key, config=cfg,
        )


def make_services(root: Path) -> ServerServices:
    return ServerServices(objects=ObjectStore(root / "objects"), account_id=ACCOUNT_ID,
                          region=REGION)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    home = tmp_path_factory.mktemp("server-home")
    services = make_services(home)
    key, secret = "AKIDTESTSERVER000001", "test-secret-0123456789abcdefghijklmnopqrs"
    auth = AuthConfig(keys={key: secret})
    app = create_app(services, auth=auth,
                     options=ServerOptions(max_object_size=64 * 1024 * 1024,
                                           max_api_body=1024 * 1024))
    with start_server(app) as url:
        port = int(url.rsplit(":", 1)[1])
        yield RunningServer(url, port, app, services.objects, key, secret, home)


@pytest.fixture
def s3(server: RunningServer) -> Any:
    return server.client("s3")


@pytest.fixture
def bucket(s3: Any, request: pytest.FixtureRequest) -> str:
    """A fresh bucket per test (names derived from the test, so no sharing)."""
    import hashlib

    name = "t-" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:20]
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def localhost_subdomains(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolve ``*.localhost`` to 127.0.0.1 in this process (virtual-host addressing)."""
    real = socket.getaddrinfo

    def fake(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)


@pytest.fixture
def access_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="airegistry.server.access")
    return caplog


ClientFactory = Callable[..., Any]
