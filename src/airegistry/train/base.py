"""What the four trainers share: the official SDK's constructor, the checks, the job.

``train()`` resolves and checks everything first (model, datasets, evaluator,
hyperparameters, reward validation): any problem is a ``ValueError`` and nothing is
recorded. Then the job is recorded with ``CreateTrainingJob`` and trained here
(``wait=True``) or in a separate training process (``wait=False``).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Mapping
from typing import Any, ClassVar

from airegistry.session import Session, resolve_session
from airegistry.train import hyperparameters as hp
from airegistry.train.artifacts import output_uri_for, put_json, record_uri
from airegistry.train.common import CustomizationTechnique, TrainingType, require_training_libraries
from airegistry.train.inputs import DatasetInput, resolve_dataset
from airegistry.train.job import TrainingJob, TrainingJobFailedError
from airegistry.train.lineage import build_lineage
from airegistry.train.models import BaseModel, check_causal_lm, resolve_model
from airegistry.train.tracking import tracking_settings

_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
TRAINING_IMAGE = "airegistry/trl"


def _compute_settings(compute: Any) -> dict[str, Any]:
    """``compute`` as a dict: the official ``Compute`` object's fields and ours."""
    if compute is None:
        return {}
    if isinstance(compute, Mapping):
        values = dict(compute)
    else:
        values = {k: getattr(compute, k) for k in ("instance_type", "instance_count",
                  "volume_size_in_gb", "device", "num_processes") if getattr(compute, k, None) is not None}
    known = {"instance_type", "instance_count", "volume_size_in_gb", "device", "num_processes",
             "keep_alive_period_in_seconds"}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"Unknown compute settings {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    count = values.get("num_processes") or values.get("instance_count") or 1
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"compute num_processes must be a positive integer, got {count!r}")
    values["num_processes"] = count
    return values


class BaseTrainer:
    """Shared constructor and ``train()``; subclasses set the technique and its inputs."""

    technique: ClassVar[CustomizationTechnique]

    def __init__(
        self,
        model: str,
        training_type: TrainingType | str = TrainingType.LORA,
        model_package_group: str | None = None,
        training_dataset: Any = None,
        validation_dataset: Any = None,
        hyperparameters: Mapping[str, Any] | None = None,
        s3_output_path: str | None = None,
        accept_eula: bool = False,
        mlflow_resource_arn: str | None = None,
        mlflow_experiment_name: str | None = None,
        mlflow_run_name: str | None = None,
        sequence_length: int | None = None,
        compute: Any = None,
        role: str | None = None,
        tags: list[Any] | None = None,
        base_job_name: str | None = None,
        sagemaker_session: Session | None = None,
    ) -> None:
        try:
            self.training_type = TrainingType(str(training_type).upper())
        except ValueError:
            raise ValueError(f"training_type must be LORA or FULL, got {training_type!r}") from None
        self.model = model
        self.model_package_group = model_package_group
        self.training_dataset = training_dataset
        self.validation_dataset = validation_dataset
        self.hyperparameters = dict(hyperparameters or {})
        self.s3_output_path = s3_output_path
        self.accept_eula = accept_eula
        self.mlflow_resource_arn = mlflow_resource_arn
        self.mlflow_experiment_name = mlflow_experiment_name
        self.mlflow_run_name = mlflow_run_name
        self.sequence_length = sequence_length
        self.compute = compute
        self.role = role
        self.tags = tags
        self.base_job_name = base_job_name
        self.sagemaker_session = sagemaker_session
        self.latest_job: TrainingJob | None = None
        for name, value in (("base_job_name", base_job_name), ("model_package_group", model_package_group)):
            if value is not None and (not _NAME_RE.match(value) or (len(value) > 40 and name == "base_job_name")):
                raise ValueError(
                    f"{name} {value!r} must be letters, digits and hyphens (at most "
                    f"{40 if name == 'base_job_name' else 63} characters)"
                )

    # -- what subclasses add ----------------------------------------------------------------

    def _evaluator(self, session: Session, register: bool) -> Any:
        return None

    def _reward_checks(self, session: Session, evaluator: Any, train: DatasetInput) -> str | None:
        return None

    def _judge_options(self) -> dict[str, Any]:
        return {}

    # -- train ----------------------------------------------------------------------------------

    def _base_name(self, base: BaseModel) -> str:
        if self.base_job_name:
            return self.base_job_name
        stem = base.path.name if base.source.startswith(("/", ".", "~")) else base.source.split("/")[-1]
        cleaned = re.sub(r"[^a-zA-Z0-9]+", "-", stem).strip("-")[:40].strip("-")
        return cleaned or "model"

    def train(
        self,
        training_dataset: Any = None,
        validation_dataset: Any = None,
        wait: bool = True,
        wait_timeout: float | None = None,
        poll: float = 5,
        dry_run: bool = False,
    ) -> TrainingJob | None:
        """Check everything, record the job, and train; ``dry_run`` stops after the checks."""
        session = resolve_session(self.sagemaker_session)
        if session.backend == "aws":
            raise ValueError(
                "airegistry trainers run locally and record the job in an airegistry registry "
                "(embedded or server); on AWS use the managed service's own trainers"
            )
        require_training_libraries()
        technique = self.technique.value
        base = resolve_model(self.model)
        check_causal_lm(base)
        params = hp.resolve(technique, self.hyperparameters, training_type=self.training_type.value,
                            sequence_length=self.sequence_length)
        compute = _compute_settings(self.compute)
        train_value = training_dataset if training_dataset is not None else self.training_dataset
        eval_value = validation_dataset if validation_dataset is not None else self.validation_dataset
        datasets = [resolve_dataset(train_value, "train", technique, session)]
        if eval_value is not None:
            datasets.append(resolve_dataset(eval_value, "validation", technique, session))
        self._check_tokenizer(base, datasets)
        evaluator = self._evaluator(session, register=not dry_run)
        contract = self._reward_checks(session, evaluator, datasets[0]) if evaluator is not None else None
        if dry_run:
            return None
        base_name = self._base_name(base)
        job_name = f"{base_name}-{technique}-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"
        job_name = self._unique(session, job_name)
        lineage = build_lineage(
            job_name=job_name, job_arn=None, technique=technique,
            training_type=self.training_type.value, base=base, datasets=datasets,
            evaluator=evaluator, reward_contract=contract, hyperparameters=params,
        )
        mlflow = tracking_settings(self.mlflow_resource_arn, self.mlflow_experiment_name,
                                   self.mlflow_run_name, base_name)
        arn = self._create_job(session, job_name, params, datasets, compute, mlflow, evaluator)
        lineage["training_job"]["arn"] = arn
        put_json(session, record_uri(session, job_name, "lineage.json"), lineage)
        from airegistry.train.process import describe_session
        from airegistry.train.runner import RunSpec

        spec = RunSpec(
            job_name=job_name, job_arn=arn, technique=technique,
            training_type=self.training_type.value, model_path=str(base.path),
            hyperparameters=params, datasets=[d.to_lineage() for d in datasets], lineage=lineage,
            model_package_group=self.model_package_group or base_name,
            s3_output_path=self.s3_output_path, evaluator=_evaluator_info(evaluator),
            reward_contract=contract, judge_options=self._judge_options(), mlflow=mlflow,
            compute=compute, session=describe_session(session),
        )
        job = TrainingJob(job_name, session)
        self.latest_job = job
        if not wait or compute.get("num_processes", 1) > 1:
            from airegistry.train.process import launch

            launch(spec)
            if not wait:
                return job.refresh()
            return job.wait(poll=poll, timeout=wait_timeout)
        from airegistry.train.runner import run

        try:
            run(spec, session)
        except Exception:
            job.refresh()
            raise TrainingJobFailedError(job) from None
        return job.refresh()

    def _check_tokenizer(self, base: BaseModel, datasets: list[DatasetInput]) -> None:
        from airegistry.train.runner import load_tokenizer

        conversational = any(
            d.format in ("chat", "converse", "converse_preference") for d in datasets
        )
        tokenizer = load_tokenizer(base.path)
        if conversational and not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                f"The tokenizer of {base.source} has no chat template, and the dataset is "
                "conversational; use a chat model or add a chat_template to tokenizer_config.json"
            )

    def _unique(self, session: Session, name: str) -> str:
        try:
            TrainingJob.get(name, session)
        except ValueError:
            return name
        return f"{name[:55]}-{uuid.uuid4().hex[:6]}"

    def _create_job(
        self, session: Session, name: str, params: dict[str, Any], datasets: list[DatasetInput],
        compute: dict[str, Any], mlflow: dict[str, str] | None, evaluator: Any,
    ) -> str:
        from airegistry.air_hub import normalize_tags

        environment = {"AIREGISTRY_TECHNIQUE": self.technique.value,
                       "AIREGISTRY_TRAINING_TYPE": self.training_type.value,
                       "AIREGISTRY_BASE_MODEL": str(self.model)[:512],
                       "AIREGISTRY_ACCEPT_EULA": str(bool(self.accept_eula)).lower()}
        if evaluator is not None and (evaluator.arn or evaluator.reference):
            environment["AIREGISTRY_EVALUATOR"] = (evaluator.arn or evaluator.reference)[:512]
        if mlflow:
            environment["MLFLOW_TRACKING_URI"] = mlflow["uri"][:512]
            environment["MLFLOW_EXPERIMENT_NAME"] = mlflow["experiment"][:512]
        request: dict[str, Any] = {
            "TrainingJobName": name,
            "RoleArn": self.role or f"arn:aws:iam::{session.account_id}:role/airegistry-training",
            "AlgorithmSpecification": {"TrainingImage": TRAINING_IMAGE, "TrainingInputMode": "File"},
            "HyperParameters": hp.as_strings(params),
            "InputDataConfig": [d.channel_config() for d in datasets],
            "OutputDataConfig": {"S3OutputPath": output_uri_for(self.s3_output_path, session, name)},
            "ResourceConfig": {"InstanceCount": compute.get("num_processes", 1),
                               **({"InstanceType": compute["instance_type"]}
                                  if compute.get("instance_type") else {}),
                               "VolumeSizeInGB": compute.get("volume_size_in_gb", 0)},
            "StoppingCondition": {"MaxRuntimeInSeconds": 432000},
            "Environment": environment,
            "Tags": normalize_tags(self.tags),
        }
        return session.sagemaker_client.create_training_job(**request)["TrainingJobArn"]


def _evaluator_info(evaluator: Any) -> dict[str, Any] | None:
    if evaluator is None:
        return None
    return {"arn": evaluator.arn or None, "name": evaluator.name, "version": evaluator.version or None,
            "type": evaluator.type, "reference": evaluator.reference}
