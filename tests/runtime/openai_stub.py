"""A small local server speaking OpenAI's chat-completions protocol, for tests.

Reusable by any test that needs a judge model: it binds 127.0.0.1 on an ephemeral port (so
parallel xdist workers never collide), replies from a script, can be told to fail the next N
requests with 429/5xx (optionally with ``Retry-After``), can hold requests to observe how many
are in flight at once, and records every request it saw (headers and JSON body).

Usage::

    with OpenAIStub(reply="Score: 7") as stub:
        judge = RewardPromptJudge("Rate {response}", JudgeConfig(base_url=stub.base_url, ...))
        ...
        assert stub.requests[0].json["model"] == "judge-1"
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["OpenAIStub", "RecordedRequest", "StubReply"]


@dataclass
class StubReply:
    """One scripted response. ``content`` becomes the assistant message; ``body`` (if given)
    is sent verbatim instead, to test malformed replies."""

    content: str | None = None
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    delay_s: float = 0.0


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    json: Any


Responder = Callable[[dict[str, Any]], "str | StubReply"]


def _json(
    status: int, payload: Any, headers: dict[str, str] | None = None
) -> tuple[int, bytes, dict[str, str]]:
    return status, json.dumps(payload).encode(), dict(headers or {})


class OpenAIStub:
    """Scripted chat-completions endpoint on 127.0.0.1:<ephemeral port>.

    ``reply`` is a fixed string, a sequence of strings/StubReply consumed in order (the last
    one repeats), or a callable receiving the request JSON. ``delay_s`` delays every reply;
    delays end early when the stub stops so a test never waits on its own server.
    ``hold_until_in_flight=N`` holds requests at a barrier that opens once N are waiting
    (or after ``hold_timeout_s``), which turns "the client runs N calls concurrently" into a
    deterministic observation instead of a timing guess: ``max_in_flight`` then reaches N
    exactly when the client really keeps N requests outstanding.
    """

    def __init__(
        self,
        reply: str | StubReply | Iterable[str | StubReply] | Responder = "Score: 5",
        *,
        delay_s: float = 0.0,
        hold_until_in_flight: int = 0,
        hold_timeout_s: float = 5.0,
        model_name: str = "stub-model",
    ) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._responder: Responder | None = None
        self._script: list[str | StubReply] = []
        if callable(reply):
            self._responder = reply
        elif isinstance(reply, (str, StubReply)):
            self._script = [reply]
        else:
            self._script = list(reply)
            if not self._script:
                raise ValueError("OpenAIStub needs at least one scripted reply")
        self._script_pos = 0
        self._failures: deque[StubReply] = deque()
        self.delay_s = delay_s
        self.hold_until_in_flight = hold_until_in_flight
        self.hold_timeout_s = hold_timeout_s
        self.model_name = model_name
        self.requests: list[RecordedRequest] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._waiting = 0
        self._generation = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scripting -------------------------------------------------------------------------

    def fail_next(
        self,
        n: int,
        status: int = 500,
        *,
        retry_after: float | str | None = None,
        message: str = "stub failure",
    ) -> None:
        """Make the next ``n`` chat-completion requests fail with ``status``."""
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        body = json.dumps(
            {"error": {"message": message, "type": "server_error", "code": status}}
        ).encode()
        with self._lock:
            for _ in range(n):
                self._failures.append(StubReply(status=status, headers=headers, body=body))

    def _next_reply(self, request_json: dict[str, Any]) -> StubReply:
        with self._lock:
            if self._failures:
                return self._failures.popleft()
            if self._responder is None:
                item = self._script[min(self._script_pos, len(self._script) - 1)]
                self._script_pos += 1
            else:
                item = None
        if item is None:
            assert self._responder is not None
            item = self._responder(request_json)
        return item if isinstance(item, StubReply) else StubReply(content=item)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("OpenAIStub is not started")
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """What a client puts in ``base_url`` (OpenAI-style, ending in ``/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> OpenAIStub:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

            def do_POST(self) -> None:
                stub._handle(self)

            def do_GET(self) -> None:
                stub._handle(self)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> OpenAIStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- request handling ------------------------------------------------------------------

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in h.headers.items()}
        with self._cond:
            self.requests.append(RecordedRequest(h.command, h.path, headers, body))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self._cond.notify_all()
        try:
            status, data, reply_headers = self._respond(h, body)
        finally:
            # A request stops counting as in flight before its reply is written: the client
            # cannot send its next request earlier than that, so "in flight here" never
            # over-counts what the client has outstanding.
            with self._cond:
                self.in_flight -= 1
        self._send_raw(h, status, data, reply_headers)

    def _hold(self) -> None:
        """Barrier: wait until ``hold_until_in_flight`` requests are waiting, then release them
        together (or give up after ``hold_timeout_s``, or when the stub stops)."""
        deadline = time.monotonic() + self.hold_timeout_s
        with self._cond:
            generation = self._generation
            self._waiting += 1
            if self._waiting >= self.hold_until_in_flight:
                self._generation += 1
                self._waiting = 0
                self._cond.notify_all()
                return
            while (
                self._generation == generation
                and not self._stopping.is_set()
                and time.monotonic() < deadline
            ):
                self._cond.wait(timeout=0.05)
            if self._generation == generation:
                self._waiting -= 1

    def _respond(
        self, h: BaseHTTPRequestHandler, body: Any
    ) -> tuple[int, bytes, dict[str, str]]:
        if h.command != "POST" or h.path.rstrip("/") != "/v1/chat/completions":
            return _json(404, {"error": {"message": f"no route {h.command} {h.path}"}})
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return _json(400, {"error": {"message": "body must be JSON with 'messages'"}})
        if self.hold_until_in_flight:
            self._hold()
        reply = self._next_reply(body)
        delay = reply.delay_s or self.delay_s
        if delay:
            self._stopping.wait(delay)
        if reply.body is not None:
            return reply.status, reply.body, reply.headers
        if reply.status != 200:
            return _json(reply.status, {"error": {"message": reply.content or "error"}}, reply.headers)
        completion = {
            "id": f"chatcmpl-stub-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", self.model_name),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.content or ""},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        return _json(200, completion, reply.headers)

    @staticmethod
    def _send_raw(
        h: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict[str, str]
    ) -> None:
        try:
            h.send_response(status)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                h.send_header(name, value)
            h.end_headers()
            h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. its timeout fired); nothing to tell it
