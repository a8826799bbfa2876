"""What only the S3 backend has to prove: tampering is caught, misconfiguration is clear."""

from __future__ import annotations

import pytest

from airegistry.storage.blobs import errors as E
from airegistry.storage.blobs import open_blob_store
from airegistry.storage.blobs.s3 import S3BlobStore
from tests.services import free_port, s3_env


@pytest.fixture
def s3_store(moto_s3, monkeypatch, tmp_path) -> S3BlobStore:
    s3_env(monkeypatch, moto_s3)
    return open_blob_store(f"s3://{moto_s3.new_bucket()}/reg", default_root=tmp_path)


def test_store_url_selects_the_backend(s3_store: S3BlobStore, tmp_path) -> None:
    assert isinstance(s3_store, S3BlobStore) and s3_store.url.endswith("/reg")
    assert open_blob_store(None, default_root=tmp_path / "b").url == (tmp_path / "b").as_uri()
    assert open_blob_store((tmp_path / "c").as_uri(), default_root=tmp_path).url.endswith("/c")
    with pytest.raises(ValueError, match="unsupported store URL"):
        open_blob_store("ftp://x/y", default_root=tmp_path)


def test_object_replaced_behind_the_registrys_back_is_not_served(s3_store, moto_s3) -> None:
    s3_store.create_bucket("bkt")
    s3_store.put_object("bkt", "data.jsonl", b'{"a": 1}\n')
    raw = moto_s3.client()
    real_key = "reg/objects/bkt/data.jsonl"
    # someone else's PutObject: the registry's record (air-sha256) is gone with it
    raw.put_object(Bucket=s3_store.bucket, Key=real_key, Body=b'{"a": 2}\n')
    with pytest.raises(E.CorruptObjectError, match="outside the registry"):
        s3_store.read_bytes("bkt", "data.jsonl")
    # ... or a copy that kept a stale record: the bytes no longer match it
    raw.put_object(Bucket=s3_store.bucket, Key=real_key, Body=b'{"a": 3}\n',
                   Metadata={"air-sha256": "0" * 64})
    with pytest.raises(E.CorruptObjectError, match="changed behind the registry's back"):
        s3_store.read_bytes("bkt", "data.jsonl")
    _, stream = s3_store.open_object("bkt", "data.jsonl", verify=False)
    with stream:
        assert stream.read() == b'{"a": 3}\n'  # unverified reads are the caller's choice


def test_deletion_removes_only_what_was_asked(s3_store, moto_s3) -> None:
    s3_store.create_bucket("bkt")
    s3_store.put_object("bkt", "keep", b"1")
    s3_store.put_object("bkt", "drop", b"2")
    s3_store.delete_object("bkt", "drop")
    keys = [o["Key"] for o in moto_s3.client().list_objects_v2(
        Bucket=s3_store.bucket)["Contents"]]
    assert sorted(keys) == ["reg/buckets/bkt", "reg/objects/bkt/keep"]


def test_missing_bucket_is_a_clear_error_at_start(moto_s3, monkeypatch, tmp_path) -> None:
    s3_env(monkeypatch, moto_s3)
    with pytest.raises(E.StoreUnavailable, match=r"'no-such-bucket-x' .* does not exist"):
        open_blob_store("s3://no-such-bucket-x/p", default_root=tmp_path)


def test_unreachable_endpoint_is_a_clear_error_at_start(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(E.StoreUnavailable, match=r"cannot be reached .*127\.0\.0\.1"):
        open_blob_store("s3://bkt/p", default_root=tmp_path)


def test_access_denied_is_reported_as_such(monkeypatch, tmp_path) -> None:
    """A real refusal: moto enforcing IAM, the registry's user denied PutObject under one key."""
    import json

    import boto3

    from tests.services import moto_server

    # exactly these four requests run before moto starts enforcing IAM
    with moto_server(unauthenticated_requests=4) as server:
        def client(service: str, key: str = "setup", secret: str = "setup"):
            return boto3.client(service, endpoint_url=server.endpoint, region_name="us-east-1",
                                aws_access_key_id=key, aws_secret_access_key=secret)

        iam = client("iam")
        iam.create_user(UserName="registry")
        iam.put_user_policy(UserName="registry", PolicyName="store", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                {"Effect": "Deny", "Action": "s3:PutObject",
                 "Resource": "arn:aws:s3:::iam-bkt/reg/objects/bkt/denied*"},
            ]}))
        access = iam.create_access_key(UserName="registry")["AccessKey"]
        client("s3").create_bucket(Bucket="iam-bkt")

        s3_env(monkeypatch, server)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", access["AccessKeyId"])
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", access["SecretAccessKey"])
        store = open_blob_store("s3://iam-bkt/reg", default_root=tmp_path)
        store.create_bucket("bkt")
        store.put_object("bkt", "allowed", b"x")
        with pytest.raises(E.AccessDenied, match="refused the registry's credentials"):
            store.put_object("bkt", "denied", b"x")
        assert not store.exists("bkt", "denied")
        assert store.read_bytes("bkt", "allowed") == b"x"

        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
        with pytest.raises(E.AccessDenied, match="refused the registry's credentials") as info:
            open_blob_store("s3://iam-bkt/reg", default_root=tmp_path)  # at start, not later
        assert "not-the-secret" not in str(info.value)


@pytest.fixture
def s3_home(moto_s3, monkeypatch, registry_home):
    """An embedded registry whose blob store is an S3 bucket (moto)."""
    s3_env(monkeypatch, moto_s3)
    bucket = moto_s3.new_bucket()
    monkeypatch.setenv("AIREGISTRY_STORE_URL", f"s3://{bucket}/reg")
    return bucket


def _real_keys(moto_s3, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in moto_s3.client().list_objects_v2(
        Bucket=bucket).get("Contents", []))


def test_registry_owned_objects_are_collected_with_their_last_version(
        s3_home, moto_s3, write_jsonl) -> None:
    from airegistry.dataset import DataSet

    path = write_jsonl("train.jsonl", [{"prompt": "p", "completion": "c"}])
    ds = DataSet.create("gc-me", str(path), "sft")
    assert ds.status == "Available" and ds.stats["rows"] == 1
    stored = [k for k in _real_keys(moto_s3, s3_home) if "/objects/" in k]
    assert len(stored) == 1 and stored[0].endswith("/train.jsonl")
    assert DataSet.delete_by_name("gc-me")
    assert [k for k in _real_keys(moto_s3, s3_home) if "/objects/" in k] == []


def test_a_bucket_gone_mid_life_fails_the_create_and_stores_no_version(
        s3_home, moto_s3, write_jsonl) -> None:
    from airegistry.dataset import DataSet

    path = write_jsonl("train.jsonl", [{"prompt": "p", "completion": "c"}])
    DataSet.create("first", str(path), "sft")
    raw = moto_s3.client()
    for key in _real_keys(moto_s3, s3_home):
        raw.delete_object(Bucket=s3_home, Key=key)
    raw.delete_bucket(Bucket=s3_home)
    with pytest.raises(E.StoreUnavailable, match="does not exist"):
        DataSet.create("second", str(path), "sft")
    assert [item["name"] for item in DataSet.list()["items"]] == ["first"]
