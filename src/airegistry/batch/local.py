"""Batch invocation on the embedded registry's warm, sandboxed worker pools."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from .contract import FunctionUnreachableError, InvocationResult, ProgressCallback


class LocalPoolInvoker:
    """Runs functions of an embedded registry on its ``FunctionService`` pools, in process."""

    backend = "pool"

    def __init__(self, functions: Any) -> None:
        self.functions = functions  # airegistry.runtime.functions.FunctionService

    def invoke_batch(
        self,
        function: str,
        events: Sequence[Any],
        *,
        cancel: threading.Event | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[InvocationResult]:
        from botocore.exceptions import ClientError

        try:
            return self.functions.invoke_batch(function, events, cancel=cancel, progress=progress)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise
            # Only now tell "someone else's function" from "deleted": asking first cost a
            # database round trip per batch.
            if function.startswith("arn:") and self.functions.owns_arn(function) is None:
                raise FunctionUnreachableError(
                    f"{function} is a Lambda function outside this registry, so the embedded "
                    "backend cannot invoke it; use the AWS backend (AIREGISTRY_BACKEND=aws) or "
                    "register the code itself (source='./reward.py')"
                ) from None
            raise FunctionUnreachableError(exc.response["Error"].get("Message", "")) from None

    def close(self) -> None:
        return None  # the pools belong to the registry home, which closes them
