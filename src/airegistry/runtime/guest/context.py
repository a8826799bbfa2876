"""The ``context`` argument of a handler, shaped like AWS Lambda's Python runtime object."""

from __future__ import annotations

import time
import uuid


class LambdaContext:
    """The ``context`` argument, shaped like AWS Lambda's Python runtime object.

    Function-level attributes are class attributes set once at import time, so building one per
    call costs a single small allocation. ``memory_limit_in_mb`` is a string, as in Lambda.
    """

    __slots__ = ("_deadline_ns", "_request_id")

    function_name = "function"
    function_version = "$LATEST"
    invoked_function_arn = ""
    memory_limit_in_mb = "1024"
    log_group_name = "/aws/lambda/function"
    log_stream_name = "airegistry/worker"
    identity = None
    client_context = None

    def __init__(self, deadline_ns: int) -> None:
        self._deadline_ns = deadline_ns

    @property
    def aws_request_id(self) -> str:
        # Generated lazily: most reward functions never look at it.
        try:
            return self._request_id
        except AttributeError:
            self._request_id: str = str(uuid.uuid4())
            return self._request_id

    def get_remaining_time_in_millis(self) -> int:
        return max(0, (self._deadline_ns - time.monotonic_ns()) // 1_000_000)
