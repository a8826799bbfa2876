"""Per-call capture of a function's output: ``print`` text in memory, raw fd writes in a memfd."""

from __future__ import annotations

import io
import os
from typing import Any


class Capture:
    """Keeps the tail of one call's text output, bounded by ``cap`` characters."""

    __slots__ = ("cap", "dropped", "parts", "size")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        if self.size > 2 * self.cap + 4096:
            joined = "".join(self.parts)
            keep = joined[-self.cap :]
            self.dropped += len(joined) - len(keep)
            self.parts[:] = [keep]  # in place: the run loop holds a reference to this list
            self.size = len(keep)

    def take(self) -> str:
        if not self.parts:
            return ""
        text = "".join(self.parts)
        if len(text) > self.cap:
            self.dropped += len(text) - self.cap
            text = text[-self.cap :]
        if len(text) * 4 > self.cap:  # the cap is in bytes; non-ASCII text may exceed it
            data = text.encode("utf-8", "replace")
            if len(data) > self.cap:
                kept = data[-self.cap :].decode("utf-8", "ignore")
                self.dropped += len(text) - len(kept)
                text = kept
        if self.dropped:
            text = f"[... {self.dropped} characters of output truncated ...]\n{text}"
        self.parts.clear()
        self.size = 0
        self.dropped = 0
        return text


class BinaryStream(io.RawIOBase):
    """``sys.stdout.buffer`` stand-in: bytes are decoded and captured like text."""

    def __init__(self, capture: Capture, fd: int) -> None:
        super().__init__()
        self._capture = capture
        self._fd = fd

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        raw = bytes(data)
        self._capture.add(raw.decode("utf-8", "replace"))
        return len(raw)

    def fileno(self) -> int:
        return self._fd


class TextStream(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` replacement: no syscalls per ``print``, capped per call."""

    encoding = "utf-8"
    errors = "replace"

    def __init__(self, capture: Capture, fd: int, name: str) -> None:
        super().__init__()
        self._capture = capture
        self._fd = fd
        self._name = name
        self._buffer = BinaryStream(capture, fd)

    @property
    def buffer(self) -> BinaryStream:  # type: ignore[override]
        return self._buffer

    @property
    def name(self) -> str:
        return self._name

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        self._capture.add(s)
        return len(s)

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._fd


def drain_fd_output(fd: int, cap: int) -> str:
    """Return (the tail of) what was written to the raw stdout/stderr memfd, then empty it."""
    size = os.fstat(fd).st_size
    if not size:
        return ""
    start = max(0, size - cap)
    data = os.pread(fd, size - start, start)
    os.ftruncate(fd, 0)
    text = data.decode("utf-8", "replace")
    if start:
        text = f"[... {start} bytes of output truncated ...]\n{text}"
    return text
