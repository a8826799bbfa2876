"""Child side of :mod:`airegistry.formats.parallel`: ``python -m airegistry.formats.worker``.

Reads pickled jobs from stdin until ``None``; for each, writes pickled ``(kind, value)``
messages to stdout: ``("progress", bytes_done)`` while working, then ``("result", part)``
or ``("error", exception)``. The pipes only ever carry data produced by our own parent.
"""

from __future__ import annotations

import pickle
import sys


def main() -> int:
    from .parallel import run_part

    out = sys.stdout.buffer

    def progress(done: int) -> None:
        pickle.dump(("progress", done), out)
        out.flush()

    while True:
        job = pickle.load(sys.stdin.buffer)
        if job is None:
            return 0
        path, start, end, technique, limits, preset = job
        try:
            part = run_part(path, start, end, technique, limits, preset, progress)
        except BaseException as exc:
            pickle.dump(("error", exc), out)
            out.flush()
            return 1
        pickle.dump(("result", part), out)
        out.flush()


if __name__ == "__main__":
    sys.exit(main())
