"""The blob-store contract, run against both backends: the filesystem and S3 (moto server)."""

from __future__ import annotations

import hashlib
import os

import pytest

from airegistry.storage.blobs import BlobStore
from airegistry.storage.blobs import errors as E
from airegistry.storage.checksums import compute_b64


@pytest.fixture(params=["fs", "s3"])
def store(request: pytest.FixtureRequest, tmp_path, monkeypatch) -> BlobStore:
    if request.param == "fs":
        from airegistry.storage.blobs.fs import FileBlobStore

        return FileBlobStore(tmp_path / "blobs")
    from airegistry.storage.blobs.s3 import S3BlobStore
    from tests.services import s3_env

    server = request.getfixturevalue("moto_s3")
    s3_env(monkeypatch, server)
    return S3BlobStore(server.new_bucket(), "registry/prefix", spool_dir=tmp_path,
                       multipart_threshold=5 << 20, multipart_chunksize=5 << 20)


def test_buckets(store: BlobStore) -> None:
    store.create_bucket("bkt-a")
    with pytest.raises(E.BucketAlreadyOwnedByYou):
        store.create_bucket("bkt-a")
    store.ensure_bucket("bkt-a")
    store.ensure_bucket("bkt-b")
    assert [b.name for b in store.list_buckets()] == ["bkt-a", "bkt-b"]
    assert store.has_bucket("bkt-a") and not store.has_bucket("bkt-c")
    with pytest.raises(E.NoSuchBucket):
        store.head_bucket("bkt-c")
    store.put_object("bkt-a", "k", b"x")
    with pytest.raises(E.BucketNotEmpty):
        store.delete_bucket("bkt-a")
    store.delete_object("bkt-a", "k")
    store.delete_bucket("bkt-a")
    assert not store.has_bucket("bkt-a")
    with pytest.raises(E.InvalidBucketName):
        store.create_bucket("Bad_Name")


def test_put_head_get_delete(store: BlobStore) -> None:
    store.create_bucket("bkt")
    data = os.urandom(300_000)
    info = store.put_object("bkt", "a/b.bin", data, content_type="application/x-test",
                            metadata={"Owner": "me"}, checksum=("CRC32", None))
    assert info.size == len(data)
    assert info.etag == hashlib.md5(data).hexdigest()
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.checksums == {"CRC32": compute_b64("CRC32", data)}
    head = store.head_object("bkt", "a/b.bin")
    assert (head.size, head.content_type, head.metadata) == (len(data), "application/x-test",
                                                             {"owner": "me"})
    assert store.read_bytes("bkt", "a/b.bin") == data
    _, stream = store.open_object("bkt", "a/b.bin", byte_range=(10, 19))
    with stream:
        assert stream.read() == data[10:20]
        assert stream.content_range == (10, 19)
    _, stream = store.open_object("bkt", "a/b.bin", byte_range=(len(data) - 5, None))
    with stream:
        assert stream.read() == data[-5:]
    with pytest.raises(E.InvalidRange):
        store.open_object("bkt", "a/b.bin", byte_range=(len(data), None))
    with pytest.raises(E.PreconditionFailed):
        store.open_object("bkt", "a/b.bin", if_match='"0000"')
    store.delete_object("bkt", "a/b.bin")
    store.delete_object("bkt", "a/b.bin")  # deleting a missing key succeeds
    with pytest.raises(E.NoSuchKey):
        store.head_object("bkt", "a/b.bin")
    with pytest.raises(E.NoSuchBucket):
        store.head_object("nope-bucket", "k")
    assert not store.exists("bkt", "a/b.bin")


def test_bad_digests_store_nothing(store: BlobStore) -> None:
    store.create_bucket("bkt")
    with pytest.raises(E.BadDigest):
        store.put_object("bkt", "k", b"hello", content_md5="AAAAAAAAAAAAAAAAAAAAAA==")
    with pytest.raises(E.XAmzContentSHA256Mismatch):
        store.put_object("bkt", "k", b"hello", sha256_hex="0" * 64)

    def broken():
        yield b"part"
        raise OSError("client went away")

    with pytest.raises(OSError):
        store.put_object("bkt", "k", broken())
    assert not store.exists("bkt", "k")
    with pytest.raises(E.InvalidObjectKey):
        store.put_object("bkt", "../escape", b"x")


def test_listing_with_continuation_and_delimiter(store: BlobStore) -> None:
    store.create_bucket("bkt")
    keys = [f"d/{i:03d}" for i in range(25)] + ["d/sub/x", "e", "f/g"]
    for k in keys:
        store.put_object("bkt", k, k.encode())
    seen, token = [], None
    while True:
        page = store.list_objects("bkt", prefix="d/", max_keys=7, continuation_token=token)
        seen += [o.key for o in page.contents]
        if not page.is_truncated:
            break
        token = page.next_continuation_token
    assert seen == sorted(k for k in keys if k.startswith("d/"))
    top = store.list_objects("bkt", delimiter="/")
    assert [o.key for o in top.contents] == ["e"] and top.common_prefixes == ["d/", "f/"]
    assert [o.key for o in store.list_objects("bkt", prefix="d/", start_after="d/020").contents
            ][:2] == ["d/021", "d/022"]
    page = store.list_objects("bkt", prefix="d/", max_keys=3)
    with pytest.raises(E.InvalidArgument):
        store.list_objects("bkt", prefix="e", continuation_token=page.next_continuation_token)
    with pytest.raises(E.InvalidArgument):
        store.list_objects("bkt", prefix="d/", continuation_token="forged")


def test_multipart(store: BlobStore) -> None:
    store.create_bucket("bkt")
    part = 5 * 1024 * 1024
    chunks = [os.urandom(part), os.urandom(part), os.urandom(1234)]
    upload = store.create_multipart_upload("bkt", "big.jsonl", content_type="application/jsonl")
    infos = [store.upload_part("bkt", "big.jsonl", upload, i + 1, c) for i, c in enumerate(chunks)]
    assert [p.part_number for p in store.list_parts("bkt", "big.jsonl", upload)] == [1, 2, 3]
    with pytest.raises(E.InvalidPart):
        store.complete_multipart_upload("bkt", "big.jsonl", upload, [(1, "0" * 32)])
    info = store.complete_multipart_upload(
        "bkt", "big.jsonl", upload, [(p.part_number, p.etag) for p in infos])
    data = b"".join(chunks)
    assert info.size == len(data) and info.sha256 == hashlib.sha256(data).hexdigest()
    assert store.read_bytes("bkt", "big.jsonl") == data
    doomed = store.create_multipart_upload("bkt", "gone")
    store.abort_multipart_upload("bkt", "gone", doomed)
    with pytest.raises(E.NoSuchUpload):
        store.list_parts("bkt", "gone", doomed)


def test_put_file_of_a_large_dataset(store: BlobStore, tmp_path) -> None:
    """Large files go up in parallel parts (S3: over the multipart threshold) and verify."""
    store.create_bucket("bkt")
    path = tmp_path / "big.jsonl"
    row = b'{"prompt": "p", "completion": "c"}\n'
    path.write_bytes(row * (13 * 1024 * 1024 // len(row)))
    info = store.put_file("bkt", "datasets/big.jsonl", path, content_type="application/jsonl")
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    store.verify_object("bkt", "datasets/big.jsonl")


def test_copy_keeps_or_replaces_metadata(store: BlobStore) -> None:
    store.create_bucket("bkt")
    store.put_object("bkt", "src", b"payload", metadata={"a": "1"}, content_type="text/plain")
    kept = store.copy_object("bkt", "src", "bkt", "dst")
    assert (kept.metadata, kept.content_type) == ({"a": "1"}, "text/plain")
    replaced = store.copy_object("bkt", "src", "bkt", "dst2", metadata={"b": "2"})
    assert replaced.metadata == {"b": "2"}
    assert store.read_bytes("bkt", "dst2") == b"payload"


def test_list_multipart_uploads_prefix_delimiter_and_paging(store: BlobStore) -> None:
    store.create_bucket("bkt")
    keys = ["a/1", "a/2", "a/2", "b/x/1", "b/y", "c", "ü/1"]
    made = [(key, store.create_multipart_upload("bkt", key)) for key in keys]
    listing = store.list_multipart_uploads("bkt")
    assert [u.key for u in listing.uploads] == sorted(keys, key=lambda k: k.encode())
    assert not listing.is_truncated and listing.common_prefixes == []
    assert {(u.key, u.upload_id) for u in listing.uploads} == set(made)
    assert all(u.initiated.tzinfo is not None for u in listing.uploads)

    assert [u.key for u in store.list_multipart_uploads("bkt", prefix="b/").uploads] == [
        "b/x/1", "b/y"]
    rolled = store.list_multipart_uploads("bkt", delimiter="/")
    assert rolled.common_prefixes == ["a/", "b/", "ü/"]
    assert [u.key for u in rolled.uploads] == ["c"]
    nested = store.list_multipart_uploads("bkt", prefix="b/", delimiter="/")
    assert nested.common_prefixes == ["b/x/"] and [u.key for u in nested.uploads] == ["b/y"]

    seen: list[tuple[str, str]] = []
    key_marker = upload_marker = None
    for _ in range(20):
        page = store.list_multipart_uploads("bkt", max_uploads=2, key_marker=key_marker,
                                            upload_id_marker=upload_marker)
        assert len(page.uploads) <= 2
        seen += [(u.key, u.upload_id) for u in page.uploads]
        if not page.is_truncated:
            break
        key_marker, upload_marker = page.next_key_marker, page.next_upload_id_marker
    assert sorted(seen) == sorted(made) and len(seen) == len(made)

    prefixes: list[str] = []
    key_marker = None
    for _ in range(10):
        page = store.list_multipart_uploads("bkt", delimiter="/", max_uploads=1,
                                            key_marker=key_marker)
        prefixes += page.common_prefixes + [u.key for u in page.uploads]
        if not page.is_truncated:
            break
        key_marker = page.next_key_marker
    assert prefixes == ["a/", "b/", "c", "ü/"]

    store.abort_multipart_upload("bkt", "c", dict(made)["c"])
    assert "c" not in [u.key for u in store.list_multipart_uploads("bkt").uploads]
    assert store.list_multipart_uploads("bkt", max_uploads=0).uploads == []
    with pytest.raises(E.NoSuchBucket):
        store.list_multipart_uploads("absent")


MIB = 1 << 20


def test_upload_part_copy(store: BlobStore) -> None:
    store.create_bucket("bkt")
    data = os.urandom(6 * MIB + 123)
    store.put_object("bkt", "src", data)
    upload = store.create_multipart_upload("bkt", "dst")
    first = store.upload_part_copy("bkt", "src", "bkt", "dst", upload, 1,
                                   byte_range=(0, 5 * MIB - 1))
    assert first.size == 5 * MIB
    assert first.etag == hashlib.md5(data[: 5 * MIB]).hexdigest()
    whole = store.upload_part_copy("bkt", "src", "bkt", "dst", upload, 2)
    assert whole.size == len(data)
    rest = store.upload_part_copy("bkt", "src", "bkt", "dst", upload, 3,
                                  byte_range=(5 * MIB, len(data) - 1))
    assert [p.part_number for p in store.list_parts("bkt", "dst", upload)] == [1, 2, 3]
    info = store.complete_multipart_upload("bkt", "dst", upload, [
        (1, first.etag), (2, whole.etag), (3, rest.etag)])
    assert store.read_bytes("bkt", "dst") == data[: 5 * MIB] + data + data[5 * MIB:]
    assert info.part_sizes == (5 * MIB, len(data), len(data) - 5 * MIB)
    assert store.head_object("bkt", "dst").part_sizes == info.part_sizes
    # errors: a range outside the source, a missing source, an unknown upload, If-Match
    upload2 = store.create_multipart_upload("bkt", "dst2")
    with pytest.raises(E.InvalidArgument):
        store.upload_part_copy("bkt", "src", "bkt", "dst2", upload2, 1,
                               byte_range=(0, len(data)))
    with pytest.raises(E.NoSuchKey):
        store.upload_part_copy("bkt", "absent", "bkt", "dst2", upload2, 1)
    with pytest.raises(E.NoSuchUpload):
        store.upload_part_copy("bkt", "src", "bkt", "dst2", "not-an-upload", 1)
    with pytest.raises(E.PreconditionFailed):
        store.upload_part_copy("bkt", "src", "bkt", "dst2", upload2, 1, if_match='"0000"')
    assert store.list_parts("bkt", "dst2", upload2) == []


def test_part_sizes_recorded_only_for_multipart(store: BlobStore) -> None:
    store.create_bucket("bkt")
    assert store.put_object("bkt", "one", b"abc").part_sizes == ()
    upload = store.create_multipart_upload("bkt", "mp")
    p1 = store.upload_part("bkt", "mp", upload, 1, b"a" * (5 * MIB))
    p2 = store.upload_part("bkt", "mp", upload, 2, b"b" * 10)
    store.complete_multipart_upload("bkt", "mp", upload, [(1, p1.etag), (2, p2.etag)])
    assert store.head_object("bkt", "mp").part_sizes == (5 * MIB, 10)
    assert "air-part-sizes" not in store.head_object("bkt", "mp").metadata
    # a copy is a new object written in one piece
    assert store.copy_object("bkt", "mp", "bkt", "copy").part_sizes == ()
