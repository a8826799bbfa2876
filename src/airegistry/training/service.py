"""SageMaker training-job operations for jobs whose compute runs outside the registry.

A trainer (``airegistry.train``) records its job with ``CreateTrainingJob`` and reports
how it goes with ``UpdateTrialComponent`` on the job's trial component
(``<job name>-aws-training-job``, the name SageMaker itself gives the trial component of
every training job), because that is the service model's operation for a run reporting
status, parameters and artifacts. Every report is also the job's heartbeat, timed by the
registry's clock. ``StopTrainingJob`` asks the process to stop (``Stopping``); the
process answers with ``Stopped``. A job whose reports stop coming is declared
``Failed`` ("training process died") by the next reader.

How a report maps onto the record (``UpdateTrialComponent`` member → field):

- ``Status.PrimaryStatus`` / ``Status.Message`` → ``TrainingJobStatus`` /
  ``FailureReason`` (``InProgress``, ``Completed``, ``Failed``, ``Stopped``; ``Stopping``
  only comes from ``StopTrainingJob``; a terminal job never changes again);
- ``StartTime`` / ``EndTime`` → ``TrainingStartTime`` / ``TrainingEndTime``;
- ``Parameters``: ``SecondaryStatus`` and ``StatusMessage`` (strings) →
  ``SecondaryStatus`` and ``SecondaryStatusTransitions``; ``Progress.CurrentStep``,
  ``Progress.CurrentEpoch``, ``Progress.MaxEpoch``, ``Progress.TotalStepCountPerEpoch``
  (numbers) → ``ProgressInfo``; ``Metric.<name>`` (numbers) → ``FinalMetricDataList``;
  ``Process.Host``, ``Process.Pid``, ``Process.Start`` → the job's ``Environment`` as
  ``AIREGISTRY_TRAINING_HOST``/``_PID``/``_PID_START`` (with ``_HEARTBEAT``, the
  registry time of the last report), so that a reader on the same host can tell a dead
  process at once; ``Mlflow.ExperimentId`` / ``Mlflow.RunId`` → ``MlflowDetails``;
- ``OutputArtifacts``: ``SageMaker.ModelArtifact`` → ``ModelArtifacts.S3ModelArtifacts``;
  ``SageMaker.ModelPackage`` → ``OutputModelPackageArn`` (the registered ``Model`` hub
  content version).
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.engine import Row

from airegistry.hub.botocore_model import OperationError
from airegistry.storage.metadata.database import Database
from airegistry.storage.metadata.tables import now
from airegistry.storage.metadata.training_jobs import DuplicateJobError, TrainingJobRepository

Handler = Callable[[dict], dict]

IN_PROGRESS = "InProgress"
COMPLETED = "Completed"
FAILED = "Failed"
STOPPING = "Stopping"
STOPPED = "Stopped"
ACTIVE = (IN_PROGRESS, STOPPING)
TERMINAL = (COMPLETED, FAILED, STOPPED)

TRIAL_COMPONENT_SUFFIX = "-aws-training-job"
DEFAULT_STALE_SECONDS = 60.0
_MAX_REASON = 1024
_PROGRESS_KEYS = ("CurrentStep", "CurrentEpoch", "MaxEpoch", "TotalStepCountPerEpoch")
# Members of CreateTrainingJob echoed by DescribeTrainingJob as given.
_ECHOED = (
    "HyperParameters", "AlgorithmSpecification", "RoleArn", "InputDataConfig",
    "OutputDataConfig", "ResourceConfig", "VpcConfig", "StoppingCondition",
    "EnableNetworkIsolation", "EnableInterContainerTrafficEncryption",
    "EnableManagedSpotTraining", "CheckpointConfig", "ExperimentConfig", "RetryStrategy",
    "ServerlessJobConfig", "MlflowConfig", "ModelPackageConfig", "InfraCheckConfig",
    "RemoteDebugConfig", "DebugHookConfig", "TensorBoardOutputConfig",
)


def stale_seconds() -> float:
    value = os.environ.get("AIREGISTRY_TRAINING_STALE_SECONDS")
    return float(value) if value else DEFAULT_STALE_SECONDS


def trial_component_name(job_name: str) -> str:
    return job_name + TRIAL_COMPONENT_SUFFIX


def _not_found(name: str) -> OperationError:
    # What AWS answers for an unknown training job (not ResourceNotFound).
    return OperationError("ValidationException", f"Requested resource not found: training job {name}.")


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


class TrainingJobService:
    """The rules of the training-job operations, over ``TrainingJobRepository``."""

    def __init__(
        self, db: Database, *, account_id: str, region: str, stale_s: float | None = None
    ) -> None:
        self.store = TrainingJobRepository(db)
        self.account_id = account_id
        self.region = region
        self.stale_s = stale_seconds() if stale_s is None else stale_s

    def handlers(self) -> dict[str, Handler]:
        return {
            "CreateTrainingJob": self.create_training_job,
            "DescribeTrainingJob": self.describe_training_job,
            "ListTrainingJobs": self.list_training_jobs,
            "StopTrainingJob": self.stop_training_job,
            "UpdateTrialComponent": self.update_trial_component,
        }

    def arn(self, name: str) -> str:
        # AWS lower-cases the name in training-job ARNs.
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:training-job/{name.lower()}"

    # -- operations ---------------------------------------------------------------------

    def create_training_job(self, params: dict) -> dict:
        name = params["TrainingJobName"]
        ts = now()
        request = {k: v for k, v in params.items() if k not in ("TrainingJobName", "Tags")}
        try:
            self.store.insert(
                {
                    "name": name,
                    "status": IN_PROGRESS,
                    "secondary_status": "Starting",
                    "request": _json(request),
                    "tags": _json(params.get("Tags", [])),
                    "transitions": _json(
                        [{"Status": "Starting", "StartTime": ts,
                          "StatusMessage": "Preparing the instances for training"}]
                    ),
                    "created_at": ts,
                    "modified_at": ts,
                    "heartbeat_at": ts,
                }
            )
        except DuplicateJobError:
            raise OperationError(
                "ResourceInUse",
                f"Training job names must be unique within an AWS account and region, and a "
                f"training job with this name already exists ({self.arn(name)})",
            ) from None
        return {"TrainingJobArn": self.arn(name)}

    def describe_training_job(self, params: dict) -> dict:
        row = self._fresh_row(params["TrainingJobName"])
        return self._describe(row)

    def list_training_jobs(self, params: dict) -> dict:
        self._fail_stale()
        sort_by = params.get("SortBy", "CreationTime")
        descending = params.get("SortOrder", "Descending") == "Descending"
        filters = {
            "name_contains": params.get("NameContains"),
            "status": params.get("StatusEquals"),
            "created_after": _epoch(params.get("CreationTimeAfter")),
            "created_before": _epoch(params.get("CreationTimeBefore")),
            "modified_after": _epoch(params.get("LastModifiedTimeAfter")),
            "modified_before": _epoch(params.get("LastModifiedTimeBefore")),
        }
        scope = _json({"s": sort_by, "d": descending, "f": filters})
        after = _read_token(params["NextToken"], scope) if params.get("NextToken") else None
        limit = params.get("MaxResults", 10)
        rows = self.store.page(
            filters=filters, sort_by=sort_by, descending=descending, after=after,
            limit=limit + 1,
        )
        token = None
        if len(rows) > limit:
            rows = rows[:limit]
            token = _make_token(TrainingJobRepository.sort_key(rows[-1], sort_by), scope)
        summaries = [
            {
                "TrainingJobName": r.name,
                "TrainingJobArn": self.arn(r.name),
                "CreationTime": r.created_at,
                "TrainingEndTime": r.ended_at,
                "LastModifiedTime": r.modified_at,
                "TrainingJobStatus": r.status,
                "SecondaryStatus": r.secondary_status,
            }
            for r in rows
        ]
        return {"TrainingJobSummaries": summaries, "NextToken": token}

    def stop_training_job(self, params: dict) -> dict:
        name = params["TrainingJobName"]
        row = self._fresh_row(name)
        if row.status == STOPPING:
            return {}
        if row.status in TERMINAL:
            raise OperationError(
                "ValidationException",
                f"The training job {name} is {row.status} and cannot be stopped.",
            )
        ts = now()
        transitions = _close_transition(json.loads(row.transitions), ts)
        transitions.append(
            {"Status": STOPPING, "StartTime": ts, "StatusMessage": "Stopping the training job"}
        )
        if not self.store.update(
            name,
            {"status": STOPPING, "secondary_status": STOPPING, "modified_at": ts,
             "transitions": _json(transitions)},
            only_if=(IN_PROGRESS,),
        ):
            return self.stop_training_job(params)  # it changed meanwhile: decide again
        return {}

    def update_trial_component(self, params: dict) -> dict:
        component = params["TrialComponentName"]
        if not component.endswith(TRIAL_COMPONENT_SUFFIX):
            raise OperationError(
                "ResourceNotFound",
                f"Trial component {component} does not exist (this registry keeps only the "
                f"trial components of training jobs, <job name>{TRIAL_COMPONENT_SUFFIX}).",
            )
        name = component[: -len(TRIAL_COMPONENT_SUFFIX)]
        for _ in range(8):
            row = self.store.get(name)
            if row is None:
                raise OperationError("ResourceNotFound", f"Trial component {component} does not exist.")
            values = self._report_values(row, params)
            if self.store.update(name, values, only_if=(row.status,)):
                return {"TrialComponentArn": self._component_arn(component)}
        raise OperationError("ThrottlingException", f"Training job {name} is changing too fast; retry.")

    # -- reports --------------------------------------------------------------------------

    def _report_values(self, row: Row, params: dict) -> dict[str, Any]:
        """The column values one report sets, given the current row."""
        if row.status in TERMINAL:
            raise OperationError(
                "ValidationException",
                f"Training job {row.name} is {row.status}; a finished job does not change.",
            )
        ts = now()
        values: dict[str, Any] = {"modified_at": ts, "heartbeat_at": ts}
        parameters = params.get("Parameters", {})
        strings = {k: v["StringValue"] for k, v in parameters.items() if "StringValue" in v}
        numbers = {k: v["NumberValue"] for k, v in parameters.items() if "NumberValue" in v}
        status = (params.get("Status") or {}).get("PrimaryStatus")
        message = (params.get("Status") or {}).get("Message")
        if status == STOPPING:
            raise OperationError(
                "ValidationException", "Stopping is requested with StopTrainingJob, not reported."
            )
        transitions = json.loads(row.transitions)
        secondary = strings.get("SecondaryStatus")
        if status in TERMINAL:
            values["status"] = status
            values["ended_at"] = _epoch(params.get("EndTime")) or ts
            secondary = status
            if status == FAILED:
                values["failure_reason"] = (message or "The training job failed.")[:_MAX_REASON]
        elif row.status == STOPPING:
            secondary = None  # stays Stopping until the process says Stopped
        if secondary and (secondary != row.secondary_status or strings.get("StatusMessage")):
            if secondary != row.secondary_status:
                transitions = _close_transition(transitions, ts)
                transitions.append({"Status": secondary, "StartTime": ts})
            if strings.get("StatusMessage"):
                transitions[-1]["StatusMessage"] = strings["StatusMessage"][:_MAX_REASON]
            if status in TERMINAL:
                transitions = _close_transition(transitions, ts)
            values["secondary_status"] = secondary
            values["transitions"] = _json(transitions)
        if params.get("StartTime") is not None:
            values["started_at"] = _epoch(params["StartTime"])
        progress = {k: int(numbers[f"Progress.{k}"]) for k in _PROGRESS_KEYS
                    if f"Progress.{k}" in numbers and math.isfinite(numbers[f"Progress.{k}"])}
        if progress:
            merged = json.loads(row.progress) if row.progress else {}
            merged.update({k: max(v, 0) for k, v in progress.items()})
            values["progress"] = _json(merged)
        metrics = {k[len("Metric."):]: v for k, v in numbers.items()
                   if k.startswith("Metric.") and math.isfinite(v)}
        if metrics:
            current = {m["MetricName"]: m for m in json.loads(row.final_metrics or "[]")}
            for metric, value in metrics.items():
                current[metric] = {"MetricName": metric[:255], "Value": value, "Timestamp": ts}
            values["final_metrics"] = _json(list(current.values()))
        process = {k[len("Process."):]: str(strings.get(k, numbers.get(k)))
                   for k in ("Process.Host", "Process.Pid", "Process.Start")
                   if k in strings or k in numbers}
        if process:
            values["process"] = _json(process)
        mlflow = {k[len("Mlflow."):]: strings[k] for k in ("Mlflow.ExperimentId", "Mlflow.RunId")
                  if k in strings}
        if mlflow:
            values["mlflow_details"] = _json(
                {f"Mlflow{key}": value for key, value in mlflow.items()}
            )
        artifacts = params.get("OutputArtifacts", {})
        if "SageMaker.ModelArtifact" in artifacts:
            values["model_artifacts"] = artifacts["SageMaker.ModelArtifact"]["Value"]
        if "SageMaker.ModelPackage" in artifacts:
            values["output_model_arn"] = artifacts["SageMaker.ModelPackage"]["Value"]
        return values

    def _component_arn(self, component: str) -> str:
        return (
            f"arn:aws:sagemaker:{self.region}:{self.account_id}:experiment-trial-component/"
            f"{component.lower()}"
        )

    # -- dead processes ----------------------------------------------------------------------

    def _fresh_row(self, name: str) -> Row:
        row = self.store.get(name)
        if row is None:
            raise _not_found(name)
        if row.status in ACTIVE and row.heartbeat_at < now() - self.stale_s:
            self._declare_dead(row)
            row = self.store.get(name)
        return row

    def _fail_stale(self) -> None:
        for row in self.store.stale(ACTIVE, now() - self.stale_s):
            self._declare_dead(row)

    def _declare_dead(self, row: Row) -> None:
        ts = now()
        silent = ts - (row.heartbeat_at or row.created_at)
        process = json.loads(row.process) if row.process else {}
        where = (
            f" (pid {process.get('Pid')} on host {process.get('Host')})" if process else ""
        )
        reason = f"training process died: no report for {silent:.0f} s{where}"
        transitions = _close_transition(json.loads(row.transitions), ts)
        transitions.append({"Status": FAILED, "StartTime": ts, "EndTime": ts, "StatusMessage": reason})
        self.store.update(
            row.name,
            {"status": FAILED, "secondary_status": FAILED, "failure_reason": reason,
             "ended_at": ts, "modified_at": ts, "transitions": _json(transitions)},
            only_if=ACTIVE,
        )

    # -- output ------------------------------------------------------------------------------

    def _describe(self, row: Row) -> dict:
        request = json.loads(row.request)
        out: dict[str, Any] = {k: request[k] for k in _ECHOED if k in request}
        environment = dict(request.get("Environment") or {})
        process = json.loads(row.process) if row.process else {}
        for key in ("Host", "Pid", "Start"):
            if key in process:
                environment[f"AIREGISTRY_TRAINING_{key.upper()}"] = process[key]
        if row.status in ACTIVE and row.heartbeat_at:
            environment["AIREGISTRY_TRAINING_HEARTBEAT"] = _iso(row.heartbeat_at)
        transitions = json.loads(row.transitions)
        end = row.ended_at
        started = row.started_at
        out.update(
            {
                "TrainingJobName": row.name,
                "TrainingJobArn": self.arn(row.name),
                "TrainingJobStatus": row.status,
                "SecondaryStatus": row.secondary_status,
                "FailureReason": row.failure_reason,
                "CreationTime": row.created_at,
                "TrainingStartTime": started,
                "TrainingEndTime": end,
                "LastModifiedTime": row.modified_at,
                "SecondaryStatusTransitions": transitions,
                "FinalMetricDataList": json.loads(row.final_metrics) if row.final_metrics else None,
                "ModelArtifacts": {"S3ModelArtifacts": row.model_artifacts}
                if row.model_artifacts else None,
                "OutputModelPackageArn": row.output_model_arn,
                "ProgressInfo": json.loads(row.progress) if row.progress else None,
                "MlflowDetails": json.loads(row.mlflow_details) if row.mlflow_details else None,
                "Environment": environment or None,
                "TrainingTimeInSeconds": int(end - started) if end and started else None,
            }
        )
        return out


# -- helpers ------------------------------------------------------------------------------


def _epoch(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()
    return float(value)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()


def _close_transition(transitions: list[dict], ts: float) -> list[dict]:
    if transitions and "EndTime" not in transitions[-1]:
        transitions[-1]["EndTime"] = ts
    return transitions


def _make_token(key: list[Any], scope: str) -> str:
    return base64.urlsafe_b64encode(_json({"k": key, "s": scope}).encode()).decode()


def _read_token(token: str, scope: str) -> list[Any]:
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.encode()))
        key = payload["k"]
        if payload["s"] != scope:
            raise OperationError(
                "ValidationException",
                "The NextToken belongs to a request with other filters or another order.",
            )
        if not isinstance(key, list) or len(key) != 2 or not isinstance(key[1], str):
            raise ValueError
    except OperationError:
        raise
    except (ValueError, TypeError, KeyError):
        raise OperationError("ValidationException", "The NextToken is not valid.") from None
    return key
