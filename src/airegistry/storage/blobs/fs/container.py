"""The on-disk container of one object (or multipart part): data, block CRCs, trailer.

Each object is ONE file: the data, a table of CRC32s (4 bytes per 256 KiB block, so
ranged reads can be verified too), then a JSON trailer (key, size, ETag, sha256, content
type, user metadata, checksums, last-modified), then the trailer length (8 bytes
big-endian) and a magic ``AIROBJ1\\n``. Data and its description live in one file, so
they are published by one rename and can never disagree.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from airegistry.storage import checksums as ck
from airegistry.storage.blobs.errors import CorruptObjectError
from airegistry.storage.blobs.fs.fsio import pread_exact
from airegistry.storage.blobs.types import ObjectInfo, PartInfo

BLOCK_SIZE = 256 * 1024
"""Granularity of the per-block CRC32s that let ranged reads be verified (4 bytes per block)."""
_MAGIC = b"AIROBJ1\n"
_TAIL = struct.Struct(">Q8s")
_MAX_TRAILER = 1 << 20


@dataclass
class Written:
    """A fully written, fsynced temp file waiting to be renamed into place."""

    path: str
    size: int
    md5: bytes
    sha256: bytes
    checksum: tuple[str, bytes] | None


def encode_trailer(doc: dict[str, Any]) -> bytes:
    payload = json.dumps(doc, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return payload + _TAIL.pack(len(payload), _MAGIC)


def read_trailer(fd: int, what: str) -> tuple[dict[str, Any], int]:
    """Return (trailer document, data size) of an open container file, or CorruptObjectError."""
    total = os.fstat(fd).st_size
    if total < _TAIL.size:
        raise CorruptObjectError(f"{what}: stored file is truncated ({total} bytes)")
    length, magic = _TAIL.unpack(pread_exact(fd, _TAIL.size, total - _TAIL.size))
    if magic != _MAGIC or length > _MAX_TRAILER or length > total - _TAIL.size:
        raise CorruptObjectError(f"{what}: stored file has no valid trailer")
    trailer_start = total - _TAIL.size - length
    try:
        doc = json.loads(pread_exact(fd, length, trailer_start))
    except (ValueError, UnicodeDecodeError):
        raise CorruptObjectError(f"{what}: stored trailer is not valid JSON") from None
    size = doc.get("size") if isinstance(doc, dict) else None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise CorruptObjectError(f"{what}: stored trailer has no valid size")
    table = block_table_size(size) if doc.get("block_size") == BLOCK_SIZE else 0
    if size + table != trailer_start:
        raise CorruptObjectError(
            f"{what}: recorded size {size} does not match the {trailer_start - table} stored bytes"
        )
    return doc, size


def info_from_trailer(bucket: str, key: str, doc: dict[str, Any]) -> ObjectInfo:
    try:
        return ObjectInfo(
            bucket=bucket,
            key=key,
            size=int(doc["size"]),
            etag=str(doc["etag"]),
            sha256=str(doc["sha256"]),
            last_modified=datetime.fromisoformat(doc["last_modified"]),
            content_type=str(doc["content_type"]),
            metadata=dict(doc.get("metadata") or {}),
            checksums=dict(doc.get("checksums") or {}),
            part_sizes=tuple(int(n) for n in doc.get("part_sizes") or ()),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptObjectError(
            f"s3://{bucket}/{key}: stored trailer lacks a valid field ({exc})",
            bucket=bucket,
            key=key,
        ) from None


def part_from_trailer(doc: dict[str, Any]) -> PartInfo:
    return PartInfo(
        part_number=int(doc["part_number"]),
        etag=str(doc["etag"]),
        size=int(doc["size"]),
        last_modified=datetime.fromisoformat(doc["last_modified"]),
        checksums=dict(doc.get("checksums") or {}),
    )


def block_table_size(size: int) -> int:
    return 4 * ((size + BLOCK_SIZE - 1) // BLOCK_SIZE)


def object_trailer(
    key: str, w: Written, content_type: str, metadata: dict[str, str], stamp: datetime
) -> dict[str, Any]:
    """The trailer of a single-part object (PutObject, CopyObject): one layout, one place."""
    return {
        "v": 1,
        "kind": "object",
        "key": key,
        "size": w.size,
        "etag": w.md5.hex(),
        "sha256": w.sha256.hex(),
        "content_type": content_type,
        "metadata": metadata,
        "checksums": {w.checksum[0]: ck.b64(w.checksum[1])} if w.checksum else {},
        "last_modified": stamp.isoformat(),
    }
