"""The filesystem blob store: buckets and objects as files, S3 semantics (see ``BlobStore``).

On-disk layout (``root`` is the store directory, e.g. ``$AIREGISTRY_HOME/blobs``)::

    root/.secret                      random key that signs list continuation tokens
    root/tmp/                         temp files, claimed/trashed dirs (same filesystem)
    root/locks/<bucket>.lock          flock: puts share it, delete_bucket takes it exclusively
    root/buckets/<bucket>/bucket.json creation time
    root/buckets/<bucket>/objects/    one container file per object (``keypaths``, ``container``)
    root/buckets/<bucket>/uploads/<upload-id>/upload.json, part-00001 ...

Each concept lives in its own module: key escaping (``keypaths``), the on-disk container
(``container``), the atomic writer (``writer``), the verified read stream (``stream``),
listing (``listing``), multipart assembly (``multipart``) and sweeping (``sweep``). This
class holds them together: paths, the bucket lock, publishing by rename.

POSIX only (``fcntl.flock``, ``os.pread``, directory fsync).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import secrets
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from airegistry.storage.blobs.checks import (
    etag_matches,
    prepare_checks,
    resolve_range,
    verify_digests,
)
from airegistry.storage.blobs.errors import (
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    CorruptObjectError,
    InvalidBucketName,
    InvalidObjectKey,
    KeyTooLongError,
    NoSuchBucket,
    NoSuchKey,
    PreconditionFailed,
)
from airegistry.storage.blobs.fs.container import (
    BLOCK_SIZE,
    Written,
    info_from_trailer,
    object_trailer,
    read_trailer,
)
from airegistry.storage.blobs.fs.fsio import fsync_dir, fsync_dir_if_exists
from airegistry.storage.blobs.fs.keypaths import MAX_PATH_BYTES, key_components
from airegistry.storage.blobs.fs.listing import DirCache, ListingMixin, WalkState, walk
from airegistry.storage.blobs.fs.multipart import MultipartMixin
from airegistry.storage.blobs.fs.stream import ObjectStream
from airegistry.storage.blobs.fs.sweep import sweep_stale_temps, temp_name
from airegistry.storage.blobs.fs.writer import stream_to_temp
from airegistry.storage.blobs.names import (
    validate_bucket_name,
    validate_content_type,
    validate_key,
    validate_metadata,
)
from airegistry.storage.blobs.store import BlobStore
from airegistry.storage.blobs.types import Body, BucketInfo, ObjectInfo, utcnow
from airegistry.storage.tokens import TokenSigner


class FileBlobStore(ListingMixin, MultipartMixin, BlobStore):
    """The blob store on a local (or shared POSIX) filesystem; safe for many threads and processes."""

    def __init__(self, root: str | Path, *, min_part_size: int = 5 * 1024 * 1024) -> None:
        self.root = Path(root).absolute()
        self.min_part_size = int(min_part_size)
        self._tmp = self.root / "tmp"
        self._locks = self.root / "locks"
        self._buckets = self.root / "buckets"
        for d in (self.root, self._tmp, self._locks, self._buckets):
            d.mkdir(parents=True, exist_ok=True)
        self._signer = TokenSigner(self._load_secret())
        self._dir_cache = DirCache()
        self.sweep_stale_temps()

    @property
    def url(self) -> str:
        return self.root.as_uri()

    # ------------------------------------------------------------------ internals: paths

    def _bucket_dir(self, bucket: str) -> Path:
        return self._buckets / validate_bucket_name(bucket)

    def _require_bucket(self, bucket: str) -> Path:
        bdir = self._bucket_dir(bucket)
        if not (bdir / "bucket.json").is_file():
            raise NoSuchBucket(f"The specified bucket does not exist: {bucket!r}", bucket=bucket)
        return bdir

    def _object_path(self, bdir: Path, bucket: str, key: str) -> str:
        validate_key(key, bucket=bucket)
        objects = bdir / "objects"
        path = os.path.join(objects, *key_components(key))
        if len(os.fsencode(path)) > MAX_PATH_BYTES:
            raise KeyTooLongError(
                f"object key {key[:80]!r} is too long to store under {self.root}",
                bucket=bucket,
                key=key,
            )
        real_root = os.path.realpath(objects)
        real = os.path.realpath(path)
        if os.path.commonpath([real_root, real]) != real_root or real == real_root:
            raise InvalidObjectKey(
                f"object key {key[:80]!r} resolves outside bucket {bucket!r}",
                bucket=bucket,
                key=key,
            )
        return path

    def _temp_name(self, kind: str) -> str:
        return temp_name(self._tmp, kind)

    def _load_secret(self) -> bytes:
        path = self.root / ".secret"
        try:
            return bytes.fromhex(path.read_text().strip())
        except FileNotFoundError:
            pass
        except ValueError:
            raise CorruptObjectError(f"{path} is not a hex key; remove it to regenerate") from None
        tmp = self._temp_name("secret")
        with open(tmp, "w") as f:
            f.write(secrets.token_hex(32))
            f.flush()
            os.fsync(f.fileno())
        try:
            os.link(tmp, path)  # atomic create-if-absent: concurrent processes agree on one key
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        return bytes.fromhex(path.read_text().strip())

    @contextlib.contextmanager
    def _bucket_lock(self, bucket: str, *, exclusive: bool) -> Iterator[None]:
        fd = os.open(self._locks / f"{bucket}.lock", os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    # ------------------------------------------------------------------ internals: writing


    def _stream_to_temp(self, body: Any, *, algorithm: str | None, trailer: Any) -> Written:
        """Write body + trailer to a fsynced temp file of this store (see ``stream_to_temp``)."""
        return stream_to_temp(self._temp_name("obj"), body, algorithm=algorithm, trailer=trailer)

    def _discard(self, path: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(path)

    def _makedirs_below(self, base: Path, target: str) -> None:
        """Create ``target`` (inside ``base``) durably; never recreates ``base`` itself."""
        rel = os.path.relpath(target, base)
        current = str(base)
        if rel == ".":
            return
        for comp in rel.split(os.sep):
            parent = current
            current = os.path.join(current, comp)
            try:
                os.mkdir(current)
            except FileExistsError:
                continue
            fsync_dir(parent)

    def _publish(self, bucket: str, bdir: Path, tmp_path: str, final_path: str) -> None:
        """Atomically rename a finished temp file into the key's place (last writer wins)."""
        objects = bdir / "objects"
        with self._bucket_lock(bucket, exclusive=False):
            if not (bdir / "bucket.json").is_file():
                raise NoSuchBucket(
                    f"The specified bucket does not exist: {bucket!r}", bucket=bucket
                )
            for attempt in range(100):
                try:
                    self._makedirs_below(objects, os.path.dirname(final_path))
                    os.replace(tmp_path, final_path)
                    break
                except FileNotFoundError:
                    # a concurrent delete pruned a now-empty directory; build it again
                    if attempt == 99:
                        raise
            fsync_dir_if_exists(os.path.dirname(final_path))

    def _prune_dirs(self, objects: Path, start: str) -> None:
        """Remove directories left empty by a delete, up to (not including) the objects root."""
        current = start
        root = str(objects)
        while len(current) > len(root) and current.startswith(root + os.sep):
            try:
                os.rmdir(current)
            except OSError:
                return
            parent = os.path.dirname(current)
            with contextlib.suppress(OSError):
                fsync_dir(parent)
            current = parent

    def _trash(self, path: Path | str) -> None:
        """Remove a directory tree atomically from view (rename), then delete it."""
        dest = self._temp_name("trash")
        os.rename(path, dest)
        shutil.rmtree(dest, ignore_errors=True)

    # ------------------------------------------------------------------ buckets

    def create_bucket(self, name: str) -> BucketInfo:
        validate_bucket_name(name)
        created = utcnow()
        staging = self._temp_name("bucket")
        os.mkdir(staging)
        try:
            os.mkdir(os.path.join(staging, "objects"))
            os.mkdir(os.path.join(staging, "uploads"))
            with open(os.path.join(staging, "bucket.json"), "w") as f:
                json.dump({"name": name, "created": created.isoformat()}, f)
                f.flush()
                os.fsync(f.fileno())
            fsync_dir(staging)
            try:
                os.rename(staging, self._buckets / name)
            except OSError as exc:
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    raise BucketAlreadyOwnedByYou(
                        f"Your previous request to create the named bucket succeeded and you "
                        f"already own it: {name!r}",
                        bucket=name,
                    ) from None
                raise
            fsync_dir(self._buckets)
        finally:
            if os.path.exists(staging):
                shutil.rmtree(staging, ignore_errors=True)
        return BucketInfo(name=name, created=created)

    def head_bucket(self, name: str) -> BucketInfo:
        bdir = self._bucket_dir(name)
        try:
            doc = json.loads((bdir / "bucket.json").read_text())
            return BucketInfo(name=name, created=datetime.fromisoformat(doc["created"]))
        except (FileNotFoundError, NotADirectoryError):
            raise NoSuchBucket(
                f"The specified bucket does not exist: {name!r}", bucket=name
            ) from None
        except (ValueError, KeyError, TypeError):
            raise CorruptObjectError(
                f"bucket {name!r}: bucket.json is unreadable", bucket=name
            ) from None

    def list_buckets(self) -> list[BucketInfo]:
        out: list[BucketInfo] = []
        for entry in sorted(os.listdir(self._buckets)):
            try:
                validate_bucket_name(entry)
                out.append(self.head_bucket(entry))
            except (InvalidBucketName, NoSuchBucket, CorruptObjectError):
                continue
        return out

    def delete_bucket(self, name: str) -> None:
        bdir = self._require_bucket(name)
        with self._bucket_lock(name, exclusive=True):
            if not (bdir / "bucket.json").is_file():
                raise NoSuchBucket(f"The specified bucket does not exist: {name!r}", bucket=name)
            state = WalkState(b"", b"")
            for _ in walk(str(bdir / "objects"), b"", state):
                raise BucketNotEmpty(
                    f"The bucket you tried to delete is not empty: {name!r}", bucket=name
                )
            self._trash(bdir)  # pending multipart uploads go with it
            fsync_dir(self._buckets)

    # ------------------------------------------------------------------ objects: write

    def put_object(
        self,
        bucket: str,
        key: str,
        body: Body,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        content_md5: str | None = None,
        sha256_hex: str | None = None,
        checksum: tuple[str, str | None] | None = None,
    ) -> ObjectInfo:
        bdir = self._require_bucket(bucket)
        final = self._object_path(bdir, bucket, key)
        ctype = validate_content_type(content_type)
        meta = validate_metadata(metadata)
        want_md5, want_sha, algorithm, want_ck = prepare_checks(
            content_md5, sha256_hex, checksum
        )
        stamp = utcnow()

        def trailer(w: Written) -> dict[str, Any]:
            return object_trailer(key, w, ctype, meta, stamp)

        w = self._stream_to_temp(body, algorithm=algorithm, trailer=trailer)
        try:
            verify_digests(w, bucket, key, want_md5, want_sha, want_ck)
            self._publish(bucket, bdir, w.path, final)
        except BaseException:
            self._discard(w.path)
            raise
        return info_from_trailer(bucket, key, trailer(w))

    def copy_object(
        self,
        src_bucket: str,
        src_key: str,
        dst_bucket: str,
        dst_key: str,
        *,
        metadata: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> ObjectInfo:
        """Copy an object; ``None`` keeps the source's metadata / content type (S3's COPY)."""
        dbdir = self._require_bucket(dst_bucket)
        final = self._object_path(dbdir, dst_bucket, dst_key)
        new_meta = validate_metadata(metadata) if metadata is not None else None
        new_ctype = validate_content_type(content_type) if content_type is not None else None
        info, stream = self.open_object(src_bucket, src_key, verify=True)
        with stream:
            # multipart sources get a full-object checksum of the same algorithm, like S3
            algorithm = next(iter(info.checksums), None)
            stamp = utcnow()

            def trailer(w: Written) -> dict[str, Any]:
                return object_trailer(
                    dst_key,
                    w,
                    new_ctype if new_ctype is not None else info.content_type,
                    new_meta if new_meta is not None else info.metadata,
                    stamp,
                )

            w = self._stream_to_temp(stream, algorithm=algorithm, trailer=trailer)
        try:
            if w.sha256.hex() != info.sha256:  # the stream verified too; belt and braces
                raise CorruptObjectError(
                    f"s3://{src_bucket}/{src_key} changed or is corrupt during copy",
                    bucket=src_bucket,
                    key=src_key,
                )
            self._publish(dst_bucket, dbdir, w.path, final)
        except BaseException:
            self._discard(w.path)
            raise
        return info_from_trailer(dst_bucket, dst_key, trailer(w))

    def delete_object(self, bucket: str, key: str) -> None:
        """Remove a key; deleting a missing key succeeds, like S3."""
        bdir = self._require_bucket(bucket)
        path = self._object_path(bdir, bucket, key)
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError):
            return
        parent = os.path.dirname(path)
        fsync_dir_if_exists(parent)
        self._prune_dirs(bdir / "objects", parent)

    # ------------------------------------------------------------------ objects: read

    def _open_verified_file(self, bucket: str, key: str) -> tuple[IO[bytes], ObjectInfo, int, bool]:
        """Open the current version and read its trailer: (file, info, size, has block CRCs)."""
        bdir = self._require_bucket(bucket)
        path = self._object_path(bdir, bucket, key)
        try:
            f = open(path, "rb", buffering=0)  # noqa: SIM115 - handed to the caller's stream
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise NoSuchKey(
                f"The specified key does not exist: s3://{bucket}/{key}", bucket=bucket, key=key
            ) from None
        try:
            doc, data_size = read_trailer(f.fileno(), f"s3://{bucket}/{key}")
            if doc.get("key") != key:
                raise CorruptObjectError(
                    f"s3://{bucket}/{key}: stored file belongs to key {doc.get('key')!r}"
                )
            info = info_from_trailer(bucket, key, doc)
        except CorruptObjectError as exc:
            f.close()
            exc.bucket, exc.key = bucket, key
            raise
        except BaseException:
            f.close()
            raise
        return f, info, data_size, doc.get("block_size") == BLOCK_SIZE

    def head_object(self, bucket: str, key: str) -> ObjectInfo:
        f, info, _, _ = self._open_verified_file(bucket, key)
        f.close()
        return info

    def open_object(
        self,
        bucket: str,
        key: str,
        *,
        byte_range: tuple[int, int | None] | None = None,
        if_match: str | None = None,
        verify: bool = True,
    ) -> tuple[ObjectInfo, ObjectStream]:
        """Open an object for streaming; see ObjectStream for the corruption guarantee.

        ``byte_range`` is ``(first, last_inclusive)`` or ``(first, None)`` for ``bytes=N-``; a
        last beyond the end is clamped, a first at or beyond the end is InvalidRange.  The
        stream's ``content_range`` is the satisfied ``(first, last)``, or None for a full read.
        """
        f, info, size, has_blocks = self._open_verified_file(bucket, key)
        try:
            if if_match is not None and not etag_matches(if_match, info.etag):
                raise PreconditionFailed(
                    f"At least one of the pre-conditions you specified did not hold "
                    f"(If-Match {if_match!r} vs ETag {info.etag!r}) for s3://{bucket}/{key}",
                    bucket=bucket,
                    key=key,
                    details={"Condition": "If-Match"},
                )
            start, length, content_range = 0, size, None
            if byte_range is not None:
                first, last = resolve_range(byte_range, size, bucket, key)
                start, length, content_range = first, last - first + 1, (first, last)
            whole = start == 0 and length == size
            stream = ObjectStream(
                f,
                info,
                start,
                length,
                content_range=content_range,
                expected_sha256=info.sha256 if (verify and whole) else None,
                verify_blocks=verify and not whole and has_blocks,
            )
        except BaseException:
            f.close()
            raise
        return info, stream

    # ------------------------------------------------------------------ maintenance

    def sweep_stale_temps(self) -> int:
        """Delete temp files/dirs left by dead writers; returns how many entries went."""
        return sweep_stale_temps(self._tmp)
