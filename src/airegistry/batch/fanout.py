"""Batch invocation by Lambda fan-out: one ``Invoke`` per event, a bounded number at once.

Works against anything that speaks Lambda's wire: an airegistry server (remote backend) or AWS.
The concurrency bound defaults to botocore's connection-pool size so no request waits for a
socket; ``AIREGISTRY_LAMBDA_CONCURRENCY`` changes it. A call's own time limit is the function's
configured timeout, enforced by the service; the client's read timeout must exceed it, so pass a
client with a larger ``read_timeout`` for functions configured above botocore's 60 s default.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from .contract import (
    FunctionUnreachableError,
    InvocationCancelledError,
    InvocationResult,
    ProgressCallback,
)

DEFAULT_CONCURRENCY = 10
# Lambda answers these for one request without anything being wrong with the function or the
# service: they fail that item only.
_PER_ITEM_CODES = frozenset(
    {"RequestTooLargeException", "InvalidRequestContentException", "TooManyRequestsException"}
)
_UNREACHABLE_CODES = frozenset({"ResourceNotFoundException", "AccessDeniedException"})


def _concurrency() -> int:
    raw = os.environ.get("AIREGISTRY_LAMBDA_CONCURRENCY", "")
    try:
        value = int(raw) if raw else DEFAULT_CONCURRENCY
    except ValueError:
        raise ValueError(f"AIREGISTRY_LAMBDA_CONCURRENCY must be an integer, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"AIREGISTRY_LAMBDA_CONCURRENCY must be >= 1, got {value}")
    return value


class LambdaFanoutInvoker:
    """Invokes a function once per event through a boto3 ``lambda`` client."""

    backend = "lambda"

    def __init__(self, client: Any, concurrency: int | None = None) -> None:
        self.client = client
        self.concurrency = concurrency or _concurrency()

    def _call(self, function: str, payload: bytes) -> InvocationResult:
        from botocore.exceptions import ClientError

        start = time.perf_counter()
        try:
            response = self.client.invoke(FunctionName=function, Payload=payload, LogType="Tail")
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code in _UNREACHABLE_CODES:
                raise FunctionUnreachableError(str(error.get("Message", code))) from None
            if code not in _PER_ITEM_CODES:
                raise
            return InvocationResult(
                False,
                {"errorType": code, "errorMessage": str(error.get("Message", "")), "stackTrace": []},
                (time.perf_counter() - start) * 1e3,
            )
        body = response["Payload"].read()
        duration = (time.perf_counter() - start) * 1e3
        logs = ""
        if response.get("LogResult"):
            logs = base64.b64decode(response["LogResult"]).decode("utf-8", "replace")
        try:
            value = json.loads(body) if body else None
        except ValueError:
            return InvocationResult(
                False,
                {
                    "errorType": "Runtime.MarshalError",
                    "errorMessage": f"the function's response is not JSON: {body[:200]!r}",
                    "stackTrace": [],
                },
                duration,
                logs,
            )
        ok = "FunctionError" not in response
        if not ok and not (isinstance(value, dict) and isinstance(value.get("errorType"), str)):
            value = {
                "errorType": "Unhandled",
                "errorMessage": str(value.get("errorMessage", "")) if isinstance(value, dict) else "",
                "stackTrace": [],
            }
        return InvocationResult(ok, value, duration, logs)

    def invoke_batch(
        self,
        function: str,
        events: Sequence[Any],
        *,
        cancel: threading.Event | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[InvocationResult]:
        payloads = []
        for index, event in enumerate(events):
            try:
                payloads.append(json.dumps(event, allow_nan=True).encode())
            except (TypeError, ValueError) as exc:
                raise TypeError(f"event #{index} cannot be serialised: {exc}") from None
        results: list[InvocationResult | None] = [None] * len(payloads)
        pending: dict[Future[InvocationResult], int] = {}
        next_index = 0
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="airegistry-fanout") as pool:
            try:
                while next_index < len(payloads) or pending:
                    while (
                        next_index < len(payloads)
                        and len(pending) < self.concurrency
                        and not (cancel is not None and cancel.is_set())
                    ):
                        future = pool.submit(self._call, function, payloads[next_index])
                        pending[future] = next_index
                        next_index += 1
                    if cancel is not None and cancel.is_set():
                        for future in pending:
                            future.cancel()
                        raise InvocationCancelledError(list(results))
                    done, _ = wait(pending, timeout=0.05, return_when=FIRST_COMPLETED)
                    for future in done:
                        results[pending.pop(future)] = future.result()
                    if done and progress is not None:
                        progress(len(done))
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
        return results  # type: ignore[return-value]

    def close(self) -> None:
        return None
