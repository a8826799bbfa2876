"""Filesystem object store with S3 semantics (buckets, keys, ETags, ranges, multipart).

Used in-process by the registry and by the server's S3 REST-XML layer, so names, error codes
and edge cases follow S3 (see ``airegistry.storage.errors``).

On-disk layout (``root`` is the store directory, e.g. ``$AIREGISTRY_HOME/blobs``)::

    root/.secret                      random key that signs list continuation tokens
    root/tmp/                         temp files, claimed/trashed dirs (same filesystem)
    root/locks/<bucket>.lock          flock: puts share it, delete_bucket takes it exclusively
    root/buckets/<bucket>/bucket.json creation time
    root/buckets/<bucket>/objects/    one file per object, in a tree mirroring the key's segments
    root/buckets/<bucket>/uploads/<upload-id>/upload.json, part-00001 ...

Why a segment tree: a key is split on ``/`` and each segment becomes one path component, so a
prefix + delimiter listing reads one directory instead of the whole bucket.  S3 allows ``a``,
``a/b`` and ``a/`` to coexist, so a segment that names an object gets the suffix ``@o`` and a
segment that is a "directory" gets ``@d`` (``a/`` is the empty segment ``@o`` inside ``a@d``).
Segments are escaped so that ``@`` can never appear unescaped: ``[a-z0-9._-]`` stay as they are
(except a leading ``.``), upper-case letters become ``^`` + the lower-case letter (so the layout
is also safe on case-insensitive filesystems), every other UTF-8 byte becomes ``%XX``.  The names
are pure ASCII, so no filesystem can normalise them.  An escaped segment longer than 200
characters is split into chunks, each non-final chunk a directory suffixed ``@c``, so
``NAME_MAX`` is never exceeded.  Because segments ``.``/``..``, NUL, a leading ``/`` and empty
keys are rejected, and every byte outside the safe set is escaped, a key cannot name anything
outside its bucket; the resolved path is still checked against the bucket root.

Each object is ONE file: the data, a table of CRC32s (4 bytes per 256 KiB block, so ranged
reads can be verified too), then a JSON trailer (key, size, ETag, sha256, content type, user
metadata, checksums, last-modified), then the trailer length (8 bytes big-endian) and a magic
``AIROBJ1\\n``.  Data and its description are written to a temp file in ``root/tmp``,
fsynced, renamed over the final name and the directory fsynced, so they can never disagree, a
reader holding the old file keeps reading the old version (last writer wins, nothing torn), and a
crash or a failed body leaves at most a temp file, removed on error or swept later.  Multipart
parts use the same container inside the upload's directory.

POSIX only (``fcntl.flock``, ``os.pread``, directory fsync).
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import errno
import fcntl
import hashlib
import hmac
import io
import ipaddress
import json
import mmap
import os
import re
import secrets
import shutil
import socket
import struct
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, BinaryIO

from airegistry.storage import checksums as ck
from airegistry.storage.errors import (
    BadDigest,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    CorruptObjectError,
    EntityTooSmall,
    InvalidArgument,
    InvalidBucketName,
    InvalidChecksum,
    InvalidObjectKey,
    InvalidPart,
    InvalidPartOrder,
    InvalidRange,
    InvalidRequest,
    KeyTooLongError,
    MetadataTooLarge,
    NoSuchBucket,
    NoSuchKey,
    NoSuchUpload,
    PreconditionFailed,
    XAmzContentSHA256Mismatch,
)

CHUNK_SIZE = 1 << 20
"""Bytes read/written/hashed at a time: memory per request stays flat whatever the object size."""

DEFAULT_CONTENT_TYPE = "binary/octet-stream"  # what S3 reports when none was given
MAX_KEY_BYTES = 1024
MAX_METADATA_BYTES = 2048
MAX_PART_NUMBER = 10_000
_MAX_PATH_BYTES = 4000  # below Linux PATH_MAX (4096) with room for temp suffixes
_SEGMENT_CHUNK = 200  # escaped characters per path component (NAME_MAX is 255)
_MAGIC = b"AIROBJ1\n"
BLOCK_SIZE = 256 * 1024
"""Granularity of the per-block CRC32s that let ranged reads be verified (4 bytes per block)."""
_TAIL = struct.Struct(">Q8s")
_MAX_TRAILER = 1 << 20
_STALE_FOREIGN_SECONDS = 24 * 3600
_UPLOAD_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_PART_RE = re.compile(r"^part-(\d{5})$")
_META_NAME_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9a-z]+$")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_SAFE_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-_.")
HASH_CHUNK = 1 << 20
"""Bytes hashed/checked/written per step when writing: big enough that per-call overhead
vanishes and md5 runs on a helper thread, small enough that memory per request stays flat."""
ASSEMBLE_CHUNK = 4 << 20
"""Bytes read per step when joining multipart parts (a whole number of blocks)."""
_HOST_TAG = hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


try:  # awscrt (a botocore extra we depend on) has a faster CRC-32 kernel than zlib
    from awscrt.checksums import crc32 as _crc32
except ImportError:  # pragma: no cover - depends on the environment
    _crc32 = zlib.crc32


# --------------------------------------------------------------------------- public types


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


Body = bytes | bytearray | memoryview | BinaryIO | IO[bytes] | Iterable[bytes]


# --------------------------------------------------------------------------- validation


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


def _validate_metadata(metadata: object) -> dict[str, str]:
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


def _validate_content_type(content_type: object) -> str:
    if content_type is None:
        return DEFAULT_CONTENT_TYPE
    if not isinstance(content_type, str) or any(c in content_type for c in "\r\n\x00"):
        raise InvalidArgument(f"content type must be a header-safe string, got {content_type!r}")
    return content_type or DEFAULT_CONTENT_TYPE


def _normalize_etag(value: str) -> str:
    v = value.strip()
    if v.startswith("W/"):
        v = v[2:]
    return v.strip('"').lower()


# --------------------------------------------------------------------------- key <-> path


def _escape_tokens(segment: str) -> list[str]:
    tokens: list[str] = []
    for i, b in enumerate(segment.encode("utf-8")):
        if 65 <= b <= 90:
            tokens.append("^" + chr(b + 32))
        elif b in _SAFE_BYTES and not (i == 0 and b == 0x2E):
            tokens.append(chr(b))
        else:
            tokens.append(f"%{b:02X}")
    return tokens


def _segment_components(segment: str, suffix: str) -> list[str]:
    """Path components for one key segment: ``@c`` chunk dirs, then the final ``suffix`` name."""
    tokens = _escape_tokens(segment)
    chunks: list[str] = []
    current = ""
    for t in tokens:
        if len(current) + len(t) > _SEGMENT_CHUNK:
            chunks.append(current)
            current = ""
        current += t
    comps = [c + "@c" for c in chunks]
    comps.append(current + suffix)
    return comps


_TOKEN_RE = re.compile(r"\^[a-z]|%[0-9A-F]{2}|[a-z0-9_.-]")


_PLAIN_RE = re.compile(r"[a-z0-9_-][a-z0-9_.-]*")


def _unescape(text: str) -> bytes | None:
    """Inverse of the escaping; None for names this store did not write (ignored when listing)."""
    if _PLAIN_RE.fullmatch(text):
        return text.encode("ascii")  # fast path: most names need no unescaping
    out = bytearray()
    pos = 0
    for m in _TOKEN_RE.finditer(text):
        if m.start() != pos:
            return None
        t = m.group()
        if t[0] == "^":
            out.append(ord(t[1]) - 32)
        elif t[0] == "%":
            out.append(int(t[1:], 16))
        else:
            out.append(ord(t))
        pos = m.end()
    if pos != len(text):
        return None
    return bytes(out)


def _key_components(key: str) -> list[str]:
    segments = key.split("/")
    comps: list[str] = []
    for seg in segments[:-1]:
        comps.extend(_segment_components(seg, "@d"))
    comps.extend(_segment_components(segments[-1], "@o"))
    return comps


def _dir_components(segments: list[str]) -> list[str]:
    comps: list[str] = []
    for seg in segments:
        comps.extend(_segment_components(seg, "@d"))
    return comps


# --------------------------------------------------------------------------- small fs helpers


def _fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir_if_exists(path: str | Path) -> None:
    """Directory fsync for paths a concurrent delete may have pruned (then nothing to sync)."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        _fsync_dir(path)


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data).cast("B")
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _pread_exact(fd: int, n: int, offset: int) -> bytes:
    parts: list[bytes] = []
    while n > 0:
        chunk = os.pread(fd, n, offset)
        if not chunk:
            break
        parts.append(chunk)
        n -= len(chunk)
        offset += len(chunk)
    return b"".join(parts)


def _pread_part(
    fd: int, buf: memoryview, n: int, offset: int, direct: bool
) -> tuple[int, bool]:
    """Read up to ``min(len(buf), n)`` bytes at ``offset`` (fewer only at EOF): (count, direct).

    With O_DIRECT the length asked for is rounded up to the alignment (the file goes on past
    the data, with the block table and trailer, so the extra bytes exist and are ignored).  A
    filesystem that refuses the direct read gets it again as a normal one.
    """
    want = min(len(buf), n)
    got = 0
    while got < want:
        if direct and (offset + got) % _ALIGN == 0:
            ask = min(len(buf), -(-(want - got) // _ALIGN) * _ALIGN + got)
            try:
                k = os.preadv(fd, [buf[got:ask]], offset + got)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                direct = not _set_direct(fd, False)
                continue
        else:
            if direct:
                direct = not _set_direct(fd, False)
            k = os.preadv(fd, [buf[got:want]], offset + got)
        if k <= 0:
            break
        got += k
    return min(got, want), direct


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iter_body(body: Any) -> Iterator[bytes | bytearray | memoryview]:
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
            yield _as_bytes_view(chunk)
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
            yield _as_bytes_view(chunk)


def _as_bytes_view(chunk: bytes | bytearray | memoryview) -> bytes | bytearray | memoryview:
    # len() of a memoryview counts items, not bytes: flatten views of wider types to bytes
    if isinstance(chunk, memoryview) and (chunk.format != "B" or chunk.ndim != 1):
        return chunk.cast("B")
    return chunk


# --------------------------------------------------------------------------- hashing


_PARALLEL_MIN_CHUNK = 256 * 1024
_hash_pool: ThreadPoolExecutor | None = None
_hash_pool_lock = threading.Lock()


def _forget_pool_after_fork() -> None:
    # a forked child has none of the parent's pool threads; a new pool is made on first use
    global _hash_pool, _hash_pool_lock
    _hash_pool = None
    _hash_pool_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_after_fork)


def _pool() -> ThreadPoolExecutor:
    global _hash_pool
    with _hash_pool_lock:
        if _hash_pool is None:
            _hash_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="airegistry-md5")
        return _hash_pool


class _BodyHasher:
    """md5 + sha256 (+ an optional S3 checksum) of a stream, with md5 on a helper thread.

    md5 (needed for the ETag) is the slowest of the digests; hashlib releases the GIL on large
    buffers, so hashing it on a pool thread while this thread runs sha256 and the disk write
    roughly halves the CPU time per byte of a large upload on a multi-core machine.  Only one
    chunk is in flight, and the caller must not reuse a chunk's buffer before the next update.
    """

    def __init__(self, algorithm: str | None) -> None:
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha = hashlib.sha256()
        self.cks = ck.new_checksum(algorithm) if algorithm else None
        self._pending: Future[None] | None = None

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        """Start hashing ``chunk``; md5 may still be running when this returns."""
        self.wait()
        if len(chunk) >= _PARALLEL_MIN_CHUNK:
            self._pending = _pool().submit(self.md5.update, chunk)
        else:
            self.md5.update(chunk)
        self.sha.update(chunk)
        if self.cks is not None:
            self.cks.update(chunk)

    def wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()


class _BlockCrcs:
    """CRC32 of every BLOCK_SIZE block of a stream, as big-endian 4-byte entries.

    Kept in memory while writing: 16 bytes per MiB (80 KB for a 5 GiB object).  The CRC is
    plain CRC-32 (zlib's polynomial), computed by awscrt's faster kernel when it is installed,
    so the table never depends on an optional native package to be read back.
    """

    def __init__(self) -> None:
        self.table = bytearray()
        self._crc = 0
        self._fill = 0

    def update(self, chunk: bytes | bytearray | memoryview) -> None:
        view = memoryview(chunk).cast("B")
        while view:
            take = min(BLOCK_SIZE - self._fill, len(view))
            self._crc = _crc32(view[:take], self._crc)
            self._fill += take
            view = view[take:]
            if self._fill == BLOCK_SIZE:
                self.table += self._crc.to_bytes(4, "big")
                self._crc = 0
                self._fill = 0

    def finish(self) -> bytes:
        if self._fill:
            self.table += self._crc.to_bytes(4, "big")
            self._crc = 0
            self._fill = 0
        return bytes(self.table)


def _block_table_size(size: int) -> int:
    return 4 * ((size + BLOCK_SIZE - 1) // BLOCK_SIZE)


# --------------------------------------------------------------------------- writing files

_ALIGN = 4096
"""O_DIRECT alignment used for buffers, offsets and lengths (covers 512 and 4096 sectors)."""
_O_DIRECT = getattr(os, "O_DIRECT", 0)


def _set_direct(fd: int, on: bool) -> bool:
    """Switch O_DIRECT on an open fd; False where the platform or filesystem refuses it."""
    if not _O_DIRECT:
        return False
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, (flags | _O_DIRECT) if on else (flags & ~_O_DIRECT))
    except OSError:
        return False
    return True


class _TempWriter:
    """Write one new temp file from a page-aligned buffer, bypassing the page cache if it can.

    Why O_DIRECT: an upload's bytes are written once as parts and again as the joined object,
    and handing every byte to the page cache costs a fresh page per 4 KiB plus the kernel's
    copy; on a VM whose memory is lazily backed that alone caps writes at a few hundred MB/s.
    Whole aligned buffers therefore go straight to the disk; the unaligned tail (and the CRC
    table and trailer) is written normally after O_DIRECT is switched off.  Where O_DIRECT is
    unavailable (not Linux, tmpfs, some network filesystems) every write is a normal one.
    Durability is unchanged: the caller still fsyncs before the rename.

    The buffer doubles as the place callers gather a body into: ``space()`` is the free part
    of the buffer, ``commit(n)`` records bytes copied there, ``data()`` is what is buffered.
    """

    def __init__(self, path: str, size: int) -> None:
        self.fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666
        )
        self._direct = _set_direct(self.fd, True)
        self._mem = mmap.mmap(-1, size)  # anonymous mappings are page aligned
        self._view = memoryview(self._mem)
        self._fill = 0

    @property
    def full(self) -> bool:
        return self._fill == len(self._view)

    def space(self) -> memoryview:
        return self._view[self._fill :]

    def commit(self, n: int) -> None:
        self._fill += n

    def data(self) -> memoryview:
        return self._view[: self._fill]

    def write(self, data: bytes | bytearray | memoryview, *, page_aligned: bool = False) -> None:
        """Append ``data`` through the buffer (full buffers are written as they fill).

        ``page_aligned`` promises that ``data`` starts on a page boundary (the start of an mmap
        buffer): whole blocks of it are then written straight from there, without a copy.
        """
        src = memoryview(data).cast("B")
        if page_aligned and self._direct and self._fill == 0 and len(src) % _ALIGN == 0:
            self._write_out(src)
            return
        while src:
            take = min(len(self._view) - self._fill, len(src))
            self._view[self._fill : self._fill + take] = src[:take]
            self._fill += take
            src = src[take:]
            if self.full:
                self.flush()

    def flush(self) -> None:
        """Write out the buffered bytes; direct while they are a whole number of blocks."""
        self._write_out(self.data())
        self._fill = 0

    def _write_out(self, data: memoryview) -> None:
        if self._direct and len(data) % _ALIGN:
            self._direct = not _set_direct(self.fd, False)
        view = data.cast("B") if data.format != "B" else data
        while view:
            try:
                n = os.write(self.fd, view)
            except OSError as exc:
                if not self._direct or exc.errno != errno.EINVAL:
                    raise
                # The filesystem accepted the flag but not the I/O: go on with normal
                # writes.  A failed write(2) wrote nothing, so nothing is written twice.
                self._direct = not _set_direct(self.fd, False)
                if self._direct:
                    raise
                continue
            view = view[n:]

    def finish(self, tail: bytes) -> None:
        """Write the buffered data, then ``tail`` (block table + trailer), and fsync."""
        self.flush()
        if self._direct:
            self._direct = not _set_direct(self.fd, False)
        _write_all(self.fd, tail)
        os.fsync(self.fd)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
        _release(self._view, self._mem)


def _release(view: memoryview, mem: mmap.mmap) -> None:
    """Unmap a buffer now; if a slice of it is still referenced, garbage collection will."""
    with contextlib.suppress(BufferError):
        view.release()
        mem.close()



# --------------------------------------------------------------------------- container format


@dataclass
class _Written:
    """A fully written, fsynced temp file waiting to be renamed into place."""

    path: str
    size: int
    md5: bytes
    sha256: bytes
    checksum: tuple[str, bytes] | None


def _encode_trailer(doc: dict[str, Any]) -> bytes:
    payload = json.dumps(doc, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return payload + _TAIL.pack(len(payload), _MAGIC)


def _read_trailer(fd: int, what: str) -> tuple[dict[str, Any], int]:
    """Return (trailer document, data size) of an open container file, or CorruptObjectError."""
    total = os.fstat(fd).st_size
    if total < _TAIL.size:
        raise CorruptObjectError(f"{what}: stored file is truncated ({total} bytes)")
    length, magic = _TAIL.unpack(_pread_exact(fd, _TAIL.size, total - _TAIL.size))
    if magic != _MAGIC or length > _MAX_TRAILER or length > total - _TAIL.size:
        raise CorruptObjectError(f"{what}: stored file has no valid trailer")
    trailer_start = total - _TAIL.size - length
    try:
        doc = json.loads(_pread_exact(fd, length, trailer_start))
    except (ValueError, UnicodeDecodeError):
        raise CorruptObjectError(f"{what}: stored trailer is not valid JSON") from None
    size = doc.get("size") if isinstance(doc, dict) else None
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise CorruptObjectError(f"{what}: stored trailer has no valid size")
    table = _block_table_size(size) if doc.get("block_size") == BLOCK_SIZE else 0
    if size + table != trailer_start:
        raise CorruptObjectError(
            f"{what}: recorded size {size} does not match the {trailer_start - table} stored bytes"
        )
    return doc, size


def _info_from_trailer(bucket: str, key: str, doc: dict[str, Any]) -> ObjectInfo:
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
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CorruptObjectError(
            f"s3://{bucket}/{key}: stored trailer lacks a valid field ({exc})",
            bucket=bucket,
            key=key,
        ) from None


def _part_from_trailer(doc: dict[str, Any]) -> PartInfo:
    return PartInfo(
        part_number=int(doc["part_number"]),
        etag=str(doc["etag"]),
        size=int(doc["size"]),
        last_modified=datetime.fromisoformat(doc["last_modified"]),
        checksums=dict(doc.get("checksums") or {}),
    )


# --------------------------------------------------------------------------- read stream


class ObjectStream(io.RawIOBase):
    """Read-only stream over one stored object version (or a range of it).

    The stream keeps the file it opened, so a concurrent overwrite or delete never changes what
    it returns.  When the whole object is read with verification on, the bytes are hashed as they
    are returned and the final bytes are only handed out once the sha256 matches the one recorded
    at write time: a corrupt object ends in CorruptObjectError instead of a complete-looking body.
    A ranged read with verification on reads the whole BLOCK_SIZE blocks it overlaps and checks
    each block's recorded CRC32 before handing out any byte of it.
    Iterating yields chunks of up to 1 MiB (not lines).

    ``content_range`` is the satisfied ``(first, last)`` of a ranged read (None for a full read)
    and ``content_length`` the number of bytes the stream will return.
    """

    def __init__(
        self,
        f: IO[bytes],
        info: ObjectInfo,
        start: int,
        length: int,
        *,
        content_range: tuple[int, int] | None,
        expected_sha256: str | None,
        verify_blocks: bool = False,
    ) -> None:
        super().__init__()
        self._f = f
        self._fd = f.fileno()
        self.info = info
        self.content_range = content_range
        self.content_length = length
        self._pos = start
        self._remaining = length
        self._hash = hashlib.sha256() if expected_sha256 is not None else None
        self._expected = expected_sha256
        self._verified = expected_sha256 is None
        self._verify_blocks = verify_blocks
        self._block: memoryview | None = None  # verified bytes of the current block, from _pos

    def readable(self) -> bool:
        return True

    def _finish(self) -> None:
        if self._verified or self._hash is None:
            return
        actual = self._hash.hexdigest()
        if actual != self._expected:
            self._remaining = 0
            raise CorruptObjectError(
                f"s3://{self.info.bucket}/{self.info.key} is corrupt: sha256 of stored data is "
                f"{actual}, recorded {self._expected}",
                bucket=self.info.bucket,
                key=self.info.key,
            )
        self._verified = True

    def readinto(self, b: Any) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed object stream")
        if self._remaining <= 0:
            self._finish()
            return 0
        view = memoryview(b).cast("B")
        n = min(len(view), self._remaining)
        if n == 0:
            return 0
        if self._verify_blocks:
            return self._readinto_verified(view[:n])
        data = os.pread(self._fd, n, self._pos)  # pread: portable (preadv is not on every OS)
        got = len(data)
        view[:got] = data
        if got <= 0:
            raise CorruptObjectError(
                f"s3://{self.info.bucket}/{self.info.key}: stored file ended early",
                bucket=self.info.bucket,
                key=self.info.key,
            )
        if self._hash is not None:
            self._hash.update(view[:got])
        self._pos += got
        self._remaining -= got
        if self._remaining == 0:
            self._finish()  # before returning the last bytes: never complete a corrupt body
        return got

    def _readinto_verified(self, view: memoryview) -> int:
        if not self._block:
            index = self._pos // BLOCK_SIZE
            start = index * BLOCK_SIZE
            data = _pread_exact(self._fd, min(BLOCK_SIZE, self.info.size - start), start)
            want = _pread_exact(self._fd, 4, self.info.size + 4 * index)
            if _crc32(data).to_bytes(4, "big") != want:
                self._remaining = 0
                raise CorruptObjectError(
                    f"s3://{self.info.bucket}/{self.info.key} is corrupt: block {index} "
                    f"(bytes {start}-{start + len(data) - 1}) fails its CRC32",
                    bucket=self.info.bucket,
                    key=self.info.key,
                )
            self._block = memoryview(data)[self._pos - start :]
        got = min(len(view), len(self._block))
        view[:got] = self._block[:got]
        self._block = self._block[got:]
        self._pos += got
        self._remaining -= got
        return got

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        if self.closed:
            raise ValueError("I/O operation on closed object stream")
        n = min(size, max(self._remaining, 0))
        if n == 0 or self._verify_blocks:
            buf = bytearray(n)
            got = self.readinto(buf)  # n == 0 runs the EOF verification of empty objects
            return bytes(buf[:got])
        data = os.pread(self._fd, n, self._pos)  # one allocation per chunk on the hot path
        if not data:
            raise CorruptObjectError(
                f"s3://{self.info.bucket}/{self.info.key}: stored file ended early",
                bucket=self.info.bucket,
                key=self.info.key,
            )
        if self._hash is not None:
            self._hash.update(data)
        self._pos += len(data)
        self._remaining -= len(data)
        if self._remaining == 0:
            self._finish()  # before returning the last bytes: never complete a corrupt body
        return data

    def readall(self) -> bytes:
        parts = []
        while True:
            chunk = self.read(CHUNK_SIZE)
            if not chunk:
                return b"".join(parts)
            parts.append(chunk)

    def __iter__(self) -> Iterator[bytes]:  # type: ignore[override]
        self._checkClosed()
        return self

    def __next__(self) -> bytes:
        chunk = self.read(CHUNK_SIZE)
        if not chunk:
            raise StopIteration
        return chunk

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(OSError):
                self._f.close()
        super().close()


# --------------------------------------------------------------------------- list walker


class _WalkState:
    """Mutable lower bound shared with the walker so listing can skip rolled-up prefixes.

    With ``rollup_slash`` (delimiter ``/``) a directory whose whole subtree collapses into one
    common prefix is reported as ``(dir key prefix, None)`` after checking it holds an object,
    instead of being walked: listing ``a/`` over a million keys below it stays cheap.
    """

    def __init__(
        self,
        prefix: bytes,
        after: bytes,
        *,
        rollup_slash: bool = False,
        dirs: _DirCache | None = None,
    ) -> None:
        self.prefix = prefix
        self.after = after
        self.rollup_slash = rollup_slash
        self.dirs = dirs


@dataclass(frozen=True)
class _DirListing:
    """The logical entries of one tree directory, sorted in key order."""

    sort_keys: list[bytes]  # segment, plus "/" for directories: the order keys sort in
    entries: list[tuple[bytes, bool, str]]  # (segment bytes, is_dir, path)
    chunked: bool  # followed @c directories, whose changes the parent's mtime does not show


_EMPTY_LISTING = _DirListing([], [], False)


def _collect(dirpath: str, name_prefix: str, out: list[tuple[bytes, bool, str]]) -> bool:
    """Append the entries of ``dirpath`` (following ``@c`` chunk dirs); True if any was followed."""
    chunked = False
    try:
        entries = list(os.scandir(dirpath))
    except (FileNotFoundError, NotADirectoryError):
        return chunked
    for e in entries:
        name = e.name
        if len(name) < 2 or name[-2] != "@":
            continue
        kind = name[-1]
        text = name_prefix + name[:-2]
        try:
            if kind == "c" and e.is_dir(follow_symlinks=False):
                _collect(e.path, text, out)
                chunked = True
                continue
            if kind == "o" and e.is_file(follow_symlinks=False):
                is_dir = False
            elif kind == "d" and e.is_dir(follow_symlinks=False):
                is_dir = True
            else:
                continue
        except OSError:
            continue
        seg = _decode_name(text)
        if seg is None:
            continue
        out.append((seg, is_dir, e.path))
    return chunked


def _scan_dir(dirpath: str) -> _DirListing:
    out: list[tuple[bytes, bool, str]] = []
    chunked = _collect(dirpath, "", out)
    keyed = sorted(
        ((seg + b"/" if is_dir else seg), (seg, is_dir, path)) for seg, is_dir, path in out
    )
    return _DirListing([k for k, _ in keyed], [e for _, e in keyed], chunked)


class _DirCache:
    """Sorted listings of big directories, reused while the directory has not changed.

    Paging through a folder of N objects would otherwise rescan and re-sort all N entries for
    every page.  A listing is reused only while the directory's (device, inode, mtime_ns) is
    the one stat()ed before it was scanned, and it is only cached when that mtime was already
    QUIET_NS old: any later change to the directory (by any process) then sets an mtime that is
    necessarily different, even on filesystems with coarse timestamps.  Directories that follow
    ``@c`` chunk dirs are never cached, since changes inside those do not touch this mtime.
    """

    MIN_ENTRIES = 512
    MAX_DIRS = 32
    QUIET_NS = 3_000_000_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dirs: OrderedDict[str, tuple[tuple[int, int, int], _DirListing]] = OrderedDict()

    def get(self, dirpath: str) -> _DirListing:
        try:
            st = os.stat(dirpath)
        except OSError:
            return _EMPTY_LISTING
        stamp = (st.st_dev, st.st_ino, st.st_mtime_ns)
        with self._lock:
            hit = self._dirs.get(dirpath)
            if hit is not None and hit[0] == stamp:
                self._dirs.move_to_end(dirpath)
                return hit[1]
        listing = _scan_dir(dirpath)
        quiet = time.time_ns() - st.st_mtime_ns >= self.QUIET_NS
        if quiet and not listing.chunked and len(listing.entries) >= self.MIN_ENTRIES:
            with self._lock:
                self._dirs[dirpath] = (stamp, listing)
                self._dirs.move_to_end(dirpath)
                while len(self._dirs) > self.MAX_DIRS:
                    self._dirs.popitem(last=False)
        return listing


def _decode_name(text: str) -> bytes | None:
    """Key-segment bytes for an escaped name, or None if this store could not have written it."""
    seg = _unescape(text)
    if seg is None or seg.isascii():
        return seg
    try:
        seg.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return seg


def _has_object(dirpath: str) -> bool:
    """Whether a tree directory holds at least one object; stops at the first one found."""
    subdirs = []
    try:
        with os.scandir(dirpath) as it:
            for e in it:
                if _is_object_entry(e, subdirs):
                    return True
    except (FileNotFoundError, NotADirectoryError):
        return False
    return any(_has_object(p) for p in subdirs)


def _is_object_entry(e: os.DirEntry[str], subdirs: list[str]) -> bool:
    """True for an object file; collects tree subdirectories into ``subdirs`` otherwise."""
    name = e.name
    if len(name) < 2 or name[-2] != "@" or _decode_name(name[:-2]) is None:
        return False
    try:
        if name[-1] == "o" and e.is_file(follow_symlinks=False):
            return True
        if name[-1] in "dc" and e.is_dir(follow_symlinks=False):
            subdirs.append(e.path)
    except OSError:
        return False
    return False


def _first_candidate(listing: _DirListing, key_prefix: bytes, after: bytes) -> int:
    """Index of the first entry that can hold a key > ``after`` (bisect, not a scan)."""
    if after <= key_prefix:
        return 0
    if not after.startswith(key_prefix):
        return len(listing.entries)  # after is beyond every key of this directory
    rel = after[len(key_prefix) :]
    i = bisect.bisect_right(listing.sort_keys, rel)
    # a directory whose "seg/" is a prefix of rel sorts before rel but may hold later keys
    if i > 0 and listing.entries[i - 1][1] and rel.startswith(listing.sort_keys[i - 1]):
        i -= 1
    return i


def _walk(dirpath: str, key_prefix: bytes, state: _WalkState) -> Iterator[tuple[bytes, str | None]]:
    """Yield (key bytes, file path) in UTF-8 binary order, honouring ``state`` as it changes.

    A path of None marks a rolled-up directory (see _WalkState).
    """
    listing = state.dirs.get(dirpath) if state.dirs is not None else _scan_dir(dirpath)
    for seg, is_dir, path in listing.entries[_first_candidate(listing, key_prefix, state.after) :]:
        if is_dir:
            d = key_prefix + seg + b"/"
            if d + b"\xff" <= state.after:
                continue  # every key below d is <= the bound (UTF-8 never contains 0xff)
            if not (d.startswith(state.prefix) or state.prefix.startswith(d)):
                if d > state.prefix:
                    return
                continue
            if (
                state.rollup_slash
                and d.startswith(state.prefix)
                and b"/" not in d[len(state.prefix) : -1]
                and not state.after.startswith(d)
            ):
                if _has_object(path):
                    yield d, None
                continue
            yield from _walk(path, d, state)
        else:
            k = key_prefix + seg
            if k <= state.after:
                continue
            if not k.startswith(state.prefix):
                if k > state.prefix:
                    return
                continue
            yield k, path


# --------------------------------------------------------------------------- the store

def _object_trailer(
    key: str, w: _Written, content_type: str, metadata: dict[str, str], stamp: datetime
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


class ObjectStore:
    """S3-semantics object store on a local filesystem; safe for many threads and processes."""

    def __init__(self, root: str | Path, *, min_part_size: int = 5 * 1024 * 1024) -> None:
        self.root = Path(root).absolute()
        self.min_part_size = int(min_part_size)
        self._tmp = self.root / "tmp"
        self._locks = self.root / "locks"
        self._buckets = self.root / "buckets"
        for d in (self.root, self._tmp, self._locks, self._buckets):
            d.mkdir(parents=True, exist_ok=True)
        self._secret = self._load_secret()
        self._dir_cache = _DirCache()
        self.sweep_stale_temps()

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
        path = os.path.join(objects, *_key_components(key))
        if len(os.fsencode(path)) > _MAX_PATH_BYTES:
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
        return str(self._tmp / f"{_HOST_TAG}.{os.getpid()}.{secrets.token_hex(8)}.{kind}")

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

    def _stream_to_temp(
        self,
        body: Any,
        *,
        algorithm: str | None,
        trailer: Any,
    ) -> _Written:
        """Write body + trailer to a fsynced temp file; ``trailer(written)`` gives the trailer.

        On any failure (including a body iterator raising or a disconnect) the temp file is
        removed before the exception propagates.
        """
        path = self._temp_name("obj")
        out = _TempWriter(path, HASH_CHUNK)
        hasher = _BodyHasher(algorithm)
        blocks = _BlockCrcs()
        size = 0

        def hash_and_write() -> None:
            # the body is hashed and written a whole buffer at a time: per-call overhead
            # vanishes, md5 runs on a helper thread, and the write can bypass the page cache
            data = out.data()
            hasher.update(data)
            blocks.update(data)
            out.flush()
            hasher.wait()  # the buffer is refilled next: md5 must be done with it

        try:
            for chunk in _iter_body(body):
                src = memoryview(chunk).cast("B")
                size += len(src)
                while src:
                    space = out.space()
                    take = min(len(space), len(src))
                    space[:take] = src[:take]
                    out.commit(take)
                    src = src[take:]
                    if out.full:
                        hash_and_write()
            if out.data():
                hasher.update(out.data())
                blocks.update(out.data())
                hasher.wait()
            cks = hasher.cks
            written = _Written(
                path=path,
                size=size,
                md5=hasher.md5.digest(),
                sha256=hasher.sha.digest(),
                checksum=(algorithm, cks.digest()) if cks is not None and algorithm else None,
            )
            doc = trailer(written)
            doc["block_size"] = BLOCK_SIZE
            out.finish(blocks.finish() + _encode_trailer(doc))
        except BaseException:
            with contextlib.suppress(BaseException):
                hasher.wait()
            out.close()
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        out.close()
        return written

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
            _fsync_dir(parent)

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
            _fsync_dir_if_exists(os.path.dirname(final_path))

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
                _fsync_dir(parent)
            current = parent

    def _trash(self, path: Path | str) -> None:
        """Remove a directory tree atomically from view (rename), then delete it."""
        dest = self._temp_name("trash")
        os.rename(path, dest)
        shutil.rmtree(dest, ignore_errors=True)

    # ------------------------------------------------------------------ internals: digests

    @staticmethod
    def _prepare_checks(
        content_md5: str | None,
        sha256_hex: str | None,
        checksum: tuple[str, str | None] | None,
    ) -> tuple[bytes | None, str | None, str | None, bytes | None]:
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

    @staticmethod
    def _verify_written(
        w: _Written,
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

    # ------------------------------------------------------------------ buckets

    def create_bucket(self, name: str) -> BucketInfo:
        validate_bucket_name(name)
        created = _now()
        staging = self._temp_name("bucket")
        os.mkdir(staging)
        try:
            os.mkdir(os.path.join(staging, "objects"))
            os.mkdir(os.path.join(staging, "uploads"))
            with open(os.path.join(staging, "bucket.json"), "w") as f:
                json.dump({"name": name, "created": created.isoformat()}, f)
                f.flush()
                os.fsync(f.fileno())
            _fsync_dir(staging)
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
            _fsync_dir(self._buckets)
        finally:
            if os.path.exists(staging):
                shutil.rmtree(staging, ignore_errors=True)
        return BucketInfo(name=name, created=created)

    def ensure_bucket(self, name: str) -> BucketInfo:
        """Create the bucket unless it exists; safe when many threads/processes race."""
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
            state = _WalkState(b"", b"")
            for _ in _walk(str(bdir / "objects"), b"", state):
                raise BucketNotEmpty(
                    f"The bucket you tried to delete is not empty: {name!r}", bucket=name
                )
            self._trash(bdir)  # pending multipart uploads go with it
            _fsync_dir(self._buckets)

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
        ctype = _validate_content_type(content_type)
        meta = _validate_metadata(metadata)
        want_md5, want_sha, algorithm, want_ck = self._prepare_checks(
            content_md5, sha256_hex, checksum
        )
        stamp = _now()

        def trailer(w: _Written) -> dict[str, Any]:
            return _object_trailer(key, w, ctype, meta, stamp)

        w = self._stream_to_temp(body, algorithm=algorithm, trailer=trailer)
        try:
            self._verify_written(w, bucket, key, want_md5, want_sha, want_ck)
            self._publish(bucket, bdir, w.path, final)
        except BaseException:
            self._discard(w.path)
            raise
        return _info_from_trailer(bucket, key, trailer(w))

    def put_file(
        self, bucket: str, key: str, path: str | os.PathLike[str], **kwargs: Any
    ) -> ObjectInfo:
        with open(path, "rb") as f:
            return self.put_object(bucket, key, f, **kwargs)

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
        new_meta = _validate_metadata(metadata) if metadata is not None else None
        new_ctype = _validate_content_type(content_type) if content_type is not None else None
        info, stream = self.open_object(src_bucket, src_key, verify=True)
        with stream:
            # multipart sources get a full-object checksum of the same algorithm, like S3
            algorithm = next(iter(info.checksums), None)
            stamp = _now()

            def trailer(w: _Written) -> dict[str, Any]:
                return _object_trailer(
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
        return _info_from_trailer(dst_bucket, dst_key, trailer(w))

    def delete_object(self, bucket: str, key: str) -> None:
        """Remove a key; deleting a missing key succeeds, like S3."""
        bdir = self._require_bucket(bucket)
        path = self._object_path(bdir, bucket, key)
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError):
            return
        parent = os.path.dirname(path)
        _fsync_dir_if_exists(parent)
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
            doc, data_size = _read_trailer(f.fileno(), f"s3://{bucket}/{key}")
            if doc.get("key") != key:
                raise CorruptObjectError(
                    f"s3://{bucket}/{key}: stored file belongs to key {doc.get('key')!r}"
                )
            info = _info_from_trailer(bucket, key, doc)
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
            if if_match is not None and not self._etag_matches(if_match, info.etag):
                raise PreconditionFailed(
                    f"At least one of the pre-conditions you specified did not hold "
                    f"(If-Match {if_match!r} vs ETag {info.etag!r}) for s3://{bucket}/{key}",
                    bucket=bucket,
                    key=key,
                    details={"Condition": "If-Match"},
                )
            start, length, content_range = 0, size, None
            if byte_range is not None:
                first, last = self._resolve_range(byte_range, size, bucket, key)
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

    @staticmethod
    def _etag_matches(condition: str, etag: str) -> bool:
        wanted = [c for c in (p.strip() for p in condition.split(",")) if c]
        return any(c == "*" or _normalize_etag(c) == etag.lower() for c in wanted)

    @staticmethod
    def _resolve_range(
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

    def read_bytes(self, bucket: str, key: str) -> bytes:
        _, stream = self.open_object(bucket, key, verify=True)
        with stream:
            return stream.read()

    def verify_object(self, bucket: str, key: str) -> None:
        """Re-hash the stored bytes; CorruptObjectError if they differ from the recorded sha256."""
        _, stream = self.open_object(bucket, key, verify=True)
        with stream:
            buf = bytearray(CHUNK_SIZE)
            while stream.readinto(buf):
                pass

    # ------------------------------------------------------------------ listing

    def _sign(self, payload: bytes) -> str:
        mac = hmac.new(self._secret, payload, hashlib.sha256).digest()[:16]
        enc = base64.urlsafe_b64encode
        return f"{enc(payload).decode().rstrip('=')}.{enc(mac).decode().rstrip('=')}"

    def _unsign(self, token: str) -> bytes | None:
        if not isinstance(token, str) or token.count(".") != 1 or len(token) > 8192:
            return None
        body, mac = token.split(".")
        try:
            payload = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
            got = base64.urlsafe_b64decode(mac + "=" * (-len(mac) % 4))
        except (ValueError, TypeError):
            return None
        want = hmac.new(self._secret, payload, hashlib.sha256).digest()[:16]
        return payload if hmac.compare_digest(want, got) else None

    def _make_token(self, bucket: str, prefix: str, delimiter: str | None, after: bytes) -> str:
        doc = {"b": bucket, "p": prefix, "d": delimiter, "a": base64.b64encode(after).decode()}
        return self._sign(json.dumps(doc, separators=(",", ":")).encode())

    def _parse_token(self, token: str, bucket: str, prefix: str, delimiter: str | None) -> bytes:
        payload = self._unsign(token)
        bad = InvalidArgument(
            "The continuation token provided is incorrect",
            bucket=bucket,
            details={"ArgumentName": "continuation-token"},
        )
        if payload is None:
            raise bad
        try:
            doc = json.loads(payload)
            after = base64.b64decode(doc["a"], validate=True)
        except (ValueError, KeyError, TypeError):
            raise bad from None
        if doc.get("b") != bucket or doc.get("p") != prefix or doc.get("d") != delimiter:
            raise bad
        return after

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
        """ListObjectsV2: keys in UTF-8 binary order, common prefixes, signed continuation token."""
        bdir = self._require_bucket(bucket)
        prefix = prefix or ""
        if not isinstance(prefix, str):
            raise InvalidArgument(f"prefix must be a string, got {prefix!r}", bucket=bucket)
        if delimiter == "":
            delimiter = None
        if not isinstance(max_keys, int) or isinstance(max_keys, bool) or max_keys < 0:
            raise InvalidArgument(
                f"max-keys must be a non-negative integer, got {max_keys!r}",
                bucket=bucket,
                details={"ArgumentName": "max-keys"},
            )
        max_keys = min(max_keys, 1000)
        try:
            prefix_b = prefix.encode("utf-8")
            delim_b = delimiter.encode("utf-8") if delimiter is not None else None
            after = start_after.encode("utf-8") if start_after else b""
        except (UnicodeEncodeError, AttributeError):
            raise InvalidArgument(
                "prefix, delimiter and start-after must be valid UTF-8 strings", bucket=bucket
            ) from None
        if continuation_token is not None:
            after = self._parse_token(continuation_token, bucket, prefix, delimiter)

        contents: list[ObjectInfo] = []
        common: list[str] = []
        truncated = False
        last_bound = after
        start_dir, start_prefix = self._start_dir(bdir, prefix)
        if start_dir is not None and max_keys > 0:
            state = _WalkState(prefix_b, after, rollup_slash=delim_b == b"/", dirs=self._dir_cache)
            for k, path in _walk(start_dir, start_prefix, state):
                cp = None
                if delim_b is not None:
                    idx = k.find(delim_b, len(prefix_b))
                    if idx >= 0:
                        cp = k[: idx + len(delim_b)]
                if len(contents) + len(common) >= max_keys:
                    truncated = True
                    break
                if cp is not None:
                    common.append(cp.decode("utf-8"))
                    state.after = last_bound = cp + b"\xff"
                    continue
                if path is None:  # only rolled-up directories come without a file
                    continue
                key = k.decode("utf-8")
                info = self._list_info(bucket, key, path)
                state.after = k
                if info is None:
                    continue
                contents.append(info)
                last_bound = k
        token = self._make_token(bucket, prefix, delimiter, last_bound) if truncated else None
        return ListResult(
            contents=contents,
            common_prefixes=common,
            is_truncated=truncated,
            next_continuation_token=token,
            key_count=len(contents) + len(common),
        )

    @staticmethod
    def _start_dir(bdir: Path, prefix: str) -> tuple[str | None, bytes]:
        """Directory holding every key with ``prefix`` (skips listing the levels above it)."""
        objects = str(bdir / "objects")
        if "/" not in prefix:
            return objects, b""
        segments = prefix.split("/")[:-1]
        if any(s in (".", "..") or "\x00" in s for s in segments) or prefix.startswith("/"):
            return None, b""  # no valid key can have this prefix
        try:
            comps = _dir_components(segments)
        except UnicodeEncodeError:
            return None, b""
        path = os.path.join(objects, *comps)
        if not os.path.isdir(path):
            return None, b""
        return path, ("/".join(segments) + "/").encode("utf-8")

    def _list_info(self, bucket: str, key: str, path: str) -> ObjectInfo | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None  # deleted since the directory was read
        try:
            doc, _ = _read_trailer(fd, f"s3://{bucket}/{key}")
            if doc.get("key") != key:
                return None  # a file copied or moved by hand: head/get report it as corrupt
            return _info_from_trailer(bucket, key, doc)
        except CorruptObjectError:
            return None  # reported by head/get/verify; a listing must not fail for one object
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ multipart

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
            "content_type": _validate_content_type(content_type),
            "metadata": _validate_metadata(metadata),
            "checksum_algorithm": (
                ck.normalize_algorithm(checksum_algorithm) if checksum_algorithm else None
            ),
            "initiated": _now().isoformat(),
        }
        upload_id = secrets.token_hex(16)
        staging = self._temp_name("upload")
        os.mkdir(staging)
        try:
            with open(os.path.join(staging, "upload.json"), "w") as f:
                json.dump(doc, f)
                f.flush()
                os.fsync(f.fileno())
            _fsync_dir(staging)
            with self._bucket_lock(bucket, exclusive=False):
                if not (bdir / "bucket.json").is_file():
                    raise NoSuchBucket(
                        f"The specified bucket does not exist: {bucket!r}", bucket=bucket
                    )
                os.rename(staging, bdir / "uploads" / upload_id)
            _fsync_dir_if_exists(bdir / "uploads")
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
        want_md5, want_sha, algorithm, want_ck = self._prepare_checks(
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
        stamp = _now()

        def trailer(w: _Written) -> dict[str, Any]:
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
            self._verify_written(w, bucket, key, want_md5, want_sha, want_ck)
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
            _fsync_dir_if_exists(udir)
        except BaseException:
            self._discard(w.path)
            raise
        return _part_from_trailer(trailer(w))

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
                doc, _ = _read_trailer(fd, f"upload {upload_id} {name}")
                parts.append(_part_from_trailer(doc))
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
                pdoc, size = _read_trailer(f.fileno(), f"upload {upload_id} part {number}")
                opened[-1] = (f, pdoc, size)
                if not isinstance(etag, str) or _normalize_etag(etag) != pdoc.get("etag"):
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
            stamp = _now()

            def trailer(w: _Written) -> dict[str, Any]:
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
        return _info_from_trailer(bucket, key, trailer(w))

    def _assemble_parts(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        opened: list[tuple[IO[bytes], dict[str, Any], int]],
        trailer: Any,
    ) -> _Written:
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
        blocks = None if aligned else _BlockCrcs()

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
            _pread_exact(f.fileno(), _block_table_size(size), size)
            if pdoc.get("block_size") == BLOCK_SIZE
            else None
            for f, pdoc, size in opened
        ]
        # parts are read once and then deleted: bypass the page cache for them too
        direct = [_set_direct(f.fileno(), True) for f, _, _ in opened]
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
            got, direct[index] = _pread_part(
                opened[index][0].fileno(), bufs[step % 2], n, offset, direct[index]
            )
            return got

        path = self._temp_name("obj")
        out = _TempWriter(path, ASSEMBLE_CHUNK)
        pool = _pool()
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
                        crc = _crc32(chunk[i : i + BLOCK_SIZE]).to_bytes(4, "big")
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
            written = _Written(
                path=path,
                size=sum(size for _, _, size in opened),
                md5=b"",
                sha256=sha.digest(),
                checksum=None,
            )
            doc = trailer(written)
            doc["block_size"] = BLOCK_SIZE
            table_bytes = blocks.finish() if blocks is not None else bytes(table)
            out.finish(table_bytes + _encode_trailer(doc))
        except BaseException:
            for fut in (reading, hashing):
                if fut is not None:
                    with contextlib.suppress(BaseException):
                        fut.result()
            out.close()
            for view, mem in zip(bufs, mems, strict=True):
                _release(view, mem)
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        out.close()
        for view, mem in zip(bufs, mems, strict=True):
            _release(view, mem)
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

    def sweep_stale_temps(self) -> int:
        """Delete temp files/dirs left by dead processes; returns how many entries went.

        An entry is stale when its writer (host tag + pid in the name) is this host and the pid
        is gone, or when it is older than a day (other hosts sharing the store, or pid reuse).
        """
        removed = 0
        now = time.time()
        try:
            entries = list(os.scandir(self._tmp))
        except FileNotFoundError:
            return 0
        for e in entries:
            parts = e.name.split(".")
            stale = False
            if len(parts) == 4 and parts[0] == _HOST_TAG and parts[1].isdigit():
                stale = int(parts[1]) != os.getpid() and not _pid_alive(int(parts[1]))
            if not stale:
                try:
                    stale = now - e.stat(follow_symlinks=False).st_mtime > _STALE_FOREIGN_SECONDS
                except FileNotFoundError:
                    continue
            if not stale:
                continue
            try:
                if e.is_dir(follow_symlinks=False):
                    shutil.rmtree(e.path)
                else:
                    os.unlink(e.path)
                removed += 1
            except FileNotFoundError:
                continue
            except OSError:
                continue
        return removed


__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_CONTENT_TYPE",
    "BucketInfo",
    "ListResult",
    "ObjectInfo",
    "ObjectStore",
    "ObjectStream",
    "PartInfo",
    "validate_bucket_name",
    "validate_key",
]
