"""The S3 configuration repository on SQLite and PostgreSQL: replace, delete, concurrency."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from airegistry.storage.metadata import Database, S3ConfigRepository, migrate


@pytest.fixture(params=["sqlite", "postgresql"])
def repo(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[S3ConfigRepository]:
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    else:
        db = Database(request.getfixturevalue("postgres").new_database())
    migrate(db)
    try:
        yield S3ConfigRepository(db)
    finally:
        db.dispose()


def test_put_get_replace_delete(repo: S3ConfigRepository) -> None:
    assert repo.get("b", "policy") is None
    repo.put("b", "policy", '{"a": 1}')
    repo.put("b", "policy", '{"a": 2}')
    assert repo.get("b", "policy").document == '{"a": 2}'
    repo.put("b", "tagging", "<Tagging/>", key="obj", stamp="etag@t")
    stored = repo.get("b", "tagging", "obj")
    assert (stored.document, stored.stamp) == ("<Tagging/>", "etag@t")
    assert repo.get("b", "tagging") is None  # the bucket's own tags are another document
    assert repo.delete("b", "policy") and not repo.delete("b", "policy")
    # the longest names the server makes: an id-keyed family with a 64-character id, and
    # the held tags of an upload whose id (from a real S3 behind the S3 backend) is long
    for name in ("intelligent-tiering:" + "i" * 64, "upload-tagging:" + "u" * 300):
        repo.put("b", name, "<X/>", key="k" * 1024)
        assert repo.get("b", name, "k" * 1024).document == "<X/>"
    repo.delete_objects("b", ["other", "obj"])
    assert repo.get("b", "tagging", "obj") is None


def test_id_families_and_bucket_deletion(repo: S3ConfigRepository) -> None:
    repo.put("b", "metrics:m2", "<M2/>")
    repo.put("b", "metrics:m1", "<M1/>")
    repo.put("b", "metrics_x", "<other/>")  # "_" is not a LIKE wildcard here
    repo.put("c", "metrics:m9", "<C/>")
    assert repo.subresources("b", "metrics:") == {"metrics:m1": "<M1/>", "metrics:m2": "<M2/>"}
    repo.put("b", "tagging", "<T/>", key="k")
    repo.delete_bucket("b")
    assert repo.subresources("b", "") == {}
    assert repo.get("b", "tagging", "k") is None
    assert repo.subresources("c", "metrics:") == {"metrics:m9": "<C/>"}


def test_concurrent_writers_leave_one_document(repo: S3ConfigRepository) -> None:
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for i in range(10):
                repo.put("b", "tagging", f"<T n='{n}' i='{i}'/>")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert repo.get("b", "tagging").document.endswith("i='9'/>")
    assert list(repo.subresources("b", "")) == ["tagging"]
