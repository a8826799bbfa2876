"""Bodies on their way to S3: spooled to a local temp file while every digest is computed.

S3 needs a body's length up front and the registry wants its sha256 recorded on the
object, which is only known once the body has been read: so the body is streamed to a
temp file (memory stays flat) and hashed on the way, the caller's digests are checked,
and only a body that passed is uploaded, with its sha256 in the object's metadata. A
body that fails, or a client that disconnects, never reaches S3.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from airegistry.storage import checksums as ck
from airegistry.storage.blobs.types import iter_body


@dataclass
class Spooled:
    """A body on local disk, with what it hashed to (``checks.Digests``)."""

    file: IO[bytes]
    size: int
    md5: bytes
    sha256: bytes
    checksum: tuple[str, bytes] | None


@contextlib.contextmanager
def spooled(body: Any, algorithm: str | None, spool_dir: Path | None) -> Iterator[Spooled]:
    """Spool ``body``; the temp file is removed when the block ends, whatever happens."""
    fd, path = tempfile.mkstemp(prefix=".airegistry-spool-", dir=spool_dir)
    with os.fdopen(fd, "w+b") as f:
        os.unlink(path)  # nothing to clean up after a crash
        md5 = hashlib.md5(usedforsecurity=False)
        sha = hashlib.sha256()
        extra = ck.new_checksum(algorithm) if algorithm else None
        size = 0
        for chunk in iter_body(body):
            md5.update(chunk)
            sha.update(chunk)
            if extra is not None:
                extra.update(chunk)
            f.write(chunk)
            size += len(chunk)
        f.flush()
        f.seek(0)
        checksum = (algorithm, extra.digest()) if extra is not None and algorithm else None
        yield Spooled(f, size, md5.digest(), sha.digest(), checksum)


def hash_file(path: str | os.PathLike[str], algorithm: str | None) -> Spooled:
    """Digests of a local file read in place (the file itself is uploaded afterwards)."""
    md5 = hashlib.md5(usedforsecurity=False)
    sha = hashlib.sha256()
    extra = ck.new_checksum(algorithm) if algorithm else None
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            md5.update(chunk)
            sha.update(chunk)
            if extra is not None:
                extra.update(chunk)
            size += len(chunk)
    checksum = (algorithm, extra.digest()) if extra is not None and algorithm else None
    return Spooled(None, size, md5.digest(), sha.digest(), checksum)  # type: ignore[arg-type]
