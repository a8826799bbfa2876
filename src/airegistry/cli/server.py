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

from airegistry.server.app import HOME_ENV, NO_AUTH_ENV
from airegistry.server.auth import KEYS_ENV, KEYS_FILE_NAME, AuthConfig, KeyStoreError, create_key

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


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
            "plain": {"format": "%(message)s"},
            "default": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        },
        "handlers": {
            "access": {"class": "logging.StreamHandler", "formatter": "plain",
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
    from airegistry.home import default_home

    home = (args.home or default_home()).expanduser().resolve()
    if args.create_key:
        key_id, secret = create_key(home)
        print(f"Created an access key for {home} (stored in {home / KEYS_FILE_NAME}):")
        print(f"AWS_ACCESS_KEY_ID={key_id}")
        print(f"AWS_SECRET_ACCESS_KEY={secret}")
        return EXIT_OK
    if args.workers < 1:
        print("error: --workers must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if not args.no_auth:
        try:
            auth = AuthConfig.from_home(home)
        except KeyStoreError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        if not auth.keys:
            print(
                f"error: no access keys configured for {home}. Create one with "
                f"`airegistry server --home {home} --create-key`, set {KEYS_ENV}=AKID:SECRET, "
                "or pass --no-auth for a local experiment.",
                file=sys.stderr,
            )
            return EXIT_USAGE
    os.environ[HOME_ENV] = str(home)
    os.environ[NO_AUTH_ENV] = "1" if args.no_auth else "0"
    if args.virtual_host_base:
        os.environ["AIREGISTRY_SERVER_VHOST_BASES"] = ",".join(args.virtual_host_base)
    if args.max_object_size is not None:
        os.environ["AIREGISTRY_SERVER_MAX_OBJECT_SIZE"] = str(args.max_object_size)

    import uvicorn

    common: dict[str, Any] = {
        "host": args.host, "port": args.port, "log_config": _log_config(args.log_level),
        "access_log": False, "timeout_graceful_shutdown": 30, "lifespan": "on",
    }
    if args.workers == 1:
        from airegistry.server.app import app_factory

        app = app_factory()  # fail fast (bad home, bad keys) before binding the port
        uvicorn.run(app, **common)
    else:
        uvicorn.run("airegistry.server.app:app_factory", factory=True, workers=args.workers,
                    **common)
    return EXIT_OK
