"""NextToken for the hub's list operations: the keyset position, signed and bound to its request.

A token carries the sort key of the last row of a page (the repository's keyset) and
the scope it was issued for (operation, hub, content type, name, a fingerprint of the
filters): a token replayed against another hub, content type or set of filters, or one
that was tampered with, is a ``ValidationException``. The secret lives in the metadata
store's settings, so a token issued by one server replica is good on every other.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from airegistry.hub.botocore_model import OperationError
from airegistry.storage.tokens import TokenSigner


def filter_fingerprint(params: dict) -> str:
    relevant = {
        k: (v.isoformat() if isinstance(v, datetime) else v)
        for k, v in params.items()
        if k not in ("NextToken", "MaxResults")
    }
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]


class PageTokens:
    def __init__(self, secret: bytes) -> None:
        self._signer = TokenSigner(secret)

    def issue(self, scope: dict, key: list[Any] | None) -> str | None:
        return None if key is None else self._signer.sign({"s": scope, "k": key})

    def position(self, params: dict, scope: dict) -> list[Any] | None:
        """The keyset position of ``params["NextToken"]`` (None on the first page)."""
        token = params.get("NextToken")
        if not token:
            return None
        payload = self._signer.verify(token)
        if not isinstance(payload, dict) or not isinstance(payload.get("k"), list):
            raise OperationError("ValidationException", "The NextToken is not valid.")
        if payload.get("s") != scope:
            raise OperationError(
                "ValidationException",
                "The NextToken does not belong to this request (another hub, content type "
                "or set of filters).",
            )
        return payload["k"]


__all__ = ["PageTokens", "filter_fingerprint"]
