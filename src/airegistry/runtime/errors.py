"""Errors and Lambda-style error type names of the function runtime.

The error *types* are strings rather than exception classes because they travel back to callers
inside an invocation payload (``{"errorMessage", "errorType", "stackTrace"}``), exactly as AWS
Lambda reports them; callers match on these strings, so they are defined once here.
"""

from __future__ import annotations

# Lambda's own names, so code written against Lambda keeps working against us.
TIMEOUT = "Sandbox.Timedout"
EXIT_ERROR = "Runtime.ExitError"
OUT_OF_MEMORY = "Runtime.OutOfMemory"
IMPORT_MODULE_ERROR = "Runtime.ImportModuleError"
HANDLER_NOT_FOUND = "Runtime.HandlerNotFound"
USER_CODE_SYNTAX_ERROR = "Runtime.UserCodeSyntaxError"
MARSHAL_ERROR = "Runtime.MarshalError"
MALFORMED_HANDLER_NAME = "Runtime.MalformedHandlerName"
RESPONSE_TOO_LARGE = "Function.ResponseSizeTooLarge"
# Ours: the worker broke the frame protocol (garbage written to the result channel, oversized
# frame, results for calls it was never given). The worker is killed; the call it was running fails.
PROTOCOL_ERROR = "Runtime.ProtocolError"
# Ours: the sandbox could not be set up at all (bwrap failed after the probe succeeded, the
# interpreter could not start, the code directory is unreadable by the sandbox user).
SANDBOX_ERROR = "Runtime.SandboxError"

# Errors raised while importing the handler: every call of the function fails with them.
INIT_ERROR_TYPES = frozenset(
    {IMPORT_MODULE_ERROR, HANDLER_NOT_FOUND, USER_CODE_SYNTAX_ERROR, MALFORMED_HANDLER_NAME}
)


class RuntimeUnavailableError(RuntimeError):
    """The pool cannot run anything (closed, or its workers cannot be started at all)."""


class PoolClosedError(RuntimeUnavailableError):
    """``invoke`` was called on a pool that has been closed."""


class IsolationUnavailableError(RuntimeError):
    """``isolation="full"`` was required but bubblewrap is missing or does not work here.

    The message says why (not installed, user namespaces disabled, the interpreter not visible
    inside the sandbox, ...) so an operator can fix the host rather than guess.
    """


class InvocationCancelledError(RuntimeError):
    """A batch was cancelled before every call finished.

    ``results`` has one entry per event: the ``InvocationResult`` of each call that finished
    before the cancellation, ``None`` for the others (never started, or still running).
    """

    def __init__(self, results: list[object]) -> None:
        done = sum(1 for r in results if r is not None)
        super().__init__(f"the batch was cancelled after {done} of {len(results)} calls")
        self.results = results
