"""The validation worker: what one process of :mod:`airegistry.formats.pool` runs.

A worker reads jobs from its stdin until end of file (or ``None``): each job names a byte
range of a file (whole lines), which the worker reads itself and validates with lines
numbered from 1; it answers ``("result", part)`` or ``("error", exception)`` on its
stdout (an empty job is a ping, answered ``("ready", None)``). Messages are length-prefixed pickles (:func:`send` / :func:`recv`); the pipes
only ever carry data produced by our own two processes, never the dataset's bytes.

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
from .sources import ByteSource

_HEADER = struct.Struct("<Q")


def send(fd: int, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def recv(fd: int) -> Any:
    """The next message; :class:`EOFError` when the other side has closed the pipe."""
    (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size))
    return pickle.loads(_read_exact(fd, size))


def _read_exact(fd: int, size: int) -> bytes:
    chunks = []
    while size:
        chunk = os.read(fd, size)
        if not chunk:
            raise EOFError("the other end of the pipe was closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def run_part(
    path: str,
    start: int,
    end: int,
    technique: str | None,
    limits: ValidationLimits,
    preset: tuple[str, int] | None,
) -> dict[str, Any]:
    """Validate ``path[start:end]`` (whole lines) with lines numbered from 1.

    ``preset`` is the dataset's format and the line it was detected on; only the first
    part is validated without it, exactly as a serial run starts.
    """
    fmt, line = preset if preset is not None else (None, 0)
    v = RowValidator(technique, limits, format_name=fmt, detected_line=line)
    with open(path, "rb", buffering=0) as f:
        f.seek(start)
        src = ByteSource(f, name=path, max_bytes=limits.max_bytes, offset=start, end=end)
        lines = validate_jsonl(src, v, strip_bom=start == 0)
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
            job = recv(0)
        except EOFError:
            return 0
        if job is None:
            return 0
        if not job:  # a ping: the parent waits until we are ready
            send(out, ("ready", None))
            continue
        try:
            answer: tuple[str, Any] = ("result", run_part(*job))
        except Exception as exc:  # reported to the parent, which raises it
            answer = ("error", exc)
        send(out, answer)


if __name__ == "__main__":
    sys.exit(main())
