"""SigV4 authentication: header and presigned forms, and every refusal per protocol."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from airegistry.server import sigv4
from tests.server.conftest import RunningServer, sign_headers, wait_for_log

EMPTY = hashlib.sha256(b"").hexdigest()


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return exc.value.response["Error"]["Code"]


# -- unit -----------------------------------------------------------------------------------


def test_canonical_query_sorts_and_reencodes() -> None:
    assert sigv4.canonical_query("b=2&a=1&a=0", exclude_signature=False) == "a=0&a=1&b=2"
    assert sigv4.canonical_query("k=a%20b&x=~_-.", exclude_signature=False) == "k=a%20b&x=~_-."
    assert sigv4.canonical_query("uploads&X-Amz-Signature=zz", exclude_signature=True) == "uploads="


def test_parse_authorization_header_rejects_garbage() -> None:
    with pytest.raises(sigv4.SigV4Error) as exc:
        sigv4.parse_authorization_header("AWS4-HMAC-SHA256 Credential=x")
    assert exc.value.kind is sigv4.AuthFailure.MALFORMED
    with pytest.raises(sigv4.SigV4Error):
        sigv4.parse_authorization_header("Basic dXNlcjpwYXNz")


def test_verify_matches_botocore_signer(server: RunningServer) -> None:
    """A request signed by botocore's SigV4Auth verifies; changing any signed part breaks it."""
    headers = sign_headers(server, "GET", "/bucket/some%20key", headers={"x-custom": "a  b"},
                           payload_hash=EMPTY, query="list-type=2&prefix=a%2Fb")
    pairs = [(k.lower(), v) for k, v in headers.items()] + [("host", server.url[7:])]

    def verify(path: str = "/bucket/some%20key", query: str = "list-type=2&prefix=a%2Fb",
               hdrs: list[tuple[str, str]] = pairs) -> sigv4.VerifiedRequest:
        return sigv4.verify_request(method="GET", raw_path=path, raw_query=query, header_pairs=hdrs,
                                    payload_hash=EMPTY,
                                    lookup_secret={server.access_key: server.secret_key}.get)

    assert verify().access_key == server.access_key
    with pytest.raises(sigv4.SigV4Error):
        verify(path="/bucket/other")
    with pytest.raises(sigv4.SigV4Error):
        verify(query="list-type=2&prefix=a")
    with pytest.raises(sigv4.SigV4Error):
        verify(hdrs=[(k, "x" if k == "x-custom" else v) for k, v in pairs])


# -- over the wire ----------------------------------------------------------------------------


def test_wrong_secret_is_signature_does_not_match(server: RunningServer) -> None:
    bad = server.client("s3", secret_key="wrong-secret-wrong-secret-wrong-secret-00")
    with pytest.raises(ClientError) as exc:
        bad.list_buckets()
    assert _code(exc) == "SignatureDoesNotMatch"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_unknown_key(server: RunningServer) -> None:
    for service, code in (("s3", "InvalidAccessKeyId"), ("sts", "InvalidClientTokenId")):
        client = server.client(service, access_key="AKIDUNKNOWN000000000")
        with pytest.raises(ClientError) as exc:
            client.list_buckets() if service == "s3" else client.get_caller_identity()
        assert _code(exc) == code
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_unsigned_request_denied(server: RunningServer) -> None:
    r = httpx.get(f"{server.url}/", timeout=30)
    assert r.status_code == 403
    assert "<Code>AccessDenied</Code>" in r.text
    r = httpx.post(f"{server.url}/", data={"Action": "GetCallerIdentity", "Version": "2011-06-15"},
                   timeout=30)
    assert r.status_code == 403
    assert "<Code>MissingAuthenticationToken</Code>" in r.text
    r = httpx.post(f"{server.url}/", headers={"X-Amz-Target": "SageMaker.ListHubs",
                                              "Content-Type": "application/x-amz-json-1.1"},
                   content=b"{}", timeout=30)
    assert r.status_code == 403
    assert r.json()["__type"] == "MissingAuthenticationTokenException"


def test_stale_signature(server: RunningServer) -> None:
    old = dt.datetime.utcnow() - dt.timedelta(minutes=20)
    headers = sign_headers(server, "GET", "/", headers={}, payload_hash=EMPTY, when=old)
    r = httpx.get(f"{server.url}/", headers=headers, timeout=30)
    assert r.status_code == 403
    assert "<Code>RequestTimeTooSkewed</Code>" in r.text
    future = dt.datetime.utcnow() + dt.timedelta(minutes=20)
    headers = sign_headers(server, "GET", "/", headers={}, payload_hash=EMPTY, when=future)
    assert httpx.get(f"{server.url}/", headers=headers, timeout=30).status_code == 403
    # Within the 15-minute window is fine.
    near = dt.datetime.utcnow() - dt.timedelta(minutes=5)
    headers = sign_headers(server, "GET", "/", headers={}, payload_hash=EMPTY, when=near)
    assert httpx.get(f"{server.url}/", headers=headers, timeout=30).status_code == 200


def test_stale_json_and_query_protocols(server: RunningServer) -> None:
    old = dt.datetime.utcnow() - dt.timedelta(hours=1)
    body = b"Action=GetCallerIdentity&Version=2011-06-15"
    headers = sign_headers(server, "POST", "/", headers={
        "Content-Type": "application/x-www-form-urlencoded"}, payload_hash=hashlib.sha256(body).hexdigest(),
        service="sts", when=old)
    r = httpx.post(f"{server.url}/", headers=headers, content=body, timeout=30)
    assert r.status_code == 403
    assert "<ErrorResponse" in r.text and "SignatureDoesNotMatch" in r.text


def test_tampered_body_fails_for_json_protocol(server: RunningServer) -> None:
    body = b'{"HubName": "x"}'
    headers = sign_headers(server, "POST", "/", headers={
        "X-Amz-Target": "SageMaker.DescribeHub", "Content-Type": "application/x-amz-json-1.1"},
        payload_hash=hashlib.sha256(body).hexdigest(), service="sagemaker")
    r = httpx.post(f"{server.url}/", headers=headers, content=b'{"HubName": "y"}', timeout=30)
    assert r.status_code == 403
    assert r.json()["__type"] == "InvalidSignatureException"
    # Control: the untampered body passes authentication (this app serves no SageMaker).
    r = httpx.post(f"{server.url}/", headers=headers, content=body, timeout=30)
    assert r.json()["__type"] == "UnknownOperationException"


def test_payload_hash_mismatch_on_put(server: RunningServer, s3: Any, bucket: str) -> None:
    claimed = hashlib.sha256(b"what I signed").hexdigest()
    headers = sign_headers(server, "PUT", f"/{bucket}/k", headers={}, payload_hash=claimed)
    r = httpx.put(f"{server.url}/{bucket}/k", headers=headers, content=b"something else", timeout=30)
    assert r.status_code == 400
    assert "<Code>XAmzContentSHA256Mismatch</Code>" in r.text
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


@pytest.mark.parametrize("version", ["s3v4", "s3"])
def test_presigned_get_and_put(server: RunningServer, bucket: str, version: str) -> None:
    """Both SigV4 presigning and boto3's default (V2 query signing in us-east-1) work."""
    s3 = server.client("s3", signature_version=version)
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "pre/x y"},
                                        ExpiresIn=300)
    r = httpx.put(put_url, content=b"via presigned", timeout=30)
    assert r.status_code == 200, r.text
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "pre/x y"},
                                        ExpiresIn=300)
    r = httpx.get(get_url, timeout=30)
    assert r.status_code == 200
    assert r.content == b"via presigned"
    # Tampering with the signed query (another key) fails.
    r = httpx.get(get_url.replace("x%20y", "other").replace("x%2520y", "other"), timeout=30)
    assert r.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in r.text


def test_presigned_expired(server: RunningServer, bucket: str) -> None:
    import unittest.mock as mock

    s3 = server.client("s3", signature_version="s3v4")
    s3.put_object(Bucket=bucket, Key="e", Body=b"1")
    from botocore.auth import S3SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    # boto3 may sign through awscrt; use botocore's pure-Python presigner to backdate.
    req = AWSRequest(method="GET", url=f"{server.url}/{bucket}/e")
    then = dt.datetime.utcnow() - dt.timedelta(hours=2)
    with mock.patch("botocore.auth.get_current_datetime", return_value=then):
        S3SigV4QueryAuth(Credentials(server.access_key, server.secret_key), "s3", "us-east-1",
                         expires=60).add_auth(req)
    r = httpx.get(req.url, timeout=30)
    assert r.status_code == 403
    assert "<Code>AccessDenied</Code>" in r.text and "expired" in r.text


def test_malformed_authorization(server: RunningServer) -> None:
    r = httpx.get(f"{server.url}/", headers={"Authorization": "AWS4-HMAC-SHA256 Credential=bad",
                                             "x-amz-content-sha256": EMPTY}, timeout=30)
    assert r.status_code == 400
    assert "AuthorizationHeaderMalformed" in r.text
    r = httpx.get(f"{server.url}/?X-Amz-Credential=a/b&X-Amz-Signature=x", timeout=30)
    assert r.status_code == 400
    assert "AuthorizationQueryParametersError" in r.text


def test_secrets_never_logged(server: RunningServer, s3: Any, bucket: str,
                              access_log: pytest.LogCaptureFixture) -> None:
    s3.put_object(Bucket=bucket, Key="logged", Body=b"1")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "logged"})
    httpx.get(url, timeout=30)
    with pytest.raises(ClientError):
        server.client("s3", secret_key="x" * 40).list_buckets()
    text = "\n".join(wait_for_log(access_log, "SignatureDoesNotMatch"))
    assert "logged" in text
    assert server.secret_key not in text
    from urllib.parse import parse_qs, urlsplit

    query = parse_qs(urlsplit(url).query)
    sig = (query.get("X-Amz-Signature") or query["Signature"])[0]
    assert sig not in text
    assert "Signature=" not in text and "Credential=" not in text


# -- AWS's published examples (S3 API reference, "Signature Calculations for the
#    Authorization Header"): independent vectors for the verifier and the chunk decoder. ----

_EX_KEY, _EX_SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
_EX_NOW = dt.datetime(2013, 5, 24, 0, 0, 30, tzinfo=dt.timezone.utc)
_EX_CRED = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,"


def test_aws_example_get_object() -> None:
    headers = [
        ("host", "examplebucket.s3.amazonaws.com"), ("range", "bytes=0-9"),
        ("x-amz-content-sha256", EMPTY), ("x-amz-date", "20130524T000000Z"),
        ("authorization", _EX_CRED + "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
         "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"),
    ]
    verified = sigv4.verify_request(method="GET", raw_path="/test.txt", raw_query="",
                                    header_pairs=headers, payload_hash=EMPTY,
                                    lookup_secret={_EX_KEY: _EX_SECRET}.get, now=_EX_NOW)
    assert verified.access_key == _EX_KEY
    with pytest.raises(sigv4.SigV4Error) as exc:
        sigv4.verify_request(method="GET", raw_path="/test.txt", raw_query="",
                             header_pairs=headers, payload_hash=EMPTY,
                             lookup_secret={_EX_KEY: _EX_SECRET}.get,
                             now=_EX_NOW + dt.timedelta(minutes=16))
    assert exc.value.kind is sigv4.AuthFailure.SKEWED


def test_aws_example_chunked_upload() -> None:
    from airegistry.server.chunked import AwsChunkedDecoder, ChunkSigning

    payload = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
    headers = [
        ("host", "s3.amazonaws.com"), ("x-amz-date", "20130524T000000Z"),
        ("x-amz-storage-class", "REDUCED_REDUNDANCY"), ("x-amz-content-sha256", payload),
        ("content-encoding", "aws-chunked"), ("x-amz-decoded-content-length", "66560"),
        ("content-length", "66824"),
        ("authorization", _EX_CRED + "SignedHeaders=content-encoding;content-length;host;"
         "x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,"
         "Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"),
    ]
    seed = sigv4.verify_request(method="PUT", raw_path="/examplebucket/chunkObject.txt",
                                raw_query="", header_pairs=headers, payload_hash=payload,
                                lookup_secret={_EX_KEY: _EX_SECRET}.get, now=_EX_NOW)
    body = (b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
            b"\r\n" + b"a" * 65536 + b"\r\n"
            b"400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"
            b"\r\n" + b"a" * 1024 + b"\r\n"
            b"0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"
            b"\r\n\r\n")
    assert len(body) == 66824
    decoder = AwsChunkedDecoder(
        signing=ChunkSigning(seed.signing_key, seed.amz_date, seed.scope, seed.signature),
        expect_trailer=None, decoded_length=66560)
    assert b"".join(decoder.decode([body[i:i + 1000] for i in range(0, len(body), 1000)])) \
        == b"a" * 66560


@pytest.mark.parametrize("auth", ["none", "unknown-key"])
def test_json_request_refused_before_its_body_is_read(server: RunningServer, auth: str) -> None:
    """Only headers are sent; the refusal must arrive without the server waiting for the body."""
    from tests.server.conftest import build_request, raw_http

    headers = {"Host": f"127.0.0.1:{server.port}", "X-Amz-Target": "SageMaker.ListHubs",
               "Content-Type": "application/x-amz-json-1.1", "Content-Length": "50000000"}
    if auth == "unknown-key":
        signed = sign_headers(server, "POST", "/", headers={"X-Amz-Target": "SageMaker.ListHubs"},
                              payload_hash=EMPTY, service="sagemaker",
                              access_key="AKIDNOTKNOWN00000000")
        headers.update({k: v for k, v in signed.items() if k.lower() != "x-amz-target"})
    status, resp = raw_http(server.url, build_request("POST", "/", headers))
    assert status == 403, resp
    expected = b"MissingAuthenticationToken" if auth == "none" else b"UnrecognizedClientException"
    assert expected in resp
