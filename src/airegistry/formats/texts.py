"""Text-field statistics and the rules msgspec types cannot express cheaply.

Everything here works on *batches* of decoded Structs. For the common formats the work is
done with C-level ``map``/``min``/``max``/``sum`` over attribute getters, so the per-row
Python cost stays a small fraction of the decode cost; only when a batch contains a
whitespace-only text (rare) do we walk rows one by one to find the exact JSON paths.

Statistic keys are JSON paths with the indices removed: ``prompt``,
``messages[].content``, ``messages[].content[].text``, ``samples[].completion``…
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import chain
from operator import attrgetter, eq
from typing import Any

from msgspec import UNSET, Struct

from .report import FieldStats
from .schemas import TextPart

TEXT_FIELDS = frozenset(
    {"prompt", "completion", "chosen", "rejected", "input", "output", "query", "content",
     "text", "response", "system"}
)
OPTIONAL_TEXT = frozenset({"response", "system"})

# (attribute, kind): "str" always a str; "text" str or messages; "opt..." may be absent.
_FAST: dict[str, tuple[tuple[str, str], ...]] = {
    "prompt_completion": (("prompt", "text"), ("completion", "text")),
    "input_output": (("input", "str"), ("output", "str")),
    "chat": (("messages", "msgs"),),
    "preference": (("prompt", "opttext"), ("input", "opttext"), ("chosen", "text"),
                   ("rejected", "text")),
    "prompt_only": (("prompt", "text"),),
    "verl": (("prompt", "text"),),
    "genqa": (("query", "str"), ("response", "optstr"), ("system", "optstr")),
}

_get_content = attrgetter("content")

Acc = dict[str, list[int]]  # key -> [count, min, max, total]
# (row index in batch, path, message, is_error)
BatchIssue = tuple[int, str, str, bool]


def add_lengths(acc: Acc, key: str, lens: Sequence[int]) -> None:
    if not lens:
        return
    n, lo, hi, total = len(lens), min(lens), max(lens), sum(lens)
    a = acc.get(key)
    if a is None:
        acc[key] = [n, lo, hi, total]
    else:
        a[0] += n
        if lo < a[1]:
            a[1] = lo
        if hi > a[2]:
            a[2] = hi
        a[3] += total


def merge(acc: Acc, other: Acc) -> None:
    """Fold ``other`` into ``acc``; integer totals keep the merge exact (parallel == serial)."""
    for key, (n, lo, hi, total) in other.items():
        a = acc.get(key)
        if a is None:
            acc[key] = [n, lo, hi, total]
        else:
            a[0] += n
            a[1] = min(a[1], lo)
            a[2] = max(a[2], hi)
            a[3] += total


def finish(acc: Acc) -> dict[str, FieldStats]:
    return {
        k: FieldStats(count=n, min_chars=lo, mean_chars=round(total / n, 3), max_chars=hi)
        for k, (n, lo, hi, total) in sorted(acc.items())
        if n
    }


def walk(obj: Struct, path: str = "$", key: str = "") -> Iterator[tuple[str, str, str, bool]]:
    """Yield ``(stat key, json path, text, required)`` for every text field of a row."""
    for name in obj.__struct_fields__:
        v = getattr(obj, name)
        if v is UNSET or v is None:
            continue
        p = f"{path}.{name}"
        k = f"{key}.{name}" if key else name
        if type(v) is str:
            if name in TEXT_FIELDS:
                yield k, p, v, name not in OPTIONAL_TEXT
        elif type(v) is list:
            for i, item in enumerate(v):
                if isinstance(item, Struct):
                    yield from walk(item, f"{p}[{i}]", f"{k}[]")
        elif isinstance(v, Struct):
            yield from walk(v, p, k)


def _add_strings(acc: Acc, key: str, strs: list[str], check: bool) -> bool:
    add_lengths(acc, key, list(map(len, strs)))
    return check and any(map(str.isspace, strs))


def _add_messages(acc: Acc, key: str, message_lists: list[Any]) -> bool:
    contents = list(map(_get_content, chain.from_iterable(message_lists)))
    try:
        # str.isspace doubles as the type check: it raises on a list of content parts
        bad = any(map(str.isspace, contents))
    except TypeError:
        strs = [c for c in contents if type(c) is str]
        parts = [p.text for c in contents if type(c) is list for p in c if type(p) is TextPart]
        bad = _add_strings(acc, f"{key}[].content", strs, True)
        return _add_strings(acc, f"{key}[].content[].text", parts, True) or bad
    add_lengths(acc, f"{key}[].content", list(map(len, contents)))
    return bad


def _fast(specs: tuple[tuple[str, str], ...], rows: list[Any], acc: Acc) -> bool:
    suspicious = False
    for attr, kind in specs:
        vals = list(map(attrgetter(attr), rows))
        if kind.startswith("opt"):
            vals = [v for v in vals if v is not UNSET and v is not None]
            kind = kind[3:]
        if kind == "msgs":
            suspicious |= _add_messages(acc, attr, vals)
        elif kind == "str" or set(map(type, vals)) <= {str}:
            suspicious |= _add_strings(acc, attr, vals, attr not in OPTIONAL_TEXT)
        else:
            suspicious |= _add_strings(acc, attr, [v for v in vals if type(v) is str], True)
            suspicious |= _add_messages(acc, attr, [v for v in vals if type(v) is list])
    return suspicious


def _whitespace_issues(rows: list[Any]) -> list[BatchIssue]:
    return [
        (i, path, "must not be empty or whitespace only", True)
        for i, row in enumerate(rows)
        for _, path, text, required in walk(row)
        if required and text.isspace()
    ]


def check_batch(format_name: str, rows: list[Any], acc: Acc) -> list[BatchIssue]:
    """Record statistics of ``rows`` (all valid for the format's type) and return the
    remaining rule violations, ordered by row."""
    specs = _FAST.get(format_name)
    issues: list[BatchIssue] = []
    if specs is not None:
        if _fast(specs, rows, acc):
            issues = _whitespace_issues(rows)
    else:
        lens: dict[str, list[int]] = {}
        for i, row in enumerate(rows):
            for key, path, text, required in walk(row):
                lens.setdefault(key, []).append(len(text))
                if required and text.isspace():
                    issues.append((i, path, "must not be empty or whitespace only", True))
        for key, values in lens.items():
            add_lengths(acc, key, values)
    if format_name == "preference":
        same = list(map(eq, map(attrgetter("chosen"), rows), map(attrgetter("rejected"), rows)))
        if any(same):
            issues.extend(
                (i, "$.rejected", "`chosen` and `rejected` are identical", False)
                for i, s in enumerate(same)
                if s
            )
            issues.sort(key=lambda t: t[0])
    return issues
