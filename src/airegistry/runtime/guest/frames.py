"""Length-prefixed msgspec frames between the pool (parent) and its workers.

Wire format: every frame is a 4-byte little-endian unsigned length followed by that many bytes
of MessagePack. Each direction has its own pipe on dedicated file descriptors, so nothing the
user's code prints can interleave with a frame.

Trust boundary: the worker runs untrusted code, so everything it sends is decoded by the parent
with msgspec into the typed Structs below -- never unpickled, never ``eval``-ed -- and frames are
bounded in size (``MAX_RESULT_FRAME``). A frame that does not decode is a protocol violation and
the worker is killed.

This module is also loaded *by file path* inside the worker (which must not import the rest of
``airegistry``), so it depends on nothing but msgspec and the standard library.
"""

from __future__ import annotations

import functools
import struct
from typing import Any

import msgspec

HEADER = struct.Struct("<I")
HEADER_SIZE = HEADER.size
# Parent -> worker frames carry events; they are produced by trusted code and not capped here.
# Worker -> parent frames are capped: a worker flushes results once it has ~1 MiB pending, so a
# legitimate frame is at most that plus one maximal result (payload + logs).
MAX_RESULT_FRAME = 16 * 1024 * 1024
# Lambda's synchronous response limit; a larger return value fails with ResponseSizeTooLarge.
MAX_RESPONSE_BYTES = 6 * 1024 * 1024


class FrameError(Exception):
    """A frame could not be read or decoded (peer wrote garbage, oversized frame, EOF mid-frame)."""


# ---------------------------------------------------------------------------- parent -> worker


class Init(msgspec.Struct, array_like=True, tag="init"):
    """First frame a worker receives: what to import and the limits to apply to itself."""

    code_dir: str
    handler: str
    timeout_ms: int
    memory_mb: int
    function_name: str
    function_arn: str
    version: str
    log_cap: int
    fsize_limit: int
    nofile_limit: int
    flush_interval_us: int
    parent_pid: int
    # Confinement the worker applies to itself before importing the handler (see confine.py).
    run_as: int = -1  # uid/gid to switch to when started as root inside the sandbox (-1: stay)
    nproc_limit: int = 0  # RLIMIT_NPROC, only for a uid of its own (0: leave as is)
    cpus: list[int] = []  # CPU affinity (empty: leave as is)
    seccomp: bytes = b""  # a classic-BPF seccomp program to install (empty: none)
    stop_when_ready: bool = False  # SIGSTOP itself after Hello; the parent resumes it per batch


class Batch(msgspec.Struct, array_like=True, tag="batch"):
    """Events to run in order; the i-th event has call id ``first_id + i``.

    Ids are unique per worker lifetime and never 0 (0 in the deadline slot means "idle").
    The events are one encoded array, normally in the worker's inbox (shared memory the parent
    writes and the worker maps read-only): ``length`` bytes at ``offset``. A batch too large
    for the inbox travels inline instead, in ``events`` (``length`` is then 0).
    """

    first_id: int
    offset: int = 0
    length: int = 0
    events: Any = None


ToWorker = Init | Batch

# ---------------------------------------------------------------------------- worker -> parent


class ErrorInfo(msgspec.Struct, array_like=True, gc=False):
    """A Lambda-style error: becomes ``{"errorMessage", "errorType", "stackTrace"}``."""

    error_type: str
    message: str
    stack: list[str] = []

    def as_payload(self) -> dict[str, Any]:
        return {
            "errorMessage": self.message,
            "errorType": self.error_type,
            "stackTrace": list(self.stack),
        }


class Hello(msgspec.Struct, array_like=True, tag="hello"):
    """Sent once after the handler import; ``error`` set means every call will fail with it."""

    pid: int
    error: ErrorInfo | None = None


class Results(msgspec.Struct, array_like=True, tag="results"):
    """Outcomes of consecutive calls ``first_id, first_id + 1, ...`` of one worker.

    Each item is an array ``[ok, payload, duration_ms, logs]`` -- exactly the fields of
    ``airegistry.runtime.spec.InvocationResult`` (an array-like Struct), which the parent
    decodes the items into directly (a failed call's payload is already the Lambda error
    dict). ``items`` is typed loosely here because this module cannot import the parent's
    types; the parent builds its decoder with :func:`results_type`.
    """

    first_id: int
    items: list[Any]


@functools.lru_cache(maxsize=8)
def results_type(item_type: Any) -> Any:
    """A ``Results`` twin whose items decode straight into ``item_type`` (a Struct)."""
    return msgspec.defstruct(
        "TypedResults",
        [("first_id", int), ("items", list[item_type])],  # type: ignore[valid-type]
        array_like=True,
        tag="results",
    )


# ---------------------------------------------------------------------------- codec helpers


class FrameEncoder:
    """Encodes a Struct into a ready-to-write frame (length header included) in one buffer."""

    __slots__ = ("_enc",)

    def __init__(self) -> None:
        self._enc = msgspec.msgpack.Encoder()

    def encode(self, msg: Any) -> bytearray:
        buf = bytearray(HEADER_SIZE)
        self._enc.encode_into(msg, buf, HEADER_SIZE)
        HEADER.pack_into(buf, 0, len(buf) - HEADER_SIZE)
        return buf

    def encode_value(self, value: Any) -> bytes:
        """Encode a bare value (used to measure a single payload's size)."""
        return self._enc.encode(value)


class FrameReader:
    """Incremental splitter: feed it whatever ``os.read`` returned, get back complete frames."""

    __slots__ = ("_buf", "_max")

    def __init__(self, max_frame: int = MAX_RESULT_FRAME) -> None:
        self._buf = bytearray()
        self._max = max_frame

    def feed(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        frames: list[bytes] = []
        pos = 0
        end = len(buf)
        while end - pos >= HEADER_SIZE:
            (size,) = HEADER.unpack_from(buf, pos)
            if size > self._max:
                raise FrameError(f"frame of {size} bytes exceeds the limit of {self._max} bytes")
            if end - pos - HEADER_SIZE < size:
                break
            start = pos + HEADER_SIZE
            frames.append(bytes(buf[start : start + size]))
            pos = start + size
        if pos:
            del buf[:pos]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame still buffered (non-zero at EOF means a torn frame)."""
        return len(self._buf)


def decoder_from_worker(item_type: Any = Any) -> msgspec.msgpack.Decoder[Any]:
    """Decoder for everything a worker may send; results items decode into ``item_type``."""
    results = Results if item_type is Any else results_type(item_type)
    return msgspec.msgpack.Decoder(Hello | results)


def decoder_to_worker() -> msgspec.msgpack.Decoder[Init | Batch]:
    return msgspec.msgpack.Decoder(ToWorker)
