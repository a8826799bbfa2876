"""PostgreSQL for real: migrations on an empty database, clear failures, no half-writes."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select, text

from airegistry.home import Home
from airegistry.storage.metadata import HEAD_REVISION, Database, DatabaseUnavailable, migrate
from airegistry.storage.metadata.migrate import current_revision
from airegistry.storage.metadata.tables import hub_contents, jobs
from tests.services import free_port


def test_migrations_apply_on_an_empty_postgresql(postgres) -> None:
    db = Database(postgres.empty_database())
    try:
        assert current_revision(db) is None
        migrate(db)
        assert current_revision(db) == HEAD_REVISION
        migrate(db)  # a second replica starting later: a no-op
        with db.read() as conn:
            tables = set(conn.execute(text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars())
        assert {"hubs", "hub_contents", "jobs", "functions", "settings"} <= tables
    finally:
        db.dispose()


def test_a_database_that_is_down_is_a_clear_error_at_start(postgres, tmp_path) -> None:
    url = postgres.url("registry", password="s3cret-pw").replace(
        f":{postgres.port}/", f":{free_port()}/")
    with pytest.raises(DatabaseUnavailable) as info:
        Home(tmp_path / "home", database_url=url, start_jobs=False)
    message = str(info.value)
    assert "PostgreSQL database 'registry' on 127.0.0.1" in message
    assert "s3cret-pw" not in message


def test_wrong_password_names_the_database_not_the_password(postgres, tmp_path) -> None:
    url = postgres.url("postgres", password="not-the-password")
    with pytest.raises(DatabaseUnavailable) as info:
        Home(tmp_path / "home", database_url=url, start_jobs=False)
    assert "'postgres' on 127.0.0.1" in str(info.value)
    assert "not-the-password" not in str(info.value)


def test_connection_lost_mid_request_is_503_and_writes_nothing(postgres, tmp_path, monkeypatch) -> None:
    """The server's backend connection dies between the version's row and its job's row."""
    from airegistry.storage.metadata import hubs as hubs_module

    home = Home(tmp_path / "home", database_url=postgres.new_database(), start_jobs=False)
    try:
        home.hub.create_hub({"HubName": "hub-a"})
        real_insert = hubs_module.insert

        def insert_then_lose_connection(table):
            statement = real_insert(table)
            if table is jobs:
                with home.db.engine.connect() as killer:
                    killer.execute(text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
                    killer.commit()
            return statement

        monkeypatch.setattr(hubs_module, "insert", insert_then_lose_connection)
        body = json.dumps({
            "HubName": "hub-a", "HubContentType": "DataSet", "HubContentName": "ds",
            "HubContentVersion": "1.0.0", "DocumentSchemaVersion": "2.0.0",
            "HubContentDocument": json.dumps({"DatasetS3Bucket": "b", "DatasetS3Prefix": "k"}),
        }).encode()
        status, _, out = home.wire.handle("SageMaker.ImportHubContent", body)
        assert status == 503
        assert json.loads(out)["__type"] == "ServiceUnavailable"
        assert "postgresql" in json.loads(out)["message"].lower()
        monkeypatch.undo()
        with home.db.read() as conn:  # the pool reconnects; nothing half-written remains
            assert conn.execute(select(func.count()).select_from(hub_contents)).scalar() == 0
            assert conn.execute(select(func.count()).select_from(jobs)).scalar() == 0
    finally:
        home.close()


def test_server_refuses_to_start_on_a_database_that_is_down(postgres, tmp_path, monkeypatch,
                                                           capsys) -> None:
    from airegistry.cli.main import main

    url = postgres.url("registry", password="hunter2-pw").replace(
        f":{postgres.port}/", f":{free_port()}/")
    monkeypatch.setenv("AIREGISTRY_DATABASE_URL", url)
    code = main(["server", "--home", str(tmp_path / "home"), "--port", str(free_port())])
    err = capsys.readouterr().err
    assert code == 1
    assert "PostgreSQL database 'registry' on 127.0.0.1" in err and "hunter2-pw" not in err


def test_point_reads_leave_the_event_loop_on_a_networked_database(postgres, tmp_path) -> None:
    from airegistry.server.compose import build_services

    networked = Home(tmp_path / "pg", database_url=postgres.new_database(), start_jobs=False)
    local = Home(tmp_path / "sqlite", start_jobs=False)
    try:
        assert build_services(networked).inline_point_reads is False
        assert build_services(local).inline_point_reads is True
        assert networked.shares_state and not local.shares_state
    finally:
        networked.close()
        local.close()
