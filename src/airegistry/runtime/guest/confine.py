"""What a worker does to itself before any user code runs: limits, identity, filter.

Order matters and is fixed here once: die-with-parent, become the reaper of everything the
function spawns, resource limits, drop to the worker's own uid (when started as root inside
bubblewrap), pin to its CPU, then the seccomp filter -- last, because the filter forbids
``sched_setaffinity`` and the calls above it must still be allowed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal

from . import frames

_PR_SET_PDEATHSIG = 1
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_void_p))


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def die_with_parent(parent_pid: int) -> None:
    """Get SIGKILL when the parent goes away; exit now if it already has (race-free check)."""
    with contextlib.suppress(Exception):  # no libc symbol: the parent's pipe EOF still ends us
        _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent_pid and os.getppid() != parent_pid:
        os._exit(0)


def become_subreaper() -> None:
    """Orphans of anything the function starts are re-parented to this worker (not to the
    host's init), so a double-forked or ``setsid`` child can always be found and killed."""
    _libc().prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def apply_limits(init: frames.Init) -> None:
    mem = init.memory_mb * 1024 * 1024
    for limit, value in (
        (resource.RLIMIT_AS, mem),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_FSIZE, init.fsize_limit),
    ):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(limit, (value, value))
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        cap = init.nofile_limit if hard == resource.RLIM_INFINITY else min(hard, init.nofile_limit)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, cap), cap))
    # Writes past RLIMIT_FSIZE fail with EFBIG instead of killing the worker.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def drop_privileges(uid: int) -> None:
    """Become ``uid``/``uid`` with no groups; all capabilities go with the root uid."""
    if uid < 0 or os.getuid() != 0:
        return
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise OSError(f"could not switch to uid {uid}")


def limit_processes(limit: int) -> None:
    """RLIMIT_NPROC counts every process and thread of the *uid*: set only when the worker has a
    uid of its own, where it bounds this worker alone (a fork burst here cannot starve others)."""
    if limit > 0 and os.getuid() != 0:
        resource.setrlimit(resource.RLIMIT_NPROC, (limit, limit))


def pin_cpus(cpus: list[int]) -> None:
    if cpus:
        os.sched_setaffinity(0, cpus)


def install_seccomp(program: bytes) -> None:
    """Load a classic-BPF program (built by the parent with libseccomp) for this process and
    everything it starts. Needs no_new_privs, which is set here too."""
    if not program:
        return
    if len(program) % 8:
        raise ValueError("seccomp program length is not a multiple of 8 bytes")
    libc = _libc()
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    buffer = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")


def confine(init: frames.Init) -> None:
    """Everything above, in order; raises (and the worker exits) if a step fails."""
    if init.parent_pid:  # under bubblewrap, --die-with-parent already covers this
        die_with_parent(init.parent_pid)
    become_subreaper()
    apply_limits(init)
    drop_privileges(init.run_as)
    limit_processes(init.nproc_limit)
    pin_cpus(init.cpus)
    install_seccomp(init.seccomp)
