"""The filesystem backend of the blob store (``file://`` URLs, the default)."""

from airegistry.storage.blobs.fs.store import FileBlobStore

__all__ = ["FileBlobStore"]
