"""The in-process boto3 client, and a real boto3 codec, driven through the same wire.

Every shared case runs twice: through ``make_inprocess_client`` and through botocore's
own JSON serializer and parser playing the wire (what a remote boto3 client does
before and after the HTTP round trip). Both must see boto3's client-side
``ParamValidationError``, the service's ``ClientError`` codes with their HTTP status,
and timezone-aware datetimes.
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from botocore import xform_name
from botocore.awsrequest import HeadersDict
from botocore.exceptions import ClientError, ParamValidationError
from botocore.parsers import create_parser
from botocore.serialize import create_serializer

from airegistry.hub.botocore_model import OperationError, sagemaker_model
from airegistry.hub.inprocess import make_inprocess_client
from airegistry.hub.json_protocol import SageMakerWire

REGION = "eu-west-1"
ACCOUNT = "123456789012"
T0 = datetime(2024, 3, 1, 12, 0, 0, 500000, tzinfo=timezone.utc)


class FakeHub:
    """A small in-memory hub with AWS-like semantics, enough to exercise the wire."""

    def __init__(self, max_contents: int = 1000) -> None:
        self.lock = threading.Lock()
        self.hubs: dict[str, dict] = {}
        self.contents: dict[tuple[str, str, str], dict] = {}  # (hub, name, version)
        self.tags: dict[str, list[dict]] = {}
        self.max_contents = max_contents
        self.calls: list[str] = []
        self.crash = False
        self.clock = T0

    def handlers(self) -> dict[str, Callable[[dict], Any]]:
        ops = ["CreateHub", "DescribeHub", "ListHubs", "DeleteHub", "UpdateHub",
               "ImportHubContent", "DescribeHubContent", "ListHubContents",
               "ListHubContentVersions", "DeleteHubContent", "UpdateHubContent",
               "AddTags", "ListTags", "DeleteTags"]
        return {op: self._wrap(op, getattr(self, xform_name(op))) for op in ops}

    def _wrap(self, op: str, fn: Callable[[dict], Any]) -> Callable[[dict], Any]:
        def handler(params: dict) -> Any:
            with self.lock:
                self.calls.append(op)
                if self.crash:
                    raise RuntimeError("database file /srv/secret.db is locked")
                self.clock += timedelta(seconds=1)
                return fn(params)
        return handler

    # hubs
    def hub_arn(self, hub: str) -> str:
        return f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:hub/{hub}"

    def _hub(self, name: str) -> dict:
        hub = self.hubs.get(name.rsplit("/", 1)[-1])
        if hub is None:
            raise OperationError("ResourceNotFound", f"Hub {name} does not exist.")
        return hub

    def create_hub(self, p: dict) -> dict:
        if p["HubName"] in self.hubs:
            raise OperationError("ResourceInUse", f"Hub {p['HubName']} already exists.")
        self.hubs[p["HubName"]] = {
            "HubName": p["HubName"], "HubArn": self.hub_arn(p["HubName"]),
            "HubDescription": p["HubDescription"], "HubDisplayName": p.get("HubDisplayName"),
            "HubSearchKeywords": p.get("HubSearchKeywords", []), "HubStatus": "InService",
            "CreationTime": self.clock, "LastModifiedTime": self.clock,
            "RowId": 42,  # internal column: must never reach the client
        }
        self.tags[self.hub_arn(p["HubName"])] = list(p.get("Tags", []))
        return {"HubArn": self.hub_arn(p["HubName"])}

    def describe_hub(self, p: dict) -> dict:
        return self._hub(p["HubName"])

    def list_hubs(self, p: dict) -> dict:
        return {"HubSummaries": sorted(self.hubs.values(), key=lambda h: h["HubName"])}

    def delete_hub(self, p: dict) -> None:
        hub = self._hub(p["HubName"])
        if any(key[0] == hub["HubName"] for key in self.contents):
            raise OperationError("ResourceInUse", f"Hub {hub['HubName']} still has content.")
        del self.hubs[hub["HubName"]]

    def update_hub(self, p: dict) -> dict:
        hub = self._hub(p["HubName"])
        for key in ("HubDescription", "HubDisplayName", "HubSearchKeywords"):
            if key in p:
                hub[key] = p[key]
        hub["LastModifiedTime"] = self.clock
        return {"HubArn": hub["HubArn"]}

    # contents
    def _versions(self, hub: str, name: str) -> list[dict]:
        found = [c for (h, n, _), c in self.contents.items() if h == hub and n == name]
        return sorted(found, key=lambda c: tuple(int(x) for x in c["HubContentVersion"].split(".")),
                      reverse=True)

    def import_hub_content(self, p: dict) -> dict:
        hub = self._hub(p["HubName"])["HubName"]
        if len(self.contents) >= self.max_contents:
            raise OperationError("ResourceLimitExceeded", "Too many imports queued.")
        existing = self._versions(hub, p["HubContentName"])
        version = p.get("HubContentVersion") or (
            f"{int(existing[0]['HubContentVersion'].split('.')[0]) + 1}.0.0" if existing else "1.0.0")
        key = (hub, p["HubContentName"], version)
        if key in self.contents:
            raise OperationError("ResourceInUse", f"Version {version} already exists.")
        arn = (f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:hub-content/{hub}/"
               f"{p['HubContentType']}/{p['HubContentName']}/{version}")
        self.contents[key] = {
            "HubName": hub, "HubArn": self.hub_arn(hub), "HubContentName": p["HubContentName"],
            "HubContentArn": arn, "HubContentVersion": version,
            "HubContentType": p["HubContentType"], "DocumentSchemaVersion": p["DocumentSchemaVersion"],
            "HubContentDocument": p["HubContentDocument"],
            "HubContentDescription": p.get("HubContentDescription"),
            "HubContentSearchKeywords": p.get("HubContentSearchKeywords", []),
            "HubContentStatus": "Available", "FailureReason": None,
            "CreationTime": self.clock, "LastModifiedTime": self.clock,
        }
        self.tags[arn] = list(p.get("Tags", []))
        return {"HubArn": self.hub_arn(hub), "HubContentArn": arn}

    def _content(self, p: dict) -> dict:
        hub = self._hub(p["HubName"])["HubName"]
        versions = self._versions(hub, p["HubContentName"])
        if p.get("HubContentVersion"):
            versions = [v for v in versions if v["HubContentVersion"] == p["HubContentVersion"]]
        if not versions:
            raise OperationError("ResourceNotFound", f"Hub content {p['HubContentName']} does not exist.")
        return versions[0]

    def describe_hub_content(self, p: dict) -> dict:
        return self._content(p)

    def list_hub_contents(self, p: dict) -> dict:
        hub = self._hub(p["HubName"])["HubName"]
        names = sorted({n for (h, n, _) in self.contents if h == hub})
        latest = [self._versions(hub, n)[0] for n in names]
        if "NameContains" in p:
            latest = [c for c in latest if p["NameContains"] in c["HubContentName"]]
        if "CreationTimeAfter" in p:
            latest = [c for c in latest if c["CreationTime"] > p["CreationTimeAfter"]]
        start = int(base64.b64decode(p["NextToken"])) if "NextToken" in p else 0
        size = p.get("MaxResults", 100)
        page = latest[start : start + size]
        token = base64.b64encode(str(start + size).encode()).decode() if start + size < len(latest) else None
        return {"HubContentSummaries": page, "NextToken": token}

    def list_hub_content_versions(self, p: dict) -> dict:
        hub = self._hub(p["HubName"])["HubName"]
        return {"HubContentSummaries": self._versions(hub, p["HubContentName"])}

    def delete_hub_content(self, p: dict) -> None:
        content = self._content(p)
        del self.contents[(content["HubName"], content["HubContentName"], content["HubContentVersion"])]

    def update_hub_content(self, p: dict) -> dict:
        content = self._content(p)
        for key in ("HubContentDescription", "HubContentDisplayName", "HubContentSearchKeywords"):
            if key in p:
                content[key] = p[key]
        content["LastModifiedTime"] = self.clock
        return {"HubArn": content["HubArn"], "HubContentArn": content["HubContentArn"]}

    # tags
    def _tags(self, arn: str) -> list[dict]:
        if arn not in self.tags:
            raise OperationError("ResourceNotFound", f"{arn} does not exist.")
        return self.tags[arn]

    def add_tags(self, p: dict) -> dict:
        tags = self._tags(p["ResourceArn"])
        keys = {t["Key"] for t in p["Tags"]}
        tags[:] = [t for t in tags if t["Key"] not in keys] + p["Tags"]
        return {"Tags": tags}

    def list_tags(self, p: dict) -> dict:
        return {"Tags": self._tags(p["ResourceArn"])}

    def delete_tags(self, p: dict) -> None:
        tags = self._tags(p["ResourceArn"])
        tags[:] = [t for t in tags if t["Key"] not in p["TagKeys"]]


# --------------------------------------------------------------- two clients


class CodecClient:
    """botocore's JSON serializer and parser wrapped around ``wire.handle``.

    This is what a remote boto3 client does on either side of the HTTP round trip,
    assembled independently of ``airegistry.hub.inprocess``.
    """

    def __init__(self, wire: SageMakerWire) -> None:
        self.wire = wire
        self.serializer = create_serializer("json", include_validation=True)
        self.parser = create_parser("json")

    def call(self, operation: str, **params: Any) -> dict:
        op = sagemaker_model().operation_model(operation)
        request = self.serializer.serialize_to_request(params, op)
        status, headers, body = self.wire.handle(request["headers"]["X-Amz-Target"], request["body"])
        parsed = self.parser.parse(
            {"status_code": status, "headers": HeadersDict(headers), "body": body}, op.output_shape
        )
        parsed.setdefault("ResponseMetadata", {})["HTTPStatusCode"] = status
        if status >= 300:
            raise ClientError(parsed, operation)
        return parsed


class BotoClient:
    def __init__(self, wire: SageMakerWire) -> None:
        self.client = make_inprocess_client(wire, region=REGION)

    def call(self, operation: str, **params: Any) -> dict:
        return getattr(self.client, xform_name(operation))(**params)


@pytest.fixture
def fake() -> FakeHub:
    return FakeHub(max_contents=40)


@pytest.fixture
def wire(fake: FakeHub) -> SageMakerWire:
    return SageMakerWire(fake.handlers())


@pytest.fixture(params=["inprocess", "botocore-codec"])
def hub(request: pytest.FixtureRequest, wire: SageMakerWire) -> Any:
    client = BotoClient(wire) if request.param == "inprocess" else CodecClient(wire)
    client.call("CreateHub", HubName="team-hub", HubDescription="tests")
    return client


def imported(hub: Any, name: str = "ds", **extra: Any) -> dict:
    params = {"HubName": "team-hub", "HubContentType": "DataSet", "HubContentName": name,
              "DocumentSchemaVersion": "2.0.0", "HubContentDocument": '{"DatasetType":"Training"}'}
    params.update(extra)
    return hub.call("ImportHubContent", **params)


def client_error(fn: Callable[[], Any]) -> tuple[str, int, str]:
    with pytest.raises(ClientError) as info:
        fn()
    err = info.value.response
    return err["Error"]["Code"], err["ResponseMetadata"]["HTTPStatusCode"], err["Error"]["Message"]


def assert_aware(value: datetime) -> None:
    assert isinstance(value, datetime)
    assert value.tzinfo is not None and value.utcoffset() is not None


# ------------------------------------------------------------ shared cases


def test_lifecycle(hub: Any, fake: FakeHub) -> None:
    first = imported(hub, HubContentDescription="first")
    assert first["HubContentArn"].endswith("/DataSet/ds/1.0.0")
    imported(hub)
    latest = hub.call("DescribeHubContent", HubName="team-hub", HubContentType="DataSet",
                      HubContentName="ds")
    assert latest["HubContentVersion"] == "2.0.0"
    assert latest["HubContentStatus"] == "Available"
    assert "FailureReason" not in latest
    assert_aware(latest["CreationTime"])
    assert_aware(latest["LastModifiedTime"])
    assert latest["CreationTime"] == fake.contents[("team-hub", "ds", "2.0.0")]["CreationTime"]
    assert latest["ResponseMetadata"]["HTTPStatusCode"] == 200

    v1 = hub.call("DescribeHubContent", HubName="team-hub", HubContentType="DataSet",
                  HubContentName="ds", HubContentVersion="1.0.0")
    assert v1["HubContentDescription"] == "first"

    versions = hub.call("ListHubContentVersions", HubName="team-hub", HubContentType="DataSet",
                        HubContentName="ds")["HubContentSummaries"]
    assert [v["HubContentVersion"] for v in versions] == ["2.0.0", "1.0.0"]
    for v in versions:
        assert_aware(v["CreationTime"])
        assert "HubContentDocument" not in v  # not a member of HubContentInfo

    hub.call("UpdateHubContent", HubName="team-hub", HubContentType="DataSet", HubContentName="ds",
             HubContentVersion="1.0.0", HubContentDescription="updated")
    hub.call("DeleteHubContent", HubName="team-hub", HubContentType="DataSet", HubContentName="ds",
             HubContentVersion="2.0.0")
    code, status, _ = client_error(lambda: hub.call(
        "DescribeHubContent", HubName="team-hub", HubContentType="DataSet", HubContentName="ds",
        HubContentVersion="2.0.0"))
    assert (code, status) == ("ResourceNotFound", 400)
    code, _, _ = client_error(lambda: hub.call("DeleteHub", HubName="team-hub"))
    assert code == "ResourceInUse"


def test_hub_operations(hub: Any) -> None:
    described = hub.call("DescribeHub", HubName="team-hub")
    assert described["HubStatus"] == "InService"
    assert "RowId" not in described
    assert_aware(described["CreationTime"])
    hub.call("UpdateHub", HubName="team-hub", HubDescription="new words")
    summaries = hub.call("ListHubs")["HubSummaries"]
    assert [(h["HubName"], h["HubDescription"]) for h in summaries] == [("team-hub", "new words")]
    code, _, _ = client_error(lambda: hub.call("CreateHub", HubName="team-hub", HubDescription="x"))
    assert code == "ResourceInUse"
    hub.call("DeleteHub", HubName="team-hub")
    code, status, message = client_error(lambda: hub.call("DescribeHub", HubName="team-hub"))
    assert (code, status) == ("ResourceNotFound", 400)
    assert "team-hub" in message


def test_tags(hub: Any) -> None:
    arn = imported(hub, Tags=[{"Key": "team", "Value": "ml"}])["HubContentArn"]
    hub.call("AddTags", ResourceArn=arn, Tags=[{"Key": "stage", "Value": "dev"}])
    tags = hub.call("ListTags", ResourceArn=arn)["Tags"]
    assert {t["Key"]: t["Value"] for t in tags} == {"team": "ml", "stage": "dev"}
    hub.call("DeleteTags", ResourceArn=arn, TagKeys=["team"])
    assert hub.call("ListTags", ResourceArn=arn)["Tags"] == [{"Key": "stage", "Value": "dev"}]
    code, _, message = client_error(
        lambda: hub.call("AddTags", ResourceArn=arn, Tags=[{"Key": "bad;key", "Value": "v"}]))
    assert code == "ValidationException"
    assert "'tags.1.member.key'" in message


@pytest.mark.parametrize(
    "operation,params",
    [
        ("DescribeHubContent", {"HubContentType": "DataSet", "HubContentName": "ds"}),  # no hub
        ("DescribeHubContent", {"HubName": "team-hub", "HubContentType": "DataSet",
                                "HubContentName": 7}),
        ("ListHubContents", {"HubName": "team-hub", "HubContentType": "DataSet", "MaxResults": 0}),
        ("ListHubContents", {"HubName": "team-hub", "HubContentType": "DataSet",
                             "MaxResults": "10"}),
        ("DescribeHub", {"HubName": "team-hub", "Colour": "blue"}),
        ("DescribeHubContent", {"HubName": "team-hub", "HubContentType": "DataSet",
                                "HubContentName": "ds", "HubContentVersion": "1.0"}),
    ],
    ids=["missing-required", "wrong-type", "max-results-0", "max-results-str", "unknown-kwarg",
         "version-too-short"],
)
def test_client_side_validation(hub: Any, fake: FakeHub, operation: str, params: dict) -> None:
    """What boto3 checks itself never reaches the wire."""
    calls = len(fake.calls)
    with pytest.raises(ParamValidationError):
        hub.call(operation, **params)
    assert len(fake.calls) == calls


@pytest.mark.parametrize(
    "overrides,where",
    [
        ({"HubContentName": "../x"}, "'hubContentName'"),
        ({"HubContentName": "a b"}, "'hubContentName'"),
        ({"HubContentName": "a" * 64}, "'hubContentName'"),
        ({"HubContentType": "Foo"}, "'hubContentType'"),
        ({"HubContentDocument": "x" * 327_681}, "'hubContentDocument'"),
        ({"HubContentVersion": "1.0.0\n"}, "'hubContentVersion'"),
        ({"HubName": "../../etc"}, "'hubName'"),
        ({"Tags": [{"Key": f"k{i}", "Value": "v"} for i in range(51)]}, "'tags'"),
    ],
    ids=["dotdot", "space", "64-chars", "enum", "document-over-limit", "newline", "hub-dotdot",
         "51-tags"],
)
def test_service_side_validation(hub: Any, fake: FakeHub, overrides: dict, where: str) -> None:
    """What only the service checks comes back as a ValidationException ClientError."""
    calls = len(fake.calls)
    code, status, message = client_error(lambda: imported(hub, **overrides))
    assert (code, status) == ("ValidationException", 400)
    assert where in message
    assert len(fake.calls) == calls


def test_limits_that_are_allowed(hub: Any) -> None:
    imported(hub, name="a" * 63, HubContentDocument="x" * 327_680)
    page = hub.call("ListHubContents", HubName="team-hub", HubContentType="DataSet", MaxResults=100)
    assert [c["HubContentName"] for c in page["HubContentSummaries"]] == ["a" * 63]


def test_max_results_above_range(hub: Any) -> None:
    code, status, message = client_error(lambda: hub.call(
        "ListHubContents", HubName="team-hub", HubContentType="DataSet", MaxResults=101))
    assert (code, status) == ("ValidationException", 400)
    assert "Value '101' at 'maxResults'" in message


def test_resource_limit(hub: Any) -> None:
    for i in range(40):
        imported(hub, name=f"ds-{i}")
    code, status, _ = client_error(lambda: imported(hub, name="one-too-many"))
    assert (code, status) == ("ResourceLimitExceeded", 400)


def test_internal_failure_is_not_retried_and_leaks_nothing(hub: Any, fake: FakeHub) -> None:
    fake.crash = True
    calls = len(fake.calls)
    code, status, message = client_error(lambda: hub.call("DescribeHub", HubName="team-hub"))
    assert (code, status) == ("InternalFailure", 500)
    assert "secret" not in message and "RuntimeError" not in message
    assert len(fake.calls) == calls + 1


def test_timestamp_parameters_reach_the_handler_as_aware_utc(hub: Any, fake: FakeHub) -> None:
    for i in range(3):
        imported(hub, name=f"ds-{i}")
    cutoff = fake.contents[("team-hub", "ds-0", "1.0.0")]["CreationTime"]
    local = cutoff.astimezone(timezone(timedelta(hours=-7)))
    page = hub.call("ListHubContents", HubName="team-hub", HubContentType="DataSet",
                    CreationTimeAfter=local)
    assert [c["HubContentName"] for c in page["HubContentSummaries"]] == ["ds-1", "ds-2"]
    naive_utc = cutoff.replace(tzinfo=None)  # botocore treats naive datetimes as UTC
    page = hub.call("ListHubContents", HubName="team-hub", HubContentType="DataSet",
                    CreationTimeAfter=naive_utc)
    assert len(page["HubContentSummaries"]) == 2


def test_manual_pagination(hub: Any) -> None:
    for i in range(35):
        imported(hub, name=f"ds-{i:03d}")
    seen: list[str] = []
    kwargs: dict[str, Any] = {"HubName": "team-hub", "HubContentType": "DataSet", "MaxResults": 10}
    pages = 0
    while True:
        page = hub.call("ListHubContents", **kwargs)
        pages += 1
        seen += [c["HubContentName"] for c in page["HubContentSummaries"]]
        if not page.get("NextToken"):
            break
        kwargs["NextToken"] = page["NextToken"]
    assert pages == 4
    assert seen == [f"ds-{i:03d}" for i in range(35)]


# -------------------------------------------------------- in-process only


@pytest.fixture
def client(wire: SageMakerWire) -> Any:
    c = make_inprocess_client(wire, region=REGION)
    c.create_hub(HubName="team-hub", HubDescription="tests")
    return c


def test_modeled_exceptions(client: Any) -> None:
    with pytest.raises(client.exceptions.ResourceNotFound) as info:
        client.describe_hub_content(HubName="team-hub", HubContentType="DataSet",
                                    HubContentName="nope")
    assert info.value.response["Error"]["Code"] == "ResourceNotFound"
    assert info.value.response["ResponseMetadata"]["RequestId"]
    # the same text a default boto3 client shows for this error from AWS
    assert str(info.value) == (
        "An error occurred (ResourceNotFound) when calling the DescribeHubContent operation: "
        "Hub content nope does not exist."
    )
    with pytest.raises(client.exceptions.ResourceInUse):
        client.create_hub(HubName="team-hub", HubDescription="again")


def test_it_is_a_real_sagemaker_client(client: Any) -> None:
    assert client.meta.service_model.service_name == "sagemaker"
    assert client.meta.region_name == REGION
    assert callable(client.import_hub_content)
    assert callable(client.create_training_job)  # every method exists, as on boto3's client


def test_paginator_when_botocore_defines_one(client: Any) -> None:
    if not client.can_paginate("list_hub_contents"):
        pytest.skip("this botocore release defines no ListHubContents paginator")
    for i in range(25):
        client.import_hub_content(HubName="team-hub", HubContentType="DataSet",
                                  HubContentName=f"p-{i:02d}", DocumentSchemaVersion="2.0.0",
                                  HubContentDocument="{}")
    pages = client.get_paginator("list_hub_contents").paginate(
        HubName="team-hub", HubContentType="DataSet", PaginationConfig={"PageSize": 10})
    names = [c["HubContentName"] for page in pages for c in page["HubContentSummaries"]]
    assert names == [f"p-{i:02d}" for i in range(25)]


def test_clients_are_cached_per_wire_and_region(wire: SageMakerWire, fake: FakeHub) -> None:
    a = make_inprocess_client(wire, region=REGION)
    assert make_inprocess_client(wire, region=REGION) is a
    b = make_inprocess_client(wire, region="us-west-2")
    assert b is not a and b.meta.region_name == "us-west-2"
    other = make_inprocess_client(SageMakerWire(FakeHub().handlers()), region=REGION)
    assert other is not a
    with pytest.raises(TypeError):
        make_inprocess_client(object(), region=REGION)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        make_inprocess_client(wire, region="")


def test_sixteen_threads(client: Any, fake: FakeHub) -> None:
    errors: list[BaseException] = []
    arns: list[str] = []
    barrier = threading.Barrier(16)

    def worker() -> None:
        try:
            barrier.wait(timeout=30)
            for _ in range(2):
                out = client.import_hub_content(
                    HubName="team-hub", HubContentType="DataSet", HubContentName="shared",
                    DocumentSchemaVersion="2.0.0", HubContentDocument="{}")
                arns.append(out["HubContentArn"])
                client.describe_hub_content(HubName="team-hub", HubContentType="DataSet",
                                            HubContentName="shared")
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    versions = sorted(int(a.rsplit("/", 1)[1].split(".")[0]) for a in arns)
    assert versions == list(range(1, 33))
    listed = client.list_hub_content_versions(HubName="team-hub", HubContentType="DataSet",
                                              HubContentName="shared")["HubContentSummaries"]
    assert len(listed) == 32


def test_no_network_is_used(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the in-process client touched the network")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    assert client.describe_hub(HubName="team-hub")["HubName"] == "team-hub"


def test_works_without_credentials_and_with_hostile_aws_configuration(tmp_path: Any) -> None:
    """No credentials, a missing profile, a corrupt config, FIPS and IMDS-probing modes."""
    bad = tmp_path / "config"
    bad.write_text("[default\nnot ini at all")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(HOME=str(tmp_path), AWS_PROFILE="missing", AWS_CONFIG_FILE=str(bad),
               AWS_SHARED_CREDENTIALS_FILE=str(bad), AWS_USE_FIPS_ENDPOINT="true",
               AWS_USE_DUALSTACK_ENDPOINT="true", AWS_DEFAULTS_MODE="auto",
               AWS_EC2_METADATA_DISABLED="false", AWS_ENDPOINT_URL="http://127.0.0.1:9")
    code = textwrap.dedent(
        """
        import socket
        def refuse(*a, **k):
            raise SystemExit("network used")
        socket.getaddrinfo = refuse
        socket.socket.connect = refuse
        from airegistry.hub.inprocess import make_inprocess_client
        from airegistry.hub.json_protocol import SageMakerWire
        wire = SageMakerWire({"DeleteHub": lambda p: None})
        client = make_inprocess_client(wire, region="ap-south-1")
        print(client.delete_hub(HubName="h")["ResponseMetadata"]["HTTPStatusCode"])
        """
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "200"
