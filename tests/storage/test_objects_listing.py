"""ListObjectsV2 semantics: order, prefix, delimiter, pagination, tokens, compared to a model."""

from __future__ import annotations

import base64
import os
import random
import time
from pathlib import Path

import pytest

from airegistry.storage.blobs import errors as E
from airegistry.storage.blobs.fs import FileBlobStore


@pytest.fixture
def store(tmp_path: Path) -> FileBlobStore:
    s = FileBlobStore(tmp_path / "blobs")
    s.create_bucket("bkt")
    return s


def reference(
    keys: list[str], prefix: str, delimiter: str | None, start_after: str = ""
) -> list[tuple[str, str]]:
    """S3's listing as a flat sequence of ("key"|"prefix", value), straight from the spec."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for k in sorted(keys, key=lambda s: s.encode("utf-8")):
        if not k.startswith(prefix) or k.encode() <= start_after.encode():
            continue
        if delimiter:
            idx = k.find(delimiter, len(prefix))
            if idx >= 0:
                cp = k[: idx + len(delimiter)]
                if cp not in seen:
                    seen.add(cp)
                    out.append(("prefix", cp))
                continue
        out.append(("key", k))
    return out


def paged(
    store: FileBlobStore,
    prefix: str,
    delimiter: str | None,
    max_keys: int,
    start_after: str | None = None,
) -> list[tuple[str, str]]:
    items: list[tuple[str, str]] = []
    token = None
    for _ in range(10_000):
        r = store.list_objects(
            "bkt",
            prefix=prefix,
            delimiter=delimiter,
            max_keys=max_keys,
            continuation_token=token,
            start_after=start_after,
        )
        assert r.key_count == len(r.contents) + len(r.common_prefixes) <= max_keys
        # S3 returns each page's keys and prefixes separately; merge them back in order
        page = [("key", o.key) for o in r.contents] + [("prefix", p) for p in r.common_prefixes]
        page.sort(key=lambda t: t[1].encode())
        items.extend(page)
        if not r.is_truncated:
            assert r.next_continuation_token is None
            return items
        assert r.next_continuation_token
        token = r.next_continuation_token
    raise AssertionError("pagination never ended")


def test_utf8_binary_order(store: FileBlobStore) -> None:
    keys = ["z", "a", "a!", "a/", "a0", "é", "\uffff", "😀", "B", "a/b", "ab", "a-b", "~"]
    for k in keys:
        store.put_object("bkt", k, b"")
    listed = [o.key for o in store.list_objects("bkt").contents]
    assert listed == sorted(keys, key=lambda k: k.encode("utf-8"))
    assert listed.index("😀") > listed.index("\uffff")  # not UTF-16 order


def test_prefix_and_delimiter(store: FileBlobStore) -> None:
    keys = [
        "datasets/train/a.jsonl",
        "datasets/train/b.jsonl",
        "datasets/eval/a.jsonl",
        "datasets/readme",
        "datasets/",
        "evaluators/x.zip",
        "top",
    ]
    for k in keys:
        store.put_object("bkt", k, k.encode())
    r = store.list_objects("bkt", delimiter="/")
    assert [o.key for o in r.contents] == ["top"]
    assert r.common_prefixes == ["datasets/", "evaluators/"]
    assert r.key_count == 3
    assert not r.is_truncated
    r = store.list_objects("bkt", prefix="datasets/", delimiter="/")
    assert [o.key for o in r.contents] == ["datasets/", "datasets/readme"]
    assert r.common_prefixes == ["datasets/eval/", "datasets/train/"]
    r = store.list_objects("bkt", prefix="datasets/tr")
    assert [o.key for o in r.contents] == ["datasets/train/a.jsonl", "datasets/train/b.jsonl"]
    assert r.contents[0].size == len("datasets/train/a.jsonl")
    r = store.list_objects("bkt", prefix="nothing/")
    assert (r.contents, r.common_prefixes, r.key_count) == ([], [], 0)
    r = store.list_objects("bkt", prefix="../", delimiter="/")
    assert r.contents == []


def test_multichar_and_odd_delimiters(store: FileBlobStore) -> None:
    keys = ["a-b-c", "a-b-d", "a--x", "ab", "b"]
    for k in keys:
        store.put_object("bkt", k, b"")
    for delim in ("-", "b-", "--", "a"):
        assert paged(store, "", delim, 1000) == reference(keys, "", delim), delim


def test_max_keys_bounds(store: FileBlobStore) -> None:
    for i in range(5):
        store.put_object("bkt", f"k{i}", b"")
    r = store.list_objects("bkt", max_keys=0)
    assert (r.contents, r.key_count, r.is_truncated) == ([], 0, False)
    r = store.list_objects("bkt", max_keys=5000)
    assert r.key_count == 5
    with pytest.raises(E.InvalidArgument):
        store.list_objects("bkt", max_keys=-1)


def test_start_after(store: FileBlobStore) -> None:
    keys = ["a", "b", "c/1", "c/2", "d"]
    for k in keys:
        store.put_object("bkt", k, b"")
    r = store.list_objects("bkt", start_after="b")
    assert [o.key for o in r.contents] == ["c/1", "c/2", "d"]
    r = store.list_objects("bkt", start_after="c/1", delimiter="/")
    assert ([o.key for o in r.contents], r.common_prefixes) == (["d"], ["c/"])
    r = store.list_objects("bkt", start_after="zzz")
    assert r.contents == []


def test_common_prefixes_are_paged_once(store: FileBlobStore) -> None:
    keys = [f"p{i}/obj{j}" for i in range(7) for j in range(3)] + ["solo"]
    for k in keys:
        store.put_object("bkt", k, b"")
    for size in (1, 2, 3, 100):
        assert paged(store, "", "/", size) == reference(keys, "", "/"), size


def test_listing_matches_model_on_random_trees(store: FileBlobStore) -> None:
    rng = random.Random(20240605)
    alphabet = ["a", "b", "/", "!", "é", "A", "-", "0"]
    keys: set[str] = set()
    while len(keys) < 150:
        k = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 7)))
        if k.startswith("/") or any(s in (".", "..") for s in k.split("/")):
            continue
        keys.add(k)
    for k in keys:
        store.put_object("bkt", k, k.encode())
    key_list = sorted(keys)
    prefixes = ["", "a", "a/", "b/a", "é", "A!", "zz"]
    for prefix in prefixes:
        for delim in (None, "/", "a", "!/"):
            want = reference(key_list, prefix, delim)
            for size in (1, 3, 1000):
                assert paged(store, prefix, delim, size) == want, (prefix, delim, size)
            assert paged(store, prefix, delim, 4, start_after="a") == reference(
                key_list, prefix, delim, "a"
            )
    # every listed object carries its own metadata
    r = store.list_objects("bkt", max_keys=1000)
    assert all(o.size == len(o.key.encode()) for o in r.contents)


def test_continuation_token_is_tamper_proof(store: FileBlobStore, tmp_path: Path) -> None:
    for k in ("a", "b", "c"):
        store.put_object("bkt", k, b"")
    store.create_bucket("other")
    page = store.list_objects("bkt", max_keys=1)
    token = page.next_continuation_token
    assert token is not None
    body, mac = token.split(".")
    forged_payload = (
        base64.urlsafe_b64encode(
            b'{"b":"bkt","p":"","d":null,"a":"' + base64.b64encode(b"0").decode().encode() + b'"}'
        )
        .decode()
        .rstrip("=")
    )
    bad_tokens = [
        "garbage",
        "",
        token + "x",
        body + "." + mac[::-1],
        forged_payload + "." + mac,
        "a.b.c",
        "%%%." + mac,
    ]
    for bad in bad_tokens:
        with pytest.raises(E.InvalidArgument, match="continuation token"):
            store.list_objects("bkt", max_keys=1, continuation_token=bad)
    # a valid token is bound to its bucket, prefix and delimiter
    with pytest.raises(E.InvalidArgument):
        store.list_objects("other", continuation_token=token)
    with pytest.raises(E.InvalidArgument):
        store.list_objects("bkt", prefix="a", continuation_token=token)
    with pytest.raises(E.InvalidArgument):
        store.list_objects("bkt", delimiter="/", continuation_token=token)
    # another store root has another signing key
    foreign = FileBlobStore(tmp_path / "elsewhere")
    foreign.create_bucket("bkt")
    with pytest.raises(E.InvalidArgument):
        foreign.list_objects("bkt", continuation_token=token)
    rest = store.list_objects("bkt", continuation_token=token)
    assert [o.key for o in rest.contents] == ["b", "c"]


def test_token_ignores_start_after_like_s3(store: FileBlobStore) -> None:
    for k in ("a", "b", "c", "d"):
        store.put_object("bkt", k, b"")
    page = store.list_objects("bkt", max_keys=1, start_after="a")
    assert [o.key for o in page.contents] == ["b"]
    rest = store.list_objects(
        "bkt", continuation_token=page.next_continuation_token, start_after="zzz"
    )
    assert [o.key for o in rest.contents] == ["c", "d"]


def test_listing_survives_concurrent_deletes(store: FileBlobStore) -> None:
    for i in range(10):
        store.put_object("bkt", f"d/{i}", b"")
    page = store.list_objects("bkt", max_keys=3)
    for i in range(10):
        store.delete_object("bkt", f"d/{i}")
    rest = store.list_objects("bkt", continuation_token=page.next_continuation_token)
    assert rest.contents == [] and not rest.is_truncated


def test_rolled_up_directories_respect_start_after(store: FileBlobStore) -> None:
    keys = ["x/1/2", "x/3", "y", "z/deep/er/still"]
    for k in keys:
        store.put_object("bkt", k, b"")
    for after in ("", "x/1/2", "x/3", "x/", "x", "y", "z/deep/er/still"):
        r = store.list_objects("bkt", delimiter="/", start_after=after)
        got = [("key", o.key) for o in r.contents] + [("prefix", p) for p in r.common_prefixes]
        got.sort(key=lambda t: t[1].encode())
        assert got == reference(keys, "", "/", after), after


def test_big_folder_listing_cache_sees_every_change(store: FileBlobStore, tmp_path: Path) -> None:
    """Pages of a big, quiet folder reuse one sorted scan; any change invalidates it."""
    keys = [f"big/{i:05d}" for i in range(600)]
    for k in keys:
        store.put_object("bkt", k, b"")
    folder = tmp_path / "blobs" / "buckets" / "bkt" / "objects" / "big@d"
    old = os.stat(folder).st_mtime_ns - 3600 * 10**9
    os.utime(folder, ns=(old, old))  # make the folder "quiet" so its scan may be cached
    assert paged(store, "big/", None, 100) == reference(keys, "big/", None)
    assert str(folder) in store._dir_cache._dirs  # the scan was reused across pages

    store.put_object("bkt", "big/00100x", b"")  # lands mid-folder, changes its mtime
    store.delete_object("bkt", "big/00200")
    keys = sorted([*keys, "big/00100x"])
    keys.remove("big/00200")
    assert paged(store, "big/", None, 100) == reference(keys, "big/", None)
    assert paged(store, "big/", "/", 7) == reference(keys, "big/", "/")


def test_busy_folders_are_not_cached(store: FileBlobStore, tmp_path: Path) -> None:
    keys = [f"busy/{i:04d}" for i in range(600)]
    for k in keys:
        store.put_object("bkt", k, b"")
    folder = tmp_path / "blobs" / "buckets" / "bkt" / "objects" / "busy@d"
    recent = time.time_ns() + 3600 * 10**9  # as if written just now (never "quiet")
    os.utime(folder, ns=(recent, recent))
    assert paged(store, "busy/", None, 100) == reference(keys, "busy/", None)
    # an mtime this recent cannot prove that a later change would alter it
    assert str(folder) not in store._dir_cache._dirs
