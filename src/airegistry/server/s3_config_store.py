"""The configuration sub-resources of buckets and objects, kept in the metadata store.

A mixin of ``S3Handler`` (which provides ``objects``, ``config``, ``configs`` and the
response helpers). A write is checked (``s3_config_rules``: botocore's shape, S3's
limits) before anything is stored, so a malformed document is answered 400 and the
previous one stays; a Get answers the stored document as it was sent, or what S3 answers
for a bucket without one; a Delete removes it (204 whether or not there was one, as on S3).

An object's tags are stored with the object's ETag and modification time: a PutObject
that replaces the object (on any process) makes the old tags unreachable, as on S3 where
a new object starts untagged, without the write path having to know about tags.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from airegistry.server import s3_config, s3_config_rules, s3_xml
from airegistry.server.asgi import BodyReader, RequestContext, Send, run_sync, send_response
from airegistry.server.s3_requests import read_small_body
from airegistry.server.s3_xml import S3Error
from airegistry.storage.metadata.s3_configs import S3ConfigRepository

#: S3's limit on configurations of one id-keyed family (inventory, metrics...) per bucket.
MAX_BY_ID = 1000


def object_stamp(info: Any) -> str:
    """What ties tags to one version of an object: its ETag and modification time."""
    return f"{info.etag}@{info.last_modified.isoformat()}"


def tagging_header(ctx: RequestContext) -> str | None:
    """``x-amz-tagging`` (PutObject, CreateMultipartUpload, CopyObject REPLACE) as the
    ``Tagging`` document PutObjectTagging would store, checked against the same limits."""
    value = ctx.headers.get("x-amz-tagging")
    if value is None:
        return None
    try:
        pairs = parse_qsl(value, keep_blank_values=True, strict_parsing=bool(value),
                          encoding="utf-8", errors="strict")
    except (ValueError, UnicodeDecodeError):
        pairs = None
    if pairs is None or len({k for k, _ in pairs}) != len(pairs):
        raise S3Error("InvalidArgument", "The header 'x-amz-tagging' shall be encoded as UTF-8 "
                      "then URLEncoded URL query parameters without tag name duplicates.",
                      ArgumentName="x-amz-tagging")
    tags = "".join(f"<Tag>{s3_xml.elem('Key', k)}{s3_xml.elem('Value', v)}</Tag>"
                   for k, v in pairs)
    document = s3_xml.document("Tagging", f"<TagSet>{tags}</TagSet>").decode("utf-8")
    s3_config_rules.check_object_tagging(document.encode("utf-8"))
    return document


#: Where the tags of ``x-amz-tagging`` on CreateMultipartUpload wait for the completion.
def _pending(upload_id: str) -> str:
    return f"upload-tagging:{upload_id}"


def _config_id(ctx: RequestContext, required: bool) -> str | None:
    value = ctx.query_value("id")
    if value is None or value == "":
        if required:
            raise S3Error("InvalidArgument", "Configuration id is required",
                          ArgumentName="id")
        return None
    if len(value) > 64 or not value.isprintable():
        raise S3Error("InvalidArgument", "Configuration id must be 1 to 64 printable characters",
                      ArgumentName="id")
    return value


class S3Configurations:
    objects: Any
    config: Any
    configs: S3ConfigRepository
    _xml: Any
    _base_headers: Any

    async def bucket_configuration(self, ctx: RequestContext, reader: BodyReader, send: Send,
                                   bucket: str, action: str, sub: str) -> None:
        entry = s3_config.BUCKET[sub]
        if action == "write":
            body = await read_small_body(reader, ctx, self.config.max_xml_body)
            await run_sync(self.objects.head_bucket, bucket)
            assert entry.put is not None
            document = s3_config_rules.check_bucket_document(sub, entry.put, body)
            name = sub
            if entry.by_id is not None:
                name = await run_sync(self._by_id_name, bucket, sub, ctx, document)
            await run_sync(self.configs.put, bucket, name, document)
            return await send_response(send, ctx, entry.put_status, self._base_headers(ctx))
        await run_sync(self.objects.head_bucket, bucket)
        if entry.by_id is not None:
            return await self._by_id(ctx, send, bucket, sub, action)
        if action == "delete":
            await run_sync(self.configs.delete, bucket, sub)
            return await send_response(send, ctx, 204, self._base_headers(ctx))
        if sub == "acl":
            return await self._xml(send, ctx, s3_config.access_control_policy(self.config.owner_id))
        stored = await run_sync(self.configs.get, bucket, sub)
        if stored is None:
            return await self._xml(send, ctx, s3_config.unset_configuration(entry))
        if sub == "policy":
            return await send_response(send, ctx, 200, [*self._base_headers(ctx), (
                "Content-Type", "application/json")], stored.document.encode("utf-8"))
        return await self._xml(send, ctx, stored.document.encode("utf-8"))

    def _by_id_name(self, bucket: str, sub: str, ctx: RequestContext, document: str) -> str:
        config_id = _config_id(ctx, required=True)
        if s3_config_rules.document_id(document) != config_id:
            raise S3Error("InvalidArgument", "The Id in the configuration must match the id "
                          "query parameter", ArgumentName="id")
        name = f"{sub}:{config_id}"
        existing = self.configs.subresources(bucket, f"{sub}:")
        if name not in existing and len(existing) >= MAX_BY_ID:
            raise S3Error("TooManyConfigurations", f"A bucket can have at most {MAX_BY_ID} "
                          f"{sub} configurations")
        return name

    async def _by_id(self, ctx: RequestContext, send: Send, bucket: str, sub: str,
                     action: str) -> None:
        """Inventory, analytics, metrics and intelligent-tiering: many per bucket, by id."""
        entry = s3_config.BUCKET[sub]
        config_id = _config_id(ctx, required=action == "delete")
        if config_id is None:  # the List operation
            ctx.operation = entry.by_id or ctx.operation
            found = await run_sync(self.configs.subresources, bucket, f"{sub}:")
            inner = "".join(_without_declaration(doc) for doc in found.values())
            return await self._xml(send, ctx, s3_xml.document(
                f"{entry.by_id}Result", f"{inner}<IsTruncated>false</IsTruncated>"))
        name = f"{sub}:{config_id}"
        if action == "delete":
            if not await run_sync(self.configs.delete, bucket, name):
                raise S3Error("NoSuchConfiguration", "The specified configuration does not "
                              "exist.", 404)
            return await send_response(send, ctx, 204, self._base_headers(ctx))
        stored = await run_sync(self.configs.get, bucket, name)
        if stored is None:
            raise S3Error("NoSuchConfiguration", "The specified configuration does not exist.",
                          404)
        return await self._xml(send, ctx, stored.document.encode("utf-8"))

    async def object_configuration(self, ctx: RequestContext, reader: BodyReader, send: Send,
                                   bucket: str, key: str, action: str, sub: str) -> None:
        if action == "write":  # PutObjectTagging (PutObjectAcl is refused by the router)
            body = await read_small_body(reader, ctx, self.config.max_xml_body)
            info = await run_sync(self.objects.head_object, bucket, key)
            document = s3_config_rules.check_object_tagging(body)
            await run_sync(lambda: self.configs.put(bucket, sub, document, key=key,
                                                    stamp=object_stamp(info)))
            return await send_response(send, ctx, 200, self._base_headers(ctx))
        info = await run_sync(self.objects.head_object, bucket, key)
        if action == "delete":
            await run_sync(self.configs.delete, bucket, sub, key)
            return await send_response(send, ctx, 204, self._base_headers(ctx))
        if sub == "acl":
            return await self._xml(send, ctx, s3_config.access_control_policy(self.config.owner_id))
        stored = await run_sync(self.configs.get, bucket, sub, key)
        if stored is None or stored.stamp != object_stamp(info):
            return await self._xml(send, ctx, s3_config.unset_configuration(s3_config.OBJECT[sub]))
        return await self._xml(send, ctx, stored.document.encode("utf-8"))


class ObjectTagsOnWrite:
    """Tags given with the write that creates an object (``x-amz-tagging``), and tags
    that go with CopyObject's ``x-amz-tagging-directive``: kept like PutObjectTagging's."""

    configs: S3ConfigRepository
    objects: Any

    def tag_new_object(self, bucket: str, key: str, info: Any, document: str | None) -> None:
        if document is not None:
            self.configs.put(bucket, "tagging", document, key=key, stamp=object_stamp(info))

    def copy_tags(self, ctx: RequestContext, src_bucket: str, src_key: str, bucket: str,
                  key: str, info: Any, replacing: str | None) -> None:
        """CopyObject: COPY (the default) copies the source's current tags; REPLACE takes
        ``x-amz-tagging`` (none: the copy is untagged)."""
        directive = ctx.headers.get("x-amz-tagging-directive", "COPY").upper()
        if directive == "REPLACE":
            return self.tag_new_object(bucket, key, info, replacing)
        stored = self.configs.get(src_bucket, "tagging", src_key)
        if stored is None:
            return None
        source = self.objects.head_object(src_bucket, src_key)
        if stored.stamp == object_stamp(source):
            self.tag_new_object(bucket, key, info, stored.document)
        return None

    def hold_upload_tags(self, bucket: str, key: str, upload_id: str,
                         document: str | None) -> None:
        if document is not None:
            self.configs.put(bucket, _pending(upload_id), document, key=key)

    def settle_upload_tags(self, bucket: str, key: str, upload_id: str, info: Any) -> None:
        """A completed (``info``) or aborted (None) upload: its held tags go to the object
        or away."""
        held = self.configs.get(bucket, _pending(upload_id), key)
        if held is None:
            return
        if info is not None:
            self.tag_new_object(bucket, key, info, held.document)
        self.configs.delete(bucket, _pending(upload_id), key)


def _without_declaration(document: str) -> str:
    """A stored document as an element of a larger one (its ``<?xml ...?>`` dropped)."""
    text = document.lstrip()
    if text.startswith("<?"):
        text = text.split("?>", 1)[1]
    return text


__all__ = ["ObjectTagsOnWrite", "S3Configurations", "object_stamp", "tagging_header"]
