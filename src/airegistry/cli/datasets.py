"""``airegistry datasets``: create, list, get, versions, delete, validate."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from airegistry.cli import common
from airegistry.cli.common import (
    EXIT_OK,
    EXIT_USAGE,
    error,
    print_json,
    print_table,
    run_guarded,
)

TECHNIQUES = ("sft", "dpo", "rlaif", "rlvr")


def add_parser(groups: Any) -> None:
    parser = groups.add_parser("datasets", help="manage datasets")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    create = commands.add_parser("create", help="register a dataset (a local file or an s3:// URI)")
    create.add_argument("name")
    create.add_argument("source", help="local .jsonl/.json/.csv/.parquet file or s3://bucket/key")
    create.add_argument("--technique", choices=TECHNIQUES)
    create.add_argument("--description")
    create.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    create.add_argument("--no-wait", action="store_true", help="return while the import runs")
    create.add_argument("--json", action="store_true")
    create.set_defaults(func=run_create)

    common.add_entity_commands(
        commands,
        "dataset",
        {"list": run_list, "get": run_get, "versions": run_versions, "delete": run_delete},
    )

    download = commands.add_parser("download", help="copy a dataset's data to a local path")
    download.add_argument("name")
    download.add_argument("path")
    download.add_argument("--version")
    download.set_defaults(func=run_download)

    from airegistry.cli.validate import add_validate_parser

    add_validate_parser(commands)


def _describe(ds: Any) -> dict[str, Any]:
    return {
        "name": ds.name,
        "version": ds.version,
        "arn": ds.arn,
        "status": ds.status,
        "source": ds.source,
        "method": ds.method,
        "customization_technique": ds.customization_technique,
        "description": ds.description,
        "created_time": ds.created_time,
        "updated_time": ds.updated_time,
        "failure_reason": ds.failure_reason,
        "stats": ds.stats,
    }


def _show(ds: Any, as_json: bool) -> None:
    data = _describe(ds)
    if as_json:
        print_json(data)
        return
    rows = [(k, v) for k, v in data.items() if k != "stats" and v is not None]
    stats = data.get("stats") or {}
    for key in ("rows", "bytes", "format", "sha256", "warning_count"):
        if key in stats:
            rows.append((f"stats.{key}", stats[key]))
    print_table(f"dataset {ds.name}", ("field", "value"), rows)


def _tags(values: list[str]) -> list[dict[str, str]]:
    tags = []
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise ValueError(f"--tag needs KEY=VALUE, got {value!r}")
        tags.append({"Key": key, "Value": val})
    return tags


def run_create(args: argparse.Namespace) -> int:
    from airegistry.dataset import DataSet

    if not args.source.startswith("s3://") and not Path(args.source).expanduser().is_file():
        error(f"dataset file not found: {args.source}")
        return EXIT_USAGE

    def action() -> int:
        ds = DataSet.create(
            args.name,
            args.source,
            customization_technique=args.technique,
            wait=not args.no_wait,
            description=args.description,
            tags=_tags(args.tag),
        )
        _show(ds, args.json)
        return EXIT_OK

    return run_guarded(action)


def run_list(args: argparse.Namespace) -> int:
    from airegistry.dataset import DataSet

    return common.run_list(
        DataSet,
        args,
        ("name", "version", "status", "technique", "method", "created"),
        lambda i: (i["name"], i["version"], i["status"], i["customization_technique"],
                   i["method"], i["created_time"]),
    )

def run_get(args: argparse.Namespace) -> int:
    from airegistry.dataset import DataSet

    def action() -> int:
        _show(DataSet.get(args.name, version=args.version), args.json)
        return EXIT_OK

    return run_guarded(action)


def run_versions(args: argparse.Namespace) -> int:
    from airegistry.dataset import DataSet

    return common.run_versions(DataSet, args.name, args.json)


def run_delete(args: argparse.Namespace) -> int:
    from airegistry.dataset import DataSet

    return common.run_delete(DataSet, args.name, args.version, args.json)



def run_download(args: argparse.Namespace) -> int:
    from airegistry.dataset import DataSet

    def action() -> int:
        path = DataSet.get(args.name, version=args.version).download(args.path)
        print(str(path))
        return EXIT_OK

    return run_guarded(action)
