"""boto3 for the S3 backend: one client, and botocore's failures turned into blob-store errors.

The client follows the standard AWS configuration (credentials chain, region,
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` for an S3-compatible service) and uses
path-style addressing when an endpoint is configured, since S3-compatible servers rarely
resolve virtual-host names. Retries are botocore's standard mode: a few, with backoff,
then the error is ours to report.
"""

from __future__ import annotations

import os
from typing import Any

from airegistry.storage.blobs import errors as E

_NOT_FOUND = frozenset({"404", "NoSuchKey", "NotFound"})
_PASS_THROUGH = {
    "NoSuchUpload": E.NoSuchUpload,
    "InvalidPart": E.InvalidPart,
    "InvalidPartOrder": E.InvalidPartOrder,
    "EntityTooSmall": E.EntityTooSmall,
    "InvalidRange": E.InvalidRange,
    "PreconditionFailed": E.PreconditionFailed,
    "412": E.PreconditionFailed,
    "416": E.InvalidRange,
    "InvalidArgument": E.InvalidArgument,
    "BadDigest": E.BadDigest,
}


def endpoint_url() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


def make_client() -> Any:
    import boto3
    from botocore.config import Config

    endpoint = endpoint_url()
    config = Config(
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=32,
        s3={"addressing_style": "path" if endpoint else "auto"},
    )
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)


def translate(exc: BaseException, what: str, *, bucket: str | None = None,
              key: str | None = None) -> E.BlobStoreError:
    """The blob-store error for a botocore failure on ``what`` (``s3://bucket/key``)."""
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        message = str(exc.response.get("Error", {}).get("Message", "")) or code
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in _NOT_FOUND:
            return E.NoSuchKey(f"The specified key does not exist: {what}", bucket=bucket, key=key)
        if code in ("AccessDenied", "403", "Forbidden", "InvalidAccessKeyId",
                    "SignatureDoesNotMatch"):
            return E.AccessDenied(
                f"The S3 store refused the registry's credentials for {what} ({code}: {message})",
                bucket=bucket, key=key,
            )
        if code == "NoSuchBucket":
            return E.StoreUnavailable(
                f"The S3 bucket behind the registry's store does not exist ({what}: {message})",
                bucket=bucket, key=key,
            )
        if code in _PASS_THROUGH:
            return _PASS_THROUGH[code](f"{message} ({what})", bucket=bucket, key=key)
        if status >= 500 or code in ("SlowDown", "ServiceUnavailable", "InternalError"):
            return E.StoreUnavailable(f"The S3 store failed on {what}: {code}: {message}",
                                      bucket=bucket, key=key)
        return E.InvalidRequest(f"The S3 store rejected {what}: {code}: {message}",
                                bucket=bucket, key=key)
    if isinstance(exc, BotoCoreError):
        return E.StoreUnavailable(
            f"The S3 store cannot be reached for {what} "
            f"(endpoint {endpoint_url() or 'AWS default'}): {exc}",
            bucket=bucket, key=key,
        )
    raise TypeError(f"not a botocore error: {exc!r}")


def is_not_found(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and str(
        exc.response.get("Error", {}).get("Code", "")) in _NOT_FOUND
