"""The seccomp filter every worker installs on itself before the handler is imported.

Built once per process with libseccomp (through ``pyseccomp``, ctypes bindings that follow
libseccomp's own Python API) and exported as a classic-BPF program; the worker loads the bytes
with ``prctl(PR_SET_SECCOMP)`` (see ``guest/confine.py``), so the worker needs no library.

Policy: allow by default, refuse with ``EPERM`` what a reward function has no business doing
and what widens the kernel's attack surface: new namespaces (``unshare``, ``setns``, ``clone``
with any ``CLONE_NEW*`` flag -- so ``unshare -Ur`` fails), mounts, ``ptrace`` and cross-process
memory access, kernel modules, kexec, BPF, perf events, userfaultfd, io_uring, keyrings,
clock/hostname changes, NUMA and CPU-affinity changes (the worker is pinned to its CPU). ``clone3``
answers ``ENOSYS`` because its flags live in memory a filter cannot read; libc then falls back
to ``clone``, whose flags are checked. Syscalls of another ABI (32-bit ``int 0x80``, x32) kill
the process: libseccomp's default for a non-native architecture.
"""

from __future__ import annotations

import errno
import os
import threading
from typing import Any

# Each is refused with EPERM; names libseccomp does not know on this architecture are skipped.
DENIED_SYSCALLS = (
    "unshare", "setns", "mount", "umount", "umount2", "pivot_root", "chroot",
    "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
    "ptrace", "process_vm_readv", "process_vm_writev", "pidfd_getfd", "kcmp",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "bpf", "perf_event_open", "userfaultfd", "lookup_dcookie",
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    "keyctl", "add_key", "request_key",
    "acct", "swapon", "swapoff", "reboot", "quotactl", "quotactl_fd", "vhangup", "syslog",
    "sethostname", "setdomainname", "settimeofday", "clock_settime", "clock_adjtime",
    "adjtimex", "stime",
    "iopl", "ioperm", "open_by_handle_at", "name_to_handle_at", "nfsservctl", "uselib",
    "mbind", "set_mempolicy", "migrate_pages", "move_pages", "sched_setaffinity",
)
# Every CLONE_NEW* flag: CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME.
NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000,
                   0x40000000, 0x00000080)

_lock = threading.Lock()
_cached: tuple[bytes, str] | None = None


def _build() -> bytes:
    import pyseccomp as seccomp

    flt: Any = seccomp.SyscallFilter(seccomp.ALLOW)
    eperm = seccomp.ERRNO(errno.EPERM)
    for name in DENIED_SYSCALLS:
        try:
            flt.add_rule(eperm, name)
        except (OSError, ValueError, RuntimeError):
            continue  # not a syscall on this architecture
    for flag in NAMESPACE_FLAGS:
        flt.add_rule(eperm, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    flt.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    with _ExportFile() as out:
        flt.export_bpf(out)
        return out.read_all()


class _ExportFile:
    """A real file descriptor for libseccomp to write the program into (it needs ``fileno``)."""

    def __enter__(self) -> _ExportFile:
        self._fd = os.memfd_create("airegistry-seccomp", os.MFD_CLOEXEC)
        return self

    def fileno(self) -> int:
        return self._fd

    def read_all(self) -> bytes:
        size = os.fstat(self._fd).st_size
        return os.pread(self._fd, size, 0)

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)


def seccomp_program() -> tuple[bytes, str]:
    """(BPF program, "") or (b"", reason it is unavailable); computed once per process."""
    global _cached
    with _lock:
        if _cached is None:
            try:
                program = _build()
            except (ImportError, OSError, AttributeError, RuntimeError, ValueError) as exc:
                _cached = (b"", f"no seccomp filter: libseccomp unavailable ({exc})")
            else:
                if not program or len(program) % 8:
                    _cached = (b"", "no seccomp filter: libseccomp produced no program")
                else:
                    _cached = (program, "")
        return _cached
