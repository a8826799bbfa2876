"""What a function runtime runs and what one call returns, shared by every backend.

``FunctionSpec`` mirrors a Lambda function configuration; ``InvocationResult`` mirrors one
Lambda Invoke response. The warm pool, the Ray backend and the Lambda fan-out all produce
``InvocationResult`` so callers never care where a call ran.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

__all__ = ["FunctionSpec", "InvocationResult"]


@dataclass(frozen=True)
class FunctionSpec:
    """What to run and within which limits (mirrors a Lambda function configuration)."""

    code_dir: Path
    handler: str = "lambda_function.lambda_handler"
    timeout_s: float = 30.0
    memory_mb: int = 1024
    function_name: str = "function"
    function_arn: str = ""
    version: str = "$LATEST"
    environment: Mapping[str, str] = field(default_factory=dict)
    # Extra paths (e.g. the registry home) made invisible to the function under full isolation.
    hidden_paths: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        if not (self.timeout_s > 0):
            raise ValueError(f"FunctionSpec.timeout_s must be > 0, got {self.timeout_s!r}")
        if self.memory_mb < 64:
            raise ValueError(f"FunctionSpec.memory_mb must be >= 64, got {self.memory_mb!r}")
        if "." not in self.handler:
            raise ValueError(
                f"FunctionSpec.handler must look like 'module.function', got {self.handler!r}"
            )


class InvocationResult(msgspec.Struct, array_like=True, gc=False):
    """One invocation's outcome, shaped like a Lambda Invoke response.

    A msgspec Struct so that the pool decodes a worker's results straight into it, in C (on
    the wire one result is the array ``[ok, payload, duration_ms, logs]``). ``gc=False``: there
    is one per call and tracking them made the cycle collector the parent's largest cost; a
    result is never part of a reference cycle unless code stores it inside its own payload
    (which would then not be freed).
    """

    ok: bool
    payload: Any
    duration_ms: float
    logs: str = ""

    @property
    def function_error(self) -> str | None:
        """``"Unhandled"`` when the function failed (Lambda's ``FunctionError``), else None."""
        return None if self.ok else "Unhandled"

