"""AWS service models as airegistry's API contract, and request validation.

botocore's ``sagemaker`` model is the contract every backend honours: the embedded
client, the server and AWS itself. boto3 checks only part of it client side (types,
required members, minimum lengths and values); the service checks the rest. A request
that reaches our hub without going through boto3 (curl, another SDK, the server's
JSON endpoint) must be refused exactly where AWS would refuse it, otherwise code that
works against airegistry breaks against AWS -- or a hostile name such as ``../x``
reaches the storage layer. ``validate_params`` therefore runs botocore's own
``ParamValidator`` first and then the constraints the service enforces: maximum
lengths and values, enum membership and the model's regular expressions (Java
patterns, translated by ``java_patterns``). ``validate_input`` does the same for the
input shape of any service model (the server's Lambda wire uses the ``lambda`` one).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape
from botocore.validate import ParamValidator

from airegistry.hub.java_patterns import displayed_pattern, java_pattern

__all__ = [
    "OperationError",
    "isolated_botocore_session",
    "java_pattern",
    "operation_model",
    "sagemaker_model",
    "service_model",
    "validate_input",
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
_MODELS: dict[str, ServiceModel] = {}


def service_model(name: str) -> ServiceModel:
    """botocore's model of service ``name``, loaded once per process (it is ~100 ms)."""
    model = _MODELS.get(name)
    if model is None:
        with _MODEL_LOCK:
            model = _MODELS.get(name)
            if model is None:
                model = _MODELS[name] = isolated_botocore_session().get_service_model(name)
    return model


def sagemaker_model() -> ServiceModel:
    """botocore's ``sagemaker`` service model."""
    return service_model(SERVICE_NAME)


@functools.cache
def _operation_names() -> frozenset[str]:
    return frozenset(sagemaker_model().operation_names)


def operation_model(operation: str) -> OperationModel:
    """The model of ``operation``; ``UnknownOperationException`` if SageMaker has none."""
    if operation not in _operation_names():
        raise OperationError("UnknownOperationException", f"Operation {operation} is not supported")
    return sagemaker_model().operation_model(operation)


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
                    + displayed_pattern(pattern),
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
    validate_input(operation, operation_model(operation).input_shape, params)


def validate_input(operation: str, shape: Shape | None, params: Any, *,
                   type_error_code: str = "ValidationException") -> None:
    """Refuse ``params`` that break ``shape`` (an operation's input shape, of any service).

    What botocore's ``ParamValidator`` reports (unknown or missing members, wrong types)
    is ``type_error_code``; a broken constraint (length, value range, enum, pattern,
    valid Unicode) is ``ValidationException``, with AWS's message.
    """
    if shape is None:
        if params:
            raise OperationError(
                "ValidationException", f"Operation {operation} takes no parameters"
            )
        return
    if not isinstance(params, Mapping):
        raise OperationError(
            type_error_code,
            f"Parameters of {operation} must be a JSON object, got {type(params).__name__}",
        )
    report = _validator.validate(params, shape)
    if report.has_errors():
        text = _truncate(report.generate_report(), _MAX_REPORT_CHARS)
        raise OperationError(type_error_code, f"Parameter validation failed:\n{text}")
    errors = _Violations()
    _check(params, shape, "", errors)
    if errors.items:
        raise OperationError("ValidationException", errors.message())
