"""TrainingJob: the record of one training run, read through SageMaker's training-job operations.

Attributes follow the official SDK's ``TrainingJob`` resource (snake_case of
``DescribeTrainingJob``), plus ``lineage``. The compute ran (or runs) where the trainer
was called; this object only reads and steers the record, so it works from any process
that reaches the registry: ``TrainingJob.get(name)``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from airegistry.session import Session, resolve_session
from airegistry.train import process as processes
from airegistry.train.artifacts import download_directory, read_record
from airegistry.train.common import library_deprecations_silenced
from airegistry.training.service import trial_component_name

TERMINAL = ("Completed", "Failed", "Stopped")


class TrainingJobFailedError(RuntimeError):
    """The job ended ``Failed``; ``.job`` is the job, ``.job.failure_reason`` says why."""

    def __init__(self, job: TrainingJob) -> None:
        super().__init__(f"Training job {job.training_job_name} failed: {job.failure_reason}")
        self.job = job


def _snake(name: str) -> str:
    out = []
    for i, c in enumerate(name):
        if c.isupper() and i and (not name[i - 1].isupper() or (i + 1 < len(name) and name[i + 1].islower())):
            out.append("_")
        out.append(c.lower())
    return "".join(out)


class TrainingJob:
    """One training job of the registry."""

    def __init__(self, training_job_name: str, sagemaker_session: Session | None = None) -> None:
        self.training_job_name = training_job_name
        self.sagemaker_session = sagemaker_session
        self._description: dict[str, Any] = {}
        self._lineage: dict[str, Any] | None = None

    # -- reading ------------------------------------------------------------------------

    @classmethod
    def get(cls, name: str, sagemaker_session: Session | None = None) -> TrainingJob:
        """The job called ``name``; ``ValueError`` when there is none."""
        return cls(name, sagemaker_session).refresh()

    @classmethod
    def list(
        cls,
        max_results: int = 10,
        next_token: str | None = None,
        status_equals: str | None = None,
        name_contains: str | None = None,
        sagemaker_session: Session | None = None,
    ) -> dict[str, Any]:
        """One page, newest first: ``{"items": [dict], "next_token": str | None}``."""
        params: dict[str, Any] = {"MaxResults": max_results}
        for key, value in (("NextToken", next_token), ("StatusEquals", status_equals),
                           ("NameContains", name_contains)):
            if value:
                params[key] = value
        client = resolve_session(sagemaker_session).sagemaker_client
        response = client.list_training_jobs(**params)
        items = [{_snake(k): v for k, v in s.items()} for s in response["TrainingJobSummaries"]]
        return {"items": items, "next_token": response.get("NextToken")}

    def _client(self) -> Any:
        return resolve_session(self.sagemaker_session).sagemaker_client

    def _describe(self) -> dict[str, Any]:
        try:
            response = self._client().describe_training_job(TrainingJobName=self.training_job_name)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ValidationException":
                raise ValueError(f"Training job {self.training_job_name} does not exist") from None
            raise
        response.pop("ResponseMetadata", None)
        return response

    def refresh(self) -> TrainingJob:
        """Reload the record; a job whose process is gone from this host is marked Failed."""
        description = self._describe()
        if description["TrainingJobStatus"] not in TERMINAL and self._report_if_dead(description):
            description = self._describe()
        self._description = description
        return self

    def _report_if_dead(self, description: dict[str, Any]) -> bool:
        process = processes.launched(self.training_job_name)
        code = process.poll() if process is not None else None
        if code is not None:
            reason = f"training process died ({processes.exit_description(code)})"
        elif processes.process_is_dead(description.get("Environment") or {}):
            env = description["Environment"]
            reason = (f"training process died (pid {env.get('AIREGISTRY_TRAINING_PID')} is gone "
                      f"from {env.get('AIREGISTRY_TRAINING_HOST')}; exit status unknown here)")
        else:
            return False
        time.sleep(0.2)  # a process that just finished may have reported its end: re-read first
        if self._describe()["TrainingJobStatus"] in TERMINAL:
            return True
        try:
            self._client().update_trial_component(
                TrialComponentName=trial_component_name(self.training_job_name),
                Status={"PrimaryStatus": "Failed", "Message": reason},
            )
        except ClientError:
            pass  # it reached a terminal status meanwhile
        return True

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        mapping = {_snake(k): k for k in self._description}
        key = mapping.get(name)
        if key is not None:
            return self._description[key]
        if name in _FIELDS:
            return None
        raise AttributeError(f"TrainingJob has no attribute {name!r}")

    @property
    def progress_info(self) -> dict[str, Any] | None:
        info = self._description.get("ProgressInfo")
        if info is None:
            return None
        info = dict(info)
        max_steps = int((self.hyper_parameters or {}).get("max_steps", "-1") or -1)
        per_epoch, epochs = info.get("TotalStepCountPerEpoch"), info.get("MaxEpoch")
        info["MaxSteps"] = max_steps if max_steps > 0 else (
            per_epoch * epochs if per_epoch and epochs else None)
        return info

    @property
    def final_metrics(self) -> dict[str, float]:
        return {m["MetricName"]: m["Value"] for m in self._description.get("FinalMetricDataList") or []}

    @property
    def model_artifacts_uri(self) -> str | None:
        return (self._description.get("ModelArtifacts") or {}).get("S3ModelArtifacts")

    @property
    def lineage(self) -> dict[str, Any]:
        """Where the model came from (base model, data, evaluator, settings, versions)."""
        if self._lineage is None or self.training_job_status not in TERMINAL:
            raw = read_record(self._session(), self.training_job_name, "lineage.json")
            self._lineage = json.loads(raw) if raw else {}
        return self._lineage

    def _session(self) -> Session:
        return resolve_session(self.sagemaker_session)

    def logs(self) -> str:
        raw = read_record(self._session(), self.training_job_name, "logs.txt")
        return raw.decode("utf-8", "replace") if raw else ""

    def metrics(self) -> list[dict[str, Any]]:
        """One row per logged training step (loss, learning rate, rewards, ...)."""
        raw = read_record(self._session(), self.training_job_name, "metrics.jsonl")
        return [json.loads(line) for line in (raw or b"").splitlines() if line.strip()]

    # -- steering ----------------------------------------------------------------------------

    def stop(self) -> TrainingJob:
        """Ask the training to stop; it ends ``Stopped`` with its weights kept."""
        self._client().stop_training_job(TrainingJobName=self.training_job_name)
        return self.refresh()

    def wait(self, poll: float = 5, timeout: float | None = None, logs: bool = False) -> TrainingJob:
        """Block until the job ends; raises TrainingJobFailedError when it failed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = min(0.25, poll)
        shown = 0
        bar = _ProgressBar(self.training_job_name) if sys.stdout.isatty() else None
        try:
            while True:
                self.refresh()
                if bar is not None:
                    bar.update(self)
                if logs:
                    text = self.logs()
                    if len(text) > shown:
                        sys.stdout.write(text[shown:])
                        shown = len(text)
                if self.training_job_status in TERMINAL:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"Training job {self.training_job_name} is still "
                        f"{self.training_job_status} after {timeout} s"
                    )
                time.sleep(interval)
                interval = min(poll, interval * 2)
        finally:
            if bar is not None:
                bar.stop()
        if self.training_job_status == "Failed":
            raise TrainingJobFailedError(self)
        return self

    def download_model(self, path: str | Path, merge: bool = False) -> Path:
        """Write the trained model to ``path``, loadable with ``AutoModelForCausalLM.from_pretrained``.

        A LoRA adapter loads through peft (``AutoPeftModelForCausalLM``, or transformers with
        peft installed); ``merge=True`` merges it into the base model's weights instead.
        """
        uri = self.model_artifacts_uri
        if not uri:
            raise ValueError(f"Training job {self.training_job_name} has no stored model "
                             f"({self.training_job_status})")
        target = Path(path).expanduser()
        manifest = download_directory(self._session(), uri, target)
        if merge and manifest.get("kind") == "adapter":
            _merge_adapter(target, self.lineage)
        return target

    def __repr__(self) -> str:
        return (f"TrainingJob(name={self.training_job_name!r}, "
                f"status={self._description.get('TrainingJobStatus')!r})")


_FIELDS = frozenset({
    "training_job_arn", "training_job_status", "secondary_status", "failure_reason",
    "creation_time", "training_start_time", "training_end_time", "hyper_parameters",
    "input_data_config", "final_metric_data_list", "model_artifacts", "output_model_package_arn",
    "environment", "mlflow_details", "secondary_status_transitions",
})


def _merge_adapter(directory: Path, lineage: dict[str, Any]) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base_path = (lineage.get("base_model") or {}).get("path")
    if not base_path or not Path(base_path).is_dir():
        raise ValueError(
            f"Cannot merge: the base model {base_path!r} recorded in the lineage is not on this "
            "machine; download without merge and load the adapter onto your copy of the base model"
        )
    base = AutoModelForCausalLM.from_pretrained(base_path)
    with library_deprecations_silenced():
        merged = PeftModel.from_pretrained(base, str(directory)).merge_and_unload()
    for adapter_file in ("adapter_model.safetensors", "adapter_config.json"):
        (directory / adapter_file).unlink(missing_ok=True)
    merged.save_pretrained(str(directory))


class _ProgressBar:
    def __init__(self, name: str) -> None:
        from rich.progress import Progress

        self.progress = Progress(transient=False)
        self.task = self.progress.add_task(f"training {name}", total=None)
        self.progress.start()

    def update(self, job: TrainingJob) -> None:
        info = job.progress_info or {}
        self.progress.update(
            self.task, completed=info.get("CurrentStep", 0), total=info.get("MaxSteps"),
            description=f"{job.training_job_name}: {job.secondary_status}",
        )

    def stop(self) -> None:
        self.progress.stop()
