"""Batch invocation: one interface (``contract.BatchInvoker``), three backends.

``invoker_for(session, backend)`` picks one: ``"pool"`` (the embedded registry's warm sandboxed
pools, in this process), ``"lambda"`` (one Invoke per event, bounded concurrency, against an
airegistry server or AWS) or ``"ray"`` (the same sandboxed pool on every node of a Ray
cluster). ``None`` means ``AIREGISTRY_EVALUATION_BACKEND`` if set, else ``"pool"`` for an
embedded session and ``"lambda"`` for a remote or AWS one. Invokers are kept per session, so
warm Ray actors serve every later batch.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

from .contract import BatchInvoker, FunctionUnreachableError

__all__ = ["BACKENDS", "BatchInvoker", "FunctionUnreachableError", "close_invokers", "invoker_for"]

BACKENDS = ("pool", "lambda", "ray")
_lock = threading.Lock()
_invokers: weakref.WeakKeyDictionary[Any, dict[str, BatchInvoker]] = weakref.WeakKeyDictionary()


def _default_backend(session: Any) -> str:
    chosen = os.environ.get("AIREGISTRY_EVALUATION_BACKEND", "").strip().lower()
    if chosen:
        return chosen
    return "pool" if session.backend == "embedded" else "lambda"


def _build(session: Any, backend: str) -> BatchInvoker:
    if backend == "pool":
        if session.backend != "embedded":
            raise ValueError(
                f"backend='pool' runs functions of an embedded registry; this session is "
                f"{session.backend!r} (use 'lambda' or 'ray')"
            )
        from .local import LocalPoolInvoker

        return LocalPoolInvoker(session.functions)
    if backend == "lambda":
        from .fanout import LambdaFanoutInvoker

        return LambdaFanoutInvoker(session.functions)
    from .ray_backend import RayInvoker

    return RayInvoker(session)


def invoker_for(session: Any, backend: str | None = None) -> BatchInvoker:
    """The (cached) invoker of ``backend`` for ``session``; see the module docstring."""
    name = (backend or _default_backend(session)).lower()
    if name not in BACKENDS:
        raise ValueError(f"Unknown evaluation backend {name!r}; expected one of {', '.join(BACKENDS)}")
    with _lock:
        per_session = _invokers.setdefault(session, {})
        invoker = per_session.get(name)
        if invoker is None:
            invoker = per_session[name] = _build(session, name)
        return invoker


def close_invokers(session: Any | None = None) -> None:
    """Close the invokers of ``session`` (all sessions when None): warm Ray actors go."""
    with _lock:
        groups = [_invokers.pop(session, {})] if session is not None else list(_invokers.values())
        if session is None:
            _invokers.clear()
    for group in groups:
        for invoker in group.values():
            invoker.close()
