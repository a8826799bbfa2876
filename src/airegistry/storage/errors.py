"""Errors raised by the object store, shaped like S3's error responses.

Every error carries the exact S3 error ``code`` and HTTP ``status`` as class attributes so that
the HTTP layer can render S3's XML error document without a translation table, and in-process
callers can catch a precise class.  ``details`` holds the extra elements S3 puts in some error
bodies (``ActualObjectSize``, ``ProposedSize``, ``UploadId`` ...), already stringified.
"""

from __future__ import annotations


class ObjectStoreError(Exception):
    """Base class of every object-store error; ``code``/``status`` mirror S3."""

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


class NoSuchBucket(ObjectStoreError):
    code = "NoSuchBucket"
    status = 404


class NoSuchKey(ObjectStoreError):
    code = "NoSuchKey"
    status = 404


class NoSuchUpload(ObjectStoreError):
    code = "NoSuchUpload"
    status = 404


class BucketAlreadyOwnedByYou(ObjectStoreError):
    code = "BucketAlreadyOwnedByYou"
    status = 409


class BucketNotEmpty(ObjectStoreError):
    code = "BucketNotEmpty"
    status = 409


class InvalidBucketName(ObjectStoreError):
    code = "InvalidBucketName"
    status = 400


class InvalidArgument(ObjectStoreError):
    code = "InvalidArgument"
    status = 400


class InvalidRequest(ObjectStoreError):
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


class MetadataTooLarge(ObjectStoreError):
    code = "MetadataTooLarge"
    status = 400


class InvalidRange(ObjectStoreError):
    code = "InvalidRange"
    status = 416


class PreconditionFailed(ObjectStoreError):
    code = "PreconditionFailed"
    status = 412


class InvalidPart(ObjectStoreError):
    code = "InvalidPart"
    status = 400


class InvalidPartOrder(ObjectStoreError):
    code = "InvalidPartOrder"
    status = 400


class EntityTooSmall(ObjectStoreError):
    code = "EntityTooSmall"
    status = 400


class InvalidDigest(ObjectStoreError):
    """The Content-MD5 value itself is malformed (not base64 of 16 bytes)."""

    code = "InvalidDigest"
    status = 400


class BadDigest(ObjectStoreError):
    code = "BadDigest"
    status = 400


class InvalidChecksum(BadDigest):
    """A flexible checksum (x-amz-checksum-*) did not match; S3 answers 400 BadDigest."""

    code = "BadDigest"
    status = 400


class XAmzContentSHA256Mismatch(ObjectStoreError):
    code = "XAmzContentSHA256Mismatch"
    status = 400


class CorruptObjectError(ObjectStoreError):
    """Stored bytes no longer match what was recorded at write time; never serve them."""

    code = "InternalError"
    status = 500


__all__ = [
    "BadDigest",
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
    "ObjectStoreError",
    "PreconditionFailed",
    "XAmzContentSHA256Mismatch",
]
