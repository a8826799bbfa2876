"""Row previews read pages by cursor over ranged reads, never the whole object."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airegistry.ui.preview import (
    MAX_ROW_BYTES,
    Cursor,
    PreviewError,
    RangedFile,
    iter_rows,
    read_page,
)


def ranged(data: bytes, chunk: int = 1 << 20, short: int | None = None) -> RangedFile:
    """``short``: every ranged read returns at most that many bytes (a slow network)."""
    def fetch(first: int, last: int) -> bytes:
        end = last + 1 if short is None else min(last + 1, first + short)
        return data[first:end]

    return RangedFile(fetch, len(data), chunk=chunk)


def jsonl(rows: list) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


def test_jsonl_pages_resume_at_the_byte_offset_of_the_next_line() -> None:
    data = jsonl([{"prompt": f"p{i}", "completion": "c"} for i in range(1, 121)])
    f = ranged(data, chunk=64)
    first = read_page(f, "jsonl", Cursor())
    assert [r.number for r in first.rows] == list(range(1, 51))
    assert first.next is not None and first.next.number == 51
    assert data[first.next.at - 1 : first.next.at] == b"\n"
    second = read_page(f, "jsonl", first.next)
    assert second.rows[0].value["prompt"] == "p51"
    third = read_page(f, "jsonl", second.next)
    assert [r.number for r in third.rows] == list(range(101, 121)) and third.next is None
    # The same page by line number alone (a typed URL) streams to it.
    assert read_page(f, "jsonl", Cursor(101)).rows[0].value == third.rows[0].value


def test_jsonl_line_numbers_count_blank_lines_and_accept_bom_and_crlf() -> None:
    data = b"\xef\xbb\xbf" + b'{"a": 1}\r\n\r\n  \n{"a": 2}\r\n{"a": 3}'
    rows = read_page(ranged(data, chunk=5), "jsonl", Cursor()).rows
    assert [(r.number, r.value) for r in rows] == [(1, {"a": 1}), (4, {"a": 2}), (5, {"a": 3})]


def test_jsonl_bad_rows_become_rows_with_errors() -> None:
    data = b'{"a": 1}\n{not json\n\xff\xfe\n[1, 2]\n'
    rows = read_page(ranged(data), "jsonl", Cursor()).rows
    assert rows[1].error.startswith("not valid JSON") and rows[1].raw == "{not json"
    assert rows[2].error.startswith("not valid UTF-8")
    assert rows[3].value == [1, 2] and rows[3].error is None


def test_jsonl_offset_that_is_not_a_line_start_is_refused() -> None:
    data = jsonl([{"a": i} for i in range(10)])
    with pytest.raises(PreviewError, match="not the start of a line"):
        read_page(ranged(data), "jsonl", Cursor(2, 3))
    with pytest.raises(PreviewError, match="out of range"):
        read_page(ranged(data), "jsonl", Cursor(2, len(data) + 5))
    with pytest.raises(PreviewError, match="only"):
        read_page(ranged(data), "jsonl", Cursor(500))


def test_a_huge_row_is_cut_in_the_preview_and_the_next_rows_stay_right() -> None:
    big = json.dumps({"prompt": "x" * 600_000, "completion": "y"})
    data = jsonl([{"a": 1}, big, {"a": 3}])
    rows = read_page(ranged(data, chunk=4096), "jsonl", Cursor()).rows
    assert rows[1].truncated and rows[1].size == len(big) and rows[1].value is None
    assert len(rows[1].raw) == 256 * 1024
    assert rows[2].number == 3 and rows[2].value == {"a": 3}
    whole = list(iter_rows(ranged(data), "jsonl", row_bytes=MAX_ROW_BYTES))
    assert whole[1].value["prompt"] == "x" * 600_000


def test_a_page_of_a_large_file_reads_only_what_it_shows() -> None:
    row = json.dumps({"prompt": "q" * 200, "completion": "a" * 200})
    data = ("\n".join([row] * 60_000) + "\n").encode()  # ~24 MB
    f = ranged(data)
    page = read_page(f, "jsonl", Cursor())
    assert len(page.rows) == 50 and f.fetched <= 1 << 20
    f2 = ranged(data)
    deep = read_page(f2, "jsonl", Cursor(40_001, 40_000 * (len(row) + 1)))
    assert deep.rows[0].number == 40_001 and f2.fetched <= 1 << 20


def test_json_arrays_are_split_into_elements_with_offsets() -> None:
    rows = [{"prompt": f'tricky "}}, {i}" {{[', "completion": {"nested": [i, "]"]}} for i in range(1, 81)]
    data = ("[\n  " + ",\n  ".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n]").encode()
    f = ranged(data, chunk=100)
    page = read_page(f, "json", Cursor())
    assert [r.value for r in page.rows] == rows[:50]
    nxt = read_page(f, "json", page.next)
    assert nxt.rows[0].number == 51 and [r.value for r in nxt.rows] == rows[50:]
    assert nxt.next is None
    assert read_page(f, "json", Cursor(51)).rows[0].value == rows[50]


@pytest.mark.parametrize("short", [1, 7, 64])
def test_short_reads_split_rows_anywhere(short: int) -> None:
    rows = [{"prompt": f'"}}, ✓ {i} ' + "x" * i, "completion": {"n": [i, "]"]}} for i in range(1, 61)]
    as_json = ("[" + ", ".join(json.dumps(r, ensure_ascii=False) for r in rows) + "]").encode()
    as_jsonl = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode()
    for file_type, data in (("json", as_json), ("jsonl", as_jsonl)):
        f = ranged(data, short=short)
        page = read_page(f, file_type, Cursor())
        assert [r.value for r in page.rows] == rows[:50], file_type
        assert [r.value for r in read_page(f, file_type, page.next).rows] == rows[50:]
    out = io.StringIO()
    csv.writer(out).writerows([["prompt"]] + [[f"a\nb {i} ✓"] for i in range(1, 61)])
    f = ranged(out.getvalue().encode(), short=short)
    page = read_page(f, "csv", Cursor())
    assert read_page(f, "csv", page.next).rows[-1].value == {"prompt": "a\nb 60 ✓"}


def test_json_with_unicode_and_a_broken_element() -> None:
    data = '\ufeff[{"a": "日本語 ✓"}, {"a": 2,, }, {"a": 3}]'.encode()
    rows = read_page(ranged(data, chunk=7), "json", Cursor()).rows
    assert rows[0].value == {"a": "日本語 ✓"}
    assert rows[1].error.startswith("not valid JSON") and len(rows) == 2
    with pytest.raises(PreviewError, match="one JSON array"):
        read_page(ranged(b'{"a": 1}'), "json", Cursor())
    assert read_page(ranged(b"[ ]"), "json", Cursor()).rows == []


def test_csv_rows_with_quoted_newlines_resume_at_offsets() -> None:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["prompt", "completion"])
    for i in range(1, 61):
        writer.writerow([f"line one\nline two {i}", f"c{i}"])
    data = out.getvalue().encode()
    f = ranged(data, chunk=50)
    page = read_page(f, "csv", Cursor())
    assert page.rows[0].value == {"prompt": "line one\nline two 1", "completion": "c1"}
    nxt = read_page(f, "csv", page.next)
    assert nxt.rows[0].number == 51 and nxt.rows[0].value["completion"] == "c51"
    assert read_page(f, "csv", Cursor(51)).rows[0].value == nxt.rows[0].value
    short = read_page(ranged(b"a,b\n1\n"), "csv", Cursor()).rows[0]
    assert "1 field(s), the header has 2" in short.error


def test_parquet_reads_only_the_row_groups_it_needs(tmp_path: Path) -> None:
    path = tmp_path / "x.parquet"
    n = 40_000
    pq.write_table(pa.table({"prompt": [f"prompt number {i} " * 5 for i in range(1, n + 1)],
                             "n": list(range(1, n + 1))}), path, row_group_size=4000)
    data = path.read_bytes()
    f = ranged(data, chunk=65536)
    page = read_page(f, "parquet", Cursor(26_001))
    assert [r.value["n"] for r in page.rows] == list(range(26_001, 26_051))
    assert page.next == Cursor(26_051, None)
    assert f.fetched < len(data) / 4  # the footer and one row group of ten
    with pytest.raises(PreviewError, match="Parquet"):
        read_page(ranged(b"not parquet at all"), "parquet", Cursor())
