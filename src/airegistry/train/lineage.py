"""Lineage: exactly what a trained model came from, recorded on the job and in the Model.

It is a copy, not a set of references: base model fingerprint, each dataset's ARN,
version and sha256, the evaluator's ARN and version, the hyperparameters, the final
metrics and the library versions, so it still says everything after the datasets it
names are deleted.
"""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

from airegistry import __version__
from airegistry.train.inputs import DatasetInput
from airegistry.train.models import BaseModel

LIBRARIES = ("torch", "transformers", "trl", "peft", "accelerate", "datasets")


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"airegistry": __version__, "python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def build_lineage(
    *,
    job_name: str,
    job_arn: str | None,
    technique: str,
    training_type: str,
    base: BaseModel,
    datasets: list[DatasetInput],
    evaluator: Any | None,
    reward_contract: str | None,
    hyperparameters: dict[str, Any],
) -> dict[str, Any]:
    lineage: dict[str, Any] = {
        "training_job": {"name": job_name, "arn": job_arn},
        "technique": technique,
        "training_type": training_type,
        "base_model": base.to_lineage(),
        "datasets": [d.to_lineage() for d in datasets],
        "evaluator": None,
        "hyperparameters": dict(hyperparameters),
        "final_metrics": {},
        "versions": library_versions(),
    }
    if evaluator is not None:
        lineage["evaluator"] = {
            "arn": evaluator.arn or None,
            "name": evaluator.name,
            "version": evaluator.version or None,
            "type": evaluator.type,
            "reference": evaluator.reference,
            "reward_contract": reward_contract,
        }
    return lineage
