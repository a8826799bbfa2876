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
