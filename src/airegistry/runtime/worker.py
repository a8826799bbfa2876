"""Entry script of a worker process: ``python -I -B worker.py --fds CMD,RES,SLOT,INBOX``.

Started by :mod:`airegistry.runtime.launcher` by file path (inside bubblewrap it is mounted at
``/var/runtime/worker.py`` next to ``/var/runtime/guest``). It loads the sibling ``guest``
package by path under the name ``airegistry_guest`` so the worker never imports the rest of
``airegistry``: less attack surface, faster start. Also runnable as
``python -I -m airegistry.runtime.worker``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from types import ModuleType


def _guest_main() -> ModuleType:
    if __package__:
        return importlib.import_module(f"{__package__}.guest.main")
    package_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "guest")
    spec = importlib.util.spec_from_file_location(
        "airegistry_guest",
        os.path.join(package_dir, "__init__.py"),
        submodule_search_locations=[package_dir],
    )
    assert spec is not None and spec.loader is not None
    package = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = package
    spec.loader.exec_module(package)
    return importlib.import_module("airegistry_guest.main")


if __name__ == "__main__":
    _guest_main().main()
