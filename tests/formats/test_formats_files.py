""".json, .csv and .parquet specifics: structure errors, headers, column types."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
from fmt_helpers import GOOD, write

from airegistry.formats import ValidationLimits, validate

PC = GOOD["prompt_completion"]


# ------------------------------------------------------------------------- .json
def test_json_not_an_array(tmp_path) -> None:
    r = validate(write(tmp_path, "a.json", json.dumps(PC)))
    assert not r.valid and "must be a JSON array" in r.errors[0].message
    r = validate(write(tmp_path, "b.json", "42"))
    assert not r.valid and "must be a JSON array" in r.errors[0].message


def test_json_empty_file_and_empty_array(tmp_path) -> None:
    assert "empty" in validate(write(tmp_path, "a.json", b"  \n")).errors[0].message
    assert "empty" in validate(write(tmp_path, "b.json", b"[ ]")).errors[0].message


def test_json_row_errors_with_row_numbers(tmp_path) -> None:
    tricky = {"prompt": 'has },{ and }] inside', "completion": "x", "n": {"a": {"b": [{}]}}}
    rows = [PC, tricky, {"prompt": "p", "completion": 1}, [1, 2], "str", PC]
    r = validate(write(tmp_path, "a.json", json.dumps(rows, indent=1)))
    assert r.rows == 6
    assert [(e.line, e.path) for e in r.errors] == [(3, "$.completion"), (4, "$"), (5, "$")]


def test_json_malformed_element_stops(tmp_path) -> None:
    text = '[{"prompt": "a", "completion": "b"}, {"prompt": "a" "completion": "b"}, {"x": 1}]'
    r = validate(write(tmp_path, "a.json", text))
    assert not r.valid and r.errors[0].line == 2 and "invalid JSON" in r.errors[0].message
    assert "stopped" in r.errors[-1].message


def test_json_unterminated_and_trailing_data(tmp_path) -> None:
    r = validate(write(tmp_path, "a.json", '[{"prompt": "a", "completion": "b"}'))
    assert not r.valid and "not terminated" in r.errors[0].message
    r = validate(write(tmp_path, "b.json", '[{"prompt": "a", "completion": "b"}] xx'))
    assert not r.valid and "after the end" in r.errors[0].message


def test_json_bom_and_large_array_across_reads(tmp_path) -> None:
    rows = [{"prompt": f"p{i} " + "ü" * (i % 50), "completion": "c"} for i in range(30_000)]
    rows[25_000] = {"prompt": "p"}
    data = b"\xef\xbb\xbf" + json.dumps(rows).encode()
    r = validate(write(tmp_path, "a.json", data))
    assert r.rows == 30_000 and [e.line for e in r.errors] == [25_001]


def test_json_element_over_line_limit(tmp_path) -> None:
    rows = [PC, {"prompt": "x" * 5000, "completion": "y"}, PC]
    r = validate(write(tmp_path, "a.json", json.dumps(rows)),
                 limits=ValidationLimits(max_line_bytes=1000))
    assert [e.line for e in r.errors] == [2] and "over the limit" in r.errors[0].message


# ------------------------------------------------------------------------- .csv
def test_csv_good_with_quotes_and_newlines(tmp_path) -> None:
    text = 'prompt,completion\n"multi\nline, with comma","say ""hi"""\r\nb,c\n'
    r = validate(write(tmp_path, "a.csv", text), technique="sft")
    assert r.valid and r.rows == 2 and r.format == "prompt_completion"


def test_csv_without_header(tmp_path) -> None:
    r = validate(write(tmp_path, "a.csv", "hello,world\nfoo,bar\n"), technique="sft")
    assert not r.valid and "header row" in r.errors[0].message and r.errors[0].line == 0


def test_csv_missing_column(tmp_path) -> None:
    r = validate(write(tmp_path, "a.csv", "prompt,id\nhi,1\n"), technique="sft")
    assert [(e.line, e.path) for e in r.errors] == [(0, "completion")]
    assert "missing column `completion`" in r.errors[0].message
    r = validate(write(tmp_path, "b.csv", "prompt,chosen\na,b\n"), technique="dpo")
    assert [e.path for e in r.errors] == ["rejected"]


def test_csv_nested_format_refused(tmp_path) -> None:
    r = validate(write(tmp_path, "a.csv", "messages\n[]\n"))
    assert not r.valid and "cannot be stored in CSV" in r.errors[0].message


def test_csv_row_errors_use_column_names(tmp_path) -> None:
    text = "\ufeffprompt,completion\na,b\n,b\nx,  \ny\n\na,b\n"
    r = validate(write(tmp_path, "a.csv", text), technique="sft")
    assert [(e.line, e.path) for e in r.errors] == [(2, "prompt"), (3, "completion"), (4, "")]
    assert [(w.line, w.message) for w in r.warnings] == [(5, "blank line skipped")]


def test_csv_invalid_utf8_and_empty(tmp_path) -> None:
    r = validate(write(tmp_path, "a.csv", b"prompt,completion\na,b\ncaf\xe9,x\n"))
    assert [(e.line, e.path, e.message) for e in r.errors] == [(2, "prompt", "invalid UTF-8")]
    assert "empty" in validate(write(tmp_path, "b.csv", b"")).errors[0].message
    assert "no rows" in validate(write(tmp_path, "c.csv", b"prompt\n")).errors[0].message


# ------------------------------------------------------------------------- .parquet
def test_parquet_wrong_column_type(tmp_path) -> None:
    p = tmp_path / "a.parquet"
    pq.write_table(pa.table({"prompt": ["a", "b"], "completion": [1, 2]}), p)
    r = validate(p, technique="sft")
    assert not r.valid and r.rows == 0
    assert (r.errors[0].line, r.errors[0].path) == (0, "$.completion")
    assert "int64" in r.errors[0].message


def test_parquet_row_errors_and_batches(tmp_path) -> None:
    prompts = [f"p{i}" for i in range(10_000)]
    prompts[8_000] = "   "
    completions = ["c"] * 10_000
    completions[9_999] = None
    p = tmp_path / "a.parquet"
    pq.write_table(pa.table({"prompt": prompts, "completion": completions}), p,
                   row_group_size=3000)
    r = validate(p)
    assert r.rows == 10_000
    assert [(e.line, e.path) for e in r.errors] == [(8_001, "$.prompt"), (10_000, "$.completion")]


def test_parquet_not_parquet(tmp_path) -> None:
    r = validate(write(tmp_path, "a.parquet", b"PAR1 nope"))
    assert not r.valid and "Parquet" in r.errors[0].message


def test_csv_large_with_scattered_errors(tmp_path) -> None:
    lines = ["prompt,completion"]
    bad = {5, 1024, 1025, 2500}
    for i in range(1, 3001):
        if i == 1800:
            lines.append("")
        elif i in bad:
            lines.append(f"p{i},")
        else:
            lines.append(f"p{i},c{i}")
    r = validate(write(tmp_path, "a.csv", "\n".join(lines) + "\n"), technique="sft")
    assert [(e.line, e.path) for e in r.errors] == [(n, "completion") for n in sorted(bad)]
    assert [w.line for w in r.warnings] == [1800] and r.rows == 2999
    assert r.stats["prompt"].count == 2999 - len(bad)  # rows that fit the format
