"""Structured access log: one JSON object per request on ``airegistry.server.access``.

Only request facts go in (method, path, service, operation, status, timings, sizes,
request id, access key id). Query strings, headers and bodies are never logged:
presigned URLs carry signatures in the query and bodies may carry anything.
"""

from __future__ import annotations

import json
import logging
import time

from airegistry.server.wire import RequestContext

ACCESS_LOGGER = "airegistry.server.access"
_log = logging.getLogger(ACCESS_LOGGER)


def access_record(ctx: RequestContext) -> dict[str, object]:
    record: dict[str, object] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
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


def log_access(ctx: RequestContext) -> None:
    if _log.isEnabledFor(logging.INFO):
        _log.info(json.dumps(access_record(ctx), ensure_ascii=False, separators=(",", ":")))
