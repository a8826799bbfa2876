"""The blob store: one S3-shaped interface (``BlobStore``), a filesystem and an S3 backend.

Callers import from here: the interface, its value types and errors, and
``open_blob_store`` which picks the backend from a URL (``AIREGISTRY_STORE_URL``).
"""

from airegistry.storage.blobs.config import STORE_URL_ENV, open_blob_store
from airegistry.storage.blobs.store import BlobStore, ObjectReader
from airegistry.storage.blobs.types import (
    CHUNK_SIZE,
    DEFAULT_CONTENT_TYPE,
    BucketInfo,
    ListResult,
    ObjectInfo,
    PartInfo,
    UploadInfo,
    UploadListing,
)

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_CONTENT_TYPE",
    "STORE_URL_ENV",
    "BlobStore",
    "BucketInfo",
    "ListResult",
    "ObjectInfo",
    "ObjectReader",
    "PartInfo",
    "UploadInfo",
    "UploadListing",
    "open_blob_store",
]
