"""Point reads on a local SQLite file bypass SQLAlchemy: same rows, fresh data, bounded connections."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import bindparam, insert, select, update

from airegistry.storage.metadata import Database, DatabaseUnavailable
from airegistry.storage.metadata.migrate import migrate
from airegistry.storage.metadata.tables import hubs

BY_NAME = select(hubs).where(hubs.c.name == bindparam("hub"))
LIMITED = select(hubs).where(hubs.c.status == bindparam("status")).order_by(
    hubs.c.name.desc()).limit(1)


@pytest.fixture()
def db(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'r.db'}")
    migrate(db)
    with db.write() as conn:
        for i, name in enumerate(["alpha", "beta", "gamma"]):
            conn.execute(insert(hubs).values(
                name=name, display_name=f"Hub {name} ✓", description=None,
                search_keywords='["a","b"]', tags="[]", status="InService",
                created_at=1764300000.25 + i, modified_at=1764300001.5 + i))
    yield db
    db.dispose()


def test_rows_match_sqlalchemys_field_for_field(db: Database) -> None:
    assert db._point_reads is not None  # a local file: the fast path is in use
    fast = db.first(BY_NAME, {"hub": "beta"})
    with db.read() as conn:
        slow = conn.execute(BY_NAME, {"hub": "beta"}).first()
    assert fast is not None and slow is not None
    assert tuple(fast) == tuple(slow)
    assert fast._fields == tuple(slow._fields)
    assert fast.display_name == "Hub beta ✓" and fast.description is None
    assert isinstance(fast.created_at, float)
    # a statement's own bound values (LIMIT) are applied with the caller's
    assert db.first(LIMITED, {"status": "InService"}).name == "gamma"
    assert db.first(BY_NAME, {"hub": "nope"}) is None


def test_a_committed_write_is_seen_by_the_next_read(db: Database) -> None:
    assert db.first(BY_NAME, {"hub": "alpha"}).status == "InService"
    with db.write() as conn:
        conn.execute(update(hubs).where(hubs.c.name == "alpha").values(status="Deleting"))
    assert db.first(BY_NAME, {"hub": "alpha"}).status == "Deleting"


def test_many_threads_share_a_bounded_set_of_connections(db: Database) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(24)

    def reader(i: int) -> None:
        try:
            start.wait()
            name = ["alpha", "beta", "gamma"][i % 3]
            for _ in range(50):
                assert db.first(BY_NAME, {"hub": name}).name == name
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert db._point_reads is not None and db._point_reads.idle_connections <= 8


def test_reads_after_dispose_are_unavailable(db: Database) -> None:
    db.first(BY_NAME, {"hub": "alpha"})
    db.dispose()
    with pytest.raises(DatabaseUnavailable):
        db.first(BY_NAME, {"hub": "alpha"})


def test_a_missing_database_file_is_unavailable_not_created(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'gone' / 'r.db'}")
    with pytest.raises(DatabaseUnavailable):
        db.first(BY_NAME, {"hub": "alpha"})
    assert not (tmp_path / "gone").exists()
