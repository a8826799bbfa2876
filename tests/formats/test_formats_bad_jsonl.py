"""Every bad input of issue #2 for JSON Lines, each with its exact line and path."""

from __future__ import annotations

import json

import pytest
from fmt_helpers import GOOD, jsonl, write

from airegistry.formats import DatasetTooLargeError, ValidationLimits, validate

PC = GOOD["prompt_completion"]


def _errors(report):
    return [(e.line, e.path, e.message) for e in report.errors]


def test_invalid_json(tmp_path) -> None:
    data = jsonl([PC]) + b'{"prompt": "a", "completion": }\n' + jsonl([PC])
    r = validate(write(tmp_path, "a.jsonl", data))
    assert not r.valid and r.error_count == 1 and r.rows == 3
    (line, path, msg), = _errors(r)
    assert (line, path) == (2, "$") and msg.startswith("invalid JSON")


def test_invalid_utf8(tmp_path) -> None:
    data = jsonl([PC]) + b'{"prompt": "caf\xe9", "completion": "x"}\n'
    r = validate(write(tmp_path, "a.jsonl", data))
    assert _errors(r)[0][:2] == (2, "$") and "invalid UTF-8" in r.errors[0].message


@pytest.mark.parametrize(("row", "kind"), [([1, 2], "array"), ("s", "string"), (3, "number"),
                                           (None, "null")])
def test_row_not_an_object(tmp_path, row, kind) -> None:
    r = validate(write(tmp_path, "a.jsonl", jsonl([PC, row])))
    assert _errors(r) == [(2, "$", f"row must be a JSON object, got {kind}")]


def test_first_row_not_an_object_then_detection(tmp_path) -> None:
    r = validate(write(tmp_path, "a.jsonl", jsonl([[1], PC, PC])))
    assert r.format == "prompt_completion" and r.error_count == 1 and r.errors[0].line == 1


def test_missing_and_mistyped_fields_exact_paths(tmp_path) -> None:
    chat = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": 5},
                         {"role": "wizard", "content": "x"}, {"role": "user"}]}
    r = validate(write(tmp_path, "a.jsonl", jsonl([GOOD["chat"], chat])), technique="sft")
    assert [(e.line, e.path) for e in r.errors] == [(2, "$.messages[1].content")]
    # msgspec stops at the first error of one field; other fields are still all reported
    pc = {"prompt": 7, "completion": [{"role": "user", "content": ""}]}
    r = validate(write(tmp_path, "b.jsonl", jsonl([PC, pc, {"prompt": "x"}])))
    assert _errors(r) == [
        (2, "$.prompt", "Expected `str | array`, got `int`"),
        (2, "$.completion[0].content", "must be a non-empty string"),
        (3, "$.completion", "missing required field `completion`"),
    ]


def test_unknown_role_and_missing_content_paths(tmp_path) -> None:
    rows = [GOOD["chat"], {"messages": [{"role": "wizard", "content": "x"}]},
            {"messages": [{"role": "user", "content": "a"}, {"role": "assistant"}]}]
    r = validate(write(tmp_path, "a.jsonl", jsonl(rows)), technique="rlaif")
    assert [(e.line, e.path) for e in r.errors] == [
        (2, "$.messages[0].role"), (3, "$.messages[1].content")]


def test_sft_chat_needs_assistant(tmp_path) -> None:
    row = {"messages": [{"role": "user", "content": "hi"}]}
    assert validate(write(tmp_path, "a.jsonl", jsonl([row])), technique="rlaif").valid
    r = validate(write(tmp_path, "b.jsonl", jsonl([row])), technique="sft")
    assert "assistant" in r.errors[0].message


@pytest.mark.parametrize("blank", ["", "   ", "\t\n  "])
def test_empty_or_whitespace_required_strings(tmp_path, blank) -> None:
    rows = [PC, {"prompt": "ok", "completion": blank},
            {"messages": [{"role": "user", "content": "a"}]}]
    r = validate(write(tmp_path, "a.jsonl", jsonl(rows[:2])))
    assert [(e.line, e.path) for e in r.errors] == [(2, "$.completion")]
    chat = [GOOD["chat"], {"messages": [{"role": "user", "content": "a"},
                                        {"role": "assistant", "content": blank}]}]
    r = validate(write(tmp_path, "c.jsonl", jsonl(chat)))
    assert [(e.line, e.path) for e in r.errors] == [(2, "$.messages[1].content")]


def test_whitespace_found_in_large_fast_batch(tmp_path) -> None:
    rows = [PC] * 500 + [{"prompt": " \n ", "completion": "x"}] + [PC] * 500
    r = validate(write(tmp_path, "a.jsonl", jsonl(rows)))
    assert _errors(r) == [(501, "$.prompt", "must not be empty or whitespace only")]


def test_mixed_formats(tmp_path) -> None:
    rows = [PC, GOOD["preference"], PC, GOOD["chat"]]
    r = validate(write(tmp_path, "a.jsonl", jsonl(rows)), technique="sft")
    assert r.format == "prompt_completion"
    assert [(e.line, e.path) for e in r.errors] == [(2, "$"), (4, "$")]
    assert "`preference`" in r.errors[0].message and "line 1" in r.errors[0].message
    assert "`chat`" in r.errors[1].message


def test_first_row_of_a_format_the_technique_rejects(tmp_path) -> None:
    r = validate(write(tmp_path, "a.jsonl", jsonl([GOOD["preference"]])), technique="sft")
    assert not r.valid and r.format is None
    assert "looks like format `preference`" in r.errors[0].message


def test_blank_lines_are_warnings(tmp_path) -> None:
    data = jsonl([PC]) + b"\n   \n" + jsonl([PC]) + b"\r\n"
    r = validate(write(tmp_path, "a.jsonl", data))
    assert r.valid and r.rows == 2
    assert [(w.line, w.message) for w in r.warnings] == [
        (2, "blank line skipped"), (3, "blank line skipped"), (5, "blank line skipped")]


def test_bom_and_crlf_accepted(tmp_path) -> None:
    data = b"\xef\xbb\xbf" + jsonl([PC] * 3).replace(b"\n", b"\r\n")
    r = validate(write(tmp_path, "a.jsonl", data))
    assert r.valid and r.rows == 3 and r.warning_count == 0


def test_crlf_errors_keep_line_numbers(tmp_path) -> None:
    data = (jsonl([PC, PC, {"prompt": 1, "completion": "x"}, PC])).replace(b"\n", b"\r\n")
    r = validate(write(tmp_path, "a.jsonl", data))
    assert [e.line for e in r.errors] == [3]


def test_empty_file(tmp_path) -> None:
    r = validate(write(tmp_path, "a.jsonl", b""))
    assert not r.valid and r.errors[0].message == "the file is empty"
    r = validate(write(tmp_path, "b.jsonl", b"\n\n"))
    assert not r.valid and r.warning_count == 2 and "no rows" in r.errors[0].message


def test_no_trailing_newline(tmp_path) -> None:
    data = jsonl([PC, PC]) + json.dumps({"prompt": 1, "completion": "x"}).encode()
    r = validate(write(tmp_path, "a.jsonl", data))
    assert r.rows == 3 and [e.line for e in r.errors] == [3]


@pytest.mark.parametrize("pad", [0, 2000])  # short lines (count path) and long lines (find loop)
@pytest.mark.parametrize("eol", [b"\n", b"\r\n"])
def test_two_rows_on_one_line_and_row_over_two_lines(tmp_path, pad, eol) -> None:
    good = {"prompt": "p" * (pad + 1), "completion": "c"}
    # Hostile layout: decoding the whole chunk at once would see two valid rows.
    data = b'{"prompt":"a","completion":{"x":1}\n}{"prompt":"b","completion":"c"}\n'
    r = validate(write(tmp_path, "a.jsonl", (jsonl([good] * 5) + data + jsonl([good]))
                       .replace(b"\n", eol)))
    assert [e.line for e in r.errors] == [6, 7] and r.rows == 8
    data = b'{"prompt":"a","completion":"b"} {"prompt":"a","completion":"b"}\n\n'
    r = validate(write(tmp_path, "b.jsonl", (jsonl([good]) + data + jsonl([good] * 3))
                       .replace(b"\n", eol)))
    assert [e.line for e in r.errors] == [2] and "trailing" in r.errors[0].message
    assert [w.line for w in r.warnings] == [3] and r.rows == 5
    data = b'{"prompt":"a",\n"completion":"b"}\n'
    r = validate(write(tmp_path, "c.jsonl", (jsonl([good] * 3) + data).replace(b"\n", eol)))
    assert [e.line for e in r.errors] == [4, 5]


def test_deeply_nested(tmp_path) -> None:
    deep = b'{"prompt": "x", "completion": "y", "extra": ' + b"[" * 100_000 + b"]" * 100_000
    data = jsonl([PC]) + deep + b"}\n" + jsonl([PC])
    r = validate(write(tmp_path, "a.jsonl", data))
    assert [(e.line, e.path) for e in r.errors] == [(2, "$")]
    assert "deep" in r.errors[0].message and r.rows == 3


def test_nesting_over_max_depth_in_failing_row(tmp_path) -> None:
    row = {"prompt": 1, "completion": "y", "x": [[[[[[[[[[1]]]]]]]]]]}
    r = validate(write(tmp_path, "a.jsonl", jsonl([PC, row])),
                 limits=ValidationLimits(max_depth=5))
    assert "more than 5 levels" in r.errors[0].message


@pytest.mark.parametrize("limit", [1000, 50_000])
def test_single_very_long_line(tmp_path, limit) -> None:
    long_row = json.dumps({"prompt": "x" * 200_000, "completion": "y"}).encode() + b"\n"
    data = jsonl([PC]) + long_row + jsonl([PC, {"prompt": 1, "completion": "x"}])
    r = validate(write(tmp_path, "a.jsonl", data), limits=ValidationLimits(max_line_bytes=limit))
    assert [(e.line, e.path) for e in r.errors] == [(2, "$"), (4, "$.prompt")]
    assert "over the limit" in r.errors[0].message and r.rows == 4


def test_long_line_skipped_without_holding_it(tmp_path) -> None:
    """A line far larger than the limit *and* the read size is dropped on the fly."""
    from airegistry.formats.engine import RowValidator
    from airegistry.formats.jsonl import validate_jsonl
    from airegistry.formats.sources import ByteSource

    long_row = b'{"prompt": "' + b"x" * 300_000 + b'", "completion": "y"}\n'
    data = jsonl([PC]) + long_row + jsonl([PC])
    p = write(tmp_path, "a.jsonl", data)
    v = RowValidator(None, ValidationLimits(max_line_bytes=10_000))
    with open(p, "rb") as f:
        lines = validate_jsonl(ByteSource(f, name="a", max_bytes=1 << 30), v, chunk_size=4096)
    assert lines == 3 and [e.line for e in v.tally.errors] == [2] and v.rows == 3


def test_file_over_the_size_limit(tmp_path) -> None:
    p = write(tmp_path, "a.jsonl", jsonl([PC] * 10))
    with pytest.raises(DatasetTooLargeError):
        validate(p, limits=ValidationLimits(max_bytes=100))


def test_100k_rows_with_scattered_errors(tmp_path) -> None:
    bad_lines = sorted({7, 5_000, 12_345, *range(20_000, 100_000, 700), 99_999})
    bad = {"prompt": "p", "completion": 42}
    rows = [bad if i + 1 in bad_lines else {"prompt": f"p{i}", "completion": "c"}
            for i in range(100_000)]
    p = write(tmp_path, "big.jsonl", jsonl(rows))
    r = validate(p, technique="sft", parallel=False)
    assert r.rows == 100_000 and r.error_count == len(bad_lines) > 100
    assert [e.line for e in r.errors] == bad_lines[:100]
    assert all(e.path == "$.completion" for e in r.errors)
    assert r.stats["completion"].count == 100_000 - len(bad_lines)
    summary = r.summary()
    assert len(summary) <= 1024 and "7, 5000, 12345" in summary
