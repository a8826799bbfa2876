"""Listing the filesystem store: a walk of the key tree in S3's order, with signed tokens.

Keys come out in UTF-8 binary order because every directory of the segment tree is read
sorted and walked depth-first; a prefix skips straight to its directory, a ``/``
delimiter rolls whole subtrees up into one common prefix without walking them, and big
directories keep their sorted listing between pages (``DirCache``).
"""

from __future__ import annotations

import base64
import bisect
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from airegistry.storage.blobs.errors import CorruptObjectError, InvalidArgument
from airegistry.storage.blobs.fs.container import info_from_trailer, read_trailer
from airegistry.storage.blobs.fs.keypaths import decode_name, dir_components
from airegistry.storage.blobs.types import ListResult, ObjectInfo
from airegistry.storage.tokens import TokenSigner


class WalkState:
    """Mutable lower bound shared with the walker so listing can skip rolled-up prefixes.

    With ``rollup_slash`` (delimiter ``/``) a directory whose whole subtree collapses into one
    common prefix is reported as ``(dir key prefix, None)`` after checking it holds an object,
    instead of being walked: listing ``a/`` over a million keys below it stays cheap.
    """

    def __init__(
        self,
        prefix: bytes,
        after: bytes,
        *,
        rollup_slash: bool = False,
        dirs: DirCache | None = None,
    ) -> None:
        self.prefix = prefix
        self.after = after
        self.rollup_slash = rollup_slash
        self.dirs = dirs


@dataclass(frozen=True)
class _DirListing:
    """The logical entries of one tree directory, sorted in key order."""

    sort_keys: list[bytes]  # segment, plus "/" for directories: the order keys sort in
    entries: list[tuple[bytes, bool, str]]  # (segment bytes, is_dir, path)
    chunked: bool  # followed @c directories, whose changes the parent's mtime does not show


_EMPTY_LISTING = _DirListing([], [], False)


def _collect(dirpath: str, name_prefix: str, out: list[tuple[bytes, bool, str]]) -> bool:
    """Append the entries of ``dirpath`` (following ``@c`` chunk dirs); True if any was followed."""
    chunked = False
    try:
        entries = list(os.scandir(dirpath))
    except (FileNotFoundError, NotADirectoryError):
        return chunked
    for e in entries:
        name = e.name
        if len(name) < 2 or name[-2] != "@":
            continue
        kind = name[-1]
        text = name_prefix + name[:-2]
        try:
            if kind == "c" and e.is_dir(follow_symlinks=False):
                _collect(e.path, text, out)
                chunked = True
                continue
            if kind == "o" and e.is_file(follow_symlinks=False):
                is_dir = False
            elif kind == "d" and e.is_dir(follow_symlinks=False):
                is_dir = True
            else:
                continue
        except OSError:
            continue
        seg = decode_name(text)
        if seg is None:
            continue
        out.append((seg, is_dir, e.path))
    return chunked


def _scan_dir(dirpath: str) -> _DirListing:
    out: list[tuple[bytes, bool, str]] = []
    chunked = _collect(dirpath, "", out)
    keyed = sorted(
        ((seg + b"/" if is_dir else seg), (seg, is_dir, path)) for seg, is_dir, path in out
    )
    return _DirListing([k for k, _ in keyed], [e for _, e in keyed], chunked)


class DirCache:
    """Sorted listings of big directories, reused while the directory has not changed.

    Paging through a folder of N objects would otherwise rescan and re-sort all N entries for
    every page.  A listing is reused only while the directory's (device, inode, mtime_ns) is
    the one stat()ed before it was scanned, and it is only cached when that mtime was already
    QUIET_NS old: any later change to the directory (by any process) then sets an mtime that is
    necessarily different, even on filesystems with coarse timestamps.  Directories that follow
    ``@c`` chunk dirs are never cached, since changes inside those do not touch this mtime.
    """

    MIN_ENTRIES = 512
    MAX_DIRS = 32
    QUIET_NS = 3_000_000_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dirs: OrderedDict[str, tuple[tuple[int, int, int], _DirListing]] = OrderedDict()

    def get(self, dirpath: str) -> _DirListing:
        try:
            st = os.stat(dirpath)
        except OSError:
            return _EMPTY_LISTING
        stamp = (st.st_dev, st.st_ino, st.st_mtime_ns)
        with self._lock:
            hit = self._dirs.get(dirpath)
            if hit is not None and hit[0] == stamp:
                self._dirs.move_to_end(dirpath)
                return hit[1]
        listing = _scan_dir(dirpath)
        quiet = time.time_ns() - st.st_mtime_ns >= self.QUIET_NS
        if quiet and not listing.chunked and len(listing.entries) >= self.MIN_ENTRIES:
            with self._lock:
                self._dirs[dirpath] = (stamp, listing)
                self._dirs.move_to_end(dirpath)
                while len(self._dirs) > self.MAX_DIRS:
                    self._dirs.popitem(last=False)
        return listing



def _has_object(dirpath: str) -> bool:
    """Whether a tree directory holds at least one object; stops at the first one found."""
    subdirs = []
    try:
        with os.scandir(dirpath) as it:
            for e in it:
                if _is_object_entry(e, subdirs):
                    return True
    except (FileNotFoundError, NotADirectoryError):
        return False
    return any(_has_object(p) for p in subdirs)


def _is_object_entry(e: os.DirEntry[str], subdirs: list[str]) -> bool:
    """True for an object file; collects tree subdirectories into ``subdirs`` otherwise."""
    name = e.name
    if len(name) < 2 or name[-2] != "@" or decode_name(name[:-2]) is None:
        return False
    try:
        if name[-1] == "o" and e.is_file(follow_symlinks=False):
            return True
        if name[-1] in "dc" and e.is_dir(follow_symlinks=False):
            subdirs.append(e.path)
    except OSError:
        return False
    return False


def _first_candidate(listing: _DirListing, key_prefix: bytes, after: bytes) -> int:
    """Index of the first entry that can hold a key > ``after`` (bisect, not a scan)."""
    if after <= key_prefix:
        return 0
    if not after.startswith(key_prefix):
        return len(listing.entries)  # after is beyond every key of this directory
    rel = after[len(key_prefix) :]
    i = bisect.bisect_right(listing.sort_keys, rel)
    # a directory whose "seg/" is a prefix of rel sorts before rel but may hold later keys
    if i > 0 and listing.entries[i - 1][1] and rel.startswith(listing.sort_keys[i - 1]):
        i -= 1
    return i


def walk(dirpath: str, key_prefix: bytes, state: WalkState) -> Iterator[tuple[bytes, str | None]]:
    """Yield (key bytes, file path) in UTF-8 binary order, honouring ``state`` as it changes.

    A path of None marks a rolled-up directory (see WalkState).
    """
    listing = state.dirs.get(dirpath) if state.dirs is not None else _scan_dir(dirpath)
    for seg, is_dir, path in listing.entries[_first_candidate(listing, key_prefix, state.after) :]:
        if is_dir:
            d = key_prefix + seg + b"/"
            if d + b"\xff" <= state.after:
                continue  # every key below d is <= the bound (UTF-8 never contains 0xff)
            if not (d.startswith(state.prefix) or state.prefix.startswith(d)):
                if d > state.prefix:
                    return
                continue
            if (
                state.rollup_slash
                and d.startswith(state.prefix)
                and b"/" not in d[len(state.prefix) : -1]
                and not state.after.startswith(d)
            ):
                if _has_object(path):
                    yield d, None
                continue
            yield from walk(path, d, state)
        else:
            k = key_prefix + seg
            if k <= state.after:
                continue
            if not k.startswith(state.prefix):
                if k > state.prefix:
                    return
                continue
            yield k, path




class ListingMixin:
    """``list_objects`` of the filesystem store (mixed into ``FileBlobStore``)."""

    _signer: TokenSigner
    _dir_cache: DirCache
    _require_bucket: Callable[[str], Path]


    def _make_token(self, bucket: str, prefix: str, delimiter: str | None, after: bytes) -> str:
        doc = {"b": bucket, "p": prefix, "d": delimiter, "a": base64.b64encode(after).decode()}
        return self._signer.sign(doc)

    def _parse_token(self, token: str, bucket: str, prefix: str, delimiter: str | None) -> bytes:
        doc = self._signer.verify(token)
        bad = InvalidArgument(
            "The continuation token provided is incorrect",
            bucket=bucket,
            details={"ArgumentName": "continuation-token"},
        )
        if not isinstance(doc, dict):
            raise bad
        try:
            after = base64.b64decode(doc["a"], validate=True)
        except (ValueError, KeyError, TypeError):
            raise bad from None
        if doc.get("b") != bucket or doc.get("p") != prefix or doc.get("d") != delimiter:
            raise bad
        return after

    def list_objects(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str | None = None,
        max_keys: int = 1000,
        continuation_token: str | None = None,
        start_after: str | None = None,
    ) -> ListResult:
        """ListObjectsV2: keys in UTF-8 binary order, common prefixes, signed continuation token."""
        bdir = self._require_bucket(bucket)
        prefix = prefix or ""
        if not isinstance(prefix, str):
            raise InvalidArgument(f"prefix must be a string, got {prefix!r}", bucket=bucket)
        if delimiter == "":
            delimiter = None
        if not isinstance(max_keys, int) or isinstance(max_keys, bool) or max_keys < 0:
            raise InvalidArgument(
                f"max-keys must be a non-negative integer, got {max_keys!r}",
                bucket=bucket,
                details={"ArgumentName": "max-keys"},
            )
        max_keys = min(max_keys, 1000)
        try:
            prefix_b = prefix.encode("utf-8")
            delim_b = delimiter.encode("utf-8") if delimiter is not None else None
            after = start_after.encode("utf-8") if start_after else b""
        except (UnicodeEncodeError, AttributeError):
            raise InvalidArgument(
                "prefix, delimiter and start-after must be valid UTF-8 strings", bucket=bucket
            ) from None
        if continuation_token is not None:
            after = self._parse_token(continuation_token, bucket, prefix, delimiter)

        contents: list[ObjectInfo] = []
        common: list[str] = []
        truncated = False
        last_bound = after
        start_dir, start_prefix = self._start_dir(bdir, prefix)
        if start_dir is not None and max_keys > 0:
            state = WalkState(prefix_b, after, rollup_slash=delim_b == b"/", dirs=self._dir_cache)
            for k, path in walk(start_dir, start_prefix, state):
                cp = None
                if delim_b is not None:
                    idx = k.find(delim_b, len(prefix_b))
                    if idx >= 0:
                        cp = k[: idx + len(delim_b)]
                if len(contents) + len(common) >= max_keys:
                    truncated = True
                    break
                if cp is not None:
                    common.append(cp.decode("utf-8"))
                    state.after = last_bound = cp + b"\xff"
                    continue
                if path is None:  # only rolled-up directories come without a file
                    continue
                key = k.decode("utf-8")
                info = self._list_info(bucket, key, path)
                state.after = k
                if info is None:
                    continue
                contents.append(info)
                last_bound = k
        token = self._make_token(bucket, prefix, delimiter, last_bound) if truncated else None
        return ListResult(
            contents=contents,
            common_prefixes=common,
            is_truncated=truncated,
            next_continuation_token=token,
            key_count=len(contents) + len(common),
        )

    @staticmethod
    def _start_dir(bdir: Path, prefix: str) -> tuple[str | None, bytes]:
        """Directory holding every key with ``prefix`` (skips listing the levels above it)."""
        objects = str(bdir / "objects")
        if "/" not in prefix:
            return objects, b""
        segments = prefix.split("/")[:-1]
        if any(s in (".", "..") or "\x00" in s for s in segments) or prefix.startswith("/"):
            return None, b""  # no valid key can have this prefix
        try:
            comps = dir_components(segments)
        except UnicodeEncodeError:
            return None, b""
        path = os.path.join(objects, *comps)
        if not os.path.isdir(path):
            return None, b""
        return path, ("/".join(segments) + "/").encode("utf-8")

    def _list_info(self, bucket: str, key: str, path: str) -> ObjectInfo | None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None  # deleted since the directory was read
        try:
            doc, _ = read_trailer(fd, f"s3://{bucket}/{key}")
            if doc.get("key") != key:
                return None  # a file copied or moved by hand: head/get report it as corrupt
            return info_from_trailer(bucket, key, doc)
        except CorruptObjectError:
            return None  # reported by head/get/verify; a listing must not fail for one object
        finally:
            os.close(fd)

    # ------------------------------------------------------------------ multipart
