"""Reading rows of a stored dataset a page at a time, without reading the whole object.

Every page starts from a :class:`Cursor`: the 1-based row number (the file line for
``.jsonl``, the element or record number otherwise) and, for the text formats, the byte
offset where that row starts. The cursor of the row after a page goes into the "next"
link, so page 200 of a large ``.jsonl`` file costs one ranged read at its offset, not a
scan from the top. A cursor without an offset (someone typed ``?line=5000``) is honoured
by streaming from the start, which still holds one chunk in memory at a time.

Bytes come from a :class:`RangedFile`: a seekable, read-only file over a ranged-read
function (the object store's ``byte_range`` reads, or S3 ``Range`` GETs). Parquet needs
exactly that: pyarrow reads the footer, then only the row groups a page touches.

Nothing here trusts the data: rows that are not JSON, not UTF-8 or far too long become
rows with an ``error`` (shown as text), never exceptions.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

CHUNK = 1 << 20
#: How much of one row a preview keeps (longer rows are shown cut, with their size).
PREVIEW_ROW_BYTES = 256 * 1024
#: The most any row may hold when it must be parsed whole (evaluation); the validator's limit.
MAX_ROW_BYTES = 64 << 20
PAGE_ROWS = 50
#: A page stops early once it has read this much (a page of 50 huge rows stays bounded).
PAGE_BYTES = 8 << 20

_BOM = b"\xef\xbb\xbf"
_WS = " \t\r\n"


class PreviewError(Exception):
    """The object cannot be previewed at this cursor (bad offset, unreadable file)."""


@dataclass(frozen=True)
class Cursor:
    number: int = 1
    at: int | None = None


@dataclass
class PreviewRow:
    number: int
    at: int | None
    value: Any = None
    raw: str | None = None
    error: str | None = None
    size: int = 0
    truncated: bool = False


@dataclass
class PreviewPage:
    rows: list[PreviewRow] = field(default_factory=list)
    next: Cursor | None = None
    start: Cursor = field(default_factory=Cursor)


class RangedFile(io.RawIOBase):
    """A seekable file over ``fetch(first, last_inclusive) -> bytes``; reads at least CHUNK."""

    def __init__(self, fetch: Callable[[int, int], bytes], size: int, *, chunk: int = CHUNK) -> None:
        super().__init__()
        self._fetch = fetch
        self.size = size
        self._chunk = chunk
        self._pos = 0
        self._buf = b""
        self._buf_at = 0
        self.fetched = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, b: Any) -> int:
        view = memoryview(b).cast("B")
        if self._pos >= self.size or not len(view):
            return 0
        rel = self._pos - self._buf_at
        if not 0 <= rel < len(self._buf):
            last = min(self.size, self._pos + max(len(view), self._chunk)) - 1
            self._buf = self._fetch(self._pos, last)
            self._buf_at = self._pos
            self.fetched += len(self._buf)
            rel = 0
            if not self._buf:
                return 0
        n = min(len(view), len(self._buf) - rel)
        view[:n] = self._buf[rel : rel + n]
        self._pos += n
        return n


# -- JSON Lines --------------------------------------------------------------------------------


def _line_offset(f: RangedFile, line: int) -> int:
    """Byte offset where 1-based ``line`` starts, by counting newlines from the top."""
    f.seek(0)
    pos, seen = 0, 1
    while seen < line:
        chunk = f.read(CHUNK)
        if not chunk:
            raise PreviewError(f"the file has only {seen} line(s); there is no line {line}")
        start = 0
        while seen < line:
            nl = chunk.find(b"\n", start)
            if nl < 0:
                break
            seen += 1
            start = nl + 1
        pos += start if seen == line else len(chunk)
    return pos


def _jsonl_rows(f: RangedFile, start: Cursor, keep: int) -> Iterator[PreviewRow]:
    at = start.at if start.at is not None else _line_offset(f, start.number)
    if at > 0:
        f.seek(at - 1)
        if f.read(1) != b"\n":
            raise PreviewError(f"byte {at} is not the start of a line")
    f.seek(at)
    number, line_at = start.number, at
    kept, size, ended = bytearray(), 0, False
    while not ended:
        chunk = f.read(CHUNK)
        ended = not chunk
        pieces = chunk.split(b"\n") if chunk else [b""]
        for i, piece in enumerate(pieces):
            if len(kept) < keep:
                kept += piece[: keep - len(kept)]
            size += len(piece)
            complete = i < len(pieces) - 1 or ended
            if not complete:
                continue
            if line_at == 0 and kept.startswith(_BOM):
                del kept[:3]
            if kept.strip() or size > len(kept):
                yield _jsonl_row(number, line_at, bytes(kept), size, keep)
            line_at += size + (0 if ended and i == len(pieces) - 1 else 1)
            number += 1
            kept, size = bytearray(), 0


def _jsonl_row(number: int, at: int, data: bytes, size: int, keep: int) -> PreviewRow:
    row = PreviewRow(number, at, size=size)
    if data.endswith(b"\r"):
        data = data[:-1]
    text = data.decode("utf-8", "replace")
    row.raw = text
    if size > keep:
        row.truncated = True
        row.error = f"row of {size:,} bytes; the preview shows its first {keep:,}"
        return row
    try:
        data.decode("utf-8")
        row.value = json.loads(text)
    except UnicodeDecodeError as exc:
        row.error = f"not valid UTF-8 (byte {exc.start})"
    except ValueError as exc:
        row.error = f"not valid JSON: {exc}"
    return row


# -- JSON array --------------------------------------------------------------------------------


class _TextStream:
    """Decoded text from a byte offset, with exact byte positions (surrogateescape)."""

    def __init__(self, f: RangedFile, at: int) -> None:
        f.seek(at)
        self.f = f
        self.base = at  # byte offset of text[0]
        self.text = ""
        self.eof = False
        self._dec = codecs.getincrementaldecoder("utf-8")("surrogateescape")

    def more(self) -> bool:
        if self.eof:
            return False
        chunk = self.f.read(CHUNK)
        self.eof = not chunk
        self.text += self._dec.decode(chunk, final=self.eof)
        return bool(chunk)

    def byte_at(self, index: int) -> int:
        return self.base + len(self.text[:index].encode("utf-8", "surrogateescape"))

    def drop(self, index: int) -> None:
        self.base = self.byte_at(index)
        self.text = self.text[index:]

    def skip_ws(self, index: int) -> int:
        while True:
            while index < len(self.text) and self.text[index] in _WS:
                index += 1
            if index < len(self.text) or not self.more():
                return index


def _json_rows(f: RangedFile, start: Cursor, limit_bytes: int) -> Iterator[PreviewRow]:
    decoder = json.JSONDecoder()
    if start.at is None or start.at == 0:
        s = _TextStream(f, 0)
        s.more()
        i = s.skip_ws(1 if s.text.startswith("\ufeff") else 0)
        if i >= len(s.text) or s.text[i] != "[":
            raise PreviewError("a .json dataset must be one JSON array of rows")
        i = s.skip_ws(i + 1)
        if i < len(s.text) and s.text[i] == "]":
            return
        number, skip = 1, start.number - 1 if start.at is None else 0
    else:
        s = _TextStream(f, start.at)
        i = s.skip_ws(0)
        number, skip = start.number, 0
    while True:
        s.drop(i)
        i = 0
        at = s.base
        while True:
            try:
                value, end = decoder.raw_decode(s.text, 0)
                if end < len(s.text) or s.eof:
                    break
            except ValueError as exc:
                # An element cut by the end of what was read fails near the end, or as an
                # unterminated string (reported where the string starts): read on.
                pos = getattr(exc, "pos", 0)
                cut = pos >= len(s.text) - 8 or str(exc).startswith("Unterminated string")
                if s.eof or not cut:
                    if skip <= 0:
                        yield PreviewRow(number, at, raw=s.text[:PREVIEW_ROW_BYTES],
                                         error=f"not valid JSON: {exc}")
                    return
            if len(s.text) > limit_bytes:
                if skip <= 0:
                    yield PreviewRow(number, at, raw=s.text[:PREVIEW_ROW_BYTES],
                                     error=f"element larger than {limit_bytes:,} bytes", truncated=True)
                return
            s.more()
        size = s.byte_at(end) - at
        if skip > 0:
            skip -= 1
        else:
            yield PreviewRow(number, at, value=value, raw=s.text[:end][:PREVIEW_ROW_BYTES], size=size)
        number += 1
        i = s.skip_ws(end)
        if i >= len(s.text):
            return
        if s.text[i] == "]":
            return
        if s.text[i] != ",":
            yield PreviewRow(number, s.byte_at(i), raw=s.text[i : i + 200],
                             error="expected ',' or ']' between rows")
            return
        i = s.skip_ws(i + 1)


# -- CSV ---------------------------------------------------------------------------------------


class _LineFeed:
    """Text lines for ``csv.reader`` that count the bytes they hand out."""

    def __init__(self, f: RangedFile, at: int, limit: int) -> None:
        f.seek(at)
        self.f = f
        self.pos = at
        self.limit = limit
        self._pending = b""
        self._eof = False
        self.too_long = False

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        while True:
            nl = self._pending.find(b"\n")
            if nl >= 0 or self._eof:
                break
            if len(self._pending) > self.limit:
                self.too_long = True
                raise StopIteration
            chunk = self.f.read(CHUNK)
            self._eof = not chunk
            self._pending += chunk
        if nl < 0:
            line, self._pending = self._pending, b""
        else:
            line, self._pending = self._pending[: nl + 1], self._pending[nl + 1 :]
        if not line:
            raise StopIteration
        start = self.pos
        self.pos += len(line)
        if start == 0 and line.startswith(_BOM):
            line = line[3:]
        return line.decode("utf-8", "replace")


def _csv_rows(f: RangedFile, start: Cursor, limit_bytes: int) -> Iterator[PreviewRow]:
    head = _LineFeed(f, 0, limit_bytes)
    header = next(csv.reader(head), None)
    if header is None:
        return
    at = head.pos if start.at is None or start.at == 0 else start.at
    skip = start.number - 1 if start.at is None else 0
    number = 1 if start.at is None else start.number
    feed = _LineFeed(f, at, limit_bytes)
    reader = csv.reader(feed)
    while True:
        row_at = feed.pos
        try:
            values = next(reader)
        except StopIteration:
            if feed.too_long:
                yield PreviewRow(number, row_at, error=f"record longer than {limit_bytes:,} bytes")
            return
        except csv.Error as exc:
            yield PreviewRow(number, row_at, error=f"not valid CSV: {exc}")
            return
        if not values:
            continue
        if skip > 0:
            skip -= 1
            number += 1
            continue
        row = PreviewRow(number, row_at, value=dict(zip(header, values, strict=False)),
                         size=feed.pos - row_at)
        if len(values) != len(header):
            row.error = f"{len(values)} field(s), the header has {len(header)}"
            row.raw = ",".join(values)
        yield row
        number += 1


# -- Parquet -----------------------------------------------------------------------------------


def _parquet_rows(f: RangedFile, start: Cursor) -> Iterator[PreviewRow]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(f)
    except Exception as exc:  # pyarrow raises several types for a bad footer
        raise PreviewError(f"not a readable Parquet file: {exc}") from None
    meta = pf.metadata
    first = start.number - 1
    base = 0
    for group in range(meta.num_row_groups):
        count = meta.row_group(group).num_rows
        if base + count <= first:
            base += count
            continue
        number = base + 1
        for batch in pf.iter_batches(batch_size=256, row_groups=[group]):
            for value in batch.to_pylist():
                if number > first:
                    yield PreviewRow(number, None, value=jsonable(value))
                number += 1
        base += count


def jsonable(value: Any) -> Any:
    """Parquet values as JSON-shaped data (bytes and timestamps as text)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


# -- entry points ------------------------------------------------------------------------------


def iter_rows(f: RangedFile, file_type: str, start: Cursor = Cursor(), *,
              row_bytes: int = PREVIEW_ROW_BYTES) -> Iterator[PreviewRow]:
    """Rows from ``start`` to the end; ``row_bytes`` bounds what one row may hold."""
    if start.number < 1 or (start.at is not None and not 0 <= start.at <= f.size):
        raise PreviewError("the row position is out of range")
    if file_type == "jsonl":
        return _jsonl_rows(f, start, row_bytes)
    if file_type == "json":
        return _json_rows(f, start, max(row_bytes, MAX_ROW_BYTES))
    if file_type == "csv":
        return _csv_rows(f, start, max(row_bytes, MAX_ROW_BYTES))
    if file_type == "parquet":
        return _parquet_rows(f, start)
    raise PreviewError(f"no preview for .{file_type} files")


def read_page(f: RangedFile, file_type: str, start: Cursor, limit: int = PAGE_ROWS) -> PreviewPage:
    """Up to ``limit`` rows from ``start`` and the cursor of the row after them."""
    page = PreviewPage(start=start)
    rows = iter_rows(f, file_type, start)
    fetched_before = f.fetched
    for row in rows:
        if len(page.rows) >= limit or f.fetched - fetched_before > PAGE_BYTES:
            page.next = Cursor(row.number, row.at)
            break
        page.rows.append(row)
    return page


def file_type_of(key: str) -> str | None:
    lower = key.lower()
    for ext in ("jsonl", "json", "csv", "parquet"):
        if lower.endswith("." + ext):
            return ext
    return None
