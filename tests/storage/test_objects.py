"""Core object-store behaviour: buckets, put/head/get, digests, ranges, conditions, corruption."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import zlib
from datetime import timezone
from pathlib import Path

import pytest

from airegistry.storage.blobs import errors as E
from airegistry.storage.blobs.fs import FileBlobStore
from airegistry.storage.blobs.fs.container import BLOCK_SIZE
from airegistry.storage.blobs.types import CHUNK_SIZE
from airegistry.storage.checksums import compute_b64


@pytest.fixture
def store(tmp_path: Path) -> FileBlobStore:
    s = FileBlobStore(tmp_path / "blobs")
    s.create_bucket("bkt")
    return s


def _md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def _visible_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "buckets").rglob("*") if p.is_file())


def _temp_files(root: Path) -> list[Path]:
    return sorted((root / "tmp").iterdir())


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("cls", "code", "status"),
    [
        (E.NoSuchBucket, "NoSuchBucket", 404),
        (E.NoSuchKey, "NoSuchKey", 404),
        (E.BucketAlreadyOwnedByYou, "BucketAlreadyOwnedByYou", 409),
        (E.BucketNotEmpty, "BucketNotEmpty", 409),
        (E.InvalidBucketName, "InvalidBucketName", 400),
        (E.InvalidObjectKey, "InvalidArgument", 400),
        (E.KeyTooLongError, "KeyTooLongError", 400),
        (E.InvalidRange, "InvalidRange", 416),
        (E.PreconditionFailed, "PreconditionFailed", 412),
        (E.NoSuchUpload, "NoSuchUpload", 404),
        (E.InvalidPart, "InvalidPart", 400),
        (E.InvalidPartOrder, "InvalidPartOrder", 400),
        (E.EntityTooSmall, "EntityTooSmall", 400),
        (E.BadDigest, "BadDigest", 400),
        (E.InvalidDigest, "InvalidDigest", 400),
        (E.XAmzContentSHA256Mismatch, "XAmzContentSHA256Mismatch", 400),
        (E.InvalidChecksum, "BadDigest", 400),
        (E.InvalidArgument, "InvalidArgument", 400),
        (E.InvalidRequest, "InvalidRequest", 400),
        (E.MetadataTooLarge, "MetadataTooLarge", 400),
        (E.CorruptObjectError, "InternalError", 500),
    ],
)
def test_error_classes_carry_s3_code_and_status(cls: type, code: str, status: int) -> None:
    assert issubclass(cls, E.BlobStoreError)
    err = cls("boom", bucket="b", key="k/1")
    assert (err.code, err.status) == (code, status)
    assert err.resource == "/b/k/1"
    assert "boom" in str(err)


def test_error_hierarchy_lets_callers_catch_families() -> None:
    assert issubclass(E.InvalidChecksum, E.BadDigest)
    assert issubclass(E.KeyTooLongError, E.InvalidObjectKey)
    assert issubclass(E.InvalidObjectKey, E.InvalidArgument)
    assert not issubclass(E.CorruptObjectError, E.NoSuchKey)


# ----------------------------------------------------------------------------- buckets


def test_bucket_lifecycle(tmp_path: Path) -> None:
    s = FileBlobStore(tmp_path)
    info = s.create_bucket("data-1.example")
    assert info.name == "data-1.example"
    assert info.created.tzinfo is not None
    assert s.head_bucket("data-1.example") == info
    s.create_bucket("aaa")
    assert [b.name for b in s.list_buckets()] == ["aaa", "data-1.example"]
    with pytest.raises(E.BucketAlreadyOwnedByYou) as ei:
        s.create_bucket("aaa")
    assert ei.value.bucket == "aaa"
    s.delete_bucket("aaa")
    with pytest.raises(E.NoSuchBucket):
        s.head_bucket("aaa")
    with pytest.raises(E.NoSuchBucket):
        s.delete_bucket("aaa")
    assert [b.name for b in s.list_buckets()] == ["data-1.example"]


def test_ensure_bucket_is_idempotent(tmp_path: Path) -> None:
    s = FileBlobStore(tmp_path)
    first = s.ensure_bucket("reg")
    assert s.ensure_bucket("reg") == first


@pytest.mark.parametrize(
    "name",
    [
        "ab",
        "a" * 64,
        "Upper",
        "under_score",
        "-lead",
        "trail-",
        ".dot",
        "dot.",
        "two..dots",
        "192.168.5.4",
        "xn--punycode",
        "sthree-x",
        "amzn-s3-demo-x",
        "name-s3alias",
        "name--ol-s3",
        "name.mrap",
        "name--x-s3",
        "has space",
        "../etc",
        "",
        "a/b",
    ],
)
def test_invalid_bucket_names(tmp_path: Path, name: str) -> None:
    s = FileBlobStore(tmp_path)
    with pytest.raises(E.InvalidBucketName):
        s.create_bucket(name)
    assert s.list_buckets() == []


def test_non_string_bucket_name(tmp_path: Path) -> None:
    with pytest.raises(E.InvalidBucketName):
        FileBlobStore(tmp_path).create_bucket(123)  # type: ignore[arg-type]


def test_delete_bucket_refuses_when_objects_exist(store: FileBlobStore) -> None:
    store.put_object("bkt", "deep/er/key", b"x")
    with pytest.raises(E.BucketNotEmpty):
        store.delete_bucket("bkt")
    store.delete_object("bkt", "deep/er/key")
    store.delete_bucket("bkt")
    assert store.list_buckets() == []


def test_operations_on_missing_bucket(store: FileBlobStore) -> None:
    for call in (
        lambda: store.put_object("nope", "k", b"x"),
        lambda: store.head_object("nope", "k"),
        lambda: store.open_object("nope", "k"),
        lambda: store.delete_object("nope", "k"),
        lambda: store.list_objects("nope"),
        lambda: store.create_multipart_upload("nope", "k"),
        lambda: store.copy_object("bkt", "k", "nope", "k"),
    ):
        with pytest.raises(E.NoSuchBucket):
            call()


# ----------------------------------------------------------------------------- put / head / get


def test_put_records_everything(store: FileBlobStore) -> None:
    data = b"hello world"
    info = store.put_object(
        "bkt", "dir/hello.txt", data, content_type="text/plain", metadata={"Owner": "me"}
    )
    assert info.size == len(data)
    assert info.etag == hashlib.md5(data).hexdigest()
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.content_type == "text/plain"
    assert info.metadata == {"owner": "me"}  # S3 lower-cases user metadata names
    assert info.checksums == {}
    assert info.last_modified.tzinfo is not None
    assert info.last_modified.utcoffset() == timezone.utc.utcoffset(None)
    assert store.head_object("bkt", "dir/hello.txt") == info
    assert store.read_bytes("bkt", "dir/hello.txt") == data


def test_default_content_type_and_empty_object(store: FileBlobStore) -> None:
    info = store.put_object("bkt", "empty", b"")
    assert info.size == 0
    assert info.content_type == "binary/octet-stream"
    assert info.etag == hashlib.md5(b"").hexdigest()
    assert store.read_bytes("bkt", "empty") == b""


@pytest.mark.parametrize("kind", ["bytes", "bytearray", "memoryview", "file", "iterable", "gen"])
def test_body_shapes(store: FileBlobStore, kind: str) -> None:
    data = os.urandom(CHUNK_SIZE * 2 + 17)
    body: object
    if kind == "bytes":
        body = data
    elif kind == "bytearray":
        body = bytearray(data)
    elif kind == "memoryview":
        body = memoryview(data)
    elif kind == "file":
        body = io.BytesIO(data)
    elif kind == "iterable":
        body = [data[:5], b"", data[5:1000], data[1000:]]
    else:
        body = (data[i : i + 4096] for i in range(0, len(data), 4096))
    info = store.put_object("bkt", "k", body)  # type: ignore[arg-type]
    assert info.size == len(data)
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert store.read_bytes("bkt", "k") == data


def test_put_file(store: FileBlobStore, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(b"abc" * 1000)
    info = store.put_file("bkt", "f.bin", src, content_type="application/x-test")
    assert info.size == 3000
    assert info.content_type == "application/x-test"
    assert store.read_bytes("bkt", "f.bin") == src.read_bytes()


def test_overwrite_last_writer_wins(store: FileBlobStore) -> None:
    store.put_object("bkt", "k", b"one", metadata={"v": "1"})
    info = store.put_object("bkt", "k", b"two-two")
    assert store.read_bytes("bkt", "k") == b"two-two"
    assert store.head_object("bkt", "k") == info
    assert info.metadata == {}


def test_wrong_body_types_leave_nothing(store: FileBlobStore, tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        store.put_object("bkt", "k", "text is not bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.put_object("bkt", "k", [b"ok", "bad"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        store.put_object("bkt", "k", 42)  # type: ignore[arg-type]
    with pytest.raises(E.NoSuchKey):
        store.head_object("bkt", "k")
    assert _temp_files(tmp_path / "blobs") == []


def test_body_failing_midway_leaves_nothing_and_keeps_old_version(
    store: FileBlobStore, tmp_path: Path
) -> None:
    store.put_object("bkt", "k", b"old")

    class Disconnect(Exception):
        pass

    def body():
        yield b"x" * CHUNK_SIZE
        yield b"y" * 100
        raise Disconnect("client went away")

    with pytest.raises(Disconnect):
        store.put_object("bkt", "k", body())
    with pytest.raises(Disconnect):
        store.put_object("bkt", "fresh", body())
    assert store.read_bytes("bkt", "k") == b"old"
    with pytest.raises(E.NoSuchKey):
        store.head_object("bkt", "fresh")
    assert _temp_files(tmp_path / "blobs") == []
    assert [o.key for o in store.list_objects("bkt").contents] == ["k"]


# ----------------------------------------------------------------------------- digests


def test_content_md5(store: FileBlobStore, tmp_path: Path) -> None:
    data = b"payload"
    assert store.put_object("bkt", "k", data, content_md5=_md5_b64(data)).size == 7
    with pytest.raises(E.BadDigest) as ei:
        store.put_object("bkt", "k", b"other", content_md5=_md5_b64(data))
    assert ei.value.code == "BadDigest"
    assert ei.value.key == "k"
    with pytest.raises(E.InvalidDigest):
        store.put_object("bkt", "k", data, content_md5="not base64!")
    with pytest.raises(E.InvalidDigest):
        store.put_object("bkt", "k", data, content_md5=base64.b64encode(b"short").decode())
    assert store.read_bytes("bkt", "k") == data  # failed puts changed nothing
    assert _temp_files(tmp_path / "blobs") == []


def test_sha256_header(store: FileBlobStore) -> None:
    data = b"payload"
    good = hashlib.sha256(data).hexdigest()
    store.put_object("bkt", "k", data, sha256_hex=good.upper())
    with pytest.raises(E.XAmzContentSHA256Mismatch):
        store.put_object("bkt", "k2", data, sha256_hex=hashlib.sha256(b"x").hexdigest())
    with pytest.raises(E.InvalidArgument):
        store.put_object("bkt", "k2", data, sha256_hex="UNSIGNED-PAYLOAD")
    with pytest.raises(E.NoSuchKey):
        store.head_object("bkt", "k2")


def _reference(alg: str, data: bytes) -> str:
    if alg == "CRC32":
        raw = zlib.crc32(data).to_bytes(4, "big")
    elif alg == "CRC32C":
        from awscrt import checksums

        raw = checksums.crc32c(data).to_bytes(4, "big")
    elif alg == "CRC64NVME":
        from awscrt import checksums

        raw = checksums.crc64nvme(data).to_bytes(8, "big")
    else:
        raw = hashlib.new(alg.lower(), data).digest()
    return base64.b64encode(raw).decode()


def test_crc32c_known_vector() -> None:
    # CRC-32C (Castagnoli) check value for "123456789" is 0xE3069283.
    assert (
        compute_b64("CRC32C", b"123456789") == base64.b64encode(bytes.fromhex("e3069283")).decode()
    )
    assert (
        compute_b64("CRC32", b"123456789") == base64.b64encode(bytes.fromhex("cbf43926")).decode()
    )


@pytest.mark.parametrize("alg", ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256", "crc32c"])
def test_flexible_checksums(store: FileBlobStore, alg: str) -> None:
    data = os.urandom(CHUNK_SIZE + 3)
    want = _reference(alg.upper(), data)
    computed = store.put_object("bkt", "c", data, checksum=(alg, None))
    assert computed.checksums == {alg.upper(): want}
    verified = store.put_object("bkt", "c", data, checksum=(alg, want))
    assert verified.checksums == {alg.upper(): want}
    assert store.head_object("bkt", "c").checksums == {alg.upper(): want}
    with pytest.raises(E.InvalidChecksum) as ei:
        store.put_object("bkt", "c", data + b"!", checksum=(alg, want))
    assert ei.value.code == "BadDigest"
    assert store.read_bytes("bkt", "c") == data


def test_malformed_checksum_values(store: FileBlobStore) -> None:
    with pytest.raises(E.InvalidRequest):
        store.put_object("bkt", "c", b"x", checksum=("MD4", None))
    with pytest.raises(E.InvalidRequest):
        store.put_object("bkt", "c", b"x", checksum=("CRC32", "%%%"))
    with pytest.raises(E.InvalidRequest):  # right base64, wrong digest length for CRC32
        store.put_object("bkt", "c", b"x", checksum=("CRC32", _reference("SHA1", b"x")))
    with pytest.raises(E.NoSuchKey):
        store.head_object("bkt", "c")


# ----------------------------------------------------------------------------- metadata


def test_metadata_validation(store: FileBlobStore) -> None:
    with pytest.raises(E.MetadataTooLarge):
        store.put_object("bkt", "k", b"x", metadata={"big": "v" * 2100})
    with pytest.raises(E.InvalidArgument):
        store.put_object("bkt", "k", b"x", metadata={"bad name": "v"})
    with pytest.raises(E.InvalidArgument):
        store.put_object("bkt", "k", b"x", metadata={"inject": "a\r\nx-amz-acl: public"})
    with pytest.raises(E.InvalidArgument):
        store.put_object("bkt", "k", b"x", metadata={"n": 1})  # type: ignore[dict-item]
    with pytest.raises(E.InvalidArgument):
        store.put_object("bkt", "k", b"x", content_type="text/plain\r\nX: y")
    with pytest.raises(E.NoSuchKey):
        store.head_object("bkt", "k")


# ----------------------------------------------------------------------------- ranges


def test_range_reads(store: FileBlobStore) -> None:
    data = bytes(range(256)) * 10
    store.put_object("bkt", "r", data)
    cases = {
        (0, 0): data[0:1],
        (0, 9): data[:10],
        (100, 199): data[100:200],
        (2550, None): data[2550:],
        (2500, 10_000): data[2500:],
        (2559, 2559): data[-1:],
    }
    for rng, want in cases.items():
        info, stream = store.open_object("bkt", "r", byte_range=rng)
        with stream:
            assert stream.read() == want, rng
            assert stream.content_length == len(want)
            first = rng[0]
            assert stream.content_range == (first, first + len(want) - 1)
        assert info.size == len(data)
    _, whole = store.open_object("bkt", "r", byte_range=(0, None))
    with whole:
        assert whole.read() == data


@pytest.mark.parametrize("rng", [(2560, None), (3000, 4000), (5, 4), (-1, 3)])
def test_unsatisfiable_ranges(store: FileBlobStore, rng: tuple[int, int | None]) -> None:
    store.put_object("bkt", "r", b"x" * 2560)
    with pytest.raises(E.InvalidRange) as ei:
        store.open_object("bkt", "r", byte_range=rng)
    assert ei.value.status == 416
    assert ei.value.details["ActualObjectSize"] == "2560"


def test_range_on_empty_object_is_unsatisfiable(store: FileBlobStore) -> None:
    store.put_object("bkt", "e", b"")
    with pytest.raises(E.InvalidRange):
        store.open_object("bkt", "e", byte_range=(0, None))


# ----------------------------------------------------------------------------- if-match


def test_if_match(store: FileBlobStore) -> None:
    info = store.put_object("bkt", "m", b"abc")
    for cond in (info.etag, f'"{info.etag}"', "*", f'"nope", "{info.etag}"', info.etag.upper()):
        _, s = store.open_object("bkt", "m", if_match=cond)
        with s:
            assert s.read() == b"abc"
    with pytest.raises(E.PreconditionFailed) as ei:
        store.open_object("bkt", "m", if_match='"0123"')
    assert ei.value.status == 412


# ----------------------------------------------------------------------------- stream API


def test_stream_protocol(store: FileBlobStore) -> None:
    data = os.urandom(CHUNK_SIZE * 2 + 5)
    store.put_object("bkt", "s", data)
    _, s = store.open_object("bkt", "s")
    with s:
        assert s.readable()
        head = s.read(10)
        buf = bytearray(20)
        n = s.readinto(buf)
        chunks = list(s)
    assert s.closed
    assert head + bytes(buf[:n]) + b"".join(chunks) == data
    assert all(len(c) <= CHUNK_SIZE for c in chunks)
    with pytest.raises(ValueError):
        s.read(1)


def test_open_stream_keeps_old_version_after_overwrite_and_delete(store: FileBlobStore) -> None:
    store.put_object("bkt", "v", b"first-version")
    _, s = store.open_object("bkt", "v")
    store.put_object("bkt", "v", b"second")
    store.delete_object("bkt", "v")
    with s:
        assert s.read() == b"first-version"


# ----------------------------------------------------------------------------- delete


def test_delete_is_idempotent_and_prunes(store: FileBlobStore, tmp_path: Path) -> None:
    store.put_object("bkt", "a/b/c/d", b"1")
    store.delete_object("bkt", "a/b/c/d")
    store.delete_object("bkt", "a/b/c/d")
    store.delete_object("bkt", "never-existed")
    with pytest.raises(E.NoSuchKey):
        store.head_object("bkt", "a/b/c/d")
    assert list((tmp_path / "blobs" / "buckets" / "bkt" / "objects").iterdir()) == []


def test_missing_key(store: FileBlobStore) -> None:
    with pytest.raises(E.NoSuchKey) as ei:
        store.head_object("bkt", "ghost")
    assert (ei.value.bucket, ei.value.key) == ("bkt", "ghost")
    assert "ghost" in ei.value.message
    with pytest.raises(E.NoSuchKey):
        store.open_object("bkt", "ghost/deeper")


# ----------------------------------------------------------------------------- copy


def test_copy_object(store: FileBlobStore) -> None:
    store.create_bucket("dst")
    src = store.put_object(
        "bkt",
        "src",
        b"copy me",
        content_type="text/x",
        metadata={"a": "1"},
        checksum=("CRC32", None),
    )
    same = store.copy_object("bkt", "src", "dst", "copied")
    assert (same.etag, same.sha256, same.size) == (src.etag, src.sha256, src.size)
    assert (same.content_type, same.metadata, same.checksums) == (
        "text/x",
        {"a": "1"},
        src.checksums,
    )
    replaced = store.copy_object(
        "bkt", "src", "bkt", "src", metadata={"b": "2"}, content_type="text/y"
    )
    assert (replaced.metadata, replaced.content_type) == ({"b": "2"}, "text/y")
    assert store.read_bytes("bkt", "src") == b"copy me"
    assert store.read_bytes("dst", "copied") == b"copy me"
    with pytest.raises(E.NoSuchKey):
        store.copy_object("bkt", "missing", "dst", "x")
    with pytest.raises(E.NoSuchBucket):
        store.copy_object("nobucket", "src", "dst", "x")


# ----------------------------------------------------------------------------- corruption


def _object_file(root: Path, bucket: str, name: str) -> Path:
    matches = [p for p in (root / "buckets" / bucket / "objects").rglob(name) if p.is_file()]
    assert len(matches) == 1
    return matches[0]


def _flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ 0xFF]))


def test_bit_rot_is_detected_and_never_served_whole(store: FileBlobStore, tmp_path: Path) -> None:
    data = os.urandom(CHUNK_SIZE * 2 + 100)
    store.put_object("bkt", "rot", data)
    _flip_byte(_object_file(tmp_path / "blobs", "bkt", "rot@o"), 12345)
    with pytest.raises(E.CorruptObjectError) as ei:
        store.verify_object("bkt", "rot")
    assert (ei.value.code, ei.value.status, ei.value.key) == ("InternalError", 500, "rot")
    with pytest.raises(E.CorruptObjectError):
        store.read_bytes("bkt", "rot")
    _, s = store.open_object("bkt", "rot")
    served = bytearray()
    with s, pytest.raises(E.CorruptObjectError):
        for chunk in s:
            served += chunk
    assert len(served) < len(data)  # the final bytes are withheld from a corrupt body
    # a ranged read is checked block by block: the damaged block is refused...
    _, part = store.open_object("bkt", "rot", byte_range=(0, 99))
    with part, pytest.raises(E.CorruptObjectError, match="block 0"):
        part.read()
    # ...while a range that only touches intact blocks is served
    intact = (BLOCK_SIZE * 2 + 5, BLOCK_SIZE * 3 + 10)
    _, part = store.open_object("bkt", "rot", byte_range=intact)
    with part:
        assert part.read() == data[intact[0] : intact[1] + 1]
    # with verify=False the caller explicitly accepts unverified bytes
    _, raw = store.open_object("bkt", "rot", verify=False)
    with raw:
        assert len(raw.read()) == len(data)


def test_corrupt_empty_object(store: FileBlobStore, tmp_path: Path) -> None:
    store.put_object("bkt", "e", b"")
    path = _object_file(tmp_path / "blobs", "bkt", "e@o")
    raw = path.read_bytes()
    path.write_bytes(raw.replace(hashlib.sha256(b"").hexdigest().encode(), b"0" * 64))
    with pytest.raises(E.CorruptObjectError):
        store.read_bytes("bkt", "e")


@pytest.mark.parametrize("damage", ["truncate", "trailer", "tiny", "wrong-key"])
def test_damaged_container_is_corrupt(store: FileBlobStore, tmp_path: Path, damage: str) -> None:
    store.put_object("bkt", "d", b"some data here")
    store.put_object("bkt", "other", b"some data here")
    path = _object_file(tmp_path / "blobs", "bkt", "d@o")
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[:-3])
    elif damage == "trailer":
        path.write_bytes(raw.replace(b'"etag"', b'"et\x00g'))
    elif damage == "tiny":
        path.write_bytes(b"abc")
    else:
        other = _object_file(tmp_path / "blobs", "bkt", "other@o")
        path.write_bytes(other.read_bytes())
    with pytest.raises(E.CorruptObjectError):
        store.head_object("bkt", "d")
    with pytest.raises(E.CorruptObjectError):
        store.open_object("bkt", "d")
    # listing skips the damaged object rather than failing the whole page
    keys = [o.key for o in store.list_objects("bkt").contents]
    assert "other" in keys
    assert "d" not in keys


def test_copy_refuses_corrupt_source(store: FileBlobStore, tmp_path: Path) -> None:
    store.put_object("bkt", "src", b"0123456789" * 10)
    _flip_byte(_object_file(tmp_path / "blobs", "bkt", "src@o"), 5)
    with pytest.raises(E.CorruptObjectError):
        store.copy_object("bkt", "src", "bkt", "dst")
    with pytest.raises(E.NoSuchKey):
        store.head_object("bkt", "dst")
    assert _temp_files(tmp_path / "blobs") == []


def test_store_reopens_existing_root(tmp_path: Path) -> None:
    s1 = FileBlobStore(tmp_path)
    s1.create_bucket("bkt")
    s1.put_object("bkt", "k", b"persisted")
    first = s1.list_objects("bkt", max_keys=1)
    s2 = FileBlobStore(tmp_path)
    assert s2.read_bytes("bkt", "k") == b"persisted"
    assert s2.head_bucket("bkt") == s1.head_bucket("bkt")
    # continuation tokens are signed with a per-store key shared by every process
    s1.put_object("bkt", "l", b"x")
    page = s1.list_objects("bkt", max_keys=1)
    assert page.next_continuation_token is not None
    rest = s2.list_objects("bkt", continuation_token=page.next_continuation_token)
    assert [o.key for o in rest.contents] == ["l"]
    assert first.key_count == 1


@pytest.mark.parametrize(
    "rng",
    [
        (0, BLOCK_SIZE - 1),
        (BLOCK_SIZE - 1, BLOCK_SIZE),
        (BLOCK_SIZE, None),
        (5, 3 * BLOCK_SIZE + 2),
        (3 * BLOCK_SIZE, 3 * BLOCK_SIZE),
        (1, 10**12),
    ],
)
def test_verified_ranges_across_block_boundaries(
    store: FileBlobStore, rng: tuple[int, int | None]
) -> None:
    data = os.urandom(3 * BLOCK_SIZE + 3)  # the last block is short
    store.put_object("bkt", "blocks", data)
    first, last = rng
    want = data[first : (len(data) if last is None else last + 1)]
    for size in (1, 4096, CHUNK_SIZE):
        _, s = store.open_object("bkt", "blocks", byte_range=rng)
        got = bytearray()
        with s:
            while chunk := s.read(size):
                got += chunk
        assert bytes(got) == want, (rng, size)


def test_damaged_block_table_is_detected_on_ranged_reads(
    store: FileBlobStore, tmp_path: Path
) -> None:
    data = os.urandom(2 * BLOCK_SIZE)
    store.put_object("bkt", "t", data)
    path = _object_file(tmp_path / "blobs", "bkt", "t@o")
    _flip_byte(path, len(data) + 5)  # inside the CRC table of block 1
    _, ok = store.open_object("bkt", "t", byte_range=(0, 10))
    with ok:
        assert ok.read() == data[:11]
    _, bad = store.open_object("bkt", "t", byte_range=(BLOCK_SIZE, None))
    with bad, pytest.raises(E.CorruptObjectError, match="block 1"):
        bad.read()
    # the whole-object hash does not cover the table, so a full read still succeeds
    assert store.read_bytes("bkt", "t") == data


@pytest.mark.slow
def test_memory_stays_flat_for_large_objects(store: FileBlobStore) -> None:
    import tracemalloc

    chunk = os.urandom(CHUNK_SIZE)
    total = 64 * CHUNK_SIZE

    def body():
        for _ in range(64):
            yield chunk  # the same buffer: only the store's own allocations are measured

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        info = store.put_object("bkt", "large", body(), checksum=("CRC32", None))
        _, put_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        _, stream = store.open_object("bkt", "large")
        seen = 0
        with stream:
            for part in stream:
                seen += len(part)
        _, get_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        store.copy_object("bkt", "large", "bkt", "large-copy")
        _, copy_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.size == seen == total
    # a handful of 1 MiB buffers at most, whatever the object size (64 MiB here)
    assert put_peak < 8 * CHUNK_SIZE, put_peak
    assert get_peak < 8 * CHUNK_SIZE, get_peak
    assert copy_peak < 8 * CHUNK_SIZE, copy_peak


def test_memoryview_chunks_of_wider_types_count_bytes(store: FileBlobStore) -> None:
    import array

    words = array.array("I", range(1000))  # 4000 bytes in 1000 items
    info = store.put_object("bkt", "arr", [memoryview(words), memoryview(b"!")])
    assert info.size == 4001
    assert store.read_bytes("bkt", "arr") == words.tobytes() + b"!"
