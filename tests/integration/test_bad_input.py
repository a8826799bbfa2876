"""Every input an independent probe answered with a 500 now gets a 4xx with AWS's error code.

Requests are built byte for byte (``tests.server.raw_requests``) and sent to a full server
(SageMaker, S3, Lambda, STS over one home) under a real uvicorn, before and after
authentication. Each case also checks the server keeps answering on the same connection
pool afterwards, and that nothing unreadable was stored.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from airegistry.home import Home
from airegistry.server.app import create_app
from airegistry.server.auth import AuthConfig
from airegistry.server.compose import build_services
from tests.server.conftest import start_server
from tests.server.raw_requests import RawClient, error_code

KEY, SECRET = "AKIDBADINPUTTEST0001", "bad-input-secret-0123456789abcdefghijklm"
ROLE = "arn:aws:iam::123456789012:role/reward"


def _zip(source: str) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("lambda_function.py", source)
    return base64.b64encode(buffer.getvalue()).decode()


GOOD_ZIP = _zip("def lambda_handler(event, context):\n    return {'ok': True}\n")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RawClient, Home]]:
    home = Home(tmp_path_factory.mktemp("bad-input") / "home", region="us-east-1")
    app = create_app(build_services(home), auth=AuthConfig(keys={KEY: SECRET}))
    try:
        with start_server(app) as url, httpx.Client(timeout=30) as http:
            raw = RawClient(url, KEY, SECRET, http)
            assert raw.send("PUT", "/bkt", service="s3").status_code == 200
            assert raw.send("PUT", "/bkt/k", service="s3", body=b"data").status_code == 200
            assert raw.sagemaker("CreateHub", {"HubName": "h", "HubDescription": "d"}
                                 ).status_code == 200
            created = raw.lambda_("POST", "", {
                "FunctionName": "f1", "Role": ROLE, "Runtime": "python3.12",
                "Handler": "lambda_function.lambda_handler", "Code": {"ZipFile": GOOD_ZIP}})
            assert created.status_code == 201, created.text
            yield raw, home
    finally:
        home.close()


def assert_refused(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert error_code(response) == code, response.text[:300]


# -- before authentication ---------------------------------------------------------------

def test_unicode_digits_in_a_v2_expiry(server: tuple[RawClient, Home]) -> None:
    raw, _ = server
    response = raw.send("GET", "/bkt/k?AWSAccessKeyId=x&Signature=y&Expires=%C2%B2")
    assert_refused(response, 400, "AuthorizationQueryParametersError")


def test_dates_beyond_datetimes_range(server: tuple[RawClient, Home]) -> None:
    raw, _ = server
    extreme = "Fri, 31 Dec 9999 23:59:59 -1400"
    v2 = raw.send("GET", "/bkt/k", headers={"Date": extreme, "Authorization": "AWS x:y"})
    assert_refused(v2, 400, "AuthorizationHeaderMalformed")
    # A SigV4 header with no X-Amz-Date, an unknown key and that Date, on a JSON service.
    v4 = raw.send("POST", "/", body=b"{}", headers={
        "Date": extreme, "X-Amz-Target": "SageMaker.ListHubs",
        "Content-Type": "application/x-amz-json-1.1",
        "Authorization": "AWS4-HMAC-SHA256 Credential=UNKNOWN/20240101/us-east-1/sagemaker/"
                         "aws4_request, SignedHeaders=host, Signature=abc"})
    assert_refused(v4, 400, "IncompleteSignatureException")
    # Year 1 with an offset leaves datetime's range too (a two-digit year would be 2001).
    early = raw.send("GET", "/bkt/k", headers={"Date": "Mon, 01 Jan 1 00:00:00 +1400",
                                                "Authorization": "AWS x:y"})
    assert 400 <= early.status_code < 500, early.text


def test_non_ascii_signatures_of_a_known_key(server: tuple[RawClient, Home]) -> None:
    raw, _ = server
    v2 = raw.send("GET", f"/bkt/k?AWSAccessKeyId={KEY}&Signature=%ff&Expires=9999999999")
    assert_refused(v2, 403, "SignatureDoesNotMatch")
    now = dt.datetime.now(dt.timezone.utc)
    credential = f"{KEY}%2F{now:%Y%m%d}%2Fus-east-1%2Fs3%2Faws4_request"
    v4 = raw.send("GET", f"/bkt/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={credential}"
                         f"&X-Amz-Date={now:%Y%m%dT%H%M%SZ}&X-Amz-Expires=600"
                         "&X-Amz-SignedHeaders=host&X-Amz-Signature=%C3%A9")
    assert_refused(v4, 403, "SignatureDoesNotMatch")
    header = raw.send("GET", "/bkt/k", headers={
        "x-amz-content-sha256": "UNSIGNED-PAYLOAD", "x-amz-date": f"{now:%Y%m%dT%H%M%SZ}",
        "Authorization": f"AWS4-HMAC-SHA256 Credential={KEY}/{now:%Y%m%d}/us-east-1/s3/"
                         "aws4_request, SignedHeaders=host, Signature=\xe9\xe9"})
    assert_refused(header, 403, "SignatureDoesNotMatch")


def test_odd_access_key_ids_are_unknown(server: tuple[RawClient, Home]) -> None:
    raw, _ = server
    for key in ("%00", "%ED%A0%80", "a" * 300):
        response = raw.send("GET", f"/bkt/k?AWSAccessKeyId={key}&Signature=x&Expires=9999999999")
        assert_refused(response, 403, "InvalidAccessKeyId")


# -- authenticated S3 --------------------------------------------------------------------

@pytest.mark.parametrize("query", ["max-keys=%C2%B2", "list-type=2&max-keys=%C2%B2",
                                   "max-keys=" + "9" * 5000])
def test_listing_limits_that_are_not_numbers(server: tuple[RawClient, Home], query: str) -> None:
    raw, _ = server
    assert_refused(raw.send("GET", f"/bkt?{query}", service="s3"), 400, "InvalidArgument")


def test_part_numbers_and_lengths_that_are_not_numbers(server: tuple[RawClient, Home]) -> None:
    raw, home = server
    upload = home.objects.create_multipart_upload("bkt", "mp")
    part = raw.send("PUT", f"/bkt/mp?partNumber=%C2%B2&uploadId={upload}", service="s3",
                    body=b"x")
    assert_refused(part, 400, "InvalidArgument")
    parts = raw.send("GET", f"/bkt/mp?max-parts=%C2%B2&uploadId={upload}", service="s3")
    assert_refused(parts, 400, "InvalidArgument")
    marker = raw.send("GET", f"/bkt/mp?part-number-marker=%C2%B2&uploadId={upload}", service="s3")
    assert_refused(marker, 400, "InvalidArgument")
    decoded = raw.send("PUT", "/bkt/k2", service="s3", body=b"x", headers={
        "x-amz-decoded-content-length": "\xb2", "content-encoding": "aws-chunked"})
    assert_refused(decoded, 400, "InvalidArgument")
    assert not home.objects.exists("bkt", "k2")
    huge_range = raw.send("GET", "/bkt/k", service="s3", headers={"Range": "bytes=" + "9" * 5000 + "-"})
    assert huge_range.status_code == 200 and huge_range.content == b"data"  # ignored, as S3 does


@pytest.mark.parametrize("value", ["%E2%98%83", "a%0D%0Ab", "a%00b", "a%0Ab"])
def test_response_overrides_that_cannot_be_headers(server: tuple[RawClient, Home],
                                                   value: str) -> None:
    raw, _ = server
    response = raw.send("GET", f"/bkt/k?response-content-type={value}", service="s3")
    assert_refused(response, 400, "InvalidArgument")
    fine = raw.send("GET", "/bkt/k?response-content-type=text%2Fplain%20", service="s3")
    assert fine.status_code == 200 and fine.headers["content-type"] == "text/plain"


def test_stored_metadata_any_process_wrote_is_always_servable(server: tuple[RawClient, Home]
                                                              ) -> None:
    raw, home = server
    home.objects.put_object("bkt", "snow", b"x", metadata={"label": "☃ snow", "pad": " x "},
                            content_type="text/plain; charset=☃")
    head = raw.send("HEAD", "/bkt/snow", service="s3")
    assert head.status_code == 200
    assert base64.b64decode(head.headers["x-amz-meta-pad"][10:-2]) == b" x "
    encoded = head.headers["x-amz-meta-label"]
    assert encoded.startswith("=?UTF-8?B?") and base64.b64decode(encoded[10:-2]).decode() == "☃ snow"


# -- SageMaker documents -------------------------------------------------------------------

OWNED = ["@owned:registry"]


@pytest.mark.parametrize(("content_type", "document"), [
    ("DataSet", "[]"),
    ("DataSet", "not json"),
    ("DataSet", '{"DatasetS3Bucket": "b", "DatasetS3Prefix": "k", "Dependencies": 5}'),
    ("DataSet", '{"DatasetS3Bucket": "b", "DatasetS3Prefix": "k", '
                '"Dependencies": [{"DependencyOriginPath": 5}]}'),
    ("DataSet", '{"DatasetS3Bucket": 5, "DatasetS3Prefix": "k"}'),
    ("JsonDoc", '{"SubType": "AWS/Evaluator", "JsonContent": null}'),
    ("JsonDoc", '{"SubType": "AWS/Evaluator", "JsonContent": "{\\"Reference\\": \\"x\\", '
                '\\"ObjectUri\\": 5}"}'),
    ("JsonDoc", "[]"),
    ("JsonDoc", "not json"),
    ("Model", "not json"),
    ("Notebook", "[1, 2]"),
    ("Model", '{"x": ' + "[" * 50_000 + "]" * 50_000 + "}"),
    ("DataSet", '{"DatasetS3Bucket": "b", "DatasetS3Prefix": "k", "X": ' + "[" * 50_000
     + "]" * 50_000 + "}"),
])
@pytest.mark.parametrize("keywords", [OWNED, []])
def test_documents_are_typed_on_import(server: tuple[RawClient, Home], content_type: str,
                                       document: str, keywords: list[str]) -> None:
    raw, _ = server
    response = raw.sagemaker("ImportHubContent", {
        "HubName": "h", "HubContentName": "bad-doc", "HubContentType": content_type,
        "DocumentSchemaVersion": "2.0.0", "HubContentDocument": document,
        "HubContentSearchKeywords": keywords})
    assert_refused(response, 400, "ValidationException")
    described = raw.sagemaker("DescribeHubContent", {
        "HubName": "h", "HubContentName": "bad-doc", "HubContentType": content_type})
    assert_refused(described, 400, "ResourceNotFound")


def test_a_dataset_with_dependencies_reads_back(server: tuple[RawClient, Home]) -> None:
    raw, _ = server
    document = json.dumps({"DatasetS3Bucket": "bkt", "DatasetS3Prefix": "k", "Dependencies": [
        {"DependencyOriginPath": "s3://bkt/extra", "DependencyCopyPath": "x"}, "free text"]})
    imported = raw.sagemaker("ImportHubContent", {
        "HubName": "h", "HubContentName": "with-deps", "HubContentType": "DataSet",
        "DocumentSchemaVersion": "2.0.0", "HubContentDocument": document})
    assert imported.status_code == 200, imported.text
    described = raw.sagemaker("DescribeHubContent", {
        "HubName": "h", "HubContentName": "with-deps", "HubContentType": "DataSet"})
    assert described.status_code == 200, described.text
    assert described.json()["HubContentDependencies"] == [
        {"DependencyOriginPath": "s3://bkt/extra", "DependencyCopyPath": "x"}]


# -- Lambda --------------------------------------------------------------------------------

def _create(raw: RawClient, **fields: Any) -> httpx.Response:
    return raw.lambda_("POST", "", {
        "FunctionName": "f2", "Role": ROLE, "Runtime": "python3.12",
        "Handler": "lambda_function.lambda_handler", "Code": {"ZipFile": GOOD_ZIP}, **fields})


def test_invoke_payloads_a_function_cannot_receive(server: tuple[RawClient, Home]) -> None:
    raw, _ = server
    deep = raw.lambda_("POST", "/f1/invocations", b"[" * 10_000 + b"]" * 10_000)
    assert_refused(deep, 400, "InvalidRequestContentException")
    deep_dict = raw.lambda_("POST", "/f1/invocations", b'{"a":' * 300 + b"1" + b"}" * 300)
    assert_refused(deep_dict, 400, "InvalidRequestContentException")
    surrogate = raw.lambda_("POST", "/f1/invocations", b'{"\\ud800": 1}')
    assert_refused(surrogate, 400, "InvalidRequestContentException")
    huge = raw.lambda_("POST", "/f1/invocations", b'{"n": 100000000000000000000000000000000}')
    assert_refused(huge, 400, "InvalidRequestContentException")
    not_utf8 = raw.lambda_("POST", "/f1/invocations", b'{"a": "\xff"}')
    assert_refused(not_utf8, 400, "InvalidRequestContentException")
    fine = raw.lambda_("POST", "/f1/invocations", b'{"a":' * 100 + b"1" + b"}" * 100)
    assert fine.status_code == 200 and fine.json() == {"ok": True}


def test_wrong_json_types_in_lambda_requests(server: tuple[RawClient, Home]) -> None:
    raw, _ = server
    code = raw.lambda_("PUT", "/f1/code", {"ZipFile": 123})
    assert_refused(code, 400, "InvalidRequestContentException")
    for fields in ({"Environment": "x"}, {"Description": {}},
                   {"Environment": {"Variables": ["A"]}}, {"Timeout": "30"},
                   {"Code": {"ZipFile": 5}}):
        assert_refused(_create(raw, **fields), 400, "InvalidRequestContentException")
    assert_refused(raw.lambda_("POST", "", b"[1]"), 400, "InvalidRequestContentException")
    assert_refused(raw.lambda_("POST", "", b"{" * 5000), 400, "InvalidRequestContentException")


@pytest.mark.parametrize("variables", [{"A=B": "x"}, {"A\u0000": "x"}, {"": "x"}, {"1A": "x"}])
def test_environment_variable_names_lambda_refuses(server: tuple[RawClient, Home],
                                                   variables: dict[str, str]) -> None:
    raw, _ = server
    assert_refused(_create(raw, Environment={"Variables": variables}), 400, "ValidationException")


def test_an_accepted_environment_keeps_every_invoke_working(server: tuple[RawClient, Home]) -> None:
    raw, _home = server
    created = _create(raw, FunctionName="env-ok", Environment={"Variables": {"MODE": "fast"}})
    assert created.status_code == 201, created.text
    assert created.json()["Environment"] == {"Variables": {"MODE": "fast"}}
    nul_value = _create(raw, FunctionName="env-nul", Environment={"Variables": {"MODE": "a\u0000"}})
    assert_refused(nul_value, 400, "InvalidParameterValueException")
    assert raw.lambda_("POST", "/env-ok/invocations", b"{}").status_code == 200
    listed = raw.lambda_("GET", "")
    assert listed.status_code == 200
    assert "env-nul" not in {f["FunctionName"] for f in listed.json()["Functions"]}


def test_the_embedded_function_service_refuses_the_same(server: tuple[RawClient, Home]) -> None:
    _, home = server
    functions = home.functions
    base = {"FunctionName": "embedded-bad", "Role": ROLE,
            "Code": {"ZipFile": base64.b64decode(GOOD_ZIP)}}
    for bad in ({"Environment": "x"}, {"Description": {}}, {"Environment": {"Variables": ["a"]}},
                {"Environment": {"Variables": {"A=B": "x"}}},
                {"Environment": {"Variables": {"A": "\x00"}}}, {"Code": "zip"}):
        with pytest.raises(ClientError) as exc:
            functions.create_function(**{**base, **bad})
        assert exc.value.response["Error"]["Code"] == "InvalidParameterValueException"
    functions.create_function(**base)
    with pytest.raises(ClientError) as exc:
        functions.update_function_code(FunctionName="embedded-bad", ZipFile=123)
    assert exc.value.response["Error"]["Code"] == "InvalidParameterValueException"
    assert functions.get_function(FunctionName="embedded-bad")["Configuration"]["Environment"] == {
        "Variables": {}}


def test_update_function_configuration_refuses_the_same(server: tuple[RawClient, Home]) -> None:
    raw, home = server
    for fields, code in (({"Environment": "x"}, "InvalidRequestContentException"),
                         ({"Description": {}}, "InvalidRequestContentException"),
                         ({"Environment": {"Variables": ["A"]}}, "InvalidRequestContentException"),
                         ({"Environment": {"Variables": {"A=B": "x"}}}, "ValidationException")):
        assert_refused(raw.lambda_("PUT", "/f1/configuration", fields), 400, code)
    with pytest.raises(ClientError) as exc:
        home.functions.update_function_configuration(
            FunctionName="f1", Environment={"Variables": {"A": "\x00"}})
    assert exc.value.response["Error"]["Code"] == "InvalidParameterValueException"
    updated = raw.lambda_("PUT", "/f1/configuration", {"Environment": {"Variables": {"KEY": "v"}}})
    assert updated.status_code == 200 and updated.json()["Environment"] == {"Variables": {"KEY": "v"}}
    assert raw.lambda_("POST", "/f1/invocations", b"{}").status_code == 200
