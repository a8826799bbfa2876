"""Hub content documents as types, shared by the SDK (which writes them) and the hub (which reads).

The managed service's documents are JSON strings inside ``HubContentDocument``; here
each one is a msgspec ``Struct``, so encoding and validation are one definition instead
of a dict literal in one layer and ``json.loads`` + key lookups in another:

- a DataSet document (schema ``2.0.0``): ``DatasetType``, ``DatasetS3Bucket``,
  ``DatasetS3Prefix`` (the full key), optional ``DatasetRoleArn``, ``Dependencies``;
- an evaluator: content type ``JsonDoc``, ``{"SubType": "AWS/Evaluator", "JsonContent":
  "<json string of EvaluatorContent>"}``.

The search keywords the registry itself reads back are named here too (``OWNED``
marks a version whose object the registry uploaded and garbage-collects).
"""

from __future__ import annotations

from typing import Any

import msgspec
from msgspec import UNSET, UnsetType

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


class DatasetDocument(msgspec.Struct, forbid_unknown_fields=False):
    DatasetS3Bucket: str
    DatasetS3Prefix: str
    DatasetType: str = "GENERIC"
    DatasetRoleArn: str | UnsetType = UNSET
    Dependencies: list[Any] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("DatasetS3Bucket", "DatasetS3Prefix"):
            if not getattr(self, name):
                raise DocumentError(f"A DataSet HubContentDocument needs a non-empty {name}.")

    @property
    def uri(self) -> str:
        return f"s3://{self.DatasetS3Bucket}/{self.DatasetS3Prefix}"

    def dependencies(self) -> list[dict[str, Any]]:
        return [d for d in self.Dependencies if isinstance(d, dict)]


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


def evaluator_document(content: EvaluatorContent) -> JsonDocument:
    return JsonDocument(SubType=EVALUATOR_SUBTYPE,
                        JsonContent=msgspec.json.encode(content).decode())


def _decode(text: str, kind: type[Any], field: str) -> Any:
    try:
        return msgspec.json.decode(text, type=kind)
    except msgspec.DecodeError as exc:
        raise DocumentError(f"{field} is not valid: {exc}") from None
    except DocumentError:
        raise


def parse_dataset(document: str) -> DatasetDocument:
    return _decode(document, DatasetDocument, "HubContentDocument")


def parse_json_document(document: str) -> JsonDocument:
    return _decode(document, JsonDocument, "HubContentDocument")


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
        uri = parse_json_document(document).evaluator().ObjectUri or ""
        if uri.startswith("s3://"):
            bucket, _, key = uri[5:].partition("/")
            return bucket, key
    return None


__all__ = [
    "OWNED",
    "DatasetDocument",
    "DocumentError",
    "EvaluatorContent",
    "JsonDocument",
    "encode",
    "evaluator_document",
    "owned_object",
    "parse_dataset",
    "parse_json_document",
]
