"""Housekeeping: abandoned multipart uploads expire, uploads of a create that died are collected.

Runs on SQLite and PostgreSQL (the job suite's matrix) and on both blob backends; the
orphans are made the way they happen, by an SDK process killed between its upload and
its import.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from airegistry.home import Home
from airegistry.jobs.maintenance import Maintenance, MaintenanceSettings
from airegistry.storage.blobs.maintenance import expire_uploads

ROWS = "".join(json.dumps({"prompt": f"p{i}", "completion": f"c{i}"}) + "\n" for i in range(20))

CHILD_DIES_BEFORE_REGISTERING = r"""
import os, sys
from airegistry.dataset import DataSet
from airegistry.evaluator import Evaluator

def die(*args, **kwargs):
    os._exit(17)  # killed after the upload, before the version is imported

DataSet._import_next_version = staticmethod(die)
Evaluator._import_next_version = staticmethod(die)
if sys.argv[1] == "dataset":
    DataSet.create("orphaned-data", sys.argv[2], "sft")
else:
    Evaluator.create("orphaned-prompt", "RewardPrompt", "Rate the answer from 1 to 10.")
"""


@pytest.fixture(params=["fs", "s3"])
def store_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    if request.param == "fs":
        monkeypatch.delenv("AIREGISTRY_STORE_URL", raising=False)
        return None
    from tests.services import s3_env

    server = request.getfixturevalue("moto_s3")
    s3_env(monkeypatch, server)
    url = f"s3://{server.new_bucket()}/registry"
    monkeypatch.setenv("AIREGISTRY_STORE_URL", url)
    return url


def _keys(home: Home, bucket: str, prefix: str = "") -> list[str]:
    return [o.key for o in home.objects.list_objects(bucket, prefix=prefix).contents]


def test_uploads_of_a_create_that_died_are_collected(registry_home: Path, tmp_path: Path,
                                                     store_url: str | None) -> None:
    data = tmp_path / "rows.jsonl"
    data.write_text(ROWS)
    for what in ("dataset", "prompt"):
        child = subprocess.run([sys.executable, "-c", CHILD_DIES_BEFORE_REGISTERING, what,
                                str(data)], env=dict(os.environ), capture_output=True, text=True,
                               timeout=120)
        assert child.returncode == 17, child.stderr[-2000:]

    home = Home(registry_home, start_jobs=True)
    try:
        from airegistry.dataset import DataSet
        from airegistry.session import Session

        session = Session()
        kept = DataSet.create("registered-data", str(data), "sft", sagemaker_session=session)
        bucket = home.registry_bucket
        orphans = [k for k in _keys(home, bucket) if "orphaned" in k]
        assert len(orphans) == 2, _keys(home, bucket)
        home.objects.put_object(bucket, "functions/fn/abc.zip", b"code")  # function service's
        home.objects.ensure_bucket("someone-elses")
        home.objects.put_object("someone-elses", "datasets/x/y.jsonl", b"{}\n")
        maintenance = Maintenance(home.objects, home.hub.repo, home.settings, bucket,
                                  MaintenanceSettings(interval_s=3600, orphan_grace_s=3600))

        assert maintenance.run_once().orphans_deleted == 0  # younger than the grace period
        later = datetime.now(timezone.utc) + timedelta(hours=2)
        assert maintenance.run_once(now=later).orphans_deleted == 2
        remaining = _keys(home, bucket)
        assert not [k for k in remaining if "orphaned" in k]
        assert "functions/fn/abc.zip" in remaining
        assert home.objects.exists("someone-elses", "datasets/x/y.jsonl")
        assert kept.source.startswith(f"s3://{bucket}/datasets/registered-data/")
        assert home.objects.exists(bucket, kept.source.split("/", 3)[3])
        assert DataSet.get("registered-data", sagemaker_session=session).status == "Available"
    finally:
        home.close()


def test_abandoned_multipart_uploads_expire(registry_home: Path, store_url: str | None) -> None:
    home = Home(registry_home, start_jobs=False)
    try:
        store = home.objects
        store.ensure_bucket("uploads-a")
        store.ensure_bucket("uploads-b")
        old = [store.create_multipart_upload("uploads-a", f"k{i}") for i in range(3)]
        store.upload_part("uploads-b", "big", other := store.create_multipart_upload(
            "uploads-b", "big"), 1, b"part one")
        now = datetime.now(timezone.utc)
        # moto reports a fixed Initiated (2010-11-10) for every upload; real S3 and the
        # filesystem report the real time, so only they can show a young upload is kept.
        real_clock = store_url is None
        if real_clock:
            assert expire_uploads(store, 3600, now=now) == 0
        assert expire_uploads(store, 3600, now=now + timedelta(hours=2)) == 4
        for bucket in ("uploads-a", "uploads-b"):
            assert store.list_multipart_uploads(bucket).uploads == []
        assert old and other
        if real_clock:
            fresh = store.create_multipart_upload("uploads-a", "fresh")
            assert expire_uploads(store, 3600) == 0
            assert [u.upload_id for u in store.list_multipart_uploads("uploads-a").uploads] == [
                fresh]
    finally:
        home.close()


def test_a_round_runs_once_per_interval_across_processes(registry_home: Path) -> None:
    home = Home(registry_home, start_jobs=False)
    other = Home(registry_home, start_jobs=False)  # a second process sharing the store
    try:
        now = time.time()
        assert home.settings.claim_interval("maintenance_test", 60, now)
        assert not other.settings.claim_interval("maintenance_test", 60, now + 1)
        assert not home.settings.claim_interval("maintenance_test", 60, now + 59)
        winners = [h.settings.claim_interval("maintenance_test", 60, now + 61)
                   for h in (home, other)]
        assert winners == [True, False]
        first = Maintenance(home.objects, home.hub.repo, home.settings, home.registry_bucket,
                            MaintenanceSettings(interval_s=3600))
        second = Maintenance(other.objects, other.hub.repo, other.settings, other.registry_bucket,
                             MaintenanceSettings(interval_s=3600))
        assert first.run_if_due() is not None
        assert second.run_if_due() is None
    finally:
        other.close()
        home.close()


def test_settings_of_the_housekeeping(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIREGISTRY_MULTIPART_EXPIRY_SECONDS", "120")
    monkeypatch.setenv("AIREGISTRY_ORPHAN_GRACE_SECONDS", "30")
    monkeypatch.setenv("AIREGISTRY_MAINTENANCE_INTERVAL_SECONDS", "0")
    config = MaintenanceSettings.from_env()
    assert (config.multipart_expiry_s, config.orphan_grace_s, config.interval_s) == (120, 30, 0)
    monkeypatch.setenv("AIREGISTRY_ORPHAN_GRACE_SECONDS", "soon")
    with pytest.raises(ValueError, match="AIREGISTRY_ORPHAN_GRACE_SECONDS"):
        MaintenanceSettings.from_env()
