"""S3 REST-XML over the object store: routing, headers, streaming bodies, errors.

The handler is called after SigV4 verification of the request *headers*; the body is
verified while it streams (``x-amz-content-sha256``, Content-MD5, flexible checksums
and aws-chunked chunk signatures), and any mismatch surfaces as an exception inside
the iterator the store is consuming, so a bad or interrupted upload is never
committed.
"""

from __future__ import annotations

from typing import Any

import anyio

from airegistry.server import s3_config, s3_xml, sigv4
from airegistry.server.asgi import (
    BodyReader,
    BodyTooLarge,
    ClientDisconnected,
    Receive,
    RequestContext,
    Send,
    ascii_int,
    run_sync,
    send_response,
)
from airegistry.server.chunked import (
    ChunkedDecodeError,
)
from airegistry.server.s3_config_store import (
    ObjectTagsOnWrite,
    S3Configurations,
    tagging_header,
)
from airegistry.server.s3_copy import S3Copies
from airegistry.server.s3_listing import S3Listings
from airegistry.server.s3_object_extras import (
    S3ObjectExtras,
    part_number,
    part_range,
    parts_count,
)
from airegistry.server.s3_requests import (
    S3Config,
    apply_response_overrides,
    body_plan,
    etag_in,
    object_headers,
    parse_range,
    read_small_body,
    split_bucket_key,
    user_metadata,
    virtual_host_bucket,
)
from airegistry.server.s3_versions import S3Versions
from airegistry.server.s3_xml import S3Error
from airegistry.storage.blobs import BlobStore
from airegistry.storage.blobs.errors import BlobStoreError
from airegistry.storage.metadata.s3_configs import S3ConfigRepository

GET_CHUNK = 1 << 20
_PRECONDITION_HEADERS = ("if-match", "if-none-match")


def _store_error(exc: Exception) -> S3Error | None:
    """Blob-store errors carry S3's ``code``/``status``: the XML error is built from them."""
    if isinstance(exc, BlobStoreError):
        return S3Error(exc.code, exc.message or exc.code, exc.status,
                       **{k: str(v) for k, v in exc.details.items()})
    return None


class S3Handler(S3Listings, S3Configurations, ObjectTagsOnWrite, S3Copies, S3Versions,
                S3ObjectExtras):
    """Dispatches one S3 request to the object store and writes the response."""

    def __init__(self, objects: BlobStore, config: S3Config,
                 configs: S3ConfigRepository) -> None:
        self.objects = objects
        self.config = config
        self.configs = configs
        self._upload_limiter: anyio.CapacityLimiter | None = None

    @property
    def upload_limiter(self) -> anyio.CapacityLimiter:
        # Created lazily: a limiter belongs to the event loop that first uses it.
        if self._upload_limiter is None:
            self._upload_limiter = anyio.CapacityLimiter(self.config.upload_threads)
        return self._upload_limiter

    def v2_resource_paths(self, ctx: RequestContext) -> list[str]:
        """The path-style resource a V2 signature covers (vhost requests add the bucket)."""
        paths = [ctx.raw_path or "/"]
        bucket = virtual_host_bucket(ctx, self.config)
        if bucket is not None:
            paths.insert(0, f"/{bucket}{ctx.raw_path or '/'}")
        return paths

    # -- entry point ---------------------------------------------------------------------

    async def handle(self, ctx: RequestContext, receive: Receive, send: Send,
                     verified: sigv4.VerifiedRequest | None) -> None:
        reader = BodyReader(receive, ctx, None)
        head = ctx.method == "HEAD"
        try:
            bucket, key = split_bucket_key(ctx, self.config)
            await self._route(ctx, reader, send, verified, bucket, key)
        except ClientDisconnected:
            ctx.status = 499
            ctx.error_code = "ClientDisconnected"
        except BodyTooLarge:
            await self.send_error(send, ctx, S3Error(
                "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size"), head)
        except S3Error as exc:
            await _drain(reader, ctx)
            await self.send_error(send, ctx, exc, head)
        except ChunkedDecodeError as exc:
            await _drain(reader, ctx)
            await self.send_error(send, ctx, S3Error(exc.code, exc.message, exc.status), head)
        except Exception as exc:
            err = _store_error(exc)
            if err is None:
                raise
            await _drain(reader, ctx)
            await self.send_error(send, ctx, err, head)

    async def send_error(self, send: Send, ctx: RequestContext, exc: S3Error, head: bool) -> None:
        ctx.error_code = exc.code
        body = s3_xml.error_document(exc.code, exc.message, ctx.path, ctx.request_id, exc.extra)
        await send_response(send, ctx, exc.status, [
            ("Content-Type", "application/xml"), ("x-amz-request-id", ctx.request_id)
        ], body, head=head)

    async def _route(self, ctx: RequestContext, reader: BodyReader, send: Send,
                     verified: sigv4.VerifiedRequest | None, bucket: str | None,
                     key: str | None) -> None:
        m = ctx.method
        if bucket is None:
            if m == "GET":
                ctx.operation = "ListBuckets"
                return await self.list_buckets(ctx, send)
            raise S3Error("MethodNotAllowed", "The specified method is not allowed against this resource.", 405)
        await self._check_expected_owner(ctx, bucket)
        if key is None:
            return await self._bucket_op(ctx, reader, send, bucket)
        return await self._object_op(ctx, reader, send, verified, bucket, key)

    async def _bucket_op(self, ctx: RequestContext, reader: BodyReader, send: Send,
                         bucket: str) -> None:
        m = ctx.method
        config = s3_config.route(m, {k for k, _ in ctx.query}, on_object=False)
        if config is not None:
            action, sub, ctx.operation = config
            return await self.bucket_configuration(ctx, reader, send, bucket, action, sub)
        if ctx.has_query("versions"):
            if m != "GET":
                raise s3_config.NOT_ALLOWED
            ctx.operation = "ListObjectVersions"
            return await self.list_object_versions(ctx, send, bucket)
        if m == "PUT":
            ctx.operation = "CreateBucket"
            body = await read_small_body(reader, ctx, self.config.max_xml_body)
            if body.strip():
                s3_xml.parse_xml(body, "CreateBucketConfiguration")
            info = await run_sync(self.objects.create_bucket, bucket)
            # Configurations left by a bucket of this name that was deleted mid-way.
            await run_sync(self.configs.delete_bucket, bucket)
            return await send_response(send, ctx, 200, [*self._base_headers(ctx), ("Location", f"/{info.name}")])
        if m == "HEAD":
            ctx.operation = "HeadBucket"
            await run_sync(self.objects.head_bucket, bucket)
            return await send_response(send, ctx, 200, [*self._base_headers(ctx), ("x-amz-bucket-region", self.config.region)], head=True)
        if m == "DELETE":
            ctx.operation = "DeleteBucket"
            await run_sync(self.objects.delete_bucket, bucket)
            await run_sync(self.configs.delete_bucket, bucket)
            return await send_response(send, ctx, 204, self._base_headers(ctx))
        if m == "POST" and ctx.has_query("delete"):
            ctx.operation = "DeleteObjects"
            return await self.delete_objects(ctx, reader, send, bucket)
        if m == "GET":
            if ctx.has_query("location"):
                ctx.operation = "GetBucketLocation"
                await run_sync(self.objects.head_bucket, bucket)
                return await self._xml(send, ctx, s3_xml.location_constraint(self.config.region))
            if ctx.has_query("uploads"):
                ctx.operation = "ListMultipartUploads"
                return await self.list_multipart_uploads(ctx, send, bucket)
            return await self.list_objects(ctx, send, bucket)
        raise S3Error("MethodNotAllowed", "The specified method is not allowed against this resource.", 405)

    async def _object_op(self, ctx: RequestContext, reader: BodyReader, send: Send,
                         verified: sigv4.VerifiedRequest | None, bucket: str, key: str) -> None:
        m = ctx.method
        upload_id = ctx.query_value("uploadId")
        config = s3_config.route(m, {k for k, _ in ctx.query}, on_object=True)
        if config is not None:
            action, sub, ctx.operation = config
            if action == "extra":
                return await self.object_extra(ctx, send, bucket, key, sub)
            return await self.object_configuration(ctx, reader, send, bucket, key, action, sub)
        if m == "PUT":
            if upload_id is not None:
                if "x-amz-copy-source" in ctx.headers:
                    ctx.operation = "UploadPartCopy"
                    return await self.upload_part_copy(ctx, send, bucket, key, upload_id)
                ctx.operation = "UploadPart"
                return await self.upload_part(ctx, reader, send, verified, bucket, key, upload_id)
            if "x-amz-copy-source" in ctx.headers:
                ctx.operation = "CopyObject"
                return await self.copy_object(ctx, send, bucket, key)
            ctx.operation = "PutObject"
            return await self.put_object(ctx, reader, send, verified, bucket, key)
        if m in ("GET", "HEAD"):
            if upload_id is not None and m == "GET":
                ctx.operation = "ListParts"
                return await self.list_parts(ctx, send, bucket, key, upload_id)
            ctx.operation = "GetObject" if m == "GET" else "HeadObject"
            return await self.get_object(ctx, send, bucket, key, head=(m == "HEAD"))
        if m == "DELETE":
            if upload_id is not None:
                ctx.operation = "AbortMultipartUpload"
                await run_sync(self.objects.abort_multipart_upload, bucket, key, upload_id)
                await run_sync(self.settle_upload_tags, bucket, key, upload_id, None)
                return await send_response(send, ctx, 204, self._base_headers(ctx))
            ctx.operation = "DeleteObject"
            await run_sync(self._delete_quietly, bucket, key, True)
            return await send_response(send, ctx, 204, self._base_headers(ctx))
        if m == "POST":
            if ctx.has_query("uploads"):
                ctx.operation = "CreateMultipartUpload"
                return await self.create_multipart(ctx, send, bucket, key)
            if upload_id is not None:
                ctx.operation = "CompleteMultipartUpload"
                return await self.complete_multipart(ctx, reader, send, bucket, key, upload_id)
        raise S3Error("MethodNotAllowed", "The specified method is not allowed against this resource.", 405)

    # -- helpers -------------------------------------------------------------------------

    async def _check_expected_owner(self, ctx: RequestContext, bucket: str) -> None:
        """``x-amz-expected-bucket-owner``: a bucket of another account is 403, as on AWS.

        Every bucket here belongs to the server's account; a missing bucket stays the
        operation's own error (HeadBucket 404, CreateBucket creates it).
        """
        expected = ctx.headers.get("x-amz-expected-bucket-owner")
        if expected is None or expected.strip() == self.config.owner_id:
            return
        if await run_sync(self.objects.has_bucket, bucket):
            raise S3Error("AccessDenied", "Access Denied", 403)

    def _base_headers(self, ctx: RequestContext) -> list[tuple[str, str]]:
        return [("x-amz-request-id", ctx.request_id), ("x-amz-id-2", ctx.request_id)]

    async def _xml(self, send: Send, ctx: RequestContext, body: bytes, status: int = 200,
                   extra: list[tuple[str, str]] | None = None) -> None:
        await send_response(send, ctx, status, self._base_headers(ctx) + [
            ("Content-Type", "application/xml")] + (extra or []), body)

    def _delete_quietly(self, bucket: str, key: str, with_configs: bool = False) -> None:
        # DeleteObject on a missing key succeeds on S3 (204); the bucket must exist.
        # ``with_configs``: the object's tags go too (DeleteObjects forgets them in bulk).
        try:
            self.objects.delete_object(bucket, key)
        except Exception as exc:
            err = _store_error(exc)
            if err is None or err.code != "NoSuchKey":
                raise
        if with_configs:
            self.configs.delete_objects(bucket, [key])

    async def put_object(self, ctx: RequestContext, reader: BodyReader, send: Send,
                         verified: sigv4.VerifiedRequest | None, bucket: str, key: str) -> None:
        body, kwargs, _ = body_plan(ctx, reader, verified, self.config.max_object_size)
        await self._check_write_preconditions(ctx, bucket, key)
        metadata = user_metadata(ctx)
        tags = tagging_header(ctx)
        async with reader.prefetching():
            info = await run_sync(lambda: self.objects.put_object(
                bucket, key, body, content_type=ctx.headers.get("content-type"),
                metadata=metadata, **kwargs), limiter=self.upload_limiter)
        if tags is not None:
            await run_sync(self.tag_new_object, bucket, key, info, tags)
        headers = [*self._base_headers(ctx), ("ETag", s3_xml.quoted_etag(info.etag))]
        for alg, val in (info.checksums or {}).items():
            headers.append((f"x-amz-checksum-{alg.lower()}", val))
        await send_response(send, ctx, 200, headers)

    async def _check_write_preconditions(self, ctx: RequestContext, bucket: str, key: str) -> None:
        if_none = ctx.headers.get("if-none-match")
        if if_none is None or if_none.strip() != "*":
            return
        try:
            await run_sync(self.objects.head_object, bucket, key)
        except Exception as exc:
            err = _store_error(exc)
            if err is not None and err.code == "NoSuchKey":
                return
            raise
        raise S3Error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold", 412)

    async def upload_part(self, ctx: RequestContext, reader: BodyReader, send: Send,
                          verified: sigv4.VerifiedRequest | None, bucket: str, key: str,
                          upload_id: str) -> None:
        number = ascii_int(ctx.query_value("partNumber"))
        if number is None or not 1 <= number <= 10000:
            raise S3Error("InvalidArgument", "Part number must be an integer between 1 and 10000, inclusive",
                          ArgumentName="partNumber")
        body, kwargs, _ = body_plan(ctx, reader, verified, self.config.max_object_size)
        async with reader.prefetching():
            part = await run_sync(lambda: self.objects.upload_part(
                bucket, key, upload_id, number, body, **kwargs),
                limiter=self.upload_limiter)
        headers = [*self._base_headers(ctx), ("ETag", s3_xml.quoted_etag(part.etag))]
        for alg, val in (part.checksums or {}).items():
            headers.append((f"x-amz-checksum-{alg.lower()}", val))
        await send_response(send, ctx, 200, headers)

    # -- reads ---------------------------------------------------------------------------

    async def get_object(self, ctx: RequestContext, send: Send, bucket: str, key: str,
                         *, head: bool) -> None:
        h = ctx.headers
        checksum_mode = h.get("x-amz-checksum-mode", "").upper() == "ENABLED"
        rng = parse_range(h.get("range"))
        if_match = h.get("if-match")
        number = part_number(ctx)
        parts: list[tuple[str, str]] = []
        if number is not None:
            if rng is not None:
                raise S3Error("InvalidRequest", "Cannot specify both Range header and "
                              "partNumber query parameter")
            whole = await run_sync(self.objects.head_object, bucket, key)
            span = part_range(whole, number)
            if span is not None:
                rng = ("range", span[0], span[1])
                parts = [("x-amz-mp-parts-count", str(parts_count(whole)))]
                if_match = if_match or whole.etag  # the part of the object that was measured
        if head or (rng is not None and rng[0] == "suffix") or "if-none-match" in h:
            info = await run_sync(self.objects.head_object, bucket, key)
            if if_match is not None and not etag_in(if_match, info.etag):
                raise S3Error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold", 412)
            inm = h.get("if-none-match")
            if inm is not None and etag_in(inm, info.etag):
                return await send_response(send, ctx, 304, [*self._base_headers(ctx), ("ETag", s3_xml.quoted_etag(info.etag))], head=True)
            if head:
                headers = self._base_headers(ctx) + object_headers(
                    info, checksum_mode=checksum_mode and not parts) + parts
                if parts and rng is not None:
                    first, last = rng[1], rng[2]
                    headers += [("Content-Length", str(last - first + 1)),
                                ("Content-Range", f"bytes {first}-{last}/{info.size}")]
                    return await send_response(send, ctx, 206, headers, head=True)
                headers.append(("Content-Length", str(info.size)))
                return await send_response(send, ctx, 200, headers, head=True)
            if rng is not None and rng[0] == "suffix":
                if rng[1] == 0:
                    raise S3Error("InvalidRange", "The requested range is not satisfiable", 416)
                rng = ("range", max(0, info.size - rng[1]), None)
        byte_range = (rng[1], rng[2]) if rng is not None else None
        info, stream = await run_sync(lambda: self.objects.open_object(
            bucket, key, byte_range=byte_range, if_match=if_match))
        try:
            headers = apply_response_overrides(ctx, self._base_headers(ctx) + object_headers(
                info, checksum_mode=checksum_mode and byte_range is None)) + parts
            content_range = getattr(stream, "content_range", None)
            length = getattr(stream, "content_length", info.size)
            status = 200
            if content_range is not None:
                status = 206
                headers.append(("Content-Range",
                                f"bytes {content_range[0]}-{content_range[1]}/{info.size}"))
            headers.append(("Content-Length", str(length)))
            ctx.status = status
            await send({"type": "http.response.start", "status": status,
                        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]})
            await self._stream_out(send, ctx, stream, length)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                await run_sync(close)

    async def _stream_out(self, send: Send, ctx: RequestContext, stream: Any, length: int) -> None:
        sent = 0
        read = getattr(stream, "read", None)
        iterator = None if read is not None else iter(stream)

        def next_piece() -> bytes:
            if read is not None:
                return read(min(GET_CHUNK, length - sent))  # type: ignore[misc]
            assert iterator is not None
            return next(iterator, b"")

        while sent < length:
            piece = await run_sync(next_piece)
            if not piece:
                break
            if sent + len(piece) > length:
                piece = piece[: length - sent]
            sent += len(piece)
            ctx.bytes_out += len(piece)
            await send({"type": "http.response.body", "body": piece, "more_body": sent < length})
        if sent < length:
            # The file ended early (it changed underneath us); drop the connection rather
            # than pretend the short body is complete.
            raise RuntimeError(f"object stream ended after {sent} of {length} bytes")
        if length == 0:
            await send({"type": "http.response.body", "body": b""})

    # -- other writes --------------------------------------------------------------------

    async def delete_objects(self, ctx: RequestContext, reader: BodyReader, send: Send,
                             bucket: str) -> None:
        keys, quiet = s3_xml.parse_delete_objects(await read_small_body(reader, ctx, self.config.max_xml_body))
        await run_sync(self.objects.head_bucket, bucket)

        def work() -> tuple[list[str], list[tuple[str, str, str]]]:
            deleted, errors = [], []
            for k in keys:
                try:
                    self._delete_quietly(bucket, k)
                    deleted.append(k)
                except Exception as exc:
                    err = _store_error(exc)
                    if err is None:
                        raise
                    errors.append((k, err.code, err.message))
            self.configs.delete_objects(bucket, deleted)
            return deleted, errors

        deleted, errors = await run_sync(work)
        await self._xml(send, ctx, s3_xml.delete_result(deleted, errors, quiet))

    async def create_multipart(self, ctx: RequestContext, send: Send, bucket: str, key: str) -> None:
        alg = ctx.headers.get("x-amz-checksum-algorithm")
        if alg is not None and alg.upper() not in ("CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"):
            raise S3Error("InvalidRequest", f"Checksum algorithm {alg!r} is not supported")
        tags = tagging_header(ctx)
        upload_id = await run_sync(lambda: self.objects.create_multipart_upload(
            bucket, key, content_type=ctx.headers.get("content-type"), metadata=user_metadata(ctx),
            checksum_algorithm=alg.upper() if alg else None))
        await run_sync(self.hold_upload_tags, bucket, key, upload_id, tags)
        extra = [("x-amz-checksum-algorithm", alg.upper())] if alg else []
        await self._xml(send, ctx, s3_xml.initiate_multipart(bucket, key, upload_id), extra=extra)

    async def complete_multipart(self, ctx: RequestContext, reader: BodyReader, send: Send,
                                 bucket: str, key: str, upload_id: str) -> None:
        parts = s3_xml.parse_complete_multipart(await read_small_body(reader, ctx, self.config.max_xml_body))
        info = await run_sync(lambda: self.objects.complete_multipart_upload(
            bucket, key, upload_id, parts))
        await run_sync(self.settle_upload_tags, bucket, key, upload_id, info)
        location = f"/{bucket}/{key}"
        await self._xml(send, ctx, s3_xml.complete_multipart(location, bucket, key, info))


async def _drain(reader: BodyReader, ctx: RequestContext) -> None:
    """Read a little of an unread body before an error reply, unless the client is still
    waiting for ``100 Continue``: reading would invite it to send a body we will reject,
    while answering first lets it skip the upload entirely."""
    if reader.consumed == 0 and ctx.headers.get("expect", "").lower() == "100-continue":
        return
    await reader.drain()


__all__ = ["S3Config", "S3Error", "S3Handler", "parse_range", "split_bucket_key"]
