"""Worker entry: read ``Init``, confine itself, import the handler, then serve batches.

Channels:
- fd CMD (read): frames from the parent -- one ``Init``, then ``Batch`` frames.
- fd RES (write): frames to the parent -- one ``Hello``, then ``Results`` frames.
- fd INBOX: shared memory (read-only here) holding the encoded events of each ``Batch``.
- fd SLOT: a shared 16-byte memfd. Before each call the worker stores the call's start time and
  id there; the parent reads it to enforce per-call deadlines without a per-call message.
- fd 1/2: a memfd owned by the parent. ``print``/``sys.stdout`` writes are captured in memory per
  call; anything written to the raw descriptors (C extensions, ``os.write``, ``faulthandler``)
  lands in the memfd, is attached to the current call and truncated. After a crash the parent
  reads the memfd itself, which is how a segfault's traceback reaches the caller.

Nothing user code prints can reach CMD/RES, so it cannot corrupt the protocol by accident; code
that deliberately writes garbage to RES is detected by the parent, which kills the worker.
"""

from __future__ import annotations

import contextlib
import gc
import mmap
import os
import signal
import sys
import traceback

from . import frames
from .capture import Capture, TextStream, drain_fd_output
from .children import kill_leftovers
from .confine import confine
from .context import LambdaContext
from .handler import import_handler
from .loop import read_frame, run_batches, write_all
from .marshal import error, safe_str


def serve(cmd_fd: int, res_fd: int, slot_fd: int, inbox_fd: int) -> None:
    """Run until the parent closes the command pipe. Never returns normally (exits the process)."""
    cmd = open(cmd_fd, "rb", buffering=1 << 16)  # noqa: SIM115 - lives for the process
    to_worker = frames.decoder_to_worker()
    encoder = frames.FrameEncoder()
    first = read_frame(cmd)
    if first is None:
        os._exit(0)
    init = to_worker.decode(first)
    if not isinstance(init, frames.Init):
        raise frames.FrameError("first frame must be Init")
    try:
        confine(init)
    except Exception as exc:  # never run user code half-confined
        failure = error("Runtime.SandboxError", f"could not confine the worker: {safe_str(exc)}")
        write_all(res_fd, encoder.encode(frames.Hello(os.getpid(), failure)))
        os._exit(0)

    slot_map = mmap.mmap(slot_fd, 16)
    slot = memoryview(slot_map).cast("q")
    inbox = memoryview(mmap.mmap(inbox_fd, 0, prot=mmap.PROT_READ))

    # fd 1 and 2 share one memfd; keep a private descriptor to it for draining.
    cap_fd = os.dup(1)
    with contextlib.suppress(OSError):
        import fcntl

        fcntl.fcntl(1, fcntl.F_SETFL, fcntl.fcntl(1, fcntl.F_GETFL) | os.O_APPEND)
    import faulthandler

    faulthandler.enable(file=sys.__stderr__, all_threads=True)
    os.environ.setdefault("LAMBDA_TASK_ROOT", init.code_dir)

    LambdaContext.function_name = init.function_name
    LambdaContext.function_version = init.version
    LambdaContext.invoked_function_arn = init.function_arn
    LambdaContext.memory_limit_in_mb = str(init.memory_mb)
    LambdaContext.log_group_name = f"/aws/lambda/{init.function_name}"

    capture = Capture(init.log_cap)
    sys.stdout = TextStream(capture, 1, "<stdout>")
    sys.stderr = TextStream(capture, 2, "<stderr>")

    func, init_error = import_handler(init)
    kill_leftovers()  # processes started by the import do not outlive it either
    if init_error is not None:
        boot_log = capture.take() + drain_fd_output(cap_fd, init.log_cap)
        if boot_log:
            init_error.stack.append(f"captured output during import:\n{boot_log}")
        write_all(res_fd, encoder.encode(frames.Hello(os.getpid(), init_error)))
        os._exit(0)
    capture.take()
    drain_fd_output(cap_fd, init.log_cap)
    # Everything imported so far (the handler's module state, models, tables) lives as long as
    # the worker: move it out of the collector's way, and collect the young generation less
    # often -- each call allocates a few containers (event, result) that die young anyway.
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, *gc.get_threshold()[1:])
    write_all(res_fd, encoder.encode(frames.Hello(os.getpid(), None)))
    if init.stop_when_ready:
        # Frozen (every thread) until the parent sends work: code started by the import does
        # not run while the worker waits, as a spare or between batches.
        os.kill(os.getpid(), signal.SIGSTOP)

    run_batches(cmd, res_fd, cap_fd, slot, inbox, init, func, to_worker, encoder, capture)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "--fds" or args[1].count(",") != 3:
        sys.__stderr__.write("usage: worker.py --fds CMD,RES,SLOT,INBOX\n")
        os._exit(2)
    cmd_fd, res_fd, slot_fd, inbox_fd = (int(x) for x in args[1].split(","))
    try:
        serve(cmd_fd, res_fd, slot_fd, inbox_fd)
    except BaseException:
        traceback.print_exc(file=sys.__stderr__)
        os._exit(70)
