"""What the sandbox hides: registry home, network, the parent's files -- and the command lines
that produce it. Behavioural tests need a working bubblewrap and skip (saying why) without one."""

from __future__ import annotations

import os
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from airegistry.runtime import sandbox, uids, view
from airegistry.runtime.pool import FunctionSpec, WorkerPool, isolation_status

PROBE = textwrap.dedent(
    """
    import os
    import socket

    def lambda_handler(event, context):
        kind = event["kind"]
        if kind == "read":
            try:
                with open(event["path"]) as f:
                    return {"read": f.read()}
            except OSError as exc:
                return {"error": type(exc).__name__}
        if kind == "listdir":
            try:
                return {"entries": os.listdir(event["path"])}
            except OSError as exc:
                return {"error": type(exc).__name__}
        if kind == "connect":
            s = socket.socket()
            s.settimeout(2)
            try:
                s.connect(("127.0.0.1", event["port"]))
                return {"connected": True}
            except OSError as exc:
                return {"connected": False, "error": type(exc).__name__}
            finally:
                s.close()
        if kind == "dns":
            try:
                socket.getaddrinfo("example.com", 443)
                return {"resolved": True}
            except OSError:
                return {"resolved": False}
        if kind == "write":
            try:
                with open(event["path"], "w") as f:
                    f.write("pwned")
                return {"written": True}
            except OSError as exc:
                return {"written": False, "error": type(exc).__name__}
        if kind == "ids":
            return {"uid": os.getuid(), "gid": os.getgid(), "pid": os.getpid()}
        return {}
    """
)

needs_bwrap = pytest.mark.skipif(
    not isolation_status()["bwrap"],
    reason=f"full isolation unavailable here: {isolation_status()['reason']}",
)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in registry home with a world-readable 'database' in it."""
    root = tmp_path_factory.mktemp("registry-home")
    os.chmod(root, 0o755)
    db = root / "registry.db"
    db.write_text("SECRET-ROWS")
    os.chmod(db, 0o644)
    return root


@pytest.fixture(scope="module")
def full_pool(tmp_path_factory: pytest.TempPathFactory, home: Path) -> Iterator[WorkerPool]:
    if not isolation_status()["bwrap"]:
        pytest.skip(f"full isolation unavailable here: {isolation_status()['reason']}")
    code = tmp_path_factory.mktemp("sandbox-code")
    (code / "lambda_function.py").write_text(PROBE)
    spec = FunctionSpec(code, timeout_s=5.0, hidden_paths=(home,))
    with WorkerPool(spec, workers=1, isolation="full") as p:
        yield p


@needs_bwrap
def test_registry_home_is_invisible(full_pool: WorkerPool, home: Path) -> None:
    assert (home / "registry.db").read_text() == "SECRET-ROWS"  # readable outside
    out = full_pool.invoke({"kind": "read", "path": str(home / "registry.db")}).payload
    assert out == {"error": "FileNotFoundError"}
    listing = full_pool.invoke({"kind": "listdir", "path": str(home)}).payload
    assert listing in ({"entries": []}, {"error": "FileNotFoundError"})


@needs_bwrap
def test_network_is_unreachable(full_pool: WorkerPool) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        out = full_pool.invoke({"kind": "connect", "port": port}).payload
    assert out["connected"] is False
    assert full_pool.invoke({"kind": "dns"}).payload == {"resolved": False}


@needs_bwrap
def test_root_filesystem_is_read_only(full_pool: WorkerPool, tmp_path: Path) -> None:
    target = Path("/etc/airegistry-sandbox-escape")
    out = full_pool.invoke({"kind": "write", "path": str(target)}).payload
    assert out["written"] is False
    assert not target.exists()
    # /tmp is private: a write there is not visible to the host.
    name = f"/tmp/airegistry-sandbox-probe-{os.getpid()}"
    assert full_pool.invoke({"kind": "write", "path": name}).payload == {"written": True}
    assert not Path(name).exists()


@needs_bwrap
def test_runs_unprivileged_in_own_pid_namespace(full_pool: WorkerPool) -> None:
    ids = full_pool.invoke({"kind": "ids"}).payload
    if os.geteuid() == 0:  # a uid of its own, not root and not the shared 65534
        assert ids["uid"] >= uids.UID_BASE and ids["gid"] == ids["uid"]
    assert ids["pid"] < 10  # pid namespace: the worker is one of the first processes
    shadow = full_pool.invoke({"kind": "read", "path": "/etc/shadow"}).payload
    assert "error" in shadow


def test_limits_mode_cannot_hide_files_but_env_is_clean(tmp_path: Path, home: Path) -> None:
    """Documented limit: without bubblewrap a world-readable file stays readable."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "lambda_function.py").write_text(PROBE)
    spec = FunctionSpec(code, timeout_s=5.0, hidden_paths=(home,))
    with WorkerPool(spec, workers=1, spares=0, isolation="limits") as p:
        assert p.stats()["isolation"] == "limits"
        out = p.invoke({"kind": "read", "path": str(home / "registry.db")}).payload
        assert out == {"read": "SECRET-ROWS"}
        if os.geteuid() == 0 and sandbox.probe_isolation().limits_own_uids:
            assert p.invoke({"kind": "ids"}).payload["uid"] >= uids.UID_BASE


# ---------------------------------------------------------------------- pure functions


def test_clean_environment_keeps_runtime_variables() -> None:
    env = sandbox.clean_environment(
        {"MY_FLAG": "1", "PATH": "/evil", "LAMBDA_TASK_ROOT": "/elsewhere"},
        home="/tmp",
        code_dir="/code",
        handler="m.f",
        function_name="fn",
        version="3",
        memory_mb=256,
    )
    assert env["MY_FLAG"] == "1"
    assert env["PATH"] == sandbox.SAFE_PATH
    assert env["LAMBDA_TASK_ROOT"] == "/code"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert not any(k.startswith("AIREGISTRY") for k in env)


def test_hidden_paths_include_registry_home_and_credentials(tmp_path: Path) -> None:
    reg = tmp_path / "reg"
    reg.mkdir()
    user_home = tmp_path / "user"
    (user_home / ".aws").mkdir(parents=True)
    (user_home / ".netrc").write_text("machine x")
    extra = tmp_path / "extra"
    extra.mkdir()
    paths = sandbox.hidden_paths(
        [extra], environ={"AIREGISTRY_HOME": str(reg), "HOME": str(user_home)}
    )
    assert set(paths) == {extra, reg, user_home / ".aws", user_home / ".netrc"}


def test_bwrap_argv_shape(tmp_path: Path) -> None:
    """The root is an empty tmpfs: only the interpreter's needs, the code and the runtime."""
    code = tmp_path / "code"
    code.mkdir()
    needs = view.InterpreterNeeds(("/usr/lib/python3",), ("/lib64/ld-linux-x86-64.so.2",))
    etc, proc = view.synthetic_files(tmp_path / "etc", 1_900_000_123, 1)
    view_args = view.build_view(
        needs=needs, code_dir=code, etc_files=etc, proc_files=proc, tmpfs_bytes=1024
    )
    joined = " ".join(view_args)
    assert "--ro-bind / /" not in joined and "--bind / /" not in joined
    assert f"--ro-bind {code} /var/task" in joined
    assert f"--ro-bind {view.RUNTIME_DIR / 'worker.py'} /var/runtime/worker.py" in joined
    assert f"--ro-bind {etc['/etc/passwd']} /etc/passwd" in joined
    assert f"--ro-bind {proc['/proc/cpuinfo']} /proc/cpuinfo" in joined
    assert "--size 1024 --perms 1777 --tmpfs /tmp" in joined
    assert "sbx_user:x:1900000123:1900000123" in etc["/etc/passwd"].read_text()
    for probe in (
        sandbox.IsolationProbe("/usr/bin/bwrap", "", ("--unshare-user",), False),
        sandbox.IsolationProbe("/usr/bin/bwrap", "", (), True),
    ):
        argv = sandbox.bwrap_argv(probe, view_args, ["python", "-I", "worker.py"])
        assert argv[0] == "/usr/bin/bwrap" and "--die-with-parent" in argv
        assert argv[-3:] == ["python", "-I", "worker.py"]
        if probe.privileged:  # no user namespace: the worker's own uid is a real host uid
            assert "--unshare-all" not in argv and "--unshare-pid" in argv
            assert "--unshare-net" in argv
            assert argv[argv.index("--cap-drop") + 1] == "ALL"
        else:
            assert "--unshare-all" in argv and "--unshare-user" in argv


@needs_bwrap
def test_view_shows_nothing_else_of_the_host(full_pool: WorkerPool) -> None:
    def listdir(path: str) -> list[str] | str:
        out = full_pool.invoke({"kind": "listdir", "path": path}).payload
        return sorted(out["entries"]) if "entries" in out else out["error"]

    for gone in ("/home", "/opt", "/sys", "/srv", "/mnt", "/boot", "/var/log", "/usr/bin"):
        assert listdir(gone) == "FileNotFoundError", gone
    assert listdir("/etc") == ["group", "passwd"]
    assert listdir("/var") == ["runtime", "task"]
    assert listdir("/var/task") == ["lambda_function.py"]
    repo = Path(__file__).resolve().parents[2]
    assert listdir(str(repo / ".git")) == "FileNotFoundError"
    assert listdir(str(repo / "src")) == "FileNotFoundError"
    passwd = full_pool.invoke({"kind": "read", "path": "/etc/passwd"}).payload["read"]
    assert "sbx_user" in passwd and len(passwd.splitlines()) == 3
    cpuinfo = full_pool.invoke({"kind": "read", "path": "/proc/cpuinfo"}).payload["read"]
    assert "vendor_id\t: airegistry" in cpuinfo and cpuinfo.count("processor") == 1


@needs_bwrap
def test_tmp_is_private_and_size_limited(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "lambda_function.py").write_text(
        textwrap.dedent(
            """
            import errno

            def lambda_handler(event, context):
                written = 0
                for n in range(20):  # files of up to 32 MiB, below RLIMIT_FSIZE
                    with open(f"/tmp/fill{n}", "wb") as fh:
                        try:
                            for _ in range(32):
                                fh.write(b"x" * (1 << 20))
                                fh.flush()
                                written += 1
                        except OSError as exc:
                            return {"mib": written, "errno": exc.errno}
                return {"mib": written, "errno": None}
            """
        )
    )
    os.chmod(code, 0o755)
    spec = FunctionSpec(code, timeout_s=30.0, memory_mb=256)
    with WorkerPool(spec, workers=1, spares=0, isolation="full") as p:
        out = p.invoke({}).payload
    assert out["errno"] == 28 and out["mib"] <= 256  # ENOSPC at min(memory_mb, 512) MiB
