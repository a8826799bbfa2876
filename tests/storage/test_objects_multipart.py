"""Multipart uploads: happy path, checksums, and every S3 error the operations can raise."""

from __future__ import annotations

import base64
import hashlib
import zlib
from pathlib import Path

import pytest

from airegistry.storage.blobs import errors as E
from airegistry.storage.blobs.fs import FileBlobStore

MIN = 64  # min_part_size used by these tests


@pytest.fixture
def store(tmp_path: Path) -> FileBlobStore:
    s = FileBlobStore(tmp_path / "blobs", min_part_size=MIN)
    s.create_bucket("bkt")
    return s


def _uploads_dir(tmp_path: Path) -> Path:
    return tmp_path / "blobs" / "buckets" / "bkt" / "uploads"


def test_happy_path(store: FileBlobStore, tmp_path: Path) -> None:
    uid = store.create_multipart_upload(
        "bkt", "big/file.bin", content_type="application/x-big", metadata={"Who": "me"}
    )
    chunks = [bytes([i]) * (MIN + i) for i in range(3)] + [b"tail"]
    parts = [store.upload_part("bkt", "big/file.bin", uid, i + 1, c) for i, c in enumerate(chunks)]
    assert [p.part_number for p in parts] == [1, 2, 3, 4]
    assert parts[0].etag == hashlib.md5(chunks[0]).hexdigest()
    assert parts[0].size == len(chunks[0])
    assert parts[0].last_modified.tzinfo is not None
    assert store.list_parts("bkt", "big/file.bin", uid) == parts
    # the object does not exist until completion
    with pytest.raises(E.NoSuchKey):
        store.head_object("bkt", "big/file.bin")
    info = store.complete_multipart_upload(
        "bkt", "big/file.bin", uid, [(p.part_number, f'"{p.etag}"') for p in parts]
    )
    data = b"".join(chunks)
    digests = b"".join(hashlib.md5(c).digest() for c in chunks)
    assert info.etag == f"{hashlib.md5(digests).hexdigest()}-4"
    assert info.size == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert (info.content_type, info.metadata) == ("application/x-big", {"who": "me"})
    assert store.head_object("bkt", "big/file.bin") == info
    assert store.read_bytes("bkt", "big/file.bin") == data
    store.verify_object("bkt", "big/file.bin")
    assert list(_uploads_dir(tmp_path).iterdir()) == []
    with pytest.raises(E.NoSuchUpload):
        store.list_parts("bkt", "big/file.bin", uid)


def test_reuploaded_part_replaces_and_subset_completes(store: FileBlobStore) -> None:
    uid = store.create_multipart_upload("bkt", "k")
    store.upload_part("bkt", "k", uid, 1, b"a" * MIN)
    p1 = store.upload_part("bkt", "k", uid, 1, b"b" * MIN)
    store.upload_part("bkt", "k", uid, 2, b"skipped" * 20)
    p3 = store.upload_part("bkt", "k", uid, 3, b"end")
    assert len(store.list_parts("bkt", "k", uid)) == 3
    store.complete_multipart_upload("bkt", "k", uid, [(1, p1.etag), (3, p3.etag)])
    assert store.read_bytes("bkt", "k") == b"b" * MIN + b"end"


def test_single_small_part_is_allowed(store: FileBlobStore) -> None:
    uid = store.create_multipart_upload("bkt", "k")
    p = store.upload_part("bkt", "k", uid, 1, b"tiny")
    info = store.complete_multipart_upload("bkt", "k", uid, [(1, p.etag)])
    assert info.etag.endswith("-1")
    assert store.read_bytes("bkt", "k") == b"tiny"


def test_composite_checksum(store: FileBlobStore) -> None:
    uid = store.create_multipart_upload("bkt", "c", checksum_algorithm="crc32")
    chunks = [b"x" * MIN, b"y" * 10]
    parts = []
    for i, c in enumerate(chunks):
        want = base64.b64encode(zlib.crc32(c).to_bytes(4, "big")).decode()
        expected = want if i == 0 else None  # verified for part 1, computed for part 2
        p = store.upload_part("bkt", "c", uid, i + 1, c, checksum=("CRC32", expected))
        assert p.checksums == {"CRC32": want}
        parts.append(p)
    info = store.complete_multipart_upload(
        "bkt", "c", uid, [(p.part_number, p.etag) for p in parts]
    )
    raw = b"".join(zlib.crc32(c).to_bytes(4, "big") for c in chunks)
    composite = base64.b64encode(zlib.crc32(raw).to_bytes(4, "big")).decode()
    assert info.checksums == {"CRC32": f"{composite}-2"}
    # copying gives a full-object checksum of the same algorithm
    copied = store.copy_object("bkt", "c", "bkt", "c2")
    whole = base64.b64encode(zlib.crc32(b"".join(chunks)).to_bytes(4, "big")).decode()
    assert copied.checksums == {"CRC32": whole}
    assert copied.etag == hashlib.md5(b"".join(chunks)).hexdigest()


def test_part_digest_errors(store: FileBlobStore, tmp_path: Path) -> None:
    uid = store.create_multipart_upload("bkt", "k", checksum_algorithm="SHA256")
    good_md5 = base64.b64encode(hashlib.md5(b"data").digest()).decode()
    with pytest.raises(E.BadDigest):
        store.upload_part("bkt", "k", uid, 1, b"DATA", content_md5=good_md5)
    with pytest.raises(E.XAmzContentSHA256Mismatch):
        store.upload_part("bkt", "k", uid, 1, b"DATA", sha256_hex=hashlib.sha256(b"d").hexdigest())
    wrong = base64.b64encode(hashlib.sha256(b"nope").digest()).decode()
    with pytest.raises(E.InvalidChecksum):
        store.upload_part("bkt", "k", uid, 1, b"DATA", checksum=("SHA256", wrong))
    with pytest.raises(E.InvalidRequest):  # the upload was created for SHA256
        store.upload_part("bkt", "k", uid, 1, b"DATA", checksum=("CRC32", None))
    assert store.list_parts("bkt", "k", uid) == []
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


@pytest.mark.parametrize("number", [0, -1, 10_001, True, "1", 1.0])
def test_part_number_out_of_range(store: FileBlobStore, number: object) -> None:
    uid = store.create_multipart_upload("bkt", "k")
    with pytest.raises(E.InvalidArgument, match="Part number"):
        store.upload_part("bkt", "k", uid, number, b"x")  # type: ignore[arg-type]


def test_boundary_part_numbers(store: FileBlobStore) -> None:
    uid = store.create_multipart_upload("bkt", "k")
    a = store.upload_part("bkt", "k", uid, 1, b"a" * MIN)
    z = store.upload_part("bkt", "k", uid, 10_000, b"z")
    store.complete_multipart_upload("bkt", "k", uid, [(1, a.etag), (10_000, z.etag)])
    assert store.read_bytes("bkt", "k") == b"a" * MIN + b"z"


def test_no_such_upload(store: FileBlobStore) -> None:
    uid = store.create_multipart_upload("bkt", "k")
    for bad_id in ("0" * 32, "../../etc", "", "X" * 32, uid + "0"):
        with pytest.raises(E.NoSuchUpload):
            store.upload_part("bkt", "k", bad_id, 1, b"x")
        with pytest.raises(E.NoSuchUpload):
            store.list_parts("bkt", "k", bad_id)
        with pytest.raises(E.NoSuchUpload):
            store.complete_multipart_upload("bkt", "k", bad_id, [(1, "00")])
        with pytest.raises(E.NoSuchUpload):
            store.abort_multipart_upload("bkt", "k", bad_id)
    # the id is bound to its key
    with pytest.raises(E.NoSuchUpload):
        store.upload_part("bkt", "other-key", uid, 1, b"x")
    with pytest.raises(E.NoSuchBucket):
        store.upload_part("nobkt", "k", uid, 1, b"x")


def test_abort(store: FileBlobStore, tmp_path: Path) -> None:
    uid = store.create_multipart_upload("bkt", "k")
    store.upload_part("bkt", "k", uid, 1, b"x" * MIN)
    store.abort_multipart_upload("bkt", "k", uid)
    assert list(_uploads_dir(tmp_path).iterdir()) == []
    with pytest.raises(E.NoSuchUpload):
        store.abort_multipart_upload("bkt", "k", uid)
    with pytest.raises(E.NoSuchUpload):
        store.upload_part("bkt", "k", uid, 2, b"late")
    with pytest.raises(E.NoSuchKey):
        store.head_object("bkt", "k")
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


def test_complete_errors(store: FileBlobStore) -> None:
    uid = store.create_multipart_upload("bkt", "k")
    p1 = store.upload_part("bkt", "k", uid, 1, b"1" * MIN)
    p2 = store.upload_part("bkt", "k", uid, 2, b"2" * (MIN - 1))
    p3 = store.upload_part("bkt", "k", uid, 3, b"3")
    with pytest.raises(E.InvalidPartOrder):
        store.complete_multipart_upload("bkt", "k", uid, [(2, p2.etag), (1, p1.etag)])
    with pytest.raises(E.InvalidPartOrder):
        store.complete_multipart_upload("bkt", "k", uid, [(1, p1.etag), (1, p1.etag)])
    with pytest.raises(E.InvalidPart) as missing:
        store.complete_multipart_upload("bkt", "k", uid, [(1, p1.etag), (4, p3.etag)])
    assert missing.value.details["PartNumber"] == "4"
    with pytest.raises(E.InvalidPart):
        store.complete_multipart_upload("bkt", "k", uid, [(1, p2.etag), (3, p3.etag)])
    with pytest.raises(E.InvalidPart):
        store.complete_multipart_upload("bkt", "k", uid, [(0, p1.etag)])
    with pytest.raises(E.InvalidPart):
        store.complete_multipart_upload("bkt", "k", uid, [(1, None)])  # type: ignore[list-item]
    with pytest.raises(E.EntityTooSmall) as small:
        store.complete_multipart_upload("bkt", "k", uid, [(1, p1.etag), (2, p2.etag), (3, p3.etag)])
    assert small.value.details["ProposedSize"] == str(MIN - 1)
    assert small.value.details["MinSizeAllowed"] == str(MIN)
    with pytest.raises(E.InvalidRequest):
        store.complete_multipart_upload("bkt", "k", uid, [])
    # failed completions leave the upload usable: fix the list and complete
    with pytest.raises(E.NoSuchKey):
        store.head_object("bkt", "k")
    assert len(store.list_parts("bkt", "k", uid)) == 3
    info = store.complete_multipart_upload("bkt", "k", uid, [(1, p1.etag), (3, p3.etag)])
    assert info.size == MIN + 1
    with pytest.raises(E.NoSuchUpload):
        store.complete_multipart_upload("bkt", "k", uid, [(1, p1.etag), (3, p3.etag)])


def test_corrupt_part_is_not_assembled(store: FileBlobStore, tmp_path: Path) -> None:
    uid = store.create_multipart_upload("bkt", "k")
    p1 = store.upload_part("bkt", "k", uid, 1, b"q" * MIN)
    part_file = _uploads_dir(tmp_path) / uid / "part-00001"
    raw = bytearray(part_file.read_bytes())
    raw[3] ^= 0xFF
    part_file.write_bytes(bytes(raw))
    with pytest.raises(E.CorruptObjectError):
        store.complete_multipart_upload("bkt", "k", uid, [(1, p1.etag)])
    with pytest.raises(E.NoSuchKey):
        store.head_object("bkt", "k")
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


def test_failed_part_body_leaves_no_part(store: FileBlobStore, tmp_path: Path) -> None:
    uid = store.create_multipart_upload("bkt", "k")

    def body():
        yield b"x" * 10
        raise ConnectionResetError("client gone")

    with pytest.raises(ConnectionResetError):
        store.upload_part("bkt", "k", uid, 1, body())
    assert store.list_parts("bkt", "k", uid) == []
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


def test_deleting_bucket_discards_pending_uploads(store: FileBlobStore) -> None:
    uid = store.create_multipart_upload("bkt", "k")
    store.upload_part("bkt", "k", uid, 1, b"x")
    store.delete_bucket("bkt")
    store.create_bucket("bkt")
    with pytest.raises(E.NoSuchUpload):
        store.list_parts("bkt", "k", uid)


def test_create_validates_inputs(store: FileBlobStore) -> None:
    with pytest.raises(E.InvalidObjectKey):
        store.create_multipart_upload("bkt", "../escape")
    with pytest.raises(E.InvalidRequest):
        store.create_multipart_upload("bkt", "k", checksum_algorithm="MD5")
    with pytest.raises(E.MetadataTooLarge):
        store.create_multipart_upload("bkt", "k", metadata={"x": "y" * 3000})
