"""Lambda runtime names this registry accepts, and what actually runs them.

AWS users and the official SageMaker SDK send whatever Python runtime their code targets
(the SDK's BYOC path sends ``python3.9``). Every ``python3.x`` runtime from 3.8 to 3.13 is
accepted and **recorded as requested** (``GetFunction`` reports it back), and every one of them
runs on the interpreter the registry itself runs on (``sys.executable``): there is one Python
per host, not one per runtime. Code written for an older 3.x normally runs unchanged on a newer
one; code that needs a feature newer than the host's interpreter fails at import, with the
usual ``Runtime.ImportModuleError`` or ``Runtime.UserCodeSyntaxError``.
"""

from __future__ import annotations

import sys

PYTHON_RUNTIMES = tuple(f"python3.{minor}" for minor in range(8, 14))
DEFAULT_RUNTIME = "python3.12"


def host_runtime() -> str:
    """The runtime name of the interpreter that executes every function here."""
    return f"python{sys.version_info.major}.{sys.version_info.minor}"


def unsupported_runtime_message(runtime: object) -> str | None:
    """None for an accepted runtime, else the reason (Lambda's InvalidParameterValueException)."""
    if isinstance(runtime, str) and runtime in PYTHON_RUNTIMES:
        return None
    return (
        f"Runtime {runtime!r} is not supported here; use one of {', '.join(PYTHON_RUNTIMES)} "
        f"(all run on this registry's {host_runtime()})"
    )
