"""Choosing the blob store from a URL: ``file:///path`` or ``s3://bucket[/prefix]``.

``AIREGISTRY_STORE_URL`` selects it for a home; without it the home's ``blobs/``
directory is used. The S3 backend takes its credentials, region and endpoint from the
standard AWS configuration (``AWS_ACCESS_KEY_ID``..., ``AWS_ENDPOINT_URL_S3`` or
``AWS_ENDPOINT_URL`` for an S3-compatible service) and checks at start that the bucket
is reachable, so a wrong bucket, key or endpoint fails the start with a clear error.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from airegistry.storage.blobs.store import BlobStore

STORE_URL_ENV = "AIREGISTRY_STORE_URL"


def open_blob_store(url: str | None, *, default_root: Path) -> BlobStore:
    """The store a URL names; ``None`` or ``""`` is the filesystem store at ``default_root``."""
    if not url:
        from airegistry.storage.blobs.fs import FileBlobStore

        return FileBlobStore(default_root)
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise ValueError(f"{STORE_URL_ENV}={url!r}: a file URL names a local path (file:///path)")
        from airegistry.storage.blobs.fs import FileBlobStore

        return FileBlobStore(Path(unquote(parsed.path)))
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ValueError(f"{STORE_URL_ENV}={url!r}: an S3 URL needs a bucket (s3://bucket/prefix)")
        from airegistry.storage.blobs.s3 import S3BlobStore

        return S3BlobStore(parsed.netloc, unquote(parsed.path).strip("/"))
    raise ValueError(
        f"{STORE_URL_ENV}={url!r}: unsupported store URL; use file:///path or s3://bucket/prefix"
    )


__all__ = ["STORE_URL_ENV", "open_blob_store"]
