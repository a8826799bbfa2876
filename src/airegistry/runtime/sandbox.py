"""How worker processes are isolated: command lines, environment, privilege drop, probing.

Two modes:

``full``   bubblewrap (``bwrap``) runs the worker in fresh pid/net/ipc/uts/cgroup namespaces
           (plus a user namespace when the parent is not root) with a read-only view of ``/``,
           a private tmpfs ``/tmp`` (its working directory and HOME), its own ``/proc`` and
           ``/dev``, no network (only a loopback device of its own) and hidden
           credential/registry directories. A root parent has bwrap set up the namespaces
           privileged and ``setpriv`` drop the worker to uid/gid 65534 (``nobody``) with no
           capabilities, so the worker is unprivileged on the host too.
``limits`` the same worker without namespaces: resource limits, a clean environment, a
           private working directory, its own session, dropped to uid 65534 when the parent is
           root and the interpreter is usable by that user. It can still read whatever files the
           worker's uid may read and open network connections.

Whether ``full`` works is probed once per process (a real bwrap run of the interpreter) and
cached, because namespaces can be present in the kernel yet forbidden by policy.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

WORKER_PATH = Path(__file__).with_name("worker.py").resolve()
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
# Files/directories of the parent's user that hold credentials: made invisible under bwrap.
_CREDENTIAL_DIRS = (".aws", ".ssh", ".airegistry", ".docker", ".kube", ".gnupg", ".config/gcloud")
_CREDENTIAL_FILES = (".netrc", ".git-credentials", ".pypirc")


@dataclass(frozen=True)
class IsolationProbe:
    """Outcome of probing the host once."""

    bwrap: str | None  # path of a working bwrap, None when full isolation is unavailable
    reason: str  # human-readable: why full isolation is (un)available
    bwrap_flags: tuple[str, ...] = ()  # optional hardening flags this bwrap accepts
    drop_to: int | None = None  # uid/gid sandboxed workers run as (None: the parent's own uid)
    limits_drop_to: int | None = None  # same, for limits mode
    # Parent is root: bwrap runs privileged (no user namespace) and ``setpriv`` then drops the
    # worker to ``drop_to`` with no capabilities and no_new_privs. Unprivileged parents use a
    # user namespace instead and keep their own uid outside it.
    setpriv: str | None = None


_probe_lock = threading.Lock()
_probe_cache: IsolationProbe | None = None


def _run_probe(argv: list[str], drop_to: int | None) -> tuple[bool, str]:
    kwargs: dict[str, object] = {}
    if drop_to is not None:
        kwargs.update(user=drop_to, group=drop_to, extra_groups=[])
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


def _interpreter_check() -> list[str]:
    # What every worker does first: start isolated, import msgspec, read the worker source.
    return [sys.executable, "-I", "-B", "-c", f"import msgspec; open({str(WORKER_PATH)!r}).close()"]


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
    limits_drop: int | None = None
    if root:
        ok, _ = _run_probe(_interpreter_check(), NOBODY)
        limits_drop = NOBODY if ok else None
    bwrap = shutil.which("bwrap", path=os.environ.get("PATH", SAFE_PATH) + ":" + SAFE_PATH)
    if bwrap is None:
        return IsolationProbe(
            None,
            "bubblewrap (bwrap) is not installed; install the 'bubblewrap' package for full "
            "isolation",
            limits_drop_to=limits_drop,
        )
    setpriv = shutil.which("setpriv", path=SAFE_PATH + ":/usr/sbin:/sbin") if root else None
    if root and setpriv is None:
        return IsolationProbe(
            None,
            "running as root but setpriv (util-linux) is missing, so workers could not drop "
            "to an unprivileged user inside bubblewrap",
            limits_drop_to=limits_drop,
        )
    errors = []
    variants: tuple[tuple[str, ...], ...] = (
        ((),) if root else (("--unshare-user", "--disable-userns"), ())
    )
    for extra in variants:
        candidate = IsolationProbe(
            bwrap, "", tuple(extra), NOBODY if root else None, limits_drop, setpriv
        )
        argv = full_argv(
            candidate,
            worker_argv=_interpreter_check(),
            code_dir=WORKER_PATH.parent,
            hide=hidden_paths(),
            tmpfs_bytes=16 * 1024 * 1024,
        )
        ok, err = _run_probe(argv, None)
        if ok:
            who = f"uid {NOBODY} (via setpriv)" if root else f"uid {os.geteuid()}"
            return IsolationProbe(
                bwrap,
                f"bubblewrap works ({bwrap}); workers run namespaced as {who}",
                tuple(extra),
                candidate.drop_to,
                limits_drop,
                setpriv,
            )
        errors.append(err)
    return IsolationProbe(
        None,
        f"bubblewrap is installed but cannot create a sandbox here ({errors[-1]})",
        limits_drop_to=limits_drop,
    )


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


def _within(path: Path, parents: Sequence[Path]) -> bool:
    return any(path == p or p in path.parents for p in parents)


def _untraversable_ancestor(path: Path) -> Path | None:
    """The top-most ancestor of ``path`` that other users cannot enter (e.g. ``/root``)."""
    for parent in reversed(path.parents):
        try:
            if not os.stat(parent).st_mode & stat.S_IXOTH:
                return parent
        except OSError:
            return None
    return None


def full_argv(
    probe: IsolationProbe,
    *,
    worker_argv: list[str],
    code_dir: Path,
    hide: Sequence[Path],
    tmpfs_bytes: int,
) -> list[str]:
    """bwrap command line that runs ``worker_argv`` with full isolation."""
    assert probe.bwrap is not None
    argv = [probe.bwrap, "--die-with-parent", "--new-session"]
    if probe.setpriv:
        # Privileged bwrap: every namespace but the user one (uid 65534 must stay a real,
        # unprivileged uid on the host, which setpriv gives us below).
        argv += [
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-uts",
            "--unshare-cgroup-try",
        ]
    else:
        argv += ["--unshare-all", *probe.bwrap_flags]
    argv += ["--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev"]
    argv += ["--size", str(tmpfs_bytes), "--perms", "1777", "--tmpfs", "/tmp"]
    needed = [
        code_dir.resolve(),
        Path(sys.prefix).resolve(),
        Path(sys.base_prefix).resolve(),
        Path(sys.executable).resolve().parent,
        WORKER_PATH.parent,
    ]
    masks = list(hide)
    if probe.drop_to is not None:
        for p in needed:
            blocked = _untraversable_ancestor(p)
            if blocked is not None and blocked not in masks:
                masks.append(blocked)
    # /tmp is already a private tmpfs: nothing under it needs (or gets) its own mask.
    masks = [p for p in masks if not (_within(Path("/tmp"), [p]) or _within(p, [Path("/tmp")]))]
    for p in masks:
        if p.is_dir():
            argv += ["--tmpfs", str(p)]
        else:
            argv += ["--ro-bind", "/dev/null", str(p)]
    # Put back what the worker needs where a mask covered it (e.g. a venv inside a home).
    rebound: list[Path] = []
    made: set[Path] = set()
    for p in needed:
        must = p == needed[0] or _within(p, masks) or _within(p, [Path("/tmp")])
        if must and not _within(p, rebound):
            # bwrap would create missing parents 0700 (untraversable for the worker uid).
            tops = [m for m in [*masks, Path("/tmp")] if _within(p, [m])]
            top = max(tops, key=lambda m: len(m.parts)) if tops else None
            for parent in reversed(p.parents):
                inside = top is not None and _within(parent, [top]) and parent != top
                if inside and parent not in made:
                    argv += ["--perms", "0755", "--dir", str(parent)]
                    made.add(parent)
            argv += ["--ro-bind", str(p), str(p)]
            rebound.append(p)
    argv += ["--chdir", "/tmp", "--"]
    if probe.setpriv and probe.drop_to is not None:
        uid = str(probe.drop_to)
        argv += [
            probe.setpriv,
            f"--reuid={uid}",
            f"--regid={uid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            "--",
        ]
    return argv + worker_argv


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
