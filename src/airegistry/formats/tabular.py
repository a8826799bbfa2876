"""CSV and Parquet: rows arrive as columns-to-values records.

CSV uses the stdlib :mod:`csv` module over a UTF-8 text wrapper of the byte source. We
chose it over ``pyarrow.csv`` because (a) only flat string formats are allowed in CSV, so
there is nothing to gain from Arrow's typed columns, (b) pyarrow's streaming reader infers
column types and would turn a column of digits into integers, and (c) ``csv.reader``
gives exact record numbers even when quoted fields span several lines. Invalid UTF-8 is
decoded with ``surrogateescape`` so one bad byte is reported on its row instead of
aborting the file.

Parquet is read in record batches (flat memory) from a seekable file: a local path is
opened directly, a stream is first spooled to an anonymous temporary file (the Parquet
footer is at the end, so a forward-only reader cannot do better). Column types are
checked once against the format before any row is read.
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
import types
import typing
from typing import Any

from .detect import detect, detect_columns
from .engine import RowValidator
from .schemas import FORMATS
from .sources import CHUNK_SIZE, ByteSource, RawAdapter

_SURROGATE = re.compile("[\udc80-\udcff]")


def validate_csv(src: ByteSource, v: RowValidator) -> int:
    """Validate a CSV file with a header row; returns the number of data records."""
    # Process-wide setting; only ever raised, so other users of csv keep working.
    if csv.field_size_limit() < v.limits.max_line_bytes:
        csv.field_size_limit(v.limits.max_line_bytes)
    text = io.TextIOWrapper(
        io.BufferedReader(RawAdapter(src), CHUNK_SIZE),
        encoding="utf-8-sig",
        errors="surrogateescape",
        newline="",
    )
    reader = csv.reader(text)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        v.error(0, "", f"unreadable CSV header: {exc}")
        return 0
    if header is None:
        v.error(0, "", "the file is empty")
        return 0
    header = [h.strip() for h in header]
    name, problems = detect_columns(header, v.technique)
    if name is None:
        for column, message in problems:
            v.error(0, column, message)
        return 0
    v.set_format(name, 1)
    spec = FORMATS[name]
    keep_empty = set(spec.csv_required)
    width = len(header)
    row = 0
    batch: list[dict[str, str]] = []  # consecutive well-formed records, validated together

    def flush() -> None:
        v.check_objects(batch, row - len(batch) + 1)
        batch.clear()

    while True:
        try:
            record = next(reader, None)
        except csv.Error as exc:
            flush()
            v.rows += 1
            v.error(row + 1, "", f"malformed CSV record, validation stopped: {exc}")
            return row + 1
        if record is None:
            break
        if not record or len(record) != width or _SURROGATE.search("".join(record)):
            flush()
            row += 1
            v.rows += bool(record)
            if not record:
                v.warning(row, "", "blank line skipped")
            elif len(record) != width:
                v.error(row, "", f"record has {len(record)} fields but the header has {width}")
            else:
                bad = next(h for h, value in zip(header, record, strict=True)
                           if _SURROGATE.search(value))
                v.error(row, bad, "invalid UTF-8")
            continue
        row += 1
        batch.append(
            {h: value for h, value in zip(header, record, strict=True) if value or h in keep_empty}
        )
        if len(batch) >= 1024:
            flush()
    flush()
    if row == 0:
        v.error(0, "", "the file has a header but no rows")
    return row


# ----------------------------------------------------------------------------- Parquet
def _kinds(tp: Any) -> set[str]:
    """Arrow type families a Struct field type admits ("string", "list")."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _kinds(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        out: set[str] = set()
        for arg in typing.get_args(tp):
            out |= _kinds(arg)
        return out
    if tp is str:
        return {"string"}
    if tp is list or origin is list:
        return {"list"}
    return set()


def _arrow_kind(arrow_type: Any) -> str:
    import pyarrow as pa

    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if (
        pa.types.is_list(arrow_type)
        or pa.types.is_large_list(arrow_type)
        or pa.types.is_fixed_size_list(arrow_type)
    ):
        return "list"
    if hasattr(pa.types, "is_string_view") and pa.types.is_string_view(arrow_type):
        return "string"
    return str(arrow_type)


def _check_schema(schema: Any, format_name: str, v: RowValidator) -> bool:
    import msgspec

    ok = True
    tp = FORMATS[format_name].type_for(v.technique)
    names = set(schema.names)
    for f in msgspec.structs.fields(tp):
        if f.encode_name not in names:
            continue
        want = _kinds(f.type)
        arrow_type = schema.field(f.encode_name).type
        if want and _arrow_kind(arrow_type) not in want:
            expected = " or ".join(sorted(want))
            v.error(0, f"$.{f.encode_name}",
                    f"column `{f.encode_name}` has type {arrow_type}, expected {expected}")
            ok = False
    return ok


def validate_parquet(path_or_file: Any, v: RowValidator, batch_rows: int = 4096) -> int:
    """Validate a Parquet file (a path or a seekable binary file); returns the row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path_or_file)
    except (pa.ArrowException, OSError) as exc:
        v.error(0, "$", f"not a readable Parquet file: {exc}")
        return 0
    row = 0
    for batch in pf.iter_batches(batch_size=batch_rows):
        objs = [_drop_nulls(record) for record in batch.to_pylist()]
        if row == 0 and objs:
            # The schema is checked against the format of the first row *before* any
            # row, so that a wrong column type is one clear error, not one per row.
            name, _ = detect(objs[0], v.technique)
            if name is not None and not _check_schema(pf.schema_arrow, name, v):
                v.error(0, "$", "validation stopped: column types do not fit the format")
                return 0
            v.check_object(objs[0], 1)  # detects the format
            row, objs = 1, objs[1:]
        v.check_objects(objs, row + 1)
        row += len(objs)
    if row == 0:
        v.error(0, "$", "the file has no rows")
    return row


def _drop_nulls(value: Any) -> Any:
    """Parquet has one struct type per column, so a key absent from some rows reads back
    as ``None``; absent is what it meant."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def spool(src: ByteSource) -> Any:
    """Copy a forward-only source into an anonymous temporary file, rewound."""
    tmp = tempfile.TemporaryFile()  # noqa: SIM115 - returned to the caller, who closes it
    try:
        while True:
            data = src.read(CHUNK_SIZE)
            if not data:
                break
            tmp.write(data)
        tmp.seek(0)
    except BaseException:
        tmp.close()
        raise
    return tmp
