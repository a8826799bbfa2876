"""``airegistry ui``: the web UI over the embedded registry, for the person at this machine.

It binds 127.0.0.1 only and prints a sign-in link with a one-time token (as Jupyter
does): the first browser to open it gets a session; anyone else needs an access key of
the home, if it has any (``airegistry server --create-key``).
"""

from __future__ import annotations

import argparse
import secrets
import socket
import sys
import threading
import webbrowser
from pathlib import Path
from typing import Any

from airegistry.server.auth import KEYS_FILE_NAME, AuthConfig, KeyStoreError

EXIT_OK, EXIT_USAGE = 0, 2
DEFAULT_PORT = 8765


def add_ui_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "ui", help="open the web UI on the embedded registry (127.0.0.1 only)",
        description="Serve the web UI for a registry home on 127.0.0.1 and print a one-time "
                    "sign-in link.")
    parser.add_argument("--home", type=Path, default=None,
                        help="registry home directory (default: $AIREGISTRY_HOME or ~/.airegistry)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port on 127.0.0.1 (default {DEFAULT_PORT}; 0 picks a free one)")
    parser.add_argument("--open", action="store_true", help="open the link in a web browser")
    parser.set_defaults(func=run_ui)
    return parser


def run_ui(args: argparse.Namespace) -> int:
    import uvicorn

    from airegistry.home import close_homes, default_home
    from airegistry.session import Session
    from airegistry.ui.app import create_ui_app
    from airegistry.ui.auth import UIAuth

    home = (args.home or default_home()).expanduser().resolve()
    keys: AuthConfig | None = None
    if (home / KEYS_FILE_NAME).exists():
        try:
            keys = AuthConfig.from_home(home)
        except KeyStoreError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", args.port))
    except OSError as exc:
        print(f"error: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    sock.listen(128)
    port = sock.getsockname()[1]
    token = secrets.token_urlsafe(32)
    app = create_ui_app(Session(backend="embedded", home=home),
                        UIAuth(keys=keys, one_time_token=token), standalone=True)
    link = f"http://127.0.0.1:{port}/ui/login?token={token}"
    print(f"airegistry UI for {home}", flush=True)
    print(f"Open this link to sign in (it works once): {link}", flush=True)
    if keys is not None:
        print("Other browsers can sign in with an access key of this home.", flush=True)
    if args.open:
        threading.Timer(0.5, webbrowser.open, args=(link,)).start()
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=5)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        close_homes()
    return EXIT_OK
