"""The registry's web UI: browse datasets and evaluators, preview rows, run evaluators.

``create_ui_app`` builds the ASGI app; the server mounts it under ``/ui/`` and
``airegistry ui`` serves it alone. See docs/ui.md.
"""

from airegistry.ui.app import create_server_ui, create_ui_app

__all__ = ["create_server_ui", "create_ui_app"]
