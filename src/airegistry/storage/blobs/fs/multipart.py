"""Multipart uploads of the filesystem store: parts on disk, assembly in one verified pass.

Layout: ``root/buckets/<bucket>/uploads/<upload-id>/upload.json, part-00001 ...``; each
part uses the object container (``container.py``), so a damaged part is detected when
the upload completes instead of being baked into the object.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from airegistry.storage import checksums as ck
from airegistry.storage.blobs.checks import prepare_checks, verify_digests
from airegistry.storage.blobs.errors import (
    CorruptObjectError,
    EntityTooSmall,
    InvalidArgument,
    InvalidPart,
    InvalidPartOrder,
    InvalidRequest,
    NoSuchBucket,
    NoSuchUpload,
)
from airegistry.storage.blobs.fs.assembly import assemble_parts
from airegistry.storage.blobs.fs.container import (
    Written,
    info_from_trailer,
    part_from_trailer,
    read_trailer,
)
from airegistry.storage.blobs.fs.fsio import (
    fsync_dir,
    fsync_dir_if_exists,
)
from airegistry.storage.blobs.names import (
    normalize_etag,
    validate_content_type,
    validate_key,
    validate_metadata,
)
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

_UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_PART_RE = re.compile(r"^part-(\d{5})$")


class MultipartMixin:
    """The multipart operations of ``FileBlobStore`` (which provides the helpers below)."""

    min_part_size: int
    _require_bucket: Callable[[str], Path]
    _object_path: Callable[[Path, str, str], str]
    _temp_name: Callable[[str], str]
    _bucket_lock: Callable[..., contextlib.AbstractContextManager[None]]
    _publish: Callable[[str, Path, str, str], None]
    _discard: Callable[[str], None]
    _trash: Callable[[Path | str], None]
    _stream_to_temp: Callable[..., Written]

    def _upload_dir(self, bdir: Path, bucket: str, key: str, upload_id: str) -> tuple[Path, dict]:
        if not isinstance(upload_id, str) or not _UPLOAD_ID_RE.match(upload_id):
            raise NoSuchUpload(
                f"The specified upload does not exist: {str(upload_id)[:80]!r}",
                bucket=bucket,
                key=key,
                details={"UploadId": str(upload_id)[:80]},
            )
        udir = bdir / "uploads" / upload_id
        try:
            doc = json.loads((udir / "upload.json").read_text())
        except (FileNotFoundError, NotADirectoryError, ValueError):
            doc = None
        if not isinstance(doc, dict) or doc.get("key") != key:
            raise NoSuchUpload(
                f"The specified upload does not exist for s3://{bucket}/{key}: {upload_id}",
                bucket=bucket,
                key=key,
                details={"UploadId": upload_id},
            )
        return udir, doc

    def create_multipart_upload(
        self,
        bucket: str,
        key: str,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        checksum_algorithm: str | None = None,
    ) -> str:
        bdir = self._require_bucket(bucket)
        self._object_path(bdir, bucket, key)
        doc = {
            "key": key,
            "content_type": validate_content_type(content_type),
            "metadata": validate_metadata(metadata),
            "checksum_algorithm": (
                ck.normalize_algorithm(checksum_algorithm) if checksum_algorithm else None
            ),
            "initiated": utcnow().isoformat(),
        }
        upload_id = secrets.token_hex(16)
        staging = self._temp_name("upload")
        os.mkdir(staging)
        try:
            with open(os.path.join(staging, "upload.json"), "w") as f:
                json.dump(doc, f)
                f.flush()
                os.fsync(f.fileno())
            fsync_dir(staging)
            with self._bucket_lock(bucket, exclusive=False):
                if not (bdir / "bucket.json").is_file():
                    raise NoSuchBucket(
                        f"The specified bucket does not exist: {bucket!r}", bucket=bucket
                    )
                os.rename(staging, bdir / "uploads" / upload_id)
            fsync_dir_if_exists(bdir / "uploads")
        finally:
            if os.path.exists(staging):
                shutil.rmtree(staging, ignore_errors=True)
        return upload_id

    def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        body: Body,
        *,
        content_md5: str | None = None,
        sha256_hex: str | None = None,
        checksum: tuple[str, str | None] | None = None,
    ) -> PartInfo:
        bdir = self._require_bucket(bucket)
        validate_key(key, bucket=bucket)
        if (
            not isinstance(part_number, int)
            or isinstance(part_number, bool)
            or not 1 <= part_number <= MAX_PART_NUMBER
        ):
            raise InvalidArgument(
                f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive; "
                f"got {part_number!r}",
                bucket=bucket,
                key=key,
                details={"ArgumentName": "partNumber"},
            )
        udir, doc = self._upload_dir(bdir, bucket, key, upload_id)
        want_md5, want_sha, algorithm, want_ck = prepare_checks(
            content_md5, sha256_hex, checksum
        )
        upload_alg = doc.get("checksum_algorithm")
        if upload_alg:
            if algorithm is not None and algorithm != upload_alg:
                raise InvalidRequest(
                    f"Checksum type mismatch: upload {upload_id} uses {upload_alg}, "
                    f"part {part_number} sent {algorithm}",
                    bucket=bucket,
                    key=key,
                )
            algorithm = upload_alg
        stamp = utcnow()

        def trailer(w: Written) -> dict[str, Any]:
            return {
                "v": 1,
                "kind": "part",
                "key": key,
                "upload_id": upload_id,
                "part_number": part_number,
                "size": w.size,
                "etag": w.md5.hex(),
                "sha256": w.sha256.hex(),
                "checksums": {w.checksum[0]: ck.b64(w.checksum[1])} if w.checksum else {},
                "last_modified": stamp.isoformat(),
            }

        w = self._stream_to_temp(body, algorithm=algorithm, trailer=trailer)
        try:
            verify_digests(w, bucket, key, want_md5, want_sha, want_ck)
            final = udir / f"part-{part_number:05d}"
            try:
                os.replace(w.path, final)
            except (FileNotFoundError, NotADirectoryError):
                raise NoSuchUpload(
                    f"The specified upload does not exist (aborted or completed): {upload_id}",
                    bucket=bucket,
                    key=key,
                    details={"UploadId": upload_id},
                ) from None
            fsync_dir_if_exists(udir)
        except BaseException:
            self._discard(w.path)
            raise
        return part_from_trailer(trailer(w))

    def list_parts(self, bucket: str, key: str, upload_id: str) -> list[PartInfo]:
        bdir = self._require_bucket(bucket)
        validate_key(key, bucket=bucket)
        udir, _ = self._upload_dir(bdir, bucket, key, upload_id)
        parts: list[PartInfo] = []
        try:
            names = os.listdir(udir)
        except FileNotFoundError:
            raise NoSuchUpload(
                f"The specified upload does not exist: {upload_id}",
                bucket=bucket,
                key=key,
                details={"UploadId": upload_id},
            ) from None
        for name in names:
            if not _PART_RE.match(name):
                continue
            try:
                fd = os.open(udir / name, os.O_RDONLY)
            except OSError:
                continue
            try:
                doc, _ = read_trailer(fd, f"upload {upload_id} {name}")
                parts.append(part_from_trailer(doc))
            except (CorruptObjectError, KeyError, ValueError, TypeError):
                continue
            finally:
                os.close(fd)
        parts.sort(key=lambda p: p.part_number)
        return parts

    def complete_multipart_upload(
        self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> ObjectInfo:
        """Assemble the listed parts into the object atomically; the upload then disappears."""
        bdir = self._require_bucket(bucket)
        final = self._object_path(bdir, bucket, key)
        udir, doc = self._upload_dir(bdir, bucket, key, upload_id)
        if not parts:
            raise InvalidRequest(
                "You must specify at least one part to complete a multipart upload",
                bucket=bucket,
                key=key,
            )
        previous = 0
        for item in parts:
            try:
                number, _etag = item
            except (TypeError, ValueError):
                raise InvalidPart(
                    f"parts entries must be (part_number, etag), got {item!r}",
                    bucket=bucket,
                    key=key,
                ) from None
            if not isinstance(number, int) or not 1 <= number <= MAX_PART_NUMBER:
                raise InvalidPart(f"invalid part number {number!r}", bucket=bucket, key=key)
            if number <= previous:
                raise InvalidPartOrder(
                    "The list of parts was not in ascending order. The parts list must be "
                    f"specified in order by part number (part {number} after {previous}).",
                    bucket=bucket,
                    key=key,
                    details={"UploadId": upload_id},
                )
            previous = number

        algorithm = doc.get("checksum_algorithm")
        opened: list[tuple[IO[bytes], dict[str, Any], int]] = []
        try:
            for index, (number, etag) in enumerate(parts):
                missing = InvalidPart(
                    f"One or more of the specified parts could not be found or its entity tag "
                    f"did not match: part {number} (ETag {etag!r}) of upload {upload_id}",
                    bucket=bucket,
                    key=key,
                    details={"UploadId": upload_id, "PartNumber": str(number), "ETag": str(etag)},
                )
                try:
                    f = open(udir / f"part-{number:05d}", "rb", buffering=0)  # noqa: SIM115
                except (FileNotFoundError, NotADirectoryError):
                    if not (udir / "upload.json").is_file():
                        # completed or aborted concurrently: the whole directory went at once
                        raise NoSuchUpload(
                            f"The specified upload does not exist: {upload_id}",
                            bucket=bucket,
                            key=key,
                            details={"UploadId": upload_id},
                        ) from None
                    raise missing from None
                opened.append((f, {}, 0))
                pdoc, size = read_trailer(f.fileno(), f"upload {upload_id} part {number}")
                opened[-1] = (f, pdoc, size)
                if not isinstance(etag, str) or normalize_etag(etag) != pdoc.get("etag"):
                    raise missing
                if index < len(parts) - 1 and size < self.min_part_size:
                    raise EntityTooSmall(
                        f"Your proposed upload is smaller than the minimum allowed size: part "
                        f"{number} is {size} bytes, the minimum for all but the last part is "
                        f"{self.min_part_size}",
                        bucket=bucket,
                        key=key,
                        details={
                            "ProposedSize": str(size),
                            "MinSizeAllowed": str(self.min_part_size),
                            "PartNumber": str(number),
                            "ETag": str(etag),
                        },
                    )
                if algorithm and algorithm not in (pdoc.get("checksums") or {}):
                    raise InvalidPart(
                        f"part {number} has no {algorithm} checksum",
                        bucket=bucket,
                        key=key,
                        details={"UploadId": upload_id, "PartNumber": str(number)},
                    )
            etag_final = ck.multipart_etag([bytes.fromhex(p[1]["etag"]) for p in opened])
            checksums: dict[str, str] = {}
            if algorithm:
                digests = [base64.b64decode(p[1]["checksums"][algorithm]) for p in opened]
                checksums[algorithm] = ck.composite_b64(algorithm, digests)
            stamp = utcnow()

            def trailer(w: Written) -> dict[str, Any]:
                return {
                    "v": 1,
                    "kind": "object",
                    "key": key,
                    "size": w.size,
                    "etag": etag_final,
                    "sha256": w.sha256.hex(),
                    "content_type": doc["content_type"],
                    "metadata": doc.get("metadata") or {},
                    "checksums": checksums,
                    "last_modified": stamp.isoformat(),
                    "part_sizes": [p[2] for p in opened],
                }

            w = assemble_parts(self._temp_name("obj"), bucket, key, upload_id, opened, trailer)
        finally:
            for f, _, _ in opened:
                f.close()
        try:
            self._publish(bucket, bdir, w.path, final)
        except BaseException:
            self._discard(w.path)
            raise
        with contextlib.suppress(FileNotFoundError):
            self._trash(udir)  # a concurrent complete/abort may have removed it already
        return info_from_trailer(bucket, key, trailer(w))

    def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        bdir = self._require_bucket(bucket)
        validate_key(key, bucket=bucket)
        udir, _ = self._upload_dir(bdir, bucket, key, upload_id)
        try:
            self._trash(udir)
        except FileNotFoundError:
            raise NoSuchUpload(
                f"The specified upload does not exist: {upload_id}",
                bucket=bucket,
                key=key,
                details={"UploadId": upload_id},
            ) from None

    def list_multipart_uploads(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str | None = None,
        key_marker: str | None = None,
        upload_id_marker: str | None = None,
        max_uploads: int = 1000,
    ) -> UploadListing:
        bdir = self._require_bucket(bucket)
        found: list[UploadInfo] = []
        try:
            names = os.listdir(bdir / "uploads")
        except FileNotFoundError:  # the bucket went while we looked
            names = []
        for name in names:
            if not _UPLOAD_ID_RE.match(name):
                continue
            try:
                doc = json.loads((bdir / "uploads" / name / "upload.json").read_text())
                key, initiated = doc["key"], datetime.fromisoformat(doc["initiated"])
            except (OSError, ValueError, KeyError, TypeError):
                continue  # completed, aborted or being created concurrently
            if isinstance(key, str) and key.startswith(prefix):
                found.append(UploadInfo(key=key, upload_id=name, initiated=initiated))
        return page_uploads(found, prefix=prefix, delimiter=delimiter or None,
                            key_marker=key_marker or None,
                            upload_id_marker=upload_id_marker or None, max_uploads=max_uploads)

    # ------------------------------------------------------------------ maintenance
