"""The validation worker: what one process of :mod:`airegistry.formats.pool` runs.

A worker reads jobs from its stdin until end of file (or ``None``): each job is one part
of a dataset (whole lines), either a byte range of a file, which the worker reads itself,
or the bytes of a stream, which follow the job on the pipe. The worker validates it with
lines numbered from 1 and answers ``("result", part)`` or ``("error", exception)`` on its
stdout (an empty job is a ping, answered ``("ready", None)``). Messages are
length-prefixed pickles (:func:`send` / :func:`recv`), only ever exchanged between our
own two processes: the dataset's bytes are never unpickled.

The worker outlives a job: it is started once and serves every later parallel validation
of its parent. It leaves its loop when the parent closes the pipe, which is also what
happens when the parent dies, so it never lingers as an orphan.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import sys
from typing import Any

from .engine import RowValidator
from .jsonl import validate_jsonl
from .report import ValidationLimits
from .sources import BinaryReadable, ByteSource, Concat

_HEADER = struct.Struct("<QQ")  # sizes of the pickle and of the raw bytes after it
PIPE_BYTES = 1 << 20  # the pipe size :mod:`.pool` asks for: one read takes a pipeful


def send(fd: int, obj: Any, data: list[bytes | memoryview] | None = None) -> None:
    """``obj`` pickled, then the buffers of ``data`` as they are (a part of a stream, which
    is neither copied into a pickle nor unpickled)."""
    head = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    data = data or []
    _write_all(fd, _HEADER.pack(len(head), sum(map(len, data))) + head)
    for buf in data:
        _write_all(fd, buf)


def recv(fd: int) -> tuple[Any, list[bytes]]:
    """The next message and its raw bytes, in the pieces the pipe gave them (joining them
    would copy them once more); :class:`EOFError` when the other side closed the pipe."""
    head, size = _HEADER.unpack(b"".join(_read_exact(fd, _HEADER.size)))
    obj = pickle.loads(b"".join(_read_exact(fd, head)))
    return obj, _read_exact(fd, size)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, size: int) -> list[bytes]:
    chunks = []
    while size:
        # (os.read allocates what it is asked for, then shrinks it to what it got)
        chunk = os.read(fd, min(size, PIPE_BYTES))
        if not chunk:
            raise EOFError("the other end of the pipe was closed")
        chunks.append(chunk)
        size -= len(chunk)
    return chunks


# A part is ``(path, start, end)``, read from the file by the worker; or whole lines of a
# stream, which the caller read: the buffers holding them (as read by the caller, or as
# received by the worker), or, in the caller, the rest of the stream.
Part = tuple[str, int, int] | list[bytes | memoryview] | BinaryReadable


def run_part(
    part: Part,
    technique: str | None,
    limits: ValidationLimits,
    preset: tuple[str, int] | None,
) -> dict[str, Any]:
    """Validate one part (whole lines) with lines numbered from 1.

    ``preset`` is the dataset's format and the line it was detected on; only the first
    part is validated without it (and may start with a byte-order mark), exactly as a
    serial run starts.
    """
    fmt, line = preset if preset is not None else (None, 0)
    v = RowValidator(technique, limits, format_name=fmt, detected_line=line)
    first = preset is None
    if isinstance(part, tuple):
        path, start, end = part
        with open(path, "rb", buffering=0) as f:
            f.seek(start)
            src = ByteSource(f, name=path, max_bytes=limits.max_bytes, offset=start, end=end)
            lines = validate_jsonl(src, v, strip_bom=first)
    else:
        lines = validate_jsonl(Concat(part) if isinstance(part, list) else part, v,
                               strip_bom=first)
    out = v.export()
    out["lines"] = lines
    return out


def main() -> int:
    # Ctrl-C in a terminal reaches the whole process group: the parent decides what an
    # interrupt means, and closes our stdin when it is done.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Answers go to a private copy of stdout, so that a stray print cannot corrupt them.
    out = os.dup(1)
    os.dup2(2, 1)
    while True:
        try:
            job, data = recv(0)
        except EOFError:
            return 0
        if job is None:
            return 0
        if not job:  # a ping: the parent waits until we are ready
            send(out, ("ready", None))
            continue
        if job[0] is None:  # the part's bytes came after the job
            job = (data, *job[1:])
        try:
            answer: tuple[str, Any] = ("result", run_part(*job))
        except Exception as exc:  # reported to the parent, which raises it
            answer = ("error", exc)
        send(out, answer)


if __name__ == "__main__":
    sys.exit(main())
