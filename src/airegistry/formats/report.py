"""The result objects of a validation: limits in, report out.

Kept free of any parsing code so that the hub, the CLI and the job store can import them
cheaply and so that a report can cross process boundaries (it is plain data).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

GIB = 1 << 30
MIB = 1 << 20


@dataclass(frozen=True)
class ValidationLimits:
    """Bounds that keep validation safe on hostile input.

    ``max_bytes`` is checked before reading when the size is known and again while
    streaming; ``max_line_bytes`` bounds one ``.jsonl`` line (or one ``.json`` array
    element), which is also the most memory a single row can make us hold;
    ``max_depth`` bounds the nesting of a row (the row object itself is depth 1).
    """

    max_bytes: int = GIB
    max_line_bytes: int = 64 * MIB
    max_depth: int = 64
    max_errors_listed: int = 100

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_line_bytes", "max_depth"):
            if getattr(self, name) < 1:
                raise ValueError(f"ValidationLimits.{name} must be >= 1")
        if self.max_errors_listed < 0:
            raise ValueError("ValidationLimits.max_errors_listed must be >= 0")


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem in one row.

    ``line`` is the 1-based file line (``.jsonl``) or 1-based row number (``.json``,
    ``.csv``, ``.parquet``; 0 means the CSV header or the Parquet schema).
    ``path`` is a JSON path such as ``$.messages[2].content`` or, for CSV, the column name.
    """

    line: int
    path: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"line": self.line, "path": self.path, "message": self.message}

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "header"
        return f"{where} {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


@dataclass(frozen=True, slots=True)
class FieldStats:
    """Length statistics (in characters, i.e. code points) of one text field."""

    count: int
    min_chars: int
    mean_chars: float
    max_chars: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "min_chars": self.min_chars,
            "mean_chars": self.mean_chars,
            "max_chars": self.max_chars,
        }


@dataclass
class ValidationReport:
    """Everything a validation learnt about a dataset.

    ``errors``/``warnings`` hold the first ``limits.max_errors_listed`` issues in file
    order, while ``error_count``/``warning_count`` count all of them. ``rows`` counts the
    data rows examined (valid or not; blank lines are not rows).
    """

    valid: bool
    format: str | None
    technique: str | None
    file_type: str
    rows: int
    bytes: int
    sha256: str | None = None
    errors: list[Issue] = field(default_factory=list)
    error_count: int = 0
    warnings: list[Issue] = field(default_factory=list)
    warning_count: int = 0
    stats: dict[str, FieldStats] = field(default_factory=dict)
    source_name: str | None = None

    def summary(self, max_chars: int = 1024) -> str:
        """One paragraph for humans and for the hub's ``FailureReason``.

        The first failing line numbers come first because they are what a user needs to
        fix the file; the text is cut (with an ellipsis) to ``max_chars``.
        """
        name = f"{self.source_name}: " if self.source_name else ""
        fmt = self.format or "unknown format"
        tech = f" for {self.technique.upper()}" if self.technique else ""
        size = f"{self.rows} row{'s' if self.rows != 1 else ''}, {self.bytes} bytes"
        if self.valid:
            text = f"{name}valid {fmt} dataset{tech} ({size})"
            if self.warning_count:
                first = "; ".join(str(w) for w in self.warnings[:3])
                text += f"; {self.warning_count} warning(s): {first}"
            text += "."
        else:
            lines = sorted({e.line for e in self.errors if e.line})
            shown = ", ".join(str(n) for n in lines[:20])
            text = (
                f"{name}invalid {fmt} dataset{tech}: {self.error_count} "
                f"error{'s' if self.error_count != 1 else ''} in {size}"
            )
            if shown:
                text += f"; first failing line(s): {shown}"
            details = "; ".join(str(e) for e in self.errors[:5])
            if details:
                text += f". {details}"
            if self.error_count > 5:
                text += f"; and {self.error_count - 5} more"
            text += "."
        if len(text) > max_chars:
            text = text[: max(0, max_chars - 1)] + "…"
        return text

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (used to store statistics and for ``--json``)."""
        return {
            "valid": self.valid,
            "format": self.format,
            "technique": self.technique,
            "file_type": self.file_type,
            "rows": self.rows,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "errors": [e.to_dict() for e in self.errors],
            "error_count": self.error_count,
            "warnings": [w.to_dict() for w in self.warnings],
            "warning_count": self.warning_count,
            "stats": {k: v.to_dict() for k, v in self.stats.items()},
            "summary": self.summary(),
        }
