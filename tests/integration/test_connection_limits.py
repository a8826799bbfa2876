"""Connection limits of a real `airegistry server` process under `ulimit -n 1024`.

The probe's denial of service: connections that never finish their headers were never
closed, 1,100 of them exhausted the descriptor limit, `/healthz` stopped answering and
asyncio logged the failing accept() thousands of times a second.
"""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

LIMIT = 1024
IDLE_CONNECTIONS = 1100


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _own_descriptors(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            pytest.fail(f"the test process needs {needed} descriptors; its hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def _ulimit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (LIMIT, LIMIT))


@contextlib.contextmanager
def server(tmp_path: Path, *options: str) -> Iterator[tuple[str, int, Path]]:
    home = tmp_path / "home"
    port = _free_port()
    log = tmp_path / f"server-{port}.log"
    cli = [sys.executable, "-m", "airegistry.cli.main", "server", "--home", str(home)]
    subprocess.run([*cli, "--create-key"], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIREGISTRY_SERVER_")}
    with open(log, "wb") as out:
        proc = subprocess.Popen([*cli, "--port", str(port), *options], env=env, stdout=out,
                                stderr=subprocess.STDOUT, preexec_fn=_ulimit)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            assert proc.poll() is None, log.read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("server did not start:\n" + log.read_text()[-3000:])
        yield url, port, log
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _open_idle(port: int, count: int, partial: bytes = b"") -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        if partial:
            s.sendall(partial)
        sockets.append(s)
    return sockets


def _closed_by_server(s: socket.socket, wait: float = 0.0) -> bool:
    s.settimeout(wait)
    try:
        while True:
            data = s.recv(4096)
            if not data:
                return True
    except (TimeoutError, BlockingIOError):
        return False
    except OSError:
        return True


def _response(s: socket.socket) -> bytes:
    """One whole HTTP response (headers and a Content-Length body) from ``s``."""
    s.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _metric(url: str, reason: str) -> int:
    text = httpx.get(url + "/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("airegistry_connections_closed_total") and f'reason="{reason}"' in line:
            return int(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no connection metric for {reason}:\n{text[-2000:]}")


def test_healthz_answers_with_1100_idle_connections_under_ulimit_1024(tmp_path: Path) -> None:
    _own_descriptors(IDLE_CONNECTIONS + 256)
    with server(tmp_path) as (url, port, log):
        half_requests = _open_idle(port, IDLE_CONNECTIONS // 2, b"GET /healthz HTTP/1.1\r\nHo")
        silent = _open_idle(port, IDLE_CONNECTIONS - len(half_requests))
        try:
            for _ in range(5):
                response = httpx.get(url + "/healthz", timeout=10)
                assert response.status_code == 200 and response.json()["status"] == "ok"
            closed = sum(_closed_by_server(s) for s in half_requests + silent)
            # The oldest idle connections made room for the newer ones and the checks.
            assert closed >= IDLE_CONNECTIONS - LIMIT // 2
            assert _metric(url, "evicted_idle") >= closed
        finally:
            for s in half_requests + silent:
                s.close()
        assert "out of system resource" not in log.read_text()


HTTP_PARSERS = pytest.mark.parametrize("http", ["httptools", "h11"])


@HTTP_PARSERS
def test_connections_that_never_finish_their_headers_are_closed(tmp_path: Path, http: str) -> None:
    with server(tmp_path, "--header-timeout", "1", "--http", http) as (url, port, _):
        silent = _open_idle(port, 1)[0]
        partial = _open_idle(port, 1, b"GET / HTTP/1.1\r\n")[0]
        assert _closed_by_server(silent, wait=15)
        assert _response(partial).startswith(b"HTTP/1.1 408 ")
        # Trickling bytes does not extend the deadline (slowloris).
        trickle = socket.create_connection(("127.0.0.1", port), timeout=10)
        started = time.monotonic()
        closed = False
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 200:
            try:
                trickle.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            if _closed_by_server(trickle, wait=0.1):
                closed = True
                break
        assert closed, "a connection sending headers byte by byte for 20 s stayed open"
        assert time.monotonic() - started < 20
        # A connection that sends requests on time keeps working, then idles out.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as kept:
            for _ in range(3):
                kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert _response(kept).startswith(b"HTTP/1.1 200 ")
            assert _closed_by_server(kept, wait=15)
        assert _metric(url, "header_timeout") >= 3
        for s in (silent, partial, trickle):
            s.close()


@HTTP_PARSERS
def test_a_full_house_of_busy_connections_refuses_with_503(tmp_path: Path, http: str) -> None:
    with server(tmp_path, "--max-connections", "4", "--no-auth", "--http", http) as (url, port, _):
        busy = []
        for _ in range(4):  # requests in progress: headers complete, body still coming
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: SageMaker.ListHubs\r\n"
                      b"Content-Type: application/x-amz-json-1.1\r\nContent-Length: 1000\r\n"
                      b"Expect: 100-continue\r\n\r\n")
            # "100 Continue" comes once the server reads the body: the request is under way.
            assert s.recv(4096).startswith(b"HTTP/1.1 100 ")
            busy.append(s)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as extra:
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _response(extra).startswith(b"HTTP/1.1 503 ")
        for s in busy:
            s.close()
        for _ in range(100):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("the server did not recover once the busy connections left")


def test_running_out_of_descriptors_is_logged_once_per_interval(tmp_path: Path) -> None:
    _own_descriptors(IDLE_CONNECTIONS + 256)
    # A cap above the descriptor limit: accept() itself runs out (EMFILE).
    with server(tmp_path, "--max-connections", "5000") as (url, port, log):
        sockets = _open_idle(port, IDLE_CONNECTIONS)
        time.sleep(3)  # a few of asyncio's one-second accept retries
        for s in sockets:
            s.close()
        for _ in range(200):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("the server did not recover:\n" + log.read_text()[-3000:])
        reports = log.read_text().count("out of system resource")
        assert 1 <= reports <= 3, log.read_text()[-3000:]


@HTTP_PARSERS
def test_oversized_request_headers_are_refused_and_the_server_stays_up(tmp_path: Path,
                                                                      http: str) -> None:
    with server(tmp_path, "--http", http) as (url, port, _):
        # in one piece, and trickled in 4 KiB writes (llhttp itself has no bound)
        statuses: list[bytes | None] = []
        for step in (None, 4096):
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                head = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                padding = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000) for i in range(200))
                data = head + padding
                try:
                    if step is None:
                        s.sendall(data)
                    else:
                        for start in range(0, len(data), step):
                            s.sendall(data[start:start + step])
                            time.sleep(0.005)
                except OSError:
                    pass  # the server may close before everything is sent
                try:
                    status = _response(s).split(b"\r\n", 1)[0]
                except ConnectionResetError:
                    # uvicorn's h11 path closes with unread request bytes, so the kernel's
                    # reset can overtake its 400; ours (httptools) half-closes and lingers
                    assert http == "h11"
                    statuses.append(None)
                    continue
                statuses.append(status)
                assert _closed_by_server(s, wait=5)
        # httptools: 431; h11 refuses over its 16 KiB limit with a plain 400
        expected = b"HTTP/1.1 431 " if http == "httptools" else b"HTTP/1.1 400 "
        assert any(st is not None for st in statuses), statuses
        assert all(st is None or st.startswith(expected) for st in statuses), statuses
        # headers just under the limit are served
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 12000 + b"\r\n\r\n")
            assert _response(s).startswith(b"HTTP/1.1 200 ")
        assert httpx.get(url + "/healthz", timeout=10).status_code == 200
