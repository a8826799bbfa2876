"""The SDK suite runs against both backends: embedded, and a live airegistry server."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ACCESS_KEY = "AKIDSDKREMOTE0000001"
SECRET_KEY = "sdk-remote-secret-0123456789abcdefghij"


@dataclass
class Backend:
    name: str
    home: Path

    def put_file(self, bucket: str, key: str, path: Path) -> None:
        """Place an object where the registry can read it by reference (the user's 'S3')."""
        from airegistry.session import default_session

        session = default_session()
        session.objects.ensure_bucket(bucket)
        session.objects.upload_file(path, bucket, key)


@pytest.fixture(params=["embedded", "remote", "postgresql"])
def backend(request: pytest.FixtureRequest, registry_home: Path, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    """embedded and remote on SQLite; "postgresql" is embedded over a real PostgreSQL
    (the server adds nothing database-specific that the remote run does not cover)."""
    if request.param == "embedded":
        yield Backend("embedded", registry_home)
        return
    if request.param == "postgresql":
        monkeypatch.setenv("AIREGISTRY_DATABASE_URL",
                           request.getfixturevalue("postgres").new_database())
        yield Backend("embedded", registry_home)
        return
    from airegistry.home import Home
    from airegistry.server.app import create_app
    from airegistry.server.auth import AuthConfig
    from airegistry.server.compose import build_services
    from tests.server.conftest import start_server

    server_home = tmp_path / "server-home"
    home = Home(server_home)
    app = create_app(build_services(home), auth=AuthConfig(keys={ACCESS_KEY: SECRET_KEY}))
    try:
        with start_server(app) as url:
            monkeypatch.setenv("AIREGISTRY_ENDPOINT_URL", url)
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
            monkeypatch.delenv("AWS_PROFILE", raising=False)
            monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
            monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
            yield Backend("remote", server_home)
    finally:
        home.close()


def jsonl(rows: list[Any]) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)
