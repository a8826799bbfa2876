"""Row-level validation shared by every file type.

:class:`RowValidator` holds the state a validation accumulates (detected format, issues,
statistics) and offers two entry points:

* :meth:`RowValidator.accept_rows` – the fast path: a run of rows already decoded into
  the dataset's Struct type (by ``Decoder.decode_lines`` for JSONL). Only statistics and
  the whitespace / identical-pair rules remain to be checked, in batch.
* :meth:`RowValidator.check_line` / :meth:`RowValidator.check_object` – the slow path
  for one row: typed decode first (so that valid rows are judged exactly as on the fast
  path), then, only when that fails, a generic decode to explain *every* failing field
  with its JSON path.

The state can be exported (:meth:`RowValidator.export`) and merged, which is how parallel
validation reproduces the serial result exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import msgspec

from . import texts
from .detect import detect, looks_like
from .report import Issue, ValidationLimits
from .schemas import FORMATS, decoder_for

DECODE_ERRORS = (msgspec.ValidationError, msgspec.DecodeError, RecursionError, UnicodeDecodeError)

_AT = re.compile(r"^(.*) - at `(\$[^`]*)`$", re.S)
_MISSING = re.compile(r"^Object missing required field `([^`]*)`$")
_MINLEN = re.compile(r"^Expected `(str|array)` of length >= (\d+)$")
_UTF8_POS = re.compile(r"position (\d+)")


def split_error(exc: Exception, prefix: str = "$") -> tuple[str, str]:
    """``(json path, message)`` from a msgspec error, made readable.

    ``prefix`` replaces the leading ``$`` of msgspec's path: it is the path of the value
    that was converted (e.g. ``$.messages`` when one field is checked on its own).
    """
    text = str(exc)
    m = _AT.match(text)
    path, msg = (m.group(2), m.group(1)) if m else ("$", text)
    path = prefix + path[1:]
    miss = _MISSING.match(msg)
    if miss:
        return f"{path}.{miss.group(1)}", f"missing required field `{miss.group(1)}`"
    short = _MINLEN.match(msg)
    if short:
        if short.group(2) == "1":
            what = "string" if short.group(1) == "str" else "list"
            return path, f"must be a non-empty {what}"
        return path, f"must be a list of at least {short.group(2)} items"
    return path, msg


def json_type_name(value: Any) -> str:
    return {
        dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
        float: "number", type(None): "null",
    }.get(type(value), type(value).__name__)


def nesting_depth(value: Any, limit: int) -> int:
    """Depth of ``value`` (scalars 0, ``{}`` 1), stopping early once over ``limit``.

    Iterative on purpose: the point is to survive input that is too deep to recurse on.
    """
    deepest = 0
    stack = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            children = v.values()
        elif isinstance(v, list):
            children = v
        else:
            continue
        if d > deepest:
            deepest = d
            if d > limit:
                return d
        stack.extend((c, d + 1) for c in children)
    return deepest


@dataclass
class Tally:
    """Issues kept in file order: the first ``limit`` listed, all counted."""

    limit: int
    errors: list[Issue] = field(default_factory=list)
    error_count: int = 0
    warnings: list[Issue] = field(default_factory=list)
    warning_count: int = 0

    def error(self, line: int, path: str, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < self.limit:
            self.errors.append(Issue(line, path, message))

    def warning(self, line: int, path: str, message: str) -> None:
        self.warning_count += 1
        if len(self.warnings) < self.limit:
            self.warnings.append(Issue(line, path, message))


class RowValidator:
    """Validation state for one dataset (or one contiguous part of it)."""

    def __init__(
        self,
        technique: str | None,
        limits: ValidationLimits,
        *,
        format_name: str | None = None,
        detected_line: int = 0,
        column_paths: bool = False,
    ) -> None:
        self.technique = technique
        self.limits = limits
        self.tally = Tally(limits.max_errors_listed)
        self.acc: texts.Acc = {}
        self.rows = 0
        self.format: str | None = None
        self.detected_line = 0
        self.decoder: msgspec.json.Decoder[Any] | None = None
        self.type: type | None = None
        # CSV reports a column name where JSON formats report ``$.field``.
        self.column_paths = column_paths
        if format_name is not None:
            self.set_format(format_name, detected_line)

    # ------------------------------------------------------------------ state
    def set_format(self, name: str, line: int) -> None:
        self.format = name
        self.detected_line = line
        self.type = FORMATS[name].type_for(self.technique)
        self.decoder = decoder_for(self.type)

    def _path(self, path: str) -> str:
        if self.column_paths and path.startswith("$."):
            return path[2:]
        return path

    def error(self, line: int, path: str, message: str) -> None:
        self.tally.error(line, self._path(path), message)

    def warning(self, line: int, path: str, message: str) -> None:
        self.tally.warning(line, self._path(path), message)

    def export(self) -> dict[str, Any]:
        """Plain data for crossing a process boundary."""
        t = self.tally
        return {
            "errors": t.errors, "error_count": t.error_count, "warnings": t.warnings,
            "warning_count": t.warning_count, "acc": self.acc, "rows": self.rows,
            "format": self.format, "detected_line": self.detected_line,
        }

    # ------------------------------------------------------------------ fast path
    def accept_rows(self, rows: list[Any], first_line: int) -> None:
        """``rows`` decoded into ``self.type``, from consecutive lines starting at ``first_line``."""
        self.rows += len(rows)
        self._check_rows(rows, first_line)

    def _check_rows(self, rows: list[Any], first_line: int) -> None:
        assert self.format is not None
        for i, path, message, is_error in texts.check_batch(self.format, rows, self.acc):
            if is_error:
                self.error(first_line + i, path, message)
            else:
                self.warning(first_line + i, path, message)

    # ------------------------------------------------------------------ slow path
    def check_line(self, data: bytes, line: int) -> None:
        """One JSON document (a ``.jsonl`` line or a ``.json`` array element)."""
        if len(data) > self.limits.max_line_bytes:
            self.rows += 1
            self.error(line, "$", self.too_long_message(len(data)))
            return
        if not data.strip():
            self.warning(line, "", "blank line skipped")
            return
        if self.decoder is not None:
            try:
                row = self.decoder.decode(data)
            except DECODE_ERRORS:
                pass
            else:
                self.accept_rows([row], line)
                return
        self.rows += 1
        try:
            obj = msgspec.json.decode(data)
        except RecursionError:
            self.error(line, "$", "row is nested too deeply to decode")
            return
        except UnicodeDecodeError as exc:
            pos = _UTF8_POS.search(str(exc))
            where = f" at byte {pos.group(1)} of the row" if pos else ""
            self.error(line, "$", f"invalid UTF-8{where}")
            return
        except msgspec.DecodeError as exc:
            self.error(line, "$", f"invalid JSON: {exc}")
            return
        depth = nesting_depth(obj, self.limits.max_depth)
        if depth > self.limits.max_depth:
            self.error(
                line, "$", f"row is nested more than {self.limits.max_depth} levels deep"
            )
            return
        self._check_decoded(obj, line)

    def too_long_message(self, size: int) -> str:
        return f"row is {size} bytes long, over the limit of {self.limits.max_line_bytes} bytes"

    def check_object(self, obj: Any, line: int) -> None:
        """One row already turned into Python values (CSV record, Parquet row)."""
        self.rows += 1
        self._check_decoded(obj, line)

    def check_objects(self, objs: list[Any], first_line: int) -> None:
        """Rows from consecutive lines (CSV records, Parquet batches): one typed
        conversion for the whole batch, row by row only when it fails."""
        if self.type is not None and objs:
            try:
                rows = msgspec.convert(objs, list[self.type])
            except msgspec.ValidationError:
                pass
            else:
                self.accept_rows(rows, first_line)
                return
        for i, obj in enumerate(objs):
            self.check_object(obj, first_line + i)

    def _check_decoded(self, obj: Any, line: int) -> None:
        if not isinstance(obj, dict):
            self.error(line, "$", f"row must be a JSON object, got {json_type_name(obj)}")
            return
        if self.format is None:
            name, reason = detect(obj, self.technique)
            if name is None:
                self.error(line, "$", reason)
                return
            self.set_format(name, line)
        assert self.type is not None
        try:
            row = msgspec.convert(obj, self.type)
        except msgspec.ValidationError:
            pass
        else:
            self._check_rows([row], line)  # the caller counted the row already
            return
        other = looks_like(obj)
        # A row of a format whose fields are a subset of ours (``prompt_only`` in a
        # ``prompt_completion`` dataset) is better explained by its missing fields.
        if other is not None and other != self.format and not (
            set(FORMATS[other].type.__struct_fields__) <= set(self.type.__struct_fields__)
        ):
            self.error(
                line,
                "$",
                f"row looks like format `{other}`, but the dataset's format is "
                f"`{self.format}` (detected from line {self.detected_line})",
            )
            return
        for path, message in field_errors(obj, self.type):
            self.error(line, path, message)


def field_errors(obj: dict[str, Any], tp: type) -> list[tuple[str, str]]:
    """Every failing field of ``obj`` against Struct type ``tp``, each with its JSON path.

    msgspec stops at the first error of a value, so fields are converted one by one; the
    whole row is converted only when every field passed, to run the cross-field rules.
    """
    problems: list[tuple[str, str]] = []
    for f in msgspec.structs.fields(tp):
        if f.encode_name not in obj:
            if f.required:
                problems.append((f"$.{f.encode_name}", f"missing required field `{f.encode_name}`"))
            continue
        try:
            msgspec.convert(obj[f.encode_name], f.type)
        except msgspec.ValidationError as exc:
            problems.append(split_error(exc, f"$.{f.encode_name}"))
    if not problems:
        try:
            msgspec.convert(obj, tp)
        except msgspec.ValidationError as exc:
            problems.append(split_error(exc))
    return problems
