"""Execution behaviour of WorkerPool, in every isolation mode available on this host.

One warm pool per mode serves most tests (workers are expensive to start); the handler below
switches on ``event["kind"]`` so a single deployment exercises every failure the runtime must
survive. Deadlines use a 0.5 s timeout; nothing asserts on wall-clock time.
"""

from __future__ import annotations

import os
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from airegistry.runtime.pool import (
    FunctionSpec,
    InvocationResult,
    PoolClosedError,
    WorkerPool,
    isolation_status,
)

HANDLER = textwrap.dedent(
    '''
    import ctypes
    import os
    import sys
    import time

    def lambda_handler(event, context):
        kind = event.get("kind")
        if kind == "echo":
            return {"reward": 0.5, "echo": event}
        if kind == "value":
            return event["value"]
        if kind == "nan":
            return {"reward": float("nan")}
        if kind == "print":
            print(event["text"])
            return {"reward": 1.0}
        if kind == "print_mb":
            chunk = "x" * 1023 + "\\n"
            for _ in range(event["mb"] * 1024):
                sys.stdout.write(chunk)
            print("THE END")
            return {"reward": 1.0}
        if kind == "fd_write":
            os.write(1, b"raw-" * (event["n"] // 4))
            os.write(2, b"\\nRAW-END\\n")
            return {"reward": 1.0}
        if kind == "raise":
            raise ValueError("reward function exploded")
        if kind == "sleep":
            time.sleep(3600)
        if kind == "busy":
            while True:
                pass
        if kind == "exit":
            os._exit(event.get("code", 3))
        if kind == "sys_exit":
            sys.exit(4)
        if kind == "segv":
            ctypes.string_at(0)
        if kind == "alloc":
            blob = bytearray(20 * 1024 ** 3)
            return {"size": len(blob)}
        if kind == "big":
            return {"blob": "x" * event["size"]}
        if kind == "huge_int":
            return {"reward": 2 ** 70}
        if kind == "set":
            return {"reward": {1, 2}}
        if kind == "object":
            return object()
        if kind == "env":
            return dict(os.environ)
        if kind == "cwd":
            with open("scratch.txt", "w") as f:
                f.write("ok")
            return {"cwd": os.getcwd(), "home": os.environ.get("HOME")}
        if kind == "context":
            return {
                "function_name": context.function_name,
                "function_version": context.function_version,
                "invoked_function_arn": context.invoked_function_arn,
                "memory_limit_in_mb": context.memory_limit_in_mb,
                "aws_request_id": context.aws_request_id,
                "remaining": context.get_remaining_time_in_millis(),
            }
        if kind == "protocol":
            result_fd = int(sys.argv[2].split(",")[1])  # the worker's result channel
            os.write(result_fd, bytes.fromhex(event["hex"]))
            time.sleep(1)
            return {"reward": 1.0}
        if kind == "forge_slot":
            # Hostile: keep telling the parent "idle" / "just started" to dodge the deadline.
            import mmap
            import threading
            slot = memoryview(mmap.mmap(int(sys.argv[2].split(",")[2]), 16)).cast("q")
            own_id = slot[0]  # -1: keep our real call id but keep "restarting" its clock
            forged = own_id if event["forged_id"] == -1 else event["forged_id"]
            def forge():
                while True:
                    slot[1] = time.monotonic_ns()
                    slot[0] = forged
                    time.sleep(0.001)
            threading.Thread(target=forge, daemon=True).start()
            time.sleep(3600)
        return {"unknown": kind}
    '''
)

MODES = ["limits", "full"]


def write_code(root: Path, source: str, name: str = "lambda_function.py") -> Path:
    code = root / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / name).write_text(source)
    return code


def need_mode(mode: str) -> None:
    if mode == "full" and not isolation_status()["bwrap"]:
        pytest.skip(f"full isolation unavailable here: {isolation_status()['reason']}")


@pytest.fixture(scope="module", params=MODES)
def pool(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerPool]:
    mode = request.param
    need_mode(mode)
    code = write_code(tmp_path_factory.mktemp(f"pool-{mode}"), HANDLER)
    spec = FunctionSpec(
        code,
        timeout_s=0.5,
        memory_mb=512,
        function_name="reward-fn",
        function_arn="arn:aws:lambda:us-east-1:000000000000:function:reward-fn",
        version="7",
    )
    # Secrets in the parent's environment at spawn time must not reach workers.
    saved = {k: os.environ.get(k) for k in ("AIREGISTRY_HOME", "AWS_SECRET_ACCESS_KEY")}
    os.environ["AIREGISTRY_HOME"] = str(tmp_path_factory.mktemp("home"))
    os.environ["AWS_SECRET_ACCESS_KEY"] = "parent-secret-do-not-leak"
    try:
        p = WorkerPool(spec, workers=2, isolation=mode, log_cap_bytes=16 * 1024)
        p.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    yield p
    p.close()


def error_type(result: InvocationResult) -> str:
    assert not result.ok, result
    assert result.function_error == "Unhandled"
    return result.payload["errorType"]


def test_isolation_in_force_is_reported(pool: WorkerPool) -> None:
    stats = pool.stats()
    assert stats["isolation"] == pool.isolation
    assert stats["workers"] == 2
    assert stats["init_error"] is None


def test_echo_and_context(pool: WorkerPool) -> None:
    result = pool.invoke({"kind": "echo", "x": [1, 2.5, "three", None]})
    assert result.ok and result.function_error is None
    assert result.payload == {"reward": 0.5, "echo": {"kind": "echo", "x": [1, 2.5, "three", None]}}
    ctx = pool.invoke({"kind": "context"}).payload
    assert ctx["function_name"] == "reward-fn"
    assert ctx["function_version"] == "7"
    assert ctx["invoked_function_arn"].endswith(":function:reward-fn")
    assert ctx["memory_limit_in_mb"] == "512"
    assert len(ctx["aws_request_id"]) == 36
    assert 0 <= ctx["remaining"] <= 500


@pytest.mark.parametrize("value", [1.5, -0.1, "abc", None, [1, 2], {"no_reward": True}])
def test_odd_return_values_come_back_intact(pool: WorkerPool, value: object) -> None:
    result = pool.invoke({"kind": "value", "value": value})
    assert result.ok
    assert result.payload == value


def test_nan_comes_back_as_nan(pool: WorkerPool) -> None:
    result = pool.invoke({"kind": "nan"})
    assert result.ok
    reward = result.payload["reward"]
    assert reward != reward  # NaN: the reward validator, not the runtime, rejects it


def test_handler_exception_is_lambda_shaped(pool: WorkerPool) -> None:
    result = pool.invoke({"kind": "raise"})
    assert error_type(result) == "ValueError"
    assert result.payload["errorMessage"] == "reward function exploded"
    trace = result.payload["stackTrace"]
    assert trace and "lambda_function.py" in trace[-1] and "lambda_handler" in trace[-1]
    assert all("worker.py" not in line for line in trace)


@pytest.mark.parametrize("kind", ["set", "object"])
def test_unserialisable_return_is_marshal_error(pool: WorkerPool, kind: str) -> None:
    result = pool.invoke({"kind": kind})
    assert error_type(result) == "Runtime.MarshalError"
    assert "not JSON serializable" in result.payload["errorMessage"]


def test_sys_exit_in_handler(pool: WorkerPool) -> None:
    result = pool.invoke({"kind": "sys_exit"})
    assert error_type(result) == "Runtime.ExitError"
    assert "exit status 4" in result.payload["errorMessage"]
    assert pool.invoke({"kind": "echo"}).ok


def test_logs_are_per_call(pool: WorkerPool) -> None:
    results = pool.invoke_batch(
        [{"kind": "print", "text": f"line-{i}"} for i in range(20)]
    )
    for i, result in enumerate(results):
        assert result.ok
        assert result.logs == f"line-{i}\n"


def test_printing_megabytes_is_capped_and_harmless(pool: WorkerPool) -> None:
    result = pool.invoke({"kind": "print_mb", "mb": 4})
    assert result.ok and result.payload == {"reward": 1.0}
    assert "THE END" in result.logs
    assert "truncated" in result.logs
    assert len(result.logs.encode()) <= 16 * 1024 + 200
    assert pool.invoke({"kind": "echo"}).ok


def test_raw_fd_output_is_captured_not_protocol(pool: WorkerPool) -> None:
    result = pool.invoke({"kind": "fd_write", "n": 200_000})
    assert result.ok
    assert "RAW-END" in result.logs
    assert len(result.logs.encode()) <= 16 * 1024 + 200


def test_timeout_of_sleeping_call(pool: WorkerPool) -> None:
    before = pool.stats()["timeouts"]
    result = pool.invoke({"kind": "sleep"})
    assert error_type(result) == "Sandbox.Timedout"
    assert result.payload["errorMessage"] == "Task timed out after 0.50 seconds"
    assert pool.stats()["timeouts"] == before + 1
    assert pool.invoke({"kind": "echo"}).ok


def test_timeout_of_busy_loop(pool: WorkerPool) -> None:
    result = pool.invoke({"kind": "busy"})
    assert error_type(result) == "Sandbox.Timedout"
    assert pool.invoke({"kind": "echo"}).ok


def test_os_exit_fails_only_that_call(pool: WorkerPool) -> None:
    result = pool.invoke({"kind": "exit", "code": 3})
    assert error_type(result) == "Runtime.ExitError"
    assert "exit status 3" in result.payload["errorMessage"]
    assert pool.invoke({"kind": "echo"}).ok


def test_segfault_fails_only_that_call(pool: WorkerPool) -> None:
    result = pool.invoke({"kind": "segv"})
    assert error_type(result) == "Runtime.ExitError"
    assert "SIGSEGV" in result.payload["errorMessage"]
    assert "Segmentation fault" in result.logs  # faulthandler's report reaches the caller
    assert pool.invoke({"kind": "echo"}).ok


def test_allocating_20_gb_fails_the_call(pool: WorkerPool) -> None:
    result = pool.invoke({"kind": "alloc"})
    assert error_type(result) in {"MemoryError", "Runtime.ExitError", "Runtime.OutOfMemory"}
    assert "512 MB" in result.payload["errorMessage"] or "signal" in result.payload["errorMessage"]
    assert pool.invoke({"kind": "echo"}).ok


@pytest.mark.parametrize("garbage", [b"\xff\xff\xff\xff", b"\x03\x00\x00\x00abc"])
def test_protocol_garbage_kills_only_that_call(pool: WorkerPool, garbage: bytes) -> None:
    result = pool.invoke({"kind": "protocol", "hex": garbage.hex()})
    assert error_type(result) == "Runtime.ProtocolError"
    assert pool.invoke({"kind": "echo"}).ok


def test_crash_in_batch_fails_only_its_item(pool: WorkerPool) -> None:
    events = [{"kind": "echo", "i": i} for i in range(300)]
    events[137] = {"kind": "exit", "code": 9}
    events[250] = {"kind": "segv"}
    results = pool.invoke_batch(events)
    assert len(results) == 300
    for i, result in enumerate(results):
        if i in (137, 250):
            assert error_type(result) == "Runtime.ExitError"
        else:
            assert result.ok, (i, result)
            assert result.payload["echo"]["i"] == i


def test_timeout_in_batch_reruns_the_rest(pool: WorkerPool) -> None:
    events = [{"kind": "echo", "i": i} for i in range(200)]
    events[10] = {"kind": "sleep"}
    results = pool.invoke_batch(events)
    assert error_type(results[10]) == "Sandbox.Timedout"
    assert all(r.ok and r.payload["echo"]["i"] == i for i, r in enumerate(results) if i != 10)


def test_results_keep_order_in_large_batches(pool: WorkerPool) -> None:
    events = [{"kind": "echo", "i": i} for i in range(2000)]
    results = pool.invoke_batch(events)
    assert [r.payload["echo"]["i"] for r in results] == list(range(2000))


@pytest.mark.parametrize(
    ("n", "pad"),
    [
        (48, 256 * 1024),  # chunks of ~3 MB: the inbox fills, wraps around, batches wait for room
        (2, 9 * 1024 * 1024),  # a chunk larger than the whole inbox travels inline
    ],
)
def test_large_events_cross_intact(pool: WorkerPool, n: int, pad: int) -> None:
    events = [{"kind": "value", "value": {"i": i}, "pad": chr(65 + i % 26) * pad} for i in range(n)]
    results = pool.invoke_batch(events)
    assert [r.payload for r in results] == [{"i": i} for i in range(n)]
    assert pool.invoke({"kind": "echo", "i": 1}).payload["echo"]["i"] == 1


def test_concurrent_callers(pool: WorkerPool) -> None:
    outputs: dict[int, list[InvocationResult]] = {}
    errors: list[BaseException] = []

    def run(tid: int) -> None:
        try:
            events = [{"kind": "echo", "t": tid, "i": i} for i in range(300)]
            if tid == 2:
                events[5] = {"kind": "exit"}
            outputs[tid] = pool.invoke_batch(events)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for tid, results in outputs.items():
        for i, result in enumerate(results):
            if tid == 2 and i == 5:
                assert error_type(result) == "Runtime.ExitError"
            else:
                assert result.payload["echo"] == {"kind": "echo", "t": tid, "i": i}


def test_parent_environment_does_not_leak(pool: WorkerPool) -> None:
    env = pool.invoke({"kind": "env"}).payload
    assert "AIREGISTRY_HOME" not in env
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert not any(k.startswith(("AIREGISTRY_", "AWS_SECRET", "AWS_SESSION", "AWS_ACCESS")) for k in env)
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "reward-fn"
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"


def test_private_writable_working_directory(pool: WorkerPool) -> None:
    result = pool.invoke({"kind": "cwd"})
    assert result.ok, result.payload
    cwd = result.payload["cwd"]
    assert cwd == result.payload["home"]
    assert cwd != os.getcwd()
    if pool.isolation == "full":
        assert cwd == "/tmp"
    else:
        assert Path(cwd).name.startswith("w")


def test_unserialisable_event_is_rejected_before_running(pool: WorkerPool) -> None:
    with pytest.raises(TypeError, match="event #1"):
        pool.invoke_batch([{"kind": "echo"}, {"kind": object()}])


def test_empty_batch(pool: WorkerPool) -> None:
    assert pool.invoke_batch([]) == []


def test_closed_pool_refuses_calls(tmp_path: Path) -> None:
    code = write_code(tmp_path, HANDLER)
    p = WorkerPool(FunctionSpec(code, timeout_s=0.5), workers=1, isolation="limits", spares=0)
    with p:
        assert p.invoke({"kind": "echo"}).ok
    assert p.stats()["closed"]
    with pytest.raises(PoolClosedError):
        p.invoke({"kind": "echo"})


@pytest.mark.parametrize("forged_id", [0, -1, 10**9])
def test_forging_the_deadline_slot_does_not_escape_the_timeout(
    pool: WorkerPool, forged_id: int
) -> None:
    result = pool.invoke({"kind": "forge_slot", "forged_id": forged_id})
    assert error_type(result) == "Sandbox.Timedout"
    assert pool.invoke({"kind": "echo"}).ok


def test_oversized_response_fails_only_that_call(pool: WorkerPool) -> None:
    events = [{"kind": "big", "size": 1_000_000} for _ in range(12)]
    events[5] = {"kind": "big", "size": 7 * 1024 * 1024}
    results = pool.invoke_batch(events)
    assert error_type(results[5]) == "Function.ResponseSizeTooLarge"
    assert "exceeded maximum allowed payload size" in results[5].payload["errorMessage"]
    for i, result in enumerate(results):
        if i != 5:
            assert result.ok and len(result.payload["blob"]) == 1_000_000


def test_integer_too_large_for_the_wire_is_marshal_error(pool: WorkerPool) -> None:
    results = pool.invoke_batch([{"kind": "echo"}, {"kind": "huge_int"}, {"kind": "echo"}])
    assert results[0].ok and results[2].ok
    assert error_type(results[1]) == "Runtime.MarshalError"
