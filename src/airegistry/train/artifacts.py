"""Where a job's files live in the object store, and the ``Model`` hub content of a run.

- weights: ``s3_output_path`` or ``s3://<registry bucket>/models/<job name>/``, one object
  per file plus ``manifest.json`` (names, sizes, sha256, adapter or full weights);
- the record's bulk data: ``s3://<registry bucket>/training-jobs/<job name>/`` holds
  ``lineage.json``, ``metrics.jsonl`` (one row per logged step) and ``logs.txt``.

The trained model is registered as hub content of type ``Model``: one new major version
per run of a ``model_package_group``, its document carrying the artifact URI and the
lineage. Deleting a Model version leaves the weights in place (like data registered by
reference).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

from airegistry.air_constants import HubContentStatus
from airegistry.air_hub_entity import AIRHubEntity
from airegistry.dataset import parse_s3_uri
from airegistry.session import Session

MODEL_CONTENT_TYPE = "Model"
MODEL_DOCUMENT_SCHEMA_VERSION = "2.0.0"
MANIFEST = "manifest.json"


def record_uri(session: Session, job_name: str, file: str) -> str:
    return f"s3://{session.default_bucket}/training-jobs/{job_name}/{file}"


def default_output_uri(session: Session, job_name: str) -> str:
    return f"s3://{session.default_bucket}/models/{job_name}/"


def output_uri_for(s3_output_path: str | None, session: Session, job_name: str) -> str:
    if not s3_output_path:
        return default_output_uri(session, job_name)
    parse_s3_uri(s3_output_path.rstrip("/") + "/x")  # validates bucket and shape
    return s3_output_path.rstrip("/") + f"/{job_name}/"


def _join(prefix_uri: str, name: str) -> tuple[str, str]:
    bucket, _, key = prefix_uri[5:].partition("/")
    return bucket, key.rstrip("/") + "/" + name if key else name


def put_json(session: Session, uri: str, value: Any) -> None:
    bucket, key = parse_s3_uri(uri)
    session.objects.ensure_bucket(bucket)
    data = json.dumps(value, default=str, indent=1).encode()
    session.objects.put_bytes(bucket, key, data, content_type="application/json")


def read_bytes(session: Session, uri: str) -> bytes | None:
    bucket, key = parse_s3_uri(uri)
    if not session.objects.exists(bucket, key):
        return None
    with contextlib.closing(session.objects.open(bucket, key)) as stream:
        return stream.read()


def read_record(session: Session, job_name: str, file: str) -> bytes | None:
    """One of a job's record files, or None when it has none.

    A job recorded by another tool through the SageMaker API has no files, and in a fresh
    embedded registry the registry's bucket may not exist yet; the embedded object port
    would then look for the bucket on S3 itself, so the record is read only where it lives.
    """
    if session.backend == "embedded" and not session.objects.owns(session.default_bucket):
        return None
    return read_bytes(session, record_uri(session, job_name, file))


def upload_directory(session: Session, directory: Path, prefix_uri: str, kind: str) -> dict[str, Any]:
    """Upload every file of ``directory`` (flat) and a manifest; returns the manifest."""
    bucket, _ = _join(prefix_uri, "")
    session.objects.ensure_bucket(bucket)
    files = []
    for path in sorted(p for p in directory.iterdir() if p.is_file()):
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        _, key = _join(prefix_uri, path.name)
        session.objects.upload_file(path, bucket, key)
        files.append({"name": path.name, "size": path.stat().st_size, "sha256": digest.hexdigest()})
    manifest = {"kind": kind, "files": files}
    _, key = _join(prefix_uri, MANIFEST)
    session.objects.put_bytes(bucket, key, json.dumps(manifest).encode(), content_type="application/json")
    return manifest


def download_directory(session: Session, prefix_uri: str, target: Path) -> dict[str, Any]:
    """Fetch the files a manifest lists into ``target`` (each checked against its sha256)."""
    raw = read_bytes(session, _uri(*_join(prefix_uri, MANIFEST)))
    if raw is None:
        raise ValueError(f"No model manifest at {prefix_uri}{MANIFEST}: the job stored no weights")
    manifest = json.loads(raw)
    target.mkdir(parents=True, exist_ok=True)
    for entry in manifest["files"]:
        name = PurePosixPath(entry["name"]).name  # never a path outside target
        bucket, key = _join(prefix_uri, name)
        fd, tmp = tempfile.mkstemp(dir=target, prefix=f".{name}.")
        digest = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out, contextlib.closing(session.objects.open(bucket, key)) as src:
                for block in iter(lambda: src.read(1 << 20), b""):
                    digest.update(block)
                    out.write(block)
            if digest.hexdigest() != entry["sha256"]:
                raise ValueError(f"{_uri(bucket, key)} does not match its manifest's sha256")
            os.replace(tmp, target / name)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    return manifest


def _uri(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


class TrainedModel(AIRHubEntity):
    """A trained model registered in the hub (content type ``Model``)."""

    _list_kind = "model"
    _document_schema_version = MODEL_DOCUMENT_SCHEMA_VERSION

    def __init__(self, *args: Any, document: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.document = document or {}

    @classmethod
    def hub_content_type(cls) -> str:
        return MODEL_CONTENT_TYPE

    @property
    def artifact_uri(self) -> str | None:
        return self.document.get("ModelArtifactUri")

    @property
    def lineage(self) -> dict[str, Any]:
        return self.document.get("Lineage") or {}

    @classmethod
    def _from_description(cls, response: dict, session: Session | None) -> TrainedModel:
        return cls(
            name=response["HubContentName"], version=response["HubContentVersion"],
            arn=response["HubContentArn"], status=response["HubContentStatus"],
            created_time=response.get("CreationTime"),
            updated_time=response.get("LastModifiedTime"),
            description=response.get("HubContentDescription"), sagemaker_session=session,
            document=json.loads(response.get("HubContentDocument") or "{}"),
        )

    @classmethod
    def _list_item(cls, summary: dict) -> dict[str, Any]:
        return {
            "name": summary["HubContentName"], "version": summary["HubContentVersion"],
            "arn": summary["HubContentArn"], "status": HubContentStatus(summary["HubContentStatus"]),
            "description": summary.get("HubContentDescription"),
            "created_time": summary.get("CreationTime"),
        }

    @classmethod
    def register(
        cls, session: Session, name: str, *, artifact_uri: str, kind: str,
        lineage: dict[str, Any], description: str | None = None,
    ) -> TrainedModel:
        """The next major version of ``name``, its document naming the weights and lineage."""
        job = lineage.get("training_job", {})
        document = {
            "ModelArtifactUri": artifact_uri,
            "ArtifactKind": kind,
            "TrainingJobName": job.get("name"),
            "TrainingJobArn": job.get("arn"),
            "Lineage": lineage,
        }
        keywords = [
            f"customization_technique:{lineage.get('technique')}",
            f"training_type:{str(lineage.get('training_type')).lower()}",
            f"@trainingjob:{job.get('name')}",
        ]
        version = cls._import_next_version(session, name, document, keywords, [], description)
        return cls.get(name, session, version=version)


def copy_tree(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.is_file():
            shutil.copy2(path, target / path.name)
