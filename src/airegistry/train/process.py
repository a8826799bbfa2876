"""The separate training process: launching it, its entry point, and telling whether it lives.

``train(wait=False)`` (and any run on several GPUs, through ``accelerate launch``) starts
``python -m airegistry.train.process <spec.json>`` in its own session, with its output in
``process.log`` next to the spec. The launcher keeps the ``Popen`` so that a reader in the
same process learns the exit status of a process that died; any reader on the same host
can still tell a dead one from its pid and start time (recorded in the job's
Environment), and readers elsewhere rely on the registry's heartbeat timeout.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from airegistry.pids import pid_alive
from airegistry.session import Session
from airegistry.train.reporting import JobReporter, process_start_token

_LAUNCHED: dict[str, subprocess.Popen] = {}


def describe_session(session: Session) -> dict[str, Any]:
    """Enough to open the same registry in another process."""
    return {
        "backend": session.backend,
        "home": str(session.home.path) if session.backend == "embedded" else None,
        "endpoint_url": session.endpoint_url,
        "region": session.region,
    }


def session_from(description: dict[str, Any]) -> Session:
    return Session(
        backend=description.get("backend"), home=description.get("home"),
        endpoint_url=description.get("endpoint_url"), region_name=description.get("region"),
    )


def launch(spec: Any) -> subprocess.Popen:
    """Start the training process for ``spec`` (a RunSpec) and remember it."""
    folder = Path(tempfile.mkdtemp(prefix=f"airegistry-{spec.job_name}-"))
    spec_file = folder / "spec.json"
    spec_file.write_text(json.dumps(spec.to_json(), default=str))
    processes = int(spec.compute.get("num_processes") or 1)
    command = [sys.executable, "-m", "airegistry.train.process", str(spec_file)]
    if processes > 1:
        command = [sys.executable, "-m", "accelerate.commands.launch",
                   "--num_processes", str(processes), "-m", "airegistry.train.process",
                   str(spec_file)]
    with open(folder / "process.log", "ab") as log:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True,
        )
    _LAUNCHED[spec.job_name] = process
    return process


def launched(job_name: str) -> subprocess.Popen | None:
    return _LAUNCHED.get(job_name)


def exit_description(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"exit status {code}, killed by {name}"
    return f"exit status {code}"


def process_is_dead(environment: dict[str, str]) -> bool | None:
    """True/False for a process recorded on this host; None when it cannot be told here."""
    host = environment.get("AIREGISTRY_TRAINING_HOST")
    pid = environment.get("AIREGISTRY_TRAINING_PID")
    if not host or not pid or host != socket.gethostname() or not pid.isdigit():
        return None
    start = environment.get("AIREGISTRY_TRAINING_PID_START")
    current = process_start_token(int(pid))
    if current is None:
        return not pid_alive(int(pid))
    if start and current != start:
        return True  # the pid now belongs to another process
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            state = fh.read().decode("utf-8", "replace").rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state in ("Z", "X")


def main(argv: list[str]) -> int:
    from airegistry.train.runner import RunSpec, run

    spec = RunSpec(**json.loads(Path(argv[0]).read_text()))
    session = session_from(spec.session)

    def interrupted(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    primary = int(os.environ.get("RANK", "0")) == 0
    try:
        status = run(spec, session, JobReporter(session, spec.job_name, primary=primary))
    except BaseException:
        import traceback

        traceback.print_exc()
        return 1
    return 0 if status in ("Completed", "Stopped") else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
