"""Versions sharing one registry-owned object: deleted at once, the object is freed once.

Under PostgreSQL's READ COMMITTED two transactions each deleting one of two versions that
name the same object would each count the other (not yet committed) as still using it, and
the object would never be freed. The repository gives such transactions turns per object.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from airegistry.home import Home

SHARED = ("registry-bucket", "uploads/shared.jsonl")


@pytest.fixture(params=["sqlite", "postgresql"])
def metadata_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    from tests.conftest import metadata_matrix

    return metadata_matrix(request, monkeypatch)


@pytest.fixture
def home(tmp_path: Path, metadata_url):
    h = Home(tmp_path / "home", start_jobs=False)
    h.hub.create_hub({"HubName": "hub-a"})
    yield h
    h.close()


def _insert(home: Home, name: str, owned: tuple[str, str] = SHARED) -> None:
    values = {
        "document_schema_version": "2.0.0", "document": "{}", "search_keywords": "[]",
        "tags": "[]", "status": "Available", "owned_bucket": owned[0], "owned_key": owned[1],
    }
    home.hub.repo.insert_content("hub-a", "JsonDoc", name, (1, 0, 0), values,
                                 job_kind=None, max_queued=10)


@pytest.mark.parametrize("round_", range(4))
def test_concurrent_deletes_of_sharing_versions_free_the_object_exactly_once(home, round_) -> None:
    names = [f"doc-{round_}-{i}" for i in range(8)]
    for name in names:
        _insert(home, name)
    start = threading.Barrier(len(names))

    def delete(name: str):
        start.wait()
        return home.hub.repo.delete_content("hub-a", "JsonDoc", name, (1, 0, 0))[1]

    with ThreadPoolExecutor(len(names)) as pool:
        orphans = list(pool.map(delete, names))
    assert [o for o in orphans if o is not None] == [SHARED]


def test_collect_checks_again_under_the_objects_turn(home) -> None:
    _insert(home, "a")
    _, orphan = home.hub.repo.delete_content("hub-a", "JsonDoc", "a", (1, 0, 0))
    assert orphan == SHARED
    _insert(home, "b")  # a new version names the object before it is collected
    removed: list[str] = []
    assert home.hub.repo.collect_unreferenced(*SHARED, lambda: removed.append("x")) is False
    assert removed == []
    home.hub.repo.delete_content("hub-a", "JsonDoc", "b", (1, 0, 0))
    assert home.hub.repo.collect_unreferenced(*SHARED, lambda: removed.append("x")) is True
    assert removed == ["x"]


def test_a_failed_removal_keeps_nothing_half_done(home) -> None:
    _insert(home, "a")
    home.hub.repo.delete_content("hub-a", "JsonDoc", "a", (1, 0, 0))

    def fail() -> None:
        raise OSError("disk gone")

    with pytest.raises(OSError):
        home.hub.repo.collect_unreferenced(*SHARED, fail)
    assert home.hub.repo.get_content("hub-a", "JsonDoc", "a", (1, 0, 0)) is None
