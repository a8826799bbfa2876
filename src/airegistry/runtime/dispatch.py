"""How a pool's callers and driver threads hand work to each other.

A caller's events become ``Chunk``s (contiguous runs of one caller's events) on a shared
``WorkQueue``; a driver takes chunks, runs them on its worker and records what it sent in a
``Flight``; results flow back into the caller's ``Sink`` by slice assignment. Nothing here
touches processes or file descriptors, which keeps the bookkeeping testable on its own.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import msgspec

from . import errors as E
from .errors import InvocationCancelledError, PoolClosedError
from .guest import frames as F
from .spec import InvocationResult


class Sink:
    """Collects the results of one ``invoke_batch`` call, filled by any driver thread."""

    __slots__ = ("done", "error", "lock", "remaining", "results", "size")

    def __init__(self, n: int) -> None:
        self.results: list[Any] = [None] * n
        self.size = n
        self.remaining = n
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.error: BaseException | None = None

    @property
    def finished(self) -> int:
        """How many results have been delivered so far (for progress reports)."""
        return self.size - max(0, self.remaining)

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


class Chunk:
    """A contiguous run of one caller's events, sent to a worker as one frame.

    ``raw`` is the events encoded once (None for re-runs, which re-encode their slice).
    ``requeues`` counts how often these calls were re-run after losing a worker.
    """

    __slots__ = ("events", "offset", "raw", "requeues", "sink")

    def __init__(
        self, sink: Sink, offset: int, events: list[Any], raw: bytes | None, requeues: int = 0
    ) -> None:
        self.sink = sink
        self.offset = offset
        self.events = events
        self.raw = raw
        self.requeues = requeues

    def fail(self, start: int, stop: int, info: F.ErrorInfo, logs: str) -> None:
        """Answer calls ``start:stop`` of this chunk with the error ``info``."""
        payload = info.as_payload()
        results = self.sink.results
        for k in range(start, stop):
            results[self.offset + k] = InvocationResult(False, dict(payload), 0.0, logs)
        self.sink.complete(stop - start)


class Flight:
    """Chunks a worker is running, in order. Results must arrive in id order, which makes
    bookkeeping a counter and a forged or replayed id a detectable protocol violation."""

    __slots__ = ("chunks", "count", "delivered", "expected")

    def __init__(self, first_id: int) -> None:
        self.chunks: deque[tuple[int, Chunk]] = deque()  # (first call id, chunk)
        self.expected = first_id  # id of the next result we accept
        self.delivered = 0  # results already delivered from the head chunk
        self.count = 0  # calls sent but not yet answered

    def running(self, cid: int, next_id: int) -> bool:
        return self.expected <= cid < next_id

    def deliver(self, first_id: int, items: list[InvocationResult]) -> None:
        """Hand decoded results to their callers (slice assignment: no per-call Python work).

        Raises ``FrameError`` for results that do not continue the expected sequence.
        """
        if first_id != self.expected:
            raise F.FrameError(f"results start at call {first_id} where {self.expected} was due")
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
        chunks = self.chunks
        delivered = self.delivered
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
                    self.count -= size
                    chunk.sink.complete(size)
                    delivered = 0
        finally:
            self.expected = first_id + done
            self.delivered = delivered


class WorkQueue:
    """FIFO of chunks shared by a pool's drivers; re-runs go to the front."""

    def __init__(self) -> None:
        self._dq: deque[Chunk] = deque()
        self._cond = threading.Condition()
        self._closed = False

    def put_many(self, chunks: list[Chunk]) -> None:
        with self._cond:
            if self._closed:
                raise PoolClosedError("the worker pool is closed")
            self._dq.extend(chunks)
            self._cond.notify(len(chunks))

    def put_front(self, chunk: Chunk) -> bool:
        with self._cond:
            if self._closed:
                return False
            self._dq.appendleft(chunk)
            self._cond.notify()
            return True

    def take(self, block: bool) -> Chunk | None:
        with self._cond:
            while not self._dq:
                if self._closed or not block:
                    return None
                self._cond.wait()
            return self._dq.popleft()

    def close(self) -> list[Chunk]:
        with self._cond:
            self._closed = True
            drained = list(self._dq)
            self._dq.clear()
            self._cond.notify_all()
            return drained


class Latch:
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


def encode_events(events: list[Any], offset: int) -> bytes:
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


def split_after_loss(
    chunks: list[tuple[int, Chunk]],
    head_done: int,
    culprit: int,
    info: F.ErrorInfo,
    logs: str,
    max_requeues: int,
) -> list[Chunk]:
    """After a worker was lost: fail the culprit call with ``info`` and return the rest of its
    chunks as new chunks to re-run (calls re-run too often fail instead of looping)."""
    retry: list[Chunk] = []
    for index, (first_id, chunk) in enumerate(chunks):
        start = head_done if index == 0 else 0
        stop = len(chunk.events)
        k = culprit - first_id
        if start <= k < stop:
            chunk.fail(k, k + 1, info, logs)
            pieces = [(start, k), (k + 1, stop)]
        else:
            pieces = [(start, stop)]
        for lo, hi in pieces:
            if lo >= hi:
                continue
            part = Chunk(
                chunk.sink, chunk.offset + lo, chunk.events[lo:hi], None, chunk.requeues + 1
            )
            if part.requeues > max_requeues:
                part.fail(
                    0,
                    hi - lo,
                    F.ErrorInfo(
                        info.error_type,
                        f"{info.message} (this call was re-run {max_requeues} times after "
                        "losing its worker and is not retried again)",
                    ),
                    "",
                )
            else:
                retry.append(part)
    return retry


def wait_for_results(
    sink: Sink,
    cancel: threading.Event | None,
    progress: Callable[[int], None] | None,
    interval_s: float,
) -> None:
    """Wait for a caller's results, reporting progress and honouring cancellation."""
    reported = 0
    while not sink.done.wait(interval_s):
        if progress is not None:
            finished = sink.finished
            if finished > reported:
                progress(finished - reported)
                reported = finished
        if cancel is not None and cancel.is_set():
            sink.abort(InvocationCancelledError(list(sink.results)))
            return
    if progress is not None and sink.error is None and sink.finished > reported:
        progress(sink.finished - reported)
