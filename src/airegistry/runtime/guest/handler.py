"""Importing ``module.function`` the way Lambda's Python runtime does, with its error names."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from . import frames
from .marshal import describe, error, safe_str, user_stack


def import_handler(init: frames.Init) -> tuple[Any, frames.ErrorInfo | None]:
    """Import ``module.function`` the way Lambda's Python runtime does, with its error names."""
    handler = init.handler
    modname, _, fname = handler.rpartition(".")
    if not modname or not fname:
        return None, error(
            "Runtime.MalformedHandlerName",
            f"Bad handler '{handler}': expected 'module.function'",
        )
    if not os.access(init.code_dir, os.R_OK | os.X_OK):
        return None, error(
            "Runtime.SandboxError",
            f"code directory {init.code_dir} is not readable inside the sandbox "
            f"(uid {os.getuid()}); make the deployment package world-readable",
        )
    sys.path.insert(0, init.code_dir)
    try:
        module = importlib.import_module(modname.replace("/", "."))
    except SyntaxError as exc:
        trace = [f'  File "{exc.filename}" Line {exc.lineno}\n    {(exc.text or "").rstrip()}\n']
        return None, error(
            "Runtime.UserCodeSyntaxError",
            f"Syntax error in module '{modname}': {safe_str(exc)}",
            trace,
        )
    except ImportError as exc:
        return None, error(
            "Runtime.ImportModuleError",
            f"Unable to import module '{modname}': {safe_str(exc)}",
            user_stack(exc),
        )
    except BaseException as exc:
        err = describe(exc, init.memory_mb)
        return None, err
    func = getattr(module, fname, None)
    if func is None:
        return None, error(
            "Runtime.HandlerNotFound", f"Handler '{fname}' missing on module '{modname}'"
        )
    if not callable(func):
        return None, error(
            "Runtime.HandlerNotFound",
            f"Handler '{fname}' on module '{modname}' is not callable "
            f"(it is a {type(func).__name__})",
        )
    return func, None
