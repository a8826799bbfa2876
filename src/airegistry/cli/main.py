"""The ``airegistry`` command: one argparse tree, a module per command group.

Exit codes scripts can trust: 0 success, 1 the operation failed (not found, invalid
data, a failed import), 2 usage errors (bad arguments, missing files, unknown names of
techniques or types).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from airegistry import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="airegistry",
        description="Open, self-hostable AI Registry: datasets and evaluators for model customization.",
    )
    parser.add_argument("--version", action="version", version=f"airegistry {__version__}")
    groups = parser.add_subparsers(dest="group", metavar="COMMAND")
    groups.required = True

    from airegistry.cli import datasets, evaluators, jobs, train

    datasets.add_parser(groups)
    evaluators.add_parser(groups)
    train.add_parser(groups)
    jobs.add_parser(groups)
    try:
        from airegistry.cli.server import add_server_parser
    except ImportError:  # pragma: no cover - server extras missing
        pass
    else:
        add_server_parser(groups)
        from airegistry.cli.ui import add_ui_parser

        add_ui_parser(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
