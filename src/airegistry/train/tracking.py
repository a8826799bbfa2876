"""MLflow logging of a training run: parameters, per-step metrics and the lineage as tags.

Active when ``mlflow_resource_arn`` (any tracking URI here: ``file:``, ``sqlite:``,
``http(s):``, or a SageMaker MLflow ARN with the sagemaker-mlflow plugin) or
``MLFLOW_TRACKING_URI`` is set and mlflow is installed. A client object is used rather
than mlflow's global "active run", so a training in a process that uses MLflow for
something else does not disturb it.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)

_TAG_LIMIT = 5000


def tracking_settings(
    resource_arn: str | None, experiment: str | None, run_name: str | None, default_experiment: str
) -> dict[str, str] | None:
    uri = resource_arn or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        return None
    return {
        "uri": uri,
        "experiment": experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or default_experiment,
        "run_name": run_name or "",
    }


def _flatten(value: Any, prefix: str, out: dict[str, str]) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _flatten(item, f"{prefix}.{i}", out)
    elif value is not None:
        out[prefix] = str(value)[:_TAG_LIMIT]


class MlflowRun:
    """One MLflow run for one training job; every call is best-effort after start()."""

    def __init__(self, settings: Mapping[str, str], job_name: str) -> None:
        import mlflow
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=settings["uri"])
        experiment = self.client.get_experiment_by_name(settings["experiment"])
        self.experiment_id = (
            experiment.experiment_id if experiment is not None
            else self.client.create_experiment(settings["experiment"])
        )
        run = self.client.create_run(
            self.experiment_id, run_name=settings.get("run_name") or job_name,
            tags={"airegistry.training_job": job_name},
        )
        self.run_id = run.info.run_id
        self._mlflow = mlflow

    @classmethod
    def open(cls, settings: Mapping[str, str] | None, job_name: str) -> MlflowRun | None:
        if not settings:
            return None
        try:
            import mlflow  # noqa: F401
        except ImportError:
            log.warning("MLflow tracking is configured but mlflow is not installed: pip install mlflow")
            return None
        return cls(settings, job_name)

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[Param(k, str(v)[:6000]) for k, v in params.items()])

    def log_metrics(self, metrics: Mapping[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        rows = [Metric(k, float(v), ts, step) for k, v in metrics.items()]
        if rows:
            self.client.log_batch(self.run_id, metrics=rows)

    def log_lineage(self, lineage: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        flat: dict[str, str] = {}
        _flatten(lineage, "airegistry.lineage", flat)
        self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in flat.items()])
        self.client.log_text(self.run_id, json.dumps(lineage, indent=1, default=str), "lineage.json")

    def end(self, status: str) -> None:
        mapping = {"Completed": "FINISHED", "Stopped": "KILLED", "Failed": "FAILED"}
        self.client.set_terminated(self.run_id, status=mapping.get(status, "FINISHED"))
