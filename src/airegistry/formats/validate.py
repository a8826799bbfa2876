"""The :func:`validate` entry point: argument checking and dispatch by file type."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from typing import Any

from . import texts
from .engine import RowValidator
from .errors import DatasetTooLargeError, UnknownTechniqueError, UnsupportedFileTypeError
from .json_array import validate_json_array
from .jsonl import validate_jsonl
from .parallel import (
    PARALLEL_THRESHOLD,
    WARM_THRESHOLD,
    validate_jsonl_parallel,
    validate_stream_parallel,
)
from .pool import POOL, cpu_count
from .report import ValidationLimits, ValidationReport
from .schemas import FILE_TYPES, TECHNIQUES
from .sources import ByteSource, source_name
from .tabular import spool, validate_csv, validate_parquet


def normalize_technique(technique: Any) -> str | None:
    """Accept ``None``, a technique name in any case, or a str-Enum whose value is one."""
    if technique is None:
        return None
    value = getattr(technique, "value", technique)
    if isinstance(value, str) and value.strip().lower() in TECHNIQUES:
        return value.strip().lower()
    raise UnknownTechniqueError(
        f"unknown technique {value!r}; expected one of: {', '.join(TECHNIQUES)}"
    )


def normalize_file_type(file_type: str | None, name: str | None) -> str:
    if file_type is not None:
        ft = str(getattr(file_type, "value", file_type)).lower().lstrip(".")
        if ft in FILE_TYPES:
            return ft
        raise UnsupportedFileTypeError(
            f"unsupported file type {file_type!r}; expected one of: {', '.join(FILE_TYPES)}"
        )
    if not name:
        raise UnsupportedFileTypeError(
            "cannot tell the file type of an unnamed stream: pass file_type= or filename="
        )
    ext = os.path.splitext(name)[1].lower().lstrip(".")
    if ext in FILE_TYPES:
        return ext
    raise UnsupportedFileTypeError(
        f"unsupported file extension {('.' + ext) if ext else '(none)'!s} for {name!r}; "
        f"expected one of: {', '.join('.' + t for t in FILE_TYPES)}"
    )


def validate(
    source: Any,
    *,
    technique: Any = None,
    file_type: str | None = None,
    filename: str | None = None,
    limits: ValidationLimits | None = None,
    compute_sha256: bool = False,
    size_hint: int | None = None,
    progress: Callable[[int], Any] | None = None,
    parallel: bool | None = None,
) -> ValidationReport:
    """Validate every row of a dataset and return a :class:`ValidationReport`.

    ``source`` is a local path or any binary stream with ``read(n)`` (it is only read
    forward). Problems with the *data* go into the report; problems with the *call* raise
    (see :mod:`airegistry.formats.errors`), as does a stream failing midway, so that a
    partial read is never reported as valid.
    """
    limits = limits or ValidationLimits()
    tech = normalize_technique(technique)
    name = source_name(source, filename)
    ftype = normalize_file_type(file_type, name)
    label = os.path.basename(name) if name else "<stream>"

    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        st = os.stat(path)  # FileNotFoundError for a missing file, as documented
        if stat.S_ISDIR(st.st_mode):
            raise IsADirectoryError(f"{path} is a directory")
        size = st.st_size
        if stat.S_ISREG(st.st_mode) and size > limits.max_bytes:
            raise DatasetTooLargeError(
                f"{label} is {size} bytes, over the limit of {limits.max_bytes} bytes"
            )
        if ftype == "jsonl" and stat.S_ISREG(st.st_mode) and _use_parallel(parallel, size):
            done = validate_jsonl_parallel(
                path, size, tech, limits, compute_sha256=compute_sha256, progress=progress
            )
            if done is not None:
                v, digest = done
                return _report(v, ftype, size, digest, label)
        with open(path, "rb", buffering=0) as f:
            src = ByteSource(
                f, name=label, max_bytes=limits.max_bytes, sha256=compute_sha256,
                progress=progress,
            )
            return _run(src, ftype, tech, limits, label, parquet_path=path, size=size)

    if not callable(getattr(source, "read", None)):
        raise TypeError("source must be a path or a binary stream with a read(n) method")
    if size_hint is not None and size_hint > limits.max_bytes:
        raise DatasetTooLargeError(
            f"{label} is {size_hint} bytes, over the limit of {limits.max_bytes} bytes"
        )
    src = ByteSource(
        source, name=label, max_bytes=limits.max_bytes, sha256=compute_sha256,
        progress=progress,
    )
    split = ftype == "jsonl" and _use_parallel(parallel, size_hint or 0)
    return _run(src, ftype, tech, limits, label, split=split)


def _use_parallel(parallel: bool | None, size: int) -> bool:
    """Auto mode: big files (smaller ones once the workers run), and only when another
    core is actually free.

    On a machine whose cores are already busy (1-minute load average within half a core
    of the CPU count) extra processes cannot finish sooner; they only add start-up cost.
    """
    if parallel is not None:
        return bool(parallel)
    cpus = cpu_count()
    if size < (WARM_THRESHOLD if POOL.warm else PARALLEL_THRESHOLD) or cpus < 2:
        return False
    try:
        load = os.getloadavg()[0]
    except OSError:  # pragma: no cover - not available on this platform
        return True
    return load < cpus - 0.5


def _run(
    src: ByteSource,
    ftype: str,
    tech: str | None,
    limits: ValidationLimits,
    label: str,
    parquet_path: str | None = None,
    size: int | None = None,
    split: bool = False,
) -> ValidationReport:
    v = RowValidator(tech, limits, column_paths=ftype == "csv")
    if ftype == "jsonl":
        if split:
            v = validate_stream_parallel(src, tech, limits)
        else:
            validate_jsonl(src, v)
        if v.rows == 0:
            v.error(0, "$", "the file is empty" if src.bytes == 0 else "the file has no rows")
    elif ftype == "json":
        validate_json_array(src, v)
    elif ftype == "csv":
        validate_csv(src, v)
    elif parquet_path is not None:
        # The Parquet reader seeks by itself; read through the source only for the hash.
        if src.sha256 is not None:
            src.drain()
        validate_parquet(parquet_path, v)
        if size is not None and not src.bytes:
            return _report(v, ftype, size, None, label)
    else:
        with spool(src) as tmp:
            validate_parquet(tmp, v)
    src.drain()  # a reader may stop early on a fatal error; size and hash cover everything
    return _report(v, ftype, src.bytes, src.sha256, label)


def _report(
    v: RowValidator, ftype: str, size: int, digest: str | None, label: str
) -> ValidationReport:
    t = v.tally
    return ValidationReport(
        valid=t.error_count == 0,
        format=v.format,
        technique=v.technique,
        file_type=ftype,
        rows=v.rows,
        bytes=size,
        sha256=digest,
        errors=list(t.errors),
        error_count=t.error_count,
        warnings=list(t.warnings),
        warning_count=t.warning_count,
        stats=texts.finish(v.acc),
        source_name=label,
    )
