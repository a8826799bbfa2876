"""JSON Lines: the fast path of the validator.

Bytes are read in large chunks (8 MiB); the complete lines of a chunk are decoded in
batches of about 256 KiB *at once* with ``msgspec.json.Decoder(type).decode_lines``, so
valid data costs one C call per few hundred rows instead of one Python call per line, and
the decoded rows are still in the CPU cache when their statistics are taken. A batch is
only taken apart line by line (in windows of :data:`WINDOW` lines, each retried with one
typed decode per line) when something is off: a decode error, a blank line, a row spread
over several lines, or a line over the length limit. This keeps the error path exact
(every bad line, with its number) without slowing down clean data.

A line longer than ``max_line_bytes`` is never held whole: once the partial line passes
the limit its bytes are dropped and the reader skips to the next newline.
"""

from __future__ import annotations

from .engine import DECODE_ERRORS, RowValidator
from .sources import CHUNK_SIZE, BinaryReadable

WINDOW = 256
BATCH = 256 << 10
BOM = b"\xef\xbb\xbf"


def validate_jsonl(
    src: BinaryReadable,
    v: RowValidator,
    *,
    first_line: int = 1,
    strip_bom: bool = True,
    chunk_size: int = CHUNK_SIZE,
) -> int:
    """Validate every line of ``src`` into ``v``; returns the number of lines read."""
    max_line = v.limits.max_line_bytes
    # Lines inside one read are at most ``chunk_size`` long, so the per-batch length
    # check is only needed when the limit is below that.
    long_line = max_line if max_line < chunk_size else None
    line = first_line
    pending: list[bytes] = []  # parts of a line not yet terminated
    pending_len = 0
    skipping = 0  # >0: inside an over-long line, this many bytes dropped so far
    first = strip_bom
    while True:
        data = src.read(chunk_size)
        if first and data:
            first = False
            while len(data) < len(BOM) and BOM.startswith(data):  # tiny reads
                more = src.read(chunk_size)
                if not more:
                    break
                data += more
            if data.startswith(BOM):
                data = data[len(BOM) :]
                if not data:
                    continue
        if not data:
            break
        start = 0
        if skipping:
            nl = data.find(b"\n")
            if nl < 0:
                skipping += len(data)
                continue
            v.rows += 1
            v.error(line, "$", v.too_long_message(skipping + nl))
            line += 1
            skipping = 0
            start = nl + 1
        last = data.rfind(b"\n", start)
        if last < 0:
            pending.append(data[start:] if start else data)
            pending_len += len(data) - start
            if pending_len > max_line:
                skipping, pending, pending_len = pending_len, [], 0
            continue
        if pending:
            nl = data.find(b"\n", start)
            size = pending_len + nl - start
            if size > max_line:
                v.rows += 1
                v.error(line, "$", v.too_long_message(size))
            else:
                pending.append(data[start : nl + 1])
                _region(b"".join(pending), 0, size + 1, line, v, long_line)
            line += 1
            pending, pending_len = [], 0
            start = nl + 1
        if last + 1 > start:
            line += _region(data, start, last + 1, line, v, long_line)
        if last + 1 < len(data):
            pending.append(data[last + 1 :])
            pending_len = len(data) - last - 1
    if skipping:
        v.rows += 1
        v.error(line, "$", v.too_long_message(skipping))
        line += 1
    elif pending:
        tail = b"".join(pending)
        line += _region(tail, 0, len(tail), line, v, long_line)
    return line - first_line


def _region(
    data: bytes, start: int, end: int, line: int, v: RowValidator, long_line: int | None
) -> int:
    """Validate the complete lines ``data[start:end]`` (the last may lack its newline).

    Works in batches of about :data:`BATCH` bytes so that the rows decoded by one
    ``decode_lines`` call are still in the CPU cache when their statistics are taken
    (and so that at most one batch of decoded rows is alive at a time).
    """
    total = 0
    pos = start
    while pos < end:
        stop = end if end - pos <= BATCH else data.rfind(b"\n", pos, pos + BATCH) + 1
        if stop <= pos:  # one line longer than a batch
            nl = data.find(b"\n", pos + BATCH, end)
            stop = end if nl < 0 else nl + 1
        n = _batch(data, pos, stop, line + total, v, long_line)
        total += n
        pos = stop
    return total


def _clean_line_count(data: bytes, start: int, end: int) -> int:
    """Number of lines in ``data[start:end]`` if every line starts with ``{`` and ends
    with ``}`` (before an optional CR), else -1.

    Then every newline is a row boundary (``}`` followed by ``{`` is never valid *inside*
    a JSON value), so if ``decode_lines`` returns as many rows as there are lines, each
    line held exactly one row: no blank line, no row spread over several lines, no line
    holding two rows. For long lines a ``find`` loop costs less than scanning every byte
    twice (``count``), for short ones the C-level counts win.
    """
    last = end - 1
    trailing = data[last] == 0x0A
    if trailing:
        last -= 1
    if last >= start and data[last] == 0x0D:
        last -= 1
    if last < start or data[start] != 0x7B or data[last] != 0x7D:
        return -1
    if data.count(b"\n", start, min(end, start + 16384)) < 32:  # lines of >~512 bytes
        find = data.find
        n = 0
        i = find(b"\n", start, end)
        while i >= 0:
            n += 1
            if i == end - 1:
                break
            before = data[i - 1]
            if before == 0x0D:
                before = data[i - 2]
            if before != 0x7D or data[i + 1] != 0x7B:
                return -1
            i = find(b"\n", i + 1, end)
        return n if trailing else n + 1
    n = data.count(b"\n", start, end)
    interior = n - 1 if trailing else n
    if interior:
        crlf = last + 1 < end and data[last + 1] == 0x0D
        if data.count(b"}\r\n{" if crlf else b"}\n{", start, end) != interior:
            return -1
    return n if trailing else n + 1


def _batch(
    data: bytes, start: int, end: int, line: int, v: RowValidator, long_line: int | None
) -> int:
    dec = v.decoder
    if dec is not None and (long_line is None or not _has_long_line(data, start, end, long_line)):
        n_lines = _clean_line_count(data, start, end)
        if n_lines > 0:
            try:
                rows = dec.decode_lines(memoryview(data)[start:end])
            except DECODE_ERRORS:
                rows = None
            if rows is not None and len(rows) == n_lines:
                v.accept_rows(rows, line)
                return n_lines
    lines = data[start:end].split(b"\n")
    if data[end - 1] == 0x0A:
        lines.pop()
    _windows(lines, line, v, long_line)
    return len(lines)


def _has_long_line(data: bytes, start: int, end: int, limit: int) -> bool:
    """Whether a line of ``data[start:end]`` exceeds ``limit`` bytes (one ``find`` per line;
    a regex like ``[^\\n]{limit+1}`` would rescan each line from every offset)."""
    if end - start <= limit:
        return False
    find = data.find
    prev = start
    i = find(b"\n", start, end)
    while i >= 0:
        if i - prev > limit:
            return True
        prev = i + 1
        i = find(b"\n", prev, end)
    return end - prev > limit


def _windows(
    lines: list[bytes], line: int, v: RowValidator, long_line: int | None
) -> None:
    i = 0
    n = len(lines)
    while i < n:
        if v.decoder is None:  # format not detected yet: one line at a time
            v.check_line(lines[i], line + i)
            i += 1
            continue
        window = lines[i : i + WINDOW]
        rows = None
        if long_line is None or not any(len(raw) > v.limits.max_line_bytes for raw in window):
            try:  # one decode per line: exact even for blank or multi-value lines
                rows = list(map(v.decoder.decode, window))
            except DECODE_ERRORS:
                rows = None
        if rows is not None and len(rows) == len(window):
            v.accept_rows(rows, line + i)
        else:
            for k, raw in enumerate(window):
                v.check_line(raw, line + i + k)
        i += len(window)
