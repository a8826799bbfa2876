"""Warm validation workers: started once per process, reused by every parallel validation.

A fresh interpreter takes 50–300 ms to start (the more, the busier the machine): as long
as validating 20–80 MB of JSONL. Started per call, workers ate most of what they gained,
so the pool starts them on the first parallel validation (or :func:`start_workers`) and
keeps them for the later files and imports of the process.

* **How they start**: ``python -I -c …`` importing this very source tree, i.e. a "spawn"
  start without :mod:`multiprocessing`. Never ``fork``: the registry calls the validator
  from worker threads of a process holding other threads and SQLite connections, which a
  forked child would inherit in an undefined state. Not ``multiprocessing`` either: its
  spawn re-imports the caller's ``__main__``, which re-runs any script that calls
  ``DataSet.create`` without an ``if __name__ == "__main__"`` guard.
* **One validation at a time**: :meth:`WorkerPool.lease` does not wait; a second caller
  while the pool is busy validates serially in its own thread, which is what it would get
  from cores the first validation already fills.
* **Ending**: at interpreter exit the pool closes the workers' stdin and they leave their
  loop; a worker whose parent was killed reads end of file and exits the same way. A
  forked child (``multiprocessing`` in user code) forgets the pool it inherited instead
  of sharing its pipes, and starts its own when it needs one.
* **Failures**: a worker that cannot start, dies or is killed is dropped (its part is
  validated by the caller) and replaced on the next lease.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

from .worker import PIPE_BYTES, recv, send

MAX_WORKERS = 8  # beyond this, memory bandwidth rather than cores limits a 1 GiB file

# The worker imports the airegistry found next to this file (a source tree, tests), which
# ``-I`` would otherwise replace by whatever is installed.
_BOOT = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from airegistry.formats.worker import main; sys.exit(main())"
)
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class Worker:
    """One worker process and the two pipes to it."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", _BOOT, _ROOT],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0,
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in = self.proc.stdin
        self._out = self.proc.stdout
        with contextlib.suppress(OSError, AttributeError):  # fewer, larger copies of parts
            fcntl.fcntl(self._in.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)

    def fileno(self) -> int:
        """The pipe to read answers from (so that a worker can be ``select``-ed)."""
        return self._out.fileno()

    def send(self, job: tuple[Any, ...]) -> None:
        """A job; the bytes of a stream's part go after it as they are."""
        if job and isinstance(job[0], list):
            send(self._in.fileno(), (None, *job[1:]), job[0])
        else:
            send(self._in.fileno(), job)

    def recv(self) -> Any:
        return recv(self._out.fileno())[0]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self, timeout: float | None = 2.0) -> None:
        """Ask the worker to leave (end of its stdin); kill it if it does not."""
        self._in.close()
        if timeout is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._out.close()

    def forget(self) -> None:
        """In a forked child: drop our copies of the parent's pipes, touch nothing else."""
        self._in.close()
        self._out.close()


class WorkerPool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._workers: list[Worker] = []
        self._hooked = False

    @property
    def size(self) -> int:
        return min(MAX_WORKERS, cpu_count())

    @property
    def pids(self) -> list[int]:
        """Process ids of the workers (benchmarks read their CPU and memory)."""
        return [w.proc.pid for w in self._workers]

    @property
    def warm(self) -> bool:
        """Whether workers are running already (so a parallel run pays no start-up)."""
        return any(w.alive() for w in self._workers)

    @contextlib.contextmanager
    def lease(self) -> Iterator[list[Worker] | None]:
        """The running workers (started if needed; possibly none, when they cannot start),
        or ``None`` while another validation is using them."""
        if not self._lock.acquire(blocking=False):
            yield None
            return
        try:
            yield self._ready()
        finally:
            self._lock.release()

    def _ready(self) -> list[Worker]:
        for w in [w for w in self._workers if not w.alive()]:
            self.discard(w)
        while len(self._workers) < self.size:
            if not self._hooked:
                self._hooked = True
                atexit.register(self.shutdown)
                os.register_at_fork(after_in_child=self._after_fork)
            try:
                self._workers.append(Worker())
            except OSError:  # no executable, no processes left, a sandbox...
                break
        return list(self._workers)

    def discard(self, worker: Worker) -> None:
        """Drop a worker that died or holds a job nobody will collect."""
        if worker in self._workers:
            self._workers.remove(worker)
        worker.close(timeout=None)

    def start(self) -> int:
        """Start the workers now and wait until they are ready (before a benchmark or a
        batch of files); returns how many run, or ``-1`` while a validation uses them."""
        with self.lease() as workers:
            if workers is None:
                return -1
            for w in workers:
                try:
                    w.send(())
                    w.recv()
                except (EOFError, OSError):
                    self.discard(w)
            return len(self._workers)

    def shutdown(self) -> None:
        """Stop every worker (at interpreter exit; tests). A later lease starts new ones."""
        held = self._lock.acquire(timeout=5)  # at exit a daemon thread may still hold it
        try:
            workers, self._workers = self._workers, []
            for w in workers:
                w.close()
        finally:
            if held:
                self._lock.release()

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        for w in self._workers:
            w.forget()
        self._workers = []


POOL = WorkerPool()


def start_workers() -> int:
    """Start the validation workers of this process ahead of a parallel validation."""
    return POOL.start()


def shutdown_workers() -> None:
    """Stop the validation workers of this process (they are stopped at exit anyway)."""
    POOL.shutdown()
