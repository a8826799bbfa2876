"""S3 through real boto3 clients: the operations, addressing styles and checksum modes."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from tests.server.conftest import RunningServer


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return exc.value.response["Error"]["Code"]


def test_bucket_lifecycle(s3: Any) -> None:
    s3.create_bucket(Bucket="lifecycle-bucket")
    assert "lifecycle-bucket" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket="lifecycle-bucket")
    with pytest.raises(ClientError) as exc:
        s3.create_bucket(Bucket="lifecycle-bucket")
    assert _code(exc) == "BucketAlreadyOwnedByYou"
    s3.put_object(Bucket="lifecycle-bucket", Key="k", Body=b"x")
    with pytest.raises(ClientError) as exc:
        s3.delete_bucket(Bucket="lifecycle-bucket")
    assert _code(exc) == "BucketNotEmpty"
    s3.delete_object(Bucket="lifecycle-bucket", Key="k")
    s3.delete_bucket(Bucket="lifecycle-bucket")
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket="lifecycle-bucket")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_put_get_head_delete(s3: Any, bucket: str) -> None:
    body = os.urandom(100_000)
    put = s3.put_object(Bucket=bucket, Key="dir/obj.bin", Body=body, ContentType="application/x-test",
                        Metadata={"owner": "team-a"})
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="dir/obj.bin")
    assert got["Body"].read() == body
    assert got["ContentType"] == "application/x-test"
    assert got["Metadata"] == {"owner": "team-a"}
    head = s3.head_object(Bucket=bucket, Key="dir/obj.bin")
    assert head["ContentLength"] == len(body)
    assert head["ETag"] == put["ETag"]
    s3.delete_object(Bucket=bucket, Key="dir/obj.bin")
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="dir/obj.bin")
    assert _code(exc) == "NoSuchKey"
    s3.delete_object(Bucket=bucket, Key="dir/obj.bin")  # idempotent, as on S3


def test_missing_bucket_and_key(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket="no-such-bucket-here", Key="x")
    assert _code(exc) == "NoSuchBucket"
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="missing")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_range_and_if_match(s3: Any, bucket: str) -> None:
    body = bytes(range(256)) * 10
    etag = s3.put_object(Bucket=bucket, Key="r", Body=body)["ETag"]
    part = s3.get_object(Bucket=bucket, Key="r", Range="bytes=10-19")
    assert part["Body"].read() == body[10:20]
    assert part["ContentRange"] == f"bytes 10-19/{len(body)}"
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=-5")["Body"].read() == body[-5:]
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=2550-")["Body"].read() == body[2550:]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="r", Range="bytes=99999-")
    assert _code(exc) == "InvalidRange"
    assert s3.get_object(Bucket=bucket, Key="r", IfMatch=etag)["Body"].read() == body
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="r", IfMatch='"0123"')
    assert _code(exc) == "PreconditionFailed"


def test_list_objects_v2(s3: Any, bucket: str) -> None:
    keys = [f"p/{i:03d}.txt" for i in range(25)] + ["p/sub/a", "p/sub/b", "q/z", "p/with space+plus"]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    seen: list[str] = []
    kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": "p/", "MaxKeys": 7}
    while True:
        page = s3.list_objects_v2(**kwargs)
        seen += [c["Key"] for c in page.get("Contents", [])]
        if not page["IsTruncated"]:
            break
        kwargs["ContinuationToken"] = page["NextContinuationToken"]
    assert seen == sorted(k for k in keys if k.startswith("p/"))
    delim = s3.list_objects_v2(Bucket=bucket, Prefix="p/", Delimiter="/")
    assert [p["Prefix"] for p in delim["CommonPrefixes"]] == ["p/sub/"]
    assert "p/sub/a" not in [c["Key"] for c in delim["Contents"]]
    after = s3.list_objects_v2(Bucket=bucket, StartAfter="p/020.txt", Prefix="p/0")
    assert [c["Key"] for c in after["Contents"]] == [f"p/{i:03d}.txt" for i in range(21, 25)]
    # boto3 asks for encoding-type=url by itself and decodes the keys it gets back.
    paginator = s3.get_paginator("list_objects_v2")
    all_keys = [c["Key"] for p in paginator.paginate(Bucket=bucket,
                                                     PaginationConfig={"PageSize": 10})
                for c in p.get("Contents", [])]
    assert sorted(all_keys) == sorted(keys)
    # Asked for explicitly, the encoded form comes back untouched.
    raw = s3.list_objects_v2(Bucket=bucket, Prefix="p/w", EncodingType="url")
    assert [c["Key"] for c in raw["Contents"]] == ["p/with%20space%2Bplus"]


def test_list_objects_v1(s3: Any, bucket: str) -> None:
    for k in ("a", "b", "c/d"):
        s3.put_object(Bucket=bucket, Key=k, Body=b"1")
    res = s3.list_objects(Bucket=bucket, Delimiter="/")
    assert [c["Key"] for c in res["Contents"]] == ["a", "b"]
    assert [p["Prefix"] for p in res["CommonPrefixes"]] == ["c/"]


def test_copy_object(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src key/ü.txt", Body=b"payload", Metadata={"a": "1"})
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src key/ü.txt"})
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert got["Body"].read() == b"payload"
    assert got["Metadata"] == {"a": "1"}
    s3.copy_object(Bucket=bucket, Key="dst2", CopySource=f"{bucket}/src key/ü.txt",
                   MetadataDirective="REPLACE", Metadata={"b": "2"}, ContentType="text/plain")
    head = s3.head_object(Bucket=bucket, Key="dst2")
    assert head["Metadata"] == {"b": "2"}
    assert head["ContentType"] == "text/plain"
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="d3", CopySource={"Bucket": bucket, "Key": "nope"})
    assert _code(exc) == "NoSuchKey"


def test_delete_objects(s3: Any, bucket: str) -> None:
    for k in ("x1", "x2", "x3"):
        s3.put_object(Bucket=bucket, Key=k, Body=b"1")
    res = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "x1"}, {"Key": "x2"},
                                                               {"Key": "never"}]})
    assert sorted(d["Key"] for d in res["Deleted"]) == ["never", "x1", "x2"]
    assert [c["Key"] for c in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["x3"]


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "SHA256", "SHA1"])
def test_flexible_checksums(s3: Any, bucket: str, algorithm: str) -> None:
    body = os.urandom(50_000)
    put = s3.put_object(Bucket=bucket, Key=f"ck-{algorithm}", Body=body, ChecksumAlgorithm=algorithm)
    expected = _checksum(algorithm, body)
    assert put[f"Checksum{algorithm}"] == expected
    got = s3.get_object(Bucket=bucket, Key=f"ck-{algorithm}", ChecksumMode="ENABLED")
    assert got[f"Checksum{algorithm}"] == expected
    assert got["Body"].read() == body  # botocore validates the checksum while reading
    head = s3.head_object(Bucket=bucket, Key=f"ck-{algorithm}", ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == expected


def _checksum(algorithm: str, body: bytes) -> str:
    if algorithm == "CRC32":
        raw = zlib.crc32(body).to_bytes(4, "big")
    elif algorithm == "CRC32C":
        from awscrt import checksums

        raw = checksums.crc32c(body).to_bytes(4, "big")
    else:
        raw = hashlib.new(algorithm.lower(), body).digest()
    return base64.b64encode(raw).decode()


def test_wrong_header_checksum_is_bad_digest(s3: Any, bucket: str) -> None:
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="bad", Body=b"abc", ChecksumCRC32="AAAAAA==")
    assert _code(exc) == "BadDigest"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_wrong_content_md5(s3: Any, bucket: str) -> None:
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="md5", Body=b"abc", ContentMD5=wrong)
    assert _code(exc) == "BadDigest"
    right = base64.b64encode(hashlib.md5(b"abc").digest()).decode()
    s3.put_object(Bucket=bucket, Key="md5", Body=b"abc", ContentMD5=right)
    with pytest.raises(ClientError) as exc:
        s3.put_object(Bucket=bucket, Key="md5", Body=b"abc", ContentMD5="not-base64!")
    assert _code(exc) == "InvalidDigest"


def test_multipart_upload_and_download_file(server: RunningServer, s3: Any, bucket: str,
                                            tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    data = os.urandom(11 * 1024 * 1024 + 123)
    src.write_bytes(data)
    cfg = TransferConfig(multipart_threshold=5 * 1024 * 1024,
                         multipart_chunksize=5 * 1024 * 1024, max_concurrency=3)
    s3.upload_file(str(src), bucket, "big.bin", Config=cfg)
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].endswith('-3"')
    dst = tmp_path / "down.bin"
    s3.download_file(bucket, "big.bin", str(dst), Config=cfg)
    assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_multipart_low_level_with_checksum(s3: Any, bucket: str) -> None:
    up = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="CRC32",
                                    ContentType="text/csv")
    uid = up["UploadId"]
    p1 = os.urandom(5 * 1024 * 1024)
    p2 = b"tail"
    e1 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=p1,
                        ChecksumAlgorithm="CRC32")
    e2 = s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=2, Body=p2,
                        ChecksumAlgorithm="CRC32")
    parts = s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid)["Parts"]
    assert [(p["PartNumber"], p["Size"]) for p in parts] == [(1, len(p1)), (2, 4)]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=uid, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": e1["ETag"], "ChecksumCRC32": e1["ChecksumCRC32"]},
                  {"PartNumber": 2, "ETag": e2["ETag"], "ChecksumCRC32": e2["ChecksumCRC32"]}]})
    got = s3.get_object(Bucket=bucket, Key="mp")
    assert got["Body"].read() == p1 + p2
    assert got["ContentType"] == "text/csv"


def test_abort_multipart(s3: Any, bucket: str) -> None:
    uid = s3.create_multipart_upload(Bucket=bucket, Key="ab")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="ab", UploadId=uid, PartNumber=1, Body=b"x")
    s3.abort_multipart_upload(Bucket=bucket, Key="ab", UploadId=uid)
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=bucket, Key="ab", UploadId=uid)
    assert _code(exc) == "NoSuchUpload"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_virtual_host_addressing(server: RunningServer, bucket: str,
                                 localhost_subdomains: None) -> None:
    for host in ("localhost", "s3.localhost"):
        vs3 = server.client("s3", addressing_style="virtual", host=host)
        vs3.put_object(Bucket=bucket, Key=f"v/{host}.txt", Body=b"virtual")
        assert vs3.get_object(Bucket=bucket, Key=f"v/{host}.txt")["Body"].read() == b"virtual"
        listed = vs3.list_objects_v2(Bucket=bucket, Prefix="v/")
        assert f"v/{host}.txt" in [c["Key"] for c in listed["Contents"]]
    # And path-style sees the same objects.
    ps3 = server.client("s3")
    assert ps3.get_object(Bucket=bucket, Key="v/localhost.txt")["Body"].read() == b"virtual"


def test_special_keys_round_trip(s3: Any, bucket: str) -> None:
    for key in ("a b/c+d", "ümlaut/ß", "x%2Fy", "semi;colon=eq&amp", "tilde~/*star*"):
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == key.encode()
    keys = {c["Key"] for c in s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert "x%2Fy" in keys and "a b/c+d" in keys


def test_empty_object(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    got = s3.get_object(Bucket=bucket, Key="empty")
    assert got["Body"].read() == b""
    assert got["ContentLength"] == 0


def test_multipart_object_checksum_mode(s3: Any, bucket: str, tmp_path: Path) -> None:
    """GetObject with ChecksumMode on a multipart object returns what botocore accepts."""
    src = tmp_path / "mp.bin"
    data = os.urandom(6 * 1024 * 1024)
    src.write_bytes(data)
    cfg = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    s3.upload_file(str(src), bucket, "mp.bin", Config=cfg,
                   ExtraArgs={"ChecksumAlgorithm": "CRC32"})
    got = s3.get_object(Bucket=bucket, Key="mp.bin", ChecksumMode="ENABLED")
    assert got["Body"].read() == data


def test_response_header_overrides(server: RunningServer, s3: Any, bucket: str) -> None:
    import httpx

    s3.put_object(Bucket=bucket, Key="report.csv", Body=b"a,b\n", ContentType="text/csv")
    got = s3.get_object(Bucket=bucket, Key="report.csv", ResponseContentType="application/x-custom",
                        ResponseContentDisposition='attachment; filename="r.csv"')
    assert got["ContentType"] == "application/x-custom"
    assert got["ContentDisposition"] == 'attachment; filename="r.csv"'
    url = server.client("s3", signature_version="s3v4").generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "report.csv",
                              "ResponseContentDisposition": "attachment"})
    r = httpx.get(url, timeout=30)
    assert r.status_code == 200 and r.headers["content-disposition"] == "attachment"
