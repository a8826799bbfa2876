"""Errors of the blob store, shaped like S3's error responses; every backend raises these.

Every error carries the exact S3 error ``code`` and HTTP ``status`` as class attributes so that
the HTTP layer can render S3's XML error document without a translation table, and in-process
callers can catch a precise class.  ``details`` holds the extra elements S3 puts in some error
bodies (``ActualObjectSize``, ``ProposedSize``, ``UploadId`` ...), already stringified.
"""

from __future__ import annotations


class BlobStoreError(Exception):
    """Base class of every blob-store error; ``code``/``status`` mirror S3."""

    code: str = "InternalError"
    status: int = 500

    def __init__(
        self,
        message: str,
        *,
        bucket: str | None = None,
        key: str | None = None,
        details: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.bucket = bucket
        self.key = key
        self.details: dict[str, str] = dict(details or {})

    @property
    def resource(self) -> str:
        """The S3 ``Resource`` element: ``/bucket/key``, ``/bucket`` or ``/``."""
        if self.bucket is None:
            return "/"
        if self.key is None:
            return f"/{self.bucket}"
        return f"/{self.bucket}/{self.key}"

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class NoSuchBucket(BlobStoreError):
    code = "NoSuchBucket"
    status = 404


class NoSuchKey(BlobStoreError):
    code = "NoSuchKey"
    status = 404


class NoSuchUpload(BlobStoreError):
    code = "NoSuchUpload"
    status = 404


class BucketAlreadyOwnedByYou(BlobStoreError):
    code = "BucketAlreadyOwnedByYou"
    status = 409


class BucketNotEmpty(BlobStoreError):
    code = "BucketNotEmpty"
    status = 409


class InvalidBucketName(BlobStoreError):
    code = "InvalidBucketName"
    status = 400


class InvalidArgument(BlobStoreError):
    code = "InvalidArgument"
    status = 400


class InvalidRequest(BlobStoreError):
    """S3's answer to a malformed checksum header or algorithm."""

    code = "InvalidRequest"
    status = 400


class InvalidObjectKey(InvalidArgument):
    """A key S3 would accept but that cannot be stored safely, or that S3 rejects outright."""

    code = "InvalidArgument"
    status = 400


class KeyTooLongError(InvalidObjectKey):
    code = "KeyTooLongError"
    status = 400


class MetadataTooLarge(BlobStoreError):
    code = "MetadataTooLarge"
    status = 400


class InvalidRange(BlobStoreError):
    code = "InvalidRange"
    status = 416


class PreconditionFailed(BlobStoreError):
    code = "PreconditionFailed"
    status = 412


class InvalidPart(BlobStoreError):
    code = "InvalidPart"
    status = 400


class InvalidPartOrder(BlobStoreError):
    code = "InvalidPartOrder"
    status = 400


class EntityTooSmall(BlobStoreError):
    code = "EntityTooSmall"
    status = 400


class InvalidDigest(BlobStoreError):
    """The Content-MD5 value itself is malformed (not base64 of 16 bytes)."""

    code = "InvalidDigest"
    status = 400


class BadDigest(BlobStoreError):
    code = "BadDigest"
    status = 400


class InvalidChecksum(BadDigest):
    """A flexible checksum (x-amz-checksum-*) did not match; S3 answers 400 BadDigest."""

    code = "BadDigest"
    status = 400


class XAmzContentSHA256Mismatch(BlobStoreError):
    code = "XAmzContentSHA256Mismatch"
    status = 400


class CorruptObjectError(BlobStoreError):
    """Stored bytes no longer match what was recorded at write time; never serve them."""

    code = "InternalError"
    status = 500


class AccessDenied(BlobStoreError):
    """The backing store refused the registry's credentials for this bucket or key."""

    code = "AccessDenied"
    status = 403


class StoreUnavailable(BlobStoreError):
    """The backing store cannot be reached (endpoint down, network, timeouts); retry later.

    Never raised half-way through a write that then counts as done: a put that fails with
    this error has stored nothing the registry will reference.
    """

    code = "ServiceUnavailable"
    status = 503


__all__ = [
    "AccessDenied",
    "BadDigest",
    "BlobStoreError",
    "BucketAlreadyOwnedByYou",
    "BucketNotEmpty",
    "CorruptObjectError",
    "EntityTooSmall",
    "InvalidArgument",
    "InvalidBucketName",
    "InvalidChecksum",
    "InvalidDigest",
    "InvalidObjectKey",
    "InvalidPart",
    "InvalidPartOrder",
    "InvalidRange",
    "InvalidRequest",
    "KeyTooLongError",
    "MetadataTooLarge",
    "NoSuchBucket",
    "NoSuchKey",
    "NoSuchUpload",
    "PreconditionFailed",
    "StoreUnavailable",
    "XAmzContentSHA256Mismatch",
]
