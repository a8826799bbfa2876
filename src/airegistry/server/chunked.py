"""Streaming decoder for S3's ``aws-chunked`` content encoding.

boto3 and the other AWS SDKs send uploads as ``aws-chunked`` bodies when they add a
trailing checksum (``STREAMING-UNSIGNED-PAYLOAD-TRAILER``) or sign each chunk
(``STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]``)::

    <hex-size>[;chunk-signature=<sig>]\\r\\n<data>\\r\\n ... 0[;chunk-signature=<sig>]\\r\\n
    x-amz-checksum-crc32:<b64>\\r\\n[x-amz-trailer-signature:<sig>\\r\\n]\\r\\n

The decoder is an iterator adapter: encoded pieces in, decoded pieces out, so an
upload streams to disk without ever being held in memory. Every problem (bad framing,
a wrong chunk or trailer signature, a trailing checksum that does not match, a body
that ends early or disagrees with ``x-amz-decoded-content-length``) raises
:class:`ChunkedDecodeError` *before* the iterator finishes, so the object store,
which consumes the iterator, discards the partial upload instead of committing it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from airegistry.server import sigv4
from airegistry.storage import checksums as ck
from airegistry.storage.blobs.errors import BlobStoreError

#: A chunk header line ("<hex>;chunk-signature=<64 hex>") is never longer than this.
MAX_HEADER_LINE = 4096
#: Trailer section (checksum and signature lines) cap, to refuse garbage quickly.
MAX_TRAILER_BYTES = 16 * 1024


class ChunkedDecodeError(Exception):
    """A malformed or unverifiable aws-chunked body; ``code`` is the S3 error code."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


# -- checksums ---------------------------------------------------------------------------
# One checksum module for the whole registry (storage/checksums.py, awscrt's kernels);
# this adapter only adds the base64 rendering the trailer comparison needs.

SUPPORTED_CHECKSUMS = ck.ALGORITHMS


class Checksum:
    """A running S3 flexible checksum whose value is compared in S3's base64 form."""

    def __init__(self, algorithm: str) -> None:
        self._running = ck.new_checksum(algorithm)

    def update(self, data: bytes | memoryview) -> None:
        self._running.update(data)

    def b64(self) -> str:
        return ck.b64(self._running.digest())


def new_checksum(algorithm: str) -> Checksum:
    """A running checksum for one of S3's flexible-checksum algorithms."""
    try:
        return Checksum(algorithm)
    except BlobStoreError:
        raise ChunkedDecodeError(
            "InvalidRequest", f"Unsupported checksum algorithm {algorithm!r}") from None


def checksum_header_algorithm(header_name: str) -> str | None:
    """``x-amz-checksum-crc32c`` -> ``CRC32C``; None for other headers."""
    name = header_name.lower()
    if not name.startswith("x-amz-checksum-") or name in (
        "x-amz-checksum-algorithm", "x-amz-checksum-mode", "x-amz-checksum-type"
    ):
        return None
    alg = name[len("x-amz-checksum-") :].upper()
    return alg if alg in SUPPORTED_CHECKSUMS else None


# -- decoder -----------------------------------------------------------------------------


@dataclass
class ChunkSigning:
    """What chunk-signature verification needs from the verified seed request."""

    signing_key: bytes
    amz_date: str
    scope: str
    seed_signature: str


@dataclass
class TrailerResult:
    """Filled in when decoding finishes: the verified trailing checksum, if any."""

    algorithm: str | None = None
    value: str | None = None
    decoded_length: int = 0


class AwsChunkedDecoder:
    """Decode (and verify) an aws-chunked stream; iterate :meth:`decode` once."""

    def __init__(
        self,
        *,
        signing: ChunkSigning | None,
        expect_trailer: str | None,
        decoded_length: int | None,
        max_size: int | None = None,
    ) -> None:
        """``signing``: verify chunk signatures (signed streaming variants).

        ``expect_trailer``: the header named by ``x-amz-trailer`` (for example
        ``x-amz-checksum-crc32``); its value must arrive in the trailer and match.
        ``decoded_length``: ``x-amz-decoded-content-length``, checked at the end.
        """
        self.signing = signing
        self.decoded_length = decoded_length
        self.max_size = max_size
        self.result = TrailerResult()
        self._trailer_name = expect_trailer.lower().strip() if expect_trailer else None
        self._checksum: Checksum | None = None
        if self._trailer_name:
            alg = checksum_header_algorithm(self._trailer_name)
            if alg is None:
                raise ChunkedDecodeError(
                    "InvalidRequest", f"Unsupported x-amz-trailer {expect_trailer!r}"
                )
            self.result.algorithm = alg
            self._checksum = new_checksum(alg)
        self._prev_sig = signing.seed_signature if signing else ""

    # The parser keeps a small buffer of undecoded bytes; chunk *data* is passed
    # through as soon as it arrives, so memory never scales with the chunk size.
    def decode(self, source: Iterable[bytes | memoryview]) -> Iterator[bytes]:
        it = iter(source)
        buf = bytearray()
        total = 0

        def fill() -> bool:
            for piece in it:
                if piece:
                    buf.extend(piece)
                    return True
            return False

        def read_line(limit: int) -> bytes:
            while True:
                idx = buf.find(b"\r\n")
                if idx >= 0:
                    line = bytes(buf[:idx])
                    del buf[: idx + 2]
                    return line
                if len(buf) > limit:
                    raise ChunkedDecodeError("InvalidRequest", "aws-chunked line too long")
                if not fill():
                    raise ChunkedDecodeError(
                        "IncompleteBody", "The request body ended before the aws-chunked end"
                    )

        while True:
            header = read_line(MAX_HEADER_LINE)
            size_txt, _, ext = header.partition(b";")
            try:
                size = int(size_txt.strip(), 16)
            except ValueError:
                raise ChunkedDecodeError(
                    "InvalidRequest", f"Bad aws-chunked chunk size {size_txt[:32]!r}"
                ) from None
            if size < 0:
                raise ChunkedDecodeError("InvalidRequest", "Negative aws-chunked chunk size")
            chunk_sig = None
            if ext:
                name, _, val = ext.decode("latin-1").partition("=")
                if name.strip() == "chunk-signature":
                    chunk_sig = val.strip()
            if self.signing is not None and chunk_sig is None:
                raise ChunkedDecodeError(
                    "SignatureDoesNotMatch", "aws-chunked chunk without a chunk-signature", 403
                )
            hasher = hashlib.sha256() if self.signing is not None else None
            remaining = size
            total += size
            if self.max_size is not None and total > self.max_size:
                raise ChunkedDecodeError(
                    "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size"
                )
            if self.decoded_length is not None and total > self.decoded_length:
                raise ChunkedDecodeError(
                    "IncompleteBody", "Body is longer than x-amz-decoded-content-length"
                )
            while remaining:
                if not buf and not fill():
                    raise ChunkedDecodeError(
                        "IncompleteBody", "The request body ended in the middle of a chunk"
                    )
                take = bytes(buf[:remaining])
                del buf[: len(take)]
                remaining -= len(take)
                if hasher is not None:
                    hasher.update(take)
                if self._checksum is not None:
                    self._checksum.update(take)
                yield take
            if size and read_line(2) != b"":
                raise ChunkedDecodeError("InvalidRequest", "aws-chunked chunk not followed by CRLF")
            if self.signing is not None and hasher is not None:
                self._verify_chunk(chunk_sig or "", hasher.hexdigest())
            if size == 0:
                break
        self._finish_trailer(read_line)
        if self.decoded_length is not None and total != self.decoded_length:
            raise ChunkedDecodeError(
                "IncompleteBody",
                f"Decoded {total} bytes but x-amz-decoded-content-length is {self.decoded_length}",
            )
        self.result.decoded_length = total

    def _verify_chunk(self, given: str, data_sha: str) -> None:
        assert self.signing is not None
        sts = "\n".join([
            "AWS4-HMAC-SHA256-PAYLOAD", self.signing.amz_date, self.signing.scope,
            self._prev_sig, sigv4.EMPTY_SHA256, data_sha,
        ])
        expected = sigv4.sign(self.signing.signing_key, sts)
        if not hmac.compare_digest(expected, given):
            raise ChunkedDecodeError(
                "SignatureDoesNotMatch", "An aws-chunked chunk signature does not match", 403
            )
        self._prev_sig = expected

    def _finish_trailer(self, read_line) -> None:  # type: ignore[no-untyped-def]
        trailers: list[tuple[str, str]] = []
        trailer_sig: str | None = None
        used = 0
        while True:
            try:
                line = read_line(MAX_TRAILER_BYTES)
            except ChunkedDecodeError:
                # Some encoders omit the final blank line when there is no trailer.
                if self._trailer_name is None and not trailers:
                    break
                raise
            if line == b"":
                break
            used += len(line)
            if used > MAX_TRAILER_BYTES:
                raise ChunkedDecodeError("InvalidRequest", "aws-chunked trailer too large")
            name, sep, value = line.decode("latin-1").partition(":")
            if not sep:
                raise ChunkedDecodeError("InvalidRequest", "Malformed aws-chunked trailer line")
            name, value = name.strip().lower(), value.strip()
            if name == "x-amz-trailer-signature":
                trailer_sig = value
            else:
                trailers.append((name, value))
        if self._trailer_name is not None:
            got = dict(trailers).get(self._trailer_name)
            if got is None:
                raise ChunkedDecodeError(
                    "IncompleteBody", f"Trailer {self._trailer_name} was announced but not sent"
                )
            if self.signing is not None:
                canon = "".join(f"{n}:{v}\n" for n, v in trailers)
                sts = "\n".join([
                    "AWS4-HMAC-SHA256-TRAILER", self.signing.amz_date, self.signing.scope,
                    self._prev_sig, hashlib.sha256(canon.encode("utf-8")).hexdigest(),
                ])
                expected = sigv4.sign(self.signing.signing_key, sts)
                if trailer_sig is None or not hmac.compare_digest(expected, trailer_sig):
                    raise ChunkedDecodeError(
                        "SignatureDoesNotMatch", "The aws-chunked trailer signature does not match",
                        403,
                    )
            assert self._checksum is not None
            actual = self._checksum.b64()
            if actual != got:
                raise ChunkedDecodeError(
                    "BadDigest",
                    f"The {self.result.algorithm} you specified did not match the calculated "
                    "checksum.",
                )
            self.result.value = actual
