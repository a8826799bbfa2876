"""Dataset format detection and validation (see docs/formats.md).

``validate(source, technique=...)`` checks every row of a ``.jsonl``/``.json``/``.csv``/
``.parquet`` dataset against the formats of FORMATS.md and returns a
:class:`ValidationReport`; usage errors raise subclasses of :class:`ValueError`.
"""

from __future__ import annotations

from .errors import (
    DatasetTooLargeError,
    FormatsError,
    SourceReadError,
    UnknownTechniqueError,
    UnsupportedFileTypeError,
)
from .report import FieldStats, Issue, ValidationLimits, ValidationReport
from .schemas import FILE_TYPES, FORMATS, TECHNIQUE_FORMATS, TECHNIQUES
from .validate import validate

__all__ = [
    "FILE_TYPES",
    "FORMATS",
    "TECHNIQUES",
    "TECHNIQUE_FORMATS",
    "DatasetTooLargeError",
    "FieldStats",
    "FormatsError",
    "Issue",
    "SourceReadError",
    "UnknownTechniqueError",
    "UnsupportedFileTypeError",
    "ValidationLimits",
    "ValidationReport",
    "validate",
]
