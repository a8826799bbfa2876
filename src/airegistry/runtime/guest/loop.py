"""The worker's main loop: read a batch, run each event, send results in frames.

Hot path: a fast handler's call costs a few microseconds here, so the loop binds everything it
needs to locals and does per call only what must be per call (deadline slot, context, capture).
"""

from __future__ import annotations

import io
import os
import time
from typing import Any

import msgspec

from . import frames
from .capture import Capture, drain_fd_output
from .children import has_children, kill_leftovers
from .context import LambdaContext
from .marshal import NotJSON, describe, error, marshal, safe_str

# Flush pending results to the parent at least this often while a batch runs, so results of
# finished calls survive a later call that hangs or crashes (they would otherwise be re-run).
_FLUSH_BYTES = 1 << 20
_CHILD_CHECK_NS = 50_000
# One result on the wire: [ok, payload, duration_ms, logs] (frames.Results).
_PAYLOAD, _LOGS = 1, 3


def _leftover_note(killed: int, calls: int = 1) -> str:
    if not killed:
        return ""
    who = "this call" if calls == 1 else f"one of the last {calls} calls"
    return (
        f"\n[airegistry: killed {killed} process(es) that {who} left running; processes do "
        "not outlive the call that started them]\n"
    )


def write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def read_frame(stream: io.BufferedReader) -> bytes | None:
    header = stream.read(frames.HEADER_SIZE)
    if not header:
        return None
    if len(header) < frames.HEADER_SIZE:
        raise frames.FrameError("EOF inside a frame header")
    (size,) = frames.HEADER.unpack(header)
    body = stream.read(size)
    if len(body) < size:
        raise frames.FrameError("EOF inside a frame body")
    return body


class Emitter:
    """Sends results to the parent, splitting frames and isolating bad payloads."""

    def __init__(self, res_fd: int, cap_fd: int, log_cap: int, encoder: Any) -> None:
        self.res_fd = res_fd
        self.cap_fd = cap_fd
        self.log_cap = log_cap
        self.encoder = encoder
        # Raw-fd output is rare; until a function produces some, it is looked for once per
        # flush instead of once per call (an fstat per call costs more than a fast handler).
        self.precise_fd_logs = False

    def emit(self, first_id: int, pending: list[list[Any]]) -> None:
        if not self.precise_fd_logs and os.fstat(self.cap_fd).st_size:
            extra = drain_fd_output(self.cap_fd, self.log_cap)
            if len(pending) > 1:
                extra = (
                    f"[output written straight to fd 1/2 by one of the last {len(pending)} "
                    f"calls]\n{extra}"
                )
            pending[-1][_LOGS] += extra
            self.precise_fd_logs = True
        self._send(first_id, pending)

    def _send(self, first_id: int, pending: list[list[Any]]) -> None:
        """Write results; a frame over Lambda's response limit is split down to single results
        so only an oversized (or unencodable) payload itself fails."""
        limit = frames.MAX_RESPONSE_BYTES
        try:
            frame: bytearray | None = self.encoder.encode(("results", first_id, pending))
        except (TypeError, ValueError, OverflowError, MemoryError, RecursionError):
            frame = None
        if frame is not None and len(frame) <= limit:
            write_all(self.res_fd, frame)
            return
        if len(pending) > 1:
            half = len(pending) // 2
            self._send(first_id, pending[:half])
            self._send(first_id + half, pending[half:])
            return
        item = pending[0]
        try:
            size = len(self.encoder.encode_value(item[_PAYLOAD]))
        except (TypeError, ValueError, OverflowError, MemoryError, RecursionError) as exc:
            err = error("Runtime.MarshalError", f"Unable to marshal response: {safe_str(exc)}")
        else:
            if frame is not None and size <= limit:
                write_all(self.res_fd, frame)  # payload fits; the logs made the frame big
                return
            err = error(
                "Function.ResponseSizeTooLarge",
                f"Response payload size ({size} bytes) exceeded maximum allowed payload "
                f"size ({limit} bytes).",
            )
        failed = [False, err.as_payload(), *item[2:]]
        write_all(self.res_fd, self.encoder.encode(("results", first_id, [failed])))


def run_batches(
    cmd: io.BufferedReader,
    res_fd: int,
    cap_fd: int,
    slot: memoryview,
    inbox: memoryview,
    init: frames.Init,
    func: Any,
    to_worker: Any,
    encoder: frames.FrameEncoder,
    capture: Capture,
) -> None:
    timeout_ns = init.timeout_ms * 1_000_000
    flush_ns = init.flush_interval_us * 1000
    log_cap = init.log_cap
    memory_mb = init.memory_mb
    monotonic_ns = time.monotonic_ns
    fstat = os.fstat
    Ctx = LambdaContext
    new_ctx = object.__new__  # skips the Python-level __init__: a hot path for fast handlers
    emitter = Emitter(res_fd, cap_fd, log_cap, encoder)
    marshal_errors = (NotJSON, TypeError, ValueError, RecursionError)
    parts = capture.parts  # cleared in place by take(), so this stays the live list
    take = capture.take
    precise = emitter.precise_fd_logs
    decode_events = msgspec.msgpack.Decoder().decode

    while True:
        frame = read_frame(cmd)
        if frame is None:
            os._exit(0)
        batch = to_worker.decode(frame)
        events = batch.events
        if batch.length:
            events = decode_events(inbox[batch.offset : batch.offset + batch.length])
        cid = first = batch.first_id
        pending: list[list[Any]] = []
        pending_bytes = 0
        last_flush = monotonic_ns()
        for event in events:
            t0 = monotonic_ns()
            slot[1] = t0
            slot[0] = cid
            ok = True
            ctx = new_ctx(Ctx)
            ctx._deadline_ns = t0 + timeout_ns
            try:
                out = func(event, ctx)
            except BaseException as exc:
                ok = False
                out = describe(exc, memory_mb).as_payload()
            else:
                try:
                    out = marshal(out)
                except marshal_errors as exc:
                    ok = False
                    out = error(
                        "Runtime.MarshalError", f"Unable to marshal response: {safe_str(exc)}"
                    ).as_payload()
            end = monotonic_ns()
            slot[0] = 0
            logs = take() if parts else ""
            if precise and fstat(cap_fd).st_size:
                extra = drain_fd_output(cap_fd, log_cap)
                logs = f"{logs}{extra}" if logs else extra
            # Starting a process takes far longer than this, so only slower calls are checked
            # one by one; every flush checks too (a leftover lives at most ~2 ms longer).
            if end - t0 >= _CHILD_CHECK_NS and has_children():
                logs += _leftover_note(kill_leftovers())
            pending.append([ok, out, (end - t0) / 1e6, logs])
            cid += 1
            if logs:
                pending_bytes += len(logs)
            if end - last_flush >= flush_ns or pending_bytes >= _FLUSH_BYTES:
                if has_children():
                    pending[-1][_LOGS] += _leftover_note(kill_leftovers(), len(pending))
                emitter.emit(first, pending)
                precise = emitter.precise_fd_logs
                first = cid
                pending = []
                pending_bytes = 0
                last_flush = monotonic_ns()
        if pending:
            if has_children():
                pending[-1][_LOGS] += _leftover_note(kill_leftovers(), len(pending))
            emitter.emit(first, pending)
            precise = emitter.precise_fd_logs
