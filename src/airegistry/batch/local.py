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
        owned = self.functions.owns_arn(function) if function.startswith("arn:") else True
        if owned is None:
            raise FunctionUnreachableError(
                f"{function} is a Lambda function outside this registry, so the embedded backend "
                "cannot invoke it; use the AWS backend (AIREGISTRY_BACKEND=aws) or register the "
                "code itself (source='./reward.py')"
            )
        if owned is False:
            raise FunctionUnreachableError(f"the function {function} no longer exists")
        from botocore.exceptions import ClientError

        try:
            return self.functions.invoke_batch(function, events, cancel=cancel, progress=progress)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                raise FunctionUnreachableError(exc.response["Error"].get("Message", "")) from None
            raise

    def close(self) -> None:
        return None  # the pools belong to the registry home, which closes them
