"""Child side of :mod:`airegistry.formats.parallel`: ``python -m airegistry.formats.worker``.

Reads one pickled job from stdin and writes pickled ``(kind, value)`` messages to stdout:
``("progress", bytes_done)`` while working, then ``("result", part)`` or
``("error", exception)``. The pipe only ever carries data produced by our own parent.
"""

from __future__ import annotations

import pickle
import sys


def main() -> int:
    from .parallel import run_part

    out = sys.stdout.buffer
    path, start, end, technique, limits, preset = pickle.load(sys.stdin.buffer)

    def progress(done: int) -> None:
        pickle.dump(("progress", done), out)
        out.flush()

    try:
        part = run_part(path, start, end, technique, limits, preset, progress)
    except BaseException as exc:
        pickle.dump(("error", exc), out)
        out.flush()
        return 1
    pickle.dump(("result", part), out)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
