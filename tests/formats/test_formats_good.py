"""Valid rows of every format, for every technique that accepts it, in every file type."""

from __future__ import annotations

import csv
import io
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fmt_helpers import GOOD, TECHNIQUE_OF, jsonl, write

from airegistry.formats import FORMATS, TECHNIQUE_FORMATS, validate

CASES = [(fmt, tech) for fmt, techs in TECHNIQUE_OF.items() for tech in techs]


def test_cases_cover_the_technique_table() -> None:
    for tech, formats in TECHNIQUE_FORMATS.items():
        assert {f for f, t in CASES if t == tech} == set(formats)
    assert {f for f, _ in CASES} == set(FORMATS)


@pytest.mark.parametrize(("fmt", "tech"), CASES)
def test_good_jsonl(tmp_path, fmt, tech) -> None:
    p = write(tmp_path, "d.jsonl", jsonl([GOOD[fmt]] * 3))
    r = validate(p, technique=tech)
    assert r.valid, r.summary()
    assert (r.format, r.technique, r.rows, r.error_count) == (fmt, tech, 3, 0)
    assert r.bytes == p.stat().st_size
    assert r.stats, "text statistics are recorded"


@pytest.mark.parametrize(("fmt", "tech"), CASES)
def test_good_json_array(tmp_path, fmt, tech) -> None:
    p = write(tmp_path, "d.json", json.dumps([GOOD[fmt]] * 2, indent=2))
    r = validate(p, technique=tech)
    assert r.valid, r.summary()
    assert (r.format, r.rows) == (fmt, 2)


@pytest.mark.parametrize(("fmt", "tech"), CASES)
def test_good_parquet(tmp_path, fmt, tech) -> None:
    p = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist([GOOD[fmt]] * 4), p)
    r = validate(p, technique=tech)
    assert r.valid, r.summary()
    assert (r.format, r.rows) == (fmt, 4)


FLAT = [(f, t) for f, t in CASES if FORMATS[f].flat and all(
    isinstance(v, (str, int)) for v in GOOD[f].values())]


@pytest.mark.parametrize(("fmt", "tech"), FLAT)
def test_good_csv(tmp_path, fmt, tech) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(GOOD[fmt]))
    w.writeheader()
    w.writerows([GOOD[fmt]] * 3)
    r = validate(write(tmp_path, "d.csv", buf.getvalue()), technique=tech)
    assert r.valid, r.summary()
    assert (r.format, r.rows) == (fmt, 3)


def test_stats_values(tmp_path) -> None:
    rows = [{"prompt": "ab", "completion": "é日本"}, {"prompt": "abcd", "completion": "x"}]
    r = validate(write(tmp_path, "s.jsonl", jsonl(rows)))
    assert r.stats["prompt"].to_dict() == {
        "count": 2, "min_chars": 2, "mean_chars": 3.0, "max_chars": 4}
    assert (r.stats["completion"].min_chars, r.stats["completion"].max_chars) == (1, 3)


def test_chat_stats_and_prompt_as_messages(tmp_path) -> None:
    rows = [{"prompt": [{"role": "user", "content": "hey"}], "completion": "yo"}]
    r = validate(write(tmp_path, "m.jsonl", jsonl(rows)), technique="sft")
    assert r.valid
    assert r.stats["prompt[].content"].max_chars == 3
    assert r.stats["completion"].count == 1


def test_chat_content_parts(tmp_path) -> None:
    row = {"messages": [
        {"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                     {"type": "image_url", "image_url": {"url": "s3://b/k"}}]},
        {"role": "assistant", "content": "a cat"}]}
    r = validate(write(tmp_path, "p.jsonl", jsonl([row])), technique="sft")
    assert r.valid, r.summary()
    assert r.stats["messages[].content[].text"].count == 1


def test_input_variant_of_preference(tmp_path) -> None:
    rows = [{"input": "q", "chosen": "a", "rejected": "b"}]
    r = validate(write(tmp_path, "p.jsonl", jsonl(rows)), technique="dpo")
    assert r.valid and r.format == "preference"


def test_sha256_only_when_asked(tmp_path) -> None:
    import hashlib

    data = jsonl([GOOD["prompt_only"]])
    p = write(tmp_path, "h.jsonl", data)
    assert validate(p).sha256 is None
    assert validate(p, compute_sha256=True).sha256 == hashlib.sha256(data).hexdigest()
