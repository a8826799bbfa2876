"""Starting one worker process for a function, in the isolation mode this host gives.

A ``WorkerLauncher`` is prepared once per pool (which mode, where the code is readable by the
worker's uid, the private directory) and then starts any number of workers: each gets its own
pipes, deadline slot, event inbox, output memfd, uid lease, CPU and ``Init`` frame.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import mmap
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any, Literal

from . import sandbox as S
from . import view as V
from .channel import Inbox, WorkerProcess
from .errors import IsolationUnavailableError
from .guest import frames as F
from .spec import FunctionSpec
from .uids import UidLease, UidUnavailableError, lease_uid

log = logging.getLogger(__name__)

Isolation = Literal["auto", "full", "limits"]

_PIPE_SIZE = 1 << 20
# Shared memory the parent writes encoded events into (the worker maps it read-only): frames
# on the command pipe then only say where a batch lies. Pages are used as batches need them.
INBOX_BYTES = 8 << 20
_FLUSH_INTERVAL_US = 2000
_FSIZE_LIMIT = 64 * 1024 * 1024
_NOFILE_LIMIT = 1024
# Processes and threads of one worker (its own uid): stops fork bombs, leaves room for BLAS and
# tokenizer thread pools.
NPROC_LIMIT = 512
_cpu_lock = threading.Lock()
_cpu_cycle = itertools.count()


def next_cpu() -> list[int]:
    """The CPU the next worker is pinned to: round robin over this process's CPUs, across all
    pools, so workers spread over the machine (one CPU per worker, like a 1-vCPU Lambda)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except OSError:
        return []
    with _cpu_lock:
        return [cpus[next(_cpu_cycle) % len(cpus)]]


_F_SEAL_FUTURE_WRITE = 0x0010  # Linux 5.1; not in Python's fcntl module yet


def shared_memory(name: str, size: int, *, read_only: bool = False) -> tuple[int, mmap.mmap]:
    """A memfd of ``size`` bytes mapped here, whose size is sealed: a worker that could shrink
    it would make the parent's next access to the mapping die of SIGBUS. ``read_only``: after
    this mapping, nobody can write to it any more (not even through a reopened descriptor)."""
    fd = os.memfd_create(name, os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.ftruncate(fd, size)
        mem = mmap.mmap(fd, size)
        seals = fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_SEAL
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, seals | (_F_SEAL_FUTURE_WRITE if read_only else 0))
    except BaseException:
        os.close(fd)
        raise
    return fd, mem


class WorkerLauncher:
    """Prepares a function's sandbox once and starts workers in it."""

    def __init__(
        self, spec: FunctionSpec, *, isolation: Isolation, log_cap: int, init_timeout: float
    ) -> None:
        self.spec = spec
        self.requested = isolation
        self.log_cap = log_cap
        self.init_timeout = init_timeout
        self.mode: Literal["full", "limits"] = "limits"
        self.reason = ""
        self.fallback: str | None = None  # why "auto" fell back to limits (for the warning)
        self._probe: S.IsolationProbe | None = None
        self._base_dir: Path | None = None
        self._code_dir: Path = spec.code_dir
        self._hide: list[Path] = []
        self._own_uids = False
        self._seq = 0

    def prepare(self) -> None:
        code_dir = Path(self.spec.code_dir).resolve()
        if not code_dir.is_dir():
            raise FileNotFoundError(f"function code directory not found: {code_dir}")
        probe = S.probe_isolation()
        self._probe = probe
        if self.requested == "full" and probe.bwrap is None:
            raise IsolationUnavailableError(
                f"isolation='full' was required but is unavailable: {probe.reason}"
            )
        if self.requested != "limits" and probe.bwrap is not None:
            self.mode = "full"
            self.reason = probe.reason
            self._own_uids = probe.privileged
        else:
            self.mode = "limits"
            self._own_uids = probe.limits_own_uids
            if self.requested == "limits":
                self.reason = "resource limits only (requested)"
            else:
                self.reason = f"resource limits only: {probe.reason}"
                self.fallback = probe.reason
        self._base_dir = Path(tempfile.mkdtemp(prefix="airegistry-pool-"))
        os.chmod(self._base_dir, 0o711)  # traversable (not listable) by the worker uids
        if self._own_uids and not S.tree_readable_by_others(
            code_dir, check_ancestors=self.mode == "limits"
        ):
            code_dir = S.stage_copy(code_dir, self._base_dir / "code")
        self._code_dir = code_dir
        self._hide = S.hidden_paths(self.spec.hidden_paths)

    def close(self) -> None:
        if self._base_dir is not None:
            shutil.rmtree(self._base_dir, ignore_errors=True)

    def spawn(self) -> WorkerProcess:
        """Start one worker (from the pool's spawner thread only: see pool.py's docstring)."""
        assert self._probe is not None and self._base_dir is not None
        self._seq += 1
        lease: UidLease | None = None
        if self._own_uids:
            try:
                lease = lease_uid()
            except UidUnavailableError as exc:
                raise OSError(f"no uid for the worker: {exc}") from None
        try:
            return self._start(lease)
        except BaseException:
            if lease is not None:
                lease.release()
            raise

    def _start(self, lease: UidLease | None) -> WorkerProcess:
        assert self._probe is not None and self._base_dir is not None
        spec = self.spec
        full = self.mode == "full"
        private = self._base_dir / f"w{self._seq}"
        private.mkdir(mode=0o711)
        uid = lease.uid if lease is not None else -1
        if full:
            home, code_root, worker_path = "/tmp", V.TASK_ROOT, S.SANDBOX_WORKER_PATH
        else:
            os.chmod(private, 0o700)
            if lease is not None:
                os.chown(private, uid, uid)
            home, code_root, worker_path = str(private), str(self._code_dir), str(S.WORKER_PATH)
        cmd_r, cmd_w = os.pipe2(os.O_CLOEXEC)
        res_r, res_w = os.pipe2(os.O_CLOEXEC)
        for fd in (cmd_w, res_w):
            with contextlib.suppress(OSError):
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        slot_fd, slot_map = shared_memory("airegistry-slot", 16)
        inbox_fd, inbox_map = shared_memory("airegistry-inbox", INBOX_BYTES, read_only=True)
        log_fd = os.memfd_create("airegistry-log", os.MFD_CLOEXEC)
        child_fds = (cmd_r, res_w, slot_fd, inbox_fd)
        worker_argv = [
            sys.executable, "-I", "-B", worker_path, "--fds", ",".join(map(str, child_fds)),
        ]
        env = S.clean_environment(
            spec.environment,
            home=home,
            code_dir=code_root,
            handler=spec.handler,
            function_name=spec.function_name,
            version=spec.version,
            memory_mb=spec.memory_mb,
        )
        cpus = next_cpu()
        if full:
            etc, proc = V.synthetic_files(private, uid, len(cpus))
            view_args = V.build_view(
                needs=V.interpreter_needs(),
                code_dir=self._code_dir,
                etc_files=etc,
                proc_files=proc,
                tmpfs_bytes=min(spec.memory_mb, 512) * 1024 * 1024,
                hide=self._hide,
            )
            argv = S.bwrap_argv(self._probe, view_args, worker_argv)
        else:
            argv = worker_argv
        kwargs: dict[str, Any] = {}
        if not full and lease is not None:
            kwargs.update(user=uid, group=uid, extra_groups=[])
        try:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_fd,
                stderr=log_fd,
                pass_fds=child_fds,
                env=env,
                cwd="/" if full else home,
                start_new_session=True,
                close_fds=True,
                **kwargs,
            )
        except BaseException:
            for fd in (*child_fds, cmd_w, res_r, log_fd):
                with contextlib.suppress(OSError):
                    os.close(fd)
            slot_map.close()
            inbox_map.close()
            shutil.rmtree(private, ignore_errors=True)
            raise
        for fd in child_fds:
            os.close(fd)
        os.set_blocking(cmd_w, False)
        worker = WorkerProcess(
            popen,
            cmd_w,
            res_r,
            log_fd,
            slot_map,
            Inbox(inbox_map),
            private,
            full,
            self.init_timeout,
            uid_lease=lease,
            stops_when_ready=True,
        )
        init = F.Init(
            code_dir=code_root,
            handler=spec.handler,
            timeout_ms=int(spec.timeout_s * 1000),
            memory_mb=spec.memory_mb,
            function_name=spec.function_name,
            function_arn=spec.function_arn,
            version=spec.version,
            log_cap=self.log_cap,
            fsize_limit=_FSIZE_LIMIT,
            nofile_limit=_NOFILE_LIMIT,
            flush_interval_us=_FLUSH_INTERVAL_US,
            parent_pid=0 if full else os.getpid(),
            run_as=uid if full else -1,
            nproc_limit=NPROC_LIMIT if lease is not None else 0,
            cpus=cpus,
            seccomp=self._probe.seccomp,
            stop_when_ready=True,
        )
        worker.queue_frame(F.FrameEncoder().encode(init))
        return worker


_fallback_warned = False
_fallback_lock = threading.Lock()


def warn_fallback_once(reason: str) -> None:
    """Say once per process that workers run without bubblewrap, and why (the pool calls
    this when it starts in fallback mode)."""
    global _fallback_warned
    with _fallback_lock:
        if _fallback_warned:
            return
        _fallback_warned = True
    message = (
        "airegistry function runtime: full isolation (bubblewrap) is unavailable, workers run "
        f"with resource limits only: {reason}. Pass isolation='full' to refuse to run instead."
    )
    log.warning(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)
