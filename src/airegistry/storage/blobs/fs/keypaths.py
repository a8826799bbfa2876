"""Object keys <-> paths in the filesystem store: the escaping that keeps keys inside it.

A key is split on ``/`` and each segment becomes one path component, so a prefix +
delimiter listing reads one directory instead of the whole bucket. S3 allows ``a``,
``a/b`` and ``a/`` to coexist, so a segment that names an object gets the suffix ``@o``
and a segment that is a "directory" gets ``@d`` (``a/`` is the empty segment ``@o``
inside ``a@d``). Segments are escaped so that ``@`` can never appear unescaped:
``[a-z0-9._-]`` stay as they are (except a leading ``.``), upper-case letters become
``^`` + the lower-case letter (so the layout is also safe on case-insensitive
filesystems), every other UTF-8 byte becomes ``%XX``. The names are pure ASCII, so no
filesystem can normalise them. An escaped segment longer than 200 characters is split
into chunks, each non-final chunk a directory suffixed ``@c``, so ``NAME_MAX`` is never
exceeded. Because segments ``.``/``..``, NUL, a leading ``/`` and empty keys are
rejected (``names.validate_key``), and every byte outside the safe set is escaped, a
key cannot name anything outside its bucket.
"""

from __future__ import annotations

import re

MAX_PATH_BYTES = 4000  # below Linux PATH_MAX (4096) with room for temp suffixes
_SEGMENT_CHUNK = 200  # escaped characters per path component (NAME_MAX is 255)
_SAFE_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-_.")


def _escape_tokens(segment: str) -> list[str]:
    tokens: list[str] = []
    for i, b in enumerate(segment.encode("utf-8")):
        if 65 <= b <= 90:
            tokens.append("^" + chr(b + 32))
        elif b in _SAFE_BYTES and not (i == 0 and b == 0x2E):
            tokens.append(chr(b))
        else:
            tokens.append(f"%{b:02X}")
    return tokens


def _segment_components(segment: str, suffix: str) -> list[str]:
    """Path components for one key segment: ``@c`` chunk dirs, then the final ``suffix`` name."""
    tokens = _escape_tokens(segment)
    chunks: list[str] = []
    current = ""
    for t in tokens:
        if len(current) + len(t) > _SEGMENT_CHUNK:
            chunks.append(current)
            current = ""
        current += t
    comps = [c + "@c" for c in chunks]
    comps.append(current + suffix)
    return comps


_TOKEN_RE = re.compile(r"\^[a-z]|%[0-9A-F]{2}|[a-z0-9_.-]")


_PLAIN_RE = re.compile(r"[a-z0-9_-][a-z0-9_.-]*")


def _unescape(text: str) -> bytes | None:
    """Inverse of the escaping; None for names this store did not write (ignored when listing)."""
    if _PLAIN_RE.fullmatch(text):
        return text.encode("ascii")  # fast path: most names need no unescaping
    out = bytearray()
    pos = 0
    for m in _TOKEN_RE.finditer(text):
        if m.start() != pos:
            return None
        t = m.group()
        if t[0] == "^":
            out.append(ord(t[1]) - 32)
        elif t[0] == "%":
            out.append(int(t[1:], 16))
        else:
            out.append(ord(t))
        pos = m.end()
    if pos != len(text):
        return None
    return bytes(out)


def key_components(key: str) -> list[str]:
    segments = key.split("/")
    comps: list[str] = []
    for seg in segments[:-1]:
        comps.extend(_segment_components(seg, "@d"))
    comps.extend(_segment_components(segments[-1], "@o"))
    return comps


def dir_components(segments: list[str]) -> list[str]:
    comps: list[str] = []
    for seg in segments:
        comps.extend(_segment_components(seg, "@d"))
    return comps


def decode_name(text: str) -> bytes | None:
    """Key-segment bytes for an escaped name, or None if this store could not have written it."""
    seg = _unescape(text)
    if seg is None or seg.isascii():
        return seg
    try:
        seg.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return seg

