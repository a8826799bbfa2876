"""Multipart uploads of the filesystem store: parts on disk, assembly in one verified pass.

Layout: ``root/buckets/<bucket>/uploads/<upload-id>/upload.json, part-00001 ...``; each
part uses the object container (``container.py``), so a damaged part is detected when
the upload completes instead of being baked into the object.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import mmap
import os
import re
import secrets
import shutil
from collections.abc import Callable
from concurrent.futures import Future
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
from airegistry.storage.blobs.fs.container import (
    BLOCK_SIZE,
    Written,
    block_table_size,
    encode_trailer,
    info_from_trailer,
    part_from_trailer,
    read_trailer,
)
from airegistry.storage.blobs.fs.fsio import (
    fsync_dir,
    fsync_dir_if_exists,
    pread_exact,
    pread_part,
    set_direct,
)
from airegistry.storage.blobs.fs.writer import BlockCrcs, TempWriter, release
from airegistry.storage.blobs.fs.writer import pool as hash_pool
from airegistry.storage.blobs.names import (
    normalize_etag,
    validate_content_type,
    validate_key,
    validate_metadata,
)
from airegistry.storage.blobs.types import MAX_PART_NUMBER, Body, ObjectInfo, PartInfo, utcnow
from airegistry.storage.checksums import crc32

ASSEMBLE_CHUNK = 4 << 20
"""Bytes read per step when joining multipart parts (a whole number of blocks)."""
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
                }

            w = self._assemble_parts(bucket, key, upload_id, opened, trailer)
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

    def _assemble_parts(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        opened: list[tuple[IO[bytes], dict[str, Any], int]],
        trailer: Any,
    ) -> Written:
        """Join the parts' data into one fsynced temp file in a single pass.

        Only what completion needs is computed: the ETag and composite checksum come from the
        parts' recorded digests, so the data is read once (ASSEMBLE_CHUNK at a time) for two
        jobs.  (1) The sha256 of the whole object, which reads of the object verify against,
        runs on a helper thread while this thread checks and writes the same buffer.  (2) Every
        256 KiB block of every part is checked against the CRC32 recorded when the part
        arrived, so a part file damaged on disk fails the completion (CorruptObjectError, the
        upload is kept and the part can be sent again) instead of being baked into an object
        whose recorded sha256 would then vouch for the damage.  When every part but the last is
        a whole number of blocks (boto3's 8 MiB parts are), the checked part CRCs are exactly
        the object's block table; otherwise the table is computed over the joined data.
        """
        sha = hashlib.sha256()
        aligned = all(size % BLOCK_SIZE == 0 for _, _, size in opened[:-1]) and all(
            pdoc.get("block_size") == BLOCK_SIZE for _, pdoc, _ in opened
        )
        table = bytearray()
        blocks = None if aligned else BlockCrcs()

        def corrupt(pdoc: dict[str, Any], problem: str) -> CorruptObjectError:
            return CorruptObjectError(
                f"upload {upload_id} part {pdoc.get('part_number')} for s3://{bucket}/{key} is "
                f"corrupt on disk ({problem}); upload the part again",
                bucket=bucket,
                key=key,
            )

        # every part's recorded block CRCs (parts written before block tables existed are
        # checked by their sha256 instead), read before the data switches to O_DIRECT
        recorded = [
            pread_exact(f.fileno(), block_table_size(size), size)
            if pdoc.get("block_size") == BLOCK_SIZE
            else None
            for f, pdoc, size in opened
        ]
        # parts are read once and then deleted: bypass the page cache for them too
        direct = [set_direct(f.fileno(), True) for f, _, _ in opened]
        steps = [
            (index, offset, min(ASSEMBLE_CHUNK, size - offset))
            for index, (_, _, size) in enumerate(opened)
            for offset in range(0, size, ASSEMBLE_CHUNK)
        ]
        # two page-aligned buffers: the next chunk is read on a helper thread while this
        # thread checks and writes the current one and another helper hashes it
        mems = [mmap.mmap(-1, ASSEMBLE_CHUNK) for _ in range(2)]
        bufs = [memoryview(m) for m in mems]

        def read(step: int) -> int:
            index, offset, n = steps[step]
            got, direct[index] = pread_part(
                opened[index][0].fileno(), bufs[step % 2], n, offset, direct[index]
            )
            return got

        path = self._temp_name("obj")
        out = TempWriter(path, ASSEMBLE_CHUNK)
        pool = hash_pool()
        reading: Future[int] | None = pool.submit(read, 0) if steps else None
        hashing: Future[None] | None = None
        part_sha: Any = None
        try:
            for step, (index, offset, n) in enumerate(steps):
                _, pdoc, size = opened[index]
                assert reading is not None
                got = reading.result()
                reading = None
                if got != n:
                    raise corrupt(pdoc, f"data ends at byte {offset + got} of {size}")
                chunk = bufs[step % 2][:got]
                if step + 1 < len(steps):
                    reading = pool.submit(read, step + 1)
                hashing = pool.submit(sha.update, chunk)
                table_in = recorded[index]
                if offset == 0:
                    part_sha = None if table_in is not None else hashlib.sha256()
                if table_in is not None:
                    for i in range(0, got, BLOCK_SIZE):
                        crc = crc32(chunk[i : i + BLOCK_SIZE]).to_bytes(4, "big")
                        block = (offset + i) // BLOCK_SIZE
                        if table_in[4 * block : 4 * block + 4] != crc:
                            raise corrupt(pdoc, f"block {block} fails its CRC32")
                        if blocks is None:
                            table += crc
                elif part_sha is not None:
                    part_sha.update(chunk)
                if blocks is not None:
                    blocks.update(chunk)
                out.write(chunk, page_aligned=True)
                hashing.result()  # this buffer is refilled two steps on: sha256 must be done
                hashing = None
                if (
                    offset + got == size
                    and part_sha is not None
                    and part_sha.hexdigest() != pdoc.get("sha256")
                ):
                    raise corrupt(pdoc, "its sha256 differs from the one recorded at upload")
            written = Written(
                path=path,
                size=sum(size for _, _, size in opened),
                md5=b"",
                sha256=sha.digest(),
                checksum=None,
            )
            doc = trailer(written)
            doc["block_size"] = BLOCK_SIZE
            table_bytes = blocks.finish() if blocks is not None else bytes(table)
            out.finish(table_bytes + encode_trailer(doc))
        except BaseException:
            for fut in (reading, hashing):
                if fut is not None:
                    with contextlib.suppress(BaseException):
                        fut.result()
            out.close()
            for view, mem in zip(bufs, mems, strict=True):
                release(view, mem)
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        out.close()
        for view, mem in zip(bufs, mems, strict=True):
            release(view, mem)
        return written

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

    # ------------------------------------------------------------------ maintenance
