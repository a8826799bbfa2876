"""Output helpers shared by the command groups: rich on a terminal, JSON for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from enum import Enum
from typing import Any

from botocore.exceptions import ClientError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def to_jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    return value


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False) + "\n")


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*("" if v is None else str(to_jsonable(v)) for v in row))
    console().print(table)


def error(message: str) -> None:
    console(stderr=True).print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True)


def run_guarded(action: Callable[[], int]) -> int:
    """Map the SDK's exceptions to messages and exit codes."""
    try:
        return action()
    except ClientError as exc:
        err = exc.response.get("Error", {})
        error(f"{err.get('Code')}: {err.get('Message')}")
        code = err.get("Code")
        return EXIT_USAGE if code == "ValidationException" else EXIT_FAILED
    except (FileNotFoundError, IsADirectoryError) as exc:
        error(str(exc))
        return EXIT_USAGE
    except TimeoutError as exc:
        error(str(exc))
        return EXIT_FAILED
    except ValueError as exc:
        error(str(exc))
        return EXIT_FAILED


def run_versions(entity_cls: Any, name: str, as_json: bool) -> int:
    """``versions`` of any entity kind: newest first, as a table or JSON."""

    def action() -> int:
        versions = entity_cls.get(name).get_versions()
        if as_json:
            print_json(versions)
        else:
            print_table(
                f"versions of {name}",
                ("version", "status", "created", "arn"),
                [(v["Version"], v["Status"], v["CreationTime"], v["Arn"]) for v in versions],
            )
        return EXIT_OK

    return run_guarded(action)


def run_delete(entity_cls: Any, name: str, version: str | None, as_json: bool) -> int:
    """``delete`` of any entity kind: one version, or all; exit 1 when there was nothing."""

    def action() -> int:
        deleted = entity_cls.delete_by_name(name, version=version)
        what = f"{entity_cls._list_kind} {name}" + (f" version {version}" if version else "")
        if as_json:
            print_json({"deleted": deleted})
        elif deleted:
            print(f"deleted {what}")
        else:
            error(f"no such {what}")
        return EXIT_OK if deleted else EXIT_FAILED

    return run_guarded(action)


def add_entity_commands(commands: Any, kind: str, handlers: dict[str, Callable[[Any], int]]) -> None:
    """The list/get/versions/delete subcommands every entity kind shares."""
    listing = commands.add_parser("list", help=f"list {kind}s (latest version of each)")
    listing.add_argument("--max-results", type=int, default=100)
    listing.add_argument("--next-token")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=handlers["list"])

    get = commands.add_parser("get", help=f"show one {kind}")
    get.add_argument("name")
    get.add_argument("--version")
    get.add_argument("--json", action="store_true")
    get.set_defaults(func=handlers["get"])

    versions = commands.add_parser("versions", help=f"list the versions of one {kind}")
    versions.add_argument("name")
    versions.add_argument("--json", action="store_true")
    versions.set_defaults(func=handlers["versions"])

    remove = commands.add_parser("delete", help="delete a version, or every version")
    remove.add_argument("name")
    remove.add_argument("--version", help="the version to delete (default: all versions)")
    remove.add_argument("--json", action="store_true")
    remove.set_defaults(func=handlers["delete"])


def run_list(
    entity_cls: Any, args: Any, columns: tuple[str, ...], row: Callable[[dict], tuple]
) -> int:
    """``list`` of any entity kind: one page, as a table with a next-token hint, or JSON."""

    def action() -> int:
        page = entity_cls.list(max_results=args.max_results, next_token=args.next_token)
        if args.json:
            print_json(page)
            return EXIT_OK
        print_table(f"{entity_cls._list_kind}s", columns, [row(i) for i in page["items"]])
        if page["next_token"]:
            print(f"more: --next-token {page['next_token']}")
        return EXIT_OK

    return run_guarded(action)
