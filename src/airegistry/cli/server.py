"""``airegistry server``: serve a registry home over the AWS wire protocols.

One code path for one or many workers: the options are handed to
``airegistry.server.app:app_factory`` through environment variables, which uvicorn's
worker processes inherit, so a single worker and N workers build the app identically.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from airegistry.server.auth import KEYS_ENV, KEYS_FILE_NAME, KeyStoreError, create_key
from airegistry.server.compose import HOME_ENV, NO_AUTH_ENV

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

#: uvicorn protocol classes with the header deadline and connection cap (server.connections).
HTTP_PROTOCOLS = {
    "h11": "airegistry.server.connections:GuardedH11Protocol",
    "httptools": "airegistry.server.connections:GuardedHttpToolsProtocol",
}
DEFAULT_HTTP = "httptools"
DEFAULT_LOOP = "asyncio"


def add_server_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "server",
        help="serve the registry over the AWS wire protocols (SageMaker, S3, Lambda, STS)",
        description=(
            "Serve a registry home on one port that speaks the protocols boto3 uses. Requests "
            "are authenticated with SigV4 against the keys in <home>/server-keys.json and "
            f"${KEYS_ENV}; create one with --create-key."
        ),
    )
    parser.add_argument("--home", type=Path, default=None,
                        help="registry home directory (default: $AIREGISTRY_HOME or ~/.airegistry)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to bind (default 8080)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--no-auth", action="store_true",
                        help="accept unsigned requests (local experiments only)")
    parser.add_argument("--create-key", action="store_true",
                        help="create an access key pair, store it in the home, print it, and exit")
    parser.add_argument("--virtual-host-base", action="append", default=None, metavar="HOST",
                        help="host name under which <bucket>.HOST is virtual-host-style S3 "
                             "(repeatable; default: s3.localhost and localhost)")
    parser.add_argument("--max-object-size", type=int, default=None, metavar="BYTES",
                        help="largest single PutObject/UploadPart body (default 5 GiB)")
    parser.add_argument("--max-connections", type=int, default=None, metavar="N",
                        help="most client connections a worker keeps open; beyond it the "
                             "longest-idle one is closed (default: half the descriptor limit "
                             "after a reserve, at most 10000)")
    parser.add_argument("--header-timeout", type=float, default=None, metavar="SECONDS",
                        help="time a client has to send complete request headers, on a new "
                             "connection and between requests (default 15)")
    parser.add_argument("--http", choices=sorted(HTTP_PROTOCOLS), default=DEFAULT_HTTP,
                        help="HTTP/1.1 parser: httptools (llhttp, C) or h11 (pure Python); "
                             f"both carry the connection limits (default {DEFAULT_HTTP})")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default=DEFAULT_LOOP,
                        help=f"event loop (default {DEFAULT_LOOP}; uvloop must be installed)")
    parser.add_argument("--log-level", default="info",
                        choices=["critical", "error", "warning", "info", "debug"])
    parser.set_defaults(func=run_server)
    return parser


def _log_config(level: str) -> dict[str, Any]:
    """uvicorn applies this in every worker: JSON access lines go to stderr unchanged."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "default": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        },
        "handlers": {
            # no formatter: the message is the line, and log_access writes it directly
            "access": {"class": "airegistry.server.logging.AccessLineHandler",
                       "stream": "ext://sys.stderr"},
            "default": {"class": "logging.StreamHandler", "formatter": "default",
                        "stream": "ext://sys.stderr"},
        },
        "loggers": {
            "airegistry.server.access": {"handlers": ["access"], "level": level.upper(),
                                         "propagate": False},
            "airegistry": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
        },
    }


def run_server(args: argparse.Namespace) -> int:
    from airegistry.home import Home, default_home
    from airegistry.storage.blobs.errors import BlobStoreError
    from airegistry.storage.metadata import DatabaseUnavailable

    home_dir = (args.home or default_home()).expanduser().resolve()
    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if args.max_connections is not None and args.max_connections < 1:
        print("error: --max-connections must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if args.header_timeout is not None and not args.header_timeout > 0:
        print("error: --header-timeout must be a positive number of seconds", file=sys.stderr)
        return EXIT_USAGE
    try:
        # Opening the home checks the database and the blob store: a PostgreSQL that is
        # down or a missing bucket fails here with a clear message, before the port binds.
        home = Home(home_dir, start_jobs=False)
    except (DatabaseUnavailable, BlobStoreError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        if args.create_key:
            return _create_key(home)
        from airegistry.server.compose import auth_for

        if not args.no_auth:
            try:
                auth = auth_for(home)
            except KeyStoreError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return EXIT_USAGE
            if not auth.keys:
                print(
                    f"error: no access keys configured for {home_dir}. Create one with "
                    f"`airegistry server --home {home_dir} --create-key`, set "
                    f"{KEYS_ENV}=AKID:SECRET, or pass --no-auth for a local experiment.",
                    file=sys.stderr,
                )
                return EXIT_USAGE
    finally:
        home.close()
    os.environ[HOME_ENV] = str(home_dir)
    os.environ[NO_AUTH_ENV] = "1" if args.no_auth else "0"
    if args.virtual_host_base:
        os.environ["AIREGISTRY_SERVER_VHOST_BASES"] = ",".join(args.virtual_host_base)
    if args.max_object_size is not None:
        os.environ["AIREGISTRY_SERVER_MAX_OBJECT_SIZE"] = str(args.max_object_size)
    from airegistry.server.connections import (
        HEADER_TIMEOUT_ENV,
        MAX_CONNECTIONS_ENV,
        listen_backlog,
        raise_descriptor_limit,
    )

    raise_descriptor_limit()  # inherited by the workers; the default cap follows from it
    if args.max_connections is not None:
        os.environ[MAX_CONNECTIONS_ENV] = str(args.max_connections)
    if args.header_timeout is not None:
        os.environ[HEADER_TIMEOUT_ENV] = str(args.header_timeout)

    import uvicorn

    common: dict[str, Any] = {
        "host": args.host, "port": args.port, "log_config": _log_config(args.log_level),
        "access_log": False, "timeout_graceful_shutdown": 30, "lifespan": "on",
        # uvicorn's protocol with a header deadline and a connection cap
        "http": HTTP_PROTOCOLS[args.http], "loop": args.loop,
        "backlog": listen_backlog(),
    }
    if args.workers == 1:
        from airegistry.server.compose import app_factory

        app = app_factory()  # fail fast (bad home, bad keys) before binding the port
        uvicorn.run(app, **common)
    else:
        uvicorn.run("airegistry.server.compose:app_factory", factory=True,
                    workers=args.workers, **common)
    return EXIT_OK


def _create_key(home: Any) -> int:
    """A new access key: in the shared metadata store for replicas, else the keys file."""
    from airegistry.server.auth import create_shared_key

    if home.shares_state:
        key_id, secret = create_shared_key(home.settings)
        where = f"the metadata store ({home.db.describe()}), shared by every replica"
    else:
        key_id, secret = create_key(home.path)
        where = str(home.path / KEYS_FILE_NAME)
    print(f"Created an access key for {home.path} (stored in {where}):")
    print(f"AWS_ACCESS_KEY_ID={key_id}")
    print(f"AWS_SECRET_ACCESS_KEY={secret}")
    return EXIT_OK
