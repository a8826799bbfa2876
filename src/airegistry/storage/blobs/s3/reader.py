"""The verified read stream of the S3 backend.

A full read is hashed as it streams and its last bytes are handed out only once the
sha256 matches the one the registry recorded in the object's metadata when it wrote it:
an object damaged, truncated or replaced behind the registry's back (someone else's
PutObject, which does not carry the registry's record) ends in ``CorruptObjectError``
instead of a complete-looking body. Ranged reads cannot be checked against a whole-object
digest and are served as S3 returns them.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator
from typing import Any

from airegistry.storage.blobs.errors import BlobStoreError, CorruptObjectError
from airegistry.storage.blobs.types import CHUNK_SIZE, ObjectInfo


class S3ObjectStream(io.RawIOBase):
    def __init__(self, body: Any, info: ObjectInfo, length: int, *,
                 content_range: tuple[int, int] | None, verify: bool,
                 translate: Callable[[BaseException], BlobStoreError]) -> None:
        super().__init__()
        self._body = body
        self.info = info
        self.content_range = content_range
        self.content_length = length
        self._remaining = length
        self._translate = translate
        self._hash = hashlib.sha256() if verify else None
        if verify and not info.sha256:
            body.close()
            raise CorruptObjectError(
                f"s3://{info.bucket}/{info.key} carries no sha256 recorded by the registry: "
                "it was written or replaced outside the registry, so it is not served",
                bucket=info.bucket, key=info.key,
            )

    def readable(self) -> bool:
        return True

    def _pull(self, n: int) -> bytes:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return self._body.read(n)
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(exc) from None

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError("I/O operation on closed object stream")
        if size is None or size < 0:
            return self.readall()
        n = min(size, self._remaining)
        if n == 0:
            self._finish()
            return b""
        data = self._pull(n)
        if not data:
            raise CorruptObjectError(
                f"s3://{self.info.bucket}/{self.info.key}: the S3 body ended "
                f"{self._remaining} bytes early", bucket=self.info.bucket, key=self.info.key)
        self._remaining -= len(data)
        if self._hash is not None:
            self._hash.update(data)
        if self._remaining == 0:
            self._finish()  # before returning the last bytes: never complete a corrupt body
        return data

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        parts = []
        while chunk := self.read(CHUNK_SIZE):
            parts.append(chunk)
        return b"".join(parts)

    def _finish(self) -> None:
        if self._hash is None:
            return
        actual, self._hash = self._hash.hexdigest(), None
        if actual != self.info.sha256:
            self._remaining = 0
            raise CorruptObjectError(
                f"s3://{self.info.bucket}/{self.info.key} is corrupt or was changed behind the "
                f"registry's back: sha256 of the stored data is {actual}, recorded "
                f"{self.info.sha256}", bucket=self.info.bucket, key=self.info.key)

    def __iter__(self) -> Iterator[bytes]:  # type: ignore[override]
        self._checkClosed()
        return self

    def __next__(self) -> bytes:
        chunk = self.read(CHUNK_SIZE)
        if not chunk:
            raise StopIteration
        return chunk

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()
