"""Server-side copies: CopyObject and UploadPartCopy.

A mixin of ``S3Handler`` (which provides ``objects`` and ``_xml``). Both name their source
in ``x-amz-copy-source`` (``bucket/key``, URL-encoded, an optional ``?versionId=``) and
honour ``x-amz-copy-source-if-match`` / ``-if-none-match``; UploadPartCopy adds
``x-amz-copy-source-range: bytes=first-last``, which must lie inside the source (S3's
``InvalidArgument`` otherwise). The bytes never leave the store's process: the store
streams the source into the destination (``BlobStore.copy_object`` /
``BlobStore.upload_part_copy``), checking it as it reads.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote_to_bytes

from airegistry.server import s3_xml
from airegistry.server.asgi import RequestContext, Send, ascii_int, run_sync
from airegistry.server.s3_config_store import tagging_header
from airegistry.server.s3_requests import etag_in, user_metadata
from airegistry.server.s3_xml import S3Error

_COPY_RANGE = re.compile(r"bytes=([0-9]{1,19})-([0-9]{1,19})", re.ASCII)
_FAILED = ("PreconditionFailed", "At least one of the pre-conditions you specified did not hold",
           412)


def copy_source(ctx: RequestContext) -> tuple[str, str]:
    """The ``(bucket, key)`` of ``x-amz-copy-source``; InvalidArgument when it names none."""
    source, _, query = ctx.headers["x-amz-copy-source"].partition("?")
    try:
        source = unquote_to_bytes(source).decode("utf-8")
    except UnicodeDecodeError:
        raise S3Error("InvalidArgument", "x-amz-copy-source is not valid UTF-8") from None
    version = dict(p.partition("=")[::2] for p in query.split("&") if p).get("versionId")
    if version not in (None, "null"):
        raise S3Error("InvalidArgument", "Invalid version id specified (buckets here are "
                      "unversioned: the only version id is null)")
    src_bucket, _, src_key = source.lstrip("/").partition("/")
    if not src_bucket or not src_key:
        raise S3Error("InvalidArgument", "Copy Source must mention the source bucket and key: "
                      "sourcebucket/sourcekey")
    return src_bucket, src_key


def copy_range(value: str | None) -> tuple[int, int] | None:
    """``x-amz-copy-source-range``: ``bytes=first-last`` (inclusive), first <= last."""
    if value is None:
        return None
    match = _COPY_RANGE.fullmatch(value.strip())
    if match is None or int(match.group(1)) > int(match.group(2)):
        raise S3Error("InvalidArgument", "The x-amz-copy-source-range value must be of the form "
                      "bytes=first-last where first and last are the zero-based offsets of the "
                      "first and last bytes to copy", ArgumentName="x-amz-copy-source-range")
    return int(match.group(1)), int(match.group(2))


class S3Copies:
    objects: Any
    _xml: Any
    copy_tags: Any

    async def _source_conditions(self, ctx: RequestContext, src_bucket: str,
                                 src_key: str) -> None:
        if_match = ctx.headers.get("x-amz-copy-source-if-match")
        if_none = ctx.headers.get("x-amz-copy-source-if-none-match")
        if if_match is None and if_none is None:
            return
        src = await run_sync(self.objects.head_object, src_bucket, src_key)
        if if_match is not None and not etag_in(if_match, src.etag):
            raise S3Error(*_FAILED)
        if if_none is not None and etag_in(if_none, src.etag):
            raise S3Error(*_FAILED)

    async def copy_object(self, ctx: RequestContext, send: Send, bucket: str, key: str) -> None:
        src_bucket, src_key = copy_source(ctx)
        directive = ctx.headers.get("x-amz-metadata-directive", "COPY").upper()
        if directive not in ("COPY", "REPLACE"):
            raise S3Error("InvalidArgument", "Unknown metadata directive.")
        if directive == "COPY" and src_bucket == bucket and src_key == key:
            raise S3Error("InvalidRequest", "This copy request is illegal because it is trying "
                          "to copy an object to itself without changing the object's metadata.")
        if ctx.headers.get("x-amz-tagging-directive", "COPY").upper() not in ("COPY", "REPLACE"):
            raise S3Error("InvalidArgument", "Unknown tagging directive.",
                          ArgumentName="x-amz-tagging-directive")
        metadata = user_metadata(ctx) if directive == "REPLACE" else None
        content_type = ctx.headers.get("content-type") if directive == "REPLACE" else None
        tags = tagging_header(ctx)
        await self._source_conditions(ctx, src_bucket, src_key)
        info = await run_sync(lambda: self.objects.copy_object(
            src_bucket, src_key, bucket, key, metadata=metadata, content_type=content_type))
        await run_sync(self.copy_tags, ctx, src_bucket, src_key, bucket, key, info, tags)
        await self._xml(send, ctx, s3_xml.copy_object_result(info))

    async def upload_part_copy(self, ctx: RequestContext, send: Send, bucket: str, key: str,
                               upload_id: str) -> None:
        number = ascii_int(ctx.query_value("partNumber"))
        if number is None or not 1 <= number <= 10000:
            raise S3Error("InvalidArgument", "Part number must be an integer between 1 and "
                          "10000, inclusive", ArgumentName="partNumber")
        src_bucket, src_key = copy_source(ctx)
        byte_range = copy_range(ctx.headers.get("x-amz-copy-source-range"))
        await self._source_conditions(ctx, src_bucket, src_key)
        part = await run_sync(lambda: self.objects.upload_part_copy(
            src_bucket, src_key, bucket, key, upload_id, number, byte_range=byte_range))
        checksums = "".join(s3_xml.elem(f"Checksum{alg}", value)
                            for alg, value in (part.checksums or {}).items())
        await self._xml(send, ctx, s3_xml.document(
            "CopyPartResult", s3_xml.elem("LastModified", s3_xml.iso8601(part.last_modified))
            + s3_xml.elem("ETag", s3_xml.quoted_etag(part.etag)) + checksums))


__all__ = ["S3Copies", "copy_range", "copy_source"]
