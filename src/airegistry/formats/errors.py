"""Exceptions for *usage* failures of the validator.

Row-level problems are never raised: they go into the report, because a caller wants
every bad row at once. These exceptions are for situations where no meaningful report
can be produced (wrong arguments, a source that cannot be read to the end). All of them
subclass :class:`ValueError` so that callers mapping to an HTTP 400 / ``ValidationException``
need only one ``except``.
"""

from __future__ import annotations


class FormatsError(ValueError):
    """Base class of every usage error raised by :mod:`airegistry.formats`."""


class UnsupportedFileTypeError(FormatsError):
    """The file type is not one of ``FILE_TYPES`` (or could not be deduced from a name)."""


class UnknownTechniqueError(FormatsError):
    """The technique is not one of ``TECHNIQUES``."""


class DatasetTooLargeError(FormatsError):
    """The source is (or turned out to be, while streaming) larger than ``limits.max_bytes``."""


class SourceReadError(FormatsError):
    """Reading the source failed midway; the underlying exception is chained as ``__cause__``.

    Raised instead of returning a report, so that a truncated read can never be mistaken
    for a valid (shorter) dataset.
    """
