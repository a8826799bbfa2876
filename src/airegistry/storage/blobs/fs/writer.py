"""Writing new objects in the filesystem store: hashing while streaming, the atomic temp file.

Data and its trailer are written to a temp file in ``root/tmp``, fsynced, and only then
renamed over the final name by the store, so a reader holding the old file keeps reading
the old version (last writer wins, nothing torn), and a crash or a failed body leaves at
most a temp file, removed on error or swept later (``sweep.py``).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import mmap
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from airegistry.storage import checksums as ck
from airegistry.storage.blobs.fs.container import BLOCK_SIZE, Written, encode_trailer
from airegistry.storage.blobs.fs.fsio import ALIGN, set_direct, write_all
from airegistry.storage.blobs.types import iter_body
from airegistry.storage.checksums import crc32

HASH_CHUNK = 1 << 20
"""Bytes hashed/checked/written per step when writing: big enough that per-call overhead
vanishes and md5 runs on a helper thread, small enough that memory per request stays flat."""


_PARALLEL_MIN_CHUNK = 256 * 1024
_hash_pool: ThreadPoolExecutor | None = None
_hash_pool_lock = threading.Lock()


def _forget_pool_after_fork() -> None:
    # a forked child has none of the parent's pool threads; a new pool is made on first use
    global _hash_pool, _hash_pool_lock
    _hash_pool = None
    _hash_pool_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_after_fork)


def pool() -> ThreadPoolExecutor:
    global _hash_pool
    with _hash_pool_lock:
        if _hash_pool is None:
            _hash_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="airegistry-md5")
        return _hash_pool


class BodyHasher:
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
            self._pending = pool().submit(self.md5.update, chunk)
        else:
            self.md5.update(chunk)
        self.sha.update(chunk)
        if self.cks is not None:
            self.cks.update(chunk)

    def wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()


class BlockCrcs:
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
            self._crc = crc32(view[:take], self._crc)
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




class TempWriter:
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
        self._direct = set_direct(self.fd, True)
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
        if page_aligned and self._direct and self._fill == 0 and len(src) % ALIGN == 0:
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
        if self._direct and len(data) % ALIGN:
            self._direct = not set_direct(self.fd, False)
        view = data.cast("B") if data.format != "B" else data
        while view:
            try:
                n = os.write(self.fd, view)
            except OSError as exc:
                if not self._direct or exc.errno != errno.EINVAL:
                    raise
                # The filesystem accepted the flag but not the I/O: go on with normal
                # writes.  A failed write(2) wrote nothing, so nothing is written twice.
                self._direct = not set_direct(self.fd, False)
                if self._direct:
                    raise
                continue
            view = view[n:]

    def finish(self, tail: bytes) -> None:
        """Write the buffered data, then ``tail`` (block table + trailer), and fsync."""
        self.flush()
        if self._direct:
            self._direct = not set_direct(self.fd, False)
        write_all(self.fd, tail)
        os.fsync(self.fd)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
        release(self._view, self._mem)


def release(view: memoryview, mem: mmap.mmap) -> None:
    """Unmap a buffer now; if a slice of it is still referenced, garbage collection will."""
    with contextlib.suppress(BufferError):
        view.release()
        mem.close()




def stream_to_temp(
    path: str,
    body: Any,
    *,
    algorithm: str | None,
    trailer: Any,
) -> Written:
    """Write body + trailer to a new fsynced temp file at ``path``; ``trailer(written)`` gives the trailer.

    On any failure (including a body iterator raising or a disconnect) the temp file is
    removed before the exception propagates.
    """
    out = TempWriter(path, HASH_CHUNK)
    hasher = BodyHasher(algorithm)
    blocks = BlockCrcs()
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
        for chunk in iter_body(body):
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
        written = Written(
            path=path,
            size=size,
            md5=hasher.md5.digest(),
            sha256=hasher.sha.digest(),
            checksum=(algorithm, cks.digest()) if cks is not None and algorithm else None,
        )
        doc = trailer(written)
        doc["block_size"] = BLOCK_SIZE
        out.finish(blocks.finish() + encode_trailer(doc))
    except BaseException:
        with contextlib.suppress(BaseException):
            hasher.wait()
        out.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    out.close()
    return written
