"""Housekeeping of a blob store that S3 does by lifecycle rules: abandoned multipart uploads.

An upload that is neither completed nor aborted keeps its parts forever (S3 keeps them too,
until a lifecycle rule ``AbortIncompleteMultipartUpload`` removes them). ``expire_uploads``
is that rule for every backend: it aborts each upload initiated more than ``max_age_s``
seconds ago, in every bucket, through the ``BlobStore`` contract only. Safe to run from
several processes at once: an upload that another process completed or aborted meanwhile
is simply skipped.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

from airegistry.storage.blobs.errors import NoSuchBucket, NoSuchUpload
from airegistry.storage.blobs.store import BlobStore

log = logging.getLogger(__name__)


def expire_uploads(store: BlobStore, max_age_s: float, *, now: datetime | None = None) -> int:
    """Abort every multipart upload older than ``max_age_s``; returns how many were aborted."""
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(seconds=max_age_s)
    aborted = 0
    for bucket in store.list_buckets():
        key_marker = upload_marker = None
        stale = []
        try:
            while True:
                page = store.list_multipart_uploads(bucket.name, key_marker=key_marker,
                                                    upload_id_marker=upload_marker)
                stale += [u for u in page.uploads if u.initiated < cutoff]
                if not page.is_truncated:
                    break
                key_marker, upload_marker = page.next_key_marker, page.next_upload_id_marker
        except NoSuchBucket:
            continue
        for upload in stale:
            try:
                store.abort_multipart_upload(bucket.name, upload.key, upload.upload_id)
            except (NoSuchUpload, NoSuchBucket):
                continue
            aborted += 1
            log.info("aborted multipart upload %s of s3://%s/%s (initiated %s)",
                     upload.upload_id, bucket.name, upload.key, upload.initiated.isoformat())
    return aborted


__all__ = ["expire_uploads"]
