"""The UI's own small records (try-it results, evaluation runs) as JSON files in the home.

They live in files rather than in memory so that every worker process of a server sees
them (a page may be served by another worker than the one that ran the evaluation) and
so a finished evaluation survives a restart. Writes are atomic (temp file, rename);
each kind keeps its newest ``keep`` records. Ids are random and checked before they
become file names.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Any

_ID_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
KINDS = ("tries", "evaluations")


class RecordStore:
    def __init__(self, root: Path, *, keep: int = 200) -> None:
        self.root = root
        self.keep = keep

    @staticmethod
    def new_id() -> str:
        return secrets.token_urlsafe(16)

    def _path(self, kind: str, record_id: str) -> Path | None:
        if kind not in KINDS or not isinstance(record_id, str) or not _ID_RE.match(record_id):
            return None
        return self.root / kind / f"{record_id}.json"

    def put(self, kind: str, record_id: str, record: dict[str, Any]) -> None:
        path = self._path(kind, record_id)
        if path is None:
            raise ValueError(f"bad record id {record_id!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".rec-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(record, fh, ensure_ascii=False, default=str)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def get(self, kind: str, record_id: str) -> dict[str, Any] | None:
        path = self._path(kind, record_id)
        if path is None:
            return None
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def recent(self, kind: str, limit: int = 20) -> list[dict[str, Any]]:
        folder = self.root / kind
        try:
            paths = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        except OSError:
            return []
        out = []
        for path in paths[:limit]:
            record = self.get(kind, path.stem)
            if record is not None:
                out.append(record)
        return out

    def prune(self, kind: str) -> None:
        folder = self.root / kind
        with contextlib.suppress(OSError):
            paths = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
            for path in paths[self.keep :]:
                with contextlib.suppress(OSError):
                    path.unlink()
