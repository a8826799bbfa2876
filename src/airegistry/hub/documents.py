"""Hub content documents as types, shared by the SDK (which writes them) and the hub (which reads).

The managed service's documents are JSON strings inside ``HubContentDocument``; here
each one is a msgspec ``Struct``, so encoding and validation are one definition instead
of a dict literal in one layer and ``json.loads`` + key lookups in another:

- a DataSet document (schema ``2.0.0``): ``DatasetType``, ``DatasetS3Bucket``,
  ``DatasetS3Prefix`` (the full key), optional ``DatasetRoleArn``, ``Dependencies``;
- an evaluator: content type ``JsonDoc``, ``{"SubType": "AWS/Evaluator", "JsonContent":
  "<json string of EvaluatorContent>"}``;
- a model reference (``CreateHubContentReference``): content type ``ModelReference``,
  ``{"SageMakerPublicHubContentArn": ..., "MinVersion": ...}``.

Every document is checked against its type on import (``check_document``), and
everything the hub later reads back from one (dependencies, evaluator references,
referenced ARNs) is read through the same types, so no stored document can make a
later read fail. Documents of the other content types (``Model``, ``Notebook``) must be
JSON objects; nothing of them is read back.

The search keywords the registry itself reads back are named here too (``OWNED``
marks a version whose object the registry uploaded and garbage-collects).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType

from airegistry.air_constants import (
    DATASET_HUB_CONTENT_TYPE,
    EVALUATOR_HUB_CONTENT_TYPE,
    EVALUATOR_SUBTYPE,
)

OWNED = "@owned:registry"
"""Keyword of a version whose object the registry uploaded (deleted with its last version)."""
SOURCE_PREFIX = "@source:"
REFERENCE_PREFIX = "@reference:"
SUBTYPE_PREFIX = "@subtype:"
EVALUATOR_TYPE_PREFIX = "@evaluatortype:"
CONTENT_KIND_PREFIX = "@contenttype:"
METHOD_PREFIX = "method:"
TECHNIQUE_PREFIX = "customization_technique:"


class DocumentError(ValueError):
    """A hub content document that does not have the shape its content type needs."""


MODEL_REFERENCE_CONTENT_TYPE = "ModelReference"
_Path = Annotated[str, Meta(max_length=1023)]


class HubContentDependency(msgspec.Struct, forbid_unknown_fields=False):
    """One entry of ``HubContentDependencies`` (the service model's shape, typed)."""

    DependencyOriginPath: _Path | UnsetType = UNSET
    DependencyCopyPath: _Path | UnsetType = UNSET


class DatasetDocument(msgspec.Struct, forbid_unknown_fields=False):
    DatasetS3Bucket: str
    DatasetS3Prefix: str
    DatasetType: str = "GENERIC"
    DatasetRoleArn: str | UnsetType = UNSET
    # Strings are accepted as the official SDK types them (List[str]); only structures are
    # dependencies the service reports.
    Dependencies: list[HubContentDependency | str] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("DatasetS3Bucket", "DatasetS3Prefix"):
            if not getattr(self, name):
                raise DocumentError(f"A DataSet HubContentDocument needs a non-empty {name}.")

    @property
    def uri(self) -> str:
        return f"s3://{self.DatasetS3Bucket}/{self.DatasetS3Prefix}"

    def dependencies(self) -> list[HubContentDependency]:
        return [d for d in self.Dependencies if isinstance(d, HubContentDependency)]


class EvaluatorContent(msgspec.Struct, forbid_unknown_fields=False):
    Reference: str
    EvaluatorType: str | UnsetType = UNSET
    ObjectUri: str | UnsetType = UNSET


class JsonDocument(msgspec.Struct, forbid_unknown_fields=False):
    """A ``JsonDoc`` document; an evaluator when ``SubType`` is ``AWS/Evaluator``."""

    SubType: str | UnsetType = UNSET
    JsonContent: str | UnsetType = UNSET

    @property
    def is_evaluator(self) -> bool:
        return self.SubType == EVALUATOR_SUBTYPE

    def evaluator(self) -> EvaluatorContent:
        if not self.JsonContent:
            raise DocumentError("An evaluator JsonDoc needs JsonContent, a JSON string with a "
                                "string Reference.")
        return _decode(self.JsonContent, EvaluatorContent, "HubContentDocument.JsonContent")


class ModelReferenceDocument(msgspec.Struct, forbid_unknown_fields=True):
    """What a ``ModelReference`` version stores: the public content it points at."""

    SageMakerPublicHubContentArn: str
    MinVersion: str | UnsetType = UNSET


class _JsonObject(msgspec.Struct, forbid_unknown_fields=False):
    """Any JSON object: what the documents of Model and Notebook content must be."""


def evaluator_document(content: EvaluatorContent) -> JsonDocument:
    return JsonDocument(SubType=EVALUATOR_SUBTYPE,
                        JsonContent=msgspec.json.encode(content).decode())


def _decode(text: str, kind: type[Any], field: str) -> Any:
    try:
        return msgspec.json.decode(text, type=kind)
    except msgspec.DecodeError as exc:
        raise DocumentError(f"{field} is not valid: {exc}") from None
    except RecursionError:
        raise DocumentError(f"{field} is nested too deeply") from None
    except DocumentError:
        raise


def parse_dataset(document: str) -> DatasetDocument:
    return _decode(document, DatasetDocument, "HubContentDocument")


def parse_json_document(document: str) -> JsonDocument:
    return _decode(document, JsonDocument, "HubContentDocument")


def parse_model_reference(document: str) -> ModelReferenceDocument:
    return _decode(document, ModelReferenceDocument, "HubContentDocument")


def check_document(content_type: str, document: str) -> None:
    """Refuse (``DocumentError``) a document the hub could not read back for its type."""
    if content_type == DATASET_HUB_CONTENT_TYPE:
        parse_dataset(document)
    elif content_type == EVALUATOR_HUB_CONTENT_TYPE:
        doc = parse_json_document(document)
        if doc.is_evaluator:
            doc.evaluator()
    elif content_type == MODEL_REFERENCE_CONTENT_TYPE:
        parse_model_reference(document)
    else:
        _decode(document, _JsonObject, "HubContentDocument")


def s3_location(uri: str) -> tuple[str, str] | None:
    """``(bucket, key)`` of an ``s3://bucket/key`` URI, None for anything else."""
    if not uri.startswith("s3://"):
        return None
    bucket, _, key = uri[5:].partition("/")
    return (bucket, key) if bucket and key else None


def artifacts(content_type: str, document: str) -> list[tuple[str, str, str]]:
    """The objects a version's document names, as ``(s3 URI, local path, kind)``.

    A dataset's file and its dependencies; an evaluator's prompt object (``ObjectUri``,
    or an ``s3://`` ``Reference``, as the official SDK stores reward prompts). A
    dependency whose origin ends in ``/`` is a prefix (``kind`` ``"prefix"``), every other
    entry one object (``"object"``).
    """
    out: list[tuple[str, str, str]] = []
    if content_type == DATASET_HUB_CONTENT_TYPE:
        doc = parse_dataset(document)
        out.append((doc.uri, "/" + doc.DatasetS3Prefix.rsplit("/", 1)[-1], "object"))
        for dep in doc.dependencies():
            origin = dep.DependencyOriginPath or ""
            if s3_location(origin) is None:
                continue
            copy = (dep.DependencyCopyPath or "").strip("/")
            if origin.endswith("/"):
                out.append((origin, "/" + copy if copy else "", "prefix"))
            else:
                name = origin.rsplit("/", 1)[-1]
                out.append((origin, f"/{copy}/{name}" if copy else "/" + name, "object"))
    elif content_type == EVALUATOR_HUB_CONTENT_TYPE:
        doc = parse_json_document(document)
        if doc.is_evaluator:
            content = doc.evaluator()
            for uri in (content.ObjectUri or None, content.Reference):
                if uri and s3_location(uri) is not None:
                    out.append((uri, "/" + uri.rsplit("/", 1)[-1], "object"))
                    break
    return out


def encode(document: msgspec.Struct) -> str:
    return msgspec.json.encode(document).decode()


def owned_object(content_type: str, document: str, keywords: list[str]) -> tuple[str, str] | None:
    """The object the registry uploaded for a version (garbage-collected with its last one)."""
    if OWNED not in keywords:
        return None
    if content_type == DATASET_HUB_CONTENT_TYPE:
        doc = parse_dataset(document)
        return doc.DatasetS3Bucket, doc.DatasetS3Prefix
    if content_type == EVALUATOR_HUB_CONTENT_TYPE:
        return s3_location(parse_json_document(document).evaluator().ObjectUri or "")
    return None


__all__ = [
    "MODEL_REFERENCE_CONTENT_TYPE",
    "OWNED",
    "DatasetDocument",
    "DocumentError",
    "EvaluatorContent",
    "HubContentDependency",
    "JsonDocument",
    "ModelReferenceDocument",
    "artifacts",
    "check_document",
    "encode",
    "evaluator_document",
    "owned_object",
    "parse_dataset",
    "parse_json_document",
    "parse_model_reference",
    "s3_location",
]
