"""``.json`` files: one JSON array of row objects, validated without loading it whole.

msgspec has no incremental parser, so elements are delimited by *trial*: for an object
element starting at ``{`` the candidate ends are the ``}`` followed by ``,`` or ``]``. A
candidate that cuts the element too early (inside a string, or at a nested ``}``) is a
proper prefix of a JSON value, which msgspec reports as truncated input – so we extend to
the next candidate. Any other decode error means the element itself is malformed: the
report says where, and validation of the file stops there because the rows after it can
no longer be delimited reliably. Candidates are found by a C-level regex search, so the
per-row cost is one search plus one decode.
"""

from __future__ import annotations

import re

import msgspec

from .engine import DECODE_ERRORS, RowValidator
from .jsonl import BOM
from .sources import CHUNK_SIZE, ByteSource

_WS = b" \t\r\n"
_OBJECT_END = re.compile(rb"\}[ \t\r\n]*([,\]])")
_VALUE_END = re.compile(rb"[ \t\r\n]*([,\]])")


class _Buffer:
    """The unread tail of the source plus everything read after it."""

    def __init__(self, src: ByteSource) -> None:
        self.src = src
        self.data = b""
        self.pos = 0
        self.eof = False

    def more(self) -> bool:
        if self.eof:
            return False
        chunk = self.src.read(CHUNK_SIZE)
        if not chunk:
            self.eof = True
            return False
        self.data = self.data[self.pos :] + chunk
        self.pos = 0
        return True

    def skip_ws(self) -> int | None:
        """Position of the next non-whitespace byte (reading as needed), None at EOF."""
        while True:
            d, p = self.data, self.pos
            while p < len(d) and d[p] in _WS:
                p += 1
            self.pos = p
            if p < len(d):
                return p
            if not self.more():
                return None


def _truncated(exc: Exception) -> bool:
    return isinstance(exc, msgspec.DecodeError) and "truncated" in str(exc)


def validate_json_array(src: ByteSource, v: RowValidator) -> int:
    """Validate every element of the array in ``src``; returns the number of elements."""
    buf = _Buffer(src)
    while len(buf.data) < len(BOM) and buf.more():  # a stream may return tiny reads
        pass
    if buf.data.startswith(BOM):
        buf.pos = len(BOM)
    p = buf.skip_ws()
    if p is None:
        v.error(0, "$", "the file is empty")
        return 0
    if buf.data[p] != 0x5B:  # "["
        kind = {0x7B: "an object"}.get(buf.data[p], "not an array")
        v.error(1, "$", f"a .json dataset must be a JSON array of rows, but the file holds {kind}"
                + (" (JSON Lines? use the .jsonl extension)" if kind == "an object" else ""))
        return 0
    buf.pos = p + 1
    row = 0
    max_line = v.limits.max_line_bytes
    while True:
        p = buf.skip_ws()
        if p is None:
            v.error(row + 1, "$", "unexpected end of file inside the array (missing `]`)")
            return row
        if buf.data[p] == 0x5D and row == 0:  # "]" of an empty array
            buf.pos = p + 1
            break
        row += 1
        pattern = _OBJECT_END if buf.data[p] == 0x7B else _VALUE_END
        search_from = p
        while True:
            m = pattern.search(buf.data, search_from)
            if m is None:
                if buf.pos < len(buf.data) and len(buf.data) - p > max_line:
                    v.rows += 1
                    v.error(row, "$", v.too_long_message(len(buf.data) - p))
                    v.error(row, "$", "validation stopped: the rest of the array cannot be delimited")
                    return row
                offset = search_from - p
                if not buf.more():
                    v.rows += 1
                    v.error(row, "$", "invalid JSON: the array is not terminated by `]`")
                    return row
                p = buf.pos
                search_from = p + offset
                continue
            end = m.start(1)
            piece = buf.data[p:end]
            if len(piece) > max_line:
                v.check_line(piece, row)  # reports the over-long row
                break
            if v.decoder is not None:
                try:
                    decoded = v.decoder.decode(piece)
                except DECODE_ERRORS:
                    pass
                else:
                    v.accept_rows([decoded], row)
                    break
            try:
                msgspec.json.decode(piece)
            except DECODE_ERRORS as exc:
                if _truncated(exc):
                    search_from = m.end()
                    continue
                # Malformed: report it, then stop (later rows cannot be delimited).
                v.check_line(piece, row)
                v.error(row, "$", "validation stopped: the rest of the array cannot be delimited")
                return row
            v.check_line(piece, row)  # valid JSON, invalid row: explain every field
            break
        buf.pos = m.end()
        if m.group(1) == b"]":
            break
    p = buf.skip_ws()
    if p is not None:
        v.error(row + 1, "$", "unexpected data after the end of the array")
    if row == 0:
        v.error(0, "$", "the array is empty: a dataset needs at least one row")
    return row
