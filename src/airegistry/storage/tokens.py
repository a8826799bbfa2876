"""The one signer of opaque continuation tokens (hub list pages, object listings).

A token is ``base64url(json payload) "." base64url(HMAC-SHA256(secret, payload)[:16])``,
without padding. Callers put into the payload whatever binds the token to its request
(the operation, the bucket and prefix, a fingerprint of the filters) and the position to
resume from, and compare those on the way back in: a token is only as good as what its
payload says it belongs to. Sixteen bytes of MAC are plenty for a value that can only be
replayed against the same request, and keep the token short in URLs.

The secret must be the same on every process that may see the token again: replicas of
the server share it through the metadata store (or the blob store's own directory).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

MAX_TOKEN_CHARS = 8192
_MAC_BYTES = 16


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    """Signs JSON payloads into tokens and verifies them; stateless apart from the secret."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("a token secret needs at least 16 bytes")
        self._secret = secret

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]

    def sign(self, payload: Any) -> str:
        """A token carrying ``payload`` (anything ``json.dumps`` accepts)."""
        raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
        return f"{_b64(raw)}.{_b64(self._mac(raw))}"

    def verify(self, token: object) -> Any | None:
        """The payload of a token this signer made, or None for anything else."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
            return None
        body, mac = token.split(".")
        try:
            raw = _unb64(body)
            given = _unb64(mac)
        except (ValueError, TypeError):
            return None
        if not hmac.compare_digest(self._mac(raw), given):
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return None


__all__ = ["TokenSigner"]
