"""Access keys the server accepts: the keys file, the environment, the metadata store.

The keys file (``<home>/server-keys.json``, mode 0600) maps access key ids to secrets
and is what ``airegistry server --create-key`` appends to on a single box.
``AIREGISTRY_SERVER_KEYS`` (``AKID:SECRET,AKID2:SECRET2``) adds keys without touching
disk, for containers and tests. Replicas share no disk, so where the home's metadata is
a shared database (PostgreSQL) ``--create-key`` stores the key there instead (settings
``access_key:<id>``), and every replica accepts it without a restart. Secrets are held only in this object; nothing here logs them, and ``repr`` hides
them so an accidental log line cannot leak one.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import string
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

KEYS_FILE_NAME = "server-keys.json"
#: What an access key id can be (IAM's own rule, up to the settings key's length): anything
#: else is unknown without a lookup, so no odd byte ever reaches the metadata store.
_KEY_ID_RE = re.compile(r"[\w+=,.@-]{1,100}", re.ASCII)
KEYS_ENV = "AIREGISTRY_SERVER_KEYS"

_ID_ALPHABET = string.ascii_uppercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"


class KeyStoreError(Exception):
    """The keys file or the env variable is malformed (message names where)."""


def generate_key_pair() -> tuple[str, str]:
    """A new (access key id, secret) shaped like AWS's (20 and 40 characters)."""
    key_id = "AKAR" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(16))
    secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40))
    return key_id, secret


def parse_env_keys(value: str) -> dict[str, str]:
    keys: dict[str, str] = {}
    for i, item in enumerate(value.split(","), start=1):
        item = item.strip()
        if not item:
            continue
        key_id, sep, secret = item.partition(":")
        if not sep or not key_id.strip() or not secret.strip():
            raise KeyStoreError(
                f"{KEYS_ENV}: entry {i} must look like ACCESS_KEY_ID:SECRET (secret not shown)"
            )
        keys[key_id.strip()] = secret.strip()
    return keys


def load_keys_file(path: Path) -> dict[str, str]:
    """Read ``{"keys": [{"access_key_id": ..., "secret_access_key": ...}, ...]}``."""
    if not path.exists():
        return {}
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise KeyStoreError(f"{path}: cannot read keys file: {exc}") from None
    entries = doc.get("keys") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise KeyStoreError(f"{path}: expected an object with a 'keys' list")
    keys: dict[str, str] = {}
    for i, entry in enumerate(entries):
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("access_key_id"), str)
            or not isinstance(entry.get("secret_access_key"), str)
        ):
            raise KeyStoreError(
                f"{path}: keys[{i}] needs string fields access_key_id and secret_access_key"
            )
        keys[entry["access_key_id"]] = entry["secret_access_key"]
    return keys


def create_key(home: Path) -> tuple[str, str]:
    """Generate a key pair, add it to ``<home>/server-keys.json`` (0600), return it.

    The file is rewritten atomically (temp file + rename) so a crash never leaves a
    truncated keys file, under a lock so concurrent ``--create-key`` calls in one
    process do not lose each other's keys.
    """
    home.mkdir(parents=True, exist_ok=True)
    path = home / KEYS_FILE_NAME
    key_id, secret = generate_key_pair()
    with _FILE_LOCK:
        existing = load_keys_file(path)
        existing[key_id] = secret
        doc = {
            "keys": [
                {"access_key_id": k, "secret_access_key": v} for k, v in existing.items()
            ]
        }
        fd, tmp = tempfile.mkstemp(prefix=".server-keys.", dir=home)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=2)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return key_id, secret


_FILE_LOCK = threading.Lock()


SETTINGS_PREFIX = "access_key:"


class KeySettings(Protocol):
    """The part of ``storage.metadata.SettingsRepository`` the key store uses."""

    def get(self, key: str) -> str | None: ...
    def put_new(self, key: str, value: str) -> bool: ...
    def with_prefix(self, prefix: str) -> dict[str, str]: ...


def create_shared_key(settings: KeySettings) -> tuple[str, str]:
    """Generate a key pair and store it in the metadata store (every replica sees it)."""
    while True:
        key_id, secret = generate_key_pair()
        if settings.put_new(SETTINGS_PREFIX + key_id, secret):
            return key_id, secret


@dataclass
class AuthConfig:
    """The set of accepted access keys. ``lookup`` is what SigV4 verification calls."""

    keys: Mapping[str, str] = field(default_factory=dict)
    keys_file: Path | None = None
    settings: KeySettings | None = None
    #: Keys accepted for S3 reads (GET/HEAD) only: the registry's presign key, whose
    #: signatures are the URLs of CreateHubContentPresignedUrls.
    read_only: Mapping[str, str] = field(default_factory=dict)

    def is_read_only(self, access_key_id: str | None) -> bool:
        return access_key_id is not None and access_key_id in self.read_only

    def __repr__(self) -> str:  # never show secrets
        return f"AuthConfig(keys=<{len(self.keys)} keys>, keys_file={self.keys_file!r})"

    def lookup(self, access_key_id: str) -> str | None:
        secret = self.keys.get(access_key_id) or self.read_only.get(access_key_id)
        if secret is None and not _KEY_ID_RE.fullmatch(access_key_id):
            return None
        if secret is None and self.keys_file is not None:
            # Keys created while the server runs (another `--create-key`) are picked
            # up without a restart; the file is small, so re-reading on a miss is cheap.
            try:
                fresh = load_keys_file(self.keys_file)
            except KeyStoreError:
                return None
            secret = fresh.get(access_key_id)
        if secret is None and self.settings is not None:
            # A key another replica created: one indexed read, then remembered.
            secret = self.settings.get(SETTINGS_PREFIX + access_key_id)
        if secret is not None and access_key_id not in self.keys \
                and access_key_id not in self.read_only:
            self.keys = {**self.keys, access_key_id: secret}
        return secret

    @classmethod
    def from_home(cls, home: Path | None, env: Mapping[str, str] | None = None, *,
                  settings: KeySettings | None = None) -> AuthConfig:
        env = os.environ if env is None else env
        keys: dict[str, str] = {}
        path = home / KEYS_FILE_NAME if home is not None else None
        if path is not None:
            if path.exists() and path.stat().st_mode & 0o077:
                raise KeyStoreError(
                    f"{path}: keys file is readable by other users; run chmod 600 on it"
                )
            keys.update(load_keys_file(path))
        if settings is not None:
            keys.update(settings.with_prefix(SETTINGS_PREFIX))
        keys.update(parse_env_keys(env.get(KEYS_ENV, "")))
        return cls(keys=keys, keys_file=path, settings=settings)
