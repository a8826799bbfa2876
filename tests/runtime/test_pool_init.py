"""Start-up behaviour of WorkerPool: handler import errors, configuration, isolation fallback,
and the PoolManager's caching and eviction. Pools here are small (1 worker, no spare)."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import pytest

from airegistry.runtime import launcher as launcher_mod
from airegistry.runtime import pool as pool_mod
from airegistry.runtime import sandbox
from airegistry.runtime.manager import PoolManager
from airegistry.runtime.pool import (
    FunctionSpec,
    IsolationUnavailableError,
    WorkerPool,
)

OK = "def lambda_handler(event, context):\n    return {'reward': 1.0, 'event': event}\n"


def code_dir(tmp_path: Path, source: str, name: str = "lambda_function.py") -> Path:
    code = tmp_path / "code"
    code.mkdir(exist_ok=True)
    (code / name).write_text(textwrap.dedent(source))
    return code


def run_once(code: Path, **spec_kwargs: object) -> dict:
    spec = FunctionSpec(code, timeout_s=2.0, **spec_kwargs)  # type: ignore[arg-type]
    with WorkerPool(spec, workers=1, spares=0, isolation="limits") as p:
        result = p.invoke({"prompt": "p", "response": "r"})
        second = p.invoke({"prompt": "p", "response": "r"})
        assert second.payload == result.payload  # init errors are sticky, every call reports it
        return {"ok": result.ok, **(result.payload if isinstance(result.payload, dict) else {})}


def test_import_error(tmp_path: Path) -> None:
    out = run_once(code_dir(tmp_path, "import no_such_module_xyz\n" + OK))
    assert not out["ok"]
    assert out["errorType"] == "Runtime.ImportModuleError"
    assert "Unable to import module 'lambda_function'" in out["errorMessage"]
    assert "no_such_module_xyz" in out["errorMessage"]


def test_missing_module(tmp_path: Path) -> None:
    out = run_once(code_dir(tmp_path, OK, name="other.py"))
    assert out["errorType"] == "Runtime.ImportModuleError"


def test_missing_handler(tmp_path: Path) -> None:
    out = run_once(code_dir(tmp_path, "def handler(event, context):\n    return 1\n"))
    assert out["errorType"] == "Runtime.HandlerNotFound"
    assert "lambda_handler" in out["errorMessage"]


def test_handler_not_callable(tmp_path: Path) -> None:
    out = run_once(code_dir(tmp_path, "lambda_handler = 3\n"))
    assert out["errorType"] == "Runtime.HandlerNotFound"


def test_syntax_error(tmp_path: Path) -> None:
    out = run_once(code_dir(tmp_path, "def lambda_handler(event, context)\n    return 1\n"))
    assert out["errorType"] == "Runtime.UserCodeSyntaxError"
    assert "line 1" in out["errorMessage"]
    assert out["stackTrace"] and "lambda_function.py" in out["stackTrace"][0]


def test_exception_at_import(tmp_path: Path) -> None:
    out = run_once(code_dir(tmp_path, "print('booting')\nraise KeyError('cfg')\n" + OK))
    assert out["errorType"] == "KeyError"
    assert any("booting" in line for line in out["stackTrace"])


def test_custom_handler_name_and_environment(tmp_path: Path) -> None:
    code = code_dir(
        tmp_path,
        """
        import os
        def score(event, context):
            return {"mode": os.environ["SCORING_MODE"], "path": os.environ["PATH"]}
        """,
        name="rewards_mod.py",
    )
    out = run_once(
        code,
        handler="rewards_mod.score",
        environment={"SCORING_MODE": "strict", "PATH": "/evil"},
    )
    assert out == {"ok": True, "mode": "strict", "path": sandbox.SAFE_PATH}


def test_spec_validation(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        FunctionSpec(tmp_path, timeout_s=0)
    with pytest.raises(ValueError, match="memory_mb"):
        FunctionSpec(tmp_path, memory_mb=8)
    with pytest.raises(ValueError, match="handler"):
        FunctionSpec(tmp_path, handler="nodot")
    with pytest.raises(ValueError, match="isolation"):
        WorkerPool(FunctionSpec(tmp_path), isolation="none")  # type: ignore[arg-type]


def test_missing_code_dir(tmp_path: Path) -> None:
    p = WorkerPool(FunctionSpec(tmp_path / "absent"), workers=1, isolation="limits")
    with pytest.raises(FileNotFoundError, match="absent"):
        p.start()
    p.close()


def _no_bwrap(refresh: bool = False) -> sandbox.IsolationProbe:
    return sandbox.IsolationProbe(None, "bubblewrap (bwrap) is not installed (test)")


def test_full_isolation_required_but_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "probe_isolation", _no_bwrap)
    p = WorkerPool(FunctionSpec(code_dir(tmp_path, OK)), workers=1, isolation="full")
    with pytest.raises(IsolationUnavailableError, match="not installed"):
        p.start()
    p.close()
    assert pool_mod.isolation_status()["mode"] == "limits"


def test_auto_falls_back_to_limits_and_warns_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "probe_isolation", _no_bwrap)
    monkeypatch.setattr(launcher_mod, "_fallback_warned", False)
    code = code_dir(tmp_path, OK)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            with WorkerPool(FunctionSpec(code), workers=1, spares=0, isolation="auto") as p:
                assert p.isolation == "limits"
                assert "resource limits only" in p.stats()["isolation_reason"]
                assert p.invoke({"x": 1}).ok
    fallback = [w for w in caught if "full isolation" in str(w.message)]
    assert len(fallback) == 1


def test_pool_manager_caches_discards_and_evicts(tmp_path: Path) -> None:
    code = code_dir(tmp_path, OK)
    built: list[str] = []

    def factory() -> FunctionSpec:
        built.append("spec")
        return FunctionSpec(code, function_name="cached")

    manager = PoolManager(idle_timeout_s=3600, workers=1, spares=0, isolation="limits")
    try:
        first = manager.get("arn:fn:sha1", factory)
        assert manager.get("arn:fn:sha1", factory) is first
        assert built == ["spec"]
        assert first.invoke({"a": 1}).payload == {"reward": 1.0, "event": {"a": 1}}

        manager.discard("arn:fn:sha1")
        assert first.stats()["closed"]
        second = manager.get("arn:fn:sha1", factory)
        assert second is not first and len(built) == 2

        assert manager.evict_idle(now=second.last_used + 10) == []
        assert manager.evict_idle(now=second.last_used + 7200) == ["arn:fn:sha1"]
        assert second.stats()["closed"] and manager.keys() == []
    finally:
        manager.close_all()


def test_import_that_hangs_times_out(tmp_path: Path) -> None:
    code = code_dir(tmp_path, "import time\ntime.sleep(3600)\n" + OK)
    spec = FunctionSpec(code, timeout_s=1.0)
    with WorkerPool(spec, workers=1, spares=0, isolation="limits", init_timeout_s=0.5) as p:
        result = p.invoke({})
        assert result.payload["errorType"] == "Sandbox.Timedout"
        assert "Init phase timed out" in result.payload["errorMessage"]
        assert "0.50 seconds" in result.payload["errorMessage"]


def test_close_while_a_call_runs_fails_it_with_pool_closed(tmp_path: Path) -> None:
    import threading

    code = code_dir(tmp_path, "import time\ndef lambda_handler(e, c):\n    time.sleep(3600)\n")
    p = WorkerPool(FunctionSpec(code, timeout_s=600), workers=1, spares=0, isolation="limits")
    p.start()
    outcome: list[BaseException] = []
    started = threading.Event()

    def call() -> None:
        started.set()
        try:
            p.invoke_batch([{}, {}, {}])
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=call)
    t.start()
    started.wait()
    p.close()
    t.join(timeout=30)
    assert not t.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], pool_mod.PoolClosedError)


def test_concurrent_first_calls_share_one_start(tmp_path: Path) -> None:
    import threading

    code = code_dir(tmp_path, OK)
    p = WorkerPool(FunctionSpec(code), workers=1, spares=0, isolation="limits")
    results: list[bool] = []

    def call(i: int) -> None:
        results.append(p.invoke({"i": i}).payload["event"] == {"i": i})

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert results == [True] * 4
        assert p.stats()["restarts"] == 0
    finally:
        p.close()


PARENT = """
import sys, time
from pathlib import Path
from airegistry.runtime.pool import FunctionSpec, WorkerPool
pool = WorkerPool(FunctionSpec(Path(sys.argv[1])), workers=2, isolation=sys.argv[2])
pool.start()
assert pool.invoke({"x": 1}).ok
print("ready", flush=True)
time.sleep(3600)
"""


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["limits", "full"])
def test_workers_die_with_their_parent(tmp_path: Path, mode: str) -> None:
    import signal
    import subprocess
    import sys
    import time

    psutil = pytest.importorskip("psutil")
    if mode == "full" and not pool_mod.isolation_status()["bwrap"]:
        pytest.skip(f"full isolation unavailable: {pool_mod.isolation_status()['reason']}")
    code = code_dir(tmp_path, OK)
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(code), mode], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline().strip() == "ready"
        descendants = psutil.Process(parent.pid).children(recursive=True)
        assert len(descendants) >= 3  # two workers and the spare (plus bwrap helpers)
    finally:
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 20
    alive = descendants
    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.05)
    assert alive == []


def test_worker_killed_from_outside_while_idle_costs_no_call(tmp_path: Path) -> None:
    import signal
    import time

    psutil = pytest.importorskip("psutil")
    code = code_dir(tmp_path, OK)
    with WorkerPool(FunctionSpec(code), workers=1, spares=1, isolation="limits") as p:
        assert p.invoke({"n": 0}).ok
        workers = [
            c
            for c in psutil.Process().children(recursive=True)
            if "worker.py" in " ".join(c.cmdline())
        ]
        assert len(workers) == 2  # the live worker and the spare
        for child in workers:
            child.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 10

        def gone(proc: object) -> bool:
            try:
                return proc.status() == psutil.STATUS_ZOMBIE  # type: ignore[attr-defined]
            except psutil.NoSuchProcess:
                return True

        while time.monotonic() < deadline and not all(gone(c) for c in workers):
            time.sleep(0.01)
        results = p.invoke_batch([{"n": i} for i in range(5)])
        assert [r.payload["event"] for r in results] == [{"n": i} for i in range(5)]
        assert p.stats()["restarts"] >= 1
