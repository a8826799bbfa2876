"""The values the blob store takes and returns, the same for every backend."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Any, BinaryIO

CHUNK_SIZE = 1 << 20
"""Bytes read/written/hashed at a time: memory per request stays flat whatever the object size."""

DEFAULT_CONTENT_TYPE = "binary/octet-stream"  # what S3 reports when none was given
MAX_KEY_BYTES = 1024
MAX_METADATA_BYTES = 2048
MAX_PART_NUMBER = 10_000


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    size: int
    etag: str  # hex md5 without quotes, or "<hex>-N" for multipart
    sha256: str  # hex sha256 of the whole object, recorded at write time
    last_modified: datetime  # tz-aware UTC
    content_type: str
    metadata: dict[str, str] = field(default_factory=dict)
    checksums: dict[str, str] = field(default_factory=dict)  # {"CRC32": "<base64>"}
    #: Sizes of the parts a multipart upload assembled the object from, in part order;
    #: empty for an object written in one piece (or listed, where stores do not read it).
    part_sizes: tuple[int, ...] = ()


@dataclass(frozen=True)
class BucketInfo:
    name: str
    created: datetime


@dataclass(frozen=True)
class ListResult:
    contents: list[ObjectInfo]
    common_prefixes: list[str]
    is_truncated: bool
    next_continuation_token: str | None
    key_count: int


@dataclass(frozen=True)
class PartInfo:
    part_number: int
    etag: str
    size: int
    last_modified: datetime
    checksums: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class UploadInfo:
    """A multipart upload in progress (created, neither completed nor aborted)."""

    key: str
    upload_id: str
    initiated: datetime  # tz-aware UTC


@dataclass(frozen=True)
class UploadListing:
    """A page of ListMultipartUploads: uploads by key, then upload id."""

    uploads: list[UploadInfo]
    common_prefixes: list[str]
    is_truncated: bool
    next_key_marker: str | None
    next_upload_id_marker: str | None


Body = bytes | bytearray | memoryview | BinaryIO | IO[bytes] | Iterable[bytes]


def iter_body(body: Any) -> Iterator[bytes | bytearray | memoryview]:
    """Yield a request body in chunks whatever its shape (bytes, file-like, iterable of bytes)."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        view = memoryview(body).cast("B")
        for i in range(0, len(view), CHUNK_SIZE):
            yield view[i : i + CHUNK_SIZE]
        return
    if isinstance(body, str):
        raise TypeError("object body must be bytes, a binary file or an iterable of bytes, not str")
    read = getattr(body, "read", None)
    if callable(read):
        while True:
            chunk = read(CHUNK_SIZE)
            if chunk is None:
                raise TypeError("object body is a non-blocking stream that returned no data")
            if not isinstance(chunk, (bytes, bytearray, memoryview)):
                raise TypeError(f"object body read() returned {type(chunk).__name__}, not bytes")
            if not chunk:
                return
            yield as_bytes_view(chunk)
    try:
        iterator = iter(body)
    except TypeError:
        raise TypeError(
            f"object body must be bytes, a binary file or an iterable of bytes, "
            f"not {type(body).__name__}"
        ) from None
    for chunk in iterator:
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            raise TypeError(f"object body iterable yielded {type(chunk).__name__}, not bytes")
        if chunk:
            yield as_bytes_view(chunk)


def as_bytes_view(chunk: bytes | bytearray | memoryview) -> bytes | bytearray | memoryview:
    # len() of a memoryview counts items, not bytes: flatten views of wider types to bytes
    if isinstance(chunk, memoryview) and (chunk.format != "B" or chunk.ndim != 1):
        return chunk.cast("B")
    return chunk
