"""``airegistry train sft|dpo|rlvr|rlaif``: train on registry datasets, record the job."""

from __future__ import annotations

import argparse
from typing import Any

from airegistry.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, error, print_json, run_guarded

_TRAINERS = {
    "sft": ("airegistry.train.sft_trainer", "SFTTrainer"),
    "dpo": ("airegistry.train.dpo_trainer", "DPOTrainer"),
    "rlvr": ("airegistry.train.rlvr_trainer", "RLVRTrainer"),
    "rlaif": ("airegistry.train.rlaif_trainer", "RLAIFTrainer"),
}


def add_parser(groups: Any) -> None:
    parser = groups.add_parser("train", help="fine-tune a local model on registry datasets")
    techniques = parser.add_subparsers(dest="technique", metavar="TECHNIQUE")
    techniques.required = True
    for technique in _TRAINERS:
        sub = techniques.add_parser(technique, help=f"{technique.upper()} training")
        sub.add_argument("--model", required=True, help="a local model directory or a cached model id")
        sub.add_argument("--dataset", required=True, help="NAME[:VERSION], a DataSet ARN or an s3:// URI")
        sub.add_argument("--validation", help="validation dataset, NAME[:VERSION]")
        if technique in ("rlvr", "rlaif"):
            sub.add_argument("--evaluator", required=True,
                             help="reward function (rlvr) or reward prompt (rlaif), NAME[:VERSION]")
        if technique == "rlvr":
            sub.add_argument("--skip-reward-validation", action="store_true")
            sub.add_argument("--reward-contract", choices=("auto", "event", "batch"), default="auto")
        if technique == "rlaif":
            sub.add_argument("--judge-model", help="the judge model's name (reward_model_id)")
            sub.add_argument("--judge-base-url", help="OpenAI-compatible endpoint of the judge")
        sub.add_argument("--training-type", choices=("LORA", "FULL"), default="LORA")
        sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="a hyperparameter (repeatable), e.g. --set max_steps=10")
        sub.add_argument("--base-job-name")
        sub.add_argument("--model-package-group")
        sub.add_argument("--s3-output-path")
        sub.add_argument("--mlflow-tracking-uri")
        sub.add_argument("--dry-run", action="store_true", help="run every check, train nothing")
        sub.add_argument("--no-wait", action="store_true", help="train in a separate process")
        sub.add_argument("--json", action="store_true")
        sub.set_defaults(func=run_train)


def _hyperparameters(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"--set needs KEY=VALUE, got {pair!r}")
        out[key.strip()] = value.strip()
    return out


def job_summary(job: Any) -> dict[str, Any]:
    return {
        "training_job_name": job.training_job_name,
        "training_job_arn": job.training_job_arn,
        "training_job_status": job.training_job_status,
        "secondary_status": job.secondary_status,
        "failure_reason": job.failure_reason,
        "progress_info": job.progress_info,
        "final_metrics": job.final_metrics,
        "model_artifacts": job.model_artifacts_uri,
        "output_model_package_arn": job.output_model_package_arn,
    }


def run_train(args: argparse.Namespace) -> int:
    import importlib

    try:
        hyperparameters = _hyperparameters(args.set)
    except argparse.ArgumentTypeError as exc:
        error(str(exc))
        return EXIT_USAGE
    module, name = _TRAINERS[args.technique]
    kwargs: dict[str, Any] = {
        "model": args.model, "training_type": args.training_type,
        "training_dataset": args.dataset, "validation_dataset": args.validation,
        "hyperparameters": hyperparameters, "base_job_name": args.base_job_name,
        "model_package_group": args.model_package_group, "s3_output_path": args.s3_output_path,
        "mlflow_resource_arn": args.mlflow_tracking_uri,
    }
    if args.technique == "rlvr":
        kwargs.update(custom_reward_function=args.evaluator,
                      skip_reward_validation=args.skip_reward_validation,
                      reward_contract=args.reward_contract)
    if args.technique == "rlaif":
        kwargs.update(reward_prompt=args.evaluator, reward_model_id=args.judge_model,
                      judge_options={"base_url": args.judge_base_url} if args.judge_base_url else None)

    def action() -> int:
        from airegistry.train.job import TrainingJobFailedError

        trainer = getattr(importlib.import_module(module), name)(**kwargs)
        try:
            job = trainer.train(wait=not args.no_wait, dry_run=args.dry_run)
        except TrainingJobFailedError as exc:
            job = exc.job
        if job is None:
            if args.json:
                print_json({"dry_run": True, "ok": True})
            else:
                print("dry run: every check passed; nothing was trained or recorded")
            return EXIT_OK
        summary = job_summary(job)
        if args.json:
            print_json(summary)
        else:
            print(f"{job.training_job_name}: {job.training_job_status}")
            if job.failure_reason:
                print(f"  reason: {job.failure_reason}")
            for metric, value in job.final_metrics.items():
                print(f"  {metric}: {value:.6g}")
            if job.output_model_package_arn:
                print(f"  model: {job.output_model_package_arn}")
        return EXIT_FAILED if job.training_job_status == "Failed" else EXIT_OK

    return run_guarded(action)
