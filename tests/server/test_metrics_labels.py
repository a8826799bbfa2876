"""/metrics stays bounded whatever operation names clients invent."""

from __future__ import annotations

import httpx

from tests.server.conftest import RunningServer
from tests.server.raw_requests import RawClient


def test_unknown_operations_share_one_label(server: RunningServer) -> None:
    with httpx.Client(timeout=30) as http:
        raw = RawClient(server.url, server.access_key, server.secret_key, http)
        raw.sagemaker("ListHubs", {})
        before = len(http.get(server.url + "/metrics").text)
        for i in range(300):
            raw.sagemaker(f"Bogus{i}Operation", {})
            raw.send("POST", "/", service="sts", body=f"Action=Bogus{i}&Version=2011-06-15".encode(),
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        text = http.get(server.url + "/metrics").text
    assert "Bogus" not in text
    assert 'service="sagemaker",operation="Unknown"' in text
    assert 'service="sts",operation="Unknown"' in text
    assert 'operation="ListHubs"' in text  # real operations keep their names
    assert len(text) - before < 10_000
