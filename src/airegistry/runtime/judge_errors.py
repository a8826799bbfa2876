"""Errors of reward-prompt judging; their class names are the ``error_type`` of failed items."""

from __future__ import annotations


class JudgeError(RuntimeError):
    """The judge endpoint could not produce a reply."""


class JudgeHTTPError(JudgeError):
    """The endpoint answered with an HTTP error status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class JudgeTimeoutError(JudgeError, TimeoutError):
    """The endpoint did not answer within ``JudgeConfig.timeout_s``."""


class JudgeConnectionError(JudgeError):
    """The endpoint could not be reached at all."""


class JudgeReplyError(JudgeError):
    """The endpoint answered 200 but not with a chat completion."""


class ScoreParseError(ValueError):
    """The judge's reply holds no score, or a score outside the declared scale."""
