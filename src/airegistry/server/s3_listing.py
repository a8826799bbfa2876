"""The S3 list operations: ListBuckets, ListObjects(V2), ListMultipartUploads, ListParts.

A mixin of ``S3Handler`` (which provides ``objects``, ``config`` and ``_xml``): query
parameters to store arguments, store pages to S3's XML.
"""

from __future__ import annotations

from typing import Any

from airegistry.server import s3_xml
from airegistry.server.asgi import RequestContext, Send, ascii_int, run_sync
from airegistry.server.s3_xml import S3Error


def max_items(ctx: RequestContext, name: str, default: int = 1000,
               cap: int | None = 1000) -> int:
    """A non-negative integer query parameter (``max-keys``, ``max-parts``...), capped."""
    text = ctx.query_value(name)
    if text is None:
        return default
    value = ascii_int(text)
    if value is None:
        raise S3Error("InvalidArgument", f"Provided {name} not an integer or within integer range",
                      ArgumentName=name, ArgumentValue=text[:64])
    return value if cap is None else min(value, cap)


#: Keys are at most 1,024 UTF-8 bytes: the marker plus this many U+10FFFF (4 bytes each,
#: the highest code point) sorts after every key that starts with the marker.
_HIGHEST = "\U0010ffff"


def url_encoding(ctx: RequestContext) -> bool:
    """Whether a listing asks for URL-encoded keys (``encoding-type=url``, the only value)."""
    enc = ctx.query_value("encoding-type")
    if enc is not None and enc != "url":
        raise S3Error("InvalidArgument", "Invalid Encoding Method specified in Request")
    return enc == "url"


def resume_after(marker: str | None, prefix: str, delimiter: str | None) -> str | None:
    """Where a listing resumes after ``marker``: past every key below it when it is a
    common prefix of this listing (S3 hands those back as markers), else just after it."""
    if not marker or not delimiter or not marker.startswith(prefix):
        return marker or None
    if not marker.endswith(delimiter) or delimiter not in marker[len(prefix):]:
        return marker
    return marker + _HIGHEST * ((1024 - len(marker.encode("utf-8"))) // 4 + 1)


class S3Listings:
    objects: Any
    config: Any
    _xml: Any

    async def list_buckets(self, ctx: RequestContext, send: Send) -> None:
        buckets = await run_sync(self.objects.list_buckets)
        await self._xml(send, ctx, s3_xml.list_buckets(buckets, self.config.owner_id))

    async def list_objects(self, ctx: RequestContext, send: Send, bucket: str) -> None:
        v2 = ctx.query_value("list-type") == "2"
        ctx.operation = "ListObjectsV2" if v2 else "ListObjects"
        prefix = ctx.query_value("prefix") or ""
        delimiter = ctx.query_value("delimiter") or None
        url_encode = url_encoding(ctx)
        max_keys = max_items(ctx, "max-keys")
        if v2:
            token = ctx.query_value("continuation-token") or None
            start_after = ctx.query_value("start-after") or None
        else:
            token = None
            start_after = ctx.query_value("marker") or None
        after = start_after if v2 else resume_after(start_after, prefix, delimiter)
        result = await run_sync(lambda: self.objects.list_objects(
            bucket, prefix=prefix, delimiter=delimiter, max_keys=max_keys,
            continuation_token=token, start_after=after))
        if v2:
            body = s3_xml.list_objects_v2(
                bucket=bucket, result=result, prefix=prefix, delimiter=delimiter,
                max_keys=max_keys, continuation_token=token, start_after=start_after,
                url_encode=url_encode)
        else:
            body = s3_xml.list_objects_v1(
                bucket=bucket, result=result, prefix=prefix, delimiter=delimiter,
                max_keys=max_keys, marker=start_after or "", url_encode=url_encode)
        await self._xml(send, ctx, body)

    async def list_multipart_uploads(self, ctx: RequestContext, send: Send, bucket: str) -> None:
        prefix = ctx.query_value("prefix") or ""
        delimiter = ctx.query_value("delimiter") or None
        key_marker = ctx.query_value("key-marker") or ""
        upload_id_marker = ctx.query_value("upload-id-marker") or ""
        url_encode = url_encoding(ctx)
        max_uploads = max_items(ctx, "max-uploads")
        listing = await run_sync(lambda: self.objects.list_multipart_uploads(
            bucket, prefix=prefix, delimiter=delimiter, key_marker=key_marker or None,
            upload_id_marker=upload_id_marker or None, max_uploads=max_uploads))
        await self._xml(send, ctx, s3_xml.list_multipart_uploads(
            bucket=bucket, listing=listing, prefix=prefix, delimiter=delimiter,
            key_marker=key_marker, upload_id_marker=upload_id_marker, max_uploads=max_uploads,
            owner_id=self.config.owner_id, url_encode=url_encode))

    async def list_parts(self, ctx: RequestContext, send: Send, bucket: str, key: str,
                         upload_id: str) -> None:
        max_parts = max_items(ctx, "max-parts")
        marker = max_items(ctx, "part-number-marker", default=0, cap=None)
        parts = await run_sync(self.objects.list_parts, bucket, key, upload_id)
        body = s3_xml.list_parts(
            bucket=bucket, key=key, upload_id=upload_id, parts=list(parts),
            max_parts=max_parts, marker=marker, owner_id=self.config.owner_id)
        await self._xml(send, ctx, body)
