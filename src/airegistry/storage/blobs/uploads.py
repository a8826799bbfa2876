"""ListMultipartUploads paging, the same for every backend.

Both backends gather the uploads in progress under a prefix (the filesystem from its
``uploads/`` directories, S3 from its own listing) and page them here, so ordering,
markers and delimiter roll-ups are identical: by key (UTF-8 bytes), then upload id.
"""

from __future__ import annotations

from airegistry.storage.blobs.errors import InvalidArgument
from airegistry.storage.blobs.types import UploadInfo, UploadListing


def page_uploads(uploads: list[UploadInfo], *, prefix: str, delimiter: str | None,
                 key_marker: str | None, upload_id_marker: str | None,
                 max_uploads: int) -> UploadListing:
    """One ListMultipartUploads page of ``uploads`` (all of one bucket, under ``prefix``)."""
    if not isinstance(max_uploads, int) or isinstance(max_uploads, bool) or max_uploads < 0:
        raise InvalidArgument(f"max-uploads must be a non-negative integer, got {max_uploads!r}",
                              details={"ArgumentName": "max-uploads"})
    limit = min(max_uploads, 1000)
    if limit == 0:
        return UploadListing([], [], False, None, None)
    ordered = sorted(uploads, key=lambda u: (_utf8(u.key), u.upload_id))
    marker = _utf8(key_marker) if key_marker is not None else None
    shown: list[UploadInfo] = []
    prefixes: list[str] = []
    last: tuple[str, str | None] | None = None
    rolled_marker = key_marker if (delimiter and key_marker and key_marker.endswith(delimiter)
                                   and key_marker.startswith(prefix)) else None
    for upload in ordered:
        if marker is not None:
            key = _utf8(upload.key)
            if key < marker:
                continue
            if key == marker and (upload_id_marker is None or upload.upload_id <= upload_id_marker):
                continue
        if rolled_marker is not None and upload.key.startswith(rolled_marker):
            continue  # the common prefix the previous page ended on
        common = None
        if delimiter:
            cut = upload.key.find(delimiter, len(prefix))
            if cut >= 0:
                common = upload.key[:cut + len(delimiter)]
        if common is not None and prefixes and prefixes[-1] == common:
            continue
        if len(shown) + len(prefixes) >= limit:
            return UploadListing(shown, prefixes, True, last[0] if last else None,
                                 last[1] if last else None)
        if common is not None:
            prefixes.append(common)
            last = (common, None)
        else:
            shown.append(upload)
            last = (upload.key, upload.upload_id)
    return UploadListing(shown, prefixes, False, None, None)


def _utf8(text: str) -> bytes:
    """Keys compare as S3 compares them: by their UTF-8 bytes."""
    return text.encode("utf-8", "surrogatepass")
