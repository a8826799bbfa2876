"""Parallel validation of large ``.jsonl`` data on the warm workers of :mod:`.pool`.

Processes, because decoding (msgspec) holds the GIL: threads cannot share the work.

The data is cut at line boundaries into parts of about :data:`PART_BYTES`. The calling
thread hands them out one at a time to whichever worker is idle (a ``select`` loop; it
validates nothing itself, so a worker waits microseconds for its next part, and one on a
busy core simply does fewer parts). Each worker counts its lines from 1; the parts are
merged in file order with their line numbers shifted by the line counts of the parts
before them. Because the first 100 errors of the whole file are among the first 100 of
each part, and statistics are integer sums/min/max, the merged report is identical to the
single-process one.

* A local file (:func:`validate_jsonl_parallel`) is cut by offsets; each worker reads its
  byte range itself, so no data crosses a pipe.
* A stream (:func:`validate_stream_parallel`: an import reading the registry's store or
  S3) is read by the caller, as a serial run would read it (size limit, hash, progress
  and read errors stay the same), and each part's bytes go down the worker's pipe as they
  were read. That costs the caller about 0.3 ns per byte on top of the read.

The one piece of cross-part state is the dataset format, detected from the first row: it
is found by a quick scan of the start before the parts go out (a file falls back to the
serial path, and a stream goes on serially, when that start holds no recognisable row).
"""

from __future__ import annotations

import hashlib
import selectors
import threading
from collections.abc import Callable, Iterator
from itertools import chain
from typing import Any

from . import texts
from .engine import RowValidator
from .errors import SourceReadError
from .jsonl import BOM, validate_jsonl
from .pool import POOL, Worker
from .report import Issue, ValidationLimits
from .sources import CHUNK_SIZE, ByteSource, Concat
from .worker import Part, run_part

PARALLEL_THRESHOLD = 64 << 20  # workers not started yet: their start-up must pay for itself
WARM_THRESHOLD = 2 << 20  # workers already running: from 1 MB on they paid (bench, 2 cores)
PEEK_BYTES = 4 << 20
PART_BYTES = 4 << 20  # small enough to balance the end, large enough to amortise a job


def split_points(path: str, size: int, parts: int) -> list[int]:
    """Offsets ``[0, ..., size]`` cutting the file just after a newline near each 1/parts."""
    points = [0]
    with open(path, "rb") as f:
        for k in range(1, parts):
            target = max(size * k // parts, points[-1])
            f.seek(target)
            pos = target
            while True:
                block = f.read(1 << 14)
                if not block:
                    pos = size
                    break
                nl = block.find(b"\n")
                if nl >= 0:
                    pos += nl + 1
                    break
                pos += len(block)
            if points[-1] < pos < size:
                points.append(pos)
    points.append(size)
    return points


def _peek_format(
    path: str, end: int, technique: str | None, limits: ValidationLimits
) -> tuple[str, int] | None:
    """The format and line the serial run would detect, if within the first part's start.

    The first row almost always tells, so a small read comes first.
    """
    with open(path, "rb") as f:
        head = f.read(min(end, 1 << 16))
        found = _detect(head, technique, limits)
        if found is None and len(head) < min(end, PEEK_BYTES):
            head += f.read(min(end, PEEK_BYTES) - len(head))
            found = _detect(head, technique, limits)
    return found


def _detect(data: bytes, technique: str | None, limits: ValidationLimits) -> tuple[str, int] | None:
    probe = RowValidator(technique, limits)
    pos = len(BOM) if data.startswith(BOM) else 0
    line = 1
    nl = data.find(b"\n", pos)
    while nl >= 0:
        probe.check_line(data[pos:nl], line)
        if probe.format is not None:
            return probe.format, probe.detected_line
        pos, line = nl + 1, line + 1
        nl = data.find(b"\n", pos)
    return None


def _hash_file(path: str, out: list[Any]) -> None:
    """Runs on a thread next to the validation (hashlib releases the GIL)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb", buffering=0) as f:
            while True:
                block = f.read(CHUNK_SIZE)
                if not block:
                    break
                h.update(block)
    except OSError as exc:
        out.append(exc)
        return
    out.append(h.hexdigest())


Job = tuple[Part, str | None, ValidationLimits, tuple[str, int] | None]


def _hand_out(
    workers: list[Worker],
    jobs: Iterator[Job],
    results: dict[int, dict[str, Any]],
    on_done: Callable[[int], None] | None = None,
) -> Iterator[tuple[int, Job]]:
    """Run ``jobs`` (numbered in order) on ``workers``, each taking the next one when idle.

    The next job is taken from ``jobs`` as soon as one is sent, so that reading a stream's
    next part overlaps the workers' validation. Returns the numbered jobs no worker did:
    those of a worker that died, then, once no worker is left, the rest of ``jobs``. A
    worker still holding a job when this raises is discarded, so that its late answer can
    never be mistaken for one of the next validation.
    """
    numbered = enumerate(jobs)
    ahead = next(numbered, None)
    busy: dict[Worker, tuple[int, Job]] = {}
    lost: list[tuple[int, Job]] = []
    sel = selectors.DefaultSelector()

    def give(w: Worker) -> None:
        nonlocal ahead
        if ahead is None:
            return
        try:
            w.send(ahead[1])
        except OSError:  # it has died since the lease
            sel.unregister(w)
            POOL.discard(w)
            return
        busy[w] = ahead  # before reading on: that may raise, and w holds a job now
        ahead = next(numbered, None)

    try:
        for w in workers:
            sel.register(w, selectors.EVENT_READ)
            give(w)
        while busy:
            for key, _ in sel.select():
                w = key.fileobj  # type: ignore[assignment]
                k, job = busy.pop(w)
                try:
                    kind, value = w.recv()
                except (EOFError, OSError):  # killed, out of memory...
                    lost.append((k, job))
                    sel.unregister(w)
                    POOL.discard(w)
                    continue
                if kind == "error":
                    raise value
                results[k] = value
                if on_done is not None:
                    on_done(k)
                give(w)
    finally:
        sel.close()
        for w in busy:
            POOL.discard(w)
    return chain(lost, [ahead] if ahead is not None else [], numbered)


def validate_jsonl_parallel(
    path: str,
    size: int,
    technique: str | None,
    limits: ValidationLimits,
    *,
    compute_sha256: bool = False,
    progress: Callable[[int], Any] | None = None,
    parts: int | None = None,
) -> tuple[RowValidator, str | None] | None:
    """Validate a local file in parallel; ``None`` when it does not lend itself to it, or
    the workers are busy with another validation (the caller then runs the serial path)."""
    n = parts or max(4 * POOL.size, size // PART_BYTES)
    points = split_points(path, size, n)
    if len(points) < 3:
        return None
    preset = _peek_format(path, points[1], technique, limits)
    if preset is None:
        return None
    # Part 0 is the only one that starts without a known format, as a serial run does.
    jobs = [((path, points[k], points[k + 1]), technique, limits, preset if k else None)
            for k in range(len(points) - 1)]
    done = [0]

    def on_done(k: int) -> None:
        done[0] += points[k + 1] - points[k]
        if progress is not None:
            progress(done[0])

    results: dict[int, dict[str, Any]] = {}
    digest: list[Any] = []
    hasher = None
    with POOL.lease() as workers:
        if workers is None:
            return None
        if compute_sha256:
            hasher = threading.Thread(target=_hash_file, args=(path, digest), daemon=True)
            hasher.start()
        left = _hand_out(workers, iter(jobs), results, on_done)
    for k, job in left:
        results[k] = run_part(*job)
        on_done(k)
    if hasher is not None:
        hasher.join()
        if isinstance(digest[0], BaseException):
            raise SourceReadError(f"hashing {path} failed: {digest[0]}") from digest[0]
    return _merge(results, technique, limits, preset), (digest[0] if digest else None)


class _StreamParts:
    """Whole-line parts of about ``size`` bytes read from a stream, as they are needed.

    A part is the list of buffers read (the last one cut after its last newline), so that
    no byte is copied on its way to the pipe. :meth:`next` returns ``None`` at the end of
    the stream, or before a line longer than a part, whose start it leaves in :attr:`rest`
    for the caller to validate serially.
    """

    def __init__(self, src: ByteSource, size: int) -> None:
        self.src = src
        self.size = size
        self.rest = b""  # bytes read past the last part returned: the start of a line

    def next(self) -> list[bytes | memoryview] | None:
        bufs = [self.rest] if self.rest else []
        n = len(self.rest)
        while n < self.size:
            data = self.src.read(self.size - n)
            if not data:  # the end: the last part, whose last line may lack its newline
                self.rest = b""
                return bufs or None
            bufs.append(data)
            n += len(data)
        for j in range(len(bufs) - 1, -1, -1):
            buf = bufs[j]
            cut = buf.rfind(b"\n") + 1
            if cut:
                self.rest = b"".join([buf[cut:], *bufs[j + 1 :]])
                return [*bufs[:j], memoryview(buf)[:cut] if cut < len(buf) else buf]
        self.rest = b"".join(bufs)
        return None


def validate_stream_parallel(
    src: ByteSource, technique: str | None, limits: ValidationLimits
) -> RowValidator:
    """Validate a stream in parallel: the caller reads it (so that the size limit, hash,
    progress and read errors are those of a serial run), cuts it into whole-line parts
    and ships each to an idle worker through its pipe.

    A stream cannot be read twice, so every way out (no recognisable first row, the
    workers busy or gone, a line longer than a part) continues in this thread.
    """
    parts = _StreamParts(src, PART_BYTES)
    first = parts.next()
    head = b"".join(first or [])
    preset = _detect(head, technique, limits)
    if preset is None:
        v = RowValidator(technique, limits)
        validate_jsonl(_after(head, parts), v)
        return v

    def jobs() -> Iterator[Job]:
        yield first, technique, limits, None
        while (part := parts.next()) is not None:
            yield part, technique, limits, preset

    results: dict[int, dict[str, Any]] = {}
    with POOL.lease() as workers:
        left = enumerate(jobs()) if workers is None else _hand_out(workers, jobs(), results)
    for k, job in left:
        results[k] = run_part(*job)
    if parts.rest:
        results[len(results)] = run_part(_after(b"", parts), technique, limits, preset)
    return _merge(results, technique, limits, preset)


def _after(head: bytes, parts: _StreamParts) -> Concat:
    """``head``, what ``parts`` read ahead, then the rest of its stream."""
    return Concat([head, parts.rest], parts.src)


def _merge(
    results: dict[int, dict[str, Any]], technique: str | None, limits: ValidationLimits,
    preset: tuple[str, int],
) -> RowValidator:
    merged = RowValidator(technique, limits)
    merged.set_format(*preset)
    offset = 0
    tally = merged.tally
    for k in range(len(results)):
        part = results[k]
        for attr, count_attr in (("errors", "error_count"), ("warnings", "warning_count")):
            target: list[Issue] = getattr(tally, attr)
            for issue in part[attr]:
                if len(target) >= tally.limit:
                    break
                target.append(Issue(issue.line + offset, issue.path, issue.message))
            setattr(tally, count_attr, getattr(tally, count_attr) + part[count_attr])
        texts.merge(merged.acc, part["acc"])
        merged.rows += part["rows"]
        offset += part["lines"]
    return merged
