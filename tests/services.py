"""Real backing services for the tests: a PostgreSQL cluster and a moto S3 server process.

Both are started by the fixtures on 127.0.0.1 and a free port, in a temp directory, and
stopped at the end. Where one cannot be found or started the tests that need it are
skipped locally, but under ``CI=true`` they fail: CI must never pass by silently
skipping the PostgreSQL or S3 half of the matrix.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(what: str) -> None:
    """Skip locally; fail in CI (the Makefile installs what CI needs)."""
    if IN_CI:
        pytest.fail(f"{what} (CI=true: the tests that need it must run, not be skipped)")
    pytest.skip(what)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen | None, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


# -- S3 (moto standalone server) ---------------------------------------------------------


@dataclass
class MotoServer:
    endpoint: str
    proc: subprocess.Popen
    buckets: int = 0

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing",
                            config=Config(s3={"addressing_style": "path"}))

    def new_bucket(self) -> str:
        self.buckets += 1
        name = f"store-{os.getpid()}-{self.buckets}-{secrets.token_hex(3)}"
        self.client().create_bucket(Bucket=name)
        return name


@contextlib.contextmanager
def moto_server(*, unauthenticated_requests: int | None = None) -> Iterator[MotoServer]:
    """A moto server process; with ``unauthenticated_requests`` it enforces IAM after that
    many requests (moto's ``INITIAL_NO_AUTH_ACTION_COUNT``): the first ones set up users,
    policies and buckets, every later one is checked against the caller's policies."""
    port = free_port()
    env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    if unauthenticated_requests is not None:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(unauthenticated_requests)
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
    )
    try:
        wait_for_port(port, proc, "moto S3 server")
        yield MotoServer(f"http://127.0.0.1:{port}", proc)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def s3_env(monkeypatch: pytest.MonkeyPatch, server: MotoServer) -> None:
    """Point the standard AWS configuration of this process (and children) at moto."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)


# -- PostgreSQL ----------------------------------------------------------------------------


def postgres_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def _unprivileged_user() -> pwd.struct_passwd | None:
    """initdb refuses to run as root: use the postgres (or nobody) account when root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists")


@dataclass
class PostgresCluster:
    root: Path
    port: int
    password: str
    user: str = "airegistry"
    template: str = "airegistry_template"
    _count: int = field(default=0)
    _pg_ctl: str = ""
    _run_as: pwd.struct_passwd | None = None

    def url(self, database: str, *, password: str | None = None) -> str:
        pw = self.password if password is None else password
        return f"postgresql+psycopg://{self.user}:{pw}@127.0.0.1:{self.port}/{database}"

    def admin(self):
        import psycopg

        return psycopg.connect(host="127.0.0.1", port=self.port, user=self.user,
                               password=self.password, dbname="postgres", autocommit=True)

    def new_database(self) -> str:
        """A fresh, already migrated database (a copy of the migrated template)."""
        self._count += 1
        name = f"t{os.getpid()}_{self._count}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        return self.url(name)

    def empty_database(self) -> str:
        self._count += 1
        name = f"e{os.getpid()}_{self._count}"
        with self.admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _ctl(self, *args: str) -> None:
        subprocess.run([self._pg_ctl, "-D", str(self.root / "data"), *args], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, user=self._run_as and self._run_as.pw_uid,
                       group=self._run_as and self._run_as.pw_gid, timeout=120)

    def start(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories='' "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c max_connections=200 -c shared_buffers=32MB")
        self._ctl("-o", options, "-l", str(self.root / "postgres.log"), "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._ctl("-m", mode, "-w", "stop")


@contextlib.contextmanager
def postgres_cluster() -> Iterator[PostgresCluster]:
    initdb, pg_ctl = postgres_bin("initdb"), postgres_bin("pg_ctl")
    if not initdb or not pg_ctl:
        unavailable("PostgreSQL is not installed (initdb/pg_ctl not found; `make test` "
                    "installs Debian's postgresql when run as root)")
    run_as = _unprivileged_user()
    root = Path(tempfile.mkdtemp(prefix="airegistry-pg-"))
    password = secrets.token_hex(12)
    (root / "pw").write_text(password)
    if run_as is not None:
        os.chown(root, run_as.pw_uid, run_as.pw_gid)
        os.chown(root / "pw", run_as.pw_uid, run_as.pw_gid)
    cluster = PostgresCluster(root, free_port(), password, _pg_ctl=pg_ctl, _run_as=run_as)
    ids = {"user": run_as.pw_uid, "group": run_as.pw_gid} if run_as else {}
    try:
        subprocess.run([initdb, "-D", str(root / "data"), "-U", cluster.user, "-A",
                        "scram-sha-256", "--pwfile", str(root / "pw"), "-E", "UTF8",
                        "--no-instructions"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=180, **ids)
        cluster.start()
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        shutil.rmtree(root, ignore_errors=True)
        detail = getattr(exc, "stderr", b"") or b""
        unavailable(f"could not start a PostgreSQL cluster: {exc} {detail.decode(errors='replace')[-500:]}")
    try:
        with cluster.admin() as conn:
            conn.execute(f'CREATE DATABASE "{cluster.template}"')
        from airegistry.storage.metadata import Database, migrate

        db = Database(cluster.url(cluster.template))
        migrate(db)
        db.dispose()
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)
