"""Shared fixtures: every test gets its own registry home and a clean environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

_ISOLATED_ENV = (
    "AIREGISTRY_ENDPOINT_URL",
    "AIREGISTRY_BACKEND",
    "AIREGISTRY_HUB_NAME",
    "AIREGISTRY_BUCKET",
    "AIREGISTRY_DATABASE_URL",
    "AIREGISTRY_MAX_DATASET_BYTES",
    "AIREGISTRY_MAX_QUEUED_IMPORTS",
    "AIREGISTRY_MAX_CONCURRENT_IMPORTS",
    "AIREGISTRY_JOB_STALE_SECONDS",
    "AIREGISTRY_JOB_HEARTBEAT_SECONDS",
    "AIREGISTRY_STORE_URL",
)


@pytest.fixture
def metadata_url() -> str | None:
    """The metadata database of the test's homes: None is SQLite in the home.

    Suites where the database matters (hub, jobs, SDK) override this with
    ``metadata_matrix`` to run on SQLite and on a real PostgreSQL.
    """
    return None


def metadata_matrix(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str | None:
    """Body of a parametrised ``metadata_url``: a fresh migrated PostgreSQL database or None."""
    if request.param == "sqlite":
        monkeypatch.delenv("AIREGISTRY_DATABASE_URL", raising=False)
        return None
    url = request.getfixturevalue("postgres").new_database()
    monkeypatch.setenv("AIREGISTRY_DATABASE_URL", url)
    return url


@pytest.fixture
def registry_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                  metadata_url: str | None) -> Iterator[Path]:
    """An empty embedded registry in a temporary AIREGISTRY_HOME."""
    from airegistry.home import close_homes

    for name in _ISOLATED_ENV:
        monkeypatch.delenv(name, raising=False)
    if metadata_url:
        monkeypatch.setenv("AIREGISTRY_DATABASE_URL", metadata_url)
    home = tmp_path / "home"
    monkeypatch.setenv("AIREGISTRY_HOME", str(home))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_REGION", raising=False)
    yield home
    close_homes()


@pytest.fixture
def write_jsonl(tmp_path: Path):
    """Write rows (dicts or raw strings) as a .jsonl file and return its path."""
    import json

    def write(name: str, rows: list, raw: bool = False) -> Path:
        path = tmp_path / name
        with open(path, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write((row if raw else json.dumps(row)) + "\n")
        return path

    return write


def pytest_configure(config: pytest.Config) -> None:
    # Worker processes of the evaluator runtime must never inherit a developer's real home.
    os.environ.setdefault("AIREGISTRY_HOME", str(Path(config.rootpath) / ".pytest-home-unused"))


@pytest.fixture(scope="session")
def moto_s3():
    """One moto S3 server process per test worker (buckets are per test)."""
    from tests.services import moto_server

    with moto_server() as server:
        yield server


@pytest.fixture(scope="session")
def postgres():
    """One throwaway PostgreSQL cluster per test worker (databases are per test)."""
    from tests.services import postgres_cluster

    with postgres_cluster() as cluster:
        yield cluster
