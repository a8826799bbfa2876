"""Versions ``MAJOR.MINOR.PATCH`` and timestamps as the hub compares them."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from airegistry.hub.botocore_model import OperationError
from airegistry.storage.metadata.hubs import Version

_VERSION_RE = re.compile(r"^(\d{1,4})\.(\d{1,4})\.(\d{1,4})$")


def parse_version(value: str, field: str = "HubContentVersion") -> Version:
    """Versions are compared numerically; the model's pattern lets any character separate them."""
    match = _VERSION_RE.match(value)
    if not match:
        raise OperationError(
            "ValidationException",
            f"Value '{value}' at '{field}' is not a version of the form MAJOR.MINOR.PATCH "
            "(for example 1.0.0)",
        )
    return int(match[1]), int(match[2]), int(match[3])


def format_version(parts: tuple[int, int, int]) -> str:
    return f"{parts[0]}.{parts[1]}.{parts[2]}"


def to_epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()
