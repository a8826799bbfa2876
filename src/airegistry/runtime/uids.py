"""A uid of its own for every worker (when the runtime runs as root).

Why: ``RLIMIT_NPROC`` counts the processes and threads of a *uid*. When every sandbox ran as
65534, one evaluator's fork burst (or a thousand zombies) used up the limit of every other
evaluator on the host -- across tenants in server mode. With a uid per worker the limit bounds
that worker alone, and workers cannot signal or trace one another either.

Uids come from a fixed range far above normal users and container subuid ranges
(``UID_BASE`` .. ``UID_BASE + UID_COUNT``), lowest free first. A lease is an exclusive ``flock`` on a file named
after the uid in a root-owned directory, so processes on one host never hand out the same uid
twice; a process that dies releases its leases with its file descriptors.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import subprocess
import threading
from pathlib import Path

UID_BASE = 1_900_000_000
UID_COUNT = 1 << 16
_LEASE_DIRS = (Path("/run/airegistry-uids"), Path("/tmp/.airegistry-uids"))
_lock = threading.Lock()
_lease_dir: Path | None = None


class UidUnavailableError(RuntimeError):
    """No uid could be leased (not root, no safe lease directory, range exhausted)."""


class UidLease:
    """One leased uid; ``release`` (or the process ending) gives it back."""

    __slots__ = ("fd", "uid")

    def __init__(self, uid: int, fd: int) -> None:
        self.uid = uid
        self.fd = fd

    def release(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:  # a forgotten lease must not pin its uid for the process life
        self.release()


def _safe_dir(path: Path) -> bool:
    """A directory only root can write to (else another user could pre-create lease files)."""
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == 0 and not st.st_mode & 0o022


def _directory() -> Path:
    global _lease_dir
    with _lock:
        if _lease_dir is None:
            if os.geteuid() != 0:
                raise UidUnavailableError("a uid per worker needs the runtime to run as root")
            for candidate in _LEASE_DIRS:
                if _safe_dir(candidate):
                    _lease_dir = candidate
                    break
            else:
                raise UidUnavailableError(
                    f"no root-owned directory for uid leases ({', '.join(map(str, _LEASE_DIRS))})"
                )
        return _lease_dir


def lease_uid() -> UidLease:
    """Lease the lowest free uid of the range; raises ``UidUnavailableError`` if none is free.

    Lowest-first keeps the lease files few (as many as workers ever ran at once) and their
    files are never unlinked: unlinking a lock file races with another process opening it.
    """
    directory = _directory()
    for uid in range(UID_BASE, UID_BASE + UID_COUNT):
        fd = os.open(directory / str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        return UidLease(uid, fd)
    raise UidUnavailableError(f"all {UID_COUNT} uids from {UID_BASE} are leased")


def kill_all_processes_of(uid: int) -> None:
    """SIGKILL every process of ``uid`` on the host: ``kill(-1)`` run *as that uid* reaches
    exactly the processes it may signal, which for a uid of its own is the worker's tree,
    wherever in the process tree its members ended up."""
    kill = shutil.which("kill", path="/usr/bin:/bin")
    if kill is None:
        return
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            [kill, "-s", "KILL", "--", "-1"],
            user=uid,
            group=uid,
            extra_groups=[],
            env={},
            cwd="/",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=10,
            check=False,
        )
