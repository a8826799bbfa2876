"""Processes a function leaves behind: found, killed and reaped after the call that made them.

The model (as documented in docs/runtime.md): a process started by a call (or by the import of
the handler) does not outlive that call. The worker is a child subreaper (see confine.py), so
every descendant -- a double-forked daemon, a ``setsid sleep 600`` -- stays in its process
tree, where ``/proc/<pid>/task/<tid>/children`` finds it. Threads are not processes: they stay,
and are frozen with the worker between calls by the parent.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time

# waitid/waitpid also report children that exit with a signal other than SIGCHLD (clone()
# without SIGCHLD), which plain waits skip: a function cannot hide a child that way.
_WALL = 0x40000000
_PROBE = os.WEXITED | os.WNOHANG | os.WNOWAIT | _WALL
_KILL_ROUNDS = 200
_SETTLE_S = 2.0


def has_children() -> bool:
    """True when this process has any child, live or zombie (one syscall)."""
    try:
        os.waitid(os.P_ALL, 0, _PROBE)
    except ChildProcessError:
        return False
    return True


def _children_of(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as fh:
                out.extend(int(x) for x in fh.read().split())
        except (OSError, ValueError):
            continue
    return out


def descendants(root: int | None = None) -> list[int]:
    """Every process below ``root`` (default: this one), breadth first."""
    seen: list[int] = []
    frontier = [os.getpid() if root is None else root]
    while frontier:
        nxt: list[int] = []
        for pid in frontier:
            for child in _children_of(pid):
                if child not in seen:
                    seen.append(child)
                    nxt.append(child)
        frontier = nxt
    return seen


def reap() -> None:
    """Collect every child that has exited (zombies count against the process limit)."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG | _WALL)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_leftovers() -> int:
    """Kill and reap every descendant; returns how many processes were killed.

    Loops because a process may fork while its siblings are being killed (a fork burst); each
    round kills everything that exists. Raises ``RuntimeError`` when the tree will not die
    (e.g. a process stuck in the kernel), after which the worker exits and the parent tears
    down the whole sandbox.
    """
    killed: set[int] = set()
    deadline = time.monotonic() + _SETTLE_S
    for _ in range(_KILL_ROUNDS):
        for pid in descendants():
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
                killed.add(pid)
        reap()
        if not has_children():
            return len(killed)
        if time.monotonic() > deadline:
            break
        time.sleep(0.001)
    raise RuntimeError(f"{len(descendants())} leftover processes could not be killed")


def _alive(pid: int) -> bool:
    """Not yet a zombie (a zombie only waits to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return False
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] != b"Z"
