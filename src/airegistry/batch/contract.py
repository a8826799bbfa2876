"""The batch-invocation interface: "score these events with this function", once, for every
backend. ``Evaluator.evaluate``/``score_batch``/``invoke``/``as_reward_function`` and the trainers
call it and never branch on where the function runs.

Contract of ``BatchInvoker.invoke_batch(function, events, *, cancel=None, progress=None)``
(written once here; every implementation keeps it, and ``tests/runtime/test_batch.py`` runs
the same checks against each):

Arguments
    ``function``  a Lambda function name or ARN the backend can reach.
    ``events``    a sequence of JSON-like values (dicts, lists, str, numbers, bool, None).
    ``cancel``    a ``threading.Event``; once set, calls not yet started are not started.
    ``progress``  ``progress(n)`` is called *from the calling thread* with the number of calls
                  finished since its previous call; the calls add up to ``len(events)`` when
                  the batch completes.

Result
    A list of ``InvocationResult`` (``ok``, ``payload``, ``duration_ms``, ``logs``) with exactly
    one entry per event, **in the order of** ``events`` whatever order the calls ran in.

Per-item errors (never raised: that item's result has ``ok=False`` and a Lambda error
payload ``{"errorType", "errorMessage", "stackTrace"}``)
    the handler raised (``errorType`` = its exception class), the call timed out
    (``Sandbox.Timedout``), the worker crashed or ran out of memory (``Runtime.ExitError``,
    ``MemoryError``), the result could not be marshalled (``Runtime.MarshalError``,
    ``Function.ResponseSizeTooLarge``), the handler could not be imported (every item gets the
    ``Runtime.ImportModuleError``/... of the init phase), one event was too large for the
    transport (``RequestTooLargeException``).

Timeouts
    Each call is bounded by the function's own configured ``Timeout``, enforced where it runs;
    a call that overruns fails alone. There is no batch-wide deadline: set ``cancel`` from a
    timer for one.

Raised (the batch as a whole cannot run)
    ``FunctionUnreachableError``  the function does not exist or is outside what this backend
                                  can reach;
    ``TypeError``                 an event cannot be serialised (the message names its index);
    ``InvocationCancelledError``  ``cancel`` was set; ``.results`` holds the results finished
                                  by then (``None`` for the others);
    ``RuntimeUnavailableError``   the backend itself cannot run anything (pool closed, cluster
                                  unreachable), and transport errors of the remote backends.

Reward validation is *not* part of this contract: it happens above it, in the caller's
process (``runtime/rewards.py``), identically for every backend.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from airegistry.runtime.errors import InvocationCancelledError, RuntimeUnavailableError
from airegistry.runtime.spec import InvocationResult

__all__ = [
    "BatchInvoker",
    "FunctionUnreachableError",
    "InvocationCancelledError",
    "InvocationResult",
    "ProgressCallback",
    "RuntimeUnavailableError",
]

ProgressCallback = Callable[[int], None]


class FunctionUnreachableError(RuntimeError):
    """The function does not exist, or this backend cannot reach it (someone else's Lambda)."""


class BatchInvoker(Protocol):
    """Runs batches of events on one kind of backend (see the module docstring)."""

    #: ``"pool"``, ``"lambda"`` or ``"ray"``.
    backend: str

    def invoke_batch(
        self,
        function: str,
        events: Sequence[Any],
        *,
        cancel: threading.Event | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[InvocationResult]: ...

    def close(self) -> None:
        """Release what the invoker holds (warm actors, threads); it may be used again after."""
        ...
