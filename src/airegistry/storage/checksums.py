"""Streaming checksums with S3's encodings (flexible checksums, Content-MD5, ETags).

S3 transmits every flexible checksum as base64 of the big-endian digest: 4 bytes for CRC32 and
CRC32C, 8 for CRC64NVME, 20 for SHA1, 32 for SHA256.  Keeping that encoding in one place means the
store, the HTTP layer and the tests agree on the bytes.  CRC32C and CRC64NVME come from
``awscrt`` (the same native code botocore uses), CRC32 from awscrt too (zlib if it is missing),
SHA* from hashlib; all of
them accept incremental updates so objects are hashed while they stream.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from typing import Protocol

from airegistry.storage.blobs.errors import InvalidDigest, InvalidRequest

#: Algorithms accepted in ``checksum=(algorithm, expected)``, in S3's spelling.
ALGORITHMS: tuple[str, ...] = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")

_DIGEST_SIZES = {"CRC32": 4, "CRC32C": 4, "CRC64NVME": 8, "SHA1": 20, "SHA256": 32}


class Checksum(Protocol):
    """What the store needs from a running checksum."""

    def update(self, data: bytes | bytearray | memoryview) -> None: ...

    def digest(self) -> bytes: ...


try:  # the same CRC-32 as zlib's, from awscrt's faster kernel when it is installed
    from awscrt.checksums import crc32
except ImportError:  # pragma: no cover - depends on the environment
    crc32 = zlib.crc32
"""Plain CRC-32 (zlib's polynomial) of a buffer, continuing from ``crc``; awscrt's kernel."""


class _Crc32:
    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._value = crc32(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


class _Crc32c:
    def __init__(self) -> None:
        from awscrt import checksums as crt  # imported lazily: only needed for CRC32C

        self._crc = crt.crc32c
        self._value = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._value = self._crc(data, self._value)  # awscrt takes any buffer, no copy

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")


class _Crc64Nvme:
    def __init__(self) -> None:
        from awscrt import checksums as crt

        self._crc = crt.crc64nvme
        self._value = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._value = self._crc(data, self._value)  # awscrt takes any buffer, no copy

    def digest(self) -> bytes:
        return self._value.to_bytes(8, "big")


class _Hashlib:
    def __init__(self, name: str) -> None:
        self._h = hashlib.new(name)

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._h.update(data)

    def digest(self) -> bytes:
        return self._h.digest()


def normalize_algorithm(algorithm: str) -> str:
    """Return S3's spelling of ``algorithm`` or raise InvalidRequest naming the bad value."""
    if not isinstance(algorithm, str):
        raise InvalidRequest(f"checksum algorithm must be a string, got {type(algorithm).__name__}")
    name = algorithm.strip().upper()
    if name not in _DIGEST_SIZES:
        raise InvalidRequest(
            f"Value for x-amz-checksum-algorithm header is invalid: {algorithm!r} "
            f"(expected one of {', '.join(ALGORITHMS)})"
        )
    return name


def new_checksum(algorithm: str) -> Checksum:
    """A fresh running checksum for a (normalised) algorithm name."""
    name = normalize_algorithm(algorithm)
    if name == "CRC32":
        return _Crc32()
    if name == "CRC32C":
        return _Crc32c()
    if name == "CRC64NVME":
        return _Crc64Nvme()
    return _Hashlib(name.lower())


def compute_b64(algorithm: str, data: bytes) -> str:
    """One-shot checksum of ``data`` in S3's base64 encoding (for tests and small payloads)."""
    c = new_checksum(algorithm)
    c.update(data)
    return b64(c.digest())


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def decode_expected_checksum(algorithm: str, value: str) -> bytes:
    """Decode an ``x-amz-checksum-*`` value; malformed values are InvalidRequest like S3."""
    name = normalize_algorithm(algorithm)
    raw = _strict_b64decode(value)
    if raw is None or len(raw) != _DIGEST_SIZES[name]:
        raise InvalidRequest(
            f"Value for x-amz-checksum-{name.lower()} header is invalid: {value!r}"
        )
    return raw


def decode_content_md5(value: str) -> bytes:
    """Decode a Content-MD5 header value; anything but base64 of 16 bytes is InvalidDigest."""
    raw = _strict_b64decode(value)
    if raw is None or len(raw) != 16:
        raise InvalidDigest(f"The Content-MD5 you specified was invalid: {value!r}")
    return raw


def _strict_b64decode(value: object) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value.strip().encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None


def composite_b64(algorithm: str, part_digests: list[bytes]) -> str:
    """S3's COMPOSITE multipart checksum: checksum of the concatenated part digests, ``-N``."""
    c = new_checksum(algorithm)
    for d in part_digests:
        c.update(d)
    return f"{b64(c.digest())}-{len(part_digests)}"


def multipart_etag(part_md5s: list[bytes]) -> str:
    """S3's multipart ETag: md5 of the concatenated binary part md5s, then ``-N`` (no quotes)."""
    h = hashlib.md5(usedforsecurity=False)
    for d in part_md5s:
        h.update(d)
    return f"{h.hexdigest()}-{len(part_md5s)}"
