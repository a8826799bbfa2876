"""Parallel validation of a large local ``.jsonl`` file.

The file is cut at line boundaries into parts of about 16 MiB (at least two per CPU). The
calling process validates the first part itself, then takes further parts from a queue
that worker processes (one per remaining CPU) also draw from, so a worker that starts late
or runs on a busy core simply does fewer parts. Each part counts its own lines from 1, and the parts are merged in file order with their line numbers shifted
by the line counts of the parts before them. Because the first 100 errors of the whole
file are among the first 100 of each part, and statistics are integer sums/min/max, the
merged report is identical to the single-process one.

The one piece of cross-part state is the dataset format, detected from the first row: it
is found by a quick scan of the start of the file before the workers start (falling back
to the serial path when the first few MiB hold no recognisable row).

Workers are fresh interpreters (``python -m airegistry.formats.worker``) talking pickles
over pipes, i.e. a "spawn" start without :mod:`multiprocessing`. Never ``fork``: the
registry calls us from a worker thread of a process holding other threads and SQLite
connections, which a forked child would inherit in an undefined state. And not
``multiprocessing``'s spawn/forkserver either, because those re-import the caller's
``__main__`` in the child, which breaks (or re-runs) any script without a
``if __name__ == "__main__"`` guard that merely calls ``DataSet.create``.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

from . import texts
from .engine import RowValidator
from .errors import SourceReadError
from .jsonl import BOM, validate_jsonl
from .report import Issue, ValidationLimits
from .sources import CHUNK_SIZE, ByteSource

PARALLEL_THRESHOLD = 64 << 20
PEEK_BYTES = 4 << 20
PART_BYTES = 16 << 20  # parts are handed out dynamically; small enough to balance


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def split_points(path: str, size: int, parts: int) -> list[int]:
    """Offsets ``[0, ..., size]`` cutting the file just after a newline near each 1/parts."""
    points = [0]
    with open(path, "rb") as f:
        for k in range(1, parts):
            target = max(size * k // parts, points[-1])
            f.seek(target)
            pos = target
            while True:
                block = f.read(1 << 16)
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
    """The format and line the serial run would detect, if within the first part's start."""
    with open(path, "rb") as f:
        data = f.read(min(end, PEEK_BYTES))
    cut = data.rfind(b"\n")
    if cut < 0:
        return None
    data = data[: cut + 1]
    if data.startswith(BOM):
        data = data[len(BOM) :]
    probe = RowValidator(technique, limits)
    for i, line in enumerate(data.split(b"\n")[:-1]):
        probe.check_line(line, i + 1)
        if probe.format is not None:
            return probe.format, probe.detected_line
    return None


class _Worker:
    """A child interpreter validating parts handed to it one at a time.

    A feeder thread takes the next part index from the shared queue, sends the job,
    reads the child's messages until its result, and repeats; so a slow or late-starting
    worker simply does fewer parts (dynamic load balancing).
    """

    def __init__(self, jobs: queue.SimpleQueue[int], job_args: Callable[[int], tuple[Any, ...]],
                 results: dict[int, dict[str, Any]]) -> None:
        self.done = 0  # bytes validated so far, for progress
        self.error: BaseException | None = None
        self._jobs = jobs
        self._job_args = job_args
        self._results = results
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "airegistry.formats.worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=_child_env(),
        )
        self._thread = threading.Thread(target=self._feed, daemon=True)
        self._thread.start()

    def _feed(self) -> None:
        stdin, stdout = self._proc.stdin, self._proc.stdout
        assert stdin is not None and stdout is not None
        try:
            while True:
                try:
                    index = self._jobs.get_nowait()
                except queue.Empty:
                    break
                pickle.dump(self._job_args(index), stdin)
                stdin.flush()
                base = self.done
                while True:
                    kind, value = pickle.load(stdout)
                    if kind == "progress":
                        self.done = base + value
                    elif kind == "result":
                        self._results[index] = value
                        break
                    else:  # "error": the exception raised in the child
                        raise value
        except (EOFError, OSError, pickle.UnpicklingError):
            # The child died (killed, out of memory...): the parts it did not finish are
            # simply missing from ``results`` and the parent validates them itself.
            pass
        except BaseException as exc:
            self.error = exc
        finally:
            try:
                pickle.dump(None, stdin)
                stdin.close()
            except OSError:
                pass

    def join(self) -> None:
        self._thread.join()
        if self.error is None:
            self._proc.wait()

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()


def _child_env() -> dict[str, str]:
    """Make sure the child imports this very ``airegistry`` (source trees, tests)."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def run_part(
    path: str,
    start: int,
    end: int,
    technique: str | None,
    limits: ValidationLimits,
    preset: tuple[str, int] | None,
    progress: Callable[[int], Any] | None = None,
) -> dict[str, Any]:
    """Validate ``path[start:end]`` (whole lines) with lines numbered from 1."""
    fmt, line = preset if preset is not None else (None, 0)
    v = RowValidator(technique, limits, format_name=fmt, detected_line=line)
    with open(path, "rb", buffering=0) as f:
        f.seek(start)
        src = ByteSource(
            f, name=path, max_bytes=limits.max_bytes, progress=progress, offset=start, end=end
        )
        lines = validate_jsonl(src, v, strip_bom=start == 0)
    out = v.export()
    out["lines"] = lines
    return out


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
    """Validate in parallel; ``None`` when the file does not lend itself to it (the
    caller then runs the serial path)."""
    workers_wanted = max(1, cpu_count() - 1)
    n = parts or max(2 * (workers_wanted + 1), min(64, size // PART_BYTES))
    points = split_points(path, size, n)
    if len(points) < 3:
        return None
    preset = _peek_format(path, points[1], technique, limits)
    if preset is None:
        return None
    digest: list[Any] = []
    hasher = None
    if compute_sha256:
        hasher = threading.Thread(target=_hash_file, args=(path, digest), daemon=True)
        hasher.start()
    jobs: queue.SimpleQueue[int] = queue.SimpleQueue()
    for k in range(1, len(points) - 1):
        jobs.put(k)
    results: dict[int, dict[str, Any]] = {}

    def job_args(k: int) -> tuple[Any, ...]:
        return (path, points[k], points[k + 1], technique, limits, preset)

    workers: list[_Worker] = []
    try:
        for _ in range(min(workers_wanted, len(points) - 2)):
            workers.append(_Worker(jobs, job_args, results))
    except OSError:
        pass  # cannot start interpreters here: the parent does every part itself
    own_done = [0]
    own_progress = None
    if progress is not None:

        def own_progress(done: int) -> None:
            progress(own_done[0] + done + sum(w.done for w in workers))

    try:
        # Part 0 is ours: it is the only one that starts without a known format.
        results[0] = run_part(path, 0, points[1], technique, limits, None, own_progress)
        own_done[0] += points[1]
        while True:
            try:
                k = jobs.get_nowait()
            except queue.Empty:
                break
            results[k] = run_part(path, *job_args(k)[1:], own_progress)
            own_done[0] += points[k + 1] - points[k]
        for w in workers:
            w.join()
            if w.error is not None:
                raise w.error
        for k in range(1, len(points) - 1):
            if k not in results:  # its worker died
                results[k] = run_part(path, *job_args(k)[1:], own_progress)
    finally:
        for w in workers:
            w.close()
    if hasher is not None:
        hasher.join()
        if isinstance(digest[0], BaseException):
            raise SourceReadError(f"hashing {path} failed: {digest[0]}") from digest[0]
    if progress is not None:
        progress(size)
    merged = RowValidator(technique, limits)
    merged.set_format(*preset)
    offset = 0
    tally = merged.tally
    for k in range(len(points) - 1):
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
    return merged, (digest[0] if digest else None)
