"""Object keys: hostile names never escape the store, and every S3-legal key round-trips."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from airegistry.storage.blobs import errors as E
from airegistry.storage.blobs.fs import FileBlobStore


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(root: Path) -> FileBlobStore:
    s = FileBlobStore(root)
    s.create_bucket("bkt")
    return s


def _all_paths(base: Path) -> set[Path]:
    return {p for p in base.rglob("*")}


HOSTILE = [
    "../x",
    "../../../../etc/passwd",
    "a/../../b",
    "a/..",
    "..",
    ".",
    "./a",
    "a/./b",
    "/etc/passwd",
    "/",
    "a\x00b",
    "\x00",
    "",
]


@pytest.mark.parametrize("key", HOSTILE)
def test_hostile_keys_are_rejected_everywhere(store: FileBlobStore, tmp_path: Path, key: str) -> None:
    before = _all_paths(tmp_path)
    calls = [
        lambda: store.put_object("bkt", key, b"evil"),
        lambda: store.head_object("bkt", key),
        lambda: store.open_object("bkt", key),
        lambda: store.delete_object("bkt", key),
        lambda: store.copy_object("bkt", "src", "bkt", key),
        lambda: store.create_multipart_upload("bkt", key),
    ]
    for call in calls:
        with pytest.raises(E.InvalidObjectKey) as ei:
            call()
        assert ei.value.code == "InvalidArgument"
        assert ei.value.status == 400
    assert _all_paths(tmp_path) == before


def test_error_message_names_the_problem(store: FileBlobStore) -> None:
    with pytest.raises(E.InvalidObjectKey, match=r"'\.\.' path segment"):
        store.put_object("bkt", "a/../../b", b"x")
    with pytest.raises(E.InvalidObjectKey, match="NUL"):
        store.put_object("bkt", "a\x00", b"x")
    with pytest.raises(E.InvalidObjectKey, match="must not start with '/'"):
        store.put_object("bkt", "/etc/passwd", b"x")
    with pytest.raises(E.InvalidObjectKey, match="empty"):
        store.put_object("bkt", "", b"x")


def test_lone_surrogate_and_non_string_keys(store: FileBlobStore) -> None:
    with pytest.raises(E.InvalidObjectKey, match="UTF-8"):
        store.put_object("bkt", "bad\udcffkey", b"x")
    with pytest.raises(E.InvalidObjectKey):
        store.put_object("bkt", b"bytes-key", b"x")  # type: ignore[arg-type]


def test_key_length_limit(store: FileBlobStore) -> None:
    ok_ascii = "k" * 1024
    ok_utf8 = "é" * 512  # 1024 bytes
    store.put_object("bkt", ok_ascii, b"1")
    store.put_object("bkt", ok_utf8, b"2")
    assert store.read_bytes("bkt", ok_ascii) == b"1"
    assert store.read_bytes("bkt", ok_utf8) == b"2"
    for key in ("k" * 1025, "é" * 513, "a/" * 600):
        with pytest.raises(E.KeyTooLongError) as ei:
            store.put_object("bkt", key, b"x")
        assert ei.value.code == "KeyTooLongError"
        assert isinstance(ei.value, E.InvalidObjectKey)
    keys = {o.key for o in store.list_objects("bkt").contents}
    assert keys == {ok_ascii, ok_utf8}


def test_symlink_planted_in_store_cannot_redirect_writes(
    store: FileBlobStore, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, root / "buckets" / "bkt" / "objects" / "evil@d")
    with pytest.raises(E.InvalidObjectKey, match="outside"):
        store.put_object("bkt", "evil/x", b"escape")
    assert list(outside.iterdir()) == []
    # the planted link is not a key either
    assert store.list_objects("bkt").contents == []


COEXISTING = [
    "a",
    "a/",
    "a/b",
    "a//b",
    "a/b/",
    "A",
    "a.",
    "...",
    ".hidden",
    "a/.b",
    "x@o",
    "x@d",
    "x@c",
    "%41",
    "^a",
    "with space/and\ttab",
    "back\\slash",
    "über/straße",
    "emoji/😀",
    "CON",
    'a:b*c?d|e<f>g"h',
    "\u2028line\u2029sep",
    "trailing.",
    "-",
    "_",
]


def test_every_legal_key_round_trips_and_coexists(store: FileBlobStore) -> None:
    for i, key in enumerate(COEXISTING):
        store.put_object("bkt", key, f"{i}:{key}".encode())
    for i, key in enumerate(COEXISTING):
        assert store.read_bytes("bkt", key) == f"{i}:{key}".encode(), key
        assert store.head_object("bkt", key).key == key
    listed = [o.key for o in store.list_objects("bkt").contents]
    assert listed == sorted(COEXISTING, key=lambda k: k.encode("utf-8"))
    # deleting one of "a", "a/", "a/b" leaves the others alone
    store.delete_object("bkt", "a/")
    assert store.read_bytes("bkt", "a") == f"{COEXISTING.index('a')}:a".encode()
    assert store.read_bytes("bkt", "a/b") == f"{COEXISTING.index('a/b')}:a/b".encode()
    with pytest.raises(E.NoSuchKey):
        store.head_object("bkt", "a/")


def test_case_distinct_keys_are_distinct_files(store: FileBlobStore, root: Path) -> None:
    store.put_object("bkt", "Data", b"upper")
    store.put_object("bkt", "data", b"lower")
    names = sorted(p.name for p in (root / "buckets" / "bkt" / "objects").iterdir())
    # no two names differ only by case, so case-insensitive filesystems are safe too
    assert len({n.lower() for n in names}) == len(names) == 2
    assert store.read_bytes("bkt", "Data") == b"upper"


def test_long_segments_are_chunked_under_name_max(store: FileBlobStore, root: Path) -> None:
    keys = ["s" * 1000, "é" * 500, "dir/" + "Ü" * 400, "ab" * 300 + "/x"]
    for k in keys:
        store.put_object("bkt", k, k.encode()[:10])
    for p in (root / "buckets").rglob("*"):
        assert len(p.name.encode()) <= 255
    listed = [o.key for o in store.list_objects("bkt").contents]
    assert listed == sorted(keys, key=lambda k: k.encode())
    for k in keys:
        store.delete_object("bkt", k)
    assert list((root / "buckets" / "bkt" / "objects").iterdir()) == []


def test_stray_files_in_the_tree_are_ignored(store: FileBlobStore, root: Path) -> None:
    store.put_object("bkt", "real", b"x")
    objects = root / "buckets" / "bkt" / "objects"
    (objects / ".DS_Store").write_bytes(b"junk")
    (objects / "NOT-ESCAPED@o").write_bytes(b"junk")
    (objects / "x@q").write_bytes(b"junk")
    (objects / "%FF@o").write_bytes(b"junk")  # escaped bytes that are not UTF-8
    (objects / "bad%FF@d").mkdir()
    (objects / "bad%FF@d" / "x@o").write_bytes(b"junk")
    assert [o.key for o in store.list_objects("bkt").contents] == ["real"]
    listing = store.list_objects("bkt", delimiter="/")
    assert ([o.key for o in listing.contents], listing.common_prefixes) == (["real"], [])
