"""The blob-store contract: what the registry needs from an S3-shaped store, written once.

Every backend (``fs.FileBlobStore`` on a local filesystem, ``s3.S3BlobStore`` on an S3
bucket) implements this class and nothing else is assumed about it: the server's S3
handler, the function service (code packages) and the SDK's embedded object port all
take a ``BlobStore``. Pick one with ``open_blob_store(url)``.

Conventions that hold for every method:

- **Names.** ``bucket`` follows S3's general-purpose bucket naming rules and ``key`` S3's
  key rules plus three of ours (no ``.``/``..`` segment, no NUL, no leading ``/``);
  both are checked before the backend is touched (``names.py``), so an invalid name is
  ``InvalidBucketName`` / ``InvalidObjectKey`` / ``KeyTooLongError`` on every backend.
- **Errors.** Only subclasses of ``errors.BlobStoreError`` are raised for anything the
  caller can act on, each carrying S3's error ``code`` and HTTP ``status``: never a
  backend's own exception, never a match on exception class names. ``StoreUnavailable``
  (503) means the backing store could not be reached and the call may be retried;
  ``AccessDenied`` (403) that it refused the registry's credentials.
- **Atomicity.** A put (single or multipart) is visible completely or not at all; a body
  that fails a digest check, a reader that raises or a client that disconnects leaves
  nothing behind. Last writer wins; a reader that opened an object keeps reading the
  version it opened.
- **Integrity.** Every object written through a store records the sha256 of its bytes.
  A full read with ``verify=True`` hands out its final bytes only once they hashed to
  that value, and otherwise raises ``CorruptObjectError``: that is how a blob damaged on
  disk or replaced behind the registry's back (an S3 object overwritten by someone else)
  is caught instead of being served.
- **Threads.** Implementations are safe to share between threads (and, for the
  filesystem, between processes on one host).

Paging: ``list_objects`` returns at most ``max_keys`` (capped at 1,000) entries in UTF-8
binary key order; ``next_continuation_token`` is opaque, bound to the bucket, prefix and
delimiter it was issued for, and valid on every process sharing the store.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from typing import Any, Protocol

from airegistry.storage.blobs.types import (
    Body,
    BucketInfo,
    ListResult,
    ObjectInfo,
    PartInfo,
    UploadListing,
)

Checksum = tuple[str, str | None]
"""A flexible checksum: (algorithm in S3's spelling, expected base64 value or None to compute)."""


class ObjectReader(Protocol):
    """What ``open_object`` returns: a binary stream plus the facts of a ranged read.

    ``content_range`` is the satisfied ``(first, last)`` of a ranged read (None for a
    full read) and ``content_length`` the number of bytes the stream will return.
    Iterating yields chunks of up to 1 MiB. Always close it (or use ``with``).
    """

    content_range: tuple[int, int] | None
    content_length: int

    def read(self, size: int | None = -1, /) -> bytes: ...
    def close(self) -> None: ...
    def __iter__(self) -> Iterator[bytes]: ...
    def __enter__(self) -> Any: ...
    def __exit__(self, *exc: object) -> Any: ...


class BlobStore(ABC):
    """Buckets of objects with S3 semantics. See the module docstring for the conventions."""

    @property
    @abstractmethod
    def url(self) -> str:
        """Where the store is, as a ``file://`` or ``s3://`` URL (never with credentials)."""

    # -- buckets -----------------------------------------------------------------------

    @abstractmethod
    def create_bucket(self, name: str) -> BucketInfo:
        """Create a bucket. ``BucketAlreadyOwnedByYou`` if it exists."""

    def ensure_bucket(self, name: str) -> BucketInfo:
        """Create the bucket unless it exists; safe when many threads/processes race."""
        from airegistry.storage.blobs.errors import BucketAlreadyOwnedByYou, NoSuchBucket

        for _ in range(100):
            try:
                return self.create_bucket(name)
            except BucketAlreadyOwnedByYou:
                pass
            try:
                return self.head_bucket(name)
            except NoSuchBucket:
                continue  # deleted between the two calls: try again
        raise NoSuchBucket(f"bucket {name!r} keeps disappearing while being ensured", bucket=name)

    @abstractmethod
    def head_bucket(self, name: str) -> BucketInfo:
        """The bucket's facts. ``NoSuchBucket`` if it does not exist."""

    def has_bucket(self, name: str) -> bool:
        """Whether the bucket exists (an invalid name is simply not one of ours)."""
        from airegistry.storage.blobs.errors import InvalidBucketName, NoSuchBucket

        try:
            self.head_bucket(name)
        except (NoSuchBucket, InvalidBucketName):
            return False
        return True

    @abstractmethod
    def list_buckets(self) -> list[BucketInfo]:
        """Every bucket, sorted by name."""

    @abstractmethod
    def delete_bucket(self, name: str) -> None:
        """Delete an empty bucket (pending multipart uploads go with it).

        ``NoSuchBucket`` if absent, ``BucketNotEmpty`` while it holds an object.
        """

    # -- objects: write ----------------------------------------------------------------

    @abstractmethod
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
        checksum: Checksum | None = None,
    ) -> ObjectInfo:
        """Store ``body`` (bytes, a binary file or an iterable of bytes) under ``key``.

        The body is streamed: memory stays flat whatever its size. ``content_md5``
        (base64), ``sha256_hex`` and ``checksum`` are what the caller says the body
        hashes to; a mismatch is ``BadDigest`` / ``XAmzContentSHA256Mismatch`` /
        ``BadDigest`` (flexible checksum) and nothing is stored. ``metadata`` names are
        lower-cased HTTP tokens, 2 KiB in all (``MetadataTooLarge``). ``NoSuchBucket``
        if the bucket is absent. Returns the stored object's facts.
        """

    def put_file(self, bucket: str, key: str, path: str | os.PathLike[str], **kwargs: Any) -> ObjectInfo:
        """``put_object`` from a local file; backends may upload it in parallel parts."""
        with open(path, "rb") as f:
            return self.put_object(bucket, key, f, **kwargs)

    @abstractmethod
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
        """Copy an object; ``None`` keeps the source's metadata / content type (S3's COPY).

        The source is verified as it is read: a corrupt source is ``CorruptObjectError``
        and nothing is written.
        """

    @abstractmethod
    def delete_object(self, bucket: str, key: str) -> None:
        """Remove a key; deleting a missing key succeeds, like S3. ``NoSuchBucket`` if absent."""

    # -- objects: read -----------------------------------------------------------------

    @abstractmethod
    def head_object(self, bucket: str, key: str) -> ObjectInfo:
        """The object's facts. ``NoSuchKey`` / ``NoSuchBucket`` if absent."""

    @abstractmethod
    def open_object(
        self,
        bucket: str,
        key: str,
        *,
        byte_range: tuple[int, int | None] | None = None,
        if_match: str | None = None,
        verify: bool = True,
    ) -> tuple[ObjectInfo, ObjectReader]:
        """Open an object for streaming: ``(facts, reader)``.

        ``byte_range`` is ``(first, last_inclusive)`` or ``(first, None)`` for
        ``bytes=N-``; a last beyond the end is clamped, a first at or beyond the end is
        ``InvalidRange``. ``if_match`` is S3's If-Match (``PreconditionFailed``). With
        ``verify`` a full read is checked against the recorded sha256 before its last
        bytes are returned, and backends that can also check ranges do.
        """

    def read_bytes(self, bucket: str, key: str) -> bytes:
        """The whole object, verified. For small objects (code packages, prompts)."""
        _, stream = self.open_object(bucket, key, verify=True)
        with stream:
            return stream.read()

    def verify_object(self, bucket: str, key: str) -> None:
        """Re-hash the stored bytes; ``CorruptObjectError`` if they differ from the record."""
        from airegistry.storage.blobs.types import CHUNK_SIZE

        _, stream = self.open_object(bucket, key, verify=True)
        with stream:
            while stream.read(CHUNK_SIZE):
                pass

    def exists(self, bucket: str, key: str) -> bool:
        """Whether the key names an object (a missing bucket is simply False)."""
        from airegistry.storage.blobs.errors import NoSuchBucket, NoSuchKey

        try:
            self.head_object(bucket, key)
        except (NoSuchKey, NoSuchBucket):
            return False
        return True

    # -- listing -----------------------------------------------------------------------

    @abstractmethod
    def list_objects(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str | None = None,
        max_keys: int = 1000,
        continuation_token: str | None = None,
        start_after: str | None = None,
    ) -> ListResult:
        """ListObjectsV2: keys with ``prefix`` after ``start_after`` (or the token's position).

        With a ``delimiter``, keys that contain it after the prefix are rolled up into
        ``common_prefixes``. A token from another bucket, prefix or delimiter, or one
        that was tampered with, is ``InvalidArgument``.
        """

    # -- multipart ---------------------------------------------------------------------

    @abstractmethod
    def create_multipart_upload(
        self,
        bucket: str,
        key: str,
        *,
        content_type: str | None = None,
        metadata: dict[str, str] | None = None,
        checksum_algorithm: str | None = None,
    ) -> str:
        """Start a multipart upload; returns its upload id."""

    @abstractmethod
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
        checksum: Checksum | None = None,
    ) -> PartInfo:
        """Store one part (1..10,000); digests as for ``put_object``. ``NoSuchUpload``."""

    def upload_part_copy(
        self,
        src_bucket: str,
        src_key: str,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        *,
        byte_range: tuple[int, int] | None = None,
        if_match: str | None = None,
    ) -> PartInfo:
        """UploadPartCopy: bytes ``first..last`` (inclusive; the whole object when None) of
        an existing object become part ``part_number`` of an upload.

        The range must lie inside the source (``InvalidArgument``, as S3 answers); the
        source is streamed through ``upload_part``, so the part is checked and stored like
        any other, and a full-object copy is verified against the source's sha256 (a
        corrupt source is ``CorruptObjectError`` and no part is stored). ``if_match`` is
        ``x-amz-copy-source-if-match`` (``PreconditionFailed``).
        """
        from airegistry.storage.blobs.errors import InvalidArgument, NoSuchUpload

        # An unknown upload is reported before the source is read (S3 checks it first).
        if not self._has_upload(bucket, key, upload_id):
            raise NoSuchUpload(f"The specified upload does not exist: {upload_id}",
                               bucket=bucket, key=key, details={"UploadId": upload_id})
        source = self.head_object(src_bucket, src_key)
        if byte_range is not None:
            first, last = byte_range
            if not 0 <= first <= last < source.size:
                raise InvalidArgument(
                    f"Range specified is not valid for source object of size: {source.size}",
                    bucket=src_bucket, key=src_key,
                    details={"ArgumentName": "x-amz-copy-source-range"})
        _, stream = self.open_object(src_bucket, src_key, byte_range=byte_range,
                                     if_match=if_match, verify=True)
        with stream:
            return self.upload_part(bucket, key, upload_id, part_number, stream)

    def _has_upload(self, bucket: str, key: str, upload_id: str) -> bool:
        """Whether ``upload_id`` is an upload of ``key`` in progress (``NoSuchUpload`` check)."""
        from airegistry.storage.blobs.errors import NoSuchUpload

        try:
            self.list_parts(bucket, key, upload_id)
        except NoSuchUpload:
            return False
        return True

    @abstractmethod
    def list_parts(self, bucket: str, key: str, upload_id: str) -> list[PartInfo]:
        """The parts received so far, by part number. ``NoSuchUpload``."""

    @abstractmethod
    def complete_multipart_upload(
        self, bucket: str, key: str, upload_id: str, parts: list[tuple[int, str]]
    ) -> ObjectInfo:
        """Join the listed ``(part number, ETag)`` parts, in ascending order, atomically.

        ``InvalidPart`` for a missing part or wrong ETag, ``InvalidPartOrder``,
        ``EntityTooSmall`` for a part under the minimum size that is not the last. The
        object's sha256 is recorded like a single put's; the upload then disappears.
        """

    @abstractmethod
    def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        """Discard an upload and its parts. ``NoSuchUpload``."""

    @abstractmethod
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
        """ListMultipartUploads: uploads in progress whose key starts with ``prefix``.

        Ordered by key, then by upload id; at most ``max_uploads`` (capped at 1,000)
        entries, common prefixes included. A page starts after ``key_marker``: with
        ``upload_id_marker``, after that upload of that key, otherwise after every upload
        of that key. With a ``delimiter``, keys that contain it after the prefix are
        rolled up into ``common_prefixes``. ``NoSuchBucket`` if the bucket is absent.
        """

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing
        """Release connections; the store must not be used afterwards."""


__all__ = ["BlobStore", "Checksum", "ObjectReader"]
