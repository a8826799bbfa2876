"""Configuration writes over boto3: stored, answered back, deleted, checked, persistent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from airegistry.server.app import create_app
from airegistry.server.auth import AuthConfig
from tests.server.conftest import RunningServer, make_services, start_server


def _error(call: Any, **kwargs: Any) -> tuple[str, int]:
    with pytest.raises(ClientError) as exc:
        call(**kwargs)
    response = exc.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


POLICY = {"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
    "Resource": "arn:aws:s3:::b/*"}]}
CORS = {"CORSRules": [{"AllowedMethods": ["GET", "PUT"], "AllowedOrigins": ["*"],
                       "AllowedHeaders": ["*"], "MaxAgeSeconds": 300}]}
LIFECYCLE = {"Rules": [{"ID": "expire", "Status": "Enabled", "Filter": {"Prefix": "tmp/"},
                        "Expiration": {"Days": 7}}]}
ENCRYPTION = {"Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]}
WEBSITE = {"IndexDocument": {"Suffix": "index.html"}, "ErrorDocument": {"Key": "error.html"}}
PUBLIC_BLOCK = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                "RestrictPublicBuckets": False}


def test_bucket_configurations_round_trip(s3: Any, bucket: str) -> None:
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(POLICY))
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == POLICY
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "team", "Value": "ml"}]})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "team", "Value": "ml"}]
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=CORS)
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"] == CORS["CORSRules"]
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=LIFECYCLE)
    assert s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"] == LIFECYCLE["Rules"]
    s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration=ENCRYPTION)
    assert s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"][
        "Rules"] == ENCRYPTION["Rules"]
    s3.put_bucket_website(Bucket=bucket, WebsiteConfiguration=WEBSITE)
    site = s3.get_bucket_website(Bucket=bucket)
    assert (site["IndexDocument"], site["ErrorDocument"]) == (WEBSITE["IndexDocument"],
                                                              WEBSITE["ErrorDocument"])
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=PUBLIC_BLOCK)
    assert s3.get_public_access_block(Bucket=bucket)[
        "PublicAccessBlockConfiguration"] == PUBLIC_BLOCK
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
        "QueueConfigurations": [{"Id": "q", "QueueArn": "arn:aws:sqs:us-east-1:1:q",
                                 "Events": ["s3:ObjectCreated:*"]}]})
    queues = s3.get_bucket_notification_configuration(Bucket=bucket)["QueueConfigurations"]
    assert [q["QueueArn"] for q in queues] == ["arn:aws:sqs:us-east-1:1:q"]
    s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls={
        "Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]})
    s3.put_bucket_accelerate_configuration(Bucket=bucket,
                                           AccelerateConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_accelerate_configuration(Bucket=bucket)["Status"] == "Suspended"
    s3.put_bucket_request_payment(Bucket=bucket,
                                  RequestPaymentConfiguration={"Payer": "Requester"})
    assert s3.get_bucket_request_payment(Bucket=bucket)["Payer"] == "Requester"
    s3.put_bucket_logging(Bucket=bucket, BucketLoggingStatus={"LoggingEnabled": {
        "TargetBucket": bucket, "TargetPrefix": "logs/"}})
    assert s3.get_bucket_logging(Bucket=bucket)["LoggingEnabled"]["TargetPrefix"] == "logs/"

    # deletes remove them; reads answer what S3 answers for a bucket without one again
    s3.delete_bucket_policy(Bucket=bucket)
    s3.delete_bucket_tagging(Bucket=bucket)
    s3.delete_bucket_cors(Bucket=bucket)
    s3.delete_bucket_lifecycle(Bucket=bucket)
    s3.delete_bucket_encryption(Bucket=bucket)
    s3.delete_bucket_website(Bucket=bucket)
    s3.delete_public_access_block(Bucket=bucket)
    assert _error(s3.get_bucket_policy, Bucket=bucket) == ("NoSuchBucketPolicy", 404)
    assert _error(s3.get_bucket_tagging, Bucket=bucket) == ("NoSuchTagSet", 404)
    assert _error(s3.get_bucket_cors, Bucket=bucket)[0] == "NoSuchCORSConfiguration"
    assert _error(s3.get_bucket_lifecycle_configuration, Bucket=bucket)[0] == \
        "NoSuchLifecycleConfiguration"
    assert _error(s3.get_bucket_encryption, Bucket=bucket)[0] == \
        "ServerSideEncryptionConfigurationNotFoundError"
    assert _error(s3.get_bucket_website, Bucket=bucket)[0] == "NoSuchWebsiteConfiguration"
    assert _error(s3.get_public_access_block, Bucket=bucket)[0] == \
        "NoSuchPublicAccessBlockConfiguration"


def test_a_new_put_replaces_the_old_document(s3: Any, bucket: str) -> None:
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "a", "Value": "1"}]})
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "b", "Value": "2"}]})
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "b", "Value": "2"}]


def test_versioning_can_be_suspended_never_enabled(s3: Any, bucket: str) -> None:
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    assert _error(s3.put_bucket_versioning, Bucket=bucket,
                  VersioningConfiguration={"Status": "Enabled"}) == ("InvalidBucketState", 409)
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Suspended"})
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Suspended"
    assert _error(s3.put_bucket_versioning, Bucket=bucket, VersioningConfiguration={
        "Status": "Suspended", "MFADelete": "Enabled"})[0] == "InvalidRequest"


def test_writes_that_cannot_be_honoured_are_refused(s3: Any, bucket: str) -> None:
    assert _error(s3.put_bucket_replication, Bucket=bucket, ReplicationConfiguration={
        "Role": "arn:aws:iam::1:role/r", "Rules": [{
            "Status": "Enabled", "Destination": {"Bucket": "arn:aws:s3:::other"},
            "Prefix": ""}]}) == ("InvalidRequest", 400)
    assert _error(s3.put_object_lock_configuration, Bucket=bucket,
                  ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"}) == \
        ("InvalidBucketState", 409)
    assert _error(s3.put_bucket_ownership_controls, Bucket=bucket, OwnershipControls={
        "Rules": [{"ObjectOwnership": "ObjectWriter"}]}) == ("InvalidRequest", 400)


def test_malformed_documents_are_400_and_keep_the_old_one(server: RunningServer, s3: Any,
                                                          bucket: str) -> None:
    import httpx

    from tests.server.raw_requests import RawClient

    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "a", "Value": "1"}]})
    with httpx.Client() as http:
        raw = RawClient(server.url, server.access_key, server.secret_key, http)
        bad = [b"<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>",  # no Value
               b"<Tagging><TagSet>", b"<Other/>", b"", b"<Tagging><Bogus/></Tagging>",
               b'<!DOCTYPE x [<!ENTITY a "b">]><Tagging>&a;</Tagging>']
        for body in bad:
            r = raw.send("PUT", f"/{bucket}?tagging", service="s3", body=body)
            assert (r.status_code, "<Code>MalformedXML</Code>" in r.text) == (400, True), body
        for policy in (b"not json", b"[]", b'{"Statement": []}',
                       b'{"Version": "1999-01-01", "Statement": [{"Effect": "Allow"}]}',
                       b'{"Statement": [{"Effect": "Maybe", "Action": "*"}]}'):
            r = raw.send("PUT", f"/{bucket}?policy", service="s3", body=policy)
            assert (r.status_code, "<Code>MalformedPolicy</Code>" in r.text) == (400, True), policy
        r = raw.send("PUT", f"/{bucket}?cors", service="s3",
                     body=b"<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod>"
                          b"<MaxAgeSeconds>soon</MaxAgeSeconds></CORSRule></CORSConfiguration>")
        assert r.status_code == 400 and "MaxAgeSeconds" in r.text
    assert s3.get_bucket_tagging(Bucket=bucket)["TagSet"] == [{"Key": "a", "Value": "1"}]
    assert _error(s3.get_bucket_policy, Bucket=bucket)[0] == "NoSuchBucketPolicy"
    dup = {"TagSet": [{"Key": "a", "Value": "1"}, {"Key": "a", "Value": "2"}]}
    assert _error(s3.put_bucket_tagging, Bucket=bucket, Tagging=dup) == ("InvalidTag", 400)
    assert _error(s3.put_bucket_tagging, Bucket="absent-bucket-xyz",
                  Tagging={"TagSet": []}) == ("NoSuchBucket", 404)


def test_object_tagging(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    tags = [{"Key": "stage", "Value": "raw"}]
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": tags})
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == tags
    # an overwritten object starts untagged, as on S3
    s3.put_object(Bucket=bucket, Key="k", Body=b"y")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": tags})
    s3.delete_object_tagging(Bucket=bucket, Key="k")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []
    eleven = [{"Key": f"k{i}", "Value": "v"} for i in range(11)]
    assert _error(s3.put_object_tagging, Bucket=bucket, Key="k",
                  Tagging={"TagSet": eleven})[1] == 400
    assert _error(s3.put_object_tagging, Bucket=bucket, Key="absent",
                  Tagging={"TagSet": tags}) == ("NoSuchKey", 404)
    s3.put_object_tagging(Bucket=bucket, Key="k", Tagging={"TagSet": tags})
    s3.delete_object(Bucket=bucket, Key="k")
    s3.put_object(Bucket=bucket, Key="k", Body=b"y")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == []


def test_id_keyed_configurations(s3: Any, bucket: str) -> None:
    metrics = {"Id": "all", "Filter": {"Prefix": "data/"}}
    s3.put_bucket_metrics_configuration(Bucket=bucket, Id="all", MetricsConfiguration=metrics)
    got = s3.get_bucket_metrics_configuration(Bucket=bucket, Id="all")["MetricsConfiguration"]
    assert got == metrics
    listed = s3.list_bucket_metrics_configurations(Bucket=bucket)
    assert [c["Id"] for c in listed["MetricsConfigurationList"]] == ["all"]
    assert _error(s3.get_bucket_metrics_configuration, Bucket=bucket, Id="other") == \
        ("NoSuchConfiguration", 404)
    assert _error(s3.put_bucket_metrics_configuration, Bucket=bucket, Id="x",
                  MetricsConfiguration=metrics)[0] == "InvalidArgument"
    s3.delete_bucket_metrics_configuration(Bucket=bucket, Id="all")
    assert "MetricsConfigurationList" not in s3.list_bucket_metrics_configurations(Bucket=bucket)
    assert _error(s3.delete_bucket_metrics_configuration, Bucket=bucket, Id="all") == \
        ("NoSuchConfiguration", 404)


def test_deleting_a_bucket_deletes_its_configurations(s3: Any, bucket: str) -> None:
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(POLICY))
    s3.put_bucket_tagging(Bucket=bucket, Tagging={"TagSet": [{"Key": "a", "Value": "1"}]})
    s3.delete_bucket(Bucket=bucket)
    s3.create_bucket(Bucket=bucket)
    assert _error(s3.get_bucket_policy, Bucket=bucket)[0] == "NoSuchBucketPolicy"
    assert _error(s3.get_bucket_tagging, Bucket=bucket)[0] == "NoSuchTagSet"


def test_configurations_survive_a_restart(tmp_path: Path) -> None:
    key, secret = "AKIDRESTART000000001", "restart-secret-0123456789abcdefghijklmn"

    def serve() -> Any:
        services = make_services(tmp_path)
        return services, create_app(services, auth=AuthConfig(keys={key: secret}))

    services, app = serve()
    with start_server(app) as url:
        s3 = RunningServer(url, int(url.rsplit(":", 1)[1]), app, services.objects, key, secret,
                           tmp_path).client("s3")
        s3.create_bucket(Bucket="persist")
        s3.put_bucket_policy(Bucket="persist", Policy=json.dumps(POLICY))
        s3.put_object(Bucket="persist", Key="k", Body=b"x")
        s3.put_object_tagging(Bucket="persist", Key="k",
                              Tagging={"TagSet": [{"Key": "a", "Value": "b"}]})
    services, app = serve()
    with start_server(app) as url:
        s3 = RunningServer(url, int(url.rsplit(":", 1)[1]), app, services.objects, key, secret,
                           tmp_path).client("s3")
        assert json.loads(s3.get_bucket_policy(Bucket="persist")["Policy"]) == POLICY
        assert s3.get_object_tagging(Bucket="persist", Key="k")["TagSet"] == [
            {"Key": "a", "Value": "b"}]


def test_tags_given_with_the_write(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", Tagging="stage=raw&team=m%20l")
    assert s3.get_object_tagging(Bucket=bucket, Key="k")["TagSet"] == [
        {"Key": "stage", "Value": "raw"}, {"Key": "team", "Value": "m l"}]
    # CopyObject copies the tags by default, replaces them with REPLACE
    s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "k"})
    assert len(s3.get_object_tagging(Bucket=bucket, Key="copy")["TagSet"]) == 2
    s3.copy_object(Bucket=bucket, Key="copy2", CopySource={"Bucket": bucket, "Key": "k"},
                   TaggingDirective="REPLACE", Tagging="only=one")
    assert s3.get_object_tagging(Bucket=bucket, Key="copy2")["TagSet"] == [
        {"Key": "only", "Value": "one"}]
    # a multipart upload's tags wait for its completion
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", Tagging="a=1")["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1,
                          Body=b"data")["ETag"]
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": etag}]})
    assert s3.get_object_tagging(Bucket=bucket, Key="mp")["TagSet"] == [
        {"Key": "a", "Value": "1"}]
    assert _error(s3.put_object, Bucket=bucket, Key="bad", Body=b"x",
                  Tagging="a=1&a=2") == ("InvalidArgument", 400)
    assert _error(s3.put_object, Bucket=bucket, Key="bad", Body=b"x",
                  Tagging="&".join(f"k{i}=v" for i in range(11)))[1] == 400
    assert _error(s3.head_object, Bucket=bucket, Key="bad")[1] == 404  # nothing stored
