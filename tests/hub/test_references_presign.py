"""The last four hub operations of botocore's model, in process and over a real server:
CreateHubContentReference, UpdateHubContentReference, DeleteHubContentReference and
CreateHubContentPresignedUrls (URLs served by the server's S3 side, SigV4, expiring)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from airegistry.home import Home
from airegistry.hub.inprocess import make_inprocess_client
from airegistry.hub.presign import PUBLIC_URL_ENV, SigV4UrlSigner, presign_credentials
from airegistry.server.app import create_app
from airegistry.server.compose import auth_for, build_services
from tests.server.conftest import start_server

KEY, SECRET = "AKIDPRESIGNTEST00001", "presign-test-secret-0123456789abcdefghij"
PUBLIC = "arn:aws:sagemaker:us-east-1:aws:hub-content/SageMakerPublicHub/Model/llama-7b"
HUB = "refs-hub"


class Registry:
    """One home served by a real uvicorn; ``sm`` is either an in-process or a remote client."""

    def __init__(self, home: Home, url: str, sm: Any, mode: str) -> None:
        self.home, self.url, self.sm, self.mode = home, url, sm, mode


@pytest.fixture(params=["inprocess", "server"], scope="module")
def registry(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[Registry]:
    mode = request.param
    root = tmp_path_factory.mktemp(f"refs-{mode}")
    # The server is started first so that the in-process registry can name it as the
    # public endpoint of its URLs (AIREGISTRY_PUBLIC_URL), as a deployment would.
    holder: dict[str, Any] = {}
    home = Home(root / "home", region="us-east-1")
    auth = auth_for(home)
    auth.keys = {**auth.keys, KEY: SECRET}
    app = create_app(build_services(home), auth=auth)
    try:
        with start_server(app) as url:
            if mode == "inprocess":
                home.hub.artifacts.signer = SigV4UrlSigner(home.settings, home.region, url)
                sm = make_inprocess_client(home.wire, region="us-east-1")
            else:
                sm = boto3.client("sagemaker", endpoint_url=url, region_name="us-east-1",
                                  aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                                  config=Config(retries={"max_attempts": 1}))
            holder["registry"] = Registry(home, url, sm, mode)
            sm.create_hub(HubName=HUB, HubDescription="references and presigned URLs")
            yield holder["registry"]
    finally:
        home.close()


def code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return exc.value.response["Error"]["Code"]


def test_reference_lifecycle(registry: Registry) -> None:
    sm = registry.sm
    out = sm.create_hub_content_reference(HubName=HUB, SageMakerPublicHubContentArn=PUBLIC,
                                          MinVersion="1.2.0", Tags=[{"Key": "team", "Value": "a"}])
    assert out["HubContentArn"].endswith(f":hub-content/{HUB}/ModelReference/llama-7b/1.0.0")
    assert out["HubArn"].endswith(f":hub/{HUB}")
    described = sm.describe_hub_content(HubName=HUB, HubContentType="ModelReference",
                                        HubContentName="llama-7b")
    assert described["SageMakerPublicHubContentArn"] == PUBLIC
    assert described["ReferenceMinVersion"] == "1.2.0"
    assert described["HubContentStatus"] == "Available"
    assert described["CreationTime"].tzinfo is not None
    listed = sm.list_hub_contents(HubName=HUB, HubContentType="ModelReference")
    [summary] = listed["HubContentSummaries"]
    assert summary["SageMakerPublicHubContentArn"] == PUBLIC
    assert sm.list_tags(ResourceArn=out["HubContentArn"])["Tags"] == [{"Key": "team", "Value": "a"}]

    sm.update_hub_content_reference(HubName=HUB, HubContentType="ModelReference",
                                    HubContentName="llama-7b", MinVersion="2.0.0")
    assert sm.describe_hub_content(HubName=HUB, HubContentType="ModelReference",
                                   HubContentName="llama-7b")["ReferenceMinVersion"] == "2.0.0"

    named = sm.create_hub_content_reference(HubName=HUB, SageMakerPublicHubContentArn=PUBLIC,
                                            HubContentName="my-llama")
    assert "/ModelReference/my-llama/" in named["HubContentArn"]
    no_min = sm.describe_hub_content(HubName=HUB, HubContentType="ModelReference",
                                     HubContentName="my-llama")
    assert "ReferenceMinVersion" not in no_min

    sm.delete_hub_content_reference(HubName=HUB, HubContentType="ModelReference",
                                    HubContentName="llama-7b")
    sm.delete_hub_content_reference(HubName=HUB, HubContentType="ModelReference",
                                    HubContentName="my-llama")
    with pytest.raises(ClientError) as exc:
        sm.describe_hub_content(HubName=HUB, HubContentType="ModelReference",
                                HubContentName="llama-7b")
    assert code(exc) == "ResourceNotFound"


def test_reference_errors(registry: Registry) -> None:
    sm = registry.sm
    sm.create_hub_content_reference(HubName=HUB, SageMakerPublicHubContentArn=PUBLIC,
                                    HubContentName="dup")
    with pytest.raises(ClientError) as exc:
        sm.create_hub_content_reference(HubName=HUB, SageMakerPublicHubContentArn=PUBLIC,
                                        HubContentName="dup")
    assert code(exc) == "ResourceInUse"
    with pytest.raises(ClientError) as exc:
        sm.create_hub_content_reference(HubName="no-such-hub", SageMakerPublicHubContentArn=PUBLIC)
    assert code(exc) == "ResourceNotFound"
    with pytest.raises(ClientError) as exc:  # public content lives in an "aws" account
        sm.create_hub_content_reference(
            HubName=HUB, SageMakerPublicHubContentArn=PUBLIC.replace(":aws:", ":123456789012:"))
    assert code(exc) == "ValidationException"
    with pytest.raises(ClientError) as exc:
        sm.update_hub_content_reference(HubName=HUB, HubContentType="Model",
                                        HubContentName="dup", MinVersion="1.0.0")
    assert code(exc) == "ValidationException"
    with pytest.raises(ClientError) as exc:
        sm.update_hub_content_reference(HubName=HUB, HubContentType="ModelReference",
                                        HubContentName="dup")
    assert code(exc) == "ValidationException"
    for call, kwargs in ((sm.update_hub_content_reference, {"MinVersion": "1.0.0"}),
                         (sm.delete_hub_content_reference, {})):
        with pytest.raises(ClientError) as exc:
            call(HubName=HUB, HubContentType="ModelReference", HubContentName="absent", **kwargs)
        assert code(exc) == "ResourceNotFound"
    with pytest.raises(ClientError) as exc:
        sm.delete_hub_content_reference(HubName=HUB, HubContentType="DataSet", HubContentName="dup")
    assert code(exc) == "ValidationException"
    with pytest.raises(ClientError) as exc:  # references have their own operation
        sm.import_hub_content(HubName=HUB, HubContentType="ModelReference", HubContentName="imp",
                              DocumentSchemaVersion="1.0.0", HubContentDocument="{}")
    assert code(exc) == "ValidationException"
    sm.delete_hub_content_reference(HubName=HUB, HubContentType="ModelReference",
                                    HubContentName="dup")


def _dataset(registry: Registry, name: str, files: dict[str, bytes],
             dependency_prefix: str | None = None) -> str:
    """A DataSet version over objects of the registry's own store; returns its version."""
    objects = registry.home.objects
    bucket = f"presign-{registry.mode}"
    objects.ensure_bucket(bucket)
    for key, data in files.items():
        objects.put_object(bucket, key, data)
    main = next(iter(files))
    doc: dict[str, Any] = {"DatasetS3Bucket": bucket, "DatasetS3Prefix": main, "Dependencies": []}
    if dependency_prefix:
        doc["Dependencies"] = [{"DependencyOriginPath": f"s3://{bucket}/{dependency_prefix}",
                                "DependencyCopyPath": "extras"}]
    out = registry.sm.import_hub_content(
        HubName=HUB, HubContentType="DataSet", HubContentName=name, DocumentSchemaVersion="2.0.0",
        HubContentDocument=json.dumps(doc))
    return out["HubContentArn"].rsplit("/", 1)[-1]


def test_presigned_urls_fetch_the_objects_from_the_s3_side(registry: Registry) -> None:
    files = {"train/data.jsonl": b'{"prompt": "a", "completion": "b"}\n',
             "deps/one.txt": b"one", "deps/two.txt": b"two", "deps/sub/three.txt": b"three"}
    version = _dataset(registry, "presigned-data", files, dependency_prefix="deps/")
    sm = registry.sm
    first = sm.create_hub_content_presigned_urls(
        HubName=HUB, HubContentType="DataSet", HubContentName="presigned-data",
        HubContentVersion=version, MaxResults=3)
    assert len(first["AuthorizedUrlConfigs"]) == 3 and first["NextToken"]
    rest = sm.create_hub_content_presigned_urls(
        HubName=HUB, HubContentType="DataSet", HubContentName="presigned-data",
        MaxResults=3, NextToken=first["NextToken"])
    assert "NextToken" not in rest
    configs = first["AuthorizedUrlConfigs"] + rest["AuthorizedUrlConfigs"]
    by_path = {c["LocalPath"]: c["Url"] for c in configs}
    assert sorted(by_path) == ["/data.jsonl", "/extras/one.txt", "/extras/sub/three.txt",
                               "/extras/two.txt"]
    expected = {"/data.jsonl": files["train/data.jsonl"], "/extras/one.txt": b"one",
                "/extras/two.txt": b"two", "/extras/sub/three.txt": b"three"}
    for path, url in by_path.items():
        assert url.startswith(registry.url + "/")
        query = parse_qs(urlsplit(url).query)
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
        assert query["X-Amz-Expires"] == ["900"]
        response = httpx.get(url)  # no credentials of the caller: the URL alone
        assert response.status_code == 200, response.text
        assert response.content == expected[path]
    # A URL is for that object only: another key with the same signature is refused.
    tampered = by_path["/extras/one.txt"].replace("deps/one.txt", "deps/two.txt")
    assert httpx.get(tampered).status_code == 403


def test_presigned_urls_expire_and_the_presign_key_only_reads(registry: Registry) -> None:
    if registry.mode != "server":
        pytest.skip("the server's checks of the URL, once")
    bucket = "presign-server"
    registry.home.objects.ensure_bucket(bucket)
    registry.home.objects.put_object(bucket, "short.txt", b"short-lived")
    signer = SigV4UrlSigner(registry.home.settings, "us-east-1", registry.url)
    url = signer.presign_get(bucket, "short.txt", 60)
    assert httpx.get(url).status_code == 200
    # signed two minutes ago for 60 s: expired, whatever the machine's speed
    signed_at = datetime.now(timezone.utc) - timedelta(seconds=120)

    def then(remove_tzinfo: bool = True) -> datetime:
        return signed_at.replace(tzinfo=None) if remove_tzinfo else signed_at

    # botocore signs with awscrt where it is installed, with its own signer otherwise
    with mock.patch("botocore.auth.get_current_datetime", then), \
            mock.patch("botocore.crt.auth.get_current_datetime", then):
        url = signer.presign_get(bucket, "short.txt", 60)
    expired = httpx.get(url)
    assert expired.status_code == 403 and "<Code>AccessDenied</Code>" in expired.text
    key_id, secret = presign_credentials(registry.home.settings)
    s3 = boto3.client("s3", endpoint_url=registry.url, region_name="us-east-1",
                      aws_access_key_id=key_id, aws_secret_access_key=secret,
                      config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
    assert s3.get_object(Bucket=bucket, Key="short.txt")["Body"].read() == b"short-lived"
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="written.txt", Body=b"x")
    assert code(exc) == "AccessDenied"
    sm = boto3.client("sagemaker", endpoint_url=registry.url, region_name="us-east-1",
                      aws_access_key_id=key_id, aws_secret_access_key=secret,
                      config=Config(retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as exc:
        sm.list_hubs()
    assert code(exc) == "AccessDenied"


def test_presigned_urls_of_evaluators_and_of_objects_elsewhere(registry: Registry) -> None:
    sm = registry.sm
    objects = registry.home.objects
    bucket = f"presign-{registry.mode}"
    objects.ensure_bucket(bucket)
    objects.put_object(bucket, "prompts/judge.txt", b"Rate it.")
    content = json.dumps({"Reference": f"s3://{bucket}/prompts/judge.txt",
                          "EvaluatorType": "RewardPrompt"})
    sm.import_hub_content(HubName=HUB, HubContentType="JsonDoc", HubContentName="judge",
                          DocumentSchemaVersion="2.0.0", HubContentDocument=json.dumps(
                              {"SubType": "AWS/Evaluator", "JsonContent": content}))
    out = sm.create_hub_content_presigned_urls(HubName=HUB, HubContentType="JsonDoc",
                                               HubContentName="judge")
    [config] = out["AuthorizedUrlConfigs"]
    assert config["LocalPath"] == "/judge.txt"
    assert httpx.get(config["Url"]).content == b"Rate it."
    with pytest.raises(ClientError) as exc:
        sm.create_hub_content_presigned_urls(
            HubName=HUB, HubContentType="JsonDoc", HubContentName="judge",
            AccessConfig={"ExpectedS3Url": "s3://another-bucket/"})
    assert code(exc) == "ValidationException"
    ok = sm.create_hub_content_presigned_urls(
        HubName=HUB, HubContentType="JsonDoc", HubContentName="judge",
        AccessConfig={"ExpectedS3Url": f"s3://{bucket}/prompts/", "AcceptEula": True})
    assert len(ok["AuthorizedUrlConfigs"]) == 1
    # Registered by reference to a bucket this registry does not hold: nothing to sign.
    sm.import_hub_content(HubName=HUB, HubContentType="DataSet", HubContentName="elsewhere",
                          DocumentSchemaVersion="2.0.0", HubContentDocument=json.dumps(
                              {"DatasetS3Bucket": "not-ours", "DatasetS3Prefix": "x.jsonl"}))
    assert sm.create_hub_content_presigned_urls(
        HubName=HUB, HubContentType="DataSet",
        HubContentName="elsewhere")["AuthorizedUrlConfigs"] == []
    with pytest.raises(ClientError) as exc:
        sm.create_hub_content_presigned_urls(HubName=HUB, HubContentType="DataSet",
                                             HubContentName="absent")
    assert code(exc) == "ResourceNotFound"
    with pytest.raises(ClientError) as exc:
        sm.create_hub_content_presigned_urls(HubName="absent-hub", HubContentType="DataSet",
                                             HubContentName="x")
    assert code(exc) == "ResourceNotFound"


def test_public_url_setting_names_the_endpoint(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PUBLIC_URL_ENV, "https://registry.example:8443")
    home = Home(tmp_path / "home", region="us-east-1", start_jobs=False)
    try:
        url = home.hub.artifacts.signer.presign_get("b", "k", 900)
        assert url.startswith("https://registry.example:8443/b/k?")
    finally:
        home.close()
