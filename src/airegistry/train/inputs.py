"""What a trainer is given to train on, resolved to exact registry versions and checked.

Datasets come as a ``DataSet``, a DataSet hub-content ARN, a registered name, or an
``s3://`` URI (validated here, like an import, without registering anything).
Evaluators come as an ``Evaluator``, its ARN or name, or (RLVR) a Lambda ARN. Every
check raises ``ValueError`` before any compute and before anything is recorded.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import asdict, dataclass
from typing import Any

from botocore.exceptions import ClientError

from airegistry.air_constants import REWARD_FUNCTION, HubContentStatus
from airegistry.air_hub_entity import is_not_found
from airegistry.dataset import DataSet, parse_s3_uri
from airegistry.evaluator import Evaluator, EvaluatorMethod
from airegistry.evaluator_sources import LAMBDA_ARN_PREFIX
from airegistry.session import Session
from airegistry.train.data import ACCEPTED_FORMATS

_CONTENT_ARN = re.compile(
    r"^arn:aws[a-z-]*:sagemaker:[\w-]+:(\d{12}|aws):hub-content/([^/]+)/([^/]+)/([^/]+)(?:/([^/]+))?$"
)
TRAINER_NAMES = {"sft": "SFTTrainer", "dpo": "DPOTrainer", "rlvr": "RLVRTrainer", "rlaif": "RLAIFTrainer"}
_FORMAT_TECHNIQUE = {
    fmt: tech.upper() for tech in ("sft", "dpo") for fmt in ACCEPTED_FORMATS[tech]
} | {"prompt_only": "RLVR/RLAIF", "verl": "RLVR/RLAIF", "prompt_samples": "RLVR", "genqa": "evaluation"}


@dataclass
class DatasetInput:
    """One channel's data, named exactly."""

    channel: str
    uri: str
    format: str
    sha256: str | None
    rows: int | None
    arn: str | None = None
    name: str | None = None
    version: str | None = None

    def to_lineage(self) -> dict[str, Any]:
        return asdict(self)

    def channel_config(self) -> dict[str, Any]:
        """The InputDataConfig channel: the dataset version when registered, its S3 object always."""
        source: dict[str, Any] = {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": self.uri}}
        if self.arn:
            source["DatasetSource"] = {"DatasetArn": self.arn}
        return {"ChannelName": self.channel, "DataSource": source, "InputMode": "File",
                "ContentType": self.format}

    def entity(self, session: Session) -> DataSet:
        """Something ``iter_dataset_rows`` reads (a stored version, or the S3 object itself)."""
        return DataSet(
            name=self.name or "", arn=self.arn or "", version=self.version or "",
            status=HubContentStatus.AVAILABLE, source=self.uri, sagemaker_session=session,
        )


def parse_content_arn(arn: str) -> tuple[str, str, str, str | None] | None:
    """(hub, content type, name, version or None) of a hub-content ARN."""
    match = _CONTENT_ARN.match(arn)
    return (match[2], match[3], match[4], match[5]) if match else None


def _get(kind: type, name: str, version: str | None, session: Session, what: str) -> Any:
    try:
        return kind.get(name, session, version=version)
    except ClientError as exc:
        if is_not_found(exc):
            shown = f"{name} version {version}" if version else name
            raise ValueError(f"{what} {shown} does not exist in the registry") from None
        raise


def resolve_dataset(value: Any, channel: str, technique: str, session: Session) -> DatasetInput:
    trainer = TRAINER_NAMES[technique]
    if isinstance(value, DataSet):
        dataset = _get(DataSet, value.name, value.version or None, session, "Dataset")
    elif isinstance(value, str) and value.startswith("s3://"):
        return _validate_uri(value, channel, technique, session)
    elif isinstance(value, str) and value.startswith("arn:"):
        parsed = parse_content_arn(value)
        if parsed is None or parsed[1] != "DataSet":
            raise ValueError(f"{value} is not a DataSet hub-content ARN")
        dataset = _get(DataSet, parsed[2], parsed[3], session, "Dataset")
    elif isinstance(value, str) and value:
        name, _, version = value.partition(":")
        dataset = _get(DataSet, name, version or None, session, "Dataset")
    else:
        raise ValueError(
            f"{trainer} needs a {channel} dataset: a DataSet, its ARN or name, or an s3:// URI"
        )
    label = f"Dataset {dataset.name} version {dataset.version}"
    if dataset.status == HubContentStatus.IMPORTING:
        raise ValueError(f"{label} is still Importing; wait for it (dataset.wait()) and train then")
    if dataset.status == HubContentStatus.IMPORT_FAILED:
        raise ValueError(f"{label} failed to import ({dataset.failure_reason}); it cannot be trained on")
    if dataset.status != HubContentStatus.AVAILABLE:
        raise ValueError(f"{label} is {dataset.status}, not Available")
    stats = dataset.stats or {}
    fmt = stats.get("format")
    _check_format(fmt, label, technique)
    return DatasetInput(
        channel=channel, uri=dataset.source or "", format=fmt, sha256=stats.get("sha256"),
        rows=stats.get("rows"), arn=dataset.arn, name=dataset.name, version=dataset.version,
    )


def _check_format(fmt: str | None, label: str, technique: str) -> None:
    accepted = ACCEPTED_FORMATS[technique]
    if fmt not in accepted:
        kind = _FORMAT_TECHNIQUE.get(fmt or "", "unknown")
        raise ValueError(
            f"{label} holds {fmt or 'unrecognised'} data ({kind} data); "
            f"{TRAINER_NAMES[technique]} takes {', '.join(accepted)}"
        )


def _validate_uri(uri: str, channel: str, technique: str, session: Session) -> DatasetInput:
    from airegistry.dataset import _file_type
    from airegistry.formats import TECHNIQUE_FORMATS, validate

    bucket, key = parse_s3_uri(uri)
    _file_type(key)
    strict = set(ACCEPTED_FORMATS[technique]) <= set(TECHNIQUE_FORMATS[technique])
    try:
        stream = session.objects.open(bucket, key)
    except Exception as exc:
        raise ValueError(f"Cannot read the dataset {uri}: {exc}") from None
    with contextlib.closing(stream):
        report = validate(stream, technique=technique if strict else None, filename=key,
                          compute_sha256=True)
    if not report.valid:
        raise ValueError(f"Dataset {uri} is not valid for {technique.upper()}: {report.summary()}")
    _check_format(report.format, f"Dataset {uri}", technique)
    return DatasetInput(channel=channel, uri=uri, format=report.format or "",
                        sha256=report.sha256, rows=report.rows)


def resolve_evaluator(
    value: Any, expected_type: str, session: Session, *, trainer: str, register: bool
) -> Evaluator:
    """The evaluator version to train with, checked for existence, status and type.

    A Lambda ARN (reward functions only) is registered as an evaluator first, as the
    official SDK does, unless ``register`` is false (dry runs change nothing).
    """
    if isinstance(value, Evaluator):
        if not value.arn:  # an unsaved Lambda reference (a dry run's)
            return value
        evaluator = _get(Evaluator, value.name, value.version or None, session, "Evaluator")
    elif isinstance(value, str) and value.startswith(LAMBDA_ARN_PREFIX):
        if expected_type != REWARD_FUNCTION:
            raise ValueError(f"{trainer} needs a RewardPrompt evaluator, not a Lambda function")
        check_function_reachable(value, session, trainer=trainer)
        function = value.rsplit(":", 1)[-1]
        name = re.sub(r"[^a-zA-Z0-9]+", "-", function).strip("-")[:63] or "reward-function"
        if not register:
            return Evaluator(name=name, type=REWARD_FUNCTION, method=EvaluatorMethod.LAMBDA,
                             reference=value, status=HubContentStatus.AVAILABLE,
                             sagemaker_session=session)
        evaluator = Evaluator.create(name=name, type=REWARD_FUNCTION, source=value,
                                     sagemaker_session=session)
    elif isinstance(value, str) and value.startswith("arn:"):
        parsed = parse_content_arn(value)
        if parsed is None or parsed[1] != "JsonDoc":
            raise ValueError(f"{value} is not an evaluator (JsonDoc hub-content) ARN")
        evaluator = _get(Evaluator, parsed[2], parsed[3], session, "Evaluator")
    elif isinstance(value, str) and value:
        name, _, version = value.partition(":")
        evaluator = _get(Evaluator, name, version or None, session, "Evaluator")
    else:
        what = "custom_reward_function" if expected_type == REWARD_FUNCTION else "reward_prompt"
        raise ValueError(f"{trainer} needs {what}: an Evaluator, its ARN or its name")
    label = f"Evaluator {evaluator.name} version {evaluator.version}"
    if evaluator.status != HubContentStatus.AVAILABLE:
        reason = f" ({evaluator.failure_reason})" if evaluator.failure_reason else ""
        raise ValueError(f"{label} is {evaluator.status}{reason}, not Available")
    if evaluator.type != expected_type:
        raise ValueError(f"{label} is a {evaluator.type}; {trainer} needs a {expected_type}")
    if evaluator.type == REWARD_FUNCTION and evaluator.reference:
        check_function_reachable(evaluator.reference, session, trainer=trainer, label=label)
    return evaluator


def check_function_reachable(
    arn: str, session: Session, *, trainer: str, label: str | None = None
) -> None:
    """The reward function behind ``arn`` can be invoked from this backend, or a ValueError.

    Asked of the backend's own function service (``GetFunctionConfiguration``): the embedded
    registry and the server run only the functions deployed in their runtime, so a Lambda
    function of another account or region, or one that was deleted, is refused here, before
    anything is registered or trained, rather than failing the first reward call.
    """
    what = f"{label}'s function {arn}" if label else f"The Lambda function {arn}"
    try:
        session.functions.get_function_configuration(FunctionName=arn)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", ""), error.get("Message") or str(exc)
        if code == "ResourceNotFoundException":
            raise ValueError(
                f"{what} cannot be reached from this registry ({message}). {trainer} on the "
                f"{session.backend} backend can only call functions deployed in the registry's "
                "own runtime: register the code itself (Evaluator.create(..., source='reward.py')) "
                "or deploy it to this registry's Lambda API and pass that function's ARN"
            ) from None
        if code in ("InvalidParameterValueException", "ValidationException"):
            raise ValueError(f"{what} is not a valid Lambda function ARN: {message}") from None
        raise
