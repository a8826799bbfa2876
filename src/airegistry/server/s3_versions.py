"""ListObjectVersions over unversioned buckets: every object once, as its ``null`` version.

Buckets here never keep versions (``docs/server.md``: versioning can be Suspended, never
Enabled), so S3's answer for such a bucket is each current object listed once with
``VersionId`` ``null`` and ``IsLatest`` true, and no delete markers. Paging follows S3:
``key-marker`` (with ``version-id-marker`` ``null``, the only version id) resumes after
that key, ``NextKeyMarker`` is the last key or common prefix of a truncated page, and a
common prefix given back as ``key-marker`` resumes after everything below it.
"""

from __future__ import annotations

from typing import Any

from airegistry.server import s3_xml
from airegistry.server.asgi import RequestContext, Send, run_sync
from airegistry.server.s3_listing import max_items, resume_after, url_encoding
from airegistry.server.s3_xml import S3Error, elem, maybe_url


def list_versions_result(*, bucket: str, result: Any, prefix: str, delimiter: str | None,
                         max_keys: int, key_marker: str, version_id_marker: str,
                         owner_id: str, url_encode: bool) -> bytes:
    parts = [elem("Name", bucket), elem("Prefix", maybe_url(prefix, url_encode)),
             elem("KeyMarker", maybe_url(key_marker, url_encode)),
             elem("VersionIdMarker", version_id_marker)]
    if result.is_truncated:
        last = max([c.key for c in result.contents] + list(result.common_prefixes), default="")
        parts += [elem("NextKeyMarker", maybe_url(last, url_encode)),
                  elem("NextVersionIdMarker", "null")]
    parts.append(elem("MaxKeys", max_keys))
    if delimiter:
        parts.append(elem("Delimiter", maybe_url(delimiter, url_encode)))
    parts.append(elem("IsTruncated", "true" if result.is_truncated else "false"))
    if url_encode:
        parts.append(elem("EncodingType", "url"))
    owner = f"<Owner>{elem('ID', owner_id)}{elem('DisplayName', owner_id)}</Owner>"
    for o in result.contents:
        parts.append(
            "<Version>" + elem("Key", maybe_url(o.key, url_encode)) + elem("VersionId", "null")
            + elem("IsLatest", "true") + elem("LastModified", s3_xml.iso8601(o.last_modified))
            + elem("ETag", s3_xml.quoted_etag(o.etag)) + elem("Size", o.size)
            + elem("StorageClass", "STANDARD") + owner + "</Version>")
    parts.extend(f"<CommonPrefixes>{elem('Prefix', maybe_url(p, url_encode))}</CommonPrefixes>"
                 for p in result.common_prefixes)
    return s3_xml.document("ListVersionsResult", "".join(parts))


class S3Versions:
    objects: Any
    config: Any
    _xml: Any

    async def list_object_versions(self, ctx: RequestContext, send: Send, bucket: str) -> None:
        prefix = ctx.query_value("prefix") or ""
        delimiter = ctx.query_value("delimiter") or None
        key_marker = ctx.query_value("key-marker") or ""
        version_marker = ctx.query_value("version-id-marker") or ""
        url_encode = url_encoding(ctx)
        if version_marker and not key_marker:
            raise S3Error("InvalidArgument", "A version-id marker cannot be specified without "
                          "a key marker.", ArgumentName="version-id-marker")
        if version_marker not in ("", "null"):
            raise S3Error("InvalidArgument", "Invalid version id specified",
                          ArgumentName="version-id-marker", ArgumentValue=version_marker[:64])
        max_keys = max_items(ctx, "max-keys")
        after = resume_after(key_marker, prefix, delimiter)
        result = await run_sync(lambda: self.objects.list_objects(
            bucket, prefix=prefix, delimiter=delimiter, max_keys=max_keys, start_after=after))
        await self._xml(send, ctx, list_versions_result(
            bucket=bucket, result=result, prefix=prefix, delimiter=delimiter, max_keys=max_keys,
            key_marker=key_marker, version_id_marker=version_marker,
            owner_id=self.config.owner_id, url_encode=url_encode))


__all__ = ["S3Versions", "list_versions_result"]
