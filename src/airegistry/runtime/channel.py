"""The parent's handle of one worker process: its pipes, deadline slot, event inbox, start-up,
freezing and how it ended. The pool decides *what* to run; this module knows *how to talk* to a
worker.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import select
import shutil
import signal
import subprocess
import time
from collections import deque
from pathlib import Path
from typing import Any

import msgspec

from . import errors as E
from .guest import frames as F
from .uids import UidLease, kill_all_processes_of

READ_SIZE = 1 << 20


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as fh:
            return [int(x) for x in fh.read().split()]
    except (OSError, ValueError):
        return []


def guest_pid(pid: int) -> int:
    """The worker interpreter below ``pid``: bubblewrap (and its PID-namespace init) each have
    exactly one child on the way down; without bubblewrap ``pid`` is the worker itself."""
    for _ in range(4):
        kids = _children(pid)
        if len(kids) != 1:
            return pid
        pid = kids[0]
    return pid


def process_state(pid: int) -> str | None:
    """The one-letter state of ``/proc/<pid>/stat`` (``T`` stopped, ``Z`` zombie), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    end = stat.rfind(b")")
    return stat[end + 2 : end + 3].decode() or None


class Inbox:
    """The parent's side of a worker's event inbox: shared memory holding encoded batches.

    A ring: the worker answers batches in the order they were sent, so their space is freed in
    that order too (the oldest batch first). The worker maps it read-only and decodes a batch
    straight from it, so events cross without a pipe's copies; only where a batch lies travels
    on the command pipe. The parent never reads it back.
    """

    __slots__ = ("mem", "regions", "size")

    def __init__(self, mem: mmap.mmap) -> None:
        self.mem = mem
        self.size = len(mem)
        self.regions: deque[tuple[int, int, int]] = deque()  # (start, end, next call id)

    def place(self, data: bytes, next_id: int) -> int | None:
        """Copy ``data`` in for calls before ``next_id``; its offset, or None if no room now."""
        n = len(data)
        regions = self.regions
        if not regions:
            start, room = 0, self.size
        else:
            tail, head = regions[0][0], regions[-1][1]
            if head <= tail:  # wrapped: free is [head, tail)
                start, room = head, tail - head
            elif self.size - head >= n:  # free is [head, size) and [0, tail)
                start, room = head, self.size - head
            else:
                start, room = 0, tail
        if n > room:
            return None
        self.mem[start : start + n] = data
        regions.append((start, start + n, next_id))
        return start

    def release(self, answered_before: int) -> None:
        """Free the batches whose calls are all answered (ids below ``answered_before``)."""
        regions = self.regions
        while regions and regions[0][2] <= answered_before:
            regions.popleft()


class StartupFailed(Exception):
    def __init__(self, info: F.ErrorInfo) -> None:
        super().__init__(info.message)
        self.info = info


class WorkerProcess:
    """Parent-side handle of one worker process and its channels."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        cmd_fd: int,
        res_fd: int,
        log_fd: int,
        slot_map: mmap.mmap,
        inbox: Inbox,
        private_dir: Path | None,
        sandboxed: bool,
        init_timeout: float,
        uid_lease: UidLease | None = None,
        stops_when_ready: bool = False,
    ) -> None:
        self.popen = popen
        self.pid = popen.pid  # bubblewrap's pid under full isolation, else the worker's
        self.guest_pid: int | None = None  # the worker interpreter's own (host) pid
        self.uid_lease = uid_lease
        self.stops_when_ready = stops_when_ready
        self.frozen = False
        self.cmd_fd = cmd_fd
        self.res_fd = res_fd
        self.log_fd = log_fd
        self.slot_map = slot_map
        self.slot = memoryview(slot_map).cast("q")
        self.inbox = inbox
        self.private_dir = private_dir
        self.sandboxed = sandboxed
        self.init_timeout = init_timeout
        self.ready_deadline = time.monotonic() + init_timeout
        self.reader = F.FrameReader()
        self.ready = False
        self.next_id = 1
        self.killed = False
        self.outbuf = bytearray()
        self.poller = select.poll()
        self.poller.register(res_fd, select.POLLIN)
        self.want_write = False

    # -- lifecycle -------------------------------------------------------------------------

    def kill(self) -> None:
        """SIGKILL the worker's whole process group (the worker is its session leader).

        Never after the leader was reaped: its pid could have been reused by then.
        """
        if self.killed or self.popen.returncode is not None:
            self.killed = True
            return
        self.killed = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(self.pid, signal.SIGKILL)

    def exit_description(self, wait_s: float = 2.0) -> tuple[str, str]:
        """(errorType, message) describing how the process ended; kills it if it lingers.

        Waits for the exit *without reaping* (``WNOWAIT``) so that anything the function
        spawned can still be killed by process group before the leader's pid is released.
        """
        deadline = time.monotonic() + wait_s
        exited = False
        while True:
            try:
                exited = (
                    os.waitid(os.P_PID, self.pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is not None
                )
            except ChildProcessError:
                exited = True
            if exited or time.monotonic() >= deadline:
                break
            time.sleep(0.001)
        self.kill()
        rc = self.popen.wait()
        if not exited:
            return (
                E.PROTOCOL_ERROR,
                "Runtime closed its result channel without exiting; the worker was killed",
            )
        sig = -rc if rc < 0 else (rc - 128 if self.sandboxed and rc > 128 else 0)
        if sig:
            try:
                name = signal.Signals(sig).name
                text = (signal.strsignal(sig) or name).lower()
            except ValueError:
                name, text = f"signal {sig}", f"signal {sig}"
            return E.EXIT_ERROR, f"Runtime exited with error: signal: {text} ({name})"
        return E.EXIT_ERROR, f"Runtime exited with error: exit status {rc}"

    def log_tail(self, cap: int) -> str:
        """The raw stdout/stderr the worker left in its memfd (e.g. a segfault traceback)."""
        try:
            size = os.fstat(self.log_fd).st_size
            start = max(0, size - cap)
            data = os.pread(self.log_fd, size - start, start) if size else b""
        except OSError:
            return ""
        text = data.decode("utf-8", "replace")
        return f"[... {start} bytes truncated ...]\n{text}" if start else text

    def cleanup(self) -> None:
        self.kill()
        with contextlib.suppress(Exception):
            self.popen.wait(timeout=5)
        for fd in (self.cmd_fd, self.res_fd, self.log_fd):
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(Exception):
            self.slot.release()
            self.slot_map.close()
        with contextlib.suppress(Exception):
            self.inbox.mem.close()
        if self.private_dir is not None:
            shutil.rmtree(self.private_dir, ignore_errors=True)
        if self.uid_lease is not None:
            # Outside a PID namespace a leftover of this uid could still exist (its tree was
            # killed by process group only): end them before the uid is handed out again.
            if not self.sandboxed:
                kill_all_processes_of(self.uid_lease.uid)
            self.uid_lease.release()
            self.uid_lease = None

    # -- freezing between calls -------------------------------------------------------------

    def freeze(self) -> None:
        """Stop every thread of the worker until ``thaw`` (nothing runs between batches)."""
        if self.guest_pid is not None and not self.frozen and not self.killed:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.guest_pid, signal.SIGSTOP)
            self.frozen = True

    def thaw(self) -> None:
        if self.frozen and not self.killed and self.guest_pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.guest_pid, signal.SIGCONT)
        self.frozen = False

    def _settle_stopped(self) -> None:
        """After ``Hello`` the worker stops itself; wait until it has, so that a later SIGCONT
        cannot arrive before that SIGSTOP (and leave it stopped with work queued)."""
        self.guest_pid = guest_pid(self.pid)
        if not self.stops_when_ready:
            return
        while self.ready_deadline - time.monotonic() > 0:
            state = process_state(self.guest_pid)
            if state in ("T", "t"):
                self.frozen = True
                return
            if state in (None, "Z", "X"):
                break
            time.sleep(0.0002)
        raise StartupFailed(
            F.ErrorInfo(E.SANDBOX_ERROR, "worker did not pause itself after start-up")
        )

    # -- channels --------------------------------------------------------------------------

    def send_batch(self, encoder: F.FrameEncoder, events: bytes, count: int) -> bool:
        """Hand ``count`` encoded events to the worker as calls ``next_id`` on (resuming it if
        frozen); False if its inbox has no room for them until earlier batches are answered.
        A batch larger than the whole inbox travels inline on the command pipe."""
        first = self.next_id
        if len(events) > self.inbox.size:
            batch = F.Batch(first, events=msgspec.Raw(events))
        else:
            offset = self.inbox.place(events, first + count)
            if offset is None:
                return False
            batch = F.Batch(first, offset, len(events))
        self.next_id = first + count
        if self.frozen:
            self.thaw()
        self.queue_frame(encoder.encode(batch))
        return True

    def queue_frame(self, frame: bytearray) -> None:
        if not self.outbuf:
            # Common case: the pipe has room; write without copying into the buffer first.
            try:
                n = os.write(self.cmd_fd, frame)
            except BlockingIOError:
                n = 0
            except OSError:
                return  # the worker is gone; its EOF on res_fd reports it
            if n == len(frame):
                return
            del frame[:n]
        self.outbuf += frame
        self.flush_out()

    def flush_out(self) -> None:
        """Write as much pending command data as the pipe takes without blocking."""
        while self.outbuf:
            try:
                n = os.write(self.cmd_fd, self.outbuf)
            except BlockingIOError:
                break
            except (BrokenPipeError, OSError):
                self.outbuf.clear()  # the worker is gone; its EOF on res_fd reports it
                break
            del self.outbuf[:n]
        want = bool(self.outbuf)
        if want != self.want_write:
            self.want_write = want
            if want:
                self.poller.register(self.cmd_fd, select.POLLOUT)
            else:
                self.poller.unregister(self.cmd_fd)

    def wait_ready(self, decoder: msgspec.msgpack.Decoder[Any]) -> None:
        """Block until the worker's ``Hello``; raise ``StartupFailed`` if it never comes."""
        while not self.ready:
            remaining = self.ready_deadline - time.monotonic()
            events = self.poller.poll(max(0, int(remaining * 1000)) if remaining > 0 else 0)
            if self.want_write:
                self.flush_out()  # the Init frame, if the pipe did not take it at once
            r = [fd for fd, _ in events if fd == self.res_fd]
            if not r and remaining <= 0:
                raise StartupFailed(
                    F.ErrorInfo(
                        E.TIMEOUT,
                        "Init phase timed out: the handler was not imported within "
                        f"{self.init_timeout:.2f} seconds",
                        [self.log_tail(8192)],
                    )
                )
            if not r:
                continue
            data = os.read(self.res_fd, READ_SIZE)
            if not data:
                _etype, msg = self.exit_description()
                raise StartupFailed(
                    F.ErrorInfo(
                        E.SANDBOX_ERROR,
                        f"worker failed to start: {msg}",
                        [self.log_tail(8192)],
                    )
                )
            for frame in self.reader.feed(data):
                hello = decoder.decode(frame)
                if not isinstance(hello, F.Hello):
                    raise StartupFailed(
                        F.ErrorInfo(E.PROTOCOL_ERROR, "worker sent results before Hello")
                    )
                if hello.error is not None:
                    raise StartupFailed(hello.error)
                self._settle_stopped()
                self.ready = True


class WorkerLost(Exception):
    """A worker was lost while running calls (timeout, crash, protocol violation)."""

    def __init__(self, kind: str, culprit: int | None, detail: str = "") -> None:
        super().__init__(kind)
        self.kind = kind
        self.culprit = culprit
        self.detail = detail
