"""What an S3 request says: addressing, headers, ranges, and its body for the store.

Pure translation between HTTP and blob-store arguments, no store calls: the bucket and
key (path or virtual-host style), user metadata, the object headers of a response, the
``Range`` header, and the upload body pipeline (aws-chunked decoding, chunk signatures,
digests and size caps applied while the body streams).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

from airegistry.server import s3_xml, sigv4
from airegistry.server.asgi import BodyReader, RequestContext, ascii_int
from airegistry.server.chunked import (
    AwsChunkedDecoder,
    ChunkSigning,
    checksum_header_algorithm,
    new_checksum,
)
from airegistry.server.s3_xml import S3Error

#: Above this many bytes of metadata headers S3 answers MetadataTooLarge.
MAX_METADATA_BYTES = 2048
HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_RANGE = re.compile(r"\s*bytes\s*=\s*([0-9]{0,19})\s*-\s*([0-9]{0,19})\s*", re.ASCII)


@dataclass
class S3Config:
    """Addressing and limits for the S3 endpoint."""

    region: str = "us-east-1"
    owner_id: str = "000000000000"
    #: Host names under which ``<bucket>.<base>`` means virtual-host-style addressing.
    virtual_host_bases: tuple[str, ...] = ("s3.localhost", "localhost")
    #: Largest single PutObject / UploadPart body accepted (bytes).
    max_object_size: int = 5 * 1024**3
    #: Largest XML request body (DeleteObjects, CompleteMultipartUpload).
    max_xml_body: int = s3_xml.MAX_XML_BODY
    #: Worker threads reserved for streaming uploads. An upload holds a thread for as
    #: long as the client takes to send its body, so uploads get their own pool: slow
    #: uploaders cannot starve short operations (and SageMaker calls) of threads.
    upload_threads: int = 64


def virtual_host_bucket(ctx: RequestContext, config: S3Config) -> str | None:
    """The bucket named by a ``<bucket>.<base>`` Host header, or None for path style."""
    host = ctx.headers.get("host", "").strip().lower()
    hostname = host.rsplit(":", 1)[0] if not host.startswith("[") else host
    bases = sorted(set(config.virtual_host_bases), key=len, reverse=True)
    for base in bases:
        suffix = "." + base.lower()
        if hostname.endswith(suffix) and len(hostname) > len(suffix):
            return hostname[: -len(suffix)]
    return None


def split_bucket_key(ctx: RequestContext, config: S3Config) -> tuple[str | None, str | None]:
    """Bucket and key from virtual-host or path-style addressing, keys percent-decoded."""
    try:
        path = unquote_to_bytes(ctx.raw_path).decode("utf-8")
    except UnicodeDecodeError:
        raise S3Error("InvalidURI", "The request path is not valid UTF-8") from None
    bucket = virtual_host_bucket(ctx, config)
    if bucket is not None:
        key = path[1:] if path.startswith("/") else path
        return bucket, key or None
    trimmed = path[1:] if path.startswith("/") else path
    if not trimmed:
        return None, None
    bucket, _, key = trimmed.partition("/")
    return bucket, key or None


def user_metadata(ctx: RequestContext) -> dict[str, str]:
    meta = {k[len("x-amz-meta-"):]: v for k, v in ctx.headers.items() if k.startswith("x-amz-meta-")}
    if sum(len(k) + len(v) for k, v in meta.items()) > MAX_METADATA_BYTES:
        raise S3Error("MetadataTooLarge", "Your metadata headers exceed the maximum allowed size")
    return meta


_HEADER_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def stored_header_value(value: str) -> str:
    """A stored value (metadata, content type) as an HTTP header value.

    Values written through the wire are Latin-1 already; one written in process (the SDK,
    the embedded store) may hold any character. Such a value is sent the way S3 sends
    non-ASCII metadata, as an RFC 2047 encoded word, so the response can always be written.
    """
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        pass
    else:
        # HTTP field values carry no surrounding whitespace (h11 refuses to send them)
        if not _HEADER_CONTROL.search(value) and value == value.strip(" \t"):
            return value
    raw = value.encode("utf-8", "surrogateescape")
    return f"=?UTF-8?B?{base64.b64encode(raw).decode()}?="


def object_headers(info: Any, *, checksum_mode: bool) -> list[tuple[str, str]]:
    headers = [
        ("ETag", s3_xml.quoted_etag(info.etag)),
        ("Last-Modified", s3_xml.http_date(info.last_modified)),
        ("Content-Type", stored_header_value(info.content_type or "binary/octet-stream")),
        ("Accept-Ranges", "bytes"),
    ]
    for k, v in (info.metadata or {}).items():
        headers.append((f"x-amz-meta-{k}", stored_header_value(v)))
    if checksum_mode:
        for alg, val in (getattr(info, "checksums", None) or {}).items():
            headers.append((f"x-amz-checksum-{alg.lower()}", val))
            if "-" in val:
                headers.append(("x-amz-checksum-type", "COMPOSITE"))
    return headers


RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}


def apply_response_overrides(ctx: RequestContext,
                              headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """GetObject's ``response-*`` query parameters replace the matching response headers
    (how presigned download links set a file name or type)."""
    # HTTP field values carry no surrounding whitespace (h11 refuses to send them)
    overrides = {RESPONSE_OVERRIDES[k]: v.strip(" \t") for k, v in ctx.query
                 if k in RESPONSE_OVERRIDES}
    if not overrides:
        return headers
    for name, value in ctx.query:
        if name not in RESPONSE_OVERRIDES:
            continue
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise S3Error("InvalidArgument",
                          "Header value cannot be represented using ISO-8859-1.",
                          ArgumentName=name, ArgumentValue=value[:64]) from None
        if _HEADER_CONTROL.search(value):
            raise S3Error("InvalidArgument", f"{name} contains a control character",
                          ArgumentName=name)
    lowered = {k.lower() for k in overrides}
    kept = [(k, v) for k, v in headers if k.lower() not in lowered]
    return kept + list(overrides.items())


def etag_in(condition: str, etag: str) -> bool:
    wanted = [c.strip().strip('"').lower() for c in condition.split(",") if c.strip()]
    return any(c in ("*", etag.lower()) for c in wanted)


def parse_range(value: str | None) -> tuple[str, int, int | None] | None:
    """``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n``; None means "ignore the header"."""
    if not value:
        return None
    m = _RANGE.fullmatch(value)
    if not m or (not m.group(1) and not m.group(2)):
        return None  # S3 ignores unparseable or multi-range headers and returns the object
    if not m.group(1):
        return ("suffix", int(m.group(2)), None)
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) else None
    if last is not None and last < first:
        return None
    return ("range", first, last)


async def read_small_body(reader: BodyReader, ctx: RequestContext, limit: int) -> bytes:
    """A small XML request body (DeleteObjects, CompleteMultipartUpload), with its digests checked."""
    length = ctx.headers.get("content-length")
    size = ascii_int(length)
    if size is not None and size > limit:
        raise S3Error("MalformedXML", f"Request body is larger than {limit} bytes")
    body = bytearray()
    while True:
        chunk = await reader.read_chunk()
        if not chunk:
            break
        body.extend(chunk)
        if len(body) > limit:
            raise S3Error("MalformedXML", f"Request body is larger than {limit} bytes")
    data = bytes(body)
    if "aws-chunked" in ctx.headers.get("content-encoding", ""):
        decoder = AwsChunkedDecoder(signing=None, expect_trailer=None, decoded_length=None)
        data = b"".join(decoder.decode([data]))
    md5 = ctx.headers.get("content-md5")
    if md5 is not None:
        import hashlib

        if base64.b64encode(hashlib.md5(data).digest()).decode() != md5.strip():
            raise S3Error("BadDigest", "The Content-MD5 you specified did not match what we received.")
    for name, value in ctx.headers.items():
        alg = checksum_header_algorithm(name)
        if alg is not None:
            running = new_checksum(alg)
            running.update(data)
            if running.b64() != value.strip():
                raise S3Error("BadDigest", f"The {alg} you specified did not match the calculated checksum.")
    sha = ctx.headers.get("x-amz-content-sha256")
    if sha and HEX64.match(sha):
        import hashlib

        if hashlib.sha256(data).hexdigest() != sha.lower():
            raise S3Error("XAmzContentSHA256Mismatch",
                          "The provided 'x-amz-content-sha256' header does not match what was computed.")
    return data


def body_plan(ctx: RequestContext, reader: BodyReader,
              verified: sigv4.VerifiedRequest | None, max_object_size: int) -> tuple[Iterator[bytes | memoryview], dict[str, Any], AwsChunkedDecoder | None]:
    """The body iterator for the store plus the digests the store must verify.

    Nothing is read here: the iterator pulls the body as the store consumes it, so
    every mismatch is raised inside the store's write and nothing is committed.
    """
    h = ctx.headers
    length_txt = h.get("content-length")
    if length_txt is not None:
        length = ascii_int(length_txt)
        if length is None:
            raise S3Error("InvalidArgument", f"Content-Length {length_txt[:40]!r} is not a number")
        # aws-chunked framing adds some bytes; the decoded size is capped below.
        framing_slack = 0 if "aws-chunked" not in h.get("content-encoding", "") else 1 << 20
        if length > max_object_size + framing_slack:
            raise S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
    elif h.get("transfer-encoding", "").lower() != "chunked":
        raise S3Error("MissingContentLength", "You must provide the Content-Length HTTP header.", 411)
    kwargs: dict[str, Any] = {}
    md5 = h.get("content-md5")
    if md5 is not None:
        try:
            raw = base64.b64decode(md5.strip(), validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) != 16:
            raise S3Error("InvalidDigest", "The Content-MD5 you specified is not valid.")
        kwargs["content_md5"] = md5.strip()
    payload = (verified.payload_hash if verified else h.get("x-amz-content-sha256", "")) or ""
    if HEX64.match(payload):
        kwargs["sha256_hex"] = payload.lower()
    # Flexible checksum sent as a header (boto3's default over plain HTTP).
    header_checksum = None
    for name, value in h.items():
        alg = checksum_header_algorithm(name)
        if alg is not None:
            header_checksum = (alg, value.strip())
    source = reader.sync_iter()
    decoder = None
    encoding = h.get("content-encoding", "")
    streaming = payload in sigv4.STREAMING_PAYLOADS
    if "aws-chunked" in encoding or streaming:
        decoded_txt = h.get("x-amz-decoded-content-length")
        decoded = ascii_int(decoded_txt)
        if decoded_txt is not None and decoded is None:
            raise S3Error("InvalidArgument",
                          f"x-amz-decoded-content-length {decoded_txt[:40]!r} is not a number")
        if decoded is not None and decoded > max_object_size:
            raise S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
        signing = None
        # verified is None only when the server runs with --no-auth: chunk
        # signatures are then framing to skip, like the request signature itself.
        if payload in (sigv4.STREAMING_SIGNED, sigv4.STREAMING_SIGNED_TRAILER) and verified:
            signing = ChunkSigning(verified.signing_key, verified.amz_date, verified.scope,
                                   verified.signature)
        trailer = h.get("x-amz-trailer")
        decoder = AwsChunkedDecoder(signing=signing, expect_trailer=trailer,
                                    decoded_length=decoded,
                                    max_size=max_object_size)
        if decoder.result.algorithm is not None:
            kwargs["checksum"] = (decoder.result.algorithm, None)
        body: Iterator[bytes | memoryview] = decoder.decode(source)
    else:
        body = capped(source, max_object_size)
    if header_checksum is not None and "checksum" not in kwargs:
        kwargs["checksum"] = header_checksum
    elif "checksum" not in kwargs:
        alg = h.get("x-amz-checksum-algorithm") or h.get("x-amz-sdk-checksum-algorithm")
        if alg and alg.upper() in ("CRC32", "CRC32C", "SHA1", "SHA256", "CRC64NVME"):
            kwargs["checksum"] = (alg.upper(), None)
    return body, kwargs, decoder


def capped(source: Iterator[bytes | memoryview], limit: int) -> Iterator[bytes | memoryview]:
    total = 0
    for piece in source:
        total += len(piece)
        if total > limit:
            raise S3Error("EntityTooLarge", "Your proposed upload exceeds the maximum allowed size")
        yield piece
