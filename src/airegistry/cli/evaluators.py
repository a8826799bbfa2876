"""``airegistry evaluators``: create, list, get, versions, delete, invoke, evaluate."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from airegistry.cli import common
from airegistry.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    error,
    print_json,
    print_table,
    run_guarded,
)


def add_parser(groups: Any) -> None:
    parser = groups.add_parser("evaluators", help="manage and run evaluators")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    create = commands.add_parser("create", help="register a reward function or reward prompt")
    create.add_argument("name")
    create.add_argument("--type", required=True, choices=("RewardFunction", "RewardPrompt"))
    create.add_argument(
        "source", help="Lambda ARN, local .py file, s3:// URI, prompt file or inline prompt text"
    )
    create.add_argument("--role")
    create.add_argument("--description")
    create.add_argument("--no-wait", action="store_true")
    create.add_argument("--json", action="store_true")
    create.set_defaults(func=run_create)

    common.add_entity_commands(
        commands,
        "evaluator",
        {"list": run_list, "get": run_get, "versions": run_versions, "delete": run_delete},
    )

    invoke = commands.add_parser("invoke", help="score one event (JSON) with an evaluator")
    invoke.add_argument("name")
    invoke.add_argument("event", help='JSON object, e.g. \'{"prompt": "...", "response": "..."}\', or @file.json')
    invoke.add_argument("--version")
    _judge_flags(invoke)
    invoke.set_defaults(func=run_invoke)

    evaluate = commands.add_parser("evaluate", help="score every row of a dataset or a JSONL file")
    evaluate.add_argument("name")
    evaluate.add_argument("data", help="a registered dataset name or a local .jsonl file")
    evaluate.add_argument("--version")
    evaluate.add_argument("--limit", type=int)
    evaluate.add_argument("--batch-size", type=int, default=256)
    evaluate.add_argument("--output", help="write one JSON result per line to this file")
    evaluate.add_argument("--json", action="store_true", help="print a JSON summary")
    _judge_flags(evaluate)
    evaluate.set_defaults(func=run_evaluate)


def _judge_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "reward prompts", "the judge model (API key from AIREGISTRY_JUDGE_API_KEY or OPENAI_API_KEY)"
    )
    group.add_argument("--judge-base-url", help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1")
    group.add_argument("--judge-model")
    group.add_argument("--judge-scale", nargs=2, type=float, metavar=("LOW", "HIGH"),
                       help="score range the prompt asks for (default 1 10)")
    group.add_argument("--judge-concurrency", type=int)


def _judge_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {
        "base_url": args.judge_base_url,
        "model": args.judge_model,
        "scale": tuple(args.judge_scale) if args.judge_scale else None,
        "concurrency": args.judge_concurrency,
    }
    return {k: v for k, v in options.items() if v is not None}


def _describe(ev: Any) -> dict[str, Any]:
    return {
        "name": ev.name,
        "version": ev.version,
        "arn": ev.arn,
        "type": ev.type,
        "method": ev.method,
        "reference": ev.reference,
        "status": ev.status,
        "created_time": ev.created_time,
        "updated_time": ev.updated_time,
        "failure_reason": ev.failure_reason,
    }


def _show(ev: Any, as_json: bool) -> None:
    data = _describe(ev)
    if as_json:
        print_json(data)
    else:
        print_table(f"evaluator {ev.name}", ("field", "value"), [(k, v) for k, v in data.items() if v is not None])


def run_create(args: argparse.Namespace) -> int:
    from airegistry.evaluator import Evaluator

    def action() -> int:
        ev = Evaluator.create(
            args.name, args.type, args.source, wait=not args.no_wait, role=args.role,
            description=args.description,
        )
        _show(ev, args.json)
        return EXIT_OK

    return run_guarded(action)


def run_list(args: argparse.Namespace) -> int:
    from airegistry.evaluator import Evaluator

    return common.run_list(
        Evaluator,
        args,
        ("name", "version", "type", "method", "status", "reference"),
        lambda i: (i["name"], i["version"], i["type"], i["method"], i["status"], i["reference"]),
    )

def run_get(args: argparse.Namespace) -> int:
    from airegistry.evaluator import Evaluator

    return run_guarded(lambda: (_show(Evaluator.get(args.name, version=args.version), args.json), EXIT_OK)[1])


def run_versions(args: argparse.Namespace) -> int:
    from airegistry.evaluator import Evaluator

    return common.run_versions(Evaluator, args.name, args.json)


def run_delete(args: argparse.Namespace) -> int:
    from airegistry.evaluator import Evaluator

    return common.run_delete(Evaluator, args.name, args.version, args.json)



def _load_event(text: str) -> dict[str, Any]:
    if text.startswith("@"):
        text = Path(text[1:]).read_text("utf-8")
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("the event must be a JSON object")
    return value


def run_invoke(args: argparse.Namespace) -> int:
    from airegistry.evaluator import Evaluator, EvaluatorInvocationError, EvaluatorNotReachableError

    try:
        event = _load_event(args.event)
    except (ValueError, OSError) as exc:
        error(f"bad event: {exc}")
        return EXIT_USAGE

    def action() -> int:
        ev = Evaluator.get(args.name, version=args.version)
        try:
            result = ev.invoke(event, **_judge_options(args))
        except (EvaluatorInvocationError, EvaluatorNotReachableError) as exc:
            error(str(exc))
            return EXIT_FAILED
        print_json(result)
        return EXIT_OK

    return run_guarded(action)


def _rows_from_jsonl(path: Path) -> Any:
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except ValueError as exc:
                    raise ValueError(f"{path}:{number}: invalid JSON: {exc}") from None


def run_evaluate(args: argparse.Namespace) -> int:
    from airegistry.dataset import DataSet
    from airegistry.evaluator import Evaluator

    def action() -> int:
        ev = Evaluator.get(args.name, version=args.version)
        local = Path(args.data)
        data: Any = _rows_from_jsonl(local) if local.suffix == ".jsonl" and local.is_file() else DataSet.get(args.data)
        outcomes = ev.evaluate(data, batch_size=args.batch_size, limit=args.limit, **_judge_options(args))
        ok = [o for o in outcomes if o.ok]
        summary = {
            "items": len(outcomes),
            "scored": len(ok),
            "failed": len(outcomes) - len(ok),
            "mean_reward": (sum(o.reward for o in ok) / len(ok)) if ok else None,
            "first_errors": [
                {"index": o.index, "error_type": o.error_type, "error": o.error}
                for o in outcomes if not o.ok
            ][:10],
        }
        if args.output:
            with open(args.output, "w", encoding="utf-8") as out:
                for o in outcomes:
                    out.write(json.dumps({"index": o.index, "reward": o.reward, "details": o.details,
                                          "error": o.error, "error_type": o.error_type}, default=str) + "\n")
        if args.json or not sys.stdout.isatty():
            print_json(summary)
        else:
            print_table(
                f"evaluation with {ev.name} v{ev.version}", ("metric", "value"),
                [(k, v) for k, v in summary.items() if k != "first_errors"],
            )
            if summary["first_errors"]:
                print_table("first errors", ("item", "type", "error"),
                            [(e["index"], e["error_type"], e["error"]) for e in summary["first_errors"]])
        return EXIT_OK

    return run_guarded(action)
