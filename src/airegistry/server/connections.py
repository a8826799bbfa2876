"""Connection limits: a header-read deadline, a cap on open connections, quiet EMFILE.

uvicorn bounds only the idle time *after* a response (``timeout_keep_alive``), and only
until the next byte arrives: a connection that never finishes its request headers stays
open forever, and 1,100 of them exhaust ``ulimit -n 1024`` so that nothing, ``/healthz``
included, is accepted any more, while asyncio logs the failing ``accept()`` once per
backlog slot per retry. ``GuardedH11Protocol`` (uvicorn's h11 protocol, which
``airegistry server`` always uses) adds three bounds, per worker process:

- **header deadline**: from the moment a connection opens, and again from the end of each
  response, the client has ``header_timeout`` seconds to deliver a *complete* set of
  request headers. Bytes trickling in do not extend it (slowloris). On expiry the
  connection is closed (``408`` first if part of a request arrived).
- **connection cap**: at most ``max_connections`` connections are open. asyncio accepts up
  to the listen backlog in one burst before any protocol sees them, so the backlog is
  sized from the descriptor limit too (``listen_backlog``). A new connection beyond
  the cap closes the connection that has been idle (between requests, or still before its
  first request's headers) the longest; when every connection is busy in a request, the
  new one is answered ``503`` and closed. The default keeps the cap well inside the
  process's file-descriptor limit (``default_max_connections``), so ``accept()`` keeps
  succeeding and a health check always gets through.
- **EMFILE log**: if ``accept()`` still runs out of descriptors (files held by requests,
  other sockets), asyncio's "socket.accept() out of system resource" report is logged at
  most once per ``ACCEPT_ERROR_LOG_INTERVAL`` seconds, with the number of reports
  suppressed in between (``limit_accept_errors``).

The settings come from ``airegistry server --max-connections / --header-timeout``
(environment ``AIREGISTRY_SERVER_MAX_CONNECTIONS`` / ``AIREGISTRY_SERVER_HEADER_TIMEOUT``,
inherited by every worker).
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import time
from collections import OrderedDict
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("airegistry.server")

MAX_CONNECTIONS_ENV = "AIREGISTRY_SERVER_MAX_CONNECTIONS"
HEADER_TIMEOUT_ENV = "AIREGISTRY_SERVER_HEADER_TIMEOUT"
DEFAULT_HEADER_TIMEOUT = 15.0
#: Descriptors left for everything that is not a client socket (database, logs, pipes).
RESERVED_DESCRIPTORS = 64
ACCEPT_ERROR_LOG_INTERVAL = 10.0
_ACCEPT_ERROR = "socket.accept() out of system resource"

_REFUSED = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
            b"Connection: close\r\nContent-Length: 30\r\n\r\nToo many connections; retry.\r\n")
#: Most bytes of request headers accepted (h11's own limit, applied to httptools too).
MAX_HEADER_BYTES = 16 * 1024
#: Seconds a connection refused with 431 keeps discarding input before it is closed.
REFUSAL_LINGER = 1.0
_HEADERS_TOO_LARGE = (b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                      b"Content-Type: text/plain\r\nConnection: close\r\n"
                      b"Content-Length: 33\r\n\r\nRequest header fields too large\r\n")
_TIMED_OUT = (b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\n"
              b"Connection: close\r\nContent-Length: 0\r\n\r\n")


def _soft_limit() -> int:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 1 << 20 if soft == resource.RLIM_INFINITY else soft


def listen_backlog() -> int:
    """The listen backlog, which asyncio also uses as the number of connections it accepts
    in one go before any of them is seen (and the cap applied): a quarter of the limit
    after the reserve, at most uvicorn's default 2048."""
    return max(16, min(2048, (_soft_limit() - RESERVED_DESCRIPTORS) // 4))


def default_max_connections() -> int:
    """Half of what the descriptor limit leaves after the reserve and one accept burst: a
    busy connection may hold a second descriptor (the object it streams), and accept()
    must never run out."""
    spare = _soft_limit() - RESERVED_DESCRIPTORS - listen_backlog()
    return max(16, min(10_000, spare // 2))


def raise_descriptor_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one (as servers commonly do); the new soft."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65_536)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            pass
    return soft


class ConnectionGuard:
    """The open connections of one process: which are idle (evictable), since when."""

    def __init__(self, max_connections: int, header_timeout: float) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if header_timeout <= 0:
            raise ValueError("header_timeout must be positive")
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self._open: set[Any] = set()
        self._idle: OrderedDict[Any, None] = OrderedDict()  # oldest first
        self.evicted = 0
        self.refused = 0
        self.header_timeouts = 0

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def admit(self, connection: Any) -> bool:
        """Count a new connection in; False when it must be refused (every one is busy)."""
        while len(self._open) >= self.max_connections:
            if not self._idle:
                self.refused += 1
                return False
            victim, _ = self._idle.popitem(last=False)
            self._open.discard(victim)
            self.evicted += 1
            victim.close_idle()
        self._open.add(connection)
        return True

    def idle(self, connection: Any) -> None:
        if connection in self._open and connection not in self._idle:
            self._idle[connection] = None

    def busy(self, connection: Any) -> None:
        self._idle.pop(connection, None)

    def release(self, connection: Any) -> None:
        self._open.discard(connection)
        self._idle.pop(connection, None)

    def metrics_text(self) -> str:
        pid = os.getpid()
        return "\n".join([
            "# HELP airegistry_connections_open Client connections open in this worker.",
            "# TYPE airegistry_connections_open gauge",
            f'airegistry_connections_open{{pid="{pid}"}} {len(self._open)}',
            "# HELP airegistry_connections_closed_total Connections the server closed, by reason.",
            "# TYPE airegistry_connections_closed_total counter",
            f'airegistry_connections_closed_total{{pid="{pid}",reason="evicted_idle"}} {self.evicted}',
            f'airegistry_connections_closed_total{{pid="{pid}",reason="refused_busy"}} {self.refused}',
            f'airegistry_connections_closed_total{{pid="{pid}",reason="header_timeout"}} '
            f"{self.header_timeouts}",
        ]) + "\n"


_GUARD: ConnectionGuard | None = None


def current_guard() -> ConnectionGuard:
    """This process's guard, from the environment the server command set."""
    global _GUARD
    if _GUARD is None:
        raw_max = os.environ.get(MAX_CONNECTIONS_ENV)
        raw_timeout = os.environ.get(HEADER_TIMEOUT_ENV)
        _GUARD = ConnectionGuard(int(raw_max) if raw_max else default_max_connections(),
                                 float(raw_timeout) if raw_timeout else DEFAULT_HEADER_TIMEOUT)
    return _GUARD


def configure_guard(max_connections: int | None = None,
                    header_timeout: float | None = None) -> ConnectionGuard:
    """Replace this process's guard (tests, embedding the server in another program)."""
    global _GUARD
    _GUARD = ConnectionGuard(max_connections or default_max_connections(),
                             header_timeout or DEFAULT_HEADER_TIMEOUT)
    return _GUARD


def guard_metrics_text() -> str:
    """The guard's figures for /metrics (empty when this process serves no connections)."""
    return _GUARD.metrics_text() if _GUARD is not None else ""


class _Guarded:
    """The guard's bookkeeping, shared by the h11 and httptools protocol classes.

    A subclass provides ``_partial_request()`` (bytes of a next request have arrived but
    its headers are not complete); the protocol's own ``cycle``, ``transport`` and
    ``loop`` attributes are used as uvicorn defines them for both classes.
    """

    _guard: ConnectionGuard | None = None
    _deadline: asyncio.TimerHandle | None = None
    cycle: Any
    transport: Any
    loop: Any

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[misc]
        self._admit(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        super().connection_lost(exc)  # type: ignore[misc]

    def _admit(self, transport: asyncio.Transport) -> bool:
        guard = current_guard()
        if not guard.admit(self):
            transport.write(_REFUSED)
            transport.close()
            return False
        self._guard = guard
        self._track()
        return True

    def _release(self) -> None:
        self._cancel_deadline()
        if self._guard is not None:
            self._guard.release(self)

    def _partial_request(self) -> bool:
        raise NotImplementedError

    def _in_request(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _track(self) -> None:
        """Between requests: idle, with a header deadline; inside one: busy, no deadline."""
        guard = self._guard
        if guard is None or self.transport is None or self.transport.is_closing():
            return
        if self._in_request():
            self._cancel_deadline()
            guard.busy(self)
            return
        guard.idle(self)
        if self._deadline is None:  # bytes arriving do not extend it
            self._deadline = self.loop.call_later(guard.header_timeout, self._headers_late)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_late(self) -> None:
        self._deadline = None
        if self._in_request() or self.transport.is_closing():
            return
        if self._guard is not None:
            self._guard.header_timeouts += 1
        if self._partial_request():
            self.transport.write(_TIMED_OUT)
        self.transport.close()

    def close_idle(self) -> None:
        """Closed to make room for a new connection (the guard already let it go)."""
        self._guard = None
        self._cancel_deadline()
        if not self.transport.is_closing():
            self.transport.close()


class GuardedH11Protocol(_Guarded, H11Protocol):
    """uvicorn's h11 protocol under the process's ``ConnectionGuard``.

    h11 itself refuses request headers over 16 KiB (``400``)."""

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._track()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._track()

    def _partial_request(self) -> bool:
        partial, _ = self.conn.trailing_data
        return bool(partial)


class GuardedHttpToolsProtocol(_Guarded, HttpToolsProtocol):
    """uvicorn's httptools (llhttp) protocol under the ``ConnectionGuard``, plus a header cap.

    llhttp puts no bound on the size of a request's headers (h11 stops at 16 KiB), so this
    class counts the bytes that arrive while a request's headers are incomplete and answers
    ``431`` once they pass ``MAX_HEADER_BYTES``. Bytes of the read in which a request
    begins are not counted (part of that read may be the previous request's body), so the
    bound is ``MAX_HEADER_BYTES`` plus one socket read: memory stays bounded and a
    well-formed request is never refused.
    """

    _in_headers = False  # a request has begun and its headers are not complete
    _refused = False
    _header_bytes = 0

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # lingering after a 431: the rest of the request is discarded
        counting = self._in_headers
        super().data_received(data)
        if self._in_headers and counting:
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES and not self.transport.is_closing():
                self._refuse_headers()
                return
        self._track()

    def _refuse_headers(self) -> None:
        """Answer 431 and close: half-close first and discard what still arrives for a
        moment, since closing with unread bytes makes the kernel reset the connection,
        and the reset can overtake the answer on its way to the client."""
        self._refused = True
        self._cancel_deadline()
        self.transport.write(_HEADERS_TOO_LARGE)
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(REFUSAL_LINGER, self.transport.close)
        else:
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._header_bytes = 0

    def on_headers_complete(self) -> None:
        self._in_headers = False
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._track()

    def _partial_request(self) -> bool:
        return self._in_headers


class _AcceptErrorLimiter:
    """An event-loop exception handler that rate-limits asyncio's EMFILE accept report."""

    def __init__(self, previous: Any) -> None:
        self.previous = previous
        self.last = 0.0
        self.suppressed = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != _ACCEPT_ERROR:
            if self.previous is not None:
                self.previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        now = time.monotonic()
        if now - self.last < ACCEPT_ERROR_LOG_INTERVAL:
            self.suppressed += 1
            return
        exc = context.get("exception")
        log.error("%s (%s); %d more such reports in the last %.0f s were not logged",
                  _ACCEPT_ERROR, exc, self.suppressed, ACCEPT_ERROR_LOG_INTERVAL)
        self.last = now
        self.suppressed = 0


def limit_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Install the rate limit on ``loop`` (idempotent)."""
    current = loop.get_exception_handler()
    if not isinstance(current, _AcceptErrorLimiter):
        loop.set_exception_handler(_AcceptErrorLimiter(current))


__all__ = [
    "GuardedH11Protocol",
    "GuardedHttpToolsProtocol",
    "configure_guard",
    "current_guard",
    "default_max_connections",
    "guard_metrics_text",
    "limit_accept_errors",
    "listen_backlog",
    "raise_descriptor_limit",
]
