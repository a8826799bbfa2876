"""Small POSIX file helpers of the filesystem store: durable directories, exact reads, O_DIRECT."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path


def fsync_dir(path: str | Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir_if_exists(path: str | Path) -> None:
    """Directory fsync for paths a concurrent delete may have pruned (then nothing to sync)."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        fsync_dir(path)


def write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data).cast("B")
    while view:
        n = os.write(fd, view)
        view = view[n:]


def pread_exact(fd: int, n: int, offset: int) -> bytes:
    parts: list[bytes] = []
    while n > 0:
        chunk = os.pread(fd, n, offset)
        if not chunk:
            break
        parts.append(chunk)
        n -= len(chunk)
        offset += len(chunk)
    return b"".join(parts)


def pread_part(
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
        if direct and (offset + got) % ALIGN == 0:
            ask = min(len(buf), -(-(want - got) // ALIGN) * ALIGN + got)
            try:
                k = os.preadv(fd, [buf[got:ask]], offset + got)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                direct = not set_direct(fd, False)
                continue
        else:
            if direct:
                direct = not set_direct(fd, False)
            k = os.preadv(fd, [buf[got:want]], offset + got)
        if k <= 0:
            break
        got += k
    return min(got, want), direct


# --------------------------------------------------------------------------- writing files

ALIGN = 4096
"""O_DIRECT alignment used for buffers, offsets and lengths (covers 512 and 4096 sectors)."""
_O_DIRECT = getattr(os, "O_DIRECT", 0)


def set_direct(fd: int, on: bool) -> bool:
    """Switch O_DIRECT on an open fd; False where the platform or filesystem refuses it."""
    if not _O_DIRECT:
        return False
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, (flags | _O_DIRECT) if on else (flags & ~_O_DIRECT))
    except OSError:
        return False
    return True

