"""Parallel validation of a large local ``.jsonl`` file on the warm workers of :mod:`.pool`.

Processes, because decoding (msgspec) holds the GIL: threads cannot share the work.

The file is cut at line boundaries into parts of about :data:`PART_BYTES`. The calling
thread hands them out one at a time to whichever worker is idle (a ``select`` loop; it
validates nothing itself, so a worker waits microseconds for its next part, and one on a
busy core simply does fewer parts). Each worker reads its byte range itself, so no data
crosses a pipe, and counts its lines from 1. The parts are merged in file order with their
line numbers shifted by the line counts of the parts before them. Because the first 100
errors of the whole file are among the first 100 of each part, and statistics are integer
sums/min/max, the merged report is identical to the single-process one.

The one piece of cross-part state is the dataset format, detected from the first row: it
is found by a quick scan of the start of the file before the parts go out (falling back
to the serial path when the first few MiB hold no recognisable row).

Only a local regular file is split, because the workers read it themselves; a stream (an
import reading the registry's store or S3) is validated serially.
"""

from __future__ import annotations

import hashlib
import selectors
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from . import texts
from .engine import RowValidator
from .errors import SourceReadError
from .jsonl import BOM
from .pool import POOL, Worker
from .report import Issue, ValidationLimits
from .sources import CHUNK_SIZE
from .worker import run_part

PARALLEL_THRESHOLD = 64 << 20  # workers not started yet: their start-up must pay for itself
WARM_THRESHOLD = 8 << 20  # workers already running
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


def _hand_out(
    workers: list[Worker],
    job: Callable[[int], tuple[Any, ...]],
    count: int,
    results: dict[int, dict[str, Any]],
    on_done: Callable[[int], None],
) -> list[int]:
    """Run parts ``0..count-1`` on ``workers``, each taking the next part when idle.

    Returns the parts no worker did (all of them without workers; those of a worker that
    died). A worker still holding a part when this raises is discarded, so that its late
    answer can never be mistaken for one of the next validation.
    """
    todo = deque(range(count))
    busy: dict[Worker, int] = {}
    lost: list[int] = []
    sel = selectors.DefaultSelector()

    def give(w: Worker) -> None:
        if not todo:
            return
        k = todo.popleft()
        try:
            w.send(job(k))
        except OSError:  # it has died since the lease
            todo.appendleft(k)
            sel.unregister(w)
            POOL.discard(w)
            return
        busy[w] = k

    try:
        for w in workers:
            sel.register(w, selectors.EVENT_READ)
            give(w)
        while busy:
            for key, _ in sel.select():
                w = key.fileobj  # type: ignore[assignment]
                k = busy.pop(w)
                try:
                    kind, value = w.recv()
                except (EOFError, OSError):  # killed, out of memory...
                    lost.append(k)
                    sel.unregister(w)
                    POOL.discard(w)
                    continue
                if kind == "error":
                    raise value
                results[k] = value
                on_done(k)
                give(w)
    finally:
        sel.close()
        for w in busy:
            POOL.discard(w)
    return lost + list(todo)


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
    """Validate in parallel; ``None`` when the file does not lend itself to it, or the
    workers are busy with another validation (the caller then runs the serial path)."""
    n = parts or max(4 * POOL.size, size // PART_BYTES)
    points = split_points(path, size, n)
    if len(points) < 3:
        return None
    preset = _peek_format(path, points[1], technique, limits)
    if preset is None:
        return None
    count = len(points) - 1

    def job(k: int) -> tuple[Any, ...]:
        # Part 0 is the only one that starts without a known format, as a serial run does.
        return (path, points[k], points[k + 1], technique, limits, preset if k else None)

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
        left = _hand_out(workers, job, count, results, on_done)
    for k in left:
        results[k] = run_part(*job(k))
        on_done(k)
    if hasher is not None:
        hasher.join()
        if isinstance(digest[0], BaseException):
            raise SourceReadError(f"hashing {path} failed: {digest[0]}") from digest[0]
    return _merge([results[k] for k in range(count)], technique, limits, preset), (
        digest[0] if digest else None
    )


def _merge(
    parts: list[dict[str, Any]], technique: str | None, limits: ValidationLimits,
    preset: tuple[str, int],
) -> RowValidator:
    merged = RowValidator(technique, limits)
    merged.set_format(*preset)
    offset = 0
    tally = merged.tally
    for part in parts:
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
