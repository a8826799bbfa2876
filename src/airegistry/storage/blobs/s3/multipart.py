"""Multipart uploads of the S3 blob store: S3's own, below the store's prefix.

Parts are spooled and checked locally (``spool``) before they go up; after completion the
object is read back once for its sha256 (``_record_after_assembly``), which is recorded
by copying the object onto itself.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import timezone
from typing import Any

from airegistry.storage import checksums as ck
from airegistry.storage.blobs import errors as E
from airegistry.storage.blobs.checks import prepare_checks, verify_digests
from airegistry.storage.blobs.names import validate_content_type, validate_metadata
from airegistry.storage.blobs.s3.spool import spooled
from airegistry.storage.blobs.store import Checksum
from airegistry.storage.blobs.types import (
    MAX_PART_NUMBER,
    Body,
    ObjectInfo,
    PartInfo,
    UploadInfo,
    UploadListing,
    utcnow,
)
from airegistry.storage.blobs.uploads import page_uploads

PART_SIZES_META = "air-part-sizes"
#: Longest run-length encoding of part sizes kept in the object's metadata (S3 allows 2 KiB
#: of metadata in all; uploads of equal parts but the last encode in a few bytes).
MAX_PART_SIZES_TEXT = 1024


def encode_part_sizes(sizes: tuple[int, ...]) -> str | None:
    """``8388608*99,1234``: runs of equal sizes; None when too long to keep in metadata."""
    runs: list[list[int]] = []
    for size in sizes:
        if runs and runs[-1][0] == size:
            runs[-1][1] += 1
        else:
            runs.append([size, 1])
    text = ",".join(f"{size}*{count}" if count > 1 else str(size) for size, count in runs)
    return text if text and len(text) <= MAX_PART_SIZES_TEXT else None


def decode_part_sizes(text: str | None) -> tuple[int, ...]:
    """The sizes ``encode_part_sizes`` wrote; () for anything else (a hand-edited object)."""
    if not text:
        return ()
    sizes: list[int] = []
    try:
        for run in text.split(","):
            size, _, count = run.partition("*")
            n = int(count) if count else 1
            if not 1 <= n <= MAX_PART_NUMBER or len(sizes) + n > MAX_PART_NUMBER:
                return ()
            sizes += [int(size)] * n
    except ValueError:
        return ()
    return tuple(sizes) if all(s >= 0 for s in sizes) else ()


class S3MultipartMixin:
    """The multipart operations of ``S3BlobStore`` (which provides the helpers below)."""

    bucket: str
    client: Any
    spool_dir: Any
    _key: Callable[[str, str], str]
    _base: Callable[[str], str]
    _call: Callable[..., Any]
    _require_bucket: Callable[[str], None]
    _record: Callable[..., dict[str, str]]
    _copy_in_place: Callable[..., None]
    head_object: Callable[[str, str], ObjectInfo]
    open_object: Callable[..., Any]

    def create_multipart_upload(self, bucket: str, key: str, *, content_type: str | None = None,
                                metadata: dict[str, str] | None = None,
                                checksum_algorithm: str | None = None) -> str:
        real = self._key(bucket, key)
        meta = validate_metadata(metadata)
        if checksum_algorithm:
            meta["air-multipart-checksum"] = ck.normalize_algorithm(checksum_algorithm)
        self._require_bucket(bucket)
        response = self._call(f"s3://{bucket}/{key}", self.client.create_multipart_upload,
                              Bucket=self.bucket, Key=real, Metadata=meta,
                              ContentType=validate_content_type(content_type), bucket=bucket,
                              key=key)
        return str(response["UploadId"])

    def upload_part(self, bucket: str, key: str, upload_id: str, part_number: int, body: Body, *,
                    content_md5: str | None = None, sha256_hex: str | None = None,
                    checksum: Checksum | None = None) -> PartInfo:
        real = self._key(bucket, key)
        if (not isinstance(part_number, int) or isinstance(part_number, bool)
                or not 1 <= part_number <= MAX_PART_NUMBER):
            raise E.InvalidArgument(
                f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive; "
                f"got {part_number!r}", bucket=bucket, key=key,
                details={"ArgumentName": "partNumber"})
        want_md5, want_sha, algorithm, want_ck = prepare_checks(content_md5, sha256_hex, checksum)
        with spooled(body, algorithm, self.spool_dir) as spool:
            verify_digests(spool, bucket, key, want_md5, want_sha, want_ck)
            response = self._call(
                f"s3://{bucket}/{key} part {part_number}", self.client.upload_part,
                Bucket=self.bucket, Key=real, UploadId=upload_id, PartNumber=part_number,
                Body=spool.file, ContentLength=spool.size,
                ContentMD5=base64.b64encode(spool.md5).decode(), bucket=bucket, key=key)
        checksums = {spool.checksum[0]: ck.b64(spool.checksum[1])} if spool.checksum else {}
        return PartInfo(part_number=part_number, etag=str(response["ETag"]).strip('"'),
                        size=spool.size, last_modified=utcnow(), checksums=checksums)

    def list_parts(self, bucket: str, key: str, upload_id: str) -> list[PartInfo]:
        real = self._key(bucket, key)
        paginator = self.client.get_paginator("list_parts")
        parts = []
        try:
            for page in paginator.paginate(Bucket=self.bucket, Key=real, UploadId=upload_id):
                parts.extend(page.get("Parts", []))
        except Exception as exc:
            raise self._err(exc, f"s3://{bucket}/{key} upload {upload_id}", bucket, key) from None
        return [PartInfo(part_number=p["PartNumber"], etag=str(p["ETag"]).strip('"'),
                         size=int(p["Size"]), last_modified=p["LastModified"]) for p in parts]

    def complete_multipart_upload(self, bucket: str, key: str, upload_id: str,
                                  parts: list[tuple[int, str]]) -> ObjectInfo:
        real = self._key(bucket, key)
        if not parts:
            raise E.InvalidRequest("You must specify at least one part to complete a multipart "
                                   "upload", bucket=bucket, key=key)
        numbers = [n for n, _ in parts]
        if numbers != sorted(set(numbers)):
            raise E.InvalidPartOrder("The list of parts was not in ascending order.",
                                     bucket=bucket, key=key, details={"UploadId": upload_id})
        listed = [{"PartNumber": n, "ETag": f'"{str(e).strip(chr(34))}"'} for n, e in parts]
        # The part layout is recorded on the object (S3's own is lost when the object is
        # copied onto itself to record its sha256, below).
        received = {p.part_number: p.size for p in self.list_parts(bucket, key, upload_id)}
        sizes = tuple(received.get(n, 0) for n in numbers)
        self._call(f"s3://{bucket}/{key}", self.client.complete_multipart_upload,
                   Bucket=self.bucket, Key=real, UploadId=upload_id,
                   MultipartUpload={"Parts": listed}, bucket=bucket, key=key)
        return self._record_after_assembly(bucket, key, sizes)

    def _record_after_assembly(self, bucket: str, key: str,
                               part_sizes: tuple[int, ...]) -> ObjectInfo:
        """Read the assembled object once for its sha256, then record it on the object
        (with the sizes of its parts, for GetObject ``partNumber``)."""
        info = self.head_object(bucket, key)
        meta = dict(info.metadata)
        algorithm = meta.pop("air-multipart-checksum", None)
        _, stream = self.open_object(bucket, key, verify=False)
        with stream, spooled(stream, algorithm, self.spool_dir) as digests:
            meta = self._record(meta, digests)
        encoded = encode_part_sizes(part_sizes)
        if encoded is not None and sum(part_sizes) == info.size:
            meta[PART_SIZES_META] = encoded
        self._copy_in_place(bucket, key, bucket, key, meta, info.content_type, info.etag)
        return self.head_object(bucket, key)

    def list_multipart_uploads(self, bucket: str, *, prefix: str = "",
                               delimiter: str | None = None, key_marker: str | None = None,
                               upload_id_marker: str | None = None,
                               max_uploads: int = 1000) -> UploadListing:
        # Every upload under the prefix is gathered (S3's pages followed to the end) and
        # paged by ``page_uploads``, so order, markers and roll-ups are the filesystem's.
        # Uploads in progress are few; S3-compatible services that ignore Delimiter on
        # this call (moto does) roll up correctly too.
        base = self._base(bucket)
        self._require_bucket(bucket)
        found: list[UploadInfo] = []
        args: dict[str, Any] = {"Bucket": self.bucket, "Prefix": base + (prefix or "")}
        while True:
            page = self._call(f"s3://{bucket}/{prefix}", self.client.list_multipart_uploads,
                              **args, bucket=bucket)
            found += [UploadInfo(key=u["Key"][len(base):], upload_id=str(u["UploadId"]),
                                 initiated=u["Initiated"].astimezone(timezone.utc))
                      for u in page.get("Uploads", []) if u["Key"].startswith(base)]
            if not page.get("IsTruncated") or not page.get("NextKeyMarker"):
                break
            args["KeyMarker"] = page["NextKeyMarker"]
            args["UploadIdMarker"] = page.get("NextUploadIdMarker") or ""
        return page_uploads(found, prefix=prefix or "", delimiter=delimiter or None,
                            key_marker=key_marker or None,
                            upload_id_marker=upload_id_marker or None, max_uploads=max_uploads)

    def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        real = self._key(bucket, key)
        self._call(f"s3://{bucket}/{key} upload {upload_id}", self.client.abort_multipart_upload,
                   Bucket=self.bucket, Key=real, UploadId=upload_id, bucket=bucket, key=key)
