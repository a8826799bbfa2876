"""SageMaker JSON 1.1 wire codec: one mapping between AWS requests and hub handlers.

The HTTP server (``POST /`` with ``X-Amz-Target: SageMaker.<Op>``) and the embedded
in-process boto3 client both go through ``SageMakerWire.handle``, so an operation
behaves identically whichever way it is reached: the same decoding, the same
service-model validation, the same output filtering and the same AWS error bodies.

Handlers are plain callables ``params -> output``: ``params`` are validated, use the
model's PascalCase member names, carry timestamps as timezone-aware UTC ``datetime``
and blobs as ``bytes``; the output may contain extra keys (dropped), ``None`` values
(omitted) and ``datetime`` objects (naive ones are taken as UTC). Handlers signal
AWS errors by raising ``OperationError``; anything else they raise is a bug and is
answered with a generic 500 ``InternalFailure`` (the traceback goes to the log, never
to the caller).
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import msgspec
from botocore.model import OperationModel, Shape
from botocore.utils import parse_to_aware_datetime

from airegistry.hub.botocore_model import (
    OperationError,
    operation_model,
    sagemaker_model,
    validate_params,
)
from airegistry.hub.json_encode import Encoder, compile_encoder
from airegistry.storage.metadata.database import DatabaseUnavailable

__all__ = ["CONTENT_TYPE", "DEFAULT_MAX_BODY_BYTES", "TARGET_PREFIX", "Handler", "SageMakerWire"]

logger = logging.getLogger(__name__)
#: Encodes the shape encoder's output (plain str/int/float/bool/list/dict, floats already
#: checked finite): msgspec took a 100-summary page from 197 to 19 us (json.dumps before).
_JSON = msgspec.json.Encoder()


def _encode_body(payload: Any) -> bytes:
    """The JSON body; a lone surrogate (which error messages may quote from the request)
    cannot be UTF-8, so such a body is written with ``\\u`` escapes by ``json.dumps``."""
    try:
        return _JSON.encode(payload)
    except UnicodeEncodeError:
        return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode("ascii")

Handler = Callable[[dict], dict]

CONTENT_TYPE = "application/x-amz-json-1.1"
TARGET_PREFIX = "SageMaker."

# The largest legitimate request is an ImportHubContent with a 327,680-character
# document and a 170,391-character markdown, each character JSON-escaped at worst as a
# 12-byte surrogate pair: well under 8 MiB. Anything bigger is refused unread.
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


class _BadRequest(Exception):
    """A request body that cannot be deserialised into the input shape."""


def _reject_constant(name: str) -> Any:
    raise _BadRequest(f"{name} is not a valid JSON number")


def _json_path(path: str, member: str) -> str:
    return f"{path}.{member}" if path else member


# ------------------------------------------------------------------ input decoding


def _decode_timestamp(value: Any, path: str) -> datetime:
    """Epoch seconds (number or numeric string) or ISO 8601 -> aware UTC datetime."""
    try:
        if isinstance(value, bool):
            raise _BadRequest(f"'{path}' must be a timestamp, got a boolean")
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(value, tz=timezone.utc)
        if isinstance(value, str):
            text = value.strip()
            try:
                return datetime.fromtimestamp(float(text), tz=timezone.utc)
            except ValueError:
                pass
            if text.endswith(("Z", "z")):
                text = text[:-1] + "+00:00"
            parsed = datetime.fromisoformat(text)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=timezone.utc)
            return parsed.astimezone(timezone.utc)
    except (ValueError, OverflowError, OSError) as exc:
        raise _BadRequest(f"'{path}' is not a valid timestamp: {exc}") from None
    raise _BadRequest(
        f"'{path}' must be a timestamp (epoch seconds or ISO 8601), got {_json_type(value)}"
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _decode(value: Any, shape: Shape, path: str) -> Any:
    """Convert decoded JSON to the Python values handlers expect, checking JSON types.

    Unknown structure members are passed through untouched so that the validator
    reports them by name together with any other problem.
    """
    kind = shape.type_name
    if kind == "structure":
        if shape.is_document_type:
            return value
        if not isinstance(value, dict):
            raise _BadRequest(f"'{path or 'input'}' must be a JSON object, got {_json_type(value)}")
        members = shape.members
        wire_names = _wire_names(shape)
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = wire_names.get(key)
            if name is None:
                out[key] = item
            elif item is not None:
                out[name] = _decode(item, members[name], _json_path(path, name))
        return out
    if kind == "list":
        if not isinstance(value, list):
            raise _BadRequest(f"'{path}' must be a JSON array, got {_json_type(value)}")
        member = shape.member
        return [_decode(item, member, f"{path}[{i}]") for i, item in enumerate(value)]
    if kind == "map":
        if not isinstance(value, dict):
            raise _BadRequest(f"'{path}' must be a JSON object, got {_json_type(value)}")
        return {
            _decode(k, shape.key, f"{path} (key)"): _decode(v, shape.value, f"{path}.{k}")
            for k, v in value.items()
        }
    if kind == "string":
        if not isinstance(value, str):
            raise _BadRequest(f"'{path}' must be a string, got {_json_type(value)}")
        return value
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _BadRequest(f"'{path}' must be an integer, got {_json_type(value)}")
        lo, hi = _INT32 if kind == "integer" else _INT64
        if not lo <= value <= hi:
            raise _BadRequest(f"'{path}' is out of range for a {kind}")
        return value
    if kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _BadRequest(f"'{path}' must be a number, got {_json_type(value)}")
        return float(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise _BadRequest(f"'{path}' must be a boolean, got {_json_type(value)}")
        return value
    if kind == "timestamp":
        return _decode_timestamp(value, path)
    if kind == "blob":
        if not isinstance(value, str):
            raise _BadRequest(f"'{path}' must be a base64 string, got {_json_type(value)}")
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise _BadRequest(f"'{path}' is not valid base64") from None
    raise _BadRequest(f"'{path}' has unsupported shape type {kind}")


_WIRE_NAME_CACHE: dict[int, tuple[Shape, dict[str, str]]] = {}


def _wire_names(shape: Shape) -> dict[str, str]:
    """JSON key -> member name (identical for SageMaker, but honour the model)."""
    cached = _WIRE_NAME_CACHE.get(id(shape))
    if cached is not None and cached[0] is shape:
        return cached[1]
    names = {m.serialization.get("name", n): n for n, m in shape.members.items()}
    _WIRE_NAME_CACHE[id(shape)] = (shape, names)
    return names


def _normalize_input(value: Any, shape: Shape) -> Any:
    """Python-level params (already validated) -> the handler's representation.

    Copies containers (a handler never sees the caller's objects), makes timestamps
    aware UTC datetimes and blobs bytes.
    """
    if value is None:
        return None
    kind = shape.type_name
    if kind == "structure":
        if shape.is_document_type:
            return value
        members = shape.members
        return {
            k: _normalize_input(v, members[k]) for k, v in value.items() if v is not None
        }
    if kind == "list":
        return [_normalize_input(v, shape.member) for v in value]
    if kind == "map":
        return {k: _normalize_input(v, shape.value) for k, v in value.items()}
    if kind == "timestamp":
        return parse_to_aware_datetime(value).astimezone(timezone.utc)
    if kind == "blob":
        if isinstance(value, str):
            return value.encode("utf-8")
        if hasattr(value, "read"):
            return value.read()
        return bytes(value)
    if kind == "string" and isinstance(value, enum.Enum):
        return value.value
    return value


# ------------------------------------------------------------------------ the wire


class SageMakerWire:
    """Dispatches SageMaker JSON 1.1 requests to hub handlers; stateless and thread-safe."""

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        model_ops = set(sagemaker_model().operation_names)
        unknown = sorted(set(handlers) - model_ops)
        if unknown:
            raise ValueError(f"handlers for operations SageMaker does not define: {unknown}")
        for name, handler in handlers.items():
            if not callable(handler):
                raise TypeError(f"handler for {name} is not callable")
        self._handlers: dict[str, Handler] = dict(handlers)
        self.max_body_bytes = max_body_bytes
        self._encoders: dict[tuple[str, bool], Encoder] = {}

    @property
    def operations(self) -> frozenset[str]:
        """The operations this wire answers."""
        return frozenset(self._handlers)

    # -- dispatch helpers

    def _resolve(self, operation: str) -> tuple[OperationModel, Handler]:
        handler = self._handlers.get(operation)
        if handler is None:
            raise OperationError("UnknownOperationException", f"Operation {operation} is not supported")
        return operation_model(operation), handler

    # -- Python-level entry point

    def call(self, operation: str, params: Mapping[str, Any]) -> dict:
        """Run ``operation`` with Python ``params`` through the same validation as the wire.

        Returns the output filtered to the operation's output shape (timestamps as aware
        UTC datetimes). ``OperationError`` and handler bugs propagate unchanged.
        """
        op, handler = self._resolve(operation)
        params = dict(params)
        validate_params(operation, params)
        decoded = _normalize_input(params, op.input_shape) if op.input_shape is not None else {}
        result = handler(decoded)
        if op.output_shape is None or result is None:
            return {}
        return self._encoder(operation, op, for_json=False)(result)

    def _encoder(self, operation: str, op: OperationModel, *, for_json: bool) -> Encoder:
        key = (operation, for_json)
        encoder = self._encoders.get(key)
        if encoder is None:
            encoder = compile_encoder(op.output_shape, "", for_json)
            self._encoders[key] = encoder  # benign race: equal encoders
        return encoder

    # -- wire entry point

    def handle(self, target: str | None, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """Answer one JSON 1.1 request: returns (status, headers, body)."""
        request_id = str(uuid.uuid4())
        operation = "?"
        try:
            operation = self._operation_from_target(target)
            op, handler = self._resolve(operation)
            params = self._decode_body(op, body)
            validate_params(operation, params)
            result = handler(params)
            # A handler with nothing to say (DeleteTags, DeleteHubContent) may return None.
            payload: Any = (
                {}
                if op.output_shape is None or result is None
                else self._encoder(operation, op, for_json=True)(result)
            )
            data = _encode_body(payload)
            return 200, {"Content-Type": CONTENT_TYPE, "x-amzn-RequestId": request_id}, data
        except OperationError as exc:
            if exc.status >= 500:
                logger.error("%s failed (request %s): %s", operation, request_id, exc)
            return self._error(exc.code, exc.message, exc.status, request_id)
        except DatabaseUnavailable as exc:
            # The transaction was rolled back: nothing of this request was stored.
            logger.error("%s failed (request %s): %s", operation, request_id, exc)
            return self._error("ServiceUnavailable", f"{exc} (request {request_id}); retry later",
                               503, request_id)
        except Exception:
            logger.exception("unexpected failure in %s (request %s)", operation, request_id)
            return self._error(
                "InternalFailure",
                f"The request processing has failed because of an unknown error (request {request_id}).",
                500,
                request_id,
            )

    @staticmethod
    def _operation_from_target(target: str | None) -> str:
        if not target:
            raise OperationError(
                "UnknownOperationException",
                "Missing X-Amz-Target header; expected SageMaker.<Operation>",
            )
        if not target.startswith(TARGET_PREFIX) or len(target) == len(TARGET_PREFIX):
            shown = target if len(target) <= 100 else target[:100] + "..."
            raise OperationError("UnknownOperationException", f"Operation {shown} is not supported")
        operation = target[len(TARGET_PREFIX) :]
        if len(operation) > 100 or not operation.isidentifier():
            raise OperationError("UnknownOperationException", "Operation is not supported")
        return operation

    def _decode_body(self, op: OperationModel, body: bytes) -> dict:
        if not isinstance(body, bytes):
            body = bytes(body)  # bytearray / memoryview from an HTTP framework
        if len(body) > self.max_body_bytes:
            raise OperationError(
                "RequestEntityTooLargeException",
                f"Request body is {len(body)} bytes; the limit is {self.max_body_bytes} bytes",
                413,
            )
        try:
            if not body.strip():
                document: Any = {}
            else:
                document = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
            if not isinstance(document, dict):
                raise _BadRequest(f"request body must be a JSON object, got {_json_type(document)}")
            if op.input_shape is None:
                return document
            return _decode(document, op.input_shape, "")
        except _BadRequest as exc:
            raise OperationError("SerializationException", str(exc)) from None
        except UnicodeDecodeError:
            raise OperationError("SerializationException", "request body is not valid UTF-8") from None
        except RecursionError:
            raise OperationError("SerializationException", "request body is nested too deeply") from None
        except ValueError as exc:
            # json.JSONDecodeError, and int() refusing a number with thousands of digits
            raise OperationError("SerializationException", f"request body is not valid JSON: {exc}") from None

    @staticmethod
    def _error(code: str, message: str, status: int, request_id: str) -> tuple[int, dict[str, str], bytes]:
        data = _encode_body({"__type": code, "message": message})
        headers = {
            "Content-Type": CONTENT_TYPE,
            "x-amzn-RequestId": request_id,
            "x-amzn-ErrorType": code,
        }
        return status, headers, data
