"""Checking a handler's return value the way Lambda's ``json.dumps`` would, and describing
failures as Lambda-style errors (``errorType``, ``errorMessage``, ``stackTrace``)."""

from __future__ import annotations

import traceback
from typing import Any

from . import frames


class NotJSON(TypeError):
    pass


def _json_key(key: Any) -> str:
    """Convert a non-str dict key the way ``json.dumps`` does, or reject it."""
    if key is True or key is False or key is None:
        return {True: "true", False: "false", None: "null"}[key]
    if isinstance(key, int):
        return int.__repr__(key)
    if isinstance(key, float):
        return float.__repr__(key)
    if isinstance(key, str):
        return str.__str__(key)
    raise NotJSON(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


def jsonable(value: Any, depth: int = 0) -> Any:
    """Check (and normalise, like ``json.dumps``) a handler's return value.

    Lambda serialises responses with ``json.dumps``; anything it would reject (sets, bytes,
    custom objects, ...) is a ``Runtime.MarshalError`` here too. NaN/Infinity are accepted, as
    ``json.dumps`` does, so a reward validator downstream sees them. Subclasses are reduced to
    their base type via the base type's own methods -- no user-defined method is called.
    """
    t = type(value)
    if t is str or t is int or t is float or t is bool or value is None:
        return value
    if depth > 200:
        raise NotJSON("Circular reference detected or nesting deeper than 200 levels")
    if isinstance(value, dict):
        changed = t is not dict
        pairs = []
        for k, v in dict.items(value):
            key = k if type(k) is str else _json_key(k)
            nv = jsonable(v, depth + 1)
            if key is not k or nv is not v:
                changed = True
            pairs.append((key, nv))
        return dict(pairs) if changed else value
    if isinstance(value, (list, tuple)):
        changed = t is not list
        items = []
        for v in list.__iter__(value) if isinstance(value, list) else tuple.__iter__(value):
            nv = jsonable(v, depth + 1)
            if nv is not v:
                changed = True
            items.append(nv)
        return items if changed else value
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, str):
        return str.__str__(value)
    raise NotJSON(f"Object of type {t.__name__} is not JSON serializable")


# ------------------------------------------------------------------------------------ errors


def safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return f"<unprintable {type(exc).__name__}>"


def user_stack(exc: BaseException, skip: int = 1) -> list[str]:
    """Lambda-style ``stackTrace``: one formatted entry per user frame (our frames dropped)."""
    try:
        tb = exc.__traceback__
        for _ in range(skip):
            if tb is not None:
                tb = tb.tb_next
        return traceback.format_list(traceback.extract_tb(tb))
    except Exception:
        return []


def error(error_type: str, message: str, stack: list[str] | None = None) -> frames.ErrorInfo:
    return frames.ErrorInfo(error_type, message, stack or [])


def describe(exc: BaseException, memory_mb: int) -> frames.ErrorInfo:
    if isinstance(exc, SystemExit):
        code = exc.code
        status = code if isinstance(code, int) else (0 if code is None else 1)
        return error(
            "Runtime.ExitError",
            f"Runtime exited with error: exit status {status} (sys.exit called in handler)",
            user_stack(exc),
        )
    if isinstance(exc, MemoryError):
        detail = safe_str(exc) or "out of memory"
        return error(
            "MemoryError",
            f"{detail} (the function's memory limit is {memory_mb} MB)",
            user_stack(exc),
        )
    return error(type(exc).__name__, safe_str(exc), user_stack(exc))


_SCALARS = frozenset({str, int, float, bool, type(None)})


def marshal(out: Any) -> Any:
    """Fast path of :func:`jsonable` for the usual reward dict of scalars."""
    t = type(out)
    if t is dict:
        for k, v in out.items():
            if type(k) is not str or type(v) not in _SCALARS:
                return jsonable(out)
        return out
    if t in _SCALARS:
        return out
    return jsonable(out)
