"""DataSet: versioned, validated training data in the registry.

A local file is validated completely before anything is stored (so a bad file never
leaves a half-registered version behind), then copied into the registry's store
(``UPLOADED``). An ``s3://`` source is registered by reference (``GENERATED``) and
validated by the import job. Either way the version ends ``Available`` only after
every row has been checked against the technique.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
import zlib
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import msgspec

from airegistry import keywords as kw
from airegistry.air_constants import (
    DATASET_DOCUMENT_SCHEMA_VERSION,
    DATASET_HUB_CONTENT_TYPE,
    HubContentStatus,
)
from airegistry.air_hub import normalize_tags
from airegistry.air_hub_entity import AIRHubEntity, check_name
from airegistry.dataset_utils import CustomizationTechnique, DataSetMethod
from airegistry.home import max_dataset_bytes
from airegistry.hub import documents
from airegistry.session import Session, resolve_session
from airegistry.stats_markdown import parse_stats_markdown

SUPPORTED_EXTENSIONS = {".jsonl": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
CONTENT_TYPES = {
    "jsonl": "application/jsonl",
    "json": "application/json",
    "csv": "text/csv",
    "parquet": "application/vnd.apache.parquet",
}


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"Not an S3 URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket or not key:
        raise ValueError(f"An S3 source needs a bucket and a key: {uri!r}")
    return bucket, key


def _file_type(name: str) -> str:
    suffix = PurePosixPath(name).suffix.lower()
    if suffix not in SUPPORTED_EXTENSIONS:
        raise ValueError(
            f"Unsupported dataset file {name!r}: the extension must be one of "
            f"{', '.join(SUPPORTED_EXTENSIONS)}"
        )
    return SUPPORTED_EXTENSIONS[suffix]


def _technique(value: Any) -> CustomizationTechnique | None:
    if value is None:
        return None
    try:
        return CustomizationTechnique(value.value if hasattr(value, "value") else str(value).lower())
    except ValueError:
        raise ValueError(
            f"Unknown customization technique {value!r}; expected one of "
            f"{', '.join(t.value for t in CustomizationTechnique)}"
        ) from None


class DataSet(AIRHubEntity):
    """Dataset entity for AI Registry."""

    _list_kind = "dataset"
    _document_schema_version = DATASET_DOCUMENT_SCHEMA_VERSION

    def __init__(
        self,
        name: str,
        arn: str,
        version: str,
        status: HubContentStatus | str,
        source: str | None = None,
        description: str | None = None,
        customization_technique: CustomizationTechnique | None = None,
        method: DataSetMethod | None = None,
        created_time: datetime | None = None,
        updated_time: datetime | None = None,
        sagemaker_session: Session | None = None,
        failure_reason: str | None = None,
        stats: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            name=name,
            version=version,
            arn=arn,
            status=status,
            created_time=created_time,
            updated_time=updated_time,
            description=description,
            sagemaker_session=sagemaker_session,
            failure_reason=failure_reason,
        )
        self.source = source
        self.customization_technique = customization_technique
        self.method = method
        self.stats = stats

    @classmethod
    def hub_content_type(cls) -> str:
        return DATASET_HUB_CONTENT_TYPE

    # -- building from hub responses ---------------------------------------------------------

    @classmethod
    def _from_description(cls, response: dict, session: Session | None) -> DataSet:
        document = documents.parse_dataset(response["HubContentDocument"])
        keywords = response.get("HubContentSearchKeywords", [])
        method = kw.find(keywords, documents.METHOD_PREFIX)
        technique = kw.find(keywords, documents.TECHNIQUE_PREFIX)
        return cls(
            name=response["HubContentName"],
            arn=response["HubContentArn"],
            version=response["HubContentVersion"],
            status=response["HubContentStatus"],
            source=document.uri,
            description=response.get("HubContentDescription"),
            customization_technique=CustomizationTechnique(technique) if technique else None,
            method=DataSetMethod(method) if method else None,
            created_time=response.get("CreationTime"),
            updated_time=response.get("LastModifiedTime"),
            sagemaker_session=session,
            failure_reason=response.get("FailureReason"),
            stats=parse_stats_markdown(response.get("HubContentMarkdown")),
        )

    @classmethod
    def _list_item(cls, summary: dict) -> dict[str, Any]:
        keywords = summary.get("HubContentSearchKeywords", [])
        method = kw.find(keywords, documents.METHOD_PREFIX)
        technique = kw.find(keywords, documents.TECHNIQUE_PREFIX)
        return {
            "name": summary["HubContentName"],
            "version": summary["HubContentVersion"],
            "arn": summary["HubContentArn"],
            "status": HubContentStatus(summary["HubContentStatus"]),
            "description": summary.get("HubContentDescription"),
            "created_time": summary.get("CreationTime"),
            "updated_time": summary.get("LastModifiedTime"),
            "source": kw.find(keywords, documents.SOURCE_PREFIX),
            "method": DataSetMethod(method) if method else None,
            "customization_technique": CustomizationTechnique(technique) if technique else None,
        }

    # -- creating ----------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        name: str,
        source: str,
        customization_technique: CustomizationTechnique | str | None = None,
        wait: bool = True,
        description: str | None = None,
        tags: list[Any] | None = None,
        role: str | None = None,
        sagemaker_session: Session | None = None,
    ) -> DataSet:
        """Register a dataset: a new name gets 1.0.0, an existing name its next major version."""
        session = resolve_session(sagemaker_session)
        check_name(name, "dataset")
        technique = _technique(customization_technique)
        aws_tags = normalize_tags(tags)
        if description is not None and len(description) > 1023:
            raise ValueError("A dataset description can be at most 1,023 characters.")
        source = os.fspath(source) if not isinstance(source, str) else source
        uploaded: tuple[str, str] | None = None
        if source.startswith("s3://"):
            bucket, key = parse_s3_uri(source)
            _file_type(key)
            method = DataSetMethod.GENERATED
            checkable = session.backend == "remote" or (
                session.backend == "embedded" and session.objects.owns(bucket)
            )
            if checkable and not session.objects.exists(bucket, key):
                raise ValueError(f"The dataset source {source} does not exist.")
        else:
            path = Path(source).expanduser()
            bucket, key = cls._validate_and_upload(session, name, path, technique)
            uploaded = (bucket, key)
            method = DataSetMethod.UPLOADED
        uri = f"s3://{bucket}/{key}"
        keywords = [documents.METHOD_PREFIX + method.value]
        if technique:
            keywords.append(documents.TECHNIQUE_PREFIX + technique.value)
        source_keyword = kw.keyword(documents.SOURCE_PREFIX, uri)
        if source_keyword:
            keywords.append(source_keyword)
        if uploaded:
            keywords.append(documents.OWNED)
        document = documents.DatasetDocument(
            DatasetS3Bucket=bucket,
            DatasetS3Prefix=key,
            DatasetType=technique.value.upper() if technique else "GENERIC",
            DatasetRoleArn=role if role else msgspec.UNSET,
        )
        try:
            version = cls._import_next_version(
                session, name, documents.encode(document), keywords, aws_tags, description
            )
        except BaseException:
            if uploaded:
                with contextlib.suppress(Exception):
                    session.objects.delete(*uploaded)
            raise
        return cls._created(session, name, version, wait)

    def create_version(
        self,
        source: str,
        customization_technique: CustomizationTechnique | str | None = None,
        wait: bool = True,
        description: str | None = None,
        tags: list[Any] | None = None,
        role: str | None = None,
    ) -> DataSet:
        """A new version of this dataset's name; returns the new entity."""
        return type(self).create(
            self.name,
            source,
            customization_technique=customization_technique or self.customization_technique,
            wait=wait,
            description=description if description is not None else self.description,
            tags=tags,
            role=role,
            sagemaker_session=self.sagemaker_session,
        )

    @classmethod
    def _validate_and_upload(
        cls,
        session: Session,
        name: str,
        path: Path,
        technique: CustomizationTechnique | None,
    ) -> tuple[str, str]:
        """Validate before anything is stored; the import job validates the stored copy again.

        The second pass is deliberate: it is what proves the stored object complete and
        uncorrupted (its sha256 is checked at the end of the stream) and it records the
        statistics on the registry side, identically for local and by-reference sources.
        """
        from airegistry.formats import ValidationLimits, validate

        if not path.is_file():
            raise ValueError(f"Dataset file not found: {path}")
        file_type = _file_type(path.name)
        limit = max_dataset_bytes()
        size = path.stat().st_size
        if size > limit:
            raise ValueError(
                f"Dataset file {path} is {size:,} bytes, over the limit of {limit:,} bytes "
                "(set AIREGISTRY_MAX_DATASET_BYTES to change it)."
            )
        report = validate(
            path,
            technique=technique.value if technique else None,
            file_type=file_type,
            limits=ValidationLimits(max_bytes=limit),
        )
        if not report.valid:
            what = f" for {technique.value.upper()}" if technique else ""
            raise ValueError(f"Dataset file {path} is not valid{what}: {report.summary()}")
        bucket = session.default_bucket
        session.objects.ensure_bucket(bucket)
        key = f"datasets/{name}/{uuid.uuid4().hex}/{path.name}"
        session.objects.upload_file(path, bucket, key, content_type=CONTENT_TYPES[file_type])
        return bucket, key

    # -- reading data back ------------------------------------------------------------------

    def _location(self) -> tuple[str, str]:
        if not self.source:
            raise ValueError(f"Dataset {self.name} has no source location.")
        return parse_s3_uri(self.source)

    def open(self) -> BinaryIO:
        """A binary stream of the stored data (verified against its checksum when embedded)."""
        return resolve_session(self.sagemaker_session).objects.open(*self._location())

    def download(self, path: str | os.PathLike[str]) -> Path:
        """Copy the data to ``path`` (a file, or a directory to put it in) atomically."""
        target = Path(path).expanduser()
        if target.is_dir():
            target = target / PurePosixPath(self._location()[1]).name
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, contextlib.closing(self.open()) as stream:
                shutil.copyfileobj(stream, out, 1024 * 1024)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return target

    def to_pandas(self) -> Any:
        """The rows as a pandas DataFrame (needs the ``pandas`` extra)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("to_pandas() needs pandas: pip install 'airegistry[pandas]'") from None
        file_type = _file_type(self._location()[1])
        with tempfile.TemporaryDirectory() as tmp:
            local = self.download(Path(tmp))
            if file_type == "jsonl":
                return pd.read_json(local, lines=True)
            if file_type == "json":
                return pd.read_json(local)
            if file_type == "csv":
                return pd.read_csv(local)
            return pd.read_parquet(local)

    def to_hf_dataset(self) -> Any:
        """The rows as a Hugging Face ``datasets.Dataset`` (needs the ``hf`` extra)."""
        try:
            import datasets
        except ImportError:
            raise ImportError(
                "to_hf_dataset() needs the datasets library: pip install 'airegistry[hf]'"
            ) from None
        file_type = _file_type(self._location()[1])
        builder = {"jsonl": "json", "json": "json", "csv": "csv", "parquet": "parquet"}[file_type]
        with tempfile.TemporaryDirectory() as tmp:
            local = self.download(Path(tmp))
            loaded = datasets.load_dataset(builder, data_files=str(local), split="train")
            return loaded.flatten_indices() if hasattr(loaded, "flatten_indices") else loaded

    # -- splitting -------------------------------------------------------------------------------

    def split(
        self,
        train_fraction: float = 0.8,
        *,
        seed: int = 0,
        train_name: str | None = None,
        eval_name: str | None = None,
        wait: bool = True,
    ) -> tuple[DataSet, DataSet]:
        """Split rows into a train and an eval dataset, deterministically by seed.

        Streams the stored file once, so any size works. Each row goes to the train side
        when a seeded hash of its position falls under ``train_fraction``: the same seed
        always gives the same split. Supported for ``.jsonl`` and ``.csv``.
        """
        if not 0 < train_fraction < 1:
            raise ValueError("train_fraction must be strictly between 0 and 1")
        file_type = _file_type(self._location()[1])
        if file_type not in ("jsonl", "csv"):
            raise ValueError(f"split() supports .jsonl and .csv datasets, not .{file_type}")
        train_name = train_name or f"{self.name}-train"
        eval_name = eval_name or f"{self.name}-eval"
        check_name(train_name, "dataset")
        check_name(eval_name, "dataset")
        threshold = int(train_fraction * 2**32)
        suffix = "." + file_type
        with tempfile.TemporaryDirectory() as tmp:
            train_path = Path(tmp) / f"{train_name}{suffix}"
            eval_path = Path(tmp) / f"{eval_name}{suffix}"
            counts = [0, 0]
            with contextlib.closing(self.open()) as raw, open(train_path, "wb") as train_out, open(
                eval_path, "wb"
            ) as eval_out:
                lines = _iter_lines(raw)
                if file_type == "csv":
                    header = next(lines, b"")
                    train_out.write(header)
                    eval_out.write(header)
                for index, line in enumerate(lines):
                    if not line.strip():
                        continue
                    if not line.endswith(b"\n"):
                        line += b"\n"
                    bucket = zlib.crc32(f"{seed}:{index}".encode()) < threshold
                    (train_out if bucket else eval_out).write(line)
                    counts[0 if bucket else 1] += 1
            if not counts[0] or not counts[1]:
                raise ValueError(
                    f"Splitting {self.name} at {train_fraction} leaves one side empty "
                    f"({counts[0]} train rows, {counts[1]} eval rows)."
                )
            technique = self.customization_technique
            train = type(self).create(
                train_name, str(train_path), technique, wait=wait,
                description=f"Train split ({train_fraction:.0%}, seed {seed}) of {self.name} v{self.version}",
                sagemaker_session=self.sagemaker_session,
            )
            evaluation = type(self).create(
                eval_name, str(eval_path), technique, wait=wait,
                description=f"Eval split ({1 - train_fraction:.0%}, seed {seed}) of {self.name} v{self.version}",
                sagemaker_session=self.sagemaker_session,
            )
        return train, evaluation


def _iter_lines(stream: BinaryIO) -> Iterable[bytes]:
    """Lines of a binary stream, with a large buffer (streams from S3 have no readline)."""
    pending = b""
    while True:
        chunk = stream.read(1024 * 1024)
        if not chunk:
            break
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line + b"\n"
    if pending:
        yield pending
