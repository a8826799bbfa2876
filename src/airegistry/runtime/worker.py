"""Child side of the function runtime: import a Lambda handler once, then run batches of events.

Started by :mod:`airegistry.runtime.pool` as ``python -I -B worker.py --fds CMD,RES,SLOT`` (by
file path, so the child never imports the rest of ``airegistry``: less attack surface, faster
start). Also runnable as ``python -I -m airegistry.runtime.worker``.

Channels:
- fd CMD (read): frames from the parent -- one ``Init``, then ``Batch`` frames.
- fd RES (write): frames to the parent -- one ``Hello``, then ``Results`` frames.
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
import importlib
import io
import mmap
import os
import resource
import signal
import sys
import time
import traceback
import uuid
from typing import Any

if __package__:
    from . import frames as _frames
else:  # run by path: load the sibling module without importing the airegistry package
    import importlib.util as _ilu

    _spec = _ilu.spec_from_file_location(
        "_airegistry_runtime_frames", os.path.join(os.path.dirname(__file__), "frames.py")
    )
    assert _spec is not None and _spec.loader is not None
    _frames = _ilu.module_from_spec(_spec)
    sys.modules[_spec.name] = _frames
    _spec.loader.exec_module(_frames)

# Flush pending results to the parent at least this often while a batch runs, so results of
# finished calls survive a later call that hangs or crashes (they would otherwise be re-run).
_FLUSH_BYTES = 1 << 20
_PR_SET_PDEATHSIG = 1
_NOBODY = 65534
_NPROC_LIMIT = 1024


# ------------------------------------------------------------------------------------ capture


class _Capture:
    """Keeps the tail of one call's text output, bounded by ``cap`` characters."""

    __slots__ = ("cap", "dropped", "parts", "size")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.parts: list[str] = []
        self.size = 0
        self.dropped = 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        if self.size > 2 * self.cap + 4096:
            joined = "".join(self.parts)
            keep = joined[-self.cap :]
            self.dropped += len(joined) - len(keep)
            self.parts[:] = [keep]  # in place: the run loop holds a reference to this list
            self.size = len(keep)

    def take(self) -> str:
        if not self.parts:
            return ""
        text = "".join(self.parts)
        if len(text) > self.cap:
            self.dropped += len(text) - self.cap
            text = text[-self.cap :]
        if len(text) * 4 > self.cap:  # the cap is in bytes; non-ASCII text may exceed it
            data = text.encode("utf-8", "replace")
            if len(data) > self.cap:
                kept = data[-self.cap :].decode("utf-8", "ignore")
                self.dropped += len(text) - len(kept)
                text = kept
        if self.dropped:
            text = f"[... {self.dropped} characters of output truncated ...]\n{text}"
        self.parts.clear()
        self.size = 0
        self.dropped = 0
        return text


class _BinaryStream(io.RawIOBase):
    """``sys.stdout.buffer`` stand-in: bytes are decoded and captured like text."""

    def __init__(self, capture: _Capture, fd: int) -> None:
        super().__init__()
        self._capture = capture
        self._fd = fd

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        raw = bytes(data)
        self._capture.add(raw.decode("utf-8", "replace"))
        return len(raw)

    def fileno(self) -> int:
        return self._fd


class _TextStream(io.TextIOBase):
    """``sys.stdout``/``sys.stderr`` replacement: no syscalls per ``print``, capped per call."""

    encoding = "utf-8"
    errors = "replace"

    def __init__(self, capture: _Capture, fd: int, name: str) -> None:
        super().__init__()
        self._capture = capture
        self._fd = fd
        self._name = name
        self._buffer = _BinaryStream(capture, fd)

    @property
    def buffer(self) -> _BinaryStream:  # type: ignore[override]
        return self._buffer

    @property
    def name(self) -> str:
        return self._name

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        self._capture.add(s)
        return len(s)

    def flush(self) -> None:
        return None

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._fd


def _drain_fd_output(fd: int, cap: int) -> str:
    """Return (the tail of) what was written to the raw stdout/stderr memfd, then empty it."""
    size = os.fstat(fd).st_size
    if not size:
        return ""
    start = max(0, size - cap)
    data = os.pread(fd, size - start, start)
    os.ftruncate(fd, 0)
    text = data.decode("utf-8", "replace")
    if start:
        text = f"[... {start} bytes of output truncated ...]\n{text}"
    return text


# ------------------------------------------------------------------------------------ context


class LambdaContext:
    """The ``context`` argument, shaped like AWS Lambda's Python runtime object.

    Function-level attributes are class attributes set once at import time, so building one per
    call costs a single small allocation. ``memory_limit_in_mb`` is a string, as in Lambda.
    """

    __slots__ = ("_deadline_ns", "_request_id")

    function_name = "function"
    function_version = "$LATEST"
    invoked_function_arn = ""
    memory_limit_in_mb = "1024"
    log_group_name = "/aws/lambda/function"
    log_stream_name = "airegistry/worker"
    identity = None
    client_context = None

    def __init__(self, deadline_ns: int) -> None:
        self._deadline_ns = deadline_ns

    @property
    def aws_request_id(self) -> str:
        # Generated lazily: most reward functions never look at it.
        try:
            return self._request_id
        except AttributeError:
            self._request_id: str = str(uuid.uuid4())
            return self._request_id

    def get_remaining_time_in_millis(self) -> int:
        return max(0, (self._deadline_ns - time.monotonic_ns()) // 1_000_000)


# ------------------------------------------------------------------------------------ marshal


class _NotJSON(TypeError):
    pass


def _json_key(key: Any) -> str:
    """Convert a non-str dict key the way ``json.dumps`` does, or reject it."""
    if key is True or key is False or key is None:
        return {True: "true", False: "false", None: "null"}[key]
    if isinstance(key, int):
        return int.__repr__(key)
    if isinstance(key, float):
        return float.__repr__(key)
    if isinstance(key, str):
        return str.__str__(key)
    raise _NotJSON(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def _jsonable(value: Any, depth: int = 0) -> Any:
    """Check (and normalise, like ``json.dumps``) a handler's return value.

    Lambda serialises responses with ``json.dumps``; anything it would reject (sets, bytes,
    custom objects, ...) is a ``Runtime.MarshalError`` here too. NaN/Infinity are accepted, as
    ``json.dumps`` does, so a reward validator downstream sees them. Subclasses are reduced to
    their base type via the base type's own methods -- no user-defined method is called.
    """
    t = type(value)
    if t is str or t is int or t is float or t is bool or value is None:
        return value
    if depth > 200:
        raise _NotJSON("Circular reference detected or nesting deeper than 200 levels")
    if isinstance(value, dict):
        changed = t is not dict
        pairs = []
        for k, v in dict.items(value):
            key = k if type(k) is str else _json_key(k)
            nv = _jsonable(v, depth + 1)
            if key is not k or nv is not v:
                changed = True
            pairs.append((key, nv))
        return dict(pairs) if changed else value
    if isinstance(value, (list, tuple)):
        changed = t is not list
        items = []
        for v in list.__iter__(value) if isinstance(value, list) else tuple.__iter__(value):
            nv = _jsonable(v, depth + 1)
            if nv is not v:
                changed = True
            items.append(nv)
        return items if changed else value
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)
    raise _NotJSON(f"Object of type {t.__name__} is not JSON serializable")


# ------------------------------------------------------------------------------------ errors


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<unprintable {type(exc).__name__}>"


def _stack(exc: BaseException, skip: int = 1) -> list[str]:
    """Lambda-style ``stackTrace``: one formatted entry per user frame (our frames dropped)."""
    try:
        tb = exc.__traceback__
        for _ in range(skip):
            if tb is not None:
                tb = tb.tb_next
        return traceback.format_list(traceback.extract_tb(tb))
    except Exception:
        return []


def _error(error_type: str, message: str, stack: list[str] | None = None) -> _frames.ErrorInfo:
    return _frames.ErrorInfo(error_type, message, stack or [])


def _describe(exc: BaseException, memory_mb: int) -> _frames.ErrorInfo:
    if isinstance(exc, SystemExit):
        code = exc.code
        status = code if isinstance(code, int) else (0 if code is None else 1)
        return _error(
            "Runtime.ExitError",
            f"Runtime exited with error: exit status {status} (sys.exit called in handler)",
            _stack(exc),
        )
    if isinstance(exc, MemoryError):
        detail = _safe_str(exc) or "out of memory"
        return _error(
            "MemoryError",
            f"{detail} (the function's memory limit is {memory_mb} MB)",
            _stack(exc),
        )
    return _error(type(exc).__name__, _safe_str(exc), _stack(exc))


# ------------------------------------------------------------------------------------ io


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_frame(stream: io.BufferedReader) -> bytes | None:
    header = stream.read(_frames.HEADER_SIZE)
    if not header:
        return None
    if len(header) < _frames.HEADER_SIZE:
        raise _frames.FrameError("EOF inside a frame header")
    (size,) = _frames.HEADER.unpack(header)
    body = stream.read(size)
    if len(body) < size:
        raise _frames.FrameError("EOF inside a frame body")
    return body


# ------------------------------------------------------------------------------------ setup


def _die_with_parent(parent_pid: int) -> None:
    """Get SIGKILL when the parent goes away; exit now if it already has (race-free check)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:  # not Linux or no libc symbol: the parent's pipe EOF still ends us
        pass
    if parent_pid and os.getppid() != parent_pid:
        os._exit(0)


def _apply_limits(init: _frames.Init) -> None:
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
    if os.getuid() == _NOBODY:
        # Only for the dedicated sandbox uid: for a developer's own uid the count would include
        # their whole session. Stops fork bombs; generous enough for BLAS thread pools.
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NPROC, (_NPROC_LIMIT, _NPROC_LIMIT))
    # Writes past RLIMIT_FSIZE fail with EFBIG instead of killing the worker.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def _import_handler(init: _frames.Init) -> tuple[Any, _frames.ErrorInfo | None]:
    """Import ``module.function`` the way Lambda's Python runtime does, with its error names."""
    handler = init.handler
    modname, _, fname = handler.rpartition(".")
    if not modname or not fname:
        return None, _error(
            "Runtime.MalformedHandlerName",
            f"Bad handler '{handler}': expected 'module.function'",
        )
    if not os.access(init.code_dir, os.R_OK | os.X_OK):
        return None, _error(
            "Runtime.SandboxError",
            f"code directory {init.code_dir} is not readable inside the sandbox "
            f"(uid {os.getuid()}); make the deployment package world-readable",
        )
    sys.path.insert(0, init.code_dir)
    try:
        module = importlib.import_module(modname.replace("/", "."))
    except SyntaxError as exc:
        trace = [f'  File "{exc.filename}" Line {exc.lineno}\n    {(exc.text or "").rstrip()}\n']
        return None, _error(
            "Runtime.UserCodeSyntaxError",
            f"Syntax error in module '{modname}': {_safe_str(exc)}",
            trace,
        )
    except ImportError as exc:
        return None, _error(
            "Runtime.ImportModuleError",
            f"Unable to import module '{modname}': {_safe_str(exc)}",
            _stack(exc),
        )
    except BaseException as exc:
        err = _describe(exc, init.memory_mb)
        return None, err
    func = getattr(module, fname, None)
    if func is None:
        return None, _error(
            "Runtime.HandlerNotFound", f"Handler '{fname}' missing on module '{modname}'"
        )
    if not callable(func):
        return None, _error(
            "Runtime.HandlerNotFound",
            f"Handler '{fname}' on module '{modname}' is not callable "
            f"(it is a {type(func).__name__})",
        )
    return func, None


# ------------------------------------------------------------------------------------ main


def serve(cmd_fd: int, res_fd: int, slot_fd: int) -> None:
    """Run until the parent closes the command pipe. Never returns normally (exits the process)."""
    cmd = open(cmd_fd, "rb", buffering=1 << 16)  # noqa: SIM115 - lives for the process
    to_worker = _frames.decoder_to_worker()
    first = _read_frame(cmd)
    if first is None:
        os._exit(0)
    init = to_worker.decode(first)
    if not isinstance(init, _frames.Init):
        raise _frames.FrameError("first frame must be Init")
    if init.parent_pid:  # under bubblewrap, --die-with-parent already covers this
        _die_with_parent(init.parent_pid)

    slot_map = mmap.mmap(slot_fd, 16)
    slot = memoryview(slot_map).cast("q")

    # fd 1 and 2 share one memfd; keep a private descriptor to it for draining.
    cap_fd = os.dup(1)
    with contextlib.suppress(OSError):
        import fcntl

        fcntl.fcntl(1, fcntl.F_SETFL, fcntl.fcntl(1, fcntl.F_GETFL) | os.O_APPEND)
    import faulthandler

    faulthandler.enable(file=sys.__stderr__, all_threads=True)

    _apply_limits(init)
    os.environ.setdefault("LAMBDA_TASK_ROOT", init.code_dir)

    LambdaContext.function_name = init.function_name
    LambdaContext.function_version = init.version
    LambdaContext.invoked_function_arn = init.function_arn
    LambdaContext.memory_limit_in_mb = str(init.memory_mb)
    LambdaContext.log_group_name = f"/aws/lambda/{init.function_name}"

    capture = _Capture(init.log_cap)
    sys.stdout = _TextStream(capture, 1, "<stdout>")
    sys.stderr = _TextStream(capture, 2, "<stderr>")

    encoder = _frames.FrameEncoder()
    func, init_error = _import_handler(init)
    if init_error is not None:
        boot_log = capture.take() + _drain_fd_output(cap_fd, init.log_cap)
        if boot_log:
            init_error.stack.append(f"captured output during import:\n{boot_log}")
        _write_all(res_fd, encoder.encode(_frames.Hello(os.getpid(), init_error)))
        os._exit(0)
    capture.take()
    _drain_fd_output(cap_fd, init.log_cap)
    # Everything imported so far (the handler's module state, models, tables) lives as long as
    # the worker: move it out of the collector's way, and collect the young generation less
    # often -- each call allocates a few containers (event, result) that die young anyway.
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, *gc.get_threshold()[1:])
    _write_all(res_fd, encoder.encode(_frames.Hello(os.getpid(), None)))

    _run_batches(cmd, res_fd, cap_fd, slot, init, func, to_worker, encoder, capture)


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _marshal(out: Any) -> Any:
    """Fast path of :func:`_jsonable` for the usual reward dict of scalars."""
    t = type(out)
    if t is dict:
        for k, v in out.items():
            if type(k) is not str or type(v) not in _SCALARS:
                return _jsonable(out)
        return out
    if t in _SCALARS:
        return out
    return _jsonable(out)


class _Emitter:
    """Sends results to the parent, splitting frames and isolating bad payloads."""

    def __init__(self, res_fd: int, cap_fd: int, log_cap: int, encoder: Any) -> None:
        self.res_fd = res_fd
        self.cap_fd = cap_fd
        self.log_cap = log_cap
        self.encoder = encoder
        # Raw-fd output is rare; until a function produces some, it is looked for once per
        # flush instead of once per call (an fstat per call costs more than a fast handler).
        self.precise_fd_logs = False

    def emit(self, first_id: int, pending: list[dict[str, Any]]) -> None:
        if not self.precise_fd_logs and os.fstat(self.cap_fd).st_size:
            extra = _drain_fd_output(self.cap_fd, self.log_cap)
            if len(pending) > 1:
                extra = (
                    f"[output written straight to fd 1/2 by one of the last {len(pending)} "
                    f"calls]\n{extra}"
                )
            pending[-1]["logs"] += extra
            self.precise_fd_logs = True
        self._send(first_id, pending)

    def _send(self, first_id: int, pending: list[dict[str, Any]]) -> None:
        """Write results; a frame over Lambda's response limit is split down to single results
        so only an oversized (or unencodable) payload itself fails."""
        limit = _frames.MAX_RESPONSE_BYTES
        try:
            frame: bytearray | None = self.encoder.encode(("results", first_id, pending))
        except (TypeError, ValueError, OverflowError, MemoryError, RecursionError):
            frame = None
        if frame is not None and len(frame) <= limit:
            _write_all(self.res_fd, frame)
            return
        if len(pending) > 1:
            half = len(pending) // 2
            self._send(first_id, pending[:half])
            self._send(first_id + half, pending[half:])
            return
        item = pending[0]
        try:
            size = len(self.encoder.encode_value(item["payload"]))
        except (TypeError, ValueError, OverflowError, MemoryError, RecursionError) as exc:
            error = _error("Runtime.MarshalError", f"Unable to marshal response: {_safe_str(exc)}")
        else:
            if frame is not None and size <= limit:
                _write_all(self.res_fd, frame)  # payload fits; the logs made the frame big
                return
            error = _error(
                "Function.ResponseSizeTooLarge",
                f"Response payload size ({size} bytes) exceeded maximum allowed payload "
                f"size ({limit} bytes).",
            )
        failed = {**item, "ok": False, "payload": error.as_payload()}
        _write_all(self.res_fd, self.encoder.encode(("results", first_id, [failed])))


def _run_batches(
    cmd: io.BufferedReader,
    res_fd: int,
    cap_fd: int,
    slot: memoryview,
    init: _frames.Init,
    func: Any,
    to_worker: Any,
    encoder: _frames.FrameEncoder,
    capture: _Capture,
) -> None:
    timeout_ns = init.timeout_ms * 1_000_000
    flush_ns = init.flush_interval_us * 1000
    log_cap = init.log_cap
    memory_mb = init.memory_mb
    monotonic_ns = time.monotonic_ns
    fstat = os.fstat
    Ctx = LambdaContext
    new_ctx = object.__new__  # skips the Python-level __init__: a hot path for fast handlers
    emitter = _Emitter(res_fd, cap_fd, log_cap, encoder)
    marshal_errors = (_NotJSON, TypeError, ValueError, RecursionError)
    parts = capture.parts  # cleared in place by take(), so this stays the live list
    take = capture.take
    precise = emitter.precise_fd_logs

    while True:
        frame = _read_frame(cmd)
        if frame is None:
            os._exit(0)
        batch = to_worker.decode(frame)
        cid = first = batch.first_id
        pending: list[dict[str, Any]] = []
        pending_bytes = 0
        last_flush = monotonic_ns()
        for event in batch.events:
            t0 = monotonic_ns()
            slot[1] = t0
            slot[0] = cid
            ok = True
            ctx = new_ctx(Ctx)
            ctx._deadline_ns = t0 + timeout_ns
            try:
                out = func(event, ctx)
            except BaseException as exc:
                ok = False
                out = _describe(exc, memory_mb).as_payload()
            else:
                try:
                    out = _marshal(out)
                except marshal_errors as exc:
                    ok = False
                    out = _error(
                        "Runtime.MarshalError", f"Unable to marshal response: {_safe_str(exc)}"
                    ).as_payload()
            end = monotonic_ns()
            slot[0] = 0
            logs = take() if parts else ""
            if precise and fstat(cap_fd).st_size:
                extra = _drain_fd_output(cap_fd, log_cap)
                logs = f"{logs}{extra}" if logs else extra
            pending.append(
                {"ok": ok, "payload": out, "duration_ms": (end - t0) / 1e6, "logs": logs}
            )
            cid += 1
            if logs:
                pending_bytes += len(logs)
            if end - last_flush >= flush_ns or pending_bytes >= _FLUSH_BYTES:
                emitter.emit(first, pending)
                precise = emitter.precise_fd_logs
                first = cid
                pending = []
                pending_bytes = 0
                last_flush = monotonic_ns()
        if pending:
            emitter.emit(first, pending)
            precise = emitter.precise_fd_logs


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "--fds":
        sys.__stderr__.write("usage: worker.py --fds CMD,RES,SLOT\n")
        os._exit(2)
    cmd_fd, res_fd, slot_fd = (int(x) for x in args[1].split(","))
    try:
        serve(cmd_fd, res_fd, slot_fd)
    except BaseException:
        traceback.print_exc(file=sys.__stderr__)
        os._exit(70)


if __name__ == "__main__":
    main()
