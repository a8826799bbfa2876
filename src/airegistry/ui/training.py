"""How a training job's record becomes the job and model pages: lineage, curves, metrics, logs.

Pure functions over what the SDK's ``TrainingJob`` and ``TrainedModel`` return (the
record, ``lineage.json``, the per-step rows of ``metrics.jsonl``, the tail of
``logs.txt``); ``read_model`` fetches, this shapes. A job recorded by another tool through
the SageMaker API has no lineage file: its datasets then come from the
``InputDataConfig`` channels and its evaluator from the job's environment.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping
from typing import Any

from airegistry.ui.charts import Chart, line_chart
from airegistry.ui.views import (
    ContentRef,
    DatasetRef,
    JobView,
    Lineage,
    MetricSummary,
    ModelView,
    Transition,
    Version,
)

#: The curves drawn, each from the per-step metrics TRL logs (first match wins a chart):
#: loss for every technique; GRPO's mean reward, or DPO's implicit rewards; the schedule.
CURVES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Loss", ("loss", "eval_loss")),
    ("Reward", ("reward",)),
    ("Reward", ("rewards/chosen", "rewards/rejected", "rewards/margins")),
    ("Learning rate", ("learning_rate",)),
)
_NOT_METRICS = {"step", "epoch", "time"}
LOG_TAIL_LINES = 200


def epoch(value: Any) -> float | None:
    """A boto3 datetime (or a number) as epoch seconds."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.timestamp()
    return float(value)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _text(value: Any) -> str:
    """A setting as written in HyperParameters (``true``, not Python's ``True``)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def content_ref(arn: str | None, **extra: Any) -> ContentRef | None:
    """A hub-content ARN (``…/<type>/<name>/<version>``) as a name and a version."""
    from airegistry.train.inputs import parse_content_arn

    parsed = parse_content_arn(arn) if arn else None
    if parsed is None:
        return None
    return ContentRef(name=parsed[2], version=parsed[3], arn=arn, extra=extra)


def _datasets(lineage: Mapping[str, Any], channels: Iterable[Mapping[str, Any]]) -> list[DatasetRef]:
    entries = lineage.get("datasets")
    if entries:
        return [DatasetRef(channel=str(d.get("channel") or ""), name=d.get("name"),
                           version=d.get("version"), arn=d.get("arn"), uri=d.get("uri"),
                           sha256=d.get("sha256"), rows=d.get("rows"), format=d.get("format"))
                for d in entries if isinstance(d, Mapping)]
    out = []
    for channel in channels:
        source = channel.get("DataSource") or {}
        arn = (source.get("DatasetSource") or {}).get("DatasetArn")
        ref = content_ref(arn)
        out.append(DatasetRef(
            channel=str(channel.get("ChannelName") or ""), name=ref.name if ref else None,
            version=ref.version if ref else None, arn=arn,
            uri=(source.get("S3DataSource") or {}).get("S3Uri"), format=channel.get("ContentType"),
        ))
    return out


def _evaluator(lineage: Mapping[str, Any], environment: Mapping[str, Any]) -> ContentRef | None:
    recorded = lineage.get("evaluator")
    if isinstance(recorded, Mapping) and recorded.get("name"):
        extra = {k: recorded.get(k) for k in ("type", "reference", "reward_contract") if recorded.get(k)}
        return ContentRef(name=str(recorded["name"]), version=recorded.get("version"),
                          arn=recorded.get("arn"), extra=extra)
    return content_ref(environment.get("AIREGISTRY_EVALUATOR"))


def lineage_of(
    lineage: Mapping[str, Any], *, channels: Iterable[Mapping[str, Any]] = (),
    environment: Mapping[str, Any] | None = None, hyperparameters: Mapping[str, Any] | None = None,
    final_metrics: Mapping[str, Any] | None = None,
) -> Lineage:
    """What a trained model came from. The job's recorded hyperparameters (as strings, as
    DescribeTrainingJob has them) and final metrics win over the file's copy when given."""
    params = hyperparameters or lineage.get("hyperparameters") or {}
    metrics = final_metrics or lineage.get("final_metrics") or {}
    versions = lineage.get("versions") or {}
    return Lineage(
        datasets=_datasets(lineage, channels),
        evaluator=_evaluator(lineage, environment or {}),
        base_model=dict(lineage.get("base_model") or {}),
        hyperparameters=sorted((str(k), _text(v)) for k, v in params.items()),
        final_metrics=sorted((str(k), float(v)) for k, v in metrics.items() if _number(v)),
        versions=sorted((str(k), str(v)) for k, v in versions.items() if v),
    )


def curves(rows: list[Mapping[str, Any]]) -> list[Chart]:
    """Loss and reward per step, from the job's metric rows."""
    charts: list[Chart] = []
    titles: set[str] = set()
    for title, keys in CURVES:
        if title in titles:
            continue
        series = {key: [(float(r["step"]), float(r[key])) for r in rows
                        if _number(r.get("step")) and _number(r.get(key))] for key in keys}
        series = {key: points for key, points in series.items() if points}
        if series:
            charts.append(line_chart(series, title=title, x_label="step"))
            titles.add(title)
    return charts


def metric_summaries(rows: list[Mapping[str, Any]]) -> list[MetricSummary]:
    """Every number logged per step: its last value, range and how often it was logged."""
    seen: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            if key not in _NOT_METRICS and _number(value):
                seen.setdefault(str(key), []).append(float(value))
    return [MetricSummary(k, v[-1], min(v), max(v), len(v)) for k, v in sorted(seen.items())]


def log_tail(data: bytes, cut: bool) -> str:
    """The last ``LOG_TAIL_LINES`` lines; a line the read began inside of is dropped."""
    text = data.decode("utf-8", "replace")
    lines = text.splitlines()
    if cut and lines:
        lines = lines[1:]
    return "\n".join(lines[-LOG_TAIL_LINES:])


def transitions(raw: Iterable[Mapping[str, Any]] | None) -> list[Transition]:
    return [Transition(status=str(t.get("Status", "")), start=epoch(t.get("StartTime")),
                       end=epoch(t.get("EndTime")), message=t.get("StatusMessage"))
            for t in raw or []]


def job_view(job: Any, lineage: Mapping[str, Any], rows: list[Mapping[str, Any]],
             tags: list[Mapping[str, Any]], logs: bytes, logs_cut: bool) -> JobView:
    """The job page's data from a refreshed SDK ``TrainingJob`` and its stored files."""
    env = job.environment or {}
    progress = job.progress_info or {}
    return JobView(
        name=job.training_job_name, arn=job.training_job_arn, status=job.training_job_status,
        secondary_status=job.secondary_status, failure_reason=job.failure_reason,
        created=epoch(job.creation_time) or 0.0, started=epoch(job.training_start_time),
        ended=epoch(job.training_end_time), technique=env.get("AIREGISTRY_TECHNIQUE"),
        training_type=env.get("AIREGISTRY_TRAINING_TYPE"), base_model=env.get("AIREGISTRY_BASE_MODEL"),
        step=progress.get("CurrentStep"), max_steps=progress.get("MaxSteps"),
        epoch=progress.get("CurrentEpoch"), max_epoch=progress.get("MaxEpoch"),
        lineage=lineage_of(lineage, channels=job.input_data_config or [], environment=env,
                           hyperparameters=job.hyper_parameters, final_metrics=job.final_metrics),
        model=content_ref(job.output_model_package_arn), model_artifacts=job.model_artifacts_uri,
        tags=[(str(t.get("Key", "")), str(t.get("Value", ""))) for t in tags],
        transitions=transitions(job.secondary_status_transitions), charts=curves(rows),
        metrics=metric_summaries(rows), logs=log_tail(logs, logs_cut), logs_cut=logs_cut,
        mlflow=job.mlflow_details,
    )


def model_view(model: Any, manifest: Mapping[str, Any], versions: list[Version],
               note: str | None) -> ModelView:
    """The model page's data from an SDK ``TrainedModel`` and its weights' manifest."""
    return ModelView(
        name=model.name, version=model.version, arn=model.arn, status=str(model.status),
        description=model.description, created=epoch(model.created_time) or 0.0,
        artifact_uri=model.artifact_uri, kind=model.document.get("ArtifactKind"),
        job_name=model.document.get("TrainingJobName"),
        files=[f for f in manifest.get("files", []) if isinstance(f, Mapping)],
        lineage=lineage_of(model.lineage), versions=versions, note=note,
    )
