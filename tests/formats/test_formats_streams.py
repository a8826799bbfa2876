"""Stream sources (forward-only), failures midway, limits, and parallel == serial."""

from __future__ import annotations

import enum
import io
import json

import pytest
from fmt_helpers import GOOD, OneWayStream, jsonl, write

from airegistry.formats import (
    DatasetTooLargeError,
    SourceReadError,
    UnknownTechniqueError,
    UnsupportedFileTypeError,
    ValidationLimits,
    validate,
)
from airegistry.formats.parallel import validate_jsonl_parallel

PC = GOOD["prompt_completion"]


def _mixed_rows(n: int) -> list:
    rows: list = []
    for i in range(n):
        if i % 997 == 5:
            rows.append({"prompt": "p", "completion": i})
        elif i % 1499 == 7:
            rows.append({"prompt": "   ", "completion": "x"})
        elif i % 2003 == 11:
            rows.append(GOOD["preference"])
        else:
            rows.append({"prompt": f"row {i} " + "ß" * (i % 37), "completion": "c" * (i % 91 + 1)})
    return rows


@pytest.mark.parametrize("ftype", ["jsonl", "json", "csv", "parquet"])
def test_non_seekable_stream_matches_path(tmp_path, ftype) -> None:
    rows = _mixed_rows(3000)
    if ftype == "jsonl":
        data = jsonl(rows)
    elif ftype == "json":
        data = json.dumps(rows).encode()
    elif ftype == "csv":
        flat = [r for r in rows if "completion" in r]
        data = ("prompt,completion\n" + "".join(
            f'"{r["prompt"]}","{r["completion"]}"\n' for r in flat)).encode()
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist([r for r in rows if "completion" in r and
                                             isinstance(r["completion"], str)]), buf)
        data = buf.getvalue()
    p = write(tmp_path, f"d.{ftype}", data)
    from_path = validate(p, compute_sha256=True)
    seen: list[int] = []
    from_stream = validate(OneWayStream(data), filename=f"upload.{ftype}",
                           compute_sha256=True, progress=seen.append, size_hint=len(data))
    assert from_stream.to_dict() | {"summary": ""} == from_path.to_dict() | {"summary": ""}
    assert seen and seen[-1] == len(data) and seen == sorted(seen)


def test_stream_file_type_argument_and_unnamed_stream() -> None:
    data = jsonl([PC])
    assert validate(io.BytesIO(data), file_type="jsonl").valid
    with pytest.raises(UnsupportedFileTypeError):
        validate(io.BytesIO(data))


def test_stream_failing_midway_raises(tmp_path) -> None:
    data = jsonl([PC] * 20_000)
    with pytest.raises(SourceReadError) as info:
        validate(OneWayStream(data, fail_after=100_000), filename="x.jsonl")
    assert isinstance(info.value.__cause__, ConnectionResetError)
    assert "after" in str(info.value)
    with pytest.raises(SourceReadError):
        validate(OneWayStream(data, fail_after=100_000), filename="x.parquet")


def test_stream_over_the_limit_midway_and_by_hint() -> None:
    data = jsonl([PC] * 1000)
    limits = ValidationLimits(max_bytes=10_000)
    with pytest.raises(DatasetTooLargeError):
        validate(OneWayStream(data), filename="x.jsonl", limits=limits)
    never_read = OneWayStream(data, fail_after=0)  # raises if read at all
    with pytest.raises(DatasetTooLargeError):
        validate(never_read, filename="x.jsonl", limits=limits, size_hint=len(data))


def test_text_stream_is_refused() -> None:
    with pytest.raises(SourceReadError):
        validate(io.StringIO("{}"), filename="x.jsonl")


def test_usage_errors(tmp_path) -> None:
    p = write(tmp_path, "a.jsonl", jsonl([PC]))
    with pytest.raises(UnknownTechniqueError):
        validate(p, technique="ppo")
    with pytest.raises(UnsupportedFileTypeError):
        validate(write(tmp_path, "a.txt", b"{}"))
    with pytest.raises(UnsupportedFileTypeError):
        validate(p, file_type="xml")
    with pytest.raises(FileNotFoundError):
        validate(tmp_path / "missing.jsonl")
    for exc in (UnknownTechniqueError, UnsupportedFileTypeError, DatasetTooLargeError,
                SourceReadError):
        assert issubclass(exc, ValueError)


def test_technique_enum_and_case(tmp_path) -> None:
    class Technique(str, enum.Enum):
        SFT = "sft"

    p = write(tmp_path, "a.jsonl", jsonl([PC]))
    assert validate(p, technique=Technique.SFT).technique == "sft"
    assert validate(p, technique="SFT").technique == "sft"


def test_summary_and_to_dict_are_json_safe(tmp_path) -> None:
    rows = [{"prompt": "p", "completion": 1}] * 300
    r = validate(write(tmp_path, "a.jsonl", jsonl(rows)))
    assert len(r.errors) == 100 and r.error_count == 300
    assert json.loads(json.dumps(r.to_dict()))["error_count"] == 300
    s = r.summary()
    assert len(s) <= 1024 and "1, 2, 3" in s
    assert len(r.summary(max_chars=80)) <= 80
    limited = validate(write(tmp_path, "b.jsonl", jsonl(rows)),
                       limits=ValidationLimits(max_errors_listed=3))
    assert len(limited.errors) == 3 and limited.error_count == 300


@pytest.mark.slow
@pytest.mark.parametrize("parts", [2, 3, 5])
def test_parallel_equals_serial(tmp_path, parts) -> None:
    rows = _mixed_rows(60_000)
    data = b"\xef\xbb\xbf" + jsonl(rows[:100]) + b"\n  \n" + jsonl(rows[100:])
    p = write(tmp_path, "big.jsonl", data.replace(b"\n", b"\r\n", 50))
    serial = validate(p, parallel=False, compute_sha256=True)
    assert serial.error_count > 100 and serial.warning_count >= 2
    done = validate_jsonl_parallel(str(p), p.stat().st_size, None, ValidationLimits(),
                                   compute_sha256=True, parts=parts)
    assert done is not None
    from airegistry.formats.validate import _report

    par = _report(done[0], "jsonl", p.stat().st_size, done[1], "big.jsonl")
    assert par.to_dict() == serial.to_dict()


@pytest.mark.slow
def test_parallel_flag_through_validate(tmp_path) -> None:
    p = write(tmp_path, "big.jsonl", jsonl(_mixed_rows(20_000)))
    seen: list[int] = []
    par = validate(p, parallel=True, technique="sft", progress=seen.append)
    assert par.to_dict() == validate(p, parallel=False, technique="sft").to_dict()
    assert seen[-1] == p.stat().st_size


def test_parallel_falls_back_when_no_row_is_recognisable(tmp_path) -> None:
    p = write(tmp_path, "junk.jsonl", b"not json\n" * 5000)
    r = validate(p, parallel=True)
    assert r.error_count == 5000 and r.format is None


@pytest.mark.parametrize("executable", ["/bin/false", "/nonexistent/python"])
def test_parallel_survives_workers_that_die_or_cannot_start(tmp_path, monkeypatch,
                                                             executable) -> None:
    import airegistry.formats.pool as pool_mod

    p = write(tmp_path, "big.jsonl", jsonl(_mixed_rows(5_000)))
    serial = validate(p, parallel=False)
    pool_mod.shutdown_workers()  # warm workers would be reused, not started
    monkeypatch.setattr(pool_mod.sys, "executable", executable)
    try:
        done = validate_jsonl_parallel(str(p), p.stat().st_size, None, ValidationLimits(),
                                       parts=4)
    finally:
        pool_mod.shutdown_workers()
    assert done is not None
    from airegistry.formats.validate import _report

    assert _report(done[0], "jsonl", p.stat().st_size, None, "big.jsonl").to_dict() == \
        serial.to_dict()


def test_stream_with_one_byte_reads_and_bom() -> None:
    data = b"\xef\xbb\xbf" + jsonl([PC, {"prompt": "p", "completion": 5}]).replace(b"\n", b"\r\n")
    r = validate(OneWayStream(data, step=1), filename="x.jsonl")
    assert r.rows == 2 and [e.line for e in r.errors] == [2]


@pytest.mark.parametrize("ftype", ["json", "csv"])
def test_tiny_reads_other_file_types(ftype) -> None:
    if ftype == "json":
        data = b"\xef\xbb\xbf" + json.dumps([PC, {"prompt": "p", "completion": 5}]).encode()
    else:
        data = "\ufeffprompt,completion\r\na,b\r\nc,\r\n".encode()
    r = validate(OneWayStream(data, step=1), filename=f"x.{ftype}")
    assert r.rows == 2 and [e.line for e in r.errors] == [2]


def test_auto_parallel_decision(monkeypatch) -> None:
    import importlib

    # (the package re-exports the function under the module's name)
    validate_mod = importlib.import_module("airegistry.formats.validate")
    monkeypatch.setattr(validate_mod, "cpu_count", lambda: 4)
    monkeypatch.setattr(validate_mod.os, "getloadavg", lambda: (1.0, 1.0, 1.0))
    big = validate_mod.PARALLEL_THRESHOLD
    assert validate_mod._use_parallel(None, big)
    assert not validate_mod._use_parallel(None, big - 1)
    assert validate_mod._use_parallel(True, 10) and not validate_mod._use_parallel(False, big)
    monkeypatch.setattr(validate_mod.os, "getloadavg", lambda: (3.9, 1.0, 1.0))
    assert not validate_mod._use_parallel(None, big)  # no free core: serial is faster
