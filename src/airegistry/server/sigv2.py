"""S3's legacy signature (V2): HMAC-SHA1 over the request, header and presigned-query forms.

boto3 still presigns S3 URLs with the V2 query form (AWSAccessKeyId, Signature, Expires)
when no ``signature_version`` is configured for an endpoint in us-east-1, so the server
accepts V2 for S3 only: query-string presigning and the ``Authorization: AWS key:sig``
header. It is HMAC-SHA1 over method, Content-MD5, Content-Type, date/expiry, the x-amz-*
headers and the resource path with S3's sub-resources.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import hmac
from collections.abc import Callable, Sequence

from airegistry.server.asgi import ascii_int
from airegistry.server.sigv4 import (
    MAX_CLOCK_SKEW,
    UNSIGNED_PAYLOAD,
    AuthFailure,
    SigV4Error,
    VerifiedRequest,
    _http_date_to_amz,
    _split_query,
    parse_amz_date,
)

#: Query parameters that are part of the V2 canonical resource (botocore's list).
V2_SUBRESOURCES = frozenset({
    "accelerate", "acl", "cors", "defaultObjectAcl", "location", "logging", "partNumber",
    "policy", "requestPayment", "torrent", "versioning", "versionId", "versions", "website",
    "uploads", "uploadId", "response-content-type", "response-content-language",
    "response-expires", "response-cache-control", "response-content-disposition",
    "response-content-encoding", "delete", "lifecycle", "tagging", "restore", "storageClass",
    "notification", "replication", "analytics", "metrics", "inventory", "select",
    "select-type", "object-lock",
})


def is_v2_signed(headers: dict[str, str], query: Sequence[tuple[str, str]]) -> bool:
    if headers.get("authorization", "").startswith("AWS "):
        return True
    names = {k for k, _ in query}
    return "AWSAccessKeyId" in names and "Signature" in names


def verify_s3_v2(
    *,
    method: str,
    resource_paths: Sequence[str],
    raw_query: bytes | str,
    header_pairs: Sequence[tuple[str, str]],
    lookup_secret: Callable[[str], str | None],
    now: _dt.datetime | None = None,
) -> VerifiedRequest:
    """Authenticate an S3 request signed with signature version 2, or raise SigV4Error."""

    headers: dict[str, str] = {}
    for k, v in header_pairs:
        k = k.lower()
        headers[k] = f"{headers[k]},{v.strip()}" if k in headers else v.strip()
    query = _split_query(raw_query)
    qmap = dict(query)
    now = now or _dt.datetime.now(_dt.timezone.utc)
    auth = headers.get("authorization", "")
    if auth.startswith("AWS "):
        key_id, sep, signature = auth[4:].strip().partition(":")
        if not sep:
            raise SigV4Error(AuthFailure.MALFORMED, "Authorization must be 'AWS key:signature'")
        date_value = "" if "x-amz-date" in headers else headers.get("date", "")
        stamp = headers.get("x-amz-date") or headers.get("date", "")
        when = _parse_http_date(stamp)
        if when is None:
            raise SigV4Error(AuthFailure.MALFORMED, "Missing or invalid Date header")
        if abs(now - when) > MAX_CLOCK_SKEW:
            raise SigV4Error(
                AuthFailure.SKEWED,
                "The difference between the request time and the current time is too large.",
            )
    else:
        key_id, signature = qmap["AWSAccessKeyId"], qmap["Signature"]
        date_value = qmap.get("Expires", "")
        expires = ascii_int(date_value)
        if expires is None:
            raise SigV4Error(AuthFailure.MALFORMED, "Expires must be a Unix timestamp")
        if now.timestamp() > expires:
            raise SigV4Error(AuthFailure.EXPIRED, "Request has expired")
    # compare_digest refuses str with non-ASCII characters; bytes compare whatever arrived.
    signature_bytes = signature.encode("utf-8", "surrogateescape")
    secret = lookup_secret(key_id)
    if secret is None:
        raise SigV4Error(
            AuthFailure.UNKNOWN_KEY,
            "The AWS Access Key Id you provided does not exist in our records.",
        )
    amz = sorted((k, v) for k, v in headers.items() if k.startswith("x-amz-"))
    amz += sorted((k.lower(), v) for k, v in query if k.lower().startswith("x-amz-"))
    subs = sorted((k, v) for k, v in query if k in V2_SUBRESOURCES)
    sub_txt = "&".join(f"{k}={v}" if v != "" or _had_equals(raw_query, k) else k for k, v in subs)
    content_md5 = headers.get("content-md5", qmap.get("content-md5", ""))
    content_type = headers.get("content-type", qmap.get("content-type", ""))
    for resource in resource_paths:
        res = resource + (f"?{sub_txt}" if sub_txt else "")
        lines = [method.upper(), content_md5, content_type, date_value]
        lines += [f"{k}:{v}" for k, v in amz]
        lines.append(res)
        digest = hmac.new(secret.encode("utf-8"), "\n".join(lines).encode("utf-8"),
                          hashlib.sha1).digest()
        if hmac.compare_digest(base64.b64encode(digest), signature_bytes):
            payload = headers.get("x-amz-content-sha256") or UNSIGNED_PAYLOAD
            return VerifiedRequest(access_key=key_id, service="s3", region="", amz_date="",
                                   scope="", signature="", signing_key=b"",
                                   payload_hash=payload)
    raise SigV4Error(
        AuthFailure.BAD_SIGNATURE,
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
    )


def _had_equals(raw_query: bytes | str, name: str) -> bool:
    text = raw_query.decode("latin-1") if isinstance(raw_query, bytes) else raw_query
    return any(item.startswith(name + "=") for item in text.split("&"))


def _parse_http_date(value: str) -> _dt.datetime | None:
    amz = _http_date_to_amz(value)
    if amz:
        return parse_amz_date(amz)
    try:
        return parse_amz_date(value)
    except SigV4Error:
        return None
