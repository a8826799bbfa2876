"""Hostile reward functions against the sandbox, in every isolation mode this host has.

Each test is one attack from the sandbox probe of issue #11: nested user namespaces and other
refused syscalls, widening the CPU set, children that outlive their call (``setsid``, double
fork), fork bursts that used to starve other evaluators, and background threads that burn CPU
between calls. ``limits`` is what runs when bubblewrap is missing, so it is tested too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from airegistry.runtime import sandbox
from airegistry.runtime.channel import process_state
from airegistry.runtime.launcher import NPROC_LIMIT
from airegistry.runtime.pool import FunctionSpec, WorkerPool, isolation_status

HOSTILE = textwrap.dedent(
    """
    import ctypes
    import os
    import stat
    import subprocess
    import sys
    import threading
    import time

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long

    def _errno(result):
        return 0 if result == 0 else ctypes.get_errno()

    def _burn(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass

    def lambda_handler(event, context):
        kind = event["kind"]
        if kind == "syscalls":
            return {
                "unshare_user": _errno(libc.unshare(0x10000000)),
                "unshare_mount": _errno(libc.unshare(0x00020000)),
                "clone3": _errno(libc.syscall(435, None, 0)),
                "mount": _errno(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)),
                "ptrace_init": _errno(libc.ptrace(16, 1, None, None)),
                "keyctl": _errno(libc.syscall(250, 0, 0, 0, 0, 0)),
            }
        if kind == "unshare_binary":
            # What the probe ran: a fresh interpreter asking for a user namespace.
            code = "import ctypes; l = ctypes.CDLL(None, use_errno=True); print(l.unshare(0x10000000), ctypes.get_errno())"
            out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True)
            return {"out": out.stdout.split()}
        if kind == "affinity":
            try:
                os.sched_setaffinity(0, range(os.cpu_count() or 1))
                widened = True
            except OSError:
                widened = False
            return {"cpus": sorted(os.sched_getaffinity(0)), "widened": widened}
        if kind == "setsid_child":
            p = subprocess.Popen(
                [sys.executable, "-I", "-c", "import os, time; os.setsid(); time.sleep(600)"]
            )
            return {"pid": p.pid}
        if kind == "double_fork":
            read, write = os.pipe()
            child = os.fork()
            if child == 0:
                grandchild = os.fork()
                if grandchild == 0:
                    os.setsid()
                    time.sleep(600)
                    os._exit(0)
                os.write(write, str(grandchild).encode())
                os._exit(0)
            os.waitpid(child, 0)
            return {"pid": int(os.read(read, 32))}
        if kind == "alive":
            try:
                os.kill(event["pid"], 0)
                return {"alive": True}
            except ProcessLookupError:
                return {"alive": False}
        if kind == "fork_burst":
            forked = 0
            error = None
            while forked < 5000:
                try:
                    pid = os.fork()
                except OSError as exc:
                    error = exc.errno
                    break
                if pid == 0:
                    os._exit(0)  # never reaped by us: a zombie
                forked += 1
            return {"forked": forked, "errno": error}
        if kind == "spawn":
            t = threading.Thread(target=lambda: None)
            t.start()
            t.join()
            done = subprocess.run([sys.executable, "-I", "-c", "pass"]).returncode
            return {"thread": True, "subprocess": done}
        if kind == "burner":
            threading.Thread(target=_burn, args=(3600,), daemon=True).start()
            return {"cpu": time.process_time()}
        if kind == "cpu":
            return {"cpu": time.process_time()}
        if kind == "resize_shared_memory":
            # The runtime's own descriptors are on the command line (--fds CMD,RES,SLOT,...).
            fds = [int(fd) for fd in sys.argv[sys.argv.index("--fds") + 1].split(",")]
            errors = {}
            for fd in fds:
                if not stat.S_ISREG(os.fstat(fd).st_mode):  # pipes; the memfds are files
                    continue
                try:  # a read-write descriptor of the same file, even for a read-only one
                    fds_to_try = [fd, os.open(f"/proc/self/fd/{fd}", os.O_RDWR)]
                except OSError as exc:
                    fds_to_try = [fd]
                    errors[f"reopen {fd}"] = exc.errno
                if fd == fds[3]:  # the inbox: the parent's events, read-only for the worker
                    try:
                        errors["write inbox"] = 0 if os.pwrite(fds_to_try[-1], b"x", 0) else -1
                    except OSError as exc:
                        errors["write inbox"] = exc.errno
                for target in fds_to_try:
                    for size in (0, 1 << 20):
                        try:
                            os.ftruncate(target, size)
                            errors[f"{fd}/{target}:{size}"] = 0
                        except OSError as exc:
                            errors[f"{fd}/{target}:{size}"] = exc.errno
            return {"errors": errors}
        if kind == "spin_threads":
            start_cpu, start = time.process_time(), time.monotonic()
            threads = [threading.Thread(target=_burn, args=(event["s"],)) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return {"cpu": time.process_time() - start_cpu, "wall": time.monotonic() - start}
        return {}
    """
)

MODES = ["limits", "full"]


def _skip_unavailable(mode: str) -> None:
    if mode == "full" and not isolation_status()["bwrap"]:
        pytest.skip(f"full isolation unavailable here: {isolation_status()['reason']}")


def _code(tmp: Path) -> Path:
    (tmp / "lambda_function.py").write_text(HOSTILE)
    os.chmod(tmp, 0o755)
    return tmp


@pytest.fixture(scope="module", params=MODES)
def pool(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerPool]:
    _skip_unavailable(request.param)
    spec = FunctionSpec(_code(tmp_path_factory.mktemp("hostile")), timeout_s=30.0)
    with WorkerPool(spec, workers=1, spares=0, isolation=request.param) as p:
        yield p


def _call(pool: WorkerPool, event: dict) -> dict:
    result = pool.invoke(event)
    assert result.ok, result.payload
    return result.payload


def test_nested_namespaces_mounts_and_ptrace_are_refused(pool: WorkerPool) -> None:
    out = _call(pool, {"kind": "syscalls"})
    assert out["unshare_user"] == 1 and out["unshare_mount"] == 1  # EPERM
    assert out["clone3"] == 38  # ENOSYS: libc falls back to clone, whose flags are checked
    assert out["mount"] == 1 and out["ptrace_init"] == 1 and out["keyctl"] == 1
    # A fresh process inherits the filter (seccomp survives fork and exec).
    assert _call(pool, {"kind": "unshare_binary"})["out"] == ["-1", "1"]


def test_one_cpu_per_worker_that_the_function_cannot_widen(pool: WorkerPool) -> None:
    out = _call(pool, {"kind": "affinity"})
    assert len(out["cpus"]) == 1 and out["widened"] is False


def test_cpu_of_a_call_is_bounded_by_its_one_cpu(pool: WorkerPool) -> None:
    out = _call(pool, {"kind": "spin_threads", "s": 0.3})
    # Two busy threads, one CPU: process CPU time cannot exceed wall time (plus accounting slack).
    assert out["cpu"] <= out["wall"] * 1.15 + 0.02


@pytest.mark.parametrize("kind", ["setsid_child", "double_fork"])
def test_children_do_not_outlive_their_call(pool: WorkerPool, kind: str) -> None:
    result = pool.invoke({"kind": kind})
    assert result.ok, result.payload
    assert "killed 1 process(es) that this call left running" in result.logs
    assert _call(pool, {"kind": "alive", "pid": result.payload["pid"]}) == {"alive": False}


def test_idle_worker_is_frozen_with_its_threads(pool: WorkerPool) -> None:
    before = _call(pool, {"kind": "burner"})["cpu"]
    worker = pool._live[0]
    assert worker is not None and worker.guest_pid is not None
    deadline = time.monotonic() + 10
    while process_state(worker.guest_pid) != "T" and time.monotonic() < deadline:
        time.sleep(0.005)
    assert process_state(worker.guest_pid) == "T"  # stopped: every thread, the burner too
    time.sleep(0.5)
    after = _call(pool, {"kind": "cpu"})["cpu"]
    # Unfrozen, the burner would have used ~0.5 s of CPU while the worker sat idle.
    assert after - before < 0.25


@pytest.mark.parametrize("mode", MODES)
def test_shared_memory_cannot_be_resized_under_the_parent(tmp_path: Path, mode: str) -> None:
    """Shrinking a memfd the parent has mapped would kill the parent with SIGBUS on its next
    access; run the pool in a child process so that a regression fails this test only."""
    _skip_unavailable(mode)
    script = textwrap.dedent(
        f"""
        import json
        from pathlib import Path
        from airegistry.runtime.pool import FunctionSpec, WorkerPool

        spec = FunctionSpec(Path({str(_code(tmp_path))!r}), timeout_s=30.0)
        with WorkerPool(spec, workers=1, spares=0, isolation={mode!r}) as pool:
            first = pool.invoke({{"kind": "resize_shared_memory"}})
            again = pool.invoke({{"kind": "cpu"}})
            print(json.dumps([first.ok, first.payload, again.ok, pool.stats()["crashes"]]))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    ok, payload, again_ok, crashes = json.loads(done.stdout.splitlines()[-1])
    assert ok and again_ok and crashes == 0, payload
    # EPERM: sealed; EINVAL: a read-only descriptor; EACCES: no write access to reopen it.
    assert payload["errors"] and set(payload["errors"].values()) <= {1, 13, 22}, payload


@pytest.mark.skipif(os.geteuid() != 0, reason="a uid per worker needs the runtime to run as root")
@pytest.mark.parametrize("mode", MODES)
def test_fork_burst_does_not_starve_other_evaluators(tmp_path: Path, mode: str) -> None:
    _skip_unavailable(mode)
    if mode == "limits" and not sandbox.probe_isolation().limits_own_uids:
        pytest.skip("the interpreter is not usable by other uids here, so limits mode stays root")
    code = _code(tmp_path)
    spec_a = FunctionSpec(code, timeout_s=60.0, function_name="bomber")
    spec_b = FunctionSpec(code, timeout_s=60.0, function_name="bystander")
    with WorkerPool(spec_a, workers=1, spares=0, isolation=mode) as a, WorkerPool(
        spec_b, workers=1, spares=0, isolation=mode
    ) as b:
        burst = a.invoke({"kind": "fork_burst"})
        assert burst.ok, burst.payload
        assert burst.payload["errno"] == 11  # EAGAIN: its own process limit, not the host's
        assert burst.payload["forked"] < NPROC_LIMIT
        assert _call(b, {"kind": "spawn"}) == {"thread": True, "subprocess": 0}
        # The bomber's zombies were reaped after its call: it can spawn again too.
        assert _call(a, {"kind": "spawn"}) == {"thread": True, "subprocess": 0}
