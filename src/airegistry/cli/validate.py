"""``airegistry datasets validate FILE``: the validator on the command line.

Exit status: 0 valid, 1 invalid, 2 usage error (missing file, unsupported extension,
unknown technique, file over ``--max-size``). With ``--json`` exactly one JSON object is
written to stdout (the report, or ``{"error": ...}`` for usage errors), so scripts never
have to parse the human output.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from airegistry.formats import (
    TECHNIQUES,
    SourceReadError,
    ValidationLimits,
    ValidationReport,
    validate,
)
from airegistry.formats.errors import FormatsError

PROGRESS_MIN_BYTES = 4 << 20  # below this a bar would only flicker


def add_validate_parser(subparsers: Any) -> None:
    """Register ``validate`` on an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "validate",
        help="check every row of a dataset file against the training-data formats",
        description="Validate a .jsonl/.json/.csv/.parquet dataset file row by row.",
    )
    p.add_argument("file", metavar="FILE", help="dataset file (.jsonl, .json, .csv, .parquet)")
    p.add_argument(
        "--technique",
        type=str.lower,
        help=f"customization technique the data is for: {'|'.join(TECHNIQUES)} "
        "(default: accept any format)",
    )
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument(
        "--max-size",
        type=int,
        metavar="BYTES",
        default=ValidationLimits().max_bytes,
        help="refuse files larger than this (default: 1 GiB)",
    )
    p.set_defaults(func=run_validate)


def run_validate(args: argparse.Namespace) -> int:
    """Run the command; returns the exit status."""
    try:
        limits = ValidationLimits(max_bytes=args.max_size)
    except ValueError as exc:
        return _usage_error(args, str(exc))
    path = args.file
    show_progress = not args.json and sys.stderr.isatty() and _size(path) >= PROGRESS_MIN_BYTES
    try:
        if show_progress:
            report = _with_progress(path, args.technique, limits)
        else:
            report = validate(path, technique=args.technique, limits=limits)
    except SourceReadError as exc:
        return _usage_error(args, str(exc))
    except FileNotFoundError:
        return _usage_error(args, f"no such file: {path}")
    except (FormatsError, OSError) as exc:
        return _usage_error(args, str(exc))
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), ensure_ascii=False) + "\n")
    else:
        _print_report(report)
    return 0 if report.valid else 1


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _usage_error(args: argparse.Namespace, message: str) -> int:
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps({"error": message}) + "\n")
    else:
        sys.stderr.write(f"error: {message}\n")
    return 2


def _with_progress(path: str, technique: str | None, limits: ValidationLimits) -> ValidationReport:
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    with Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(),
        TimeRemainingColumn(), transient=True,
    ) as bar:
        task = bar.add_task(f"validating {os.path.basename(path)}", total=_size(path))
        return validate(
            path, technique=technique, limits=limits,
            progress=lambda done: bar.update(task, completed=done),
        )


def _print_report(report: ValidationReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    style = "green" if report.valid else "red"
    console.print(f"[{style}]{'VALID' if report.valid else 'INVALID'}[/{style}] ", end="")
    console.print(report.summary(max_chars=400), markup=False, highlight=False)
    for title, issues, count in (
        ("Errors", report.errors, report.error_count),
        ("Warnings", report.warnings, report.warning_count),
    ):
        if not issues:
            continue
        shown = f" (first {len(issues)} of {count})" if count > len(issues) else ""
        table = Table(title=f"{title}{shown}", title_justify="left")
        table.add_column("line", justify="right")
        table.add_column("path")
        table.add_column("message", overflow="fold")
        for issue in issues:
            table.add_row(str(issue.line) if issue.line else "-", issue.path, issue.message)
        console.print(table)
    if report.stats:
        table = Table(title="Text fields (characters)", title_justify="left")
        for col in ("field", "count", "min", "mean", "max"):
            table.add_column(col, justify="left" if col == "field" else "right")
        for name, s in report.stats.items():
            table.add_row(name, str(s.count), str(s.min_chars), f"{s.mean_chars:.1f}",
                          str(s.max_chars))
        console.print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="airegistry datasets")
    add_validate_parser(parser.add_subparsers(dest="command", required=True))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors already
        return int(exc.code or 0)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
