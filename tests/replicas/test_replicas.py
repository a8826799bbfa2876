"""Two `airegistry server` processes over one PostgreSQL and one S3 bucket, no shared disk.

Each replica has a home of its own (local caches only); what they share is the database
and the bucket. The tests talk to them as users would: the SDK with a remote session.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.services import free_port, wait_for_port

pytestmark = pytest.mark.slow

ROW = json.dumps({"prompt": "p" * 40, "completion": "c" * 40}) + "\n"


@dataclass
class Replica:
    name: str
    home: Path
    port: int
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Cluster:
    database_url: str
    env: dict[str, str]
    access_key: str
    secret_key: str
    replicas: list[Replica] = field(default_factory=list)

    def start(self, replica: Replica) -> Replica:
        log = open(replica.home.parent / f"{replica.name}.log", "ab")  # noqa: SIM115
        replica.proc = subprocess.Popen(
            [_cli(), "server", "--home", str(replica.home), "--port", str(replica.port),
             "--log-level", "warning"],
            env=dict(self.env, AIREGISTRY_NODE_NAME=replica.name), stdout=log, stderr=log,
            start_new_session=True)
        wait_for_port(replica.port, replica.proc, f"replica {replica.name}")
        return replica

    def kill(self, replica: Replica) -> None:
        assert replica.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(replica.proc.pid, signal.SIGKILL)
        replica.proc.wait(30)

    def session(self, replica: Replica):
        import boto3

        from airegistry.session import Session

        boto = boto3.session.Session(aws_access_key_id=self.access_key,
                                     aws_secret_access_key=self.secret_key,
                                     region_name="us-east-1")
        return Session(backend="remote", endpoint_url=replica.url, boto_session=boto)

    def sql(self, query: str) -> list:
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                return list(conn.execute(text(query)).all())
        finally:
            engine.dispose()


def _cli() -> str:
    return str(Path(sys.executable).parent / "airegistry")


@pytest.fixture
def cluster(postgres, moto_s3, tmp_path: Path) -> Iterator[Cluster]:
    database_url = postgres.new_database()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIREGISTRY_", "AWS_"))}
    env.update(
        AIREGISTRY_DATABASE_URL=database_url,
        AIREGISTRY_STORE_URL=f"s3://{moto_s3.new_bucket()}/registry",
        AWS_ENDPOINT_URL_S3=moto_s3.endpoint, AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AIREGISTRY_JOB_STALE_SECONDS="3", AIREGISTRY_JOB_HEARTBEAT_SECONDS="0.5",
        AIREGISTRY_HOME=str(tmp_path / "unused-home"),
    )
    # A key created through one replica's home is stored in the shared database.
    out = subprocess.run([_cli(), "server", "--home", str(tmp_path / "a" / "home"),
                          "--create-key"], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "metadata store" in out.stdout and "PostgreSQL" in out.stdout
    lines = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    made = Cluster(database_url, env, lines["AWS_ACCESS_KEY_ID"], lines["AWS_SECRET_ACCESS_KEY"])
    try:
        yield made
    finally:
        for replica in made.replicas:
            if replica.proc is not None and replica.proc.poll() is None:
                made.kill(replica)


def _replica(cluster: Cluster, tmp_path: Path, name: str) -> Replica:
    replica = Replica(name, tmp_path / name / "home", free_port())
    replica.home.mkdir(parents=True, exist_ok=True)
    cluster.replicas.append(replica)
    return cluster.start(replica)


def test_created_through_a_read_through_b_and_byoc_runs_on_b(cluster: Cluster, tmp_path) -> None:
    from airegistry.dataset import DataSet
    from airegistry.evaluator import Evaluator

    a, b = _replica(cluster, tmp_path, "a"), _replica(cluster, tmp_path, "b")
    on_a, on_b = cluster.session(a), cluster.session(b)
    source = tmp_path / "rows.jsonl"
    source.write_text(ROW * 200)
    created = DataSet.create("shared-ds", str(source), "sft", sagemaker_session=on_a)
    assert created.status == "Available"
    seen = DataSet.get("shared-ds", sagemaker_session=on_b)
    assert (seen.version, seen.source, seen.stats["rows"]) == ("1.0.0", created.source, 200)
    with contextlib.closing(seen.open()) as stream:  # the bytes, read through B's S3 API
        assert stream.read() == source.read_bytes()

    code = tmp_path / "reward.py"
    code.write_text("def lambda_handler(event, context):\n"
                    "    return {'reward': 1.0 if event['response'] == 'yes' else 0.0}\n")
    Evaluator.create("shared-eval", "RewardFunction", str(code), sagemaker_session=on_a)
    evaluator = Evaluator.get("shared-eval", sagemaker_session=on_b)
    assert evaluator.invoke({"prompt": "q", "response": "yes"})["reward"] == 1.0
    # B fetched the package from the blob store and cached it by sha256 on its own disk
    cached = list((b.home / "runtime" / "code").iterdir())
    assert len(cached) == 1 and len(cached[0].name) == 64


def test_import_of_a_killed_replica_is_finished_by_the_other(cluster: Cluster, tmp_path) -> None:
    from airegistry.dataset import DataSet

    a = _replica(cluster, tmp_path, "a")
    on_a = cluster.session(a)
    source = tmp_path / "big.jsonl"
    source.write_text(ROW * 250_000)  # ~25 MB: its import takes a while to stream and check
    for attempt in range(5):
        name = f"takeover-{attempt}"
        DataSet.create(name, str(source), "sft", wait=False, sagemaker_session=on_a)
        caught = False
        for _ in range(5000):
            rows = cluster.sql("SELECT j.state, j.owner FROM jobs j JOIN hub_contents c "
                               f"ON c.id = j.content_id WHERE c.name = '{name}'")
            if not rows:
                break  # finished before we could kill it: try again
            if rows[0][0] == "running" and str(rows[0][1]).startswith("a:"):
                cluster.kill(a)
                caught = True
                break
            time.sleep(0.002)
        if caught:
            break
        a = cluster.start(a)
        on_a = cluster.session(a)
    assert caught, "replica A never got killed mid-import"
    left = cluster.sql("SELECT j.state, j.owner, j.attempts FROM jobs j JOIN hub_contents c "
                       f"ON c.id = j.content_id WHERE c.name = '{name}'")
    assert left and left[0][0] == "running" and left[0][1].startswith("a:")  # A died holding it

    b = _replica(cluster, tmp_path, "b")  # another host: it must wait for A's heartbeat to age
    dataset = DataSet.get(name, sagemaker_session=cluster.session(b))
    dataset.wait(poll=0.2, timeout=120)
    assert dataset.status == "Available"
    assert dataset.stats["rows"] == 250_000
    assert cluster.sql(f"SELECT count(*) FROM hub_contents WHERE name = '{name}'") == [(1,)]
