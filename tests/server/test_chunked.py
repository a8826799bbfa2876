"""aws-chunked decoding: unit tests of the decoder and signed streaming uploads end to end."""

from __future__ import annotations

import base64
import hashlib
import os
import zlib
from typing import Any

import httpx
import pytest

from airegistry.server.chunked import AwsChunkedDecoder, ChunkedDecodeError, ChunkSigning
from tests.server.conftest import (
    REGION,
    RunningServer,
    encode_signed_chunks,
    encode_unsigned_chunks,
    seed_signature,
    sign_headers,
    signing_key,
)


def _crc32(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def _split(data: bytes, n: int) -> list[bytes]:
    """Feed the decoder in arbitrary pieces: framing must not depend on read boundaries."""
    return [data[i:i + n] for i in range(0, len(data), n)]


def _decode(decoder: AwsChunkedDecoder, encoded: bytes, piece: int = 7) -> bytes:
    return b"".join(decoder.decode(_split(encoded, piece)))


# -- unit: unsigned trailer ------------------------------------------------------------------


@pytest.mark.parametrize("piece", [1, 3, 64, 100_000])
def test_unsigned_trailer_round_trip(piece: int) -> None:
    data = os.urandom(5000)
    enc = encode_unsigned_chunks(data, chunk_size=1024, trailer=("x-amz-checksum-crc32", _crc32(data)))
    dec = AwsChunkedDecoder(signing=None, expect_trailer="x-amz-checksum-crc32",
                            decoded_length=len(data))
    assert _decode(dec, enc, piece) == data
    assert dec.result.value == _crc32(data)


def test_wrong_trailing_checksum_is_bad_digest() -> None:
    data = b"hello world"
    enc = encode_unsigned_chunks(data, chunk_size=4, trailer=("x-amz-checksum-crc32", "AAAAAA=="))
    dec = AwsChunkedDecoder(signing=None, expect_trailer="x-amz-checksum-crc32", decoded_length=None)
    with pytest.raises(ChunkedDecodeError) as exc:
        _decode(dec, enc)
    assert exc.value.code == "BadDigest"


def test_missing_trailer_is_rejected() -> None:
    data = b"hello"
    enc = encode_unsigned_chunks(data, chunk_size=4, trailer=None)
    dec = AwsChunkedDecoder(signing=None, expect_trailer="x-amz-checksum-crc32", decoded_length=None)
    with pytest.raises(ChunkedDecodeError) as exc:
        _decode(dec, enc)
    assert exc.value.code == "IncompleteBody"


@pytest.mark.parametrize("cut", [1, 5, 20, -3])
def test_truncated_stream_is_incomplete(cut: int) -> None:
    data = os.urandom(100)
    enc = encode_unsigned_chunks(data, chunk_size=40, trailer=("x-amz-checksum-crc32", _crc32(data)))
    dec = AwsChunkedDecoder(signing=None, expect_trailer="x-amz-checksum-crc32", decoded_length=100)
    with pytest.raises(ChunkedDecodeError) as exc:
        _decode(dec, enc[:cut])
    assert exc.value.code in ("IncompleteBody", "InvalidRequest")


def test_decoded_length_mismatch() -> None:
    data = b"abcdef"
    enc = encode_unsigned_chunks(data, chunk_size=3, trailer=None)
    dec = AwsChunkedDecoder(signing=None, expect_trailer=None, decoded_length=5)
    with pytest.raises(ChunkedDecodeError):
        _decode(dec, enc)


@pytest.mark.parametrize("garbage", [b"zz\r\nabc", b"-5\r\n", b"5;chunk-signature=x" + b"a" * 5000])
def test_garbage_framing(garbage: bytes) -> None:
    dec = AwsChunkedDecoder(signing=None, expect_trailer=None, decoded_length=None)
    with pytest.raises(ChunkedDecodeError):
        _decode(dec, garbage)


def test_max_size_enforced_while_streaming() -> None:
    data = os.urandom(3000)
    enc = encode_unsigned_chunks(data, chunk_size=1000, trailer=None)
    dec = AwsChunkedDecoder(signing=None, expect_trailer=None, decoded_length=None, max_size=2000)
    with pytest.raises(ChunkedDecodeError) as exc:
        _decode(dec, enc)
    assert exc.value.code == "EntityTooLarge"


# -- unit: signed chunks -----------------------------------------------------------------------

SECRET = "unit-test-secret"
AMZ_DATE = "20260101T000000Z"
SEED = "a" * 64


def _signing() -> ChunkSigning:
    return ChunkSigning(signing_key(SECRET, AMZ_DATE), AMZ_DATE,
                        f"{AMZ_DATE[:8]}/{REGION}/s3/aws4_request", SEED)


def test_signed_chunks_verify() -> None:
    data = os.urandom(10_000)
    enc = encode_signed_chunks(data, chunk_size=4096, key=signing_key(SECRET, AMZ_DATE),
                               amz_date=AMZ_DATE, seed=SEED)
    dec = AwsChunkedDecoder(signing=_signing(), expect_trailer=None, decoded_length=len(data))
    assert _decode(dec, enc, 333) == data


def test_signed_chunks_with_signed_trailer() -> None:
    data = os.urandom(9000)
    enc = encode_signed_chunks(data, chunk_size=4096, key=signing_key(SECRET, AMZ_DATE),
                               amz_date=AMZ_DATE, seed=SEED,
                               trailer=("x-amz-checksum-crc32", _crc32(data)))
    dec = AwsChunkedDecoder(signing=_signing(), expect_trailer="x-amz-checksum-crc32",
                            decoded_length=len(data))
    assert _decode(dec, enc) == data


def test_tampered_chunk_fails_signature() -> None:
    data = b"A" * 5000
    enc = bytearray(encode_signed_chunks(data, chunk_size=4096, key=signing_key(SECRET, AMZ_DATE),
                                         amz_date=AMZ_DATE, seed=SEED))
    idx = enc.index(b"AAAA")
    enc[idx] = ord("B")
    dec = AwsChunkedDecoder(signing=_signing(), expect_trailer=None, decoded_length=len(data))
    with pytest.raises(ChunkedDecodeError) as exc:
        _decode(dec, bytes(enc))
    assert exc.value.code == "SignatureDoesNotMatch"


def test_wrong_trailer_signature() -> None:
    data = b"payload"
    enc = encode_signed_chunks(data, chunk_size=4096, key=signing_key(SECRET, AMZ_DATE),
                               amz_date=AMZ_DATE, seed=SEED,
                               trailer=("x-amz-checksum-crc32", _crc32(data)))
    enc = enc.replace(b"x-amz-trailer-signature:", b"x-amz-trailer-signature:0")
    dec = AwsChunkedDecoder(signing=_signing(), expect_trailer="x-amz-checksum-crc32",
                            decoded_length=len(data))
    with pytest.raises(ChunkedDecodeError) as exc:
        _decode(dec, enc)
    assert exc.value.code == "SignatureDoesNotMatch"


def test_chunk_without_signature_refused_when_signed() -> None:
    enc = encode_unsigned_chunks(b"abc", chunk_size=3, trailer=None)
    dec = AwsChunkedDecoder(signing=_signing(), expect_trailer=None, decoded_length=3)
    with pytest.raises(ChunkedDecodeError):
        _decode(dec, enc)


# -- end to end over HTTP -----------------------------------------------------------------------


def _put_signed_stream(server: RunningServer, bucket: str, key: str, data: bytes, *,
                       trailer: bool, tamper: bool = False,
                       decoded_length: int | None = None) -> httpx.Response:
    payload = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD" + ("-TRAILER" if trailer else "")
    headers: dict[str, str] = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data) if decoded_length is None else decoded_length),
    }
    if trailer:
        headers["x-amz-trailer"] = "x-amz-checksum-crc32"
    signed = sign_headers(server, "PUT", f"/{bucket}/{key}", headers=headers, payload_hash=payload)
    amz_date = signed["X-Amz-Date"]
    body = encode_signed_chunks(
        data, chunk_size=64 * 1024, key=signing_key(server.secret_key, amz_date),
        amz_date=amz_date, seed=seed_signature(signed),
        trailer=("x-amz-checksum-crc32", _crc32(data)) if trailer else None)
    if tamper:
        body = body[:-200] + bytes([body[-200] ^ 1]) + body[-199:]
    return httpx.put(f"{server.url}/{bucket}/{key}", headers=signed, content=body, timeout=60)


@pytest.mark.parametrize("trailer", [False, True])
def test_signed_streaming_put(server: RunningServer, s3: Any, bucket: str, trailer: bool) -> None:
    data = os.urandom(300_000)
    r = _put_signed_stream(server, bucket, "streamed", data, trailer=trailer)
    assert r.status_code == 200, r.text
    assert s3.get_object(Bucket=bucket, Key="streamed")["Body"].read() == data
    if trailer:
        assert r.headers["x-amz-checksum-crc32"] == _crc32(data)


def test_signed_streaming_tampered_is_rejected_and_not_stored(server: RunningServer, s3: Any,
                                                              bucket: str) -> None:
    data = os.urandom(200_000)
    r = _put_signed_stream(server, bucket, "tampered", data, trailer=True, tamper=True)
    assert r.status_code in (400, 403)
    assert "<Code>" in r.text
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_signed_streaming_length_mismatch(server: RunningServer, s3: Any, bucket: str) -> None:
    data = os.urandom(1000)
    r = _put_signed_stream(server, bucket, "short", data, trailer=False, decoded_length=2000)
    assert r.status_code == 400
    assert "<Code>IncompleteBody</Code>" in r.text
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def _put_unsigned_trailer(server: RunningServer, bucket: str, key: str, body: bytes,
                          decoded: int, algorithm: str = "crc32") -> httpx.Response:
    headers = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(decoded),
               "x-amz-trailer": f"x-amz-checksum-{algorithm}"}
    signed = sign_headers(server, "PUT", f"/{bucket}/{key}", headers=headers,
                          payload_hash="STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    return httpx.put(f"{server.url}/{bucket}/{key}", headers=signed, content=body, timeout=60)


@pytest.mark.parametrize("algorithm", ["crc32", "crc32c", "sha256"])
def test_unsigned_trailer_put(server: RunningServer, s3: Any, bucket: str, algorithm: str) -> None:
    data = os.urandom(150_000)
    if algorithm == "crc32":
        value = _crc32(data)
    elif algorithm == "crc32c":
        from awscrt import checksums

        value = base64.b64encode(checksums.crc32c(data).to_bytes(4, "big")).decode()
    else:
        value = base64.b64encode(hashlib.sha256(data).digest()).decode()
    enc = encode_unsigned_chunks(data, chunk_size=8192, trailer=(f"x-amz-checksum-{algorithm}", value))
    r = _put_unsigned_trailer(server, bucket, "t", enc, len(data), algorithm)
    assert r.status_code == 200, r.text
    got = s3.get_object(Bucket=bucket, Key="t", ChecksumMode="ENABLED")
    assert got["Body"].read() == data
    assert got[f"Checksum{algorithm.upper()}"] == value


def test_wrong_trailing_checksum_over_http(server: RunningServer, s3: Any, bucket: str) -> None:
    data = os.urandom(10_000)
    enc = encode_unsigned_chunks(data, chunk_size=4096, trailer=("x-amz-checksum-crc32", "AAAAAA=="))
    r = _put_unsigned_trailer(server, bucket, "bad", enc, len(data))
    assert r.status_code == 400
    assert "<Code>BadDigest</Code>" in r.text
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_truncated_aws_chunked_body(server: RunningServer, s3: Any, bucket: str) -> None:
    data = os.urandom(10_000)
    enc = encode_unsigned_chunks(data, chunk_size=4096, trailer=("x-amz-checksum-crc32", _crc32(data)))
    r = _put_unsigned_trailer(server, bucket, "trunc", enc[: len(enc) // 2], len(data))
    assert r.status_code == 400
    assert "<Code>IncompleteBody</Code>" in r.text
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)
