"""The unmodified official SDK (``sagemaker-train``) against a real ``airegistry server``.

The SDK is installed from PyPI into a virtualenv of its own, kept between runs in
``$AIREGISTRY_TEST_CACHE`` (default ``~/.cache/airegistry-tests``) under a name that
carries the SDK and Python versions, so only the first run pays for the install. Its flows
(``official_flows.py``) run with that interpreter against a server process started here,
configured the way a user configures the SDK for another endpoint: ``AWS_ENDPOINT_URL``,
an access key from ``airegistry server --create-key``, ``SAGEMAKER_VALIDATE_ROLE=false``
and a SageMaker config that opts out of telemetry.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.services import free_port, unavailable

pytestmark = pytest.mark.slow

SDK = "sagemaker-train==1.27.0"
FLOWS = Path(__file__).with_name("official_flows.py")
CHECK_INSTALLED = ("import importlib.metadata as m, sys; "
                   f"sys.exit(m.version('sagemaker-train') != {SDK.split('==')[1]!r})")
#: The flows take about a minute (the SDK polls every few seconds); the limit leaves room
#: for a slow machine and still ends below the test's own timeout, so a hang is reported
#: with the steps that finished.
FLOWS_TIMEOUT_S = 600
SAGEMAKER_CONFIG = (
    'SchemaVersion: "1.0"\n'
    "SageMaker:\n"
    "  PythonSDK:\n"
    "    Modules:\n"
    "      TelemetryOptOut: true\n"
)


def _cache_dir() -> Path:
    root = os.environ.get("AIREGISTRY_TEST_CACHE") or Path.home() / ".cache" / "airegistry-tests"
    return Path(root).expanduser()


@pytest.fixture(scope="session")
def sdk_python() -> Path:
    """The interpreter of a virtualenv with the official SDK, built once and reused."""
    version = f"py{sys.version_info.major}.{sys.version_info.minor}"
    cache = _cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    venv = cache / f"{SDK.replace('==', '-')}-{version}"
    python = venv / "bin" / "python"
    with open(cache / ".sagemaker-train.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # xdist workers: one builds, the others wait
        # Ask the package metadata, not the SDK: importing it creates boto3 clients, and
        # with no endpoint or region configured botocore spends over a minute probing the
        # instance-metadata service (the cause of a CI timeout).
        if python.exists() and subprocess.run(
                [str(python), "-c", CHECK_INSTALLED], capture_output=True).returncode == 0:
            return python
        staging = cache / f".{venv.name}.{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(staging)], check=True)
        install = subprocess.run(
            [str(staging / "bin" / "python"), "-m", "pip", "install", "-q",
             "--disable-pip-version-check", SDK], capture_output=True, text=True, timeout=1200)
        if install.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            unavailable(f"could not install {SDK} from PyPI: {install.stderr[-1500:]}")
        os.rename(staging, venv)  # scripts are not used, so the move keeps it working
    return python


@contextlib.contextmanager
def server_process(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    home = tmp_path / "server-home"
    cli = [sys.executable, "-m", "airegistry.cli.main", "server", "--home", str(home)]
    created = subprocess.run([*cli, "--create-key"], check=True, capture_output=True, text=True)
    keys = dict(line.split("=", 1) for line in created.stdout.splitlines() if "=" in line)
    port = free_port()
    log = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIREGISTRY_", "AWS_"))}
    with open(log, "wb") as out:
        proc = subprocess.Popen([*cli, "--port", str(port)], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            assert proc.poll() is None, log.read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("the server did not start:\n" + log.read_text()[-3000:])
        yield url, {"AWS_ACCESS_KEY_ID": keys["AWS_ACCESS_KEY_ID"],
                    "AWS_SECRET_ACCESS_KEY": keys["AWS_SECRET_ACCESS_KEY"]}
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _text(output: bytes | str | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


# Covers a cold install of the SDK from PyPI (the fixture) plus the flows.
@pytest.mark.timeout(1800)
def test_official_sdk_flows_against_the_server(sdk_python: Path, tmp_path: Path) -> None:
    config = tmp_path / "sagemaker-config.yaml"
    config.write_text(SAGEMAKER_CONFIG)
    work = tmp_path / "work"
    work.mkdir()
    with server_process(tmp_path) as (url, keys):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(tmp_path / "sdk-home"),
            "AWS_ENDPOINT_URL": url,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
            "SAGEMAKER_VALIDATE_ROLE": "false",
            "SAGEMAKER_USER_CONFIG_OVERRIDE": str(config),
            **keys,
        }
        try:
            run = subprocess.run([str(sdk_python), str(FLOWS), str(work)], env=env, cwd=work,
                                 capture_output=True, text=True, timeout=FLOWS_TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            pytest.fail(f"the flows ran past {FLOWS_TIMEOUT_S} s; they printed:\n"
                        f"{_text(exc.stdout)[-3000:]}\n{_text(exc.stderr)[-3000:]}")
    steps = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    results = [s for s in steps if "step" in s]
    summary = "\n".join(f"{'ok  ' if s['ok'] else 'FAIL'} {s['step']} ({s['seconds']} s)"
                        + ("" if s["ok"] else f"\n     {s['detail'][-1200:]}") for s in results)
    print(summary)
    assert results, f"the flows printed no step:\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"
    assert any(s.get("done") for s in steps), f"the flows did not finish:\n{run.stderr[-3000:]}"
    failed = [s for s in results if not s["ok"]]
    assert not failed, summary
