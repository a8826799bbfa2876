"""Small ASGI plumbing shared by the protocol handlers: request context, body reading.

Handlers are plain ASGI code rather than Starlette endpoints because S3 needs control
Starlette hides: the raw path (SigV4 signs it), streaming a request body into a
blocking store call running in a worker thread, and streaming a file back.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import anyio
import anyio.from_thread

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


#: Bytes of request body read ahead of the worker thread (per request).
PREFETCH_BUDGET = 8 * 1024 * 1024
#: Most bytes handed to the worker thread per event-loop hop.
PREFETCH_BATCH = 4 * 1024 * 1024
#: Largest piece handed on to the store.  The store hashes md5 on a helper thread only for
#: pieces of 256 KiB or more and pays a fixed Python cost per piece, so pieces are kept
#: large; the read-ahead budget, not this, bounds the memory a request holds.
PIECE_SIZE = 1024 * 1024


class ClientDisconnected(Exception):
    """The client went away mid-request; nothing is answered and nothing is committed."""


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body exceeds {limit} bytes")
        self.limit = limit


#: Most digits a decimal header or query value may have: 19 covers every 64-bit size.
MAX_DECIMAL_DIGITS = 19


def ascii_int(text: str | None) -> int | None:
    """A non-negative decimal written in ASCII digits only, or None.

    ``str.isdigit`` is true for ``"²"`` and other Unicode digits that ``int`` refuses, and
    ``int`` refuses (ValueError) more than 4,300 digits, so wire values are checked here.
    """
    if text is None or not 0 < len(text) <= MAX_DECIMAL_DIGITS or not text.isascii() \
            or not text.isdigit():
        return None
    return int(text)


def new_request_id() -> str:
    return secrets.token_hex(8).upper()


@dataclass
class RequestContext:
    """Per-request facts the access log and metrics report once the response is sent."""

    method: str
    path: str
    raw_path: str
    raw_query: str
    headers: dict[str, str]
    header_pairs: list[tuple[str, str]]
    query: list[tuple[str, str]]
    scheme: str = "http"
    request_id: str = field(default_factory=new_request_id)
    started: float = field(default_factory=time.perf_counter)
    service: str = "unknown"
    operation: str = "Unknown"
    status: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    access_key: str | None = None
    error_code: str | None = None
    body_complete: bool = False  # the whole request body has been received

    @property
    def has_body(self) -> bool:
        length = self.headers.get("content-length", "").strip()
        return (bool(length) and length != "0") or "transfer-encoding" in self.headers

    @property
    def must_close(self) -> bool:
        """Answering before the body was read: the connection cannot be reused.

        A client that sent ``Expect: 100-continue`` and got a final status skips the body
        (botocore does) while the server would otherwise wait for it and read the next
        request's first bytes as body. So such responses say ``Connection: close``.
        """
        return self.has_body and not self.body_complete

    @classmethod
    def from_scope(cls, scope: Scope) -> RequestContext:
        pairs = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        headers: dict[str, str] = {}
        for k, v in pairs:
            headers[k] = f"{headers[k]},{v}" if k in headers else v
        raw_path = scope.get("raw_path")
        raw = raw_path.decode("latin-1") if raw_path else scope.get("path", "/")
        raw = raw.split("?", 1)[0]
        raw_query = scope.get("query_string", b"").decode("latin-1")
        query = []
        for item in raw_query.split("&"):
            if item:
                k, _, v = item.partition("=")
                query.append((unquote(k), unquote(v)))
        return cls(
            method=scope["method"].upper(), path=scope.get("path", "/"), raw_path=raw,
            raw_query=raw_query, headers=headers, header_pairs=pairs, query=query,
            scheme=str(scope.get("scheme") or "http"),
        )

    def query_value(self, name: str) -> str | None:
        for k, v in self.query:
            if k == name:
                return v
        return None

    def has_query(self, name: str) -> bool:
        return any(k == name for k, _ in self.query)

    @property
    def duration_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0


class BodyReader:
    """Pull the request body from ASGI ``receive`` one piece at a time.

    ``limit`` caps the bytes accepted (the Content-Length check happens earlier;
    this catches chunked bodies). ``sync_iter`` hands the same stream to blocking
    code running in a worker thread, hopping back to the event loop per piece, so a
    large upload flows socket -> decoder -> file without being buffered.
    """

    def __init__(self, receive: Receive, ctx: RequestContext, limit: int | None) -> None:
        self._receive = receive
        self._ctx = ctx
        self._limit = limit
        self._done = False
        self.consumed = 0
        self._prefetch: _Prefetch | None = None
        self._prefetch_budget: int | None = None
        self._prefetch_task: asyncio.Future[None] | None = None

    @property
    def done(self) -> bool:
        return self._done

    async def read_chunk(self) -> bytes:
        while not self._done:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                self._done = True
                raise ClientDisconnected()
            body = message.get("body", b"")
            if not message.get("more_body", False):
                self._done = True
                self._ctx.body_complete = True
            if body:
                self.consumed += len(body)
                self._ctx.bytes_in += len(body)
                if self._limit is not None and self.consumed > self._limit:
                    raise BodyTooLarge(self._limit)
                return body
        return b""

    async def read_all(self) -> bytes:
        parts = []
        while True:
            chunk = await self.read_chunk()
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)

    def sync_iter(self) -> Iterator[bytes | memoryview]:
        """The body for a worker thread; inside :meth:`prefetching` it is read ahead."""
        if self._prefetch_budget is not None and self._prefetch is None:
            # Read-ahead starts only once a worker thread consumes the body, so
            # requests queued for a thread never buffer anything.
            anyio.from_thread.run(self._start_prefetch)
        prefetch = self._prefetch
        while True:
            if prefetch is not None:
                # one event-loop hop hands over up to PREFETCH_BATCH bytes, as the pieces
                # the socket delivered: the store copies them into its own buffer anyway
                pieces = anyio.from_thread.run(prefetch.take, PREFETCH_BATCH)
            else:
                chunk = anyio.from_thread.run(self.read_chunk)
                pieces = [chunk] if chunk else []
            if not pieces:
                return
            for chunk in pieces:
                if len(chunk) <= PIECE_SIZE:
                    yield chunk
                    continue
                view = memoryview(chunk)
                for start in range(0, len(chunk), PIECE_SIZE):
                    yield view[start:start + PIECE_SIZE]

    async def _start_prefetch(self) -> None:
        assert self._prefetch_budget is not None
        self._prefetch = _Prefetch(self, self._prefetch_budget)
        self._prefetch_task = asyncio.ensure_future(self._prefetch.run())

    @contextlib.asynccontextmanager
    async def prefetching(self, budget: int = PREFETCH_BUDGET) -> AsyncIterator[None]:
        """Keep reading the socket while the worker thread hashes and writes.

        Without read-ahead the event loop only receives the next piece when the thread
        asks for it, so network and disk/hash work take turns; with it they overlap.
        ``budget`` bounds the bytes held, so memory stays flat whatever the body size.
        """
        self._prefetch_budget = budget
        try:
            yield
        finally:
            task = self._prefetch_task
            self._prefetch_budget = None
            self._prefetch = None
            self._prefetch_task = None
            if task is not None:
                if not task.done():
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def drain(self, max_bytes: int = 1 << 20) -> None:
        """Discard a little unread body so the connection can be reused after an error."""
        try:
            seen = 0
            while not self._done and seen < max_bytes:
                seen += len(await self.read_chunk())
        except (ClientDisconnected, BodyTooLarge):
            pass


async def send_response(
    send: Send, ctx: RequestContext, status: int, headers: list[tuple[str, str]],
    body: bytes = b"", *, head: bool = False,
) -> None:
    ctx.status = status
    hdrs = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    names = {k for k, _ in hdrs}
    if b"content-length" not in names:
        hdrs.append((b"content-length", str(len(body)).encode()))
    if ctx.must_close and b"connection" not in names:
        hdrs.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    payload = b"" if head else body
    ctx.bytes_out += len(payload)
    await send({"type": "http.response.body", "body": payload})


async def run_sync(fn: Callable[..., Any], *args: Any,
                   limiter: anyio.CapacityLimiter | None = None) -> Any:
    return await anyio.to_thread.run_sync(fn, *args, limiter=limiter)


class _Prefetch:
    """Bounded read-ahead of a request body: an event-loop task fills, a thread drains."""

    def __init__(self, reader: BodyReader, budget: int) -> None:
        self.reader = reader
        self.budget = budget
        self.buffered = 0
        self.chunks: collections.deque[bytes] = collections.deque()
        self.done = False
        self.error: BaseException | None = None
        self.cond = asyncio.Condition()

    async def run(self) -> None:
        try:
            while True:
                async with self.cond:
                    await self.cond.wait_for(lambda: self.buffered < self.budget)
                chunk = await self.reader.read_chunk()
                async with self.cond:
                    if chunk:
                        self.chunks.append(chunk)
                        self.buffered += len(chunk)
                    else:
                        self.done = True
                    self.cond.notify_all()
                if not chunk:
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # disconnect or size cap: handed to the consumer
            async with self.cond:
                self.error = exc
                self.done = True
                self.cond.notify_all()

    async def take(self, max_bytes: int) -> list[bytes]:
        """The buffered pieces, up to about ``max_bytes``; an empty list at the end."""
        async with self.cond:
            await self.cond.wait_for(lambda: bool(self.chunks) or self.done)
            if self.chunks:
                out: list[bytes] = []
                size = 0
                while self.chunks and size < max_bytes:
                    piece = self.chunks.popleft()
                    out.append(piece)
                    size += len(piece)
                self.buffered -= size
                self.cond.notify_all()
                return out
            if self.error is not None:
                raise self.error
            return []
