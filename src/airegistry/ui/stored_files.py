"""A dataset's stored object as a seekable file of ranged reads, for the row preview.

The registry's own blob store is read first; an object registered by reference to a
bucket the store does not hold is read from S3 with the process's AWS configuration.
Only the byte ranges a page needs are fetched, never the whole object.
"""

from __future__ import annotations

import contextlib

from botocore.exceptions import ClientError

from airegistry.storage.blobs import BlobStore
from airegistry.storage.blobs.errors import BlobStoreError, NoSuchBucket
from airegistry.ui.errors import NotFound
from airegistry.ui.preview import RangedFile


def open_stored(store: BlobStore, bucket: str, key: str) -> RangedFile:
    """``NotFound`` (a 404 page) naming the object when it cannot be read."""
    try:
        size = store.head_object(bucket, key).size

        def fetch(first: int, last: int) -> bytes:
            _, stream = store.open_object(bucket, key, byte_range=(first, last))
            with stream:
                return stream.read()

        return RangedFile(fetch, size)
    except NoSuchBucket:
        pass
    except BlobStoreError as exc:
        raise NotFound(f"The stored data s3://{bucket}/{key} cannot be read: {exc}") from None
    return _open_external(bucket, key)


def _open_external(bucket: str, key: str) -> RangedFile:
    import boto3
    from botocore.exceptions import BotoCoreError

    client = boto3.session.Session().client("s3")
    try:
        size = int(client.head_object(Bucket=bucket, Key=key)["ContentLength"])
    except (ClientError, BotoCoreError) as exc:
        raise NotFound(f"The data s3://{bucket}/{key} cannot be read: {exc}") from None

    def fetch(first: int, last: int) -> bytes:
        body = client.get_object(Bucket=bucket, Key=key, Range=f"bytes={first}-{last}")["Body"]
        with contextlib.closing(body):
            return body.read()

    return RangedFile(fetch, size)
