"""How the server names a request's operation in metrics and the access log.

Names come from the service models, so a client sending made-up targets or paths cannot
grow ``/metrics`` without bound: anything the model does not define is ``Unknown``.
"""

from __future__ import annotations

import functools


@functools.cache
def _model_operations(service: str) -> frozenset[str]:
    from airegistry.hub.botocore_model import service_model

    return frozenset(service_model(service).operation_names)


def operation_label(service: str, operation: str) -> str:
    """The operation as metrics and the access log name it: one of the service model's
    operations, or ``Unknown`` (so bogus targets cannot grow ``/metrics`` without bound)."""
    return operation if operation in _model_operations(service) else "Unknown"


def lambda_operation(method: str, parts: list[str]) -> str:
    """The Lambda REST operation of a path split on ``/``."""
    # /2015-03-31/functions[/name[/code|/invocations|/configuration]]
    tail = parts[3:] if len(parts) > 3 else []
    if not tail:
        return "ListFunctions" if method == "GET" else "CreateFunction"
    if len(tail) == 1:
        return {"GET": "GetFunction", "DELETE": "DeleteFunction"}.get(method, "Unknown")
    return {"invocations": "Invoke", "code": "UpdateFunctionCode",
            "configuration": "GetFunctionConfiguration" if method == "GET"
            else "UpdateFunctionConfiguration"}.get(tail[1], "Unknown")
