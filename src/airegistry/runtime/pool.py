"""Warm, isolated, batched worker processes that run Lambda-style handlers.

Design, in one paragraph: each pool owns ``workers`` driver threads, each bound to one worker
process, plus one spawner thread that keeps a pre-spawned *spare* worker ready and reaps dead
ones. ``invoke_batch`` encodes events once, cuts them into chunks and puts them on a shared queue;
a driver sends up to two chunks to its worker as length-prefixed msgspec frames and reads the
results back (decoded into typed Structs; nothing is ever unpickled). Per-call deadlines are
enforced by the driver from a shared 16-byte slot the worker updates at the start of each call,
so no message is needed per call. A call that overruns is answered with ``Sandbox.Timedout``,
its worker is SIGKILLed and immediately replaced by the spare, and the calls queued behind it
go back to the front of the queue for any healthy worker. A crash is handled the same way with
``Runtime.ExitError``.

All worker processes are spawned from the spawner thread: ``PR_SET_PDEATHSIG`` (which the worker
and bwrap use to die with us) fires when the *thread* that forked them exits, so they must not
be forked from short-lived caller threads.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import mmap
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec

from . import errors as E
from . import frames as F
from . import sandbox as S
from .errors import IsolationUnavailableError, PoolClosedError

__all__ = [
    "FunctionSpec",
    "InvocationResult",
    "IsolationUnavailableError",
    "PoolClosedError",
    "PoolManager",
    "WorkerPool",
    "isolation_status",
]

log = logging.getLogger(__name__)

Isolation = Literal["auto", "full", "limits"]

_PIPE_SIZE = 1 << 20
_READ_SIZE = 1 << 20
_FLUSH_INTERVAL_US = 2000
_PIPELINE_DEPTH = 3  # chunks in flight per worker (queued calls never started are re-queued)
_MAX_REQUEUES = 3  # an innocent call re-run more often than this fails instead
_FSIZE_LIMIT = 64 * 1024 * 1024
_NOFILE_LIMIT = 1024
_IDLE_GRACE_NS = 1_000_000_000  # extra slack when a worker sits "between calls" with work queued
_fallback_warned = False
_fallback_lock = threading.Lock()
_live_pools: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


# ============================================================================ public types


@dataclass(frozen=True)
class FunctionSpec:
    """What to run and within which limits (mirrors a Lambda function configuration)."""

    code_dir: Path
    handler: str = "lambda_function.lambda_handler"
    timeout_s: float = 30.0
    memory_mb: int = 1024
    function_name: str = "function"
    function_arn: str = ""
    version: str = "$LATEST"
    environment: Mapping[str, str] = field(default_factory=dict)
    # Extra paths (e.g. the registry home) made invisible to the function under full isolation.
    hidden_paths: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        if not (self.timeout_s > 0):
            raise ValueError(f"FunctionSpec.timeout_s must be > 0, got {self.timeout_s!r}")
        if self.memory_mb < 64:
            raise ValueError(f"FunctionSpec.memory_mb must be >= 64, got {self.memory_mb!r}")
        if "." not in self.handler:
            raise ValueError(
                f"FunctionSpec.handler must look like 'module.function', got {self.handler!r}"
            )


@dataclass(slots=True)
class InvocationResult:
    """One invocation's outcome, shaped like a Lambda Invoke response."""

    ok: bool
    payload: Any
    duration_ms: float
    logs: str = ""

    @property
    def function_error(self) -> str | None:
        """``"Unhandled"`` when the function failed (Lambda's ``FunctionError``), else None."""
        return None if self.ok else "Unhandled"


def isolation_status(refresh: bool = False) -> dict[str, Any]:
    """What isolation workers get on this host: ``{"bwrap", "mode", "reason", "uid"}``."""
    probe = S.probe_isolation(refresh)
    full = probe.bwrap is not None
    uid = probe.drop_to if full else probe.limits_drop_to
    return {
        "bwrap": full,
        "mode": "full" if full else "limits",
        "reason": probe.reason,
        "uid": os.geteuid() if uid is None else uid,
    }


# ============================================================================ internals


class _Sink:
    """Collects the results of one ``invoke_batch`` call, filled by any driver thread."""

    __slots__ = ("done", "error", "lock", "remaining", "results")

    def __init__(self, n: int) -> None:
        self.results: list[Any] = [None] * n
        self.remaining = n
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.error: BaseException | None = None

    def complete(self, n: int) -> None:
        with self.lock:
            self.remaining -= n
            if self.remaining <= 0:
                self.done.set()

    def abort(self, exc: BaseException) -> None:
        with self.lock:
            if self.error is None:
                self.error = exc
            self.done.set()


class _Chunk:
    """A contiguous run of one caller's events, sent to a worker as one frame.

    ``raw`` is the events encoded once (None for re-runs, which re-encode their slice).
    ``requeues`` counts how often these calls were re-run after losing a worker.
    """

    __slots__ = ("events", "offset", "raw", "requeues", "sink")

    def __init__(
        self, sink: _Sink, offset: int, events: list[Any], raw: bytes | None, requeues: int = 0
    ) -> None:
        self.sink = sink
        self.offset = offset
        self.events = events
        self.raw = raw
        self.requeues = requeues


class _Flight:
    """Chunks a worker is running, in order. Results must arrive in id order, which makes
    bookkeeping a counter and a forged or replayed id a detectable protocol violation."""

    __slots__ = ("chunks", "count", "delivered", "expected")

    def __init__(self, first_id: int) -> None:
        self.chunks: deque[tuple[int, _Chunk]] = deque()  # (first call id, chunk)
        self.expected = first_id  # id of the next result we accept
        self.delivered = 0  # results already delivered from the head chunk
        self.count = 0  # calls sent but not yet answered

    def running(self, cid: int, next_id: int) -> bool:
        return self.expected <= cid < next_id


class _WorkQueue:
    """FIFO of chunks shared by a pool's drivers; re-runs go to the front."""

    def __init__(self) -> None:
        self._dq: deque[_Chunk] = deque()
        self._cond = threading.Condition()
        self._closed = False

    def put_many(self, chunks: list[_Chunk]) -> None:
        with self._cond:
            if self._closed:
                raise PoolClosedError("the worker pool is closed")
            self._dq.extend(chunks)
            self._cond.notify(len(chunks))

    def put_front(self, chunk: _Chunk) -> bool:
        with self._cond:
            if self._closed:
                return False
            self._dq.appendleft(chunk)
            self._cond.notify()
            return True

    def take(self, block: bool) -> _Chunk | None:
        with self._cond:
            while not self._dq:
                if self._closed or not block:
                    return None
                self._cond.wait()
            return self._dq.popleft()

    def close(self) -> list[_Chunk]:
        with self._cond:
            self._closed = True
            drained = list(self._dq)
            self._dq.clear()
            self._cond.notify_all()
            return drained


class _StartupFailed(Exception):
    def __init__(self, info: F.ErrorInfo) -> None:
        super().__init__(info.message)
        self.info = info


class _Worker:
    """Parent-side handle of one worker process and its channels."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        cmd_fd: int,
        res_fd: int,
        log_fd: int,
        slot_map: mmap.mmap,
        private_dir: Path | None,
        sandboxed: bool,
        init_timeout: float,
    ) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.cmd_fd = cmd_fd
        self.res_fd = res_fd
        self.log_fd = log_fd
        self.slot_map = slot_map
        self.slot = memoryview(slot_map).cast("q")
        self.private_dir = private_dir
        self.sandboxed = sandboxed
        self.init_timeout = init_timeout
        self.ready_deadline = time.monotonic() + init_timeout
        self.reader = F.FrameReader()
        self.ready = False
        self.next_id = 1
        self.killed = False
        self.outbuf = bytearray()
        self.poller = select.poll()
        self.poller.register(res_fd, select.POLLIN)
        self.want_write = False

    # -- lifecycle -------------------------------------------------------------------------

    def kill(self) -> None:
        """SIGKILL the worker's whole process group (the worker is its session leader).

        Never after the leader was reaped: its pid could have been reused by then.
        """
        if self.killed or self.popen.returncode is not None:
            self.killed = True
            return
        self.killed = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, signal.SIGKILL)

    def exit_description(self, wait_s: float = 2.0) -> tuple[str, str]:
        """(errorType, message) describing how the process ended; kills it if it lingers.

        Waits for the exit *without reaping* (``WNOWAIT``) so that anything the function
        spawned can still be killed by process group before the leader's pid is released.
        """
        deadline = time.monotonic() + wait_s
        exited = False
        while True:
            try:
                exited = (
                    os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None
                )
            except ChildProcessError:
                exited = True
            if exited or time.monotonic() >= deadline:
                break
            time.sleep(0.001)
        self.kill()
        rc = self.popen.wait()
        if not exited:
            return (
                E.PROTOCOL_ERROR,
                "Runtime closed its result channel without exiting; the worker was killed",
            )
        sig = -rc if rc < 0 else (rc - 128 if self.sandboxed and rc > 128 else 0)
        if sig:
            try:
                name = signal.Signals(sig).name
                text = (signal.strsignal(sig) or name).lower()
            except ValueError:
                name, text = f"signal {sig}", f"signal {sig}"
            return E.EXIT_ERROR, f"Runtime exited with error: signal: {text} ({name})"
        return E.EXIT_ERROR, f"Runtime exited with error: exit status {rc}"

    def log_tail(self, cap: int) -> str:
        """The raw stdout/stderr the worker left in its memfd (e.g. a segfault traceback)."""
        try:
            size = os.fstat(self.log_fd).st_size
            start = max(0, size - cap)
            data = os.pread(self.log_fd, size - start, start) if size else b""
        except OSError:
            return ""
        text = data.decode("utf-8", "replace")
        return f"[... {start} bytes truncated ...]\n{text}" if start else text

    def cleanup(self) -> None:
        self.kill()
        with contextlib.suppress(Exception):
            self.popen.wait(timeout=5)
        for fd in (self.cmd_fd, self.res_fd, self.log_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(Exception):
            self.slot.release()
            self.slot_map.close()
        if self.private_dir is not None:
            shutil.rmtree(self.private_dir, ignore_errors=True)

    # -- channels --------------------------------------------------------------------------

    def queue_frame(self, frame: bytearray) -> None:
        if not self.outbuf:
            # Common case: the pipe has room; write without copying into the buffer first.
            try:
                n = os.write(self.cmd_fd, frame)
            except BlockingIOError:
                n = 0
            except OSError:
                return  # the worker is gone; its EOF on res_fd reports it
            if n == len(frame):
                return
            del frame[:n]
        self.outbuf += frame
        self.flush_out()

    def flush_out(self) -> None:
        """Write as much pending command data as the pipe takes without blocking."""
        while self.outbuf:
            try:
                n = os.write(self.cmd_fd, self.outbuf)
            except BlockingIOError:
                break
            except (BrokenPipeError, OSError):
                self.outbuf.clear()  # the worker is gone; its EOF on res_fd reports it
                break
            del self.outbuf[:n]
        want = bool(self.outbuf)
        if want != self.want_write:
            self.want_write = want
            if want:
                self.poller.register(self.cmd_fd, select.POLLOUT)
            else:
                self.poller.unregister(self.cmd_fd)

    def wait_ready(self, decoder: msgspec.msgpack.Decoder[Any]) -> None:
        """Block until the worker's ``Hello``; raise ``_StartupFailed`` if it never comes."""
        while not self.ready:
            remaining = self.ready_deadline - time.monotonic()
            events = self.poller.poll(max(0, int(remaining * 1000)) if remaining > 0 else 0)
            if self.want_write:
                self.flush_out()  # the Init frame, if the pipe did not take it at once
            r = [fd for fd, _ in events if fd == self.res_fd]
            if not r and remaining <= 0:
                raise _StartupFailed(
                    F.ErrorInfo(
                        E.TIMEOUT,
                        "Init phase timed out: the handler was not imported within "
                        f"{self.init_timeout:.2f} seconds",
                        [self.log_tail(8192)],
                    )
                )
            if not r:
                continue
            data = os.read(self.res_fd, _READ_SIZE)
            if not data:
                _etype, msg = self.exit_description()
                raise _StartupFailed(
                    F.ErrorInfo(
                        E.SANDBOX_ERROR,
                        f"worker failed to start: {msg}",
                        [self.log_tail(8192)],
                    )
                )
            for frame in self.reader.feed(data):
                hello = decoder.decode(frame)
                if not isinstance(hello, F.Hello):
                    raise _StartupFailed(
                        F.ErrorInfo(E.PROTOCOL_ERROR, "worker sent results before Hello")
                    )
                if hello.error is not None:
                    raise _StartupFailed(hello.error)
                self.ready = True


class _Loss(Exception):
    """A worker was lost while running calls (timeout, crash, protocol violation)."""

    def __init__(self, kind: str, culprit: int | None, detail: str = "") -> None:
        super().__init__(kind)
        self.kind = kind
        self.culprit = culprit
        self.detail = detail


# ============================================================================ the pool


class WorkerPool:
    """Warm worker processes for one function; see the module docstring for the design."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        workers: int | None = None,
        isolation: Isolation = "auto",
        log_cap_bytes: int = 64 * 1024,
        batch_size: int = 128,
        spares: int = 1,
        init_timeout_s: float = 10.0,
    ) -> None:
        if isolation not in ("auto", "full", "limits"):
            raise ValueError(f"isolation must be 'auto', 'full' or 'limits', got {isolation!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.spec = spec
        self._workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
        self._requested_isolation = isolation
        self._log_cap = min(max(1024, int(log_cap_bytes)), 1024 * 1024)
        self._batch_size = batch_size
        self._spare_target = max(0, spares)
        self._init_timeout = init_timeout_s
        self._timeout_ns = int(spec.timeout_s * 1e9)

        self._queue = _WorkQueue()
        self._start_lock = threading.Lock()
        self._cond = threading.Condition()
        self._spares: deque[_Worker] = deque()
        self._graveyard: list[_Worker] = []
        self._waiting_drivers = 0
        self._live: list[_Worker | None] = [None] * self._workers
        self._threads: list[threading.Thread] = []
        self._started = False
        self._closed = False
        self._init_error: F.ErrorInfo | None = None
        self._startup_failures = 0
        self._stats = {"restarts": 0, "timeouts": 0, "crashes": 0, "protocol_errors": 0}
        self._inflight_callers = 0
        self.last_used = time.monotonic()

        self._mode: Literal["full", "limits"] = "limits"
        self._isolation_reason = ""
        self._probe: S.IsolationProbe | None = None
        self._base_dir: Path | None = None
        self._code_dir: Path = spec.code_dir
        self._hide: list[Path] = []
        self._worker_seq = 0

    # -- public API ------------------------------------------------------------------------

    def __enter__(self) -> WorkerPool:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def isolation(self) -> str:
        """The isolation mode actually in force (``"full"`` or ``"limits"``)."""
        return self._mode

    def start(self) -> None:
        """Spawn the workers and wait until each has imported the handler (or failed to)."""
        with self._start_lock:  # concurrent first callers all wait for a complete start
            if self._closed:
                raise PoolClosedError("the worker pool is closed")
            if self._started:
                return
            self._prepare()
            self._start_threads()
            with self._cond:
                self._started = True

    def _start_threads(self) -> None:
        _live_pools.add(self)
        spawner = threading.Thread(
            target=self._spawner_loop,
            name=f"airegistry-spawner-{self.spec.function_name}",
            daemon=True,
        )
        self._threads.append(spawner)
        spawner.start()
        ready = _Latch(self._workers)
        for idx in range(self._workers):
            t = threading.Thread(
                target=self._driver_loop,
                args=(idx, ready),
                name=f"airegistry-driver-{self.spec.function_name}-{idx}",
                daemon=True,
            )
            self._threads.append(t)
            t.start()
        ready.wait(timeout=self._init_timeout + 30)

    def invoke(self, event: Any) -> InvocationResult:
        """Run one event; equivalent to ``invoke_batch([event])[0]``."""
        return self.invoke_batch([event])[0]

    def invoke_batch(self, events: Sequence[Any]) -> list[InvocationResult]:
        """Run events on the pool; results come back in the order of ``events``.

        Thread-safe: concurrent callers share the workers. Raises ``TypeError`` naming the
        index of an event that cannot be serialised (other chunks of the batch may already
        have run).
        """
        if not self._started:
            self.start()
        if self._closed:
            raise PoolClosedError("the worker pool is closed")
        n = len(events)
        if n == 0:
            return []
        sink = _Sink(n)
        size = max(1, min(self._batch_size, -(-n // (2 * self._workers))))
        with self._cond:
            self._inflight_callers += 1
        try:
            # Events are encoded by the driver that sends them, not here: a caller encoding a
            # big batch up front would hold the GIL and starve the drivers reading results.
            self._queue.put_many(
                [
                    _Chunk(sink, start, list(events[start : start + size]), None)
                    for start in range(0, n, size)
                ]
            )
            sink.done.wait()
        finally:
            with self._cond:
                self._inflight_callers -= 1
            self.last_used = time.monotonic()
        if sink.error is not None:
            raise sink.error
        return sink.results

    @property
    def busy(self) -> bool:
        """True while some caller is waiting for results (the PoolManager never evicts then)."""
        return self._inflight_callers > 0

    def stats(self) -> dict[str, Any]:
        with self._cond:
            alive = sum(1 for w in self._live if w is not None and not w.killed)
            return {
                "function_name": self.spec.function_name,
                "workers": self._workers,
                "alive": alive,
                "spares_ready": sum(1 for w in self._spares if not w.killed),
                **self._stats,
                "isolation": self._mode,
                "isolation_reason": self._isolation_reason,
                "init_error": None if self._init_error is None else self._init_error.as_payload(),
                "started": self._started,
                "closed": self._closed,
            }

    def close(self) -> None:
        """Kill all workers, fail queued calls with ``PoolClosedError``, remove temp dirs."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            workers = [w for w in self._live if w is not None] + list(self._spares)
            self._spares.clear()
            self._cond.notify_all()
        for chunk in self._queue.close():
            chunk.sink.abort(PoolClosedError("the worker pool was closed"))
        for w in workers:
            w.kill()
        for t in self._threads:
            if t is not threading.current_thread():
                t.join(timeout=10)
        with self._cond:
            leftovers = self._graveyard + [w for w in self._live if w is not None]
            self._graveyard = []
            self._live = [None] * self._workers
        for w in {id(w): w for w in [*workers, *leftovers]}.values():
            w.cleanup()
        if self._base_dir is not None:
            shutil.rmtree(self._base_dir, ignore_errors=True)
        _live_pools.discard(self)

    # -- setup -----------------------------------------------------------------------------

    def _prepare(self) -> None:
        code_dir = Path(self.spec.code_dir).resolve()
        if not code_dir.is_dir():
            raise FileNotFoundError(f"function code directory not found: {code_dir}")
        probe = S.probe_isolation()
        self._probe = probe
        if self._requested_isolation == "full" and probe.bwrap is None:
            raise IsolationUnavailableError(
                f"isolation='full' was required but is unavailable: {probe.reason}"
            )
        if self._requested_isolation != "limits" and probe.bwrap is not None:
            self._mode = "full"
            self._isolation_reason = probe.reason
        else:
            self._mode = "limits"
            if self._requested_isolation == "limits":
                self._isolation_reason = "resource limits only (requested)"
            else:
                self._isolation_reason = f"resource limits only: {probe.reason}"
                _warn_fallback(probe.reason)
        # uid the worker ends up as; in full mode setpriv inside bwrap does the switch, in limits
        # mode Popen does it.
        drop = probe.drop_to if self._mode == "full" else probe.limits_drop_to
        self._drop_to = drop
        self._popen_drop = drop if self._mode == "limits" else None
        self._base_dir = Path(tempfile.mkdtemp(prefix="airegistry-pool-"))
        os.chmod(self._base_dir, 0o711)  # traversable (not listable) by the worker uid
        if drop is not None and not S.tree_readable_by_others(
            code_dir, check_ancestors=self._mode == "limits"
        ):
            code_dir = S.stage_copy(code_dir, self._base_dir / "code")
        self._code_dir = code_dir
        self._hide = S.hidden_paths(self.spec.hidden_paths)

    def _spawn(self) -> _Worker:
        """Start one worker process (called only from the spawner thread, see module doc)."""
        spec = self.spec
        self._worker_seq += 1
        private_dir: Path | None = None
        if self._mode == "full":
            home = "/tmp"
        else:
            assert self._base_dir is not None
            private_dir = self._base_dir / f"w{self._worker_seq}"
            private_dir.mkdir(mode=0o700)
            if self._drop_to is not None:
                os.chown(private_dir, self._drop_to, self._drop_to)
            home = str(private_dir)
        cmd_r, cmd_w = os.pipe2(os.O_CLOEXEC)
        res_r, res_w = os.pipe2(os.O_CLOEXEC)
        for fd in (cmd_w, res_w):
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        slot_fd = os.memfd_create("airegistry-slot", os.MFD_CLOEXEC)
        os.ftruncate(slot_fd, 16)
        slot_map = mmap.mmap(slot_fd, 16)
        log_fd = os.memfd_create("airegistry-log", os.MFD_CLOEXEC)
        worker_argv = [
            sys.executable,
            "-I",
            "-B",
            str(S.WORKER_PATH),
            "--fds",
            f"{cmd_r},{res_w},{slot_fd}",
        ]
        env = S.clean_environment(
            spec.environment,
            home=home,
            code_dir=str(self._code_dir),
            handler=spec.handler,
            function_name=spec.function_name,
            version=spec.version,
            memory_mb=spec.memory_mb,
        )
        if self._mode == "full":
            assert self._probe is not None
            argv = S.full_argv(
                self._probe,
                worker_argv=worker_argv,
                code_dir=self._code_dir,
                hide=self._hide,
                tmpfs_bytes=min(spec.memory_mb, 512) * 1024 * 1024,
            )
        else:
            argv = worker_argv
        kwargs: dict[str, Any] = {}
        if self._popen_drop is not None:
            kwargs.update(user=self._popen_drop, group=self._popen_drop, extra_groups=[])
        try:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                pass_fds=(cmd_r, res_w, slot_fd),
                env=env,
                cwd=home if self._mode == "limits" else "/",
                start_new_session=True,
                close_fds=True,
                **kwargs,
            )
        except BaseException:
            for fd in (cmd_r, cmd_w, res_r, res_w, slot_fd, log_fd):
                with contextlib.suppress(OSError):
                    os.close(fd)
            slot_map.close()
            if private_dir is not None:
                shutil.rmtree(private_dir, ignore_errors=True)
            raise
        for fd in (cmd_r, res_w, slot_fd):
            os.close(fd)
        os.set_blocking(cmd_w, False)
        worker = _Worker(
            popen,
            cmd_w,
            res_r,
            log_fd,
            slot_map,
            private_dir,
            self._mode == "full",
            self._init_timeout,
        )
        init = F.Init(
            code_dir=str(self._code_dir),
            handler=spec.handler,
            timeout_ms=int(spec.timeout_s * 1000),
            memory_mb=spec.memory_mb,
            function_name=spec.function_name,
            function_arn=spec.function_arn,
            version=spec.version,
            log_cap=self._log_cap,
            fsize_limit=_FSIZE_LIMIT,
            nofile_limit=_NOFILE_LIMIT,
            flush_interval_us=_FLUSH_INTERVAL_US,
            parent_pid=0 if self._mode == "full" else os.getpid(),
        )
        worker.queue_frame(F.FrameEncoder().encode(init))
        return worker

    # -- spawner thread --------------------------------------------------------------------

    def _spawner_loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    dead = self._graveyard
                    self._graveyard = []
                    deficit = 0
                    if self._init_error is None:
                        deficit = (self._spare_target + self._waiting_drivers) - len(self._spares)
                    if dead or deficit > 0:
                        break
                    self._cond.wait(timeout=5.0)
            for _ in range(max(0, deficit)):
                try:
                    worker = self._spawn()
                except Exception as exc:
                    log.exception("could not spawn a worker for %s", self.spec.function_name)
                    self._record_startup_failure(
                        F.ErrorInfo(E.SANDBOX_ERROR, f"could not start a worker: {exc}")
                    )
                    break
                with self._cond:
                    if self._closed:
                        worker.cleanup()
                        return
                    self._spares.append(worker)
                    self._cond.notify_all()
            for w in dead:
                w.cleanup()

    def _record_startup_failure(self, info: F.ErrorInfo) -> None:
        """Handler-import errors are final at once; sandbox failures after two in a row."""
        with self._cond:
            self._startup_failures += 1
            final = info.error_type != E.SANDBOX_ERROR or self._startup_failures >= 2
            if final and self._init_error is None:
                self._init_error = info
            self._cond.notify_all()

    def _acquire(self) -> _Worker | None:
        """A ready worker for a driver; None if the pool is closed or cannot run anything."""
        decoder = F.decoder_from_worker()
        while True:
            with self._cond:
                self._waiting_drivers += 1
                self._cond.notify_all()
                try:
                    while not self._spares and not self._closed and self._init_error is None:
                        self._cond.wait()
                finally:
                    self._waiting_drivers -= 1
                if self._closed or self._init_error is not None:
                    return None
                worker = self._spares.popleft()
                self._cond.notify_all()
            try:
                worker.wait_ready(decoder)
            except _StartupFailed as failure:
                self._record_startup_failure(failure.info)
                with self._cond:
                    self._graveyard.append(worker)
                    self._cond.notify_all()
                continue
            except (OSError, F.FrameError, msgspec.DecodeError) as exc:
                self._record_startup_failure(
                    F.ErrorInfo(E.PROTOCOL_ERROR, f"worker sent a malformed Hello: {exc}")
                )
                with self._cond:
                    self._graveyard.append(worker)
                continue
            with self._cond:
                self._startup_failures = 0
            return worker

    # -- driver threads --------------------------------------------------------------------

    def _driver_loop(self, idx: int, ready: _Latch) -> None:
        first = True
        worker: _Worker | None = None
        flight = _Flight(1)
        watch = _Watch(time.monotonic_ns())
        decoder = F.decoder_from_worker(InvocationResult)
        encoder = F.FrameEncoder()
        try:
            while True:
                if worker is None:
                    worker = self._acquire()
                    with self._cond:
                        self._live[idx] = worker
                    if first:
                        first = False
                        ready.count_down()
                    if worker is None:
                        if not self._closed:
                            self._serve_init_error()
                        return
                    flight = _Flight(worker.next_id)
                if not flight.count:
                    chunk = self._queue.take(block=True)
                    if chunk is None:
                        return
                    if not self._send(worker, encoder, chunk, flight):
                        continue
                    watch = _Watch(time.monotonic_ns())
                elif flight.count < _PIPELINE_DEPTH * self._batch_size and not worker.outbuf:
                    # Keep more chunks queued in the pipe so the worker never waits for us,
                    # even when this process is descheduled for a while on a busy machine.
                    chunk = self._queue.take(block=False)
                    if chunk is not None:
                        self._send(worker, encoder, chunk, flight)
                try:
                    self._pump(worker, decoder, flight, watch)
                except _Loss as loss:
                    self._handle_loss(worker, flight, loss)
                    with self._cond:
                        self._live[idx] = None
                        self._graveyard.append(worker)
                        self._cond.notify_all()
                    worker = None
        finally:
            for _, chunk in flight.chunks:
                chunk.sink.abort(PoolClosedError("the worker pool was closed"))
            if first:
                ready.count_down()

    def _serve_init_error(self) -> None:
        """Answer every queued call with the (final) init error until the pool closes."""
        info = self._init_error
        assert info is not None
        while True:
            chunk = self._queue.take(block=True)
            if chunk is None:
                return
            self._fail_range(chunk, 0, len(chunk.events), info, "")

    def _send(
        self, worker: _Worker, encoder: F.FrameEncoder, chunk: _Chunk, flight: _Flight
    ) -> bool:
        """Queue ``chunk`` for the worker; False if it was dropped instead."""
        if chunk.sink.error is not None:
            return False  # the caller already gave up (bad event elsewhere in its batch)
        raw = chunk.raw
        if raw is None:
            try:
                raw = chunk.raw = _encode_events(chunk.events, chunk.offset)
            except TypeError as exc:
                chunk.sink.abort(exc)
                return False
        first = worker.next_id
        worker.next_id = first + len(chunk.events)
        flight.chunks.append((first, chunk))
        flight.count += len(chunk.events)
        worker.queue_frame(encoder.encode(F.Batch(first, msgspec.Raw(raw))))
        return True

    def _pump(
        self,
        worker: _Worker,
        decoder: msgspec.msgpack.Decoder[Any],
        flight: _Flight,
        watch: _Watch,
    ) -> None:
        """Wait for results or the next deadline once; raise ``_Loss`` if the worker is lost."""
        now = time.monotonic_ns()
        running, kill_at, wake_at = watch.deadline(worker, flight, now, self._timeout_ns)
        if now >= kill_at:
            raise _Loss("timeout", running)
        timeout_ms = max(1, -(-(wake_at - now) // 1_000_000))
        for fd, _ev in worker.poller.poll(timeout_ms):
            if fd == worker.cmd_fd:
                worker.flush_out()
                continue
            try:
                data = os.read(worker.res_fd, _READ_SIZE)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                raise _Loss("exit", watch.running_call(worker, flight))
            try:
                for frame in worker.reader.feed(data):
                    msg = decoder.decode(frame)
                    if type(msg) is F.Hello:
                        raise F.FrameError("unexpected Hello after start-up")
                    self._deliver_results(msg.first_id, msg.items, flight)
            except (F.FrameError, msgspec.DecodeError) as exc:
                culprit = watch.running_call(worker, flight)
                raise _Loss("protocol", culprit, str(exc)) from None
            watch.progress(time.monotonic_ns(), flight.expected)
        if worker.want_write:
            worker.flush_out()

    def _deliver_results(
        self, first_id: int, items: list[InvocationResult], flight: _Flight
    ) -> None:
        """Hand decoded results to their callers (slice assignment: no per-call Python work)."""
        if first_id != flight.expected:
            raise F.FrameError(f"results start at call {first_id} where {flight.expected} was due")
        for item in [it for it in items if not it.ok]:
            payload = item.payload
            if not (
                isinstance(payload, dict)
                and isinstance(payload.get("errorType"), str)
                and isinstance(payload.get("errorMessage"), str)
            ):
                item.payload = {
                    "errorMessage": "the worker reported a failure without a valid error",
                    "errorType": E.PROTOCOL_ERROR,
                    "stackTrace": [],
                }
        chunks = flight.chunks
        delivered = flight.delivered
        done = 0
        total = len(items)
        try:
            while done < total:
                if not chunks:
                    raise F.FrameError("results for calls this worker was not running")
                chunk = chunks[0][1]
                size = len(chunk.events)
                step = min(total - done, size - delivered)
                base = chunk.offset + delivered
                chunk.sink.results[base : base + step] = items[done : done + step]
                done += step
                delivered += step
                if delivered == size:
                    chunks.popleft()
                    flight.count -= size
                    chunk.sink.complete(size)
                    delivered = 0
        finally:
            flight.expected = first_id + done
            flight.delivered = delivered

    def _fail_range(
        self, chunk: _Chunk, start: int, stop: int, info: F.ErrorInfo, logs: str
    ) -> None:
        payload = info.as_payload()
        results = chunk.sink.results
        for k in range(start, stop):
            results[chunk.offset + k] = InvocationResult(False, dict(payload), 0.0, logs)
        chunk.sink.complete(stop - start)

    def _handle_loss(self, worker: _Worker, flight: _Flight, loss: _Loss) -> None:
        exit_info = worker.exit_description() if loss.kind == "exit" else None
        worker.kill()
        chunks = list(flight.chunks)
        head_done = flight.delivered
        flight.chunks.clear()
        flight.count = 0
        if chunks and head_done:
            # Results already delivered from the head chunk count towards its caller.
            chunks[0][1].sink.complete(head_done)
        if self._closed:
            for _, chunk in chunks:
                chunk.sink.abort(PoolClosedError("the worker pool was closed"))
            return
        # The culprit is the call the worker said it was running. A worker lost between calls
        # (killed from outside, or a thread of the function exiting the process later) has no
        # culprit: everything is re-run, bounded by _MAX_REQUEUES.
        culprit = loss.culprit if loss.culprit is not None else -1
        if loss.kind == "timeout":
            info = F.ErrorInfo(E.TIMEOUT, f"Task timed out after {self.spec.timeout_s:.2f} seconds")
            stat_key = "timeouts"
        elif exit_info is not None:
            info = F.ErrorInfo(*exit_info)
            stat_key = "crashes"
        else:
            info = F.ErrorInfo(
                E.PROTOCOL_ERROR,
                f"the function broke the runtime protocol ({loss.detail}); worker killed",
            )
            stat_key = "protocol_errors"
        with self._cond:
            self._stats[stat_key] += 1
            self._stats["restarts"] += 1
        logs = worker.log_tail(self._log_cap)
        retry: list[_Chunk] = []
        for index, (first_id, chunk) in enumerate(chunks):
            start = head_done if index == 0 else 0
            stop = len(chunk.events)
            k = culprit - first_id
            if start <= k < stop:
                self._fail_range(chunk, k, k + 1, info, logs)
                pieces = [(start, k), (k + 1, stop)]
            else:
                pieces = [(start, stop)]
            for lo, hi in pieces:
                if lo >= hi:
                    continue
                part = _Chunk(
                    chunk.sink, chunk.offset + lo, chunk.events[lo:hi], None, chunk.requeues + 1
                )
                if part.requeues > _MAX_REQUEUES:
                    self._fail_range(
                        part,
                        0,
                        hi - lo,
                        F.ErrorInfo(
                            info.error_type,
                            f"{info.message} (this call was re-run {_MAX_REQUEUES} times after "
                            "losing its worker and is not retried again)",
                        ),
                        "",
                    )
                else:
                    retry.append(part)
        for part in reversed(retry):
            if not self._queue.put_front(part):
                part.sink.abort(PoolClosedError("the worker pool was closed"))


class _Latch:
    """Counts down once per driver so ``start`` can wait for all workers to be ready."""

    def __init__(self, n: int) -> None:
        self._n = n
        self._cond = threading.Condition()

    def count_down(self) -> None:
        with self._cond:
            self._n -= 1
            self._cond.notify_all()

    def wait(self, timeout: float) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._n <= 0, timeout=timeout)


class _Watch:
    """Deadline bookkeeping for one worker's in-flight calls.

    The worker reports (call id, start time) in a shared slot. The slot is written by untrusted
    code, so its start time is clamped to [last progress, now] and the first time we saw each
    id is remembered: a worker cannot postpone its own deadline by rewriting the slot.
    """

    __slots__ = ("first_seen", "last_progress")

    def __init__(self, now: int) -> None:
        self.first_seen: dict[int, int] = {}
        self.last_progress = now

    def progress(self, now: int, expected: int) -> None:
        """Results arrived: forget the idle marker and every call answered by now."""
        self.last_progress = now
        seen = self.first_seen
        if seen:
            for cid in [c for c in seen if c < expected]:
                del seen[cid]

    @staticmethod
    def running_call(worker: _Worker, flight: _Flight) -> int | None:
        cid = worker.slot[0]
        return cid if flight.running(cid, worker.next_id) else None

    def deadline(
        self, worker: _Worker, flight: _Flight, now: int, timeout_ns: int
    ) -> tuple[int | None, int, int]:
        """(running call id or None, when to kill, when to look again)."""
        slot = worker.slot
        cid = slot[0]
        t0 = slot[1]
        if cid and flight.running(cid, worker.next_id):
            since = self.first_seen.get(cid)
            if since is None:
                since = min(max(t0, self.last_progress), now)
                self.first_seen[cid] = since
            return cid, since + timeout_ns, since + timeout_ns
        # Between calls (or not started yet): a call may begin any moment, and its deadline is
        # at least ``timeout`` away, so looking again after ``timeout`` is soon enough.
        since = self.first_seen.get(0)
        if since is None:
            since = max(now, self.last_progress)
            self.first_seen[0] = since
        kill_at = since + timeout_ns + _IDLE_GRACE_NS
        return None, kill_at, min(kill_at, now + timeout_ns)


def _encode_events(events: list[Any], offset: int) -> bytes:
    """Encode a chunk's events once; name the first offending event if one cannot be."""
    try:
        return msgspec.msgpack.encode(events)
    except (TypeError, ValueError, OverflowError):
        for i, event in enumerate(events):
            try:
                msgspec.msgpack.encode(event)
            except (TypeError, ValueError, OverflowError) as exc:
                raise TypeError(f"event #{offset + i} cannot be serialised: {exc}") from None
        raise


def _warn_fallback(reason: str) -> None:
    global _fallback_warned
    with _fallback_lock:
        if _fallback_warned:
            return
        _fallback_warned = True
    message = (
        "airegistry function runtime: full isolation (bubblewrap) is unavailable, workers run "
        f"with resource limits only: {reason}. Pass isolation='full' to refuse to run instead."
    )
    log.warning(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


# ============================================================================ manager


class PoolManager:
    """Warm pools keyed by e.g. ``f"{function_arn}:{code_sha256}"``, evicted when idle.

    A pool is created (and started) on the first ``get`` for its key; a pool nobody used for
    ``idle_timeout_s`` and that has no caller waiting is closed by a background reaper. All pools
    are closed at interpreter exit.
    """

    def __init__(
        self,
        *,
        idle_timeout_s: float = 600.0,
        pool_factory: Callable[..., WorkerPool] | None = None,
        **pool_kwargs: Any,
    ) -> None:
        self._idle = idle_timeout_s
        self._factory = pool_factory or WorkerPool
        self._pool_kwargs = pool_kwargs
        self._lock = threading.Lock()
        self._pools: dict[str, WorkerPool] = {}
        self._creating: dict[str, threading.Event] = {}
        self._closed = False
        self._stop = threading.Event()
        self._reaper: threading.Thread | None = None
        _managers.add(self)

    def get(self, key: str, spec_factory: Callable[[], FunctionSpec]) -> WorkerPool:
        """The warm pool for ``key``; built from ``spec_factory()`` on first use."""
        while True:
            with self._lock:
                if self._closed:
                    raise PoolClosedError("the pool manager is closed")
                pool = self._pools.get(key)
                if pool is not None and not pool.stats()["closed"]:
                    pool.last_used = time.monotonic()
                    return pool
                pending = self._creating.get(key)
                if pending is None:
                    pending = threading.Event()
                    self._creating[key] = pending
                    break
            pending.wait()
        try:
            pool = self._factory(spec_factory(), **self._pool_kwargs)
            pool.start()
        except BaseException:
            with self._lock:
                self._creating.pop(key, None)
            pending.set()
            raise
        with self._lock:
            self._pools[key] = pool
            self._creating.pop(key, None)
            self._ensure_reaper()
        pending.set()
        return pool

    def discard(self, key: str) -> None:
        """Close and forget the pool for ``key`` (e.g. after its code was updated or deleted)."""
        with self._lock:
            pool = self._pools.pop(key, None)
        if pool is not None:
            pool.close()

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._pools)

    def close_all(self) -> None:
        with self._lock:
            self._closed = True
            pools = list(self._pools.values())
            self._pools.clear()
        self._stop.set()
        for pool in pools:
            pool.close()

    def evict_idle(self, now: float | None = None) -> list[str]:
        """Close pools idle for longer than the idle timeout; returns their keys."""
        now = time.monotonic() if now is None else now
        victims: list[tuple[str, WorkerPool]] = []
        with self._lock:
            for key, pool in list(self._pools.items()):
                if not pool.busy and now - pool.last_used >= self._idle:
                    victims.append((key, pool))
                    del self._pools[key]
        for _, pool in victims:
            pool.close()
        return [k for k, _ in victims]

    def _ensure_reaper(self) -> None:
        if self._reaper is None or not self._reaper.is_alive():
            self._reaper = threading.Thread(
                target=self._reap_loop, name="airegistry-pool-reaper", daemon=True
            )
            self._reaper.start()

    def _reap_loop(self) -> None:
        interval = max(0.05, min(60.0, self._idle / 4))
        while not self._stop.wait(interval):
            self.evict_idle()
            with self._lock:
                if not self._pools:
                    self._reaper = None
                    return


_managers: weakref.WeakSet[PoolManager] = weakref.WeakSet()


@atexit.register
def _close_everything() -> None:
    for manager in list(_managers):
        with contextlib.suppress(Exception):
            manager.close_all()
    for pool in list(_live_pools):
        with contextlib.suppress(Exception):
            pool.close()
