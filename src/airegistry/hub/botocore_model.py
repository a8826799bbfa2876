"""The SageMaker service model as airegistry's API contract, and request validation.

botocore's ``sagemaker`` model is the contract every backend honours: the embedded
client, the server and AWS itself. boto3 checks only part of it client side (types,
required members, minimum lengths and values); the service checks the rest. A request
that reaches our hub without going through boto3 (curl, another SDK, the server's
JSON endpoint) must be refused exactly where AWS would refuse it, otherwise code that
works against airegistry breaks against AWS -- or a hostile name such as ``../x``
reaches the storage layer. ``validate_params`` therefore runs botocore's own
``ParamValidator`` first and then the constraints the service enforces: maximum
lengths and values, enum membership and the model's regular expressions.

AWS evaluates those patterns as Java regular expressions over the whole value
(``String.matches``). Python's ``re`` differs in ways that matter here, so each
pattern is translated once (``java_pattern``):

* the pattern must match the entire value (``re.fullmatch``);
* ``.`` does not match line terminators (``\\n``, ``\\r``, U+0085, U+2028, U+2029), so a
  member whose pattern is ``.*`` refuses multi-line values, as AWS does;
* ``\\w``, ``\\d``, ``\\s`` are ASCII-only;
* ``\\p{L}``-style Unicode categories and POSIX classes (``\\p{Alnum}``) are expanded to
  explicit ranges computed from ``unicodedata``;
* a ``\\uD800\\uDC00`` surrogate pair inside a class is one supplementary code point.

A pattern that uses Java syntax the translator does not know is logged once and not
enforced (the length, enum and type checks still apply) rather than breaking every
request of that operation; the test suite checks that every pattern of the current
model translates.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
import re
import threading
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape
from botocore.validate import ParamValidator

__all__ = [
    "OperationError",
    "isolated_botocore_session",
    "java_pattern",
    "operation_model",
    "sagemaker_model",
    "validate_params",
]

logger = logging.getLogger(__name__)

SERVICE_NAME = "sagemaker"

# How much of an offending value an error message quotes. AWS echoes the value; a
# 320 KB document echoed back helps nobody and bloats logs.
_MAX_VALUE_IN_MESSAGE = 200
# How many individual violations one ValidationException lists.
_MAX_ERRORS_IN_MESSAGE = 10
# Cap on the size of a message built from botocore's report (it embeds values).
_MAX_REPORT_CHARS = 4000


class OperationError(Exception):
    """An error the caller should see as an AWS error response.

    Raised by hub handlers and by validation. The wire layer turns it into a JSON error
    body (``__type``/``message``) with ``status``; boto3 then raises
    ``botocore.exceptions.ClientError`` whose ``Error.Code`` is ``code``.
    """

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        if not code or not isinstance(code, str):
            raise ValueError("OperationError needs a non-empty error code")
        if not 400 <= int(status) <= 599:
            raise ValueError(f"OperationError status must be 4xx or 5xx, got {status}")
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = int(status)

    def __repr__(self) -> str:
        return f"OperationError({self.code!r}, {self.message!r}, status={self.status})"


# --------------------------------------------------------------------------- model


def isolated_botocore_session() -> botocore.session.Session:
    """A botocore session that ignores the user's AWS profile and config files.

    The embedded registry must work whatever ``~/.aws`` holds: a missing
    ``AWS_PROFILE``, a config file with a syntax error or an unrelated default region
    must not break loading the service model or building the in-process client. Only
    the model data path is still honoured.
    """
    return botocore.session.Session(
        session_vars={
            "profile": (None, None, None, None),
            "config_file": (None, None, os.devnull, None),
            "credentials_file": (None, None, os.devnull, None),
        }
    )


_MODEL_LOCK = threading.Lock()
_MODEL: ServiceModel | None = None


def sagemaker_model() -> ServiceModel:
    """botocore's ``sagemaker`` service model, loaded once per process (it is ~100 ms)."""
    global _MODEL
    model = _MODEL
    if model is None:
        with _MODEL_LOCK:
            if _MODEL is None:
                _MODEL = isolated_botocore_session().get_service_model(SERVICE_NAME)
            model = _MODEL
    return model


@functools.cache
def _operation_names() -> frozenset[str]:
    return frozenset(sagemaker_model().operation_names)


def operation_model(operation: str) -> OperationModel:
    """The model of ``operation``; ``UnknownOperationException`` if SageMaker has none."""
    if operation not in _operation_names():
        raise OperationError("UnknownOperationException", f"Operation {operation} is not supported")
    return sagemaker_model().operation_model(operation)


# ------------------------------------------------------------------ Java patterns

_LINE_TERMINATORS = "\\n\\r\\x85\\u2028\\u2029"
_JAVA_DOT = f"[^{_LINE_TERMINATORS}]"

_POSIX_CLASSES: dict[str, str] = {
    "Lower": "a-z",
    "Upper": "A-Z",
    "ASCII": "\\x00-\\x7f",
    "Alpha": "a-zA-Z",
    "Digit": "0-9",
    "Alnum": "a-zA-Z0-9",
    "Punct": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    "Graph": "\\x21-\\x7e",
    "Print": "\\x20-\\x7e",
    "Blank": " \\t",
    "Cntrl": "\\x00-\\x1f\\x7f",
    "XDigit": "0-9a-fA-F",
    "Space": " \\t\\n\\x0b\\f\\r",
}

_CATEGORY_LOCK = threading.Lock()
_CATEGORY_RANGES: dict[str, list[tuple[int, int]]] | None = None


def _category_ranges() -> dict[str, list[tuple[int, int]]]:
    """Code point ranges of every Unicode general category (one pass, ~0.3 s, once)."""
    global _CATEGORY_RANGES
    if _CATEGORY_RANGES is None:
        with _CATEGORY_LOCK:
            if _CATEGORY_RANGES is None:
                ranges: dict[str, list[tuple[int, int]]] = {}
                categories = map(unicodedata.category, map(chr, range(0x110000)))
                start = 0
                for category, group in itertools.groupby(categories):
                    size = sum(1 for _ in group)
                    ranges.setdefault(category, []).append((start, start + size - 1))
                    start += size
                _CATEGORY_RANGES = ranges
    return _CATEGORY_RANGES


def _code_point_escape(cp: int) -> str:
    return f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}"


@functools.cache
def _property_class_body(name: str) -> str:
    """The inside of a character class equivalent to Java's ``\\p{name}``."""
    if name in _POSIX_CLASSES:
        return _POSIX_CLASSES[name]
    key = name[2:] if name.startswith("Is") and len(name) <= 4 else name
    all_ranges = _category_ranges()
    if len(key) == 1 and key.isupper():
        selected = [r for cat, rs in all_ranges.items() if cat[0] == key for r in rs]
    elif len(key) == 2 and key in all_ranges:
        selected = list(all_ranges[key])
    elif len(key) == 2 and key[0].isupper() and key[1].islower():
        selected = []  # a valid category with no code points in this Unicode version
    else:
        raise _UnsupportedPattern(f"unsupported Unicode property \\p{{{name}}}")
    if not selected:
        raise _UnsupportedPattern(f"Unicode property \\p{{{name}}} matches nothing")
    selected.sort()
    parts = []
    for lo, hi in selected:
        parts.append(
            _code_point_escape(lo) if lo == hi else f"{_code_point_escape(lo)}-{_code_point_escape(hi)}"
        )
    return "".join(parts)


class _UnsupportedPattern(ValueError):
    """A Java regex construct the translator cannot express in Python's ``re``."""


_UNSUPPORTED_ESCAPES = frozenset("QERXhHvVZGNk")


def _read_property(pattern: str, i: int) -> tuple[str, int]:
    """Parse the name after ``\\p``/``\\P`` at ``pattern[i]``; returns (name, next index)."""
    if i < len(pattern) and pattern[i] == "{":
        end = pattern.find("}", i)
        if end < 0:
            raise _UnsupportedPattern("unterminated \\p{...}")
        return pattern[i + 1 : end], end + 1
    if i < len(pattern):
        return pattern[i], i + 1
    raise _UnsupportedPattern("dangling \\p")


def _read_unicode_escape(pattern: str, i: int) -> tuple[int, int]:
    """Parse ``\\uXXXX`` (``pattern[i]`` is the ``u``), joining a surrogate pair."""
    hexdigits = pattern[i + 1 : i + 5]
    if len(hexdigits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in hexdigits):
        raise _UnsupportedPattern("malformed \\u escape")
    cp = int(hexdigits, 16)
    nxt = i + 5
    if 0xD800 <= cp <= 0xDBFF and pattern.startswith("\\u", nxt):
        low_digits = pattern[nxt + 2 : nxt + 6]
        if len(low_digits) == 4 and all(c in "0123456789abcdefABCDEF" for c in low_digits):
            low = int(low_digits, 16)
            if 0xDC00 <= low <= 0xDFFF:
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00)
                nxt += 6
    return cp, nxt


def _translate(pattern: str) -> str:
    out: list[str] = []
    i = 0
    n = len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 >= n:
                raise _UnsupportedPattern("trailing backslash")
            e = pattern[i + 1]
            if e in "pP":
                name, i = _read_property(pattern, i + 2)
                body = _property_class_body(name)
                if in_class:
                    if e == "P":
                        raise _UnsupportedPattern("\\P{...} inside a character class")
                    out.append(body)
                else:
                    out.append(f"[{'^' if e == 'P' else ''}{body}]")
                continue
            if e == "u":
                cp, i = _read_unicode_escape(pattern, i + 1)
                out.append(_code_point_escape(cp))
                continue
            if e == "x" and i + 2 < n and pattern[i + 2] == "{":
                raise _UnsupportedPattern("\\x{...} escape")
            if e == "z":
                out.append("\\Z")
                i += 2
                continue
            if e in _UNSUPPORTED_ESCAPES:
                raise _UnsupportedPattern(f"\\{e} escape")
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            if c == "[":
                raise _UnsupportedPattern("nested character class")
            if c == "&" and pattern.startswith("&&", i):
                raise _UnsupportedPattern("character class intersection")
            if c == "]":
                in_class = False
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            out.append(c)
            i += 1
            if i < n and pattern[i] == "^":
                out.append("^")
                i += 1
            continue
        if c == ".":
            out.append(_JAVA_DOT)
            i += 1
            continue
        if c == "$":
            # Java accepts a quantifier on the end anchor (``...${1,128}`` occurs in the
            # model); {n,m} with n >= 1 means the anchor itself, n == 0 means optional.
            m = re.match(r"\{(\d+)(?:,(\d*))?\}", pattern[i + 1 :])
            if m:
                if int(m.group(1)) >= 1:
                    out.append("$")
                i += 1 + m.end()
                continue
            out.append("$")
            i += 1
            continue
        out.append(c)
        i += 1
    if in_class:
        raise _UnsupportedPattern("unterminated character class")
    return "".join(out)


@functools.cache
def java_pattern(pattern: str) -> re.Pattern[str] | None:
    """Compile a service-model (Java) pattern for ``fullmatch``; ``None`` if untranslatable."""
    try:
        return re.compile(_translate(pattern), re.ASCII)
    except (_UnsupportedPattern, re.error) as exc:
        logger.warning("service-model pattern %r is not enforced: %s", pattern, exc)
        return None


def _displayed_pattern(pattern: str) -> str:
    """The pattern as AWS prints it in messages: anchored."""
    shown = pattern if pattern.startswith("^") else "^" + pattern
    return shown if shown.endswith("$") else shown + "$"


# ------------------------------------------------------------------ validation

_validator = ParamValidator()


def _truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}...({len(text)} characters)"


def _shown_value(value: Any) -> str:
    if isinstance(value, str):
        text = value
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(str(v) for v in value[:20]) + (", ..." if len(value) > 20 else "") + "]"
    else:
        text = str(value)
    text = _truncate(text, _MAX_VALUE_IN_MESSAGE)
    if not text.isascii():
        # An unpaired surrogate in the offending value must not make the error itself
        # unencodable (responses and logs are UTF-8).
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _camel(member: str) -> str:
    return member[:1].lower() + member[1:]


class _Violations:
    """Collects AWS-style constraint violations ("Value 'x' at 'path' failed to ...")."""

    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, value: Any, path: str, constraint: str) -> None:
        shown = "null" if value is None else f"'{_shown_value(value)}'"
        self.items.append(
            f"Value {shown} at '{path}' failed to satisfy constraint: {constraint}"
        )

    def message(self) -> str:
        count = len(self.items)
        listed = self.items[:_MAX_ERRORS_IN_MESSAGE]
        text = "; ".join(listed)
        if count > len(listed):
            text += f"; ... and {count - len(listed)} more"
        return f"{count} validation error{'s' if count != 1 else ''} detected: {text}"


def _check(value: Any, shape: Shape, path: str, errors: _Violations) -> None:
    """Walk ``value`` (already type-checked by ParamValidator) against ``shape``'s constraints."""
    if value is None:
        return
    meta = shape.metadata
    kind = shape.type_name
    if kind == "structure":
        if shape.is_document_type or not isinstance(value, Mapping):
            return
        for name, member in shape.members.items():
            if name in value:
                child = f"{path}.{_camel(name)}" if path else _camel(name)
                _check(value[name], member, child, errors)
        return
    if kind == "list":
        if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
            return
        if not _check_length(value, len(value), meta, path, errors):
            return  # an oversized list is refused as a whole; do not walk a million items
        for index, item in enumerate(value):
            _check(item, shape.member, f"{path}.{index + 1}.member", errors)
        return
    if kind == "map":
        if not isinstance(value, Mapping):
            return
        if not _check_length(value, len(value), meta, path, errors):
            return
        for key, item in value.items():
            _check(key, shape.key, f"{path}.{key}(key)", errors)
            _check(item, shape.value, f"{path}.{key}", errors)
        return
    if kind == "string":
        if not isinstance(value, str):
            return
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                errors.add(value, path, "Member must be valid Unicode (unpaired surrogate)")
                return
        length_ok = _check_length(value, len(value), meta, path, errors)
        enum = shape.enum
        if enum and value not in enum:
            errors.add(value, path, f"Member must satisfy enum value set: [{', '.join(enum)}]")
        pattern = meta.get("pattern")
        # Only match patterns against values of acceptable length: that bounds the
        # regex work a hostile request can cause.
        if pattern and length_ok:
            compiled = java_pattern(pattern)
            if compiled is not None and compiled.fullmatch(value) is None:
                errors.add(
                    value,
                    path,
                    "Member must satisfy regular expression pattern: "
                    + _displayed_pattern(pattern),
                )
        return
    if kind in ("integer", "long", "float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return
        if "min" in meta and value < meta["min"]:
            errors.add(value, path, f"Member must have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            errors.add(value, path, f"Member must have value less than or equal to {meta['max']}")
        return
    if kind == "blob" and isinstance(value, (bytes, bytearray, str)):
        _check_length(value, len(value), meta, path, errors)


def _check_length(value: Any, length: int, meta: Mapping[str, Any], path: str, errors: _Violations) -> bool:
    ok = True
    if "min" in meta and length < meta["min"]:
        errors.add(value, path, f"Member must have length greater than or equal to {meta['min']}")
        ok = False
    if "max" in meta and length > meta["max"]:
        errors.add(value, path, f"Member must have length less than or equal to {meta['max']}")
        ok = False
    return ok


def validate_params(operation: str, params: dict) -> None:
    """Refuse ``params`` for ``operation`` the way SageMaker would.

    Raises ``OperationError("ValidationException", ...)`` naming every offending field:
    first what boto3 itself checks (botocore's ``ParamValidator``: unknown and missing
    members, types, minimums), then what only the service checks (maximum lengths and
    values, enums, patterns, valid Unicode). Raises ``UnknownOperationException`` for an
    operation SageMaker does not have.
    """
    op = operation_model(operation)
    shape = op.input_shape
    if shape is None:
        if params:
            raise OperationError(
                "ValidationException", f"Operation {operation} takes no parameters"
            )
        return
    if not isinstance(params, Mapping):
        raise OperationError(
            "ValidationException",
            f"Parameters of {operation} must be a JSON object, got {type(params).__name__}",
        )
    report = _validator.validate(params, shape)
    if report.has_errors():
        text = _truncate(report.generate_report(), _MAX_REPORT_CHARS)
        raise OperationError("ValidationException", f"Parameter validation failed:\n{text}")
    errors = _Violations()
    _check(params, shape, "", errors)
    if errors.items:
        raise OperationError("ValidationException", errors.message())
