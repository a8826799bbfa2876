"""Digest checks and read conditions, the same for every backend.

A put names what the client says the body hashes to (Content-MD5, the SigV4 payload
hash, a flexible checksum); the backend computes the digests while the body streams and
``verify_digests`` compares them before anything is published, so a body that does not
match is never stored. ``etag_matches`` and ``resolve_range`` are S3's If-Match and
Range rules.
"""

from __future__ import annotations

import base64
import re
from typing import Protocol

from airegistry.storage import checksums as ck
from airegistry.storage.blobs.errors import (
    BadDigest,
    InvalidArgument,
    InvalidChecksum,
    InvalidRange,
    InvalidRequest,
    XAmzContentSHA256Mismatch,
)
from airegistry.storage.blobs.names import normalize_etag

Checks = tuple[bytes | None, str | None, str | None, bytes | None]
"""(expected md5, expected sha256 hex, checksum algorithm, expected checksum digest)."""


class Digests(Protocol):
    """What a backend measured while a body streamed."""

    md5: bytes
    sha256: bytes
    checksum: tuple[str, bytes] | None


def prepare_checks(
    content_md5: str | None,
    sha256_hex: str | None,
    checksum: tuple[str, str | None] | None,
) -> Checks:
    want_md5 = ck.decode_content_md5(content_md5) if content_md5 is not None else None
    want_sha = None
    if sha256_hex is not None:
        if not isinstance(sha256_hex, str):
            raise InvalidArgument(f"sha256_hex must be a hex string, got {sha256_hex!r}")
        want_sha = sha256_hex.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{64}", want_sha):
            raise InvalidArgument(
                f"x-amz-content-sha256 must be a hex sha256 value, got {sha256_hex!r}"
            )
    algorithm = None
    want_ck = None
    if checksum is not None:
        if not isinstance(checksum, tuple) or len(checksum) != 2:
            raise InvalidRequest(
                "checksum must be a tuple (algorithm, expected base64 or None)"
            )
        algorithm = ck.normalize_algorithm(checksum[0])
        if checksum[1] is not None:
            want_ck = ck.decode_expected_checksum(algorithm, checksum[1])
    return want_md5, want_sha, algorithm, want_ck

def verify_digests(
    w: Digests,
    bucket: str,
    key: str,
    want_md5: bytes | None,
    want_sha: str | None,
    want_ck: bytes | None,
) -> None:
    if want_md5 is not None and w.md5 != want_md5:
        raise BadDigest(
            f"The Content-MD5 you specified did not match what we received for s3://{bucket}/{key}",
            bucket=bucket,
            key=key,
            details={
                "ExpectedDigest": base64.b64encode(want_md5).decode(),
                "CalculatedDigest": base64.b64encode(w.md5).decode(),
            },
        )
    if want_sha is not None and w.sha256.hex() != want_sha:
        raise XAmzContentSHA256Mismatch(
            f"The provided 'x-amz-content-sha256' header does not match what was computed "
            f"for s3://{bucket}/{key}",
            bucket=bucket,
            key=key,
            details={
                "ClientComputedContentSHA256": want_sha,
                "S3ComputedContentSHA256": w.sha256.hex(),
            },
        )
    if want_ck is not None and w.checksum is not None and w.checksum[1] != want_ck:
        raise InvalidChecksum(
            f"The {w.checksum[0]} you specified did not match the calculated checksum "
            f"for s3://{bucket}/{key}",
            bucket=bucket,
            key=key,
            details={
                "ExpectedChecksum": ck.b64(want_ck),
                "CalculatedChecksum": ck.b64(w.checksum[1]),
            },
        )


def etag_matches(condition: str, etag: str) -> bool:
    wanted = [c for c in (p.strip() for p in condition.split(",")) if c]
    return any(c == "*" or normalize_etag(c) == etag.lower() for c in wanted)

def resolve_range(
    byte_range: tuple[int, int | None], size: int, bucket: str, key: str
) -> tuple[int, int]:
    try:
        first, last = byte_range
    except (TypeError, ValueError):
        raise InvalidArgument(
            f"byte_range must be (first, last or None), got {byte_range!r}",
            bucket=bucket,
            key=key,
        ) from None
    valid = isinstance(first, int) and (last is None or isinstance(last, int))
    shown = f"bytes={first}-{'' if last is None else last}"
    if not valid or first < 0 or first >= size or (last is not None and last < first):
        raise InvalidRange(
            f"The requested range is not satisfiable: {shown} for s3://{bucket}/{key} "
            f"of {size} bytes",
            bucket=bucket,
            key=key,
            details={"RangeRequested": shown, "ActualObjectSize": str(size)},
        )
    end = size - 1 if last is None else min(last, size - 1)
    return first, end
