"""Structured access log: one JSON object per request on ``airegistry.server.access``.

Only request facts go in (method, path, service, operation, status, timings, sizes,
request id, access key id). Query strings, headers and bodies are never logged:
presigned URLs carry signatures in the query and bodies may carry anything.

This runs once per request on the event loop, so it is kept cheap: the line is
encoded with msgspec (an order of magnitude faster than ``json.dumps``) and the
second-resolution timestamp is formatted once per second, not once per request. When
the logger's one handler is the server's own :class:`AccessLineHandler` (what
``airegistry server`` configures) the line is written to its stream directly, without a
``LogRecord``: in the running server an access line took 35 us per request, most of it
that record, its formatting and logging's handler chain; writing it directly took server
CPU per DescribeHub from ~394 to ~360 us. Any other set-up (more handlers, filters,
propagation, pytest's caplog) gets ordinary records, so logging's configuration keeps
its meaning.
"""

from __future__ import annotations

import logging
import time

import msgspec

from airegistry.server.asgi import RequestContext

ACCESS_LOGGER = "airegistry.server.access"
_log = logging.getLogger(ACCESS_LOGGER)
_encode = msgspec.json.Encoder().encode

#: (epoch second, its ISO-8601 text): the last timestamp formatted.
_ts_cache: tuple[int, str] = (-1, "")


def _timestamp() -> str:
    global _ts_cache
    now = int(time.time())
    cached = _ts_cache
    if cached[0] == now:
        return cached[1]
    text = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    _ts_cache = (now, text)  # one tuple swap: a racing thread sees the old or new pair
    return text


def access_record(ctx: RequestContext) -> dict[str, object]:
    record: dict[str, object] = {
        "ts": _timestamp(),
        "request_id": ctx.request_id,
        "method": ctx.method,
        "path": ctx.path,
        "service": ctx.service,
        "operation": ctx.operation,
        "status": ctx.status,
        "duration_ms": round(ctx.duration_ms, 3),
        "bytes_in": ctx.bytes_in,
        "bytes_out": ctx.bytes_out,
    }
    if ctx.access_key:
        record["access_key"] = ctx.access_key
    if ctx.error_code:
        record["error"] = ctx.error_code
    return record


def format_access_line(ctx: RequestContext) -> str:
    """The access line: compact JSON, non-ASCII kept as UTF-8 (as ``ensure_ascii=False``)."""
    return _encode(access_record(ctx)).decode("utf-8")


class AccessLineHandler(logging.StreamHandler):
    """A stream handler for access lines, which :func:`log_access` may hand a finished line.

    As a handler it behaves like ``logging.StreamHandler`` (records from anywhere are
    formatted and written as usual). Lines are handed to it only while it has no
    formatter (logging's default writes the message alone, which the line already is).
    """

    def write_line(self, line: str) -> None:
        """Write ``line`` as ``emit`` would write a record whose formatted text it is."""
        with self.lock:
            try:
                self.stream.write(line + self.terminator)
                self.flush()
            except RecursionError:
                raise
            except Exception:
                self.handleError(_record(line))


def _record(line: str) -> logging.LogRecord:
    # makeRecord + handle is what ``_log.info`` does minus the caller lookup (a stack
    # walk for a file name and line the access format never shows): half the cost
    return _log.makeRecord(ACCESS_LOGGER, logging.INFO, "", 0, line, None, None)


def _direct_handler() -> AccessLineHandler | None:
    """The handler a line may go to directly: the only one, with nothing that would
    look at a record (a formatter, filters, a level above INFO, propagation), on a
    logger that is not disabled."""
    handlers = _log.handlers
    if len(handlers) != 1 or _log.propagate or _log.filters or _log.disabled:
        return None
    handler = handlers[0]
    if (type(handler) is not AccessLineHandler or handler.formatter is not None
            or handler.filters or handler.level > logging.INFO):
        return None
    return handler


def log_access(ctx: RequestContext) -> None:
    if _log.isEnabledFor(logging.INFO):
        line = format_access_line(ctx)
        handler = _direct_handler()
        if handler is not None:
            handler.write_line(line)
        else:
            _log.handle(_record(line))
