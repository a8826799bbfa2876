"""Object reads beyond GetObject: one part of a multipart object, GetObjectAttributes,
and the two S3 object operations that no object here can satisfy (torrent, restore).

Part layout comes from ``ObjectInfo.part_sizes``, which the stores record when a
multipart upload completes. ``partNumber`` N of such an object is the byte range of its
N-th part (206, ``Content-Range``, ``x-amz-mp-parts-count``); part 1 of an object
written in one piece is the whole object; a part past the count is 416
``InvalidPartNumber``. A multipart object whose layout was not recorded (completed before
the stores kept it, or with more distinct part sizes than the S3 backend's metadata can
hold) answers 400 ``InvalidRequest`` for a part read, naming the reason.

Every object is in the STANDARD storage class: RestoreObject is S3's 403
``InvalidObjectState`` (there is nothing archived to restore), and BitTorrent, which AWS
retired in 2021, is a 400 ``InvalidRequest``.
"""

from __future__ import annotations

from typing import Any

from airegistry.server import s3_xml
from airegistry.server.asgi import RequestContext, Send, ascii_int, run_sync
from airegistry.server.s3_xml import S3Error, elem

_ATTRIBUTES = ("ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize")


def parts_count(info: Any) -> int:
    """How many parts the object has (1 for an object written in one piece)."""
    if info.part_sizes:
        return len(info.part_sizes)
    _, _, count = info.etag.partition("-")
    return ascii_int(count) or 1


def part_number(ctx: RequestContext) -> int | None:
    text = ctx.query_value("partNumber")
    if text is None:
        return None
    number = ascii_int(text)
    if number is None or not 1 <= number <= 10000:
        raise S3Error("InvalidArgument", "Part number must be an integer between 1 and 10000, "
                      "inclusive", ArgumentName="partNumber")
    return number


def part_range(info: Any, number: int) -> tuple[int, int] | None:
    """The inclusive byte range of part ``number``; None for part 1 of a one-piece object
    (the whole object). ``InvalidPartNumber`` past the count."""
    count = parts_count(info)
    if number > count:
        raise S3Error("InvalidPartNumber", "The requested partnumber is not satisfiable", 416,
                      PartNumberRequested=str(number), ActualPartCount=str(count))
    if count == 1 and not info.part_sizes:
        return None
    if not info.part_sizes:
        raise S3Error("InvalidRequest", "The part layout of this multipart object was not "
                      "recorded (it was completed before part sizes were kept, or has too many "
                      "distinct part sizes): read it with a Range instead")
    first = sum(info.part_sizes[: number - 1])
    size = info.part_sizes[number - 1]
    if size == 0:
        raise S3Error("InvalidPartNumber", "The requested partnumber is not satisfiable", 416)
    return first, first + size - 1


class S3ObjectExtras:
    objects: Any
    _xml: Any

    async def object_extra(self, ctx: RequestContext, send: Send, bucket: str, key: str,
                           sub: str) -> None:
        info = await run_sync(self.objects.head_object, bucket, key)
        if sub == "restore":
            raise S3Error("InvalidObjectState", "Restore is not allowed for the object's current "
                          "storage class", 403, StorageClass="STANDARD")
        if sub == "torrent":
            raise S3Error("InvalidRequest", "BitTorrent is not supported (AWS retired it in "
                          "2021); download the object with GetObject")
        await self._attributes(ctx, send, info)

    async def _attributes(self, ctx: RequestContext, send: Send, info: Any) -> None:
        """GetObjectAttributes: the attributes named in ``x-amz-object-attributes``."""
        wanted = [a.strip() for a in ctx.headers.get("x-amz-object-attributes", "").split(",")
                  if a.strip()]
        unknown = [a for a in wanted if a not in _ATTRIBUTES]
        if not wanted or unknown:
            raise S3Error("InvalidArgument", "x-amz-object-attributes must list one or more of "
                          f"{', '.join(_ATTRIBUTES)}", ArgumentName="x-amz-object-attributes")
        body = []
        if "ETag" in wanted:
            body.append(elem("ETag", info.etag))
        if "Checksum" in wanted and info.checksums:
            body.append("<Checksum>" + "".join(elem(f"Checksum{alg}", value) for alg, value
                                               in info.checksums.items()) + "</Checksum>")
        if "ObjectParts" in wanted and parts_count(info) > 1:
            body.append(self._parts(ctx, info))
        if "StorageClass" in wanted:
            body.append(elem("StorageClass", "STANDARD"))
        if "ObjectSize" in wanted:
            body.append(elem("ObjectSize", info.size))
        await self._xml(send, ctx, s3_xml.document("GetObjectAttributesResponse", "".join(body)),
                        extra=[("Last-Modified", s3_xml.http_date(info.last_modified))])

    @staticmethod
    def _parts(ctx: RequestContext, info: Any) -> str:
        count = parts_count(info)
        text = [elem("PartsCount", count)]
        if info.part_sizes:
            max_parts = _header_int(ctx, "x-amz-max-parts", 1000)
            marker = _header_int(ctx, "x-amz-part-number-marker", 0)
            numbers = list(range(marker + 1, count + 1))[:max_parts]
            truncated = marker + len(numbers) < count
            text += [elem("PartNumberMarker", marker), elem("MaxParts", max_parts),
                     elem("IsTruncated", "true" if truncated else "false")]
            if truncated:
                text.append(elem("NextPartNumberMarker", numbers[-1] if numbers else marker))
            text += [f"<Part>{elem('PartNumber', n)}{elem('Size', info.part_sizes[n - 1])}</Part>"
                     for n in numbers]
        return "<ObjectParts>" + "".join(text) + "</ObjectParts>"


def _header_int(ctx: RequestContext, name: str, default: int) -> int:
    text = ctx.headers.get(name)
    if text is None:
        return default
    value = ascii_int(text.strip())
    if value is None or value > 10000:
        raise S3Error("InvalidArgument", f"{name} must be an integer between 0 and 10000",
                      ArgumentName=name)
    return value


__all__ = ["S3ObjectExtras", "part_number", "part_range", "parts_count"]
