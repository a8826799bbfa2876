"""S3's REST-XML wire format: response documents, error bodies and safe request parsing.

Kept apart from the request handling in :mod:`airegistry.server.s3` so the shapes
botocore's parser expects live in one place. Request XML (CompleteMultipartUpload,
DeleteObjects, CreateBucketConfiguration) is parsed with ``xml.etree`` after refusing
any DOCTYPE, so entity-expansion tricks never reach the parser.
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
XML_DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'
#: Request XML bodies above this size are refused (10,000 parts fit easily).
MAX_XML_BODY = 4 * 1024 * 1024

_INVALID_XML_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class S3Error(Exception):
    """An S3 error response: ``code`` and ``status`` as AWS returns them."""

    def __init__(self, code: str, message: str, status: int = 400, **extra: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        self.extra = extra


def text(value: Any) -> str:
    """XML-escape a value; characters XML 1.0 cannot carry become numeric references."""
    s = escape(str(value))
    return _INVALID_XML_CHARS.sub(lambda m: f"&#x{ord(m.group()):x};", s)


def to_datetime(value: Any) -> _dt.datetime:
    if isinstance(value, _dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc)
    if isinstance(value, (int, float)):
        return _dt.datetime.fromtimestamp(value, _dt.timezone.utc)
    if isinstance(value, str):
        return _dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    raise TypeError(f"cannot interpret {value!r} as a timestamp")


def iso8601(value: Any) -> str:
    dt = to_datetime(value).astimezone(_dt.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def http_date(value: Any) -> str:
    return email.utils.format_datetime(to_datetime(value).astimezone(_dt.timezone.utc), usegmt=True)


def quoted_etag(etag: str) -> str:
    return etag if etag.startswith('"') else f'"{etag}"'


def document(root: str, body: str) -> bytes:
    return f'{XML_DECL}<{root} xmlns="{S3_NS}">{body}</{root}>'.encode()


def error_document(code: str, message: str, resource: str, request_id: str,
                   extra: dict[str, str] | None = None) -> bytes:
    parts = [f"<Code>{text(code)}</Code><Message>{text(message)}</Message>"]
    if resource:
        parts.append(f"<Resource>{text(resource)}</Resource>")
    for k, v in (extra or {}).items():
        parts.append(f"<{k}>{text(v)}</{k}>")
    parts.append(f"<RequestId>{text(request_id)}</RequestId>")
    return f"{XML_DECL}<Error>{''.join(parts)}</Error>".encode()


def elem(name: str, value: Any) -> str:
    return f"<{name}>{text(value)}</{name}>"


def maybe_url(value: str, url_encode: bool) -> str:
    return quote(value, safe="/") if url_encode else value


# -- responses ------------------------------------------------------------------------------


def list_buckets(buckets: Iterable[Any], owner_id: str) -> bytes:
    items = "".join(
        f"<Bucket>{elem('Name', b.name)}{elem('CreationDate', iso8601(b.created))}</Bucket>"
        for b in buckets
    )
    owner = f"<Owner>{elem('ID', owner_id)}{elem('DisplayName', owner_id)}</Owner>"
    return document("ListAllMyBucketsResult", f"{owner}<Buckets>{items}</Buckets>")


def _checksum_algorithms(info: Any) -> str:
    checksums = getattr(info, "checksums", None) or {}
    return "".join(elem("ChecksumAlgorithm", alg) for alg in checksums)


def list_objects_v2(*, bucket: str, result: Any, prefix: str, delimiter: str | None,
                    max_keys: int, continuation_token: str | None, start_after: str | None,
                    url_encode: bool) -> bytes:
    parts = [elem("Name", bucket), elem("Prefix", maybe_url(prefix, url_encode)),
             elem("KeyCount", result.key_count), elem("MaxKeys", max_keys)]
    if delimiter:
        parts.append(elem("Delimiter", maybe_url(delimiter, url_encode)))
    parts.append(elem("IsTruncated", "true" if result.is_truncated else "false"))
    if continuation_token:
        parts.append(elem("ContinuationToken", continuation_token))
    if result.next_continuation_token:
        parts.append(elem("NextContinuationToken", result.next_continuation_token))
    if start_after:
        parts.append(elem("StartAfter", maybe_url(start_after, url_encode)))
    if url_encode:
        parts.append(elem("EncodingType", "url"))
    parts.extend(_contents(result.contents, url_encode))
    parts.extend(
        f"<CommonPrefixes>{elem('Prefix', maybe_url(p, url_encode))}</CommonPrefixes>"
        for p in result.common_prefixes
    )
    return document("ListBucketResult", "".join(parts))


def list_objects_v1(*, bucket: str, result: Any, prefix: str, delimiter: str | None,
                    max_keys: int, marker: str, url_encode: bool) -> bytes:
    parts = [elem("Name", bucket), elem("Prefix", maybe_url(prefix, url_encode)),
             elem("Marker", maybe_url(marker, url_encode)), elem("MaxKeys", max_keys)]
    if delimiter:
        parts.append(elem("Delimiter", maybe_url(delimiter, url_encode)))
    parts.append(elem("IsTruncated", "true" if result.is_truncated else "false"))
    if result.is_truncated:
        last = max([c.key for c in result.contents] + list(result.common_prefixes), default="")
        parts.append(elem("NextMarker", maybe_url(last, url_encode)))
    if url_encode:
        parts.append(elem("EncodingType", "url"))
    parts.extend(_contents(result.contents, url_encode))
    parts.extend(
        f"<CommonPrefixes>{elem('Prefix', maybe_url(p, url_encode))}</CommonPrefixes>"
        for p in result.common_prefixes
    )
    return document("ListBucketResult", "".join(parts))


def _contents(contents: Iterable[Any], url_encode: bool) -> list[str]:
    return [
        "<Contents>"
        + elem("Key", maybe_url(o.key, url_encode))
        + elem("LastModified", iso8601(o.last_modified))
        + elem("ETag", quoted_etag(o.etag))
        + _checksum_algorithms(o)
        + elem("Size", o.size)
        + elem("StorageClass", "STANDARD")
        + "</Contents>"
        for o in contents
    ]


def copy_object_result(info: Any) -> bytes:
    return document(
        "CopyObjectResult",
        elem("LastModified", iso8601(info.last_modified)) + elem("ETag", quoted_etag(info.etag)),
    )


def initiate_multipart(bucket: str, key: str, upload_id: str) -> bytes:
    return document(
        "InitiateMultipartUploadResult",
        elem("Bucket", bucket) + elem("Key", key) + elem("UploadId", upload_id),
    )


def complete_multipart(location: str, bucket: str, key: str, info: Any) -> bytes:
    checks = "".join(
        elem(f"Checksum{alg}", val) for alg, val in (getattr(info, "checksums", None) or {}).items()
    )
    return document(
        "CompleteMultipartUploadResult",
        elem("Location", location) + elem("Bucket", bucket) + elem("Key", key)
        + elem("ETag", quoted_etag(info.etag)) + checks,
    )


def list_parts(*, bucket: str, key: str, upload_id: str, parts: list[Any], max_parts: int,
               marker: int, owner_id: str) -> bytes:
    shown = [p for p in parts if p.part_number > marker]
    truncated = len(shown) > max_parts
    shown = shown[:max_parts]
    body = [elem("Bucket", bucket), elem("Key", key), elem("UploadId", upload_id),
            f"<Initiator>{elem('ID', owner_id)}</Initiator><Owner>{elem('ID', owner_id)}</Owner>",
            elem("StorageClass", "STANDARD"), elem("PartNumberMarker", marker),
            elem("MaxParts", max_parts), elem("IsTruncated", "true" if truncated else "false")]
    if truncated and shown:
        body.append(elem("NextPartNumberMarker", shown[-1].part_number))
    for p in shown:
        checks = "".join(
            elem(f"Checksum{alg}", v) for alg, v in (getattr(p, "checksums", None) or {}).items()
        )
        body.append(
            "<Part>" + elem("PartNumber", p.part_number)
            + elem("LastModified", iso8601(p.last_modified))
            + elem("ETag", quoted_etag(p.etag)) + elem("Size", p.size) + checks + "</Part>"
        )
    return document("ListPartsResult", "".join(body))


def list_multipart_uploads(*, bucket: str, listing: Any, prefix: str, delimiter: str | None,
                           key_marker: str, upload_id_marker: str, max_uploads: int,
                           owner_id: str, url_encode: bool) -> bytes:
    parts = [elem("Bucket", bucket), elem("KeyMarker", maybe_url(key_marker, url_encode)),
             elem("UploadIdMarker", upload_id_marker)]
    if listing.is_truncated:
        parts.append(elem("NextKeyMarker", maybe_url(listing.next_key_marker or "", url_encode)))
        parts.append(elem("NextUploadIdMarker", listing.next_upload_id_marker or ""))
    parts.append(elem("Prefix", maybe_url(prefix, url_encode)))
    if delimiter:
        parts.append(elem("Delimiter", maybe_url(delimiter, url_encode)))
    parts += [elem("MaxUploads", max_uploads),
              elem("IsTruncated", "true" if listing.is_truncated else "false")]
    if url_encode:
        parts.append(elem("EncodingType", "url"))
    owner = f"{elem('ID', owner_id)}{elem('DisplayName', owner_id)}"
    parts.extend(
        "<Upload>" + elem("Key", maybe_url(u.key, url_encode)) + elem("UploadId", u.upload_id)
        + f"<Initiator>{owner}</Initiator><Owner>{owner}</Owner>"
        + elem("StorageClass", "STANDARD") + elem("Initiated", iso8601(u.initiated))
        + "</Upload>"
        for u in listing.uploads
    )
    parts.extend(
        f"<CommonPrefixes>{elem('Prefix', maybe_url(p, url_encode))}</CommonPrefixes>"
        for p in listing.common_prefixes
    )
    return document("ListMultipartUploadsResult", "".join(parts))


def delete_result(deleted: list[str], errors: list[tuple[str, str, str]], quiet: bool) -> bytes:
    parts = [] if quiet else [f"<Deleted>{elem('Key', k)}</Deleted>" for k in deleted]
    parts.extend(
        f"<Error>{elem('Key', k)}{elem('Code', c)}{elem('Message', m)}</Error>"
        for k, c, m in errors
    )
    return document("DeleteResult", "".join(parts))


def location_constraint(region: str) -> bytes:
    value = "" if region == "us-east-1" else text(region)
    return f'{XML_DECL}<LocationConstraint xmlns="{S3_NS}">{value}</LocationConstraint>'.encode()


# -- request parsing -----------------------------------------------------------------------


def parse_xml(body: bytes, what: str) -> ET.Element:
    """Parse a small request document; malformed or hostile XML is MalformedXML (400)."""
    if len(body) > MAX_XML_BODY:
        raise S3Error("MalformedXML", f"{what} body is larger than {MAX_XML_BODY} bytes")
    if b"<!DOCTYPE" in body.upper() or b"<!ENTITY" in body.upper():
        raise S3Error("MalformedXML", f"{what} body must not contain a DOCTYPE or entities")
    try:
        return ET.fromstring(body)
    except ET.ParseError as exc:
        raise S3Error(
            "MalformedXML",
            f"The XML you provided was not well-formed or did not validate against our published "
            f"schema ({what}: {exc})",
        ) from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(node: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in node if _local(c.tag) == name]


def _child_text(node: ET.Element, name: str) -> str | None:
    found = _children(node, name)
    return (found[0].text or "") if found else None


def parse_complete_multipart(body: bytes) -> list[tuple[int, str]]:
    root = parse_xml(body, "CompleteMultipartUpload")
    if _local(root.tag) != "CompleteMultipartUpload":
        raise S3Error("MalformedXML", "Expected a CompleteMultipartUpload document")
    parts: list[tuple[int, str]] = []
    for i, part in enumerate(_children(root, "Part"), start=1):
        num_txt = _child_text(part, "PartNumber")
        etag = _child_text(part, "ETag")
        if num_txt is None or etag is None:
            raise S3Error("MalformedXML", f"Part {i} needs PartNumber and ETag")
        try:
            num = int(num_txt.strip())
        except ValueError:
            raise S3Error("MalformedXML", f"Part {i}: PartNumber {num_txt!r} is not an integer") from None
        parts.append((num, etag.strip().strip('"')))
    if not parts:
        raise S3Error("MalformedXML", "CompleteMultipartUpload lists no parts")
    return parts


def parse_delete_objects(body: bytes) -> tuple[list[str], bool]:
    root = parse_xml(body, "Delete")
    if _local(root.tag) != "Delete":
        raise S3Error("MalformedXML", "Expected a Delete document")
    quiet = (_child_text(root, "Quiet") or "").strip().lower() == "true"
    keys = []
    for i, obj in enumerate(_children(root, "Object"), start=1):
        key = _child_text(obj, "Key")
        if key is None:
            raise S3Error("MalformedXML", f"Object {i} has no Key")
        keys.append(key)
    if not keys or len(keys) > 1000:
        raise S3Error("MalformedXML", "Delete must list between 1 and 1000 objects")
    return keys, quiet
