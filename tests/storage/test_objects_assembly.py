"""How bodies and multipart parts are written: one-pass assembly, reused block CRCs, O_DIRECT.

The store checks every part's recorded block CRCs while it joins the parts, reuses them as the
object's block table when the parts are block aligned, and writes through a page-aligned buffer
with O_DIRECT where the filesystem allows it.  These tests pin down each of those paths and the
fallbacks, by their results on disk and on read (never by timing).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import itertools
import os
import zlib
from pathlib import Path

import pytest

from airegistry.storage.blobs import errors as E
from airegistry.storage.blobs.fs import FileBlobStore, assembly, container, writer
from airegistry.storage.blobs.fs.container import BLOCK_SIZE

MIN = 64


@pytest.fixture
def store(tmp_path: Path) -> FileBlobStore:
    s = FileBlobStore(tmp_path / "blobs", min_part_size=MIN)
    s.create_bucket("bkt")
    return s


@pytest.fixture
def small_assembly_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several read steps per part, so the read-ahead pipeline crosses part boundaries."""
    monkeypatch.setattr(assembly, "ASSEMBLE_CHUNK", 2 * BLOCK_SIZE)


def _data(n: int, seed: int) -> bytes:
    out = bytearray()
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:n])


def _object_file(tmp_path: Path, key: str) -> Path:
    return tmp_path / "blobs" / "buckets" / "bkt" / "objects" / f"{key}@o"


def _stored_table(path: Path, size: int) -> bytes:
    raw = path.read_bytes()
    return raw[size : size + 4 * -(-size // BLOCK_SIZE)]


def _expected_table(data: bytes) -> bytes:
    return b"".join(
        zlib.crc32(data[i : i + BLOCK_SIZE]).to_bytes(4, "big")
        for i in range(0, len(data), BLOCK_SIZE)
    )


def _upload(store: FileBlobStore, key: str, chunks: list[bytes]) -> tuple[str, list[tuple[int, str]]]:
    uid = store.create_multipart_upload("bkt", key)
    parts = [
        (i + 1, store.upload_part("bkt", key, uid, i + 1, c).etag) for i, c in enumerate(chunks)
    ]
    return uid, parts


def _flip(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x5A
    path.write_bytes(bytes(raw))


@pytest.mark.usefixtures("small_assembly_chunk")
def test_aligned_parts_reuse_their_block_crcs(store: FileBlobStore, tmp_path: Path) -> None:
    chunks = [_data(5 * BLOCK_SIZE, 1), _data(3 * BLOCK_SIZE, 2), _data(BLOCK_SIZE // 3, 3)]
    uid, parts = _upload(store, "k", chunks)
    info = store.complete_multipart_upload("bkt", "k", uid, parts)
    data = b"".join(chunks)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.size == len(data)
    assert _stored_table(_object_file(tmp_path, "k"), len(data)) == _expected_table(data)
    assert store.read_bytes("bkt", "k") == data
    first, last = 5 * BLOCK_SIZE - 10, 5 * BLOCK_SIZE + 10  # across the part boundary
    _, stream = store.open_object("bkt", "k", byte_range=(first, last))
    with stream:
        assert stream.read() == data[first : last + 1]


@pytest.mark.usefixtures("small_assembly_chunk")
def test_unaligned_parts_get_a_table_of_the_joined_data(
    store: FileBlobStore, tmp_path: Path
) -> None:
    chunks = [_data(BLOCK_SIZE + 7, 4), _data(2 * BLOCK_SIZE + 1, 5), _data(100, 6)]
    uid, parts = _upload(store, "k", chunks)
    info = store.complete_multipart_upload("bkt", "k", uid, parts)
    data = b"".join(chunks)
    path = _object_file(tmp_path, "k")
    assert _stored_table(path, len(data)) == _expected_table(data)
    assert store.read_bytes("bkt", "k") == data
    # the table is the object's own: damage inside block 1 fails a ranged read of block 1
    _flip(path, BLOCK_SIZE + 3)
    _, stream = store.open_object("bkt", "k", byte_range=(BLOCK_SIZE, BLOCK_SIZE + 99))
    with stream, pytest.raises(E.CorruptObjectError, match="block 1"):
        stream.read()
    with pytest.raises(E.CorruptObjectError):
        store.verify_object("bkt", "k")
    assert info.sha256 == hashlib.sha256(data).hexdigest()


@pytest.mark.usefixtures("small_assembly_chunk")
def test_damaged_part_block_fails_completion_and_upload_survives(
    store: FileBlobStore, tmp_path: Path
) -> None:
    chunks = [_data(4 * BLOCK_SIZE, 7), _data(4 * BLOCK_SIZE, 8), _data(10, 9)]
    uid, parts = _upload(store, "k", chunks)
    part2 = tmp_path / "blobs" / "buckets" / "bkt" / "uploads" / uid / "part-00002"
    _flip(part2, 3 * BLOCK_SIZE + 5)  # inside block 3, in the second read step of the part
    with pytest.raises(E.CorruptObjectError, match=r"part 2 .*block 3 fails its CRC32"):
        store.complete_multipart_upload("bkt", "k", uid, parts)
    with pytest.raises(E.NoSuchKey):
        store.head_object("bkt", "k")
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []
    # the client re-sends the damaged part and completes
    redo = store.upload_part("bkt", "k", uid, 2, chunks[1])
    parts[1] = (2, redo.etag)
    info = store.complete_multipart_upload("bkt", "k", uid, parts)
    assert store.read_bytes("bkt", "k") == b"".join(chunks)
    assert info.size == sum(map(len, chunks))


def test_damaged_part_crc_table_fails_completion(store: FileBlobStore, tmp_path: Path) -> None:
    chunks = [_data(2 * BLOCK_SIZE, 10), _data(50, 11)]
    uid, parts = _upload(store, "k", chunks)
    part1 = tmp_path / "blobs" / "buckets" / "bkt" / "uploads" / uid / "part-00001"
    _flip(part1, 2 * BLOCK_SIZE + 4)  # first byte of the second CRC entry
    with pytest.raises(E.CorruptObjectError, match="block 1"):
        store.complete_multipart_upload("bkt", "k", uid, parts)


def _strip_block_table(path: Path) -> None:
    """Rewrite a part file the way parts were stored before block tables existed."""
    fd = os.open(path, os.O_RDONLY)
    try:
        doc, size = container.read_trailer(fd, "test")
    finally:
        os.close(fd)
    data = path.read_bytes()[:size]
    doc.pop("block_size")
    path.write_bytes(data + container.encode_trailer(doc))


def test_part_without_block_table_is_checked_by_sha256(
    store: FileBlobStore, tmp_path: Path
) -> None:
    chunks = [_data(BLOCK_SIZE, 12), _data(300, 13)]
    uid, parts = _upload(store, "k", chunks)
    part1 = tmp_path / "blobs" / "buckets" / "bkt" / "uploads" / uid / "part-00001"
    _strip_block_table(part1)
    info = store.complete_multipart_upload("bkt", "k", uid, parts)
    data = b"".join(chunks)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert _stored_table(_object_file(tmp_path, "k"), len(data)) == _expected_table(data)

    uid, parts = _upload(store, "k2", chunks)
    part1 = tmp_path / "blobs" / "buckets" / "bkt" / "uploads" / uid / "part-00001"
    _strip_block_table(part1)
    _flip(part1, 17)
    with pytest.raises(E.CorruptObjectError, match="sha256 differs"):
        store.complete_multipart_upload("bkt", "k2", uid, parts)


def test_bodies_in_odd_pieces_are_hashed_exactly(store: FileBlobStore) -> None:
    data = _data(3 * writer.HASH_CHUNK + 12345, 14)
    cuts = [0, 1, 4096, 4097, writer.HASH_CHUNK - 1, 2 * writer.HASH_CHUNK + 3, len(data)]
    pieces = [data[a:b] for a, b in itertools.pairwise(cuts)]
    info = store.put_object("bkt", "odd", iter(pieces), checksum=("CRC32", None))
    assert info.etag == hashlib.md5(data).hexdigest()
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert store.read_bytes("bkt", "odd") == data
    part = store.upload_part(
        "bkt", "odd", store.create_multipart_upload("bkt", "odd"), 1, iter(pieces)
    )
    assert part.etag == info.etag


def _refuse_direct_io(monkeypatch: pytest.MonkeyPatch) -> None:
    """A filesystem that accepts O_DIRECT on the fd but fails every direct read and write."""
    direct = getattr(os, "O_DIRECT", 0)

    def is_direct(fd: int) -> bool:
        return bool(direct) and bool(fcntl.fcntl(fd, fcntl.F_GETFL) & direct)

    real_write, real_preadv = os.write, os.preadv

    def write(fd: int, data: bytes | memoryview) -> int:
        if is_direct(fd):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    def preadv(fd: int, buffers: list[memoryview], offset: int) -> int:
        if is_direct(fd):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_preadv(fd, buffers, offset)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "preadv", preadv)


@pytest.mark.parametrize("mode", ["no-o-direct", "o-direct-refused"])
def test_writes_fall_back_to_normal_io(
    store: FileBlobStore, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    if mode == "no-o-direct":
        monkeypatch.setattr(writer, "set_direct", lambda fd, on: False)
        monkeypatch.setattr(assembly, "set_direct", lambda fd, on: False)
    else:
        _refuse_direct_io(monkeypatch)
    body = _data(writer.HASH_CHUNK + 5, 15)
    info = store.put_object("bkt", "p", body)
    assert info.sha256 == hashlib.sha256(body).hexdigest()
    assert store.read_bytes("bkt", "p") == body
    chunks = [_data(2 * BLOCK_SIZE, 16), _data(BLOCK_SIZE + 9, 17), _data(5, 18)]
    uid, parts = _upload(store, "m", chunks)
    info = store.complete_multipart_upload("bkt", "m", uid, parts)
    assert store.read_bytes("bkt", "m") == b"".join(chunks)
    assert info.sha256 == hashlib.sha256(b"".join(chunks)).hexdigest()
