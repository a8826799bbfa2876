"""Import jobs: crash recovery across processes, concurrency limits, queue bounds."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from airegistry.home import Home, _outcome_values
from airegistry.hub.inprocess import make_inprocess_client
from airegistry.jobs.runner import ImportOutcome, JobRunner
from airegistry.storage.metadata import JobRepository

ROWS = "".join(json.dumps({"prompt": f"p{i}", "completion": f"c{i}"}) + "\n" for i in range(50))

CHILD_HANGS_IN_IMPORT = r"""
import sys, time
import airegistry.formats as formats
from airegistry.dataset import DataSet
from airegistry.session import default_session
store = default_session().home.objects
store.ensure_bucket("src-bucket")
store.put_file("src-bucket", "rows.jsonl", sys.argv[1])
marker = sys.argv[2]
def hang(*args, **kwargs):
    open(marker, "w").close()
    time.sleep(3600)
formats.validate = hang  # the import job (not this script) now hangs mid-import
DataSet.create("crashy", "s3://src-bucket/rows.jsonl", "sft", wait=False)
time.sleep(3600)
"""

CHILD_CREATES = r"""
import sys, time
from airegistry.dataset import DataSet
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
ds = DataSet.create("shared", sys.argv[1], "sft", wait=True)
print(ds.version)
"""


def _child_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["AIREGISTRY_HOME"] = str(home)
    env.pop("AIREGISTRY_ENDPOINT_URL", None)
    return env


def test_import_of_a_killed_process_is_finished_by_the_next(registry_home: Path, tmp_path: Path) -> None:
    source = tmp_path / "rows.jsonl"
    source.write_text(ROWS)
    marker = tmp_path / "in-import"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_HANGS_IN_IMPORT, str(source), str(marker)],
        env=_child_env(registry_home),
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None, "child exited early"
            assert time.monotonic() < deadline, "child never reached the import"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    from airegistry.air_constants import HubContentStatus
    from airegistry.dataset import DataSet

    ds = DataSet.get("crashy")
    assert ds.status in (HubContentStatus.IMPORTING, HubContentStatus.AVAILABLE)
    ds.wait(poll=0.1, timeout=60)
    assert ds.status is HubContentStatus.AVAILABLE
    assert ds.stats["rows"] == 50


def test_two_processes_create_versions_at_the_same_moment(registry_home: Path, tmp_path: Path) -> None:
    source = tmp_path / "rows.jsonl"
    source.write_text(ROWS)
    from airegistry.dataset import DataSet

    DataSet.list()  # create the home first so both children only race for versions
    start = time.time() + 2.0
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD_CREATES, str(source), str(start)],
            env=_child_env(registry_home), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for _ in range(2)
    ]
    outputs = [c.communicate(timeout=120) for c in children]
    for child, (_, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
    versions = sorted(out.strip() for out, _ in outputs)
    assert versions == ["1.0.0", "2.0.0"]


def test_per_hub_concurrency_limit_and_queueing(tmp_path: Path) -> None:
    home = Home(tmp_path / "home", start_jobs=False)
    try:
        client = make_inprocess_client(home.wire, region=home.region)
        client.create_hub(HubName="hub-x", HubDescription="x")
        release = threading.Event()
        lock = threading.Lock()
        running = {"now": 0, "max": 0, "done": 0}

        def slow(ctx):
            with lock:
                running["now"] += 1
                running["max"] = max(running["max"], running["now"])
            release.wait(30)
            with lock:
                running["now"] -= 1
                running["done"] += 1
            return ImportOutcome("Available")

        runner = JobRunner(JobRepository(home.db), {"import_dataset": slow}, _outcome_values,
                           per_hub_limit=2, poll_s=0.02, heartbeat_s=0.05)
        doc = json.dumps({"DatasetS3Bucket": "b", "DatasetS3Prefix": "k.jsonl"})
        for i in range(5):
            client.import_hub_content(
                HubName="hub-x", HubContentType="DataSet", HubContentName=f"d{i}",
                DocumentSchemaVersion="2.0.0", HubContentDocument=doc, HubContentVersion="1.0.0",
            )
        runner.start()
        deadline = time.monotonic() + 30
        while running["max"] < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        assert running["max"] == 2
        statuses = [
            client.describe_hub_content(HubName="hub-x", HubContentType="DataSet", HubContentName=f"d{i}")[
                "HubContentStatus"
            ]
            for i in range(5)
        ]
        assert statuses == ["Importing"] * 5
        assert runner.queue_depth() == {"running": 2, "queued": 3}
        release.set()
        while running["done"] < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)
        assert running["max"] == 2
        for i in range(5):
            d = client.describe_hub_content(HubName="hub-x", HubContentType="DataSet", HubContentName=f"d{i}")
            assert d["HubContentStatus"] == "Available"
        runner.stop()
    finally:
        home.close()


def test_job_that_keeps_dying_gives_up(tmp_path: Path) -> None:
    home = Home(tmp_path / "home", start_jobs=False)
    try:
        client = make_inprocess_client(home.wire, region=home.region)
        client.create_hub(HubName="hub-y", HubDescription="y")
        doc = json.dumps({"DatasetS3Bucket": "b", "DatasetS3Prefix": "k.jsonl"})
        client.import_hub_content(
            HubName="hub-y", HubContentType="DataSet", HubContentName="doomed",
            DocumentSchemaVersion="2.0.0", HubContentDocument=doc, HubContentVersion="1.0.0",
        )
        from sqlalchemy import update

        from airegistry.storage.metadata.tables import jobs

        with home.db.write() as conn:  # as if five processes had died running it
            conn.execute(update(jobs).values(attempts=5, state="running", owner="otherhost:1:x",
                                             heartbeat_at=0))
        runner = JobRunner(JobRepository(home.db), {}, _outcome_values, poll_s=0.02, max_attempts=5)
        runner.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            d = client.describe_hub_content(HubName="hub-y", HubContentType="DataSet", HubContentName="doomed")
            if d["HubContentStatus"] != "Importing":
                break
            time.sleep(0.02)
        assert d["HubContentStatus"] == "ImportFailed"
        assert "interrupted 5 times" in d["FailureReason"]
        runner.stop()
    finally:
        home.close()


@pytest.mark.parametrize("env_limit", ["1"])
def test_queue_bound_surfaces_as_resource_limit(registry_home: Path, tmp_path: Path, monkeypatch,
                                                env_limit: str) -> None:
    from botocore.exceptions import ClientError

    from airegistry.dataset import DataSet

    monkeypatch.setenv("AIREGISTRY_MAX_QUEUED_IMPORTS", env_limit)
    home = Home(registry_home, start_jobs=False)  # a process that never runs jobs
    try:
        from airegistry.session import Session

        session = Session(home=registry_home)
        session.__dict__["home"] = home
        source = tmp_path / "rows.jsonl"
        source.write_text(ROWS)
        DataSet.create("first", str(source), "sft", wait=False, sagemaker_session=session)
        with pytest.raises(ClientError) as exc:
            DataSet.create("second", str(source), "sft", wait=False, sagemaker_session=session)
        assert exc.value.response["Error"]["Code"] == "ResourceLimitExceeded"
    finally:
        home.close()


CHILD_RUNS_JOBS = r"""
import os, sys, time
from pathlib import Path
from airegistry.home import Home, _outcome_values
from airegistry.jobs.runner import ImportOutcome, JobRunner
from airegistry.storage.metadata import JobRepository

home = Home(Path(sys.argv[1]), start_jobs=False)
log = sys.argv[2]
start = float(sys.argv[3])

def record(ctx):
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    os.write(fd, f"{ctx.content.id} {os.getpid()}\n".encode())
    os.close(fd)
    time.sleep(0.05)
    return ImportOutcome("Available")

runner = JobRunner(JobRepository(home.db), {"import_dataset": record}, _outcome_values,
                   per_hub_limit=3, poll_s=0.01, heartbeat_s=0.5)
while time.time() < start:
    time.sleep(0.001)
runner.start()
deadline = time.time() + 90
while time.time() < deadline:
    depth = runner.queue_depth()
    if not depth.get("queued") and not depth.get("running"):
        break
    time.sleep(0.05)
runner.stop()
home.close()
"""


def test_four_processes_claiming_at_once_run_each_job_exactly_once(tmp_path: Path) -> None:
    home = Home(tmp_path / "home", start_jobs=False)
    try:
        client = make_inprocess_client(home.wire, region=home.region)
        client.create_hub(HubName="hub-a", HubDescription="a")
        doc = json.dumps({"DatasetS3Bucket": "b", "DatasetS3Prefix": "k.jsonl"})
        for i in range(24):
            client.import_hub_content(
                HubName="hub-a", HubContentType="DataSet", HubContentName=f"d{i}",
                HubContentVersion="1.0.0", DocumentSchemaVersion="2.0.0",
                HubContentDocument=doc)
        log = tmp_path / "runs.log"
        start = time.time() + 3.0
        children = [
            subprocess.Popen([sys.executable, "-c", CHILD_RUNS_JOBS, str(home.path), str(log),
                              str(start)], env=_child_env(home.path), stderr=subprocess.PIPE,
                             text=True)
            for _ in range(4)
        ]
        for child in children:
            _, err = child.communicate(timeout=180)
            assert child.returncode == 0, err
        runs = [line.split() for line in log.read_text().splitlines()]
        ids = [content for content, _ in runs]
        assert len(ids) == 24 and len(set(ids)) == 24  # every job ran, none twice
        assert len({pid for _, pid in runs}) > 1  # the work really was shared
        listed = client.list_hub_contents(HubName="hub-a", HubContentType="DataSet")
        assert {s["HubContentStatus"] for s in listed["HubContentSummaries"]} == {"Available"}
    finally:
        home.close()
