"""Warm, isolated, batched worker processes that run Lambda-style handlers.

Design, in one paragraph: each pool owns ``workers`` driver threads, each bound to one worker
process, plus one spawner thread that keeps a pre-spawned *spare* worker ready and reaps dead
ones. ``invoke_batch`` cuts the events into chunks and puts them on a shared queue; a driver
encodes a chunk's events once (one msgspec call) into its worker's shared-memory inbox, tells
the worker where they lie in a length-prefixed frame on the command pipe, keeps up to three
chunks in flight, and reads the results back from the result pipe (decoded straight into
``InvocationResult`` Structs; nothing is ever unpickled). Per-call deadlines are
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
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from . import errors as E
from .channel import READ_SIZE, StartupFailed, WorkerLost, WorkerProcess
from .deadlines import DeadlineWatch
from .dispatch import (
    Chunk,
    Flight,
    Latch,
    Sink,
    WorkQueue,
    encode_events,
    split_after_loss,
    wait_for_results,
)
from .errors import InvocationCancelledError, IsolationUnavailableError, PoolClosedError
from .guest import frames as F
from .launcher import Isolation, WorkerLauncher, warn_fallback_once
from .sandbox import isolation_status
from .spec import FunctionSpec, InvocationResult

__all__ = [
    "FunctionSpec",
    "InvocationCancelledError",
    "InvocationResult",
    "IsolationUnavailableError",
    "PoolClosedError",
    "WorkerPool",
    "isolation_status",
]

log = logging.getLogger(__name__)

_PIPELINE_DEPTH = 3  # chunks in flight per worker (queued calls never started are re-queued)
_MAX_REQUEUES = 3  # an innocent call re-run more often than this fails instead
_PROGRESS_INTERVAL_S = 0.05
_live_pools: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


class WorkerPool:
    """Warm worker processes for one function; see the module docstring for the design."""

    def __init__(
        self,
        spec: FunctionSpec,
        *,
        workers: int | None = None,
        isolation: Isolation = "auto",
        log_cap_bytes: int = 64 * 1024,
        batch_size: int = 512,
        spares: int = 1,
        init_timeout_s: float = 10.0,
    ) -> None:
        if isolation not in ("auto", "full", "limits"):
            raise ValueError(f"isolation must be 'auto', 'full' or 'limits', got {isolation!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.spec = spec
        self._workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
        self._log_cap = min(max(1024, int(log_cap_bytes)), 1024 * 1024)
        self._batch_size = batch_size
        self._spare_target = max(0, spares)
        self._init_timeout = init_timeout_s
        self._timeout_ns = int(spec.timeout_s * 1e9)

        self._queue = WorkQueue()
        self._start_lock = threading.Lock()
        self._cond = threading.Condition()
        self._spares: deque[WorkerProcess] = deque()
        self._graveyard: list[WorkerProcess] = []
        self._waiting_drivers = 0
        self._live: list[WorkerProcess | None] = [None] * self._workers
        self._threads: list[threading.Thread] = []
        self._started = False
        self._closed = False
        self._init_error: F.ErrorInfo | None = None
        self._startup_failures = 0
        self._stats = {"restarts": 0, "timeouts": 0, "crashes": 0, "protocol_errors": 0}
        self._inflight_callers = 0
        self.last_used = time.monotonic()

        self._launcher = WorkerLauncher(
            spec, isolation=isolation, log_cap=self._log_cap, init_timeout=init_timeout_s
        )

    # -- public API ------------------------------------------------------------------------

    def __enter__(self) -> WorkerPool:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def isolation(self) -> str:
        """The isolation mode actually in force (``"full"`` or ``"limits"``)."""
        return self._launcher.mode

    def start(self) -> None:
        """Spawn the workers and wait until each has imported the handler (or failed to)."""
        with self._start_lock:  # concurrent first callers all wait for a complete start
            if self._closed:
                raise PoolClosedError("the worker pool is closed")
            if self._started:
                return
            self._launcher.prepare()
            if self._launcher.fallback is not None:
                warn_fallback_once(self._launcher.fallback)
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
        ready = Latch(self._workers)
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

    def invoke_batch(
        self,
        events: Sequence[Any],
        *,
        cancel: threading.Event | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> list[InvocationResult]:
        """Run events on the pool; results come back in the order of ``events``.

        Thread-safe: concurrent callers share the workers. Raises ``TypeError`` naming the
        index of an event that cannot be serialised (other chunks of the batch may already
        have run). ``progress(n)`` is called from this thread with the number of calls finished
        since its last call; once ``cancel`` is set, calls not yet sent to a worker are dropped
        and ``InvocationCancelledError`` (holding the results finished so far) is raised.
        """
        if not self._started:
            self.start()
        if self._closed:
            raise PoolClosedError("the worker pool is closed")
        n = len(events)
        if n == 0:
            return []
        sink = Sink(n)
        size = max(1, min(self._batch_size, -(-n // (2 * self._workers))))
        with self._cond:
            self._inflight_callers += 1
        try:
            # Events are encoded by the driver that sends them, not here: a caller encoding a
            # big batch up front would hold the GIL and starve the drivers reading results.
            self._queue.put_many(
                [
                    Chunk(sink, start, list(events[start : start + size]), None)
                    for start in range(0, n, size)
                ]
            )
            if cancel is None and progress is None:
                sink.done.wait()
            else:
                wait_for_results(sink, cancel, progress, _PROGRESS_INTERVAL_S)
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
                "isolation": self._launcher.mode,
                "isolation_reason": self._launcher.reason,
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
        self._launcher.close()
        _live_pools.discard(self)

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
                    worker = self._launcher.spawn()
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

    def _acquire(self) -> WorkerProcess | None:
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
            except StartupFailed as failure:
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

    def _driver_loop(self, idx: int, ready: Latch) -> None:
        first = True
        worker: WorkerProcess | None = None
        flight = Flight(1)
        watch = DeadlineWatch(time.monotonic_ns())
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
                    flight = Flight(worker.next_id)
                if not flight.count:
                    chunk = self._queue.take(block=False)
                    if chunk is None:
                        # Idle: freeze the worker (threads the function left running included)
                        # until there is work again, as Lambda freezes an idle environment.
                        worker.freeze()
                        chunk = self._queue.take(block=True)
                    if chunk is None:
                        return
                    if not self._send(worker, encoder, chunk, flight):
                        continue
                    watch = DeadlineWatch(time.monotonic_ns())
                elif flight.count < _PIPELINE_DEPTH * self._batch_size and not worker.outbuf:
                    # Keep more chunks queued in the pipe so the worker never waits for us,
                    # even when this process is descheduled for a while on a busy machine.
                    chunk = self._queue.take(block=False)
                    if chunk is not None:
                        self._send(worker, encoder, chunk, flight)
                try:
                    self._pump(worker, decoder, flight, watch)
                except WorkerLost as loss:
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
            chunk.fail(0, len(chunk.events), info, "")

    def _send(
        self, worker: WorkerProcess, encoder: F.FrameEncoder, chunk: Chunk, flight: Flight
    ) -> bool:
        """Queue ``chunk`` for the worker; False if it was not sent: dropped, or put back on
        the queue (for any worker) because this worker's inbox is full of unanswered batches."""
        if chunk.sink.error is not None:
            return False  # the caller already gave up (bad event elsewhere in its batch)
        raw = chunk.raw
        if raw is None:
            try:
                raw = chunk.raw = encode_events(chunk.events, chunk.offset)
            except TypeError as exc:
                chunk.sink.abort(exc)
                return False
        first = worker.next_id
        if not worker.send_batch(encoder, raw, len(chunk.events)):
            if not self._queue.put_front(chunk):
                chunk.sink.abort(PoolClosedError("the worker pool was closed"))
            return False
        flight.chunks.append((first, chunk))
        flight.count += len(chunk.events)
        return True

    def _pump(
        self,
        worker: WorkerProcess,
        decoder: msgspec.msgpack.Decoder[Any],
        flight: Flight,
        watch: DeadlineWatch,
    ) -> None:
        """Wait for results or the next deadline once; raise ``_Loss`` if the worker is lost."""
        now = time.monotonic_ns()
        running, kill_at, wake_at = watch.deadline(worker, flight, now, self._timeout_ns)
        if now >= kill_at:
            raise WorkerLost("timeout", running)
        timeout_ms = max(1, -(-(wake_at - now) // 1_000_000))
        for fd, _ev in worker.poller.poll(timeout_ms):
            if fd == worker.cmd_fd:
                worker.flush_out()
                continue
            try:
                data = os.read(worker.res_fd, READ_SIZE)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                raise WorkerLost("exit", watch.running_call(worker, flight))
            try:
                for frame in worker.reader.feed(data):
                    msg = decoder.decode(frame)
                    if type(msg) is F.Hello:
                        raise F.FrameError("unexpected Hello after start-up")
                    flight.deliver(msg.first_id, msg.items)
            except (F.FrameError, msgspec.DecodeError) as exc:
                culprit = watch.running_call(worker, flight)
                raise WorkerLost("protocol", culprit, str(exc)) from None
            watch.progress(time.monotonic_ns(), flight.expected)
            worker.inbox.release(flight.expected)
        if worker.want_write:
            worker.flush_out()

    def _handle_loss(self, worker: WorkerProcess, flight: Flight, loss: WorkerLost) -> None:
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
        retry = split_after_loss(chunks, head_done, culprit, info, logs, _MAX_REQUEUES)
        for part in reversed(retry):
            if not self._queue.put_front(part):
                part.sink.abort(PoolClosedError("the worker pool was closed"))


@atexit.register
def _close_live_pools() -> None:
    for pool in list(_live_pools):
        with contextlib.suppress(Exception):
            pool.close()

