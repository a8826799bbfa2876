"""Handler output -> the operation's output shape, for JSON (the wire) or Python callers.

Compiled once per operation into nested closures, so encoding a 100-item page costs a
few dict lookups per member. Only members the shape defines survive; ``None`` is
omitted; a wrong type is a handler bug and raises ``TypeError``.
"""

from __future__ import annotations

import base64
import email.utils
import enum
import math
from collections.abc import Callable, Mapping
from datetime import date, datetime, timezone
from typing import Any

from botocore.model import Shape


def _json_path(path: str, member: str) -> str:
    return f"{path}.{member}" if path else member


def _as_utc(value: Any, path: str) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=timezone.utc)
    raise TypeError(f"output member {path} must be a datetime, got {type(value).__name__}")


def _encode_timestamp(value: datetime, shape: Shape) -> Any:
    fmt = (shape.serialization.get("timestampFormat") or "unixTimestamp").lower()
    if fmt == "iso8601":
        return value.isoformat().replace("+00:00", "Z")
    if fmt == "rfc822":
        return email.utils.format_datetime(value, usegmt=True)
    return value.timestamp()


Encoder = Callable[[Any], Any]


def _type_error(path: str, expected: str, value: Any) -> TypeError:
    return TypeError(f"output member {path or 'output'} must be {expected}, got {type(value).__name__}")


def compile_encoder(shape: Shape, path: str, for_json: bool) -> Encoder:
    """Handler output -> what the shape defines, for JSON or for Python callers.

    The shape tree is walked once per operation and turned into nested closures, so a
    100-item list page costs a few dict lookups per member instead of a shape walk per
    value. Only members the shape defines survive; ``None`` is omitted; a wrong type is a
    handler bug and raises ``TypeError`` (answered as InternalFailure).
    """
    kind = shape.type_name
    if kind == "structure":
        if shape.is_document_type:
            return lambda value: value
        members = [
            (
                name,
                member.serialization.get("name", name) if for_json else name,
                compile_encoder(member, _json_path(path, name), for_json),
            )
            for name, member in shape.members.items()
        ]

        def encode_structure(value: Any) -> dict[str, Any]:
            if not isinstance(value, Mapping):
                raise _type_error(path, "a mapping", value)
            out: dict[str, Any] = {}
            for name, key, encode in members:
                item = value.get(name)
                if item is not None:
                    out[key] = encode(item)
            return out

        return encode_structure
    if kind == "list":
        encode_item = compile_encoder(shape.member, f"{path}[]", for_json)

        def encode_list(value: Any) -> list[Any]:
            if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
                raise _type_error(path, "a list", value)
            return [encode_item(item) for item in value if item is not None]

        return encode_list
    if kind == "map":
        encode_value = compile_encoder(shape.value, f"{path}.*", for_json)

        def encode_map(value: Any) -> dict[str, Any]:
            if not isinstance(value, Mapping):
                raise _type_error(path, "a mapping", value)
            return {str(k): encode_value(v) for k, v in value.items() if v is not None}

        return encode_map
    if kind == "string":

        def encode_string(value: Any) -> str:
            if type(value) is str:
                return value
            if isinstance(value, enum.Enum):
                value = value.value
            if not isinstance(value, str):
                raise _type_error(path, "a string", value)
            return str(value)

        return encode_string
    if kind in ("integer", "long"):

        def encode_integer(value: Any) -> int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise _type_error(path, "an integer", value)
            return int(value)

        return encode_integer
    if kind in ("float", "double"):

        def encode_number(value: Any) -> float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _type_error(path, "a number", value)
            if not math.isfinite(value):
                raise TypeError(f"output member {path} must be finite")
            return float(value)

        return encode_number
    if kind == "boolean":

        def encode_boolean(value: Any) -> bool:
            if not isinstance(value, bool):
                raise _type_error(path, "a boolean", value)
            return value

        return encode_boolean
    if kind == "timestamp":
        if not for_json:
            return lambda value: _as_utc(value, path)
        if (shape.serialization.get("timestampFormat") or "unixTimestamp").lower() == "unixtimestamp":

            def encode_epoch(value: Any) -> float:
                # Handlers may hand over epoch seconds directly: no datetime round trip.
                if type(value) is float:
                    if not math.isfinite(value):
                        raise TypeError(f"output member {path} must be finite")
                    return value
                return _as_utc(value, path).timestamp()

            return encode_epoch
        return lambda value: _encode_timestamp(_as_utc(value, path), shape)
    if kind == "blob":

        def encode_blob(value: Any) -> Any:
            if isinstance(value, str):
                value = value.encode("utf-8")
            if not isinstance(value, (bytes, bytearray, memoryview)):
                raise _type_error(path, "bytes", value)
            return base64.b64encode(bytes(value)).decode("ascii") if for_json else bytes(value)

        return encode_blob

    def unsupported(value: Any) -> Any:
        raise TypeError(f"output member {path} has unsupported shape type {kind}")

    return unsupported


