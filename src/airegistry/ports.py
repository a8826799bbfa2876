"""The object port: what the SDK needs from an S3-shaped store, for every backend.

The hub port is a boto3 ``sagemaker`` client everywhere (in-process transport when
embedded), and the function port is Lambda-shaped; objects get this thin interface
because the embedded registry calls its blob store (``storage.blobs.BlobStore``, any
backend: the home's filesystem or an S3 bucket) directly instead of round-tripping bytes
through a serialiser, while remote and AWS backends use boto3's managed transfers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

if TYPE_CHECKING:
    from airegistry.storage.blobs import BlobStore


class ObjectsPort(Protocol):
    def ensure_bucket(self, bucket: str) -> None: ...
    def upload_file(self, path: Path, bucket: str, key: str, content_type: str | None = None) -> None: ...
    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str | None = None) -> None: ...
    def open(self, bucket: str, key: str) -> BinaryIO: ...
    def exists(self, bucket: str, key: str) -> bool: ...
    def delete(self, bucket: str, key: str) -> None: ...


class EmbeddedObjects:
    """The registry's own blob store; buckets it does not hold are read from S3."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store

    def owns(self, bucket: str) -> bool:
        return self.store.has_bucket(bucket)

    def ensure_bucket(self, bucket: str) -> None:
        self.store.ensure_bucket(bucket)

    def upload_file(self, path: Path, bucket: str, key: str, content_type: str | None = None) -> None:
        self.store.put_file(bucket, key, path, content_type=content_type)

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str | None = None) -> None:
        self.store.put_object(bucket, key, data, content_type=content_type)

    def open(self, bucket: str, key: str) -> BinaryIO:
        if self.owns(bucket):
            _, stream = self.store.open_object(bucket, key)
            return stream
        return BotoObjects.default().open(bucket, key)

    def exists(self, bucket: str, key: str) -> bool:
        if not self.owns(bucket):
            return BotoObjects.default().exists(bucket, key)
        return self.store.exists(bucket, key)

    def delete(self, bucket: str, key: str) -> None:
        self.store.delete_object(bucket, key)


class BotoObjects:
    """Any S3 endpoint through boto3: the airegistry server, AWS, or another S3 service."""

    def __init__(self, client: object) -> None:
        self.client = client

    @classmethod
    def default(cls) -> BotoObjects:
        import boto3

        return cls(boto3.session.Session().client("s3"))

    def ensure_bucket(self, bucket: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=bucket)
        except ClientError:
            try:
                self.client.create_bucket(Bucket=bucket)
            except ClientError as exc:
                if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou",):
                    raise

    def upload_file(self, path: Path, bucket: str, key: str, content_type: str | None = None) -> None:
        extra = {"ContentType": content_type} if content_type else None
        self.client.upload_file(str(path), bucket, key, ExtraArgs=extra)

    def put_bytes(self, bucket: str, key: str, data: bytes, content_type: str | None = None) -> None:
        kwargs = {"ContentType": content_type} if content_type else {}
        self.client.put_object(Bucket=bucket, Key=key, Body=data, **kwargs)

    def open(self, bucket: str, key: str) -> BinaryIO:
        return self.client.get_object(Bucket=bucket, Key=key)["Body"]

    def exists(self, bucket: str, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response["Error"]["Code"] in ("404", "NoSuchKey", "NotFound", "NoSuchBucket"):
                return False
            raise
        return True

    def delete(self, bucket: str, key: str) -> None:
        self.client.delete_object(Bucket=bucket, Key=key)
