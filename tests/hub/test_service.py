"""Hub semantics through the in-process boto3 client (exactly what the SDK uses)."""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, ParamValidationError

from airegistry.home import Home
from airegistry.hub.inprocess import make_inprocess_client

DOC = json.dumps({"SubType": "Other", "Body": "x"})


@pytest.fixture(params=["sqlite", "postgresql"], autouse=True)
def metadata_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """Every hub semantic below holds on SQLite and on a real PostgreSQL."""
    from tests.conftest import metadata_matrix

    return metadata_matrix(request, monkeypatch)


@pytest.fixture
def home(tmp_path: Path):
    h = Home(tmp_path / "home", start_jobs=False)
    yield h
    h.close()


@pytest.fixture
def client(home: Home):
    c = make_inprocess_client(home.wire, region=home.region)
    c.create_hub(HubName="hub-a", HubDescription="a")
    c.create_hub(HubName="hub-b", HubDescription="b")
    return c


def _import(client, name: str, version: str | None = "1.0.0", hub: str = "hub-a", **extra):
    params = dict(
        HubName=hub, HubContentType="JsonDoc", HubContentName=name,
        DocumentSchemaVersion="2.0.0", HubContentDocument=DOC, **extra,
    )
    if version:
        params["HubContentVersion"] = version
    return client.import_hub_content(**params)


def _code(exc: pytest.ExceptionInfo) -> str:
    return exc.value.response["Error"]["Code"]


def test_create_describe_hub_and_duplicate(client) -> None:
    hub = client.describe_hub(HubName="hub-a")
    assert hub["HubStatus"] == "InService"
    assert hub["CreationTime"].tzinfo is not None
    assert hub["HubArn"].endswith(":hub/hub-a")
    with pytest.raises(ClientError) as exc:
        client.create_hub(HubName="hub-a", HubDescription="again")
    assert _code(exc) == "ResourceInUse"
    with pytest.raises(ClientError) as exc:
        client.describe_hub(HubName="nope")
    assert _code(exc) == "ResourceNotFound"


def test_describe_without_version_is_latest(client) -> None:
    for version in ("1.0.0", "2.0.0", "10.0.0", "9.5.1"):
        _import(client, "thing", version)
    latest = client.describe_hub_content(HubName="hub-a", HubContentType="JsonDoc", HubContentName="thing")
    assert latest["HubContentVersion"] == "10.0.0"
    assert latest["HubContentStatus"] == "Available"
    assert latest["LastModifiedTime"].tzinfo is not None
    specific = client.describe_hub_content(
        HubName="hub-a", HubContentType="JsonDoc", HubContentName="thing", HubContentVersion="9.5.1"
    )
    assert specific["HubContentArn"].endswith("/JsonDoc/thing/9.5.1")


def test_unknown_and_deleted_versions_are_not_found(client) -> None:
    _import(client, "thing", "1.0.0")
    with pytest.raises(ClientError) as exc:
        client.describe_hub_content(
            HubName="hub-a", HubContentType="JsonDoc", HubContentName="thing", HubContentVersion="3.0.0"
        )
    assert _code(exc) == "ResourceNotFound"
    client.delete_hub_content(
        HubName="hub-a", HubContentType="JsonDoc", HubContentName="thing", HubContentVersion="1.0.0"
    )
    with pytest.raises(ClientError) as exc:
        client.describe_hub_content(
            HubName="hub-a", HubContentType="JsonDoc", HubContentName="thing", HubContentVersion="1.0.0"
        )
    assert _code(exc) == "ResourceNotFound"
    with pytest.raises(ClientError) as exc:
        client.delete_hub_content(
            HubName="hub-a", HubContentType="JsonDoc", HubContentName="thing", HubContentVersion="1.0.0"
        )
    assert _code(exc) == "ResourceNotFound"


def test_duplicate_version_is_resource_in_use(client) -> None:
    _import(client, "thing", "1.0.0")
    with pytest.raises(ClientError) as exc:
        _import(client, "thing", "1.0.0")
    assert _code(exc) == "ResourceInUse"


def test_version_is_allocated_when_omitted(client) -> None:
    _import(client, "auto", None)
    out = _import(client, "auto", None)
    assert out["HubContentArn"].endswith("/auto/2.0.0")


def test_list_returns_latest_version_of_each_name(client) -> None:
    _import(client, "alpha", "1.0.0")
    _import(client, "alpha", "2.0.0")
    _import(client, "beta", "1.0.0")
    _import(client, "other-hub", "1.0.0", hub="hub-b")
    out = client.list_hub_contents(HubName="hub-a", HubContentType="JsonDoc", SortBy="HubContentName",
                                   SortOrder="Ascending")
    got = [(s["HubContentName"], s["HubContentVersion"]) for s in out["HubContentSummaries"]]
    assert got == [("alpha", "2.0.0"), ("beta", "1.0.0")]
    assert "NextToken" not in out


def test_list_filters(client) -> None:
    _import(client, "model-a", "1.0.0")
    time.sleep(0.01)
    middle = datetime.now(timezone.utc)
    time.sleep(0.01)
    _import(client, "model-b", "3.0.0")
    _import(client, "data-c", "1.0.0")

    def names(**kw):
        out = client.list_hub_contents(HubName="hub-a", HubContentType="JsonDoc", **kw)
        return sorted(s["HubContentName"] for s in out["HubContentSummaries"])

    assert names(NameContains="model") == ["model-a", "model-b"]
    assert names(CreationTimeAfter=middle) == ["data-c", "model-b"]
    assert names(CreationTimeBefore=middle) == ["model-a"]
    assert names(MaxSchemaVersion="1.0.0") == []
    assert names(MaxSchemaVersion="2.0.0") == ["data-c", "model-a", "model-b"]
    assert names(CreationTimeAfter=middle + timedelta(days=1)) == []


def test_sorting(client) -> None:
    for name in ("bbb", "aaa", "ccc"):
        _import(client, name, "1.0.0")
    def order(**kw):
        out = client.list_hub_contents(HubName="hub-a", HubContentType="JsonDoc", **kw)
        return [s["HubContentName"] for s in out["HubContentSummaries"]]
    assert order(SortBy="HubContentName", SortOrder="Ascending") == ["aaa", "bbb", "ccc"]
    assert order(SortBy="HubContentName", SortOrder="Descending") == ["ccc", "bbb", "aaa"]
    assert order(SortBy="CreationTime", SortOrder="Ascending") == ["bbb", "aaa", "ccc"]


def test_pagination_walks_everything_once(client) -> None:
    for i in range(23):
        _import(client, f"item-{i:02d}", "1.0.0")
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        kwargs = {"NextToken": token} if token else {}
        out = client.list_hub_contents(HubName="hub-a", HubContentType="JsonDoc", MaxResults=5, **kwargs)
        seen += [s["HubContentName"] for s in out["HubContentSummaries"]]
        pages += 1
        token = out.get("NextToken")
        if not token:
            break
    assert pages == 5
    assert sorted(seen) == [f"item-{i:02d}" for i in range(23)]
    assert len(set(seen)) == 23


@pytest.mark.parametrize("sort_by", [None, "HubContentName", "CreationTime"])
@pytest.mark.parametrize("order", ["Ascending", "Descending"])
def test_paging_in_every_order_matches_one_page(client, sort_by, order) -> None:
    # page statements are built once per shape: keyed pages must continue exactly
    for i in (3, 0, 4, 1, 2, 6, 5):
        _import(client, f"it-{i}", "1.0.0")
    kw = {"SortOrder": order, **({"SortBy": sort_by} if sort_by else {})}
    whole = client.list_hub_contents(HubName="hub-a", HubContentType="JsonDoc", **kw)
    expected = [s["HubContentName"] for s in whole["HubContentSummaries"]]
    seen, token = [], None
    while True:
        out = client.list_hub_contents(HubName="hub-a", HubContentType="JsonDoc", MaxResults=2,
                                       **kw, **({"NextToken": token} if token else {}))
        seen += [s["HubContentName"] for s in out["HubContentSummaries"]]
        token = out.get("NextToken")
        if not token:
            break
    assert seen == expected and len(expected) == 7
    if sort_by == "HubContentName":
        assert expected == sorted(expected, reverse=order == "Descending")


def test_version_listing_pages_newest_first_above_min_version(client) -> None:
    for version in ("1.0.0", "1.2.0", "2.0.0", "2.1.0", "3.0.0"):
        _import(client, "multi", version)
    seen, token = [], None
    while True:
        out = client.list_hub_content_versions(
            HubName="hub-a", HubContentType="JsonDoc", HubContentName="multi",
            MinVersion="1.2.0", MaxResults=2, **({"NextToken": token} if token else {}))
        seen += [s["HubContentVersion"] for s in out["HubContentSummaries"]]
        token = out.get("NextToken")
        if not token:
            break
    assert seen == ["3.0.0", "2.1.0", "2.0.0", "1.2.0"]


def test_name_filter_treats_like_wildcards_literally(home: Home, client) -> None:
    from airegistry.storage.metadata.hubs import ContentFilter

    for name in ("ab", "a-b", "axb"):
        _import(client, name, "1.0.0")

    def names(text: str) -> list[str]:
        rows, _ = home.hub.repo.page_contents(
            "hub-a", "JsonDoc", ContentFilter(name_contains=text), name=None, latest_only=True,
            sort_by="HubContentName", descending=False, limit=10, after=None)
        return [r.name for r in rows]

    assert names("a") == ["a-b", "ab", "axb"]
    assert names("%") == [] and names("_") == [] and names("a_b") == [] and names("/") == []
    assert names("a-b") == ["a-b"]


def test_paginator_works_when_botocore_defines_one(client) -> None:
    for i in range(7):
        _import(client, f"p-{i}", "1.0.0")
    if not client.can_paginate("list_hub_contents"):
        pytest.skip("botocore defines no paginator for ListHubContents")
    items = [
        s for page in client.get_paginator("list_hub_contents").paginate(
            HubName="hub-a", HubContentType="JsonDoc", PaginationConfig={"PageSize": 3}
        ) for s in page["HubContentSummaries"]
    ]
    assert len(items) == 7


def test_next_token_cannot_be_used_for_another_hub_or_forged(client) -> None:
    for i in range(3):
        _import(client, f"x-{i}", "1.0.0")
        _import(client, f"y-{i}", "1.0.0", hub="hub-b")
    out = client.list_hub_contents(HubName="hub-a", HubContentType="JsonDoc", MaxResults=1)
    token = out["NextToken"]
    with pytest.raises(ClientError) as exc:
        client.list_hub_contents(HubName="hub-b", HubContentType="JsonDoc", MaxResults=1, NextToken=token)
    assert _code(exc) == "ValidationException"
    with pytest.raises(ClientError) as exc:
        client.list_hub_contents(HubName="hub-a", HubContentType="DataSet", NextToken=token)
    assert _code(exc) == "ValidationException"
    body, _, mac = token.partition(".")
    forged_body = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    for bad in (forged_body + "." + mac, "garbage", token[:-3]):
        with pytest.raises(ClientError) as exc:
            client.list_hub_contents(HubName="hub-a", HubContentType="JsonDoc", NextToken=bad)
        assert _code(exc) == "ValidationException"


def test_list_versions_newest_first(client) -> None:
    for version in ("1.0.0", "3.0.0", "2.0.0", "2.1.0"):
        _import(client, "v", version)
    out = client.list_hub_content_versions(HubName="hub-a", HubContentType="JsonDoc", HubContentName="v")
    assert [s["HubContentVersion"] for s in out["HubContentSummaries"]] == [
        "3.0.0", "2.1.0", "2.0.0", "1.0.0"
    ]
    out = client.list_hub_content_versions(
        HubName="hub-a", HubContentType="JsonDoc", HubContentName="v", MinVersion="2.1.0"
    )
    assert [s["HubContentVersion"] for s in out["HubContentSummaries"]] == ["3.0.0", "2.1.0"]


def test_service_model_validation(client) -> None:
    with pytest.raises(ClientError) as exc:
        _import(client, "../escape", "1.0.0")
    assert _code(exc) == "ValidationException"
    with pytest.raises(ClientError) as exc:
        client.import_hub_content(
            HubName="hub-a", HubContentType="JsonDoc", HubContentName="big",
            DocumentSchemaVersion="2.0.0", HubContentDocument="x" * 327_681,
        )
    assert _code(exc) == "ValidationException"
    with pytest.raises((ClientError, ParamValidationError)):
        client.list_hub_contents(HubName="hub-a", HubContentType="JsonDoc", MaxResults=0)
    with pytest.raises(ClientError) as exc:
        client.list_hub_contents(HubName="hub-a", HubContentType="JsonDoc", MaxResults=101)
    assert _code(exc) == "ValidationException"
    with pytest.raises(ClientError) as exc:
        client.list_hub_contents(HubName="hub-a", HubContentType="Bogus")
    assert _code(exc) == "ValidationException"


def test_dataset_documents_are_checked(client) -> None:
    with pytest.raises(ClientError) as exc:
        client.import_hub_content(
            HubName="hub-a", HubContentType="DataSet", HubContentName="ds",
            DocumentSchemaVersion="2.0.0", HubContentDocument="not json",
        )
    assert _code(exc) == "ValidationException"
    with pytest.raises(ClientError) as exc:
        client.import_hub_content(
            HubName="hub-a", HubContentType="DataSet", HubContentName="ds",
            DocumentSchemaVersion="2.0.0", HubContentDocument=json.dumps({"DatasetS3Bucket": "b"}),
        )
    assert "DatasetS3Prefix" in exc.value.response["Error"]["Message"]


def test_importing_version_cannot_be_deleted_and_queue_bound(home: Home, client) -> None:
    home.hub.max_queued_imports = 2
    doc = json.dumps({"DatasetS3Bucket": "nobucket", "DatasetS3Prefix": "x.jsonl"})
    for i in range(2):
        client.import_hub_content(
            HubName="hub-a", HubContentType="DataSet", HubContentName=f"ds-{i}",
            DocumentSchemaVersion="2.0.0", HubContentDocument=doc, HubContentVersion="1.0.0",
        )
    described = client.describe_hub_content(HubName="hub-a", HubContentType="DataSet", HubContentName="ds-0")
    assert described["HubContentStatus"] == "Importing"  # no runner started in this fixture
    with pytest.raises(ClientError) as exc:
        client.delete_hub_content(
            HubName="hub-a", HubContentType="DataSet", HubContentName="ds-0", HubContentVersion="1.0.0"
        )
    assert _code(exc) == "ResourceInUse"
    with pytest.raises(ClientError) as exc:
        client.import_hub_content(
            HubName="hub-a", HubContentType="DataSet", HubContentName="ds-9",
            DocumentSchemaVersion="2.0.0", HubContentDocument=doc, HubContentVersion="1.0.0",
        )
    assert _code(exc) == "ResourceLimitExceeded"


def test_update_and_tags(client) -> None:
    out = _import(client, "tagged", "1.0.0", Tags=[{"Key": "team", "Value": "a"}])
    client.update_hub_content(
        HubName="hub-a", HubContentType="JsonDoc", HubContentName="tagged", HubContentVersion="1.0.0",
        HubContentDescription="new description",
    )
    d = client.describe_hub_content(HubName="hub-a", HubContentType="JsonDoc", HubContentName="tagged")
    assert d["HubContentDescription"] == "new description"
    arn = out["HubContentArn"]
    client.add_tags(ResourceArn=arn, Tags=[{"Key": "stage", "Value": "prod"}])
    tags = {t["Key"]: t["Value"] for t in client.list_tags(ResourceArn=arn)["Tags"]}
    assert tags == {"team": "a", "stage": "prod"}
    client.delete_tags(ResourceArn=arn, TagKeys=["team"])
    assert client.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "stage", "Value": "prod"}]


def test_hub_with_content_cannot_be_deleted(client) -> None:
    _import(client, "keep", "1.0.0", hub="hub-b")
    with pytest.raises(ClientError) as exc:
        client.delete_hub(HubName="hub-b")
    assert _code(exc) == "ResourceInUse"
    client.delete_hub_content(HubName="hub-b", HubContentType="JsonDoc", HubContentName="keep",
                              HubContentVersion="1.0.0")
    client.delete_hub(HubName="hub-b")
    names = [h["HubName"] for h in client.list_hubs()["HubSummaries"]]
    assert names == ["hub-a"]


def test_sixteen_threads_racing_for_versions(client) -> None:
    errors: list[Exception] = []

    def worker() -> None:
        try:
            _import(client, "race", None)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    out = client.list_hub_content_versions(HubName="hub-a", HubContentType="JsonDoc", HubContentName="race")
    assert sorted(int(s["HubContentVersion"].split(".")[0]) for s in out["HubContentSummaries"]) == list(
        range(1, 17)
    )
