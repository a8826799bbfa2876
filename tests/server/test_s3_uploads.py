"""ListMultipartUploads and x-amz-expected-bucket-owner through boto3, as clients use them."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.server.conftest import ACCOUNT_ID, RunningServer


def test_list_multipart_uploads_with_boto3(s3: Any, bucket: str) -> None:
    keys = ["logs/a", "logs/b", "data/x.jsonl", "data/x.jsonl", "top"]
    ids = [s3.create_multipart_upload(Bucket=bucket, Key=k)["UploadId"] for k in keys]
    out = s3.list_multipart_uploads(Bucket=bucket)
    assert sorted((u["Key"], u["UploadId"]) for u in out["Uploads"]) == sorted(zip(keys, ids, strict=True))
    first = out["Uploads"][0]
    assert first["Initiated"].tzinfo is not None and first["StorageClass"] == "STANDARD"
    assert first["Initiator"]["ID"] == ACCOUNT_ID
    assert out["IsTruncated"] is False

    rolled = s3.list_multipart_uploads(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in rolled["CommonPrefixes"]] == ["data/", "logs/"]
    assert [u["Key"] for u in rolled["Uploads"]] == ["top"]
    only_logs = s3.list_multipart_uploads(Bucket=bucket, Prefix="logs/")
    assert [u["Key"] for u in only_logs["Uploads"]] == ["logs/a", "logs/b"]

    paginator = s3.get_paginator("list_multipart_uploads")
    pages = list(paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": 2}))
    assert len(pages) == 3
    assert sorted(u["UploadId"] for p in pages for u in p.get("Uploads", [])) == sorted(ids)

    encoded = s3.list_multipart_uploads(Bucket=bucket, Prefix="data/", EncodingType="url")
    assert [u["Key"] for u in encoded["Uploads"]] == ["data/x.jsonl", "data/x.jsonl"]

    for key, upload_id in zip(keys, ids, strict=True):
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=bucket)
    with pytest.raises(ClientError) as exc:
        s3.list_multipart_uploads(Bucket="absent-bucket-xyz")
    assert exc.value.response["Error"]["Code"] == "NoSuchBucket"


def test_expected_bucket_owner(s3: Any, bucket: str, server: RunningServer) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ExpectedBucketOwner=ACCOUNT_ID)
    s3.head_bucket(Bucket=bucket, ExpectedBucketOwner=ACCOUNT_ID)
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=bucket, ExpectedBucketOwner="999999999999")
    assert exc.value.response["Error"]["Code"] in ("403", "AccessDenied")
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="k", ExpectedBucketOwner="999999999999")
    assert exc.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError) as exc:  # a missing bucket stays a missing bucket
        s3.head_bucket(Bucket="absent-bucket-xyz", ExpectedBucketOwner="999999999999")
    assert exc.value.response["Error"]["Code"] == "404"
