"""S3's rules for bucket names, keys, user metadata and content types, for every backend.

Checked before a backend is called, so a name the filesystem store would refuse is
refused by the S3 store too, with the same error, and a key that could escape a
directory never reaches one.
"""

from __future__ import annotations

import ipaddress
import re

from airegistry.storage.blobs.errors import (
    InvalidArgument,
    InvalidBucketName,
    InvalidObjectKey,
    KeyTooLongError,
    MetadataTooLarge,
)
from airegistry.storage.blobs.types import DEFAULT_CONTENT_TYPE, MAX_KEY_BYTES, MAX_METADATA_BYTES

_META_NAME_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9a-z]+$")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def validate_bucket_name(name: object) -> str:
    """Apply S3's general-purpose bucket naming rules; the name becomes a directory name."""
    if not isinstance(name, str):
        raise InvalidBucketName(f"bucket name must be a string, got {type(name).__name__}")
    problem = None
    if not _BUCKET_RE.match(name):
        problem = (
            "must be 3-63 characters of lowercase letters, digits, '.' and '-', "
            "beginning and ending with a letter or digit"
        )
    elif ".." in name:
        problem = "must not contain two adjacent periods"
    elif _looks_like_ip(name):
        problem = "must not be formatted as an IP address"
    elif name.startswith(("xn--", "sthree-", "amzn-s3-demo-")):
        problem = "must not start with a reserved prefix (xn--, sthree-, amzn-s3-demo-)"
    elif name.endswith(("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")):
        problem = "must not end with a reserved suffix"
    if problem:
        raise InvalidBucketName(
            f"The specified bucket is not valid: {name!r} {problem}", bucket=name
        )
    return name


def _looks_like_ip(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


def validate_key(key: object, *, bucket: str | None = None) -> bytes:
    """Reject keys that are invalid in S3 or could escape the store; return the UTF-8 bytes."""
    if not isinstance(key, str):
        raise InvalidObjectKey(
            f"object key must be a string, got {type(key).__name__}", bucket=bucket
        )
    shown = key[:80] + ("..." if len(key) > 80 else "")
    if not key:
        raise InvalidObjectKey("object key must not be empty", bucket=bucket, key=key)
    try:
        raw = key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidObjectKey(
            f"object key {shown!r} is not valid UTF-8 (lone surrogate at index {exc.start})",
            bucket=bucket,
        ) from None
    if len(raw) > MAX_KEY_BYTES:
        raise KeyTooLongError(
            f"Your key is too long: {len(raw)} UTF-8 bytes, the maximum is {MAX_KEY_BYTES}",
            bucket=bucket,
            key=key,
            details={"MaxSizeAllowed": str(MAX_KEY_BYTES), "Size": str(len(raw))},
        )
    if "\x00" in key:
        raise InvalidObjectKey(f"object key {shown!r} contains a NUL byte", bucket=bucket, key=key)
    if key.startswith("/"):
        raise InvalidObjectKey(
            f"object key {shown!r} must not start with '/' (absolute paths are refused)",
            bucket=bucket,
            key=key,
        )
    for seg in key.split("/"):
        if seg in (".", ".."):
            raise InvalidObjectKey(
                f"object key {shown!r} contains a {seg!r} path segment", bucket=bucket, key=key
            )
    return raw


def validate_metadata(metadata: object) -> dict[str, str]:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidArgument(
            f"metadata must be a dict of str to str, got {type(metadata).__name__}"
        )
    out: dict[str, str] = {}
    total = 0
    for k, v in metadata.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise InvalidArgument(f"metadata entries must be str to str, got {k!r}: {v!r}")
        name = k.lower()
        if not _META_NAME_RE.match(name):
            raise InvalidArgument(f"metadata name {k!r} is not a valid HTTP header token")
        if any(c in v for c in "\r\n\x00"):
            raise InvalidArgument(f"metadata value for {k!r} contains CR, LF or NUL")
        try:
            total += len(name.encode()) + len(v.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidArgument(f"metadata value for {k!r} is not valid UTF-8") from None
        out[name] = v
    if total > MAX_METADATA_BYTES:
        raise MetadataTooLarge(
            f"Your metadata headers exceed the maximum allowed metadata size: {total} bytes "
            f"> {MAX_METADATA_BYTES}",
            details={"MaxSizeAllowed": str(MAX_METADATA_BYTES), "Size": str(total)},
        )
    return out


def validate_content_type(content_type: object) -> str:
    if content_type is None:
        return DEFAULT_CONTENT_TYPE
    if not isinstance(content_type, str) or any(c in content_type for c in "\r\n\x00"):
        raise InvalidArgument(f"content type must be a header-safe string, got {content_type!r}")
    return content_type or DEFAULT_CONTENT_TYPE


def normalize_etag(value: str) -> str:
    v = value.strip()
    if v.startswith("W/"):
        v = v[2:]
    return v.strip('"').lower()

