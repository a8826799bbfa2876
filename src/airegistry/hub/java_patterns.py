"""Service-model patterns (Java regular expressions) as Python ``re`` patterns.

AWS evaluates the patterns of its service models as Java regular expressions over the
whole value (``String.matches``). Python's ``re`` differs in ways that matter here, so
each pattern is translated once (``java_pattern``):

* the pattern must match the entire value (``re.fullmatch``);
* ``.`` does not match line terminators (``\\n``, ``\\r``, U+0085, U+2028, U+2029), so a
  member whose pattern is ``.*`` refuses multi-line values, as AWS does;
* ``\\w``, ``\\d``, ``\\s`` are ASCII-only;
* ``\\p{L}``-style Unicode categories and POSIX classes (``\\p{Alnum}``) are expanded to
  explicit ranges computed from ``unicodedata``;
* a ``\\uD800\\uDC00`` surrogate pair inside a class is one supplementary code point.

A pattern that uses Java syntax the translator does not know is logged once and not
enforced (``java_pattern`` returns None) rather than breaking every request that uses it.
"""

from __future__ import annotations

import functools
import itertools
import logging
import re
import threading
import unicodedata

__all__ = ["displayed_pattern", "java_pattern"]

logger = logging.getLogger(__name__)

_LINE_TERMINATORS = "\\n\\r\\x85\\u2028\\u2029"
_JAVA_DOT = f"[^{_LINE_TERMINATORS}]"

_POSIX_CLASSES: dict[str, str] = {
    "Lower": "a-z",
    "Upper": "A-Z",
    "ASCII": "\\x00-\\x7f",
    "Alpha": "a-zA-Z",
    "Digit": "0-9",
    "Alnum": "a-zA-Z0-9",
    "Punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    "Graph": "\\x21-\\x7e",
    "Print": "\\x20-\\x7e",
    "Blank": " \\t",
    "Cntrl": "\\x00-\\x1f\\x7f",
    "XDigit": "0-9a-fA-F",
    "Space": " \\t\\n\\x0b\\f\\r",
}

_CATEGORY_LOCK = threading.Lock()
_CATEGORY_RANGES: dict[str, list[tuple[int, int]]] | None = None


def _category_ranges() -> dict[str, list[tuple[int, int]]]:
    """Code point ranges of every Unicode general category (one pass, ~0.3 s, once)."""
    global _CATEGORY_RANGES
    if _CATEGORY_RANGES is None:
        with _CATEGORY_LOCK:
            if _CATEGORY_RANGES is None:
                ranges: dict[str, list[tuple[int, int]]] = {}
                categories = map(unicodedata.category, map(chr, range(0x110000)))
                start = 0
                for category, group in itertools.groupby(categories):
                    size = sum(1 for _ in group)
                    ranges.setdefault(category, []).append((start, start + size - 1))
                    start += size
                _CATEGORY_RANGES = ranges
    return _CATEGORY_RANGES


def _code_point_escape(cp: int) -> str:
    return f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}"


@functools.cache
def _property_class_body(name: str) -> str:
    """The inside of a character class equivalent to Java's ``\\p{name}``."""
    if name in _POSIX_CLASSES:
        return _POSIX_CLASSES[name]
    key = name[2:] if name.startswith("Is") and len(name) <= 4 else name
    all_ranges = _category_ranges()
    if len(key) == 1 and key.isupper():
        selected = [r for cat, rs in all_ranges.items() if cat[0] == key for r in rs]
    elif len(key) == 2 and key in all_ranges:
        selected = list(all_ranges[key])
    elif len(key) == 2 and key[0].isupper() and key[1].islower():
        selected = []  # a valid category with no code points in this Unicode version
    else:
        raise _UnsupportedPattern(f"unsupported Unicode property \\p{{{name}}}")
    if not selected:
        raise _UnsupportedPattern(f"Unicode property \\p{{{name}}} matches nothing")
    selected.sort()
    parts = []
    for lo, hi in selected:
        parts.append(
            _code_point_escape(lo) if lo == hi else f"{_code_point_escape(lo)}-{_code_point_escape(hi)}"
        )
    return "".join(parts)


class _UnsupportedPattern(ValueError):
    """A Java regex construct the translator cannot express in Python's ``re``."""


_UNSUPPORTED_ESCAPES = frozenset("QERXhHvVZGNk")


def _read_property(pattern: str, i: int) -> tuple[str, int]:
    """Parse the name after ``\\p``/``\\P`` at ``pattern[i]``; returns (name, next index)."""
    if i < len(pattern) and pattern[i] == "{":
        end = pattern.find("}", i)
        if end < 0:
            raise _UnsupportedPattern("unterminated \\p{...}")
        return pattern[i + 1 : end], end + 1
    if i < len(pattern):
        return pattern[i], i + 1
    raise _UnsupportedPattern("dangling \\p")


def _read_unicode_escape(pattern: str, i: int) -> tuple[int, int]:
    """Parse ``\\uXXXX`` (``pattern[i]`` is the ``u``), joining a surrogate pair."""
    hexdigits = pattern[i + 1 : i + 5]
    if len(hexdigits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in hexdigits):
        raise _UnsupportedPattern("malformed \\u escape")
    cp = int(hexdigits, 16)
    nxt = i + 5
    if 0xD800 <= cp <= 0xDBFF and pattern.startswith("\\u", nxt):
        low_digits = pattern[nxt + 2 : nxt + 6]
        if len(low_digits) == 4 and all(c in "0123456789abcdefABCDEF" for c in low_digits):
            low = int(low_digits, 16)
            if 0xDC00 <= low <= 0xDFFF:
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00)
                nxt += 6
    return cp, nxt


def _translate(pattern: str) -> str:
    out: list[str] = []
    i = 0
    n = len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise _UnsupportedPattern("trailing backslash")
            e = pattern[i + 1]
            if e in "pP":
                name, i = _read_property(pattern, i + 2)
                body = _property_class_body(name)
                if in_class:
                    if e == "P":
                        raise _UnsupportedPattern("\\P{...} inside a character class")
                    out.append(body)
                else:
                    out.append(f"[{'^' if e == 'P' else ''}{body}]")
                continue
            if e == "u":
                cp, i = _read_unicode_escape(pattern, i + 1)
                out.append(_code_point_escape(cp))
                continue
            if e == "x" and i + 2 < n and pattern[i + 2] == "{":
                raise _UnsupportedPattern("\\x{...} escape")
            if e == "z":
                out.append("\\Z")
                i += 2
                continue
            if e in _UNSUPPORTED_ESCAPES:
                raise _UnsupportedPattern(f"\\{e} escape")
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if c == "[":
                raise _UnsupportedPattern("nested character class")
            if c == "&" and pattern.startswith("&&", i):
                raise _UnsupportedPattern("character class intersection")
            if c == "]":
                in_class = False
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append(c)
            i += 1
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            continue
        if c == ".":
            out.append(_JAVA_DOT)
            i += 1
            continue
        if c == "$":
            # Java accepts a quantifier on the end anchor (``...${1,128}`` occurs in the
            # model); {n,m} with n >= 1 means the anchor itself, n == 0 means optional.
            m = re.match(r"\{(\d+)(?:,(\d*))?\}", pattern[i + 1 :])
            if m:
                if int(m.group(1)) >= 1:
                    out.append("$")
                i += 1 + m.end()
                continue
            out.append("$")
            i += 1
            continue
        out.append(c)
        i += 1
    if in_class:
        raise _UnsupportedPattern("unterminated character class")
    return "".join(out)


@functools.cache
def java_pattern(pattern: str) -> re.Pattern[str] | None:
    """Compile a service-model (Java) pattern for ``fullmatch``; ``None`` if untranslatable."""
    try:
        return re.compile(_translate(pattern), re.ASCII)
    except (_UnsupportedPattern, re.error) as exc:
        logger.warning("service-model pattern %r is not enforced: %s", pattern, exc)
        return None


def displayed_pattern(pattern: str) -> str:
    """The pattern as AWS prints it in messages: anchored."""
    shown = pattern if pattern.startswith("^") else "^" + pattern
    return shown if shown.endswith("$") else shown + "$"
