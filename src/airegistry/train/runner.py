"""One training run on TRL, from a ``RunSpec`` to a registered model.

The same code runs in the caller's process (``train(wait=True)``) and in a separate
training process (``wait=False``, or several GPUs through ``accelerate``): everything it
needs is in the spec, which is plain JSON. The run reports through a ``JobReporter`` and
ends the record ``Completed``, ``Stopped`` (weights kept, not registered) or ``Failed``
(the reason is the exception's message).
"""

from __future__ import annotations

import math
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from airegistry.session import Session
from airegistry.train.artifacts import (
    TrainedModel,
    output_uri_for,
    put_json,
    record_uri,
    upload_directory,
)
from airegistry.train.common import library_deprecations_silenced
from airegistry.train.data import to_trl_rows
from airegistry.train.inputs import DatasetInput
from airegistry.train.reporting import JobReporter
from airegistry.train.rewards import RewardScorer
from airegistry.train.tracking import MlflowRun


@dataclass
class RunSpec:
    job_name: str
    job_arn: str
    technique: str
    training_type: str
    model_path: str
    hyperparameters: dict[str, Any]
    datasets: list[dict[str, Any]]
    lineage: dict[str, Any]
    model_package_group: str
    s3_output_path: str | None = None
    evaluator: dict[str, Any] | None = None
    reward_contract: str | None = None
    judge_options: dict[str, Any] = field(default_factory=dict)
    mlflow: dict[str, str] | None = None
    compute: dict[str, Any] = field(default_factory=dict)
    session: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def channel(self, name: str) -> DatasetInput | None:
        for entry in self.datasets:
            if entry["channel"] == name:
                return DatasetInput(**entry)
        return None


class StopTraining(Exception):
    pass


def _device_settings(spec: RunSpec) -> tuple[bool, bool]:
    """(use_cpu, bf16) for the compute the spec asks for and what this machine has."""
    import torch

    device = str(spec.compute.get("device", "auto")).lower()
    if device not in ("auto", "cpu", "cuda", "gpu"):
        raise ValueError(f"compute device must be auto, cpu or cuda, got {device!r}")
    has_cuda = torch.cuda.is_available()
    if device in ("cuda", "gpu") and not has_cuda:
        raise ValueError("compute asks for a GPU, but torch sees no CUDA device here")
    use_cpu = device == "cpu" or not has_cuda
    bf16 = str(spec.hyperparameters.get("bf16", "auto")).lower()
    if bf16 == "auto":
        enabled = (not use_cpu) and torch.cuda.is_bf16_supported()
    else:
        enabled = bf16 in ("true", "1", "yes", "on")
    return use_cpu, enabled


def _common_args(spec: RunSpec, work: Path, has_eval: bool) -> dict[str, Any]:
    hp = spec.hyperparameters
    use_cpu, bf16 = _device_settings(spec)
    eval_steps = hp.get("eval_steps") or 0
    return {
        # TRL turns checkpointing on by default; ours is off unless asked (small runs).
        checkpointing_argument(): hp["gradient_checkpointing"],
        "output_dir": str(work / "trl"),
        "max_steps": hp["max_steps"],
        "num_train_epochs": hp["num_train_epochs"],
        "learning_rate": hp["learning_rate"],
        "per_device_train_batch_size": hp["per_device_train_batch_size"],
        "per_device_eval_batch_size": hp["per_device_eval_batch_size"],
        "gradient_accumulation_steps": hp["gradient_accumulation_steps"],
        "warmup_steps": hp["warmup_ratio"],
        "weight_decay": hp["weight_decay"],
        "lr_scheduler_type": hp["lr_scheduler_type"],
        "max_grad_norm": hp["max_grad_norm"],
        "logging_steps": hp["logging_steps"],
        "seed": hp["seed"],
        "bf16": bf16,
        "use_cpu": use_cpu,
        "report_to": "none",
        "save_strategy": "no",
        "disable_tqdm": True,
        "eval_strategy": "steps" if has_eval and eval_steps else "no",
        "eval_steps": eval_steps or None,
        "dataloader_pin_memory": not use_cpu,
    }


def checkpointing_argument() -> str:
    """The TrainingArguments field that turns activation (gradient) checkpointing on.

    transformers 5.x renamed ``gradient_checkpointing`` to ``activation_checkpointing``
    and warns (FutureWarning) when the old name is set; older 5.x releases know only the
    old name. Users keep TRL's familiar hyperparameter name, ``gradient_checkpointing``.
    """
    import dataclasses

    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


def _peft_config(spec: RunSpec) -> Any:
    if spec.training_type != "LORA":
        return None
    from peft import LoraConfig

    hp = spec.hyperparameters
    targets = hp["lora_target_modules"]
    modules: Any = targets if targets == "all-linear" else [t.strip() for t in targets.split(",") if t.strip()]
    return LoraConfig(r=hp["lora_r"], lora_alpha=hp["lora_alpha"], lora_dropout=hp["lora_dropout"],
                      target_modules=modules, task_type="CAUSAL_LM")


def load_tokenizer(model_path: str | Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _trainer_class_and_config(spec: RunSpec, args: dict[str, Any]) -> tuple[Any, Any]:
    hp = spec.hyperparameters
    if spec.technique == "sft":
        from trl import SFTConfig, SFTTrainer

        return SFTTrainer, SFTConfig(**args, max_length=hp["max_length"], packing=hp["packing"],
                                     completion_only_loss=hp["completion_only_loss"])
    if spec.technique == "dpo":
        from trl import DPOConfig, DPOTrainer

        return DPOTrainer, DPOConfig(**args, max_length=hp["max_length"], beta=hp["beta"],
                                     loss_type=hp["loss_type"])
    from trl import GRPOConfig, GRPOTrainer

    return GRPOTrainer, GRPOConfig(
        **args, num_generations=hp["num_generations"],
        max_completion_length=hp["max_completion_length"], temperature=hp["temperature"],
        beta=hp["beta"],
    )


def _callback(reporter: JobReporter, tracker: MlflowRun | None, scorer: RewardScorer | None) -> Any:
    from transformers import TrainerCallback

    class JobCallback(TrainerCallback):
        """Progress and metrics into the record; stop requests into TRL's control.

        On a terminal (training in the caller's process), a progress bar shows the steps.
        """

        bar: Any = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            reporter.secondary("Training", f"Training for {state.max_steps} steps")
            if sys.stdout.isatty():
                from rich.progress import Progress

                self.bar = Progress(transient=False)
                self.task = self.bar.add_task(f"training {reporter.job_name}", total=state.max_steps)
                self.bar.start()

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.bar is not None:
                self.bar.stop()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            epochs = max(1, math.ceil(state.num_train_epochs or 1))
            reporter.progress(
                CurrentStep=state.global_step, CurrentEpoch=int(state.epoch or 0), MaxEpoch=epochs,
                TotalStepCountPerEpoch=math.ceil(state.max_steps / epochs),
            )
            reporter.status_message(f"step {state.global_step} of {state.max_steps}")
            if self.bar is not None:
                self.bar.update(self.task, completed=state.global_step)
            if reporter.stop_requested.is_set():
                control.should_training_stop = True

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            numbers = {k: float(v) for k, v in (logs or {}).items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool)}
            if scorer is not None:
                numbers.update({f"{k}_total": v for k, v in scorer.stats.metrics().items()
                                if k != "mean_reward"})
            row = {"step": state.global_step, "epoch": state.epoch, "time": time.time(), **numbers}
            reporter.metric_row(row)
            shown = ", ".join(f"{k}={v:.4g}" for k, v in numbers.items())
            reporter.log_line(f"step {state.global_step}: {shown}")
            if tracker is not None:
                finite = {k: v for k, v in numbers.items() if math.isfinite(v)}
                tracker.log_metrics(finite, state.global_step)

    return JobCallback()


def _final_metrics(result: Any, eval_metrics: dict[str, Any], scorer: RewardScorer | None,
                   rows: list[dict[str, Any]]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    loss = getattr(result, "training_loss", None)
    if loss is not None and math.isfinite(loss):
        metrics["train_loss"] = float(loss)
    losses = [r["loss"] for r in rows if isinstance(r.get("loss"), float) and math.isfinite(r["loss"])]
    if losses:
        metrics["final_step_loss"] = losses[-1]
    for key, value in eval_metrics.items():
        if isinstance(value, (int, float)) and math.isfinite(value):
            metrics[key] = float(value)
    if scorer is not None:
        metrics.update(scorer.stats.metrics())
    return metrics


def run(spec: RunSpec, session: Session, reporter: JobReporter | None = None) -> str:
    """Train, store and register; returns the job's final status. Raises what failed it."""
    reporter = reporter or JobReporter(session, spec.job_name)
    tracker: MlflowRun | None = None
    status = "Failed"
    try:
        reporter.start()
        tracker = MlflowRun.open(spec.mlflow, spec.job_name)
        if tracker is not None:
            tracker.log_params(spec.hyperparameters)
            tracker.log_lineage(spec.lineage)
            reporter.secondary("Downloading", f"MLflow run {tracker.run_id}")
        status = _train(spec, session, reporter, tracker)
        return status
    except BaseException as exc:
        reporter.log_line(traceback.format_exc())
        reason = "training process interrupted" if isinstance(exc, KeyboardInterrupt) else (
            f"{type(exc).__name__}: {exc}")
        reporter.finish("Failed", message=reason, extra=_mlflow_ids(tracker))
        raise
    finally:
        if tracker is not None:
            try:
                tracker.end(status)
            except Exception as exc:  # tracking never fails a run
                reporter.log_line(f"MLflow: could not end the run: {exc}")


def _mlflow_ids(tracker: MlflowRun | None) -> dict[str, str]:
    if tracker is None:
        return {}
    return {"Mlflow.ExperimentId": tracker.experiment_id, "Mlflow.RunId": tracker.run_id}


def _load_rows(entry: DatasetInput, session: Session) -> list[dict[str, Any]]:
    from airegistry.evaluator import iter_dataset_rows

    return list(iter_dataset_rows(entry.entity(session)))


def _train(spec: RunSpec, session: Session, reporter: JobReporter, tracker: MlflowRun | None) -> str:
    """The run itself, with the libraries' own progress bars off (the job has its own) and
    their internal deprecation warnings (``common.LIBRARY_DEPRECATIONS``) silenced."""
    import datasets.utils.logging as datasets_logging
    import transformers.utils.logging as transformers_logging

    bars = datasets_logging.is_progress_bar_enabled(), transformers_logging.is_progress_bar_enabled()
    datasets_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    try:
        with library_deprecations_silenced():
            return _train_quietly(spec, session, reporter, tracker)
    finally:
        if bars[0]:
            datasets_logging.enable_progress_bar()
        if bars[1]:
            transformers_logging.enable_progress_bar()


def _train_quietly(
    spec: RunSpec, session: Session, reporter: JobReporter, tracker: MlflowRun | None
) -> str:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from transformers.trainer_callback import PrinterCallback

    train_input = spec.channel("train")
    assert train_input is not None
    raw_rows = _load_rows(train_input, session)
    train_rows = to_trl_rows(raw_rows, train_input.format, spec.technique)
    eval_input = spec.channel("validation")
    eval_rows = None
    if eval_input is not None:
        eval_rows = to_trl_rows(_load_rows(eval_input, session), eval_input.format, spec.technique)
    tokenizer = load_tokenizer(spec.model_path)
    with tempfile.TemporaryDirectory(prefix=f"airegistry-{spec.job_name}-") as tmp:
        work = Path(tmp)
        args = _common_args(spec, work, eval_rows is not None)
        trainer_cls, config = _trainer_class_and_config(spec, args)
        dtype = torch.bfloat16 if config.bf16 else torch.float32
        model = AutoModelForCausalLM.from_pretrained(spec.model_path, dtype=dtype)
        kwargs: dict[str, Any] = {
            "model": model, "args": config, "train_dataset": Dataset.from_list(train_rows),
            "processing_class": tokenizer, "peft_config": _peft_config(spec),
        }
        if eval_rows is not None:
            kwargs["eval_dataset"] = Dataset.from_list(eval_rows)
        scorer = None
        if spec.technique in ("rlvr", "rlaif"):
            scorer = _scorer(spec, session, raw_rows)
            kwargs["reward_funcs"] = scorer.trl_function()
        trainer = trainer_cls(**kwargs)
        trainer.remove_callback(PrinterCallback)
        trainer.add_callback(_callback(reporter, tracker, scorer))
        reporter.log_line(f"training {spec.technique} ({spec.training_type}) on {len(train_rows)} rows")
        result = trainer.train()
        stopped = reporter.stop_requested.is_set()
        eval_metrics: dict[str, Any] = {}
        if eval_rows is not None and not stopped:
            reporter.secondary("Training", "Evaluating on the validation dataset")
            eval_metrics = trainer.evaluate()
        reporter.secondary("Uploading", "Storing the trained weights")
        out = work / "model"
        trainer.save_model(str(out))
        tokenizer.save_pretrained(str(out))
        kind = "adapter" if spec.training_type == "LORA" else "full"
        for leftover in out.glob("training_args.bin"):
            leftover.unlink()
        artifacts_uri = output_uri_for(spec.s3_output_path, session, spec.job_name)
        upload_directory(session, out, artifacts_uri, kind)
    metrics = _final_metrics(result, eval_metrics, scorer, reporter.rows)
    lineage = dict(spec.lineage, final_metrics=metrics, stopped=stopped,
                   model_artifacts=artifacts_uri)
    put_json(session, record_uri(session, spec.job_name, "lineage.json"), lineage)
    artifacts = {"SageMaker.ModelArtifact": artifacts_uri}
    if tracker is not None:
        tracker.log_metrics({f"final_{k}": v for k, v in metrics.items()}, step=int(result.global_step))
    if stopped:
        status = "Stopped"
    else:
        model = TrainedModel.register(
            session, spec.model_package_group, artifact_uri=artifacts_uri, kind=kind,
            lineage=lineage, description=f"Trained by {spec.job_name}",
        )
        artifacts["SageMaker.ModelPackage"] = model.arn
        status = "Completed"
    reporter.finish(status, metrics=metrics, artifacts=artifacts, extra=_mlflow_ids(tracker))
    return status


def _scorer(spec: RunSpec, session: Session, rows: list[dict[str, Any]]) -> RewardScorer:
    from airegistry.evaluator import Evaluator

    info = spec.evaluator or {}
    if info.get("arn"):
        evaluator = Evaluator.get(info["name"], session, version=info["version"])
    else:
        evaluator = Evaluator(name=info.get("name"), type=info.get("type"),
                              reference=info.get("reference"), sagemaker_session=session)
    options = dict(spec.judge_options)
    return RewardScorer(evaluator, spec.reward_contract or "event", rows, judge_options=options,
                        batch_size=spec.hyperparameters.get("reward_batch_size") or 0)
