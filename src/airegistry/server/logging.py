"""Structured access log: one JSON object per request on ``airegistry.server.access``.

Only request facts go in (method, path, service, operation, status, timings, sizes,
request id, access key id). Query strings, headers and bodies are never logged:
presigned URLs carry signatures in the query and bodies may carry anything.

This runs once per request on the event loop, so it is kept cheap: the line is
encoded with msgspec (an order of magnitude faster than ``json.dumps``) and the
second-resolution timestamp is formatted once per second, not once per request, and
the record is handed to the handlers without logging's caller lookup.
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


def log_access(ctx: RequestContext) -> None:
    if _log.isEnabledFor(logging.INFO):
        # makeRecord + handle is what ``_log.info`` does minus the caller lookup (a stack
        # walk for a file name and line the access format never shows): half the cost
        _log.handle(_log.makeRecord(ACCESS_LOGGER, logging.INFO, "", 0,
                                    format_access_line(ctx), None, None))
