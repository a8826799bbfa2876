"""The filesystem a sandboxed function sees: built from what the interpreter needs, nothing else.

Lambda shows a function its code at ``/var/task``, the runtime, ``/tmp`` and little more. Here
the bubblewrap root is an empty tmpfs into which we mount, read-only:

- the interpreter's prefixes (``sys.prefix``, i.e. the virtualenv with its packages, and
  ``sys.base_prefix``) -- at their own paths, because that is where Python looks;
- every shared library the interpreter loads: found once per process by a probe interpreter
  that imports every extension module of the standard library (and msgspec), opens the
  libraries manylinux wheels may link against (libstdc++, libgcc_s, ...), and lists what the
  dynamic loader mapped (``dl_iterate_phdr``), under the names the loader used; symlinks on
  the way (``/lib -> usr/lib``, ``libz.so.1 -> libz.so.1.2.13``) are recreated as symlinks;
- the worker's own code at ``/var/runtime`` and the function's code at ``/var/task``;
- a synthetic ``/etc/passwd`` and ``/etc/group`` naming only root, the worker's uid and
  nobody, and a synthetic ``/proc/cpuinfo`` listing one generic CPU.

Plus a private, size-limited ``/tmp`` (tmpfs), bubblewrap's minimal ``/dev`` (null, zero, full,
random, urandom, tty, shm, pts) and a ``/proc`` of the sandbox's own PID namespace. Nothing else
of the host exists inside: no ``/etc``, ``/home``, ``/opt``, ``/sys``, ``/var/log``, no sources.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

TASK_ROOT = "/var/task"
RUNTIME_ROOT = "/var/runtime"
RUNTIME_DIR = Path(__file__).resolve().parent  # runtime/: holds worker.py and guest/
SANDBOX_HOSTNAME = "sandbox"
# Libraries a manylinux wheel may link against without bundling them (auditwheel's policy),
# plus a few the standard library's extension modules and common wheels open at run time.
_WHEEL_SYSTEM_LIBS = (
    "libgcc_s.so.1", "libstdc++.so.6", "libm.so.6", "libdl.so.2", "librt.so.1", "libc.so.6",
    "libnsl.so.1", "libutil.so.1", "libpthread.so.0", "libresolv.so.2", "libz.so.1",
    "libgomp.so.1", "libexpat.so.1",
)
_PROBE = r"""
import ctypes, json, os, sys
names = {"modules": [], "libs": []}
for entry in list(sys.path):
    if entry.endswith("lib-dynload") and os.path.isdir(entry):
        for file in sorted(os.listdir(entry)):
            module = file.split(".", 1)[0]
            if module in ("_tkinter", "_curses", "_curses_panel", "readline"):
                continue
            try:
                __import__(module)
            except Exception:
                pass
import msgspec
for lib in sys.argv[1:]:
    try:
        ctypes.CDLL(lib)
    except OSError:
        pass

class Info(ctypes.Structure):
    _fields_ = [("addr", ctypes.c_void_p), ("name", ctypes.c_char_p)]

CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(Info), ctypes.c_size_t, ctypes.c_void_p)
def found(info, size, data):
    name = info.contents.name
    if name:
        names["libs"].append(os.fsdecode(name))
    return 0
ctypes.CDLL(None).dl_iterate_phdr(CALLBACK(found), None)
print(json.dumps(names))
"""


@dataclass(frozen=True)
class InterpreterNeeds:
    """What the worker interpreter needs mounted (absolute host paths)."""

    trees: tuple[str, ...]  # directories mounted whole
    files: tuple[str, ...]  # files (shared libraries) as the loader opens them


_needs_lock = threading.Lock()
_needs: InterpreterNeeds | None = None


def interpreter_needs() -> InterpreterNeeds:
    """Probe (once per process) what this interpreter loads; raises ``RuntimeError`` if the
    probe interpreter cannot run."""
    global _needs
    with _needs_lock:
        if _needs is None:
            proc = subprocess.run(
                [sys.executable, "-I", "-B", "-c", _PROBE, *_WHEEL_SYSTEM_LIBS],
                capture_output=True,
                env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
                cwd="/",
                timeout=60,
                check=False,
            )
            if proc.returncode != 0:
                tail = proc.stderr.decode("utf-8", "replace")[-400:]
                raise RuntimeError(f"could not probe the interpreter's libraries: {tail}")
            found = json.loads(proc.stdout)
            trees = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix)}
            files = sorted({p for p in found["libs"] if os.path.isabs(p) and os.path.exists(p)})
            files = [f for f in files if not any(_under(os.path.realpath(f), t) for t in trees)]
            _needs = InterpreterNeeds(tuple(sorted(trees)), tuple(files))
        return _needs


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


class _Mounts:
    """bubblewrap arguments that recreate host paths (and their symlink chains) read-only."""

    def __init__(self) -> None:
        self.args: list[str] = []
        self._dirs: set[str] = {"/"}
        self._done: set[str] = set()

    def dir(self, path: str) -> None:
        parent = os.path.dirname(path)
        if parent not in self._dirs:
            self.dir(parent)
        if path not in self._dirs:
            self._dirs.add(path)
            self.args += ["--perms", "0755", "--dir", path]

    def bind(self, source: str, dest: str) -> None:
        if dest in self._done:
            return
        self._done.add(dest)
        self.dir(os.path.dirname(dest))
        self.args += ["--ro-bind", source, dest]
        if os.path.isdir(source):
            self._dirs.add(dest)

    def host_path(self, path: str, depth: int = 0) -> None:
        """Make ``path`` resolve inside the sandbox as it does on the host."""
        if depth > 40:
            raise RuntimeError(f"too many symlinks resolving {path}")
        parts = Path(path).parts
        current = "/"
        for index, part in enumerate(parts[1:], start=1):
            candidate = os.path.join(current, part)
            if os.path.islink(candidate):
                target = os.readlink(candidate)
                if candidate not in self._done:
                    self._done.add(candidate)
                    self.dir(current)
                    self.args += ["--symlink", target, candidate]
                resolved = os.path.normpath(os.path.join(current, target))
                rest = parts[index + 1 :]
                self.host_path(os.path.join(resolved, *rest), depth + 1)
                return
            current = candidate
        self.bind(current, current)


def build_view(
    *,
    needs: InterpreterNeeds,
    code_dir: Path,
    etc_files: dict[str, Path],
    proc_files: dict[str, Path],
    tmpfs_bytes: int,
    hide: Sequence[Path] = (),
) -> list[str]:
    """The bubblewrap mount arguments of one worker's view (see the module docstring)."""
    mounts = _Mounts()
    args = ["--proc", "/proc", "--dev", "/dev"]
    args += ["--size", str(tmpfs_bytes), "--perms", "1777", "--tmpfs", "/tmp"]
    for tree in needs.trees:
        mounts.host_path(tree)
    for file in needs.files:
        mounts.host_path(file)
    mounts.bind(str(code_dir), TASK_ROOT)
    mounts.bind(str(RUNTIME_DIR / "worker.py"), f"{RUNTIME_ROOT}/worker.py")
    mounts.bind(str(RUNTIME_DIR / "guest"), f"{RUNTIME_ROOT}/guest")
    for dest, source in etc_files.items():
        mounts.bind(str(source), dest)
    args += mounts.args
    for dest, source in proc_files.items():
        args += ["--ro-bind", str(source), dest]
    # Secrets inside a mounted tree (a registry home inside the virtualenv, say) stay hidden.
    visible = [*needs.trees, str(code_dir)]
    for path in hide:
        real = os.path.realpath(path)
        if any(_under(real, tree) for tree in visible):
            inside = TASK_ROOT + real[len(str(code_dir)) :] if _under(real, str(code_dir)) else real
            args += ["--tmpfs", inside] if os.path.isdir(real) else ["--ro-bind", "/dev/null", inside]
    return args


def synthetic_files(directory: Path, uid: int, cpus: int) -> tuple[dict[str, Path], dict[str, Path]]:
    """Write the sandbox's /etc/passwd, /etc/group and /proc/cpuinfo into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    user = uid if uid >= 0 else os.getuid()
    passwd = directory / "passwd"
    passwd.write_text(
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"sbx_user:x:{user}:{user}:sandbox user:/tmp:/usr/sbin/nologin\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
    group = directory / "group"
    group.write_text(f"root:x:0:\nsbx_user:x:{user}:\nnogroup:x:65534:\n")
    cpuinfo = directory / "cpuinfo"
    cpuinfo.write_text(
        "".join(
            f"processor\t: {n}\nvendor_id\t: airegistry\nmodel name\t: virtual CPU\n\n"
            for n in range(max(1, cpus))
        )
    )
    for path in (passwd, group, cpuinfo):
        path.chmod(0o644)
    return {"/etc/passwd": passwd, "/etc/group": group}, {"/proc/cpuinfo": cpuinfo}
