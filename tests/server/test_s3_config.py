"""Reads of S3 configuration sub-resources answer what S3 answers for a bucket with none."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.server.conftest import ACCOUNT_ID


def _code(call: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as exc:
        call(**kwargs)
    return exc.value.response["Error"]["Code"]


def test_bucket_configuration_reads(s3: Any, bucket: str) -> None:
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    acl = s3.get_bucket_acl(Bucket=bucket)
    assert acl["Owner"]["ID"] == ACCOUNT_ID
    assert [g["Permission"] for g in acl["Grants"]] == ["FULL_CONTROL"]
    assert s3.get_bucket_request_payment(Bucket=bucket)["Payer"] == "BucketOwner"
    assert "LoggingEnabled" not in s3.get_bucket_logging(Bucket=bucket)
    missing = {
        s3.get_bucket_cors: "NoSuchCORSConfiguration",
        s3.get_bucket_lifecycle_configuration: "NoSuchLifecycleConfiguration",
        s3.get_bucket_policy: "NoSuchBucketPolicy",
        s3.get_bucket_tagging: "NoSuchTagSet",
        s3.get_bucket_website: "NoSuchWebsiteConfiguration",
        s3.get_bucket_encryption: "ServerSideEncryptionConfigurationNotFoundError",
        s3.get_object_lock_configuration: "ObjectLockConfigurationNotFoundError",
        s3.get_public_access_block: "NoSuchPublicAccessBlockConfiguration",
    }
    for call, code in missing.items():
        assert _code(call, Bucket=bucket) == code
    assert _code(s3.get_bucket_versioning, Bucket="absent-bucket-xyz") == "NoSuchBucket"
    for delete in (s3.delete_bucket_cors, s3.delete_bucket_policy, s3.delete_bucket_tagging,
                   s3.delete_bucket_lifecycle, s3.delete_public_access_block):
        assert delete(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert _code(s3.delete_bucket_cors, Bucket="absent-bucket-xyz") == "NoSuchBucket"
    rules = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    assert rules == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert _code(s3.put_bucket_acl, Bucket=bucket, ACL="public-read") == \
        "AccessControlListNotSupported"
    assert _code(s3.put_bucket_versioning, Bucket=bucket,
                 VersioningConfiguration={"Status": "Enabled"}) == "InvalidBucketState"


def test_object_configuration_reads(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    assert s3.get_object_acl(Bucket=bucket, Key="k")["Owner"]["ID"] == ACCOUNT_ID
    assert _code(s3.get_object_tagging, Bucket=bucket, Key="absent") == "NoSuchKey"
    assert _code(s3.get_object_retention, Bucket=bucket, Key="k") == "InvalidRequest"
    assert s3.delete_object_tagging(Bucket=bucket, Key="k")["ResponseMetadata"][
        "HTTPStatusCode"] == 204
    assert _code(s3.put_object_acl, Bucket=bucket, Key="k", ACL="public-read") == \
        "AccessControlListNotSupported"


def test_get_object_by_part_number(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="single", Body=b"one piece")
    assert s3.get_object(Bucket=bucket, Key="single", PartNumber=1)["Body"].read() == b"one piece"
    assert s3.head_object(Bucket=bucket, Key="single", PartNumber=1)["ContentLength"] == 9
    assert _code(s3.get_object, Bucket=bucket, Key="single", PartNumber=2) == "InvalidPartNumber"
    assert _code(s3.get_object, Bucket=bucket, Key="absent", PartNumber=1) == "NoSuchKey"
