"""The verified read stream of the filesystem store."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
from collections.abc import Iterator
from typing import IO, Any

from airegistry.storage.blobs.errors import CorruptObjectError
from airegistry.storage.blobs.fs.container import BLOCK_SIZE
from airegistry.storage.blobs.fs.fsio import pread_exact
from airegistry.storage.blobs.types import CHUNK_SIZE, ObjectInfo
from airegistry.storage.checksums import crc32


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
            data = pread_exact(self._fd, min(BLOCK_SIZE, self.info.size - start), start)
            want = pread_exact(self._fd, 4, self.info.size + 4 * index)
            if crc32(data).to_bytes(4, "big") != want:
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

