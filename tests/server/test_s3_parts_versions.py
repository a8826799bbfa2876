"""UploadPartCopy, GetObject/HeadObject by partNumber, GetObjectAttributes and
ListObjectVersions, over boto3 against the real server."""

from __future__ import annotations

import os
from typing import Any

import pytest
from botocore.exceptions import ClientError

MIB = 1 << 20


def _error(call: Any, **kwargs: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as exc:
        call(**kwargs)
    response = exc.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def _multipart(s3: Any, bucket: str, key: str, parts: list[bytes]) -> None:
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    done = []
    for n, data in enumerate(parts, start=1):
        etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=n,
                              Body=data)["ETag"]
        done.append({"PartNumber": n, "ETag": etag})
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload,
                                 MultipartUpload={"Parts": done})


def test_upload_part_copy(s3: Any, bucket: str) -> None:
    data = os.urandom(5 * MIB + 1000)
    s3.put_object(Bucket=bucket, Key="src", Body=data)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    source = {"Bucket": bucket, "Key": "src"}
    first = s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=upload, PartNumber=1,
                                CopySource=source, CopySourceRange=f"bytes=0-{5 * MIB - 1}")
    assert first["CopyPartResult"]["ETag"].strip('"')
    assert "LastModified" in first["CopyPartResult"]
    second = s3.upload_part_copy(Bucket=bucket, Key="dst", UploadId=upload, PartNumber=2,
                                 CopySource=source,
                                 CopySourceRange=f"bytes={5 * MIB}-{len(data) - 1}")
    parts = s3.list_parts(Bucket=bucket, Key="dst", UploadId=upload)["Parts"]
    assert [p["Size"] for p in parts] == [5 * MIB, 1000]
    s3.complete_multipart_upload(Bucket=bucket, Key="dst", UploadId=upload, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": first["CopyPartResult"]["ETag"]},
                  {"PartNumber": 2, "ETag": second["CopyPartResult"]["ETag"]}]})
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == data


def test_upload_part_copy_errors(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"0123456789")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    args = {"Bucket": bucket, "Key": "dst", "UploadId": upload, "PartNumber": 1}
    source = {"Bucket": bucket, "Key": "src"}
    assert _error(s3.upload_part_copy, **args, CopySource=source,
                  CopySourceRange="bytes=0-10") == ("InvalidArgument", 400)
    assert _error(s3.upload_part_copy, **args, CopySource=source,
                  CopySourceRange="bytes=5-2") == ("InvalidArgument", 400)
    assert _error(s3.upload_part_copy, **args, CopySource=source,
                  CopySourceRange="lines=1-2") == ("InvalidArgument", 400)
    assert _error(s3.upload_part_copy, **args,
                  CopySource={"Bucket": bucket, "Key": "absent"}) == ("NoSuchKey", 404)
    assert _error(s3.upload_part_copy, **{**args, "UploadId": "nope"},
                  CopySource=source) == ("NoSuchUpload", 404)
    assert _error(s3.upload_part_copy, **args, CopySource=source,
                  CopySourceIfMatch='"0000"') == ("PreconditionFailed", 412)
    assert _error(s3.upload_part_copy, **{**args, "PartNumber": 10001},
                  CopySource=source) == ("InvalidArgument", 400)
    assert s3.list_parts(Bucket=bucket, Key="dst", UploadId=upload).get("Parts", []) == []
    whole = s3.upload_part_copy(**args, CopySource=source, CopySourceRange="bytes=2-4")
    assert whole["CopyPartResult"]["ETag"]


def test_get_and_head_by_part_number(s3: Any, bucket: str) -> None:
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB), b"tail"]
    _multipart(s3, bucket, "mp", parts)
    for n, data in enumerate(parts, start=1):
        got = s3.get_object(Bucket=bucket, Key="mp", PartNumber=n)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert got["PartsCount"] == 3
        first = sum(len(p) for p in parts[: n - 1])
        total = sum(len(p) for p in parts)
        assert got["ContentRange"] == f"bytes {first}-{first + len(data) - 1}/{total}"
        assert got["Body"].read() == data
        head = s3.head_object(Bucket=bucket, Key="mp", PartNumber=n)
        assert head["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert (head["ContentLength"], head["PartsCount"]) == (len(data), 3)
    assert _error(s3.get_object, Bucket=bucket, Key="mp", PartNumber=4) == \
        ("InvalidPartNumber", 416)
    assert _error(s3.get_object, Bucket=bucket, Key="mp", PartNumber=1, Range="bytes=0-1") == \
        ("InvalidRequest", 400)
    s3.put_object(Bucket=bucket, Key="one", Body=b"single")
    assert s3.get_object(Bucket=bucket, Key="one", PartNumber=1)["Body"].read() == b"single"
    assert _error(s3.get_object, Bucket=bucket, Key="one", PartNumber=2) == \
        ("InvalidPartNumber", 416)


def test_get_object_attributes(s3: Any, bucket: str) -> None:
    _multipart(s3, bucket, "mp", [b"a" * (5 * MIB), b"bc"])
    attrs = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=[
        "ETag", "ObjectParts", "StorageClass", "ObjectSize"])
    assert attrs["ObjectSize"] == 5 * MIB + 2
    assert attrs["StorageClass"] == "STANDARD"
    assert attrs["ETag"].endswith("-2")
    assert attrs["ObjectParts"]["TotalPartsCount"] == 2
    assert [p["Size"] for p in attrs["ObjectParts"]["Parts"]] == [5 * MIB, 2]
    page = s3.get_object_attributes(Bucket=bucket, Key="mp", ObjectAttributes=["ObjectParts"],
                                    MaxParts=1)["ObjectParts"]
    assert (page["IsTruncated"], page["NextPartNumberMarker"]) == (True, 1)
    assert _error(s3.get_object_attributes, Bucket=bucket, Key="absent",
                  ObjectAttributes=["ETag"]) == ("NoSuchKey", 404)


def test_restore_and_torrent_are_refused_as_s3_does(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert _error(s3.restore_object, Bucket=bucket, Key="k", RestoreRequest={"Days": 1}) == \
        ("InvalidObjectState", 403)
    assert _error(s3.get_object_torrent, Bucket=bucket, Key="k") == ("InvalidRequest", 400)


def test_list_object_versions(s3: Any, bucket: str) -> None:
    keys = ["a.txt", "dir/1", "dir/2", "dir/sub/3", "z"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    listed = s3.list_object_versions(Bucket=bucket)
    assert [v["Key"] for v in listed["Versions"]] == keys
    assert {(v["VersionId"], v["IsLatest"]) for v in listed["Versions"]} == {("null", True)}
    assert listed["Versions"][0]["Size"] == len("a.txt")
    assert "DeleteMarkers" not in listed
    rolled = s3.list_object_versions(Bucket=bucket, Delimiter="/")
    assert [v["Key"] for v in rolled["Versions"]] == ["a.txt", "z"]
    assert [p["Prefix"] for p in rolled["CommonPrefixes"]] == ["dir/"]
    inside = s3.list_object_versions(Bucket=bucket, Prefix="dir/", Delimiter="/")
    assert [v["Key"] for v in inside["Versions"]] == ["dir/1", "dir/2"]
    assert [p["Prefix"] for p in inside["CommonPrefixes"]] == ["dir/sub/"]
    # paging by hand: a common prefix handed back as key-marker resumes after its keys
    page = s3.list_object_versions(Bucket=bucket, Delimiter="/", MaxKeys=2)
    assert page["IsTruncated"] and page["NextKeyMarker"] == "dir/"
    assert page["NextVersionIdMarker"] == "null"
    rest = s3.list_object_versions(Bucket=bucket, Delimiter="/", MaxKeys=2,
                                   KeyMarker=page["NextKeyMarker"],
                                   VersionIdMarker=page["NextVersionIdMarker"])
    assert [v["Key"] for v in rest["Versions"]] == ["z"] and not rest["IsTruncated"]
    # the paginator, with and without a delimiter
    paginator = s3.get_paginator("list_object_versions")
    seen = [v["Key"] for p in paginator.paginate(Bucket=bucket, PaginationConfig={
        "PageSize": 2}) for v in p.get("Versions", [])]
    assert seen == keys
    pages = list(paginator.paginate(Bucket=bucket, Delimiter="/",
                                    PaginationConfig={"PageSize": 1}))
    assert [v["Key"] for p in pages for v in p.get("Versions", [])] == ["a.txt", "z"]
    assert [c["Prefix"] for p in pages for c in p.get("CommonPrefixes", [])] == ["dir/"]
    assert _error(s3.list_object_versions, Bucket=bucket, KeyMarker="a",
                  VersionIdMarker="v123")[0] == "InvalidArgument"
    assert _error(s3.list_object_versions, Bucket="absent-bucket-xyz")[0] == "NoSuchBucket"


def test_versions_is_read_only(server: Any, bucket: str) -> None:
    import httpx

    from tests.server.raw_requests import RawClient

    with httpx.Client() as http:
        raw = RawClient(server.url, server.access_key, server.secret_key, http)
        for method in ("PUT", "DELETE", "POST"):
            r = raw.send(method, f"/{bucket}?versions", service="s3")
            assert (r.status_code, "MethodNotAllowed" in r.text) == (405, True), method


def test_list_objects_v1_resumes_after_a_common_prefix(s3: Any, bucket: str) -> None:
    for key in ["a", "d/1", "d/2", "e"]:
        s3.put_object(Bucket=bucket, Key=key, Body=b"x")
    pages = list(s3.get_paginator("list_objects").paginate(
        Bucket=bucket, Delimiter="/", PaginationConfig={"PageSize": 1}))
    assert [c["Key"] for p in pages for c in p.get("Contents", [])] == ["a", "e"]
    assert [c["Prefix"] for p in pages for c in p.get("CommonPrefixes", [])] == ["d/"]
