"""Assembling a multipart upload: the parts joined into one object in a single checked pass."""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
from typing import IO, Any

from airegistry.storage.blobs.errors import CorruptObjectError
from airegistry.storage.blobs.fs.container import (
    BLOCK_SIZE,
    Written,
    block_table_size,
    encode_trailer,
)
from airegistry.storage.blobs.fs.fsio import pread_exact, pread_part, set_direct
from airegistry.storage.blobs.fs.writer import BlockCrcs, TempWriter, release
from airegistry.storage.checksums import crc32

ASSEMBLE_CHUNK = 4 << 20
"""Bytes read per step when joining multipart parts (a whole number of blocks)."""


def assemble_parts(
    path: str,
    bucket: str,
    key: str,
    upload_id: str,
    opened: list[tuple[IO[bytes], dict[str, Any], int]],
    trailer: Any,
) -> Written:
    """Join the parts' data into one fsynced temp file at ``path`` in a single pass.

    Only what completion needs is computed: the ETag and composite checksum come from the
    parts' recorded digests, so the data is read once (ASSEMBLE_CHUNK at a time) for two
    jobs.  (1) The sha256 of the whole object, which reads of the object verify against.
    (2) Every
    256 KiB block of every part is checked against the CRC32 recorded when the part
    arrived, so a part file damaged on disk fails the completion (CorruptObjectError, the
    upload is kept and the part can be sent again) instead of being baked into an object
    whose recorded sha256 would then vouch for the damage.  When every part but the last is
    a whole number of blocks (boto3's 8 MiB parts are), the checked part CRCs are exactly
    the object's block table; otherwise the table is computed over the joined data.
    """
    sha = hashlib.sha256()
    aligned = all(size % BLOCK_SIZE == 0 for _, _, size in opened[:-1]) and all(
        pdoc.get("block_size") == BLOCK_SIZE for _, pdoc, _ in opened
    )
    table = bytearray()
    blocks = None if aligned else BlockCrcs()

    def corrupt(pdoc: dict[str, Any], problem: str) -> CorruptObjectError:
        return CorruptObjectError(
            f"upload {upload_id} part {pdoc.get('part_number')} for s3://{bucket}/{key} is "
            f"corrupt on disk ({problem}); upload the part again",
            bucket=bucket,
            key=key,
        )

    # every part's recorded block CRCs (parts written before block tables existed are
    # checked by their sha256 instead), read before the data switches to O_DIRECT
    recorded = [
        pread_exact(f.fileno(), block_table_size(size), size)
        if pdoc.get("block_size") == BLOCK_SIZE
        else None
        for f, pdoc, size in opened
    ]
    # parts are read once and then deleted: bypass the page cache for them too
    direct = [set_direct(f.fileno(), True) for f, _, _ in opened]
    steps = [
        (index, offset, min(ASSEMBLE_CHUNK, size - offset))
        for index, (_, _, size) in enumerate(opened)
        for offset in range(0, size, ASSEMBLE_CHUNK)
    ]
    # one page-aligned buffer (O_DIRECT reads need it); read, check, hash and write take
    # turns: a read-ahead and sha256 on helper threads measured no faster on the whole
    # (benchmarks/bench_storage.py, docs/storage.md), so the plain loop stays
    mem = mmap.mmap(-1, ASSEMBLE_CHUNK)
    buf = memoryview(mem)
    out = TempWriter(path, ASSEMBLE_CHUNK)
    part_sha: Any = None
    try:
        for index, offset, n in steps:
            f, pdoc, size = opened[index]
            got, direct[index] = pread_part(f.fileno(), buf, n, offset, direct[index])
            if got != n:
                raise corrupt(pdoc, f"data ends at byte {offset + got} of {size}")
            chunk = buf[:got]
            sha.update(chunk)
            table_in = recorded[index]
            if offset == 0:
                part_sha = None if table_in is not None else hashlib.sha256()
            if table_in is not None:
                for i in range(0, got, BLOCK_SIZE):
                    crc = crc32(chunk[i : i + BLOCK_SIZE]).to_bytes(4, "big")
                    block = (offset + i) // BLOCK_SIZE
                    if table_in[4 * block : 4 * block + 4] != crc:
                        raise corrupt(pdoc, f"block {block} fails its CRC32")
                    if blocks is None:
                        table += crc
            elif part_sha is not None:
                part_sha.update(chunk)
            if blocks is not None:
                blocks.update(chunk)
            out.write(chunk, page_aligned=True)
            if (
                offset + got == size
                and part_sha is not None
                and part_sha.hexdigest() != pdoc.get("sha256")
            ):
                raise corrupt(pdoc, "its sha256 differs from the one recorded at upload")
        written = Written(
            path=path,
            size=sum(size for _, _, size in opened),
            md5=b"",
            sha256=sha.digest(),
            checksum=None,
        )
        doc = trailer(written)
        doc["block_size"] = BLOCK_SIZE
        table_bytes = blocks.finish() if blocks is not None else bytes(table)
        out.finish(table_bytes + encode_trailer(doc))
    except BaseException:
        out.close()
        release(buf, mem)
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    out.close()
    release(buf, mem)
    return written

