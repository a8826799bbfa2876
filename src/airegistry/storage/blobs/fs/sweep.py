"""Sweeping the temp files that writers which died left behind.

Temp names carry the writer's host tag and pid (``<host>.<pid>.<random>.<kind>``), so a
process can tell its own host's dead writers from live ones; entries of other hosts
(a store shared over NFS) or of a reused pid are swept once they are a day old.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import socket
import time
from pathlib import Path

from airegistry.pids import pid_alive

HOST_TAG = hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]
_STALE_FOREIGN_SECONDS = 24 * 3600


def temp_name(tmp_dir: Path, kind: str) -> str:
    """A fresh temp path in ``tmp_dir`` that ``sweep_stale_temps`` can attribute."""
    return str(tmp_dir / f"{HOST_TAG}.{os.getpid()}.{secrets.token_hex(8)}.{kind}")


def sweep_stale_temps(tmp_dir: Path) -> int:
    """Delete temp files/dirs left by dead processes; returns how many entries went.

    An entry is stale when its writer (host tag + pid in the name) is this host and the pid
    is gone, or when it is older than a day (other hosts sharing the store, or pid reuse).
    """
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(tmp_dir))
    except FileNotFoundError:
        return 0
    for e in entries:
        parts = e.name.split(".")
        stale = False
        if len(parts) == 4 and parts[0] == HOST_TAG and parts[1].isdigit():
            stale = int(parts[1]) != os.getpid() and not pid_alive(int(parts[1]))
        if not stale:
            try:
                stale = now - e.stat(follow_symlinks=False).st_mtime > _STALE_FOREIGN_SECONDS
            except FileNotFoundError:
                continue
        if not stale:
            continue
        try:
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(e.path)
            else:
                os.unlink(e.path)
            removed += 1
        except FileNotFoundError:
            continue
        except OSError:
            continue
    return removed
