"""``airegistry jobs``: list, get, logs and stop training jobs."""

from __future__ import annotations

import argparse
from typing import Any

from airegistry.cli.common import EXIT_OK, print_json, print_table, run_guarded


def add_parser(groups: Any) -> None:
    parser = groups.add_parser("jobs", help="training jobs")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    listing = commands.add_parser("list", help="training jobs, newest first")
    listing.add_argument("--status", choices=("InProgress", "Completed", "Failed", "Stopping", "Stopped"))
    listing.add_argument("--name-contains")
    listing.add_argument("--max-results", type=int, default=10)
    listing.add_argument("--next-token")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=run_list)
    for command, helptext, func in (("get", "show one job", run_get),
                                    ("logs", "print a job's log", run_logs),
                                    ("stop", "ask a running job to stop", run_stop)):
        sub = commands.add_parser(command, help=helptext)
        sub.add_argument("name")
        if command != "logs":
            sub.add_argument("--json", action="store_true")
        sub.set_defaults(func=func)


def run_list(args: argparse.Namespace) -> int:
    def action() -> int:
        from airegistry.train.job import TrainingJob

        page = TrainingJob.list(max_results=args.max_results, next_token=args.next_token,
                                status_equals=args.status, name_contains=args.name_contains)
        if args.json:
            print_json(page)
            return EXIT_OK
        print_table("training jobs", ("name", "status", "secondary", "created"),
                    [(i["training_job_name"], i["training_job_status"], i.get("secondary_status"),
                      i["creation_time"]) for i in page["items"]])
        if page["next_token"]:
            print(f"more: --next-token {page['next_token']}")
        return EXIT_OK

    return run_guarded(action)


def _show(job: Any, as_json: bool) -> int:
    from airegistry.cli.train import job_summary

    summary = job_summary(job)
    if as_json:
        print_json({**summary, "hyper_parameters": job.hyper_parameters,
                    "input_data_config": job.input_data_config, "lineage": job.lineage})
    else:
        print_table(job.training_job_name, ("field", "value"),
                    [(k, v) for k, v in summary.items() if v not in (None, {}, [])])
    return EXIT_OK


def run_get(args: argparse.Namespace) -> int:
    from airegistry.train.job import TrainingJob

    return run_guarded(lambda: _show(TrainingJob.get(args.name), args.json))


def run_logs(args: argparse.Namespace) -> int:
    def action() -> int:
        from airegistry.train.job import TrainingJob

        print(TrainingJob.get(args.name).logs(), end="")
        return EXIT_OK

    return run_guarded(action)


def run_stop(args: argparse.Namespace) -> int:
    from airegistry.train.job import TrainingJob

    return run_guarded(lambda: _show(TrainingJob.get(args.name).stop(), args.json))
