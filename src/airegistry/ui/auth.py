"""Who may use the web UI, and the session cookie that remembers them.

People log in with an access key id and secret of the server's keys (the same keys
SigV4 requests are checked against; there is no separate user list). ``airegistry ui``
also prints a one-time link (as Jupyter does) that logs the first browser to open it in.

The session lives in a cookie signed by Starlette's ``SessionMiddleware`` (itsdangerous,
the only signer here): ``HttpOnly``, ``SameSite=Strict``, path ``/ui``, and an expiry the
signature enforces server-side, not just ``Max-Age``. It holds no secret: the key id and
a hash of its secret, so deleting or rotating a key ends its sessions. The signing key
is a file in the registry home, shared by every worker process of one server.

Every state-changing request carries the session's CSRF token (synchronizer token in a
hidden form field); ``SameSite=Strict`` is the second layer, not the only one.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import threading
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airegistry.server.auth import AuthConfig

SESSION_COOKIE = "airegistry_ui"
SESSION_SECONDS = 12 * 3600
KEY_FILE_NAME = "ui-session.key"
LOCAL_USER = "local"  # the person who opened the one-time link of `airegistry ui`
NO_AUTH_WARNING = (
    "authentication is DISABLED (--no-auth); anyone who can reach this port can read and "
    "write the registry"
)


def signing_key(home: Path) -> str:
    """The cookie signing key of a home, created (0600) by whichever process comes first."""
    path = home / KEY_FILE_NAME
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        value = secrets.token_hex(32)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(value)
            fh.flush()
            os.fsync(fh.fileno())
        return value
    for _ in range(100):  # another process created it a moment ago and may still be writing
        value = path.read_text(encoding="ascii").strip()
        if len(value) == 64:
            return value
        threading.Event().wait(0.01)
    raise RuntimeError(f"{path} does not hold a UI session key; delete it to make a new one")


def _fingerprint(secret: str) -> str:
    return hashlib.sha256(b"airegistry-ui-session:" + secret.encode()).hexdigest()[:32]


@dataclass
class UIAuth:
    """The UI's access rule: server keys, a one-time token, or nothing (``--no-auth``)."""

    keys: AuthConfig | None = None
    one_time_token: str | None = None
    _token_used: bool = field(default=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def open(self) -> bool:
        """No login at all (the server runs with ``--no-auth``)."""
        return self.keys is None and self.one_time_token is None

    @property
    def accepts_keys(self) -> bool:
        return self.keys is not None

    def login(self, session: MutableMapping[str, Any], key_id: str, secret: str) -> bool:
        """Start a session for a correct key id and secret; False (and no session) otherwise."""
        found = self.keys.lookup(key_id) if self.keys is not None and key_id else None
        # Compare even when the key is unknown so both failures take the same time.
        ok = hmac.compare_digest((found or "\0" * 40).encode(), secret.encode()) and found is not None
        if ok:
            _start(session, key_id, _fingerprint(secret))
        return ok

    def login_with_token(self, session: MutableMapping[str, Any], token: str) -> bool:
        """The one-time link: valid once, for the first browser that opens it."""
        if not self.one_time_token or not token:
            return False
        with self._lock:
            if self._token_used or not hmac.compare_digest(self.one_time_token, token):
                return False
            self._token_used = True
        _start(session, LOCAL_USER, "")
        return True

    def user(self, session: MutableMapping[str, Any]) -> str | None:
        """Who this session belongs to, or None when it must log in (again)."""
        if self.open:
            return "anonymous"
        user = session.get("user")
        if not isinstance(user, str):
            return None
        if user == LOCAL_USER:
            return user if self.one_time_token else None
        secret = self.keys.lookup(user) if self.keys is not None else None
        if secret is None or not hmac.compare_digest(_fingerprint(secret), str(session.get("fp", ""))):
            return None
        return user


def _start(session: MutableMapping[str, Any], user: str, fingerprint: str) -> None:
    # A fresh session on login: nothing set before it (a planted CSRF token) survives.
    session.clear()
    session["user"] = user
    session["fp"] = fingerprint
    session["csrf"] = secrets.token_urlsafe(32)


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """The session's CSRF token, created on first use (anonymous sessions get one too)."""
    token = session.get("csrf")
    if not isinstance(token, str) or len(token) < 32:
        token = secrets.token_urlsafe(32)
        session["csrf"] = token
    return token


def csrf_ok(session: MutableMapping[str, Any], submitted: Any) -> bool:
    expected = session.get("csrf")
    if not isinstance(expected, str) or not isinstance(submitted, str) or not submitted:
        return False
    with contextlib.suppress(TypeError):
        return hmac.compare_digest(expected.encode(), submitted.encode())
    return False
