"""The job suite runs on SQLite and on a real PostgreSQL (READ COMMITTED)."""

import pytest

from tests.conftest import metadata_matrix


@pytest.fixture(params=["sqlite", "postgresql"], autouse=True)
def metadata_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    return metadata_matrix(request, monkeypatch)
