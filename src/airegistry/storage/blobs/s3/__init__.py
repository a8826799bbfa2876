"""The S3 backend of the blob store (``s3://bucket/prefix`` URLs), through boto3."""

from airegistry.storage.blobs.s3.store import S3BlobStore

__all__ = ["S3BlobStore"]
