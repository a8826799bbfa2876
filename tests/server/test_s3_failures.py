"""Bad input and failure: none of these may give a 5xx, hang, or take the server down."""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from botocore.exceptions import ClientError

from airegistry.server.app import ServerOptions, create_app
from airegistry.server.auth import AuthConfig
from tests.server.conftest import (
    RunningServer,
    build_request,
    make_services,
    raw_http,
    sign_headers,
    start_server,
    wait_for_log,
)

EMPTY = hashlib.sha256(b"").hexdigest()


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return exc.value.response["Error"]["Code"]


def _healthy(server: RunningServer) -> None:
    r = httpx.get(f"{server.url}/healthz", timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "ok"


def _signed_raw(server: RunningServer, method: str, path: str, body: bytes = b"",
                extra: dict[str, str] | None = None, payload: str | None = None) -> tuple[int, bytes]:
    headers = dict(extra or {})
    signed = sign_headers(server, method, path, headers=headers,
                          payload_hash=payload or hashlib.sha256(body).hexdigest())
    signed["Host"] = f"127.0.0.1:{server.port}"
    signed["Content-Length"] = str(len(body))
    return raw_http(server.url, build_request(method, path, signed, body))


# -- hostile keys ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["../escape", "a/../../b", "./x", "a/./b", "x\x00y"])
def test_hostile_keys_via_boto3(s3: Any, bucket: str, key: str) -> None:
    """Also checks that a refused upload (boto3 sends Expect: 100-continue and then skips
    the body) does not desynchronise the reused connection for the next request."""
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key=key)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] in (400, 404), \
        exc.value.response


@pytest.mark.parametrize("path", ["{b}/%2E%2E/%2E%2E/etc/passwd", "{b}/a%00b", "{b}/%2e%2e",
                                  "{b}//abs", "{b}/%FF%FE"])
def test_hostile_percent_encoded_paths(server: RunningServer, s3: Any, bucket: str,
                                       path: str) -> None:
    status, resp = _signed_raw(server, "PUT", "/" + path.format(b=bucket), b"data")
    assert status == 400, resp
    assert b"<Error>" in resp
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    # Nothing escaped the store root.
    assert not any(p.name == "passwd" for p in server.home.rglob("passwd"))


def test_invalid_bucket_name(s3: Any) -> None:
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket="Bad_Name")
    assert _code(exc) == "InvalidBucketName"


# -- malformed requests ------------------------------------------------------------------------


def test_garbage_http_is_400(server: RunningServer) -> None:
    status, _ = raw_http(server.url, b"THIS IS NOT HTTP\r\n\r\n")
    assert status in (0, 400)
    status, _ = raw_http(server.url, b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: zz\r\n\r\n")
    assert status in (0, 400)
    _healthy(server)


def test_malformed_s3_requests(server: RunningServer, s3: Any, bucket: str) -> None:
    cases = [
        ("GET", f"/{bucket}?list-type=2&max-keys=abc", b"", "InvalidArgument"),
        ("GET", f"/{bucket}?list-type=2&encoding-type=base64", b"", "InvalidArgument"),
        ("PUT", f"/{bucket}/k?partNumber=0&uploadId=abc", b"x", "InvalidArgument"),
        ("PUT", f"/{bucket}/k?partNumber=1&uploadId=" + "0" * 32, b"x", "NoSuchUpload"),
        ("POST", f"/{bucket}?delete", b"<Delete><Object>", "MalformedXML"),
        ("POST", f"/{bucket}?delete", b"<Delete></Delete>", "MalformedXML"),
        ("POST", f"/{bucket}/k?uploadId=" + "0" * 32, b"not xml", "MalformedXML"),
        ("PATCH", f"/{bucket}/k", b"", "MethodNotAllowed"),
        ("PUT", f"/{bucket}/k", b"x", None),  # control: a valid request
    ]
    for method, path, body, code in cases:
        status, resp = _signed_raw(server, method, path, body)
        if code is None:
            assert status == 200, resp
            continue
        assert 400 <= status < 500, (path, resp)
        assert f"<Code>{code}</Code>".encode() in resp, (path, resp)


def test_entity_expansion_refused(server: RunningServer, bucket: str) -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><Delete><Object><Key>&b;</Key>'
            b"</Object></Delete>")
    status, resp = _signed_raw(server, "POST", f"/{bucket}?delete", bomb)
    assert status == 400
    assert b"MalformedXML" in resp


def test_unparseable_range_returns_whole_object(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="r", Body=b"0123456789")
    got = s3.get_object(Bucket=bucket, Key="r", Range="bytes=abc")
    assert got["Body"].read() == b"0123456789"


# -- multipart misuse ----------------------------------------------------------------------------


def _two_parts(s3: Any, bucket: str, key: str) -> tuple[str, list[dict[str, Any]]]:
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    p1 = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=1,
                        Body=os.urandom(5 * 1024 * 1024))["ETag"]
    p2 = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=2, Body=b"end")["ETag"]
    return uid, [{"PartNumber": 1, "ETag": p1}, {"PartNumber": 2, "ETag": p2}]


def test_complete_with_missing_part(s3: Any, bucket: str) -> None:
    uid, parts = _two_parts(s3, bucket, "m")
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="m", UploadId=uid, MultipartUpload={
            "Parts": [parts[0], {"PartNumber": 3, "ETag": parts[1]["ETag"]}]})
    assert _code(exc) == "InvalidPart"
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="m", UploadId=uid, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": '"' + "0" * 32 + '"'}, parts[1]]})
    assert _code(exc) == "InvalidPart"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_complete_with_reordered_parts(s3: Any, bucket: str) -> None:
    uid, parts = _two_parts(s3, bucket, "o")
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="o", UploadId=uid,
                                     MultipartUpload={"Parts": list(reversed(parts))})
    assert _code(exc) == "InvalidPartOrder"
    # The upload is still usable with the right order.
    s3.complete_multipart_upload(Bucket=bucket, Key="o", UploadId=uid,
                                 MultipartUpload={"Parts": parts})
    assert s3.head_object(Bucket=bucket, Key="o")["ContentLength"] == 5 * 1024 * 1024 + 3


def test_complete_unknown_upload(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="z", UploadId="f" * 32, MultipartUpload={
            "Parts": [{"PartNumber": 1, "ETag": '"' + "0" * 32 + '"'}]})
    assert _code(exc) == "NoSuchUpload"


# -- size limits ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    home = tmp_path_factory.mktemp("small")
    services = make_services(home)
    key, secret = "AKIDSMALLSERVER00001", "small-secret-000000000000000000000000000"
    app = create_app(services, auth=AuthConfig(keys={key: secret}),
                     options=ServerOptions(max_object_size=1000, max_api_body=2000))
    with start_server(app) as url:
        yield RunningServer(url, int(url.rsplit(":", 1)[1]), app, services.objects, key, secret,
                            home)


def test_oversized_put(small_server: RunningServer) -> None:
    s3 = small_server.client("s3")
    s3.create_bucket(Bucket="limits")
    s3.put_object(Bucket="limits", Key="ok", Body=b"x" * 1000)
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket="limits", Key="big", Body=b"x" * 1001)
    assert _code(exc) == "EntityTooLarge"
    # A chunked transfer without Content-Length is capped while streaming.
    headers = sign_headers(small_server, "PUT", "/limits/big2", headers={},
                           payload_hash="UNSIGNED-PAYLOAD")

    def gen() -> Any:
        for _ in range(10):
            yield b"y" * 500

    r = httpx.put(f"{small_server.url}/limits/big2", headers=headers, content=gen(), timeout=30)
    assert r.status_code == 400 and "EntityTooLarge" in r.text
    keys = [c["Key"] for c in s3.list_objects_v2(Bucket="limits")["Contents"]]
    assert keys == ["ok"]


def test_oversized_api_bodies(small_server: RunningServer) -> None:
    body = b"{" + b" " * 5000 + b"}"
    headers = sign_headers(small_server, "POST", "/", headers={
        "X-Amz-Target": "SageMaker.ListHubs", "Content-Type": "application/x-amz-json-1.1"},
        payload_hash=hashlib.sha256(body).hexdigest(), service="sagemaker")
    r = httpx.post(f"{small_server.url}/", headers=headers, content=body, timeout=30)
    assert r.status_code == 413
    assert r.json()["__type"] == "RequestEntityTooLargeException"


# -- connection behaviour ------------------------------------------------------------------------


def test_expect_100_continue_is_answered_before_the_body(server: RunningServer, s3: Any,
                                                        bucket: str) -> None:
    body = os.urandom(2 * 1024 * 1024)
    headers = sign_headers(server, "PUT", f"/{bucket}/expect", headers={},
                           payload_hash=hashlib.sha256(body).hexdigest())
    headers.update({"Host": f"127.0.0.1:{server.port}", "Content-Length": str(len(body)),
                    "Expect": "100-continue"})
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(build_request("PUT", f"/{bucket}/expect", headers))
        interim = sock.recv(4096)  # must arrive although no body byte was sent
        assert interim.startswith(b"HTTP/1.1 100"), interim
        sock.sendall(body)
        final = b""
        while b"\r\n\r\n" not in final:
            final += sock.recv(4096)
    assert final.split(b"\r\n", 1)[0].endswith(b"200 OK"), final
    assert s3.get_object(Bucket=bucket, Key="expect")["Body"].read() == body


def test_boto3_large_put_uses_expect_and_succeeds(s3: Any, bucket: str) -> None:
    """boto3 adds Expect: 100-continue for bodies >= 1 MB; the put must complete normally."""
    body = os.urandom(3 * 1024 * 1024)
    s3.put_object(Bucket=bucket, Key="bigput", Body=body)
    assert s3.get_object(Bucket=bucket, Key="bigput")["Body"].read() == body


@pytest.mark.parametrize("mode", ["plain", "aws-chunked"])
def test_disconnect_mid_upload_leaves_nothing(server: RunningServer, s3: Any, bucket: str,
                                              access_log: pytest.LogCaptureFixture,
                                              mode: str) -> None:
    key = f"partial-{mode}"
    headers: dict[str, str] = {}
    payload = "UNSIGNED-PAYLOAD"
    if mode == "aws-chunked":
        headers = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": "1000000",
                   "x-amz-trailer": "x-amz-checksum-crc32"}
        payload = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    signed = sign_headers(server, "PUT", f"/{bucket}/{key}", headers=headers, payload_hash=payload)
    signed.update({"Host": f"127.0.0.1:{server.port}", "Content-Length": "1000100"})
    first = b"f4240\r\n" + b"z" * 200_000 if mode == "aws-chunked" else b"z" * 200_000
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(build_request("PUT", f"/{bucket}/{key}", signed, first))
    wait_for_log(access_log, f"/{bucket}/{key}")
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key=key)
    _healthy(server)


# -- load ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_thousand_concurrent_requests(server: RunningServer, bucket: str) -> None:
    """50 threads x 20 mixed requests (valid, missing, wrongly signed): no 5xx, server alive."""
    statuses: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(50)

    def worker(n: int) -> None:
        good = server.client("s3", max_pool_connections=2)
        bad = server.client("s3", secret_key="z" * 40)
        barrier.wait()
        for i in range(20):
            op = (n + i) % 5
            try:
                if op == 0:
                    r = good.put_object(Bucket=bucket, Key=f"c/{n}/{i}", Body=os.urandom(2048))
                elif op == 1:
                    r = good.list_objects_v2(Bucket=bucket, Prefix="c/", MaxKeys=50)
                elif op == 2:
                    r = good.head_bucket(Bucket=bucket)
                elif op == 3:
                    r = good.get_object(Bucket=bucket, Key=f"missing/{n}/{i}")
                else:
                    r = bad.list_buckets()
                status = r["ResponseMetadata"]["HTTPStatusCode"]
            except ClientError as exc:
                status = exc.response["ResponseMetadata"]["HTTPStatusCode"]
            with lock:
                statuses.append(status)

    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        list(pool.map(worker, range(50)))
    assert len(statuses) == 1000
    assert all(s < 500 for s in statuses), sorted(set(statuses))
    assert statuses.count(403) == 200
    _healthy(server)


def test_home_untouched_outside_store(server: RunningServer) -> None:
    # The stores write only below their roots: no stray files in the home.
    assert {p.name for p in Path(server.home).iterdir()} <= {"objects", "metadata"}


def test_delete_objects_with_wrong_checksum(server: RunningServer, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="keep", Body=b"1")
    body = b"<Delete><Object><Key>keep</Key></Object></Delete>"
    status, resp = _signed_raw(server, "POST", f"/{bucket}?delete", body,
                               extra={"x-amz-checksum-crc32": "AAAAAA=="})
    assert status == 400 and b"BadDigest" in resp
    assert [c["Key"] for c in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["keep"]


def test_slow_uploaders_do_not_starve_other_requests(server: RunningServer, s3: Any,
                                                     bucket: str) -> None:
    """50 uploads that stall mid-body hold worker threads; reads and small writes still work."""
    signed = sign_headers(server, "PUT", f"/{bucket}/slow", headers={},
                          payload_hash="UNSIGNED-PAYLOAD")
    signed.update({"Host": f"127.0.0.1:{server.port}", "Content-Length": str(1 << 20)})
    socks = []
    try:
        for _ in range(50):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            sock.sendall(build_request("PUT", f"/{bucket}/slow", signed, b"x" * 100))
            socks.append(sock)
        for _ in range(600):  # bounded wait until the server is serving all of them
            text = httpx.get(f"{server.url}/metrics", timeout=30).text
            m = re.search(r"airegistry_requests_in_flight\{[^}]*\} (\d+)", text)
            if m and int(m.group(1)) >= 51:
                break
            time.sleep(0.05)
        s3.put_object(Bucket=bucket, Key="meanwhile", Body=b"still served")
        assert s3.get_object(Bucket=bucket, Key="meanwhile")["Body"].read() == b"still served"
        assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    finally:
        for sock in socks:
            sock.close()
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="slow")
    _healthy(server)


def test_expect_100_rejected_upload_gets_final_status_without_continue(
        server: RunningServer) -> None:
    """A PUT that fails before its body is needed is answered without inviting the body."""
    headers = sign_headers(server, "PUT", "/no-such-bucket-x/k", headers={},
                           payload_hash="UNSIGNED-PAYLOAD")
    headers.update({"Host": f"127.0.0.1:{server.port}", "Content-Length": str(10 << 20),
                    "Expect": "100-continue"})
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(build_request("PUT", "/no-such-bucket-x/k", headers))
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 404"), first  # not "100 Continue"
        assert b"connection: close" in first.lower()  # the unsent body cannot be skipped
        while b"</Error>" not in first:
            more = sock.recv(65536)
            if not more:
                break
            first += more
    assert b"NoSuchBucket" in first
