"""The ASGI server stacks the benchmarks compare, and a launcher that serves an app on one.

    python benchmarks/_stacks.py STACK PORT MODULE:FACTORY

imports ``MODULE`` (from ``benchmarks/`` or the installed packages), calls ``FACTORY()``
for the ASGI app (once per process) and serves it on 127.0.0.1:PORT with ``STACK``.
Our server on a uvicorn stack is started through ``airegistry server --http/--loop``
instead (``ours_argv``), so it runs with the connection guard it ships with; granian and
hypercorn have no such guard (their own timeouts only), which is part of the trade-off the
stack benchmark reports.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: stack -> (airegistry server --http, --loop) for the uvicorn ones; None: served here.
STACKS: dict[str, tuple[str, str] | None] = {
    "uvicorn-h11": ("h11", "asyncio"),
    "uvicorn-httptools": ("httptools", "asyncio"),
    "uvicorn-httptools-uvloop": ("httptools", "uvloop"),
    "granian": None,
    "hypercorn": None,
}


def launcher_argv(stack: str, port: int, target: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), stack, str(port), target]


def _load(target: str) -> Callable[[], Any]:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def serve(stack: str, port: int, target: str) -> None:
    if stack.startswith("uvicorn-"):
        import uvicorn

        http, loop = STACKS[stack] or ("h11", "asyncio")
        uvicorn.run(_load(target)(), host="127.0.0.1", port=port, http=http, loop=loop,
                    log_level="warning", access_log=False, lifespan="on")
    elif stack == "granian":
        from granian import Granian

        # granian imports the target in its worker process: the same sys.path is needed there
        Granian(target, address="127.0.0.1", port=port, interface="asgi", factory=True,
                workers=1, log_level="warning", working_dir=Path(__file__).resolve().parent,
                ).serve()
    elif stack == "hypercorn":
        import asyncio

        from hypercorn.asyncio import serve as hypercorn_serve
        from hypercorn.config import Config

        config = Config()
        config.bind = [f"127.0.0.1:{port}"]
        config.loglevel = "WARNING"
        config.accesslog = None
        asyncio.run(hypercorn_serve(_load(target)(), config))
    else:
        raise SystemExit(f"unknown stack {stack!r}; choose from {', '.join(STACKS)}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    serve(sys.argv[1], int(sys.argv[2]), sys.argv[3])
