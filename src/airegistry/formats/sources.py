"""Reading the bytes of a dataset: size limit, hashing, progress and read failures.

Every reader (JSONL, JSON, CSV, Parquet spooling) pulls its bytes through
:class:`ByteSource`, so these concerns are handled once. Sources are only ever read
forward: the registry streams objects from its store or from S3, which cannot seek.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from typing import Any, Protocol

from .errors import DatasetTooLargeError, SourceReadError

CHUNK_SIZE = 8 << 20  # large reads amortise the per-call cost; still flat memory


class BinaryReadable(Protocol):
    def read(self, n: int = ..., /) -> bytes: ...


class ByteSource:
    """A forward-only reader over a binary stream that enforces ``max_bytes``.

    Exceptions raised by the underlying stream are wrapped in :class:`SourceReadError`
    (with the original as ``__cause__``) so that callers can tell "the data is bad" from
    "we could not read the data".
    """

    def __init__(
        self,
        raw: BinaryReadable,
        *,
        name: str,
        max_bytes: int,
        sha256: bool = False,
        progress: Callable[[int], Any] | None = None,
        offset: int = 0,
        end: int | None = None,
    ) -> None:
        self._raw = raw
        self.name = name
        self.max_bytes = max_bytes
        self.bytes = 0
        self._hash = hashlib.sha256() if sha256 else None
        self._progress = progress
        self._offset = offset  # only used in messages: where this part starts in the file
        self._remaining = None if end is None else end - offset

    def read(self, n: int = CHUNK_SIZE) -> bytes:
        if self._remaining is not None:
            n = min(n, self._remaining)
            if n <= 0:
                return b""
        try:
            data = self._raw.read(n)
        except Exception as exc:
            raise SourceReadError(
                f"reading {self.name} failed after {self._offset + self.bytes} bytes: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if data is None:
            raise SourceReadError(f"{self.name}: the stream returned no data (non-blocking?)")
        if not isinstance(data, bytes):
            if isinstance(data, str):
                raise SourceReadError(f"{self.name}: the stream must be binary, it returned str")
            data = bytes(data)
        if not data:
            return data
        self.bytes += len(data)
        if self._remaining is not None:
            self._remaining -= len(data)
        if self._offset + self.bytes > self.max_bytes:
            raise DatasetTooLargeError(
                f"{self.name} is larger than the limit of {self.max_bytes} bytes"
            )
        if self._hash is not None:
            self._hash.update(data)
        if self._progress is not None:
            self._progress(self.bytes)
        return data

    def drain(self) -> None:
        """Read to the end (so that ``bytes``/``sha256`` describe the whole source)."""
        while self.read(CHUNK_SIZE):
            pass

    @property
    def sha256(self) -> str | None:
        return self._hash.hexdigest() if self._hash is not None else None


class Concat:
    """The buffers ``bufs``, one per read, then the rest of ``then`` (if given): a part
    received in pieces, or a stream read on after a look at its start."""

    def __init__(
        self, bufs: list[bytes | memoryview], then: BinaryReadable | None = None
    ) -> None:
        self._bufs = bufs[::-1]
        self._then = then

    def read(self, n: int = CHUNK_SIZE, /) -> bytes:
        while self._bufs:
            buf = self._bufs.pop()
            if buf:
                return buf if isinstance(buf, bytes) else bytes(buf)
        return self._then.read(n) if self._then is not None else b""


class RawAdapter(io.RawIOBase):
    """Expose a :class:`ByteSource` as a raw stream, for ``io.TextIOWrapper`` (CSV)."""

    def __init__(self, src: ByteSource) -> None:
        super().__init__()
        self._src = src
        self._pending = b""
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self._pos >= len(self._pending):
            self._pending = self._src.read(max(len(view), 1 << 20))
            self._pos = 0
        n = min(len(view), len(self._pending) - self._pos)
        view[:n] = self._pending[self._pos : self._pos + n]
        self._pos += n
        return n


def source_name(source: Any, filename: str | None) -> str | None:
    if filename:
        return os.fspath(filename)
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else None
