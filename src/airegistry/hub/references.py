"""Hub content references: a private hub's ``ModelReference`` to public hub content.

``CreateHubContentReference`` adds a ``ModelReference`` named after the referenced model
(or ``HubContentName``) to a hub; ``UpdateHubContentReference`` changes its
``MinVersion``; ``DeleteHubContentReference`` removes it. On AWS the referenced content
lives in SageMaker's public JumpStart hub; a self-hosted registry cannot reach that hub,
so the reference records the ARN and minimum version it was given (its document is a
``documents.ModelReferenceDocument``) and reports them in ``DescribeHubContent`` and the
list operations (``SageMakerPublicHubContentArn``, ``ReferenceMinVersion``). A reference
is one version, ``1.0.0``, and is ``Available`` at once.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

import msgspec
from sqlalchemy.engine import Row

from airegistry.hub import documents
from airegistry.hub.botocore_model import OperationError
from airegistry.hub.versions import format_version, parse_version
from airegistry.storage.metadata import hubs as repo_errors
from airegistry.storage.metadata.hubs import HubRepository


class ReferenceHost(Protocol):
    """What the reference operations use of the hub service (its repository, names, errors).

    A protocol rather than the service class: the service builds these operations, so
    naming it here would tie the two modules in a circle.
    """

    repo: HubRepository
    max_queued_imports: int

    def hub_arn(self, hub: str) -> str: ...
    def content_arn(self, hub: str, content_type: str, name: str, version: str) -> str: ...
    def hub_name_of(self, value: str) -> str: ...
    def no_hub(self, name: str) -> OperationError: ...
    def no_content(self, hub: str, content_type: str, name: str,
                   version: str | None) -> OperationError: ...


REFERENCE_TYPE = documents.MODEL_REFERENCE_CONTENT_TYPE
REFERENCE_VERSION = (1, 0, 0)
_SCHEMA_VERSION = "1.0.0"


def read_reference(row: Row) -> documents.ModelReferenceDocument | None:
    """The reference a ``ModelReference`` row records (None for any other row)."""
    if row.content_type != REFERENCE_TYPE:
        return None
    try:
        return documents.parse_model_reference(row.document)
    except documents.DocumentError:  # imported before references had their own operations
        return None


class HubContentReferences:
    """The three reference operations, over the hub service's repository and ARNs."""

    def __init__(self, service: ReferenceHost) -> None:
        self.service = service

    def _require_reference_type(self, params: dict, operation: str) -> None:
        if params["HubContentType"] != REFERENCE_TYPE:
            raise OperationError(
                "ValidationException",
                f"{operation} only accepts HubContentType {REFERENCE_TYPE}; use "
                f"{operation.replace('Reference', '')} for {params['HubContentType']} content.",
            )

    def _arns(self, hub: str, name: str) -> dict[str, str]:
        return {"HubArn": self.service.hub_arn(hub),
                "HubContentArn": self.service.content_arn(hub, REFERENCE_TYPE, name,
                                                          format_version(REFERENCE_VERSION))}

    def create(self, params: dict) -> dict:
        svc = self.service
        hub = svc.hub_name_of(params["HubName"])
        public_arn = params["SageMakerPublicHubContentArn"]
        # ...:aws:hub-content/<public hub>/Model/<model name>
        name = params.get("HubContentName") or public_arn.rsplit("/", 1)[-1]
        document = documents.ModelReferenceDocument(
            SageMakerPublicHubContentArn=public_arn,
            MinVersion=params.get("MinVersion", msgspec.UNSET))
        if "MinVersion" in params:
            parse_version(params["MinVersion"], "MinVersion")
        values = {
            "document_schema_version": _SCHEMA_VERSION,
            "document": documents.encode(document),
            "search_keywords": "[]",
            "tags": json.dumps(params.get("Tags", [])),
            "status": "Available",
        }
        try:
            svc.repo.insert_content(hub, REFERENCE_TYPE, name, REFERENCE_VERSION, values,
                                    job_kind=None, max_queued=svc.max_queued_imports)
        except repo_errors.HubNotFound:
            raise svc.no_hub(hub) from None
        except repo_errors.VersionExists:
            raise OperationError(
                "ResourceInUse", f"{REFERENCE_TYPE} {name} already exists in hub {hub}.") from None
        return self._arns(hub, name)

    def update(self, params: dict) -> dict:
        svc = self.service
        self._require_reference_type(params, "UpdateHubContentReference")
        hub = svc.hub_name_of(params["HubName"])
        name = params["HubContentName"]
        if "MinVersion" not in params:
            raise OperationError("ValidationException",
                                 "UpdateHubContentReference needs MinVersion to update.")
        parse_version(params["MinVersion"], "MinVersion")
        row = self._row(hub, name)
        current = read_reference(row)
        if current is None:
            raise svc.no_content(hub, REFERENCE_TYPE, name, None)
        updated = msgspec.structs.replace(current, MinVersion=params["MinVersion"])
        try:
            svc.repo.update_content(hub, REFERENCE_TYPE, name, REFERENCE_VERSION,
                                    {"document": documents.encode(updated)})
        except (repo_errors.HubNotFound, repo_errors.ContentNotFound):
            raise svc.no_content(hub, REFERENCE_TYPE, name, None) from None
        return self._arns(hub, name)

    def delete(self, params: dict) -> dict:
        svc = self.service
        self._require_reference_type(params, "DeleteHubContentReference")
        hub = svc.hub_name_of(params["HubName"])
        name = params["HubContentName"]
        self._row(hub, name)
        try:
            svc.repo.delete_content(hub, REFERENCE_TYPE, name, REFERENCE_VERSION)
        except (repo_errors.HubNotFound, repo_errors.ContentNotFound):
            raise svc.no_content(hub, REFERENCE_TYPE, name, None) from None
        return {}

    def _row(self, hub: str, name: str) -> Any:
        svc = self.service
        try:
            row = svc.repo.get_content(hub, REFERENCE_TYPE, name, REFERENCE_VERSION)
        except repo_errors.HubNotFound:
            raise svc.no_hub(hub) from None
        if row is None:
            raise svc.no_content(hub, REFERENCE_TYPE, name, None)
        return row


__all__ = ["REFERENCE_TYPE", "HubContentReferences", "read_reference"]
