"""The server's ASGI application: one port, dispatched by AWS protocol.

Dispatch order for each request:

1. ``/healthz`` and ``/metrics`` when the request is unsigned (a signed request for
   those paths is S3 addressing a bucket of that name);
2. the service in the SigV4 credential scope (``.../<region>/<service>/aws4_request``)
   of the Authorization header or presigned query: ``s3``, ``sagemaker``, ``lambda``,
   ``sts``, ``iam``;
3. for unsigned requests (only accepted under ``--no-auth``): ``X-Amz-Target:
   SageMaker.*`` -> SageMaker, ``/2015-03-31/functions`` -> Lambda, an ``Action=``
   query or form body -> STS/IAM, anything else -> S3.

Authentication happens here, before any handler runs, and failures are answered in
the error format of the protocol the client speaks, so botocore raises the
``ClientError`` code it would raise against AWS.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import anyio

from airegistry.hub.presign import request_origin
from airegistry.server import sigv2, sigv4
from airegistry.server.asgi import (
    BodyReader,
    BodyTooLarge,
    ClientDisconnected,
    Message,
    Receive,
    RequestContext,
    Scope,
    Send,
    ascii_int,
    run_sync,
    send_response,
)
from airegistry.server.auth import AuthConfig
from airegistry.server.connections import guard_metrics_text, limit_accept_errors
from airegistry.server.errors import AUTH_CODES, family, send_protocol_error
from airegistry.server.iam import handle_iam
from airegistry.server.logging import log_access
from airegistry.server.metrics import Metrics
from airegistry.server.operations import lambda_operation, operation_label
from airegistry.server.s3 import S3Config, S3Handler
from airegistry.server.s3_requests import virtual_host_bucket
from airegistry.server.sts import handle_sts
from airegistry.storage.blobs import BlobStore
from airegistry.storage.blobs.errors import StoreUnavailable
from airegistry.storage.metadata import DatabaseUnavailable, S3ConfigRepository

log = logging.getLogger("airegistry.server")

ASGIApp = Callable[[Scope, Receive, Send], Any]
_T = TypeVar("_T")
ACCESS_KEY_SCOPE = "airegistry.access_key"

#: Largest body accepted by the JSON and query protocols (Lambda zips arrive base64 in JSON).
DEFAULT_MAX_API_BODY = 100 * 1024 * 1024
#: Threads running blocking SageMaker handler calls (SQLite reads and writes). Threads are
#: started on demand, so a lightly loaded worker keeps one or two; the cap bounds how many
#: requests touch the database at once, excess ones queue (never refused).
DEFAULT_SAGEMAKER_THREADS = 32

_STS_ACTIONS = frozenset({
    "GetCallerIdentity", "AssumeRole", "AssumeRoleWithSAML", "AssumeRoleWithWebIdentity",
    "DecodeAuthorizationMessage", "GetAccessKeyInfo", "GetFederationToken", "GetSessionToken",
})
_INLINE_SAGEMAKER_READS = frozenset({"DescribeHub", "DescribeHubContent"})
_KNOWN_SERVICES = frozenset({"s3", "sagemaker", "lambda", "sts", "iam"})
#: A Host header that can name the endpoint of presigned URLs (name or IP, optional port).
_HOST_RE = re.compile(r"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?")


@dataclass
class ServerServices:
    """Everything the wire layer serves; built from a home by ``server.compose``."""

    objects: BlobStore
    account_id: str
    region: str
    #: Bucket and object configuration documents (PutBucketPolicy, PutObjectTagging...).
    s3_configs: S3ConfigRepository
    #: (X-Amz-Target, body) -> (status, headers, body); blocking, run in a worker thread.
    sagemaker: Callable[[str | None, bytes], tuple[int, dict[str, str], bytes]] | None = None
    #: Mounted for Lambda REST-JSON paths (/2015-03-31/functions...).
    lambda_app: ASGIApp | None = None
    #: Extra Prometheus text (job queue depth, runtime workers) appended to /metrics.
    extra_metrics: Callable[[], str] | None = None
    #: Point reads (DescribeHub, DescribeHubContent) answered on the event loop: only
    #: when the metadata is a local SQLite file, where the read costs less than a hop
    #: to a worker thread. A networked database (PostgreSQL) always leaves the loop.
    inline_point_reads: bool = False
    #: Other ASGI apps, by path prefix (e.g. ``"/ui/"``), served unsigned before the AWS
    #: dispatch; the app sees the full path. Add a service's app here.
    mounts: dict[str, ASGIApp] = field(default_factory=dict)


@dataclass
class ServerOptions:
    """Tunables that are not services: addressing and size limits."""

    virtual_host_bases: tuple[str, ...] = ("s3.localhost", "localhost")
    max_object_size: int = 5 * 1024**3
    max_api_body: int = DEFAULT_MAX_API_BODY
    sagemaker_threads: int = DEFAULT_SAGEMAKER_THREADS


# -- the application ----------------------------------------------------------------------


class AiRegistryApp:
    """The ASGI callable. Stateless apart from metrics; safe under many concurrent requests."""

    def __init__(self, services: ServerServices, *, auth: AuthConfig | None,
                 options: ServerOptions | None = None, metrics: Metrics | None = None) -> None:
        self.services = services
        self.auth = auth
        self.options = options or ServerOptions()
        self.metrics = metrics or Metrics()
        self.s3 = S3Handler(services.objects, S3Config(
            region=services.region, owner_id=services.account_id,
            virtual_host_bases=self.options.virtual_host_bases,
            max_object_size=self.options.max_object_size,
        ), services.s3_configs)
        self._sagemaker_limiter: anyio.CapacityLimiter | None = None
        if auth is None:
            log.warning(
                "airegistry server: authentication is DISABLED (--no-auth); anyone who can "
                "reach this port can read and write the registry"
            )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        ctx = RequestContext.from_scope(scope)
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                ctx.status = int(message["status"])
            await send(message)

        self.metrics.started()
        try:
            await self._dispatch(ctx, scope, receive, tracked_send)
        except (ClientDisconnected, asyncio.CancelledError, OSError) as exc:
            ctx.status = ctx.status or 499
            ctx.error_code = ctx.error_code or "ClientDisconnected"
            if isinstance(exc, asyncio.CancelledError):
                raise
        except (DatabaseUnavailable, StoreUnavailable) as exc:
            log.error("%s %s (request %s): %s", ctx.method, ctx.path, ctx.request_id, exc)
            if not started:
                with contextlib.suppress(Exception):
                    await send_protocol_error(tracked_send, ctx, ctx.service, "ServiceUnavailable",
                                              f"{exc}; retry later", 503)
        except Exception:
            log.exception("unhandled error in %s %s (request %s)", ctx.method, ctx.path,
                          ctx.request_id)
            if not started:
                with contextlib.suppress(Exception):
                    await send_protocol_error(tracked_send, ctx, ctx.service, "InternalError",
                                              "We encountered an internal error. Please try again.",
                                              500)
            else:
                raise
        finally:
            self.metrics.observe(ctx.service, ctx.operation, ctx.status, ctx.duration_ms / 1000,
                                 ctx.bytes_in, ctx.bytes_out)
            log_access(ctx)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                limit_accept_errors(asyncio.get_running_loop())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def close(self) -> None:
        """Nothing to release: worker threads belong to anyio's pool, shared per loop."""

    @property
    def _limiter(self) -> anyio.CapacityLimiter:
        # Created lazily: a limiter belongs to the event loop that first uses it.
        if self._sagemaker_limiter is None:
            self._sagemaker_limiter = anyio.CapacityLimiter(self.options.sagemaker_threads)
        return self._sagemaker_limiter

    async def _in_thread(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run blocking ``fn(*args)`` on a worker thread (the server's one offload: anyio).

        At most ``sagemaker_threads`` such calls run at once, excess ones queue (never
        refused). If the awaiting request is cancelled (client gone, forced shutdown) a
        call already running finishes in its thread, so a write still commits or rolls
        back cleanly, and its result is dropped.
        """
        return await run_sync(fn, *args, limiter=self._limiter)

    async def _dispatch(self, ctx: RequestContext, scope: Scope, receive: Receive,
                        send: Send) -> None:
        signed = "authorization" in ctx.headers or ctx.has_query("X-Amz-Signature") \
            or ctx.has_query("Signature")
        if not signed and self.services.mounts and virtual_host_bucket(ctx, self.s3.config) is None:
            # A mount's prefix ("/ui/") is never a bucket of path-style S3 (too short), and
            # virtual-host-style S3 requests never reach a mount whatever their key.
            for prefix, app in self.services.mounts.items():
                if ctx.path.startswith(prefix) or ctx.path == prefix.rstrip("/"):
                    ctx.service = ctx.operation = prefix.strip("/") or "mount"
                    return await app(scope, receive, send)
        if not signed and ctx.path in ("/healthz", "/metrics") and ctx.method in ("GET", "HEAD"):
            return await self._ops_endpoint(ctx, send)
        service = sigv4.credential_service(ctx.headers, ctx.query)
        reader = BodyReader(receive, ctx, None)
        body: bytes | None = None
        if service is None:
            service, body = await self._guess_service(ctx, reader)
        ctx.service = service
        if service not in _KNOWN_SERVICES:
            ctx.service = "unknown"
            return await send_protocol_error(send, ctx, "sagemaker", "UnknownServiceException",
                                             f"This endpoint does not serve {service!r}", 400)
        info: sigv4.SignatureInfo | None = None
        if service != "s3" and body is None:
            # Refuse what can be refused without the body (unsigned, unknown key, stale)
            # before buffering up to max_api_body bytes from an unauthenticated client.
            if self.auth is not None:
                info = await self._precheck(ctx, send, service)
                if info is None:
                    return
            body = await self._read_api_body(ctx, reader, send, service)
            if body is None:
                return
        verified = await self._authenticate(ctx, send, service, body, info)
        if verified is False:
            return
        access_key = verified.access_key if verified else _claimed_key(ctx)
        ctx.access_key = access_key
        if verified and self.auth is not None and self.auth.is_read_only(access_key) and not (
                service == "s3" and ctx.method in ("GET", "HEAD")):
            return await send_protocol_error(
                send, ctx, service, "AccessDenied",
                "This access key only reads objects (it signs presigned URLs)", 403)
        scope[ACCESS_KEY_SCOPE] = access_key
        if service == "s3":
            return await self.s3.handle(ctx, receive, send, verified or None)
        assert body is not None
        if service == "sagemaker":
            return await self._sagemaker(ctx, send, body)
        if service == "lambda":
            return await self._lambda(ctx, scope, receive, send, body)
        return await self._query(ctx, send, service, body)

    async def _authenticate(self, ctx: RequestContext, send: Send, service: str,
                            body: bytes | None, info: sigv4.SignatureInfo | None = None,
                            ) -> sigv4.VerifiedRequest | bool | None:
        """The verified request, None when auth is off, False when an error was sent.

        ``info`` is the signature :meth:`_precheck` already parsed from these headers;
        the full verification (signature, scope date, signed host) still runs on it.
        """
        if self.auth is None:
            return None
        payload_hash: str | None
        if service == "s3":
            payload_hash = ctx.headers.get("x-amz-content-sha256")
            if payload_hash is None and ctx.headers.get("authorization", "").startswith(
                    sigv4.ALGORITHM):
                await send_protocol_error(
                    send, ctx, service, "InvalidRequest",
                    "Missing required header for this request: x-amz-content-sha256", 400)
                return False
        else:
            payload_hash = hashlib.sha256(body or b"").hexdigest()
        try:
            if service == "s3" and sigv2.is_v2_signed(ctx.headers, ctx.query):
                return sigv2.verify_s3_v2(
                    method=ctx.method, resource_paths=self.s3.v2_resource_paths(ctx),
                    raw_query=ctx.raw_query, header_pairs=ctx.header_pairs,
                    lookup_secret=self.auth.lookup,
                )
            return sigv4.verify_request(
                method=ctx.method, raw_path=ctx.raw_path, raw_query=ctx.raw_query,
                header_pairs=ctx.header_pairs, payload_hash=payload_hash,
                lookup_secret=self.auth.lookup, info=info,
            )
        except sigv4.SigV4Error as exc:
            await self._auth_error(ctx, send, service, exc)
            return False

    async def _precheck(self, ctx: RequestContext, send: Send,
                        service: str) -> sigv4.SignatureInfo | None:
        """The parsed signature if the body-less checks pass, None when an error was sent."""
        assert self.auth is not None
        try:
            return sigv4.precheck(ctx.headers, ctx.query, self.auth.lookup)
        except sigv4.SigV4Error as exc:
            await self._auth_error(ctx, send, service, exc)
            return None

    async def _auth_error(self, ctx: RequestContext, send: Send, service: str,
                          exc: sigv4.SigV4Error) -> None:
        code, status = AUTH_CODES[family(service)][exc.kind]
        if service == "s3" and exc.kind is sigv4.AuthFailure.MALFORMED \
                and "authorization" not in ctx.headers:
            code = "AuthorizationQueryParametersError"
        message = exc.message if exc.kind is not sigv4.AuthFailure.MISSING else (
            "Access Denied" if service == "s3" else "Missing Authentication Token")
        await send_protocol_error(send, ctx, service, code, message, status)

    async def _guess_service(self, ctx: RequestContext,
                             reader: BodyReader) -> tuple[str, bytes | None]:
        target = ctx.headers.get("x-amz-target", "")
        if target.startswith("SageMaker"):
            return "sagemaker", None
        if ctx.path.startswith("/2015-03-31/functions"):
            return "lambda", None
        action = ctx.query_value("Action")
        if action:
            return ("sts" if action in _STS_ACTIONS else "iam"), None
        ctype = ctx.headers.get("content-type", "")
        if ctx.method == "POST" and ctx.path == "/" and ctype.startswith(
                "application/x-www-form-urlencoded"):
            if self.auth is not None:
                # Unsigned and about to be refused: the error format (query protocol) is
                # all that is needed, so the body is not read.
                return "sts", None
            try:
                body = await self._read_limited(reader, self.options.max_api_body)
            except BodyTooLarge:
                body = b""
            form = dict(parse_qsl(body.decode("utf-8", "replace")))
            act = form.get("Action", "")
            return ("sts" if act in _STS_ACTIONS or not act else "iam"), body
        return "s3", None

    async def _read_limited(self, reader: BodyReader, limit: int) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            chunk = await reader.read_chunk()
            if not chunk:
                return b"".join(parts)
            total += len(chunk)
            if total > limit:
                raise BodyTooLarge(limit)
            parts.append(chunk)

    async def _read_api_body(self, ctx: RequestContext, reader: BodyReader, send: Send,
                             service: str) -> bytes | None:
        limit = self.options.max_api_body
        length = ascii_int(ctx.headers.get("content-length"))
        too_big = length is not None and length > limit
        if not too_big:
            try:
                return await self._read_limited(reader, limit)
            except BodyTooLarge:
                too_big = True
        code = "RequestEntityTooLargeException" if family(service) == "json" else "RequestEntityTooLarge"
        await send_protocol_error(send, ctx, service, code,
                                  f"Request must be smaller than {limit} bytes", 413)
        return None

    async def _ops_endpoint(self, ctx: RequestContext, send: Send) -> None:
        ctx.service = "ops"
        if ctx.path == "/healthz":
            ctx.operation = "Health"
            body = json.dumps({"status": "ok", "pid": os.getpid()}).encode()
            return await send_response(send, ctx, 200, [("Content-Type", "application/json")],
                                       body, head=ctx.method == "HEAD")
        ctx.operation = "Metrics"
        text = self.metrics.render() + guard_metrics_text()
        if self.services.extra_metrics is not None:
            try:
                extra = await run_sync(self.services.extra_metrics)
            except Exception:
                log.exception("extra_metrics() failed; serving request metrics only")
                extra = ""
            text += extra if extra.endswith("\n") or not extra else extra + "\n"
        await send_response(send, ctx, 200, [
            ("Content-Type", "text/plain; version=0.0.4; charset=utf-8")], text.encode(),
            head=ctx.method == "HEAD")

    async def _sagemaker(self, ctx: RequestContext, send: Send, body: bytes) -> None:
        target = ctx.headers.get("x-amz-target")
        ctx.operation = operation_label("sagemaker", target.split(".", 1)[-1] if target else "")
        if self.services.sagemaker is None:
            return await send_protocol_error(send, ctx, "sagemaker", "UnknownOperationException",
                                             "SageMaker is not served by this endpoint", 400)
        host = ctx.headers.get("host", "")
        origin = request_origin.set(
            f"{ctx.scheme}://{host}" if _HOST_RE.fullmatch(host) else None)
        try:
            status, headers, out = await self._call_sagemaker(ctx, target, body)
        finally:
            request_origin.reset(origin)
        hdrs = list(headers.items())
        given = next((v for k, v in headers.items() if k.lower() == "x-amzn-requestid"), None)
        if given is None:
            hdrs.append(("x-amzn-RequestId", ctx.request_id))
        else:
            ctx.request_id = given  # the access log names the id the client was given
        if status >= 400:
            with contextlib.suppress(ValueError, AttributeError):
                ctx.error_code = str(json.loads(out).get("__type"))
        await send_response(send, ctx, status, hdrs, out)

    async def _call_sagemaker(self, ctx: RequestContext, target: str | None,
                              body: bytes) -> tuple[int, dict[str, str], bytes]:
        assert self.services.sagemaker is not None
        if self.services.inline_point_reads and ctx.operation in _INLINE_SAGEMAKER_READS:
            # A point read by primary key: SQLite in WAL mode answers it in well under a
            # millisecond without waiting on writers, which costs less than the two
            # cross-thread wake-ups a worker-thread hop takes. Everything else (writes,
            # lists that may scan, any read of a networked database) runs on threads.
            return self.services.sagemaker(target, body)
        # anyio copies the context into the worker thread: request_origin travels with it.
        return await self._in_thread(self.services.sagemaker, target, body)

    async def _lambda(self, ctx: RequestContext, scope: Scope, receive: Receive, send: Send,
                      body: bytes) -> None:
        parts = ctx.path.rstrip("/").split("/")
        ctx.operation = lambda_operation(ctx.method, parts)
        if self.services.lambda_app is None:
            return await send_protocol_error(send, ctx, "lambda", "UnknownOperationException",
                                             "Lambda is not served by this endpoint", 400)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.body":
                ctx.bytes_out += len(message.get("body", b""))
            await send(message)

        await self.services.lambda_app(scope, replay, counting_send)

    async def _query(self, ctx: RequestContext, send: Send, service: str, body: bytes) -> None:
        params = dict(ctx.query)
        if ctx.method == "POST" and body:
            try:
                params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                                        strict_parsing=False))
            except UnicodeDecodeError:
                return await send_protocol_error(send, ctx, service, "MalformedQueryString",
                                                 "Request body is not valid UTF-8", 400)
        action = params.get("Action")
        ctx.operation = operation_label(service, action or "")
        if service == "sts":
            status, out = handle_sts(action, account_id=self.services.account_id,
                                     access_key=ctx.access_key, request_id=ctx.request_id)
        else:
            status, out = handle_iam(action, params, account_id=self.services.account_id,
                                     access_key=ctx.access_key, request_id=ctx.request_id)
        if status >= 400:
            ctx.error_code = "AccessDenied" if status == 403 else "InvalidAction"
        await send_response(send, ctx, status, [("Content-Type", "text/xml"),
                                                ("x-amzn-RequestId", ctx.request_id)], out)


def _claimed_key(ctx: RequestContext) -> str | None:
    """The (unverified) access key a request names; only used under --no-auth."""
    try:
        return sigv4.extract_signature(ctx.headers, ctx.query).access_key
    except sigv4.SigV4Error:
        return None


def create_app(services: ServerServices, *, auth: AuthConfig | None,
               options: ServerOptions | None = None,
               metrics: Metrics | None = None) -> AiRegistryApp:
    """Build the ASGI app. ``auth=None`` disables authentication (``--no-auth``)."""
    return AiRegistryApp(services, auth=auth, options=options, metrics=metrics)
