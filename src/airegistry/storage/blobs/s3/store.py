"""The S3 blob store: the registry's buckets as prefixes of one real S3 bucket.

``s3://bucket/prefix`` holds, below ``prefix/``::

    buckets/<name>            marker object: the registry bucket exists (body: creation time)
    objects/<name>/<key>      the objects of registry bucket <name>

so several registries can share one real bucket under different prefixes, and nothing
but the store's own objects live in its prefix. Every object written through the store
records the sha256 of its bytes in the user metadata ``air-sha256`` (and any flexible
checksum as ``air-checksum-<alg>``, and a multipart object's part sizes, run-length
encoded, as ``air-part-sizes``); those names are hidden from ``ObjectInfo.metadata``.

What differs from the filesystem store, by the nature of S3: ranged reads are not
verified (there is no per-block record); listings leave ``ObjectInfo.sha256`` empty
(ListObjectsV2 returns no metadata); a multipart upload's sha256 is computed after
completion by reading the object back once, and recorded by copying it onto itself;
a multipart checksum is recorded for the whole object rather than as S3's composite.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from airegistry.storage import checksums as ck
from airegistry.storage.blobs import errors as E
from airegistry.storage.blobs.checks import (
    etag_matches,
    prepare_checks,
    resolve_range,
    verify_digests,
)
from airegistry.storage.blobs.names import (
    validate_bucket_name,
    validate_content_type,
    validate_key,
    validate_metadata,
)
from airegistry.storage.blobs.s3.client import is_not_found, make_client, translate
from airegistry.storage.blobs.s3.multipart import (
    PART_SIZES_META,
    S3MultipartMixin,
    decode_part_sizes,
)
from airegistry.storage.blobs.s3.reader import S3ObjectStream
from airegistry.storage.blobs.s3.spool import Spooled, hash_file, spooled
from airegistry.storage.blobs.store import BlobStore, Checksum
from airegistry.storage.blobs.types import (
    Body,
    BucketInfo,
    ListResult,
    ObjectInfo,
    utcnow,
)

_T = TypeVar("_T")
SHA_META = "air-sha256"
CHECKSUM_META = "air-checksum-"


class S3BlobStore(S3MultipartMixin, BlobStore):
    """Buckets and objects of the registry inside ``s3://<bucket>/<prefix>``."""

    def __init__(self, bucket: str, prefix: str = "", *, client: Any = None,
                 spool_dir: Path | None = None, multipart_threshold: int = 64 << 20,
                 multipart_chunksize: int = 16 << 20, check: bool = True) -> None:
        from boto3.s3.transfer import TransferConfig

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._root = f"{self.prefix}/" if self.prefix else ""
        self.client = client or make_client()
        self.spool_dir = spool_dir
        self.transfer = TransferConfig(multipart_threshold=multipart_threshold,
                                       multipart_chunksize=multipart_chunksize, use_threads=True)
        if check:
            self.check()

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def check(self) -> None:
        """Fail now, clearly, if the bucket is missing, refused or unreachable."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            if is_not_found(exc) or _code(exc) == "NoSuchBucket":
                raise E.StoreUnavailable(
                    f"The S3 bucket {self.bucket!r} of the blob store {self.url} does not exist; "
                    "create it (the registry does not create the bucket it is configured with)"
                ) from None
            raise self._err(exc, self.url) from None

    # -- naming and calls ------------------------------------------------------------------

    def _marker(self, bucket: str) -> str:
        return f"{self._root}buckets/{validate_bucket_name(bucket)}"

    def _base(self, bucket: str) -> str:
        return f"{self._root}objects/{validate_bucket_name(bucket)}/"

    def _key(self, bucket: str, key: str) -> str:
        validate_key(key, bucket=bucket)
        return self._base(bucket) + key

    def _err(self, exc: BaseException, what: str, bucket: str | None = None,
             key: str | None = None) -> E.BlobStoreError:
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(exc, E.BlobStoreError):
            return exc
        if isinstance(exc, (BotoCoreError, ClientError)):
            return translate(exc, what, bucket=bucket, key=key)
        raise exc

    def _call(self, what: str, fn: Callable[..., _T], *args: Any, bucket: str | None = None,
              key: str | None = None, **kwargs: Any) -> _T:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            raise self._err(exc, what, bucket, key) from None

    def _require_bucket(self, bucket: str) -> None:
        self.head_bucket(bucket)

    # -- buckets -----------------------------------------------------------------------

    def create_bucket(self, name: str) -> BucketInfo:
        created = utcnow()
        body = json.dumps({"name": name, "created": created.isoformat()}).encode()
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._marker(name), Body=body,
                                   IfNoneMatch="*")
        except Exception as exc:
            if _code(exc) in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise E.BucketAlreadyOwnedByYou(
                    f"Your previous request to create the named bucket succeeded and you "
                    f"already own it: {name!r}", bucket=name) from None
            raise self._err(exc, f"bucket {name}", name) from None
        return BucketInfo(name=name, created=created)

    def head_bucket(self, name: str) -> BucketInfo:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._marker(name))
            doc = json.loads(response["Body"].read())
            return BucketInfo(name=name, created=datetime.fromisoformat(doc["created"]))
        except E.BlobStoreError:
            raise
        except (ValueError, KeyError, TypeError):
            raise E.CorruptObjectError(f"bucket {name!r}: its marker is unreadable",
                                       bucket=name) from None
        except Exception as exc:
            if is_not_found(exc):
                raise E.NoSuchBucket(f"The specified bucket does not exist: {name!r}",
                                     bucket=name) from None
            raise self._err(exc, f"bucket {name}", name) from None

    def list_buckets(self) -> list[BucketInfo]:
        out = []
        for item in self._list_all(f"{self._root}buckets/"):
            name = item["Key"].rsplit("/", 1)[-1]
            try:
                out.append(self.head_bucket(name))
            except (E.InvalidBucketName, E.NoSuchBucket, E.CorruptObjectError):
                continue
        return sorted(out, key=lambda b: b.name)

    def _list_all(self, prefix: str) -> list[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        items: list[dict[str, Any]] = []
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                items.extend(page.get("Contents", []))
        except Exception as exc:
            raise self._err(exc, f"s3://{self.bucket}/{prefix}") from None
        return items

    def delete_bucket(self, name: str) -> None:
        self._require_bucket(name)
        base = self._base(name)
        page = self._call(f"bucket {name}", self.client.list_objects_v2, Bucket=self.bucket,
                          Prefix=base, MaxKeys=1, bucket=name)
        if page.get("KeyCount", 0):
            raise E.BucketNotEmpty(f"The bucket you tried to delete is not empty: {name!r}",
                                   bucket=name)
        uploads = self._call(f"bucket {name}", self.client.list_multipart_uploads,
                             Bucket=self.bucket, Prefix=base, bucket=name)
        for upload in uploads.get("Uploads", []):
            self._call(f"bucket {name}", self.client.abort_multipart_upload, Bucket=self.bucket,
                       Key=upload["Key"], UploadId=upload["UploadId"], bucket=name)
        self._call(f"bucket {name}", self.client.delete_object, Bucket=self.bucket,
                   Key=self._marker(name), bucket=name)

    # -- writes ------------------------------------------------------------------------

    def _record(self, metadata: dict[str, str], digests: Spooled) -> dict[str, str]:
        meta = dict(metadata)
        meta[SHA_META] = digests.sha256.hex()
        if digests.checksum is not None:
            meta[CHECKSUM_META + digests.checksum[0].lower()] = ck.b64(digests.checksum[1])
        return meta

    def _upload(self, bucket: str, key: str, source: Any, *, content_type: str,
                metadata: dict[str, str], content_md5: bytes | None = None,
                size: int | None = None) -> None:
        extra: dict[str, Any] = {"ContentType": content_type, "Metadata": metadata}
        what = f"s3://{bucket}/{key}"
        if isinstance(source, (str, Path)):
            self._call(what, self.client.upload_file, str(source), self.bucket,
                       self._key(bucket, key), ExtraArgs=extra, Config=self.transfer,
                       bucket=bucket, key=key)
        elif size is not None and size < self.transfer.multipart_threshold:
            # one PUT, with Content-MD5 so S3 checks the bytes it received
            md5 = {"ContentMD5": base64.b64encode(content_md5).decode()} if content_md5 else {}
            self._call(what, self.client.put_object, Bucket=self.bucket,
                       Key=self._key(bucket, key), Body=source, ContentLength=size, **extra,
                       **md5, bucket=bucket, key=key)
        else:
            self._call(what, self.client.upload_fileobj, source, self.bucket,
                       self._key(bucket, key), ExtraArgs=extra, Config=self.transfer,
                       bucket=bucket, key=key)

    def put_object(self, bucket: str, key: str, body: Body, *, content_type: str | None = None,
                   metadata: dict[str, str] | None = None, content_md5: str | None = None,
                   sha256_hex: str | None = None, checksum: Checksum | None = None) -> ObjectInfo:
        self._key(bucket, key)
        ctype = validate_content_type(content_type)
        meta = validate_metadata(metadata)
        want_md5, want_sha, algorithm, want_ck = prepare_checks(content_md5, sha256_hex, checksum)
        self._require_bucket(bucket)
        with spooled(body, algorithm, self.spool_dir) as spool:
            verify_digests(spool, bucket, key, want_md5, want_sha, want_ck)
            self._upload(bucket, key, spool.file, content_type=ctype,
                         metadata=self._record(meta, spool), content_md5=spool.md5,
                         size=spool.size)
        return self.head_object(bucket, key)

    def put_file(self, bucket: str, key: str, path: Any, **kwargs: Any) -> ObjectInfo:
        """Hash the file in place, then let boto3 upload it (in parallel parts when large)."""
        self._key(bucket, key)
        if set(kwargs) - {"content_type", "metadata"}:
            return super().put_file(bucket, key, path, **kwargs)
        ctype = validate_content_type(kwargs.get("content_type"))
        meta = validate_metadata(kwargs.get("metadata"))
        self._require_bucket(bucket)
        digests = hash_file(path, None)
        self._upload(bucket, key, path, content_type=ctype, metadata=self._record(meta, digests))
        info = self.head_object(bucket, key)
        if info.sha256 != digests.sha256.hex() or info.size != digests.size:
            raise E.CorruptObjectError(f"{path} changed while it was uploaded to s3://{bucket}/{key}",
                                       bucket=bucket, key=key)
        return info

    def copy_object(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str, *,
                    metadata: dict[str, str] | None = None,
                    content_type: str | None = None) -> ObjectInfo:
        """A server-side copy; the source's recorded sha256 goes with it, so a later
        verified read of the copy still catches a source that was already corrupt."""
        src = self.head_object(src_bucket, src_key)
        self._key(dst_bucket, dst_key)
        self._require_bucket(dst_bucket)
        meta = validate_metadata(metadata) if metadata is not None else dict(src.metadata)
        meta[SHA_META] = src.sha256
        for alg, value in src.checksums.items():
            meta[CHECKSUM_META + alg.lower()] = value
        ctype = validate_content_type(content_type) if content_type is not None else src.content_type
        self._copy_in_place(src_bucket, src_key, dst_bucket, dst_key, meta, ctype, src.etag)
        return self.head_object(dst_bucket, dst_key)

    def _copy_in_place(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str,
                       meta: dict[str, str], ctype: str, etag: str) -> None:
        source = {"Bucket": self.bucket, "Key": self._key(src_bucket, src_key)}
        extra = {"MetadataDirective": "REPLACE", "Metadata": meta, "ContentType": ctype,
                 "CopySourceIfMatch": f'"{etag}"'}
        self._call(f"s3://{dst_bucket}/{dst_key}", self.client.copy, source, self.bucket,
                   self._key(dst_bucket, dst_key), ExtraArgs=extra, Config=self.transfer,
                   bucket=dst_bucket, key=dst_key)

    def delete_object(self, bucket: str, key: str) -> None:
        real = self._key(bucket, key)
        self._require_bucket(bucket)
        self._call(f"s3://{bucket}/{key}", self.client.delete_object, Bucket=self.bucket,
                   Key=real, bucket=bucket, key=key)

    # -- reads -------------------------------------------------------------------------

    def _info(self, bucket: str, key: str, response: dict[str, Any]) -> ObjectInfo:
        raw = {k.lower(): v for k, v in (response.get("Metadata") or {}).items()}
        checksums = {k[len(CHECKSUM_META):].upper(): v for k, v in raw.items()
                     if k.startswith(CHECKSUM_META)}
        meta = {k: v for k, v in raw.items() if k not in (SHA_META, PART_SIZES_META)
                and not k.startswith(CHECKSUM_META)}
        size = response.get("ContentLength", 0)
        if "ContentRange" in response:
            size = int(str(response["ContentRange"]).rsplit("/", 1)[1])
        modified = response.get("LastModified") or utcnow()
        return ObjectInfo(
            bucket=bucket, key=key, size=int(size), etag=str(response.get("ETag", "")).strip('"'),
            sha256=raw.get(SHA_META, ""), last_modified=modified.astimezone(timezone.utc),
            content_type=response.get("ContentType") or "binary/octet-stream",
            metadata=meta, checksums=checksums,
            part_sizes=decode_part_sizes(raw.get(PART_SIZES_META)),
        )

    def _missing(self, exc: BaseException, bucket: str, key: str) -> E.BlobStoreError:
        if is_not_found(exc):
            self._require_bucket(bucket)  # NoSuchBucket is the better error
            return E.NoSuchKey(f"The specified key does not exist: s3://{bucket}/{key}",
                               bucket=bucket, key=key)
        return self._err(exc, f"s3://{bucket}/{key}", bucket, key)

    def head_object(self, bucket: str, key: str) -> ObjectInfo:
        real = self._key(bucket, key)
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=real)
        except Exception as exc:
            raise self._missing(exc, bucket, key) from None
        return self._info(bucket, key, response)

    def open_object(self, bucket: str, key: str, *, byte_range: tuple[int, int | None] | None = None,
                    if_match: str | None = None, verify: bool = True) -> tuple[ObjectInfo, Any]:
        info = self.head_object(bucket, key)
        if if_match is not None and not etag_matches(if_match, info.etag):
            raise E.PreconditionFailed(
                f"At least one of the pre-conditions you specified did not hold "
                f"(If-Match {if_match!r} vs ETag {info.etag!r}) for s3://{bucket}/{key}",
                bucket=bucket, key=key, details={"Condition": "If-Match"})
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(bucket, key),
                                "IfMatch": f'"{info.etag}"'}
        content_range = None
        length = info.size
        if byte_range is not None:
            first, last = resolve_range(byte_range, info.size, bucket, key)
            args["Range"] = f"bytes={first}-{last}"
            content_range, length = (first, last), last - first + 1
        try:
            response = self.client.get_object(**args)
        except Exception as exc:
            if _code(exc) in ("PreconditionFailed", "412"):
                raise E.CorruptObjectError(
                    f"s3://{bucket}/{key} changed while it was being opened", bucket=bucket,
                    key=key) from None
            raise self._missing(exc, bucket, key) from None
        whole = content_range is None or length == info.size
        stream = S3ObjectStream(
            response["Body"], info, length, content_range=content_range,
            verify=verify and whole,
            translate=lambda exc: self._err(exc, f"s3://{bucket}/{key}", bucket, key))
        return info, stream

    def list_objects(self, bucket: str, *, prefix: str = "", delimiter: str | None = None,
                     max_keys: int = 1000, continuation_token: str | None = None,
                     start_after: str | None = None) -> ListResult:
        base = self._base(bucket)
        self._require_bucket(bucket)
        prefix = prefix or ""
        delimiter = delimiter or None
        if not isinstance(max_keys, int) or isinstance(max_keys, bool) or max_keys < 0:
            raise E.InvalidArgument(f"max-keys must be a non-negative integer, got {max_keys!r}",
                                    bucket=bucket, details={"ArgumentName": "max-keys"})
        if max_keys == 0:
            return ListResult([], [], False, None, 0)
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": base + prefix,
                                "MaxKeys": min(max_keys, 1000)}
        if delimiter:
            args["Delimiter"] = delimiter
        if continuation_token is not None:
            args["ContinuationToken"] = _unwrap_token(continuation_token, bucket, prefix, delimiter)
        elif start_after:
            args["StartAfter"] = base + start_after
        page = self._call(f"s3://{bucket}/{prefix}", self.client.list_objects_v2, **args,
                          bucket=bucket)
        contents = [
            ObjectInfo(bucket=bucket, key=item["Key"][len(base):], size=int(item["Size"]),
                       etag=str(item.get("ETag", "")).strip('"'), sha256="",
                       last_modified=item["LastModified"].astimezone(timezone.utc),
                       content_type="binary/octet-stream")
            for item in page.get("Contents", [])
        ]
        common = [p["Prefix"][len(base):] for p in page.get("CommonPrefixes", [])]
        token = page.get("NextContinuationToken") if page.get("IsTruncated") else None
        return ListResult(contents, common, bool(token),
                          _wrap_token(token, bucket, prefix, delimiter) if token else None,
                          len(contents) + len(common))

def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str((response or {}).get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


def _wrap_token(token: str, bucket: str, prefix: str, delimiter: str | None) -> str:
    doc = {"b": bucket, "p": prefix, "d": delimiter, "t": token}
    return base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()


def _unwrap_token(token: str, bucket: str, prefix: str, delimiter: str | None) -> str:
    """S3's own token, once it is known to belong to this listing (S3 verifies the rest)."""
    bad = E.InvalidArgument("The continuation token provided is incorrect", bucket=bucket,
                            details={"ArgumentName": "continuation-token"})
    try:
        doc = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError, AttributeError):
        raise bad from None
    if not isinstance(doc, dict) or (doc.get("b"), doc.get("p"), doc.get("d")) != (
            bucket, prefix, delimiter) or not isinstance(doc.get("t"), str):
        raise bad
    return doc["t"]


__all__ = ["S3BlobStore"]
