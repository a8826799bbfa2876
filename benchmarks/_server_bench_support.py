"""Machinery for ``bench_server.py``: subprocess servers, load generators, RSS sampling.

Kept apart from the benchmark's scenario so the scenario file reads as "what is measured
and against which anchor", and this file as "how it is measured". Nothing here asserts a
time; it only measures and hands numbers back.
"""

from __future__ import annotations

import contextlib
import http.client
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REGION = "us-east-1"


# -- subprocess servers -------------------------------------------------------------------


def free_port() -> int:
    """A port nobody listens on right now (the usual bind-to-0 trick; racy but adequate)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """One server started by the benchmark, in its own session so its workers die with it."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM the server's process group, SIGKILL it if it has not gone after ``grace_s``.

        The group is the one ``start_new_session`` created for this very process, so only
        processes this benchmark started are signalled.
        """
        if self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


class ServerStartError(RuntimeError):
    pass


def start_server(name: str, argv: Sequence[str], port: int, log_dir: Path, *,
                 ready_path: str = "/", env: dict[str, str] | None = None,
                 timeout_s: float = 60.0) -> ServerProcess:
    """Start ``argv`` and wait until it answers HTTP on ``port`` (any status counts)."""
    log_path = log_dir / f"{name}.log"
    log = log_path.open("wb")
    try:
        proc = subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env={**os.environ, **(env or {})})
    finally:
        log.close()
    server = ServerProcess(name, port, proc, log_path)
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ServerStartError(
                    f"{name} exited with status {proc.returncode} while starting:\n"
                    f"{server.log_tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", ready_path)
                conn.getresponse().read()
                conn.close()
                return server
            except OSError:
                time.sleep(0.1)
        raise ServerStartError(f"{name} did not answer on port {port} within {timeout_s:.0f} s:"
                               f"\n{server.log_tail()}")
    except BaseException:
        # not yet handed to the caller, so nobody else would stop it (Ctrl-C lands here too)
        server.stop()
        raise


@contextlib.contextmanager
def managed_servers() -> Iterator[list[ServerProcess]]:
    """Every server appended to the yielded list is stopped on exit, whatever happened."""
    servers: list[ServerProcess] = []
    try:
        yield servers
    finally:
        for server in reversed(servers):
            with contextlib.suppress(Exception):
                server.stop()


# -- boto3 clients --------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """What a client needs to reach one server; picklable for client processes."""

    name: str
    url: str
    key_id: str
    secret: str


def make_client(endpoint: Endpoint, service: str, *, pool: int = 10) -> Any:
    """A boto3 client with retries off: a failed request must count as failed, not be hidden."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"total_max_attempts": 1}, max_pool_connections=pool,
                    s3={"addressing_style": "path"}, connect_timeout=10, read_timeout=120)
    session = boto3.session.Session()
    return session.client(service, endpoint_url=endpoint.url, region_name=REGION,
                          aws_access_key_id=endpoint.key_id,
                          aws_secret_access_key=endpoint.secret, config=config)


# -- load generation ----------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One SageMaker call: method name, parameters, and the response member that must exist."""

    method: str
    params: dict[str, Any]
    expect: str
    expect_len: int | None = None  # for list pages: how many items the page must hold


@dataclass
class LoadResult:
    clients: int
    duration_s: float
    requests: int
    errors: int
    latencies_s: list[float] = field(default_factory=list)
    first_error: str | None = None
    #: CPU seconds (user + system) the server's process tree spent during the window.
    server_cpu_s: float | None = None

    @property
    def server_cpu_ms_per_request(self) -> float | None:
        if self.server_cpu_s is None or not self.requests:
            return None
        return self.server_cpu_s / self.requests * 1000

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    def percentile_ms(self, q: float) -> float:
        if not self.latencies_s:
            return float("nan")
        data = sorted(self.latencies_s)
        # nearest-rank percentile: p99 of 100 samples is the 99th, not an interpolation
        rank = max(1, min(len(data), int(-(-q * len(data) // 100))))
        return data[rank - 1] * 1000


def _check(call: Call, response: dict[str, Any]) -> None:
    if call.expect not in response:
        raise AssertionError(f"{call.method} response lacks {call.expect}")
    if call.expect_len is not None and len(response[call.expect]) != call.expect_len:
        raise AssertionError(f"{call.method} returned {len(response[call.expect])} items, "
                             f"expected {call.expect_len}")


def _client_loop(endpoint: Endpoint, call: Call, warmup: int, window: Any, go: Any,
                 out: Any) -> None:
    """Body of one load-generating client process: own boto3 client, closed-loop requests.

    Reports "ready" after building its client and warming up (botocore loads the large
    SageMaker model per session, which takes seconds on a loaded machine), then waits for
    the parent to open the shared measurement window.
    """
    latencies: list[float] = []
    errors = 0
    first_error: str | None = None
    try:
        client = make_client(endpoint, "sagemaker")
        method = getattr(client, call.method)
        for _ in range(warmup):
            _check(call, method(**call.params))
    except Exception as exc:
        out.put(("ready", os.getpid()))
        out.put(("done", [], 1, f"warm-up: {type(exc).__name__}: {exc}"))
        return
    out.put(("ready", os.getpid()))
    go.wait()
    start_at, end_at = window[0], window[1]
    while time.time() < start_at:
        time.sleep(0.0005)
    perf = time.perf_counter
    while time.time() < end_at:
        t0 = perf()
        try:
            response = method(**call.params)
            _check(call, response)
        except Exception as exc:
            errors += 1
            first_error = first_error or f"{type(exc).__name__}: {exc}"
            continue
        latencies.append(perf() - t0)
    out.put(("done", latencies, errors, first_error))


def tree_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process and its children (None if it is gone).

    Unlike wall-clock rates this barely moves when other work shares the machine, so it is
    the steadier measure of what one request costs the server.
    """
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0.0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def run_load(endpoint: Endpoint, call: Call, *, clients: int, duration_s: float,
             warmup: int = 5, ready_timeout_s: float = 120.0,
             server_pid: int | None = None) -> LoadResult:
    """``clients`` processes, each with its own boto3 client, hammer ``call`` for ``duration_s``.

    Processes, not threads: one Python process cannot saturate a server (the GIL serialises
    botocore's signing and parsing), and real teams run many clients. The window opens only
    once every process is warm, and is the same wall-clock interval for all of them.
    """
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    go = ctx.Event()
    window = ctx.Array("d", [0.0, 0.0], lock=False)
    procs = [ctx.Process(target=_client_loop, args=(endpoint, call, warmup, window, go, out),
                         daemon=True) for _ in range(clients)]
    for proc in procs:
        proc.start()
    result = LoadResult(clients=clients, duration_s=duration_s, requests=0, errors=0)
    try:
        finished: list[tuple[Any, ...]] = []
        ready = 0
        while ready < clients:
            message = out.get(timeout=ready_timeout_s)
            if message[0] == "ready":
                ready += 1
            else:
                finished.append(message)
        cpu_before = tree_cpu_seconds(server_pid) if server_pid else None
        window[0] = time.time() + 0.05
        window[1] = window[0] + duration_s
        go.set()
        while len(finished) < clients:
            finished.append(out.get(timeout=duration_s + 120))
        cpu_after = tree_cpu_seconds(server_pid) if server_pid else None
        if cpu_before is not None and cpu_after is not None:
            result.server_cpu_s = cpu_after - cpu_before
        for _kind, latencies, errors, first_error in finished:
            result.latencies_s.extend(latencies)
            result.requests += len(latencies)
            result.errors += errors
            result.first_error = result.first_error or first_error
    finally:
        for proc in procs:
            proc.join(5)
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
    return result


#: Set when the benchmark is interrupted: setup threads stop taking new items.
STOP = threading.Event()


def run_in_threads(jobs: dict[str, Callable[[], Any]]) -> dict[str, Any]:
    """Run independent jobs at once; their results by name. The first failure is re-raised.

    Daemon threads joined from the main thread, so Ctrl-C interrupts the wait; ``STOP`` then
    tells ``run_parallel`` loops to wind down instead of finishing thousands of items.
    """
    results: dict[str, Any] = {}
    errors: list[BaseException] = []

    def wrap(name: str, job: Callable[[], Any]) -> None:
        try:
            results[name] = job()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wrap, args=(n, j), daemon=True) for n, j in jobs.items()]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    except BaseException:
        STOP.set()
        raise
    if errors:
        raise errors[0]
    return results


def run_parallel(task: Callable[[Any, int], None], items: int, threads: int,
                 make_thread_client: Callable[[], Any], label: str) -> float:
    """Run ``task(client, i)`` for i in range(items) on ``threads`` threads; returns seconds.

    Each thread gets its own client (botocore clients are thread-safe, but one connection
    pool per thread avoids pool contention skewing setup). Progress goes to stdout every 10%.
    """
    lock = threading.Lock()
    next_index = 0
    done = 0
    failure: list[BaseException] = []
    step = max(1, items // 10)
    started = time.perf_counter()

    def worker() -> None:
        nonlocal next_index, done
        client = make_thread_client()
        while not failure and not STOP.is_set():
            with lock:
                i = next_index
                next_index += 1
            if i >= items:
                return
            try:
                task(client, i)
            except BaseException as exc:
                failure.append(exc)
                return
            with lock:
                done += 1
                if done % step == 0:
                    rate = done / (time.perf_counter() - started)
                    print(f"    {label}: {done}/{items} ({rate:.0f}/s)", flush=True)

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    if failure:
        raise RuntimeError(f"{label} failed after {done} items: {failure[0]!r}") from failure[0]
    if STOP.is_set():
        raise KeyboardInterrupt(f"{label} stopped after {done} items")
    return time.perf_counter() - started


# -- memory sampling ----------------------------------------------------------------------


class RssSampler:
    """Peak resident memory of a process tree, sampled in a thread while a transfer runs.

    Children are included because ``--workers N`` runs the app in uvicorn worker
    processes under a supervisor; the sum is what the machine pays.
    """

    def __init__(self, pid: int, interval_s: float = 0.02) -> None:
        import psutil

        self._root = psutil.Process(pid)
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.baseline = self.sample()
        self.peak = self.baseline

    def sample(self) -> int:
        import psutil

        total = 0
        try:
            procs = [self._root, *self._root.children(recursive=True)]
        except psutil.Error:
            return 0
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.sample())
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.sample())
