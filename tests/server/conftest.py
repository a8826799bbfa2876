"""Fixtures that run the airegistry server under a real uvicorn on 127.0.0.1, port 0.

Reusable by other server tests: ``start_server(app)`` is a context manager yielding the
base URL; ``server`` is a running app over a fresh FileBlobStore with one access key;
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
from airegistry.storage.blobs.fs import FileBlobStore
from airegistry.storage.metadata import Database, S3ConfigRepository, migrate

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"


@contextlib.contextmanager
def start_server(app: Any, **uvicorn_options: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a daemon thread; yield ``http(s)://127.0.0.1:<port>``."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                            lifespan="on", access_log=False, timeout_graceful_shutdown=5,
                            **uvicorn_options)
    scheme = "https" if uvicorn_options.get("ssl_certfile") else "http"
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
        yield f"{scheme}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@dataclass
class RunningServer:
    url: str
    port: int
    app: Any
    objects: FileBlobStore
    access_key: str
    secret_key: str
    home: Path

    def client(self, service: str, *, addressing_style: str = "path", host: str | None = None,
               access_key: str | None = None, secret_key: str | None = None,
               **config: Any) -> Any:
        scheme = self.url.split("://", 1)[0]
        endpoint = self.url if host is None else f"{scheme}://{host}:{self.port}"
        s3_cfg = {"addressing_style": addressing_style}
        cfg = Config(s3=s3_cfg, retries={"max_attempts": 1, "mode": "standard"},
                     connect_timeout=10, read_timeout=60, **config)
        return boto3.client(
            service, endpoint_url=endpoint, region_name=REGION,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key, config=cfg,
            verify=False if scheme == "https" else None,
        )


def make_configs(root: Path) -> S3ConfigRepository:
    """A migrated SQLite metadata store under ``root`` for the S3 configuration documents."""
    (root / "metadata").mkdir(exist_ok=True)
    db = Database(f"sqlite:///{root / 'metadata' / 'registry.db'}")
    migrate(db)
    return S3ConfigRepository(db)


def make_services(root: Path) -> ServerServices:
    return ServerServices(objects=FileBlobStore(root / "objects"), account_id=ACCOUNT_ID,
                          region=REGION, s3_configs=make_configs(root))


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


# -- hand-built signed requests (for what boto3 never sends: signed aws-chunked bodies,
#    malformed bodies, stale dates) -----------------------------------------------------


def sign_headers(server: RunningServer, method: str, path: str, *, headers: dict[str, str],
                 payload_hash: str, service: str = "s3", query: str = "",
                 when: Any = None, access_key: str | None = None,
                 secret_key: str | None = None) -> dict[str, str]:
    """Sign with botocore's SigV4Auth (independent of the server's verifier)."""
    import datetime as dt

    from botocore.auth import S3SigV4Auth, SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    class _S3Signer(S3SigV4Auth):
        """botocore's S3 signer (raw path, no double encoding) with a chosen payload hash."""

        def payload(self, request: Any) -> str:
            return payload_hash

    url = f"{server.url}{path}" + (f"?{query}" if query else "")
    hdrs = dict(headers)
    hdrs["X-Amz-Content-SHA256"] = payload_hash
    req = AWSRequest(method=method, url=url, headers=hdrs)
    creds = Credentials(access_key or server.access_key, secret_key or server.secret_key)
    signer = _S3Signer(creds, service, REGION) if service == "s3" else SigV4Auth(
        creds, service, REGION)
    if when is not None:
        import unittest.mock as mock

        fixed = when if isinstance(when, dt.datetime) else dt.datetime.fromisoformat(when)
        with mock.patch("botocore.auth.get_current_datetime", return_value=fixed):
            signer.add_auth(req)
    else:
        signer.add_auth(req)
    return dict(req.headers.items())


def seed_signature(signed: dict[str, str]) -> str:
    return signed["Authorization"].rsplit("Signature=", 1)[1]


def signing_key(secret: str, amz_date: str, service: str = "s3") -> bytes:
    import hashlib
    import hmac

    def h(k: bytes, m: str) -> bytes:
        return hmac.new(k, m.encode(), hashlib.sha256).digest()

    return h(h(h(h(("AWS4" + secret).encode(), amz_date[:8]), REGION), service), "aws4_request")


def encode_signed_chunks(data: bytes, *, chunk_size: int, key: bytes, amz_date: str,
                         seed: str, trailer: tuple[str, str] | None = None) -> bytes:
    """Encode ``data`` as STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER] (test-side encoder)."""
    import hashlib
    import hmac

    scope = f"{amz_date[:8]}/{REGION}/s3/aws4_request"
    empty = hashlib.sha256(b"").hexdigest()
    prev = seed
    out = bytearray()
    pieces = [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]
    for piece in pieces:
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, prev, empty,
                         hashlib.sha256(piece).hexdigest()])
        prev = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        out += f"{len(piece):x};chunk-signature={prev}\r\n".encode() + piece
        if piece:
            out += b"\r\n"
    if trailer is None:
        out += b"\r\n"
    else:
        name, value = trailer
        canon = f"{name}:{value}\n"
        sts = "\n".join(["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, prev,
                         hashlib.sha256(canon.encode()).hexdigest()])
        tsig = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        out += f"{name}:{value}\r\nx-amz-trailer-signature:{tsig}\r\n\r\n".encode()
    return bytes(out)


def encode_unsigned_chunks(data: bytes, *, chunk_size: int,
                           trailer: tuple[str, str] | None) -> bytes:
    out = bytearray()
    for i in range(0, len(data), chunk_size):
        piece = data[i:i + chunk_size]
        out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    out += b"0\r\n"
    if trailer is not None:
        out += f"{trailer[0]}:{trailer[1]}\r\n".encode()
    out += b"\r\n"
    return bytes(out)


def raw_http(url: str, request: bytes, *, timeout: float = 30.0) -> tuple[int, bytes]:
    """Send raw bytes on a fresh connection; return (status, whole response)."""
    host, port = url[len("http://"):].split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                break
            chunks.append(data)
            if b"\r\n\r\n" in b"".join(chunks) and b"Connection: close" not in request:
                head, _, rest = b"".join(chunks).partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                if len(rest) >= length:
                    break
    response = b"".join(chunks)
    status = int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/") else 0
    return status, response


def build_request(method: str, path: str, headers: dict[str, str], body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def wait_for_log(caplog: pytest.LogCaptureFixture, needle: str, count: int = 1) -> list[str]:
    """Access lines are written just after the response is sent: wait (bounded) for them."""
    import time

    for _ in range(600):
        lines = [r.getMessage() for r in caplog.records if r.name == "airegistry.server.access"]
        if sum(needle in line for line in lines) >= count:
            return lines
        time.sleep(0.05)
    raise AssertionError(f"no access log line containing {needle!r}")
