"""How worker processes are isolated: which mode this host gives, command lines, environment.

Two modes (docs/runtime.md has the full model):

``full``   bubblewrap (``bwrap``) runs the worker in fresh pid/net/ipc/uts/cgroup namespaces
           (plus a user namespace when the parent is not root) on a root filesystem that holds
           only what the interpreter needs (see :mod:`.view`): the function's code at
           ``/var/task``, a private size-limited ``/tmp``, a minimal ``/dev`` and ``/proc``.
           A root parent runs bwrap privileged with every capability dropped but setuid/setgid,
           and the worker switches to a uid of its own (see :mod:`.uids`) before any user code.
``limits`` the same worker without namespaces: resource limits, a clean environment, a private
           working directory, its own session, a uid of its own when the parent is root and the
           interpreter is usable by other users. It can read whatever files that uid may read
           and open network connections.

In both modes the worker installs the seccomp filter of :mod:`.seccomp`, pins itself to one
CPU, becomes the reaper of everything it starts, and is frozen by the parent between batches.
Whether ``full`` works is probed once per process (a real sandbox of the interpreter, switching
uid as the workers will) and cached, because namespaces can be present yet forbidden by policy.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import view as V
from .seccomp import seccomp_program
from .uids import UidUnavailableError, lease_uid

WORKER_PATH = V.RUNTIME_DIR / "worker.py"
SANDBOX_WORKER_PATH = f"{V.RUNTIME_ROOT}/worker.py"
NOBODY = 65534
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
# Runtime-owned variables a function's own environment may not override.
RESERVED_ENV = frozenset(
    {
        "PATH",
        "HOME",
        "TMPDIR",
        "LANG",
        "LC_ALL",
        "LAMBDA_TASK_ROOT",
        "_HANDLER",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    }
)
# Files/directories of the parent's user that hold credentials: hidden if a mounted tree has them.
_CREDENTIAL_DIRS = (".aws", ".ssh", ".airegistry", ".docker", ".kube", ".gnupg", ".config/gcloud")
_CREDENTIAL_FILES = (".netrc", ".git-credentials", ".pypirc")
# A root parent keeps only these for the sandbox's first moments: the worker needs them to switch
# to its own uid, after which (as for any non-root uid) no capability is left.
_ROOT_CAPS = ("--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID")


@dataclass(frozen=True)
class IsolationProbe:
    """Outcome of probing the host once."""

    bwrap: str | None  # path of a working bwrap, None when full isolation is unavailable
    reason: str  # human-readable: why full isolation is (un)available
    bwrap_flags: tuple[str, ...] = ()  # optional hardening flags this bwrap accepts
    # Parent is root: bwrap runs privileged (no user namespace) and every worker switches to a
    # uid of its own; unprivileged parents use a user namespace and keep their own uid.
    privileged: bool = False
    limits_own_uids: bool = False  # limits mode as root can run workers under their own uids
    seccomp: bytes = b""  # the BPF program workers install (empty: unavailable)
    seccomp_reason: str = ""


_probe_lock = threading.Lock()
_probe_cache: IsolationProbe | None = None


def _run_probe(argv: list[str], user: int | None) -> tuple[bool, str]:
    kwargs: dict[str, object] = {}
    if user is not None:
        kwargs.update(user=user, group=user, extra_groups=[])
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            timeout=20,
            env={"PATH": SAFE_PATH, "LANG": "C.UTF-8"},
            cwd="/",
            check=False,
            **kwargs,  # type: ignore[arg-type]
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).decode("utf-8", "replace").strip()[-400:]
        return False, f"exit status {proc.returncode}: {tail}"
    return True, ""


def _interpreter_check(worker_path: str, switch_to: int | None = None) -> list[str]:
    # What every worker does first: start isolated, switch uid, import msgspec, read its code.
    switch = (
        f"import os; os.setgroups([]); os.setresgid({switch_to}, {switch_to}, {switch_to}); "
        f"os.setresuid({switch_to}, {switch_to}, {switch_to}); "
        if switch_to is not None
        else ""
    )
    return [sys.executable, "-I", "-B", "-c", f"{switch}import msgspec; open({worker_path!r}).close()"]


def probe_isolation(refresh: bool = False) -> IsolationProbe:
    """Find out (once per process) which isolation this host can give workers."""
    global _probe_cache
    with _probe_lock:
        if _probe_cache is not None and not refresh:
            return _probe_cache
        _probe_cache = _probe()
        return _probe_cache


def _probe() -> IsolationProbe:
    root = os.geteuid() == 0
    program, seccomp_reason = seccomp_program()
    limits_own = False
    if root:
        try:
            lease = lease_uid()
        except UidUnavailableError:
            pass
        else:
            limits_own, _ = _run_probe(_interpreter_check(str(WORKER_PATH)), lease.uid)
            lease.release()
    base = {"limits_own_uids": limits_own, "seccomp": program, "seccomp_reason": seccomp_reason}
    bwrap = shutil.which("bwrap", path=os.environ.get("PATH", SAFE_PATH) + ":" + SAFE_PATH)
    if bwrap is None:
        return IsolationProbe(
            None,
            "bubblewrap (bwrap) is not installed; install the 'bubblewrap' package for full "
            "isolation",
            **base,  # type: ignore[arg-type]
        )
    if not program:
        return IsolationProbe(None, f"bubblewrap is installed but {seccomp_reason}", **base)  # type: ignore[arg-type]
    try:
        needs = V.interpreter_needs()
        lease = lease_uid() if root else None
    except (RuntimeError, OSError) as exc:
        return IsolationProbe(None, f"bubblewrap is installed but {exc}", **base)  # type: ignore[arg-type]
    errors = []
    variants: tuple[tuple[str, ...], ...] = (
        ((),) if root else (("--unshare-user", "--disable-userns"), ())
    )
    try:
        with tempfile.TemporaryDirectory(prefix="airegistry-probe-") as tmp:
            os.chmod(tmp, 0o755)
            uid = lease.uid if lease is not None else -1
            etc, proc = V.synthetic_files(Path(tmp) / "etc", uid, 1)
            view_args = V.build_view(
                needs=needs,
                code_dir=Path(tmp),
                etc_files=etc,
                proc_files=proc,
                tmpfs_bytes=16 * 1024 * 1024,
            )
            check = _interpreter_check(SANDBOX_WORKER_PATH, uid if root else None)
            for extra in variants:
                candidate = IsolationProbe(bwrap, "", tuple(extra), root, **base)  # type: ignore[arg-type]
                ok, err = _run_probe(bwrap_argv(candidate, view_args, check), None)
                if ok:
                    who = "a uid of its own per worker" if root else f"uid {os.geteuid()}"
                    return IsolationProbe(
                        bwrap,
                        f"bubblewrap works ({bwrap}); workers run namespaced as {who}, "
                        "with a seccomp filter",
                        tuple(extra),
                        root,
                        **base,  # type: ignore[arg-type]
                    )
                errors.append(err)
    finally:
        if lease is not None:
            lease.release()
    return IsolationProbe(
        None,
        f"bubblewrap is installed but cannot create a sandbox here ({errors[-1]})",
        **base,  # type: ignore[arg-type]
    )


def bwrap_argv(probe: IsolationProbe, view_args: list[str], worker_argv: list[str]) -> list[str]:
    """bwrap command line that runs ``worker_argv`` in the view ``view_args`` (see view.py)."""
    assert probe.bwrap is not None
    argv = [probe.bwrap, "--die-with-parent", "--new-session"]
    if probe.privileged:
        # Privileged bwrap: every namespace but the user one (the worker's uid must stay a
        # real, unprivileged uid on the host, which it switches to itself).
        argv += [
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-uts",
            "--unshare-cgroup-try",
            *_ROOT_CAPS,
        ]
    else:
        argv += ["--unshare-all", *probe.bwrap_flags]
    argv += ["--hostname", V.SANDBOX_HOSTNAME, *view_args, "--chdir", "/tmp", "--"]
    return argv + worker_argv


def isolation_status(refresh: bool = False) -> dict[str, Any]:
    """What isolation workers get on this host.

    ``{"bwrap", "mode", "reason", "uid", "seccomp"}``: ``uid`` is ``"own"`` when every worker
    runs under a uid of its own, else the uid workers share (the caller's).
    """
    probe = probe_isolation(refresh)
    full = probe.bwrap is not None
    own = probe.privileged if full else probe.limits_own_uids
    return {
        "bwrap": full,
        "mode": "full" if full else "limits",
        "reason": probe.reason,
        "uid": "own" if own else os.geteuid(),
        "seccomp": bool(probe.seccomp),
    }


def hidden_paths(
    extra: Sequence[Path] = (), environ: Mapping[str, str] | None = None
) -> list[Path]:
    """Paths made invisible inside the bubblewrap sandbox.

    The registry home (``AIREGISTRY_HOME`` and anything the caller passes), AWS credential and
    config files, and the usual credential stores of the parent's user.
    """
    env = os.environ if environ is None else environ
    out: list[Path] = [Path(p) for p in extra]
    for var in ("AIREGISTRY_HOME", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE"):
        if env.get(var):
            out.append(Path(env[var]))
    home = Path(env.get("HOME") or os.path.expanduser("~"))
    out += [home / d for d in _CREDENTIAL_DIRS]
    out += [home / f for f in _CREDENTIAL_FILES]
    seen: set[Path] = set()
    result = []
    for p in out:
        try:
            rp = p.expanduser().resolve()
        except OSError:
            continue
        if rp not in seen and rp != Path("/") and rp.exists():
            seen.add(rp)
            result.append(rp)
    return result


def clean_environment(
    user_env: Mapping[str, str],
    *,
    home: str,
    code_dir: str,
    handler: str,
    function_name: str,
    version: str,
    memory_mb: int,
) -> dict[str, str]:
    """The worker's whole environment: nothing inherited from the parent.

    No ``AIREGISTRY_*``, no ``AWS_*`` credentials: only the runtime's own variables plus the
    function's configured environment (which may not override the runtime's variables).
    """
    env = {
        "PATH": SAFE_PATH,
        "LANG": "C.UTF-8",
        "HOME": home,
        "TMPDIR": home,
        "LAMBDA_TASK_ROOT": code_dir,
        "_HANDLER": handler,
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_LAMBDA_FUNCTION_VERSION": version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
    }
    for key, value in user_env.items():
        if key in RESERVED_ENV:
            continue
        env[str(key)] = str(value)
    return env


def tree_readable_by_others(root: Path, check_ancestors: bool) -> bool:
    """True when a process with no relation to the owner can read every file under ``root``."""
    try:
        if check_ancestors:
            for parent in root.resolve().parents:
                if not os.stat(parent).st_mode & stat.S_IXOTH:
                    return False
        for dirpath, dirnames, filenames in os.walk(root):
            mode = os.stat(dirpath).st_mode
            if (mode & (stat.S_IROTH | stat.S_IXOTH)) != (stat.S_IROTH | stat.S_IXOTH):
                return False
            for name in filenames:
                st = os.lstat(os.path.join(dirpath, name))
                if stat.S_ISREG(st.st_mode) and not st.st_mode & stat.S_IROTH:
                    return False
            del dirnames  # os.walk recurses on its own
    except OSError:
        return False
    return True


def stage_copy(src: Path, dest: Path) -> Path:
    """Copy a deployment package so an unprivileged worker can read (but not write) it."""
    shutil.copytree(src, dest, symlinks=True)
    for dirpath, _dirnames, filenames in os.walk(dest):
        os.chmod(dirpath, 0o755)
        for name in filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                continue
            mode = os.stat(path).st_mode
            os.chmod(path, 0o755 if mode & stat.S_IXUSR else 0o644)
    return dest
