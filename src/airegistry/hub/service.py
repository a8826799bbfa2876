"""The hub service: hubs, hub content, versions, status machine and listing semantics.

Every method takes the validated parameters of one SageMaker operation (PascalCase
keys, datetimes already decoded by the wire layer) and returns that operation's output
dict. Errors are ``OperationError`` with AWS codes, so the in-process client and the
HTTP server report them identically. Rows come from ``storage.metadata.HubRepository``;
no SQL lives here.

Version uniqueness is the database's job (a unique constraint on hub, type, name and
the three version numbers), never a read-then-write check: two processes importing
the same version at once get exactly one winner and one ``ResourceInUse``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

import msgspec
from sqlalchemy.engine import Row

from airegistry.air_constants import DATASET_HUB_CONTENT_TYPE, EVALUATOR_HUB_CONTENT_TYPE
from airegistry.hub import documents
from airegistry.hub.botocore_model import OperationError
from airegistry.hub.pages import PageTokens, filter_fingerprint
from airegistry.hub.presign import ArtifactUrls
from airegistry.hub.references import HubContentReferences, read_reference
from airegistry.hub.tags import HubTags
from airegistry.hub.versions import format_version, parse_version, to_epoch
from airegistry.storage.metadata import hubs as repo_errors
from airegistry.storage.metadata.hubs import ContentFilter, HubFilter, HubRepository

Handler = Callable[[dict], dict]
log = logging.getLogger(__name__)

_HUB_ARN_RE = re.compile(r"^arn:[a-z0-9-.]{1,63}:sagemaker:[\w-]+:(\d{12}|aws):hub/(.+)$")

# Content types whose import runs a job; everything else is available at once.
JOB_KIND_DATASET = "import_dataset"
JOB_KIND_EVALUATOR = "import_evaluator"

STATUS_IMPORTING = "Importing"
STATUS_AVAILABLE = "Available"
STATUS_IMPORT_FAILED = "ImportFailed"
MAX_FAILURE_REASON = 1024
MAX_MARKDOWN = 170_391

_decode_json = msgspec.json.decode


def import_result_values(status: str, failure_reason: str | None = None,
                         stats: dict[str, Any] | None = None,
                         markdown: str | None = None) -> dict[str, Any]:
    """How an import's outcome is written on its version (limits of the service model)."""
    values: dict[str, Any] = {
        "status": status,
        "failure_reason": failure_reason[:MAX_FAILURE_REASON] if failure_reason else None,
    }
    if stats is not None:
        values["stats"] = json.dumps(stats)
    if markdown is not None:
        values["markdown"] = markdown[:MAX_MARKDOWN]
    return values


class HubService:
    """Business rules of the hub operations, over the hub repository."""

    def __init__(
        self,
        repository: HubRepository,
        *,
        account_id: str,
        region: str,
        token_secret: bytes,
        max_queued_imports: int = 1000,
        on_job_enqueued: Callable[[], None] | None = None,
        on_content_deleted: Callable[[str, str], None] | None = None,
        artifacts: ArtifactUrls | None = None,
    ) -> None:
        self.repo = repository
        self.tags = HubTags(repository, account_id=account_id, region=region)
        self.account_id = account_id
        self.region = region
        self._tokens = PageTokens(token_secret)
        self.max_queued_imports = max_queued_imports
        self.on_job_enqueued = on_job_enqueued
        self.on_content_deleted = on_content_deleted
        self.artifacts = artifacts
        self.references = HubContentReferences(self)

    # -- wiring ---------------------------------------------------------------------------

    def handlers(self) -> dict[str, Handler]:
        return {
            "CreateHub": self.create_hub,
            "DescribeHub": self.describe_hub,
            "ListHubs": self.list_hubs,
            "UpdateHub": self.update_hub,
            "DeleteHub": self.delete_hub,
            "ImportHubContent": self.import_hub_content,
            "DescribeHubContent": self.describe_hub_content,
            "ListHubContents": self.list_hub_contents,
            "ListHubContentVersions": self.list_hub_content_versions,
            "UpdateHubContent": self.update_hub_content,
            "DeleteHubContent": self.delete_hub_content,
            "CreateHubContentReference": self.references.create,
            "UpdateHubContentReference": self.references.update,
            "DeleteHubContentReference": self.references.delete,
            "CreateHubContentPresignedUrls": self.create_hub_content_presigned_urls,
            "AddTags": self.tags.add_tags,
            "ListTags": self.tags.list_tags,
            "DeleteTags": self.tags.delete_tags,
        }

    # -- ARNs and errors ----------------------------------------------------------------------

    def hub_arn(self, hub: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:hub/{hub}"

    def content_arn(self, hub: str, content_type: str, name: str, version: str) -> str:
        return (
            f"arn:aws:sagemaker:{self.region}:{self.account_id}:hub-content/"
            f"{hub}/{content_type}/{name}/{version}"
        )

    def hub_name_of(self, value: str) -> str:
        match = _HUB_ARN_RE.match(value)
        return match[2] if match else value

    @staticmethod
    def no_hub(name: str) -> OperationError:
        return OperationError("ResourceNotFound", f"Hub {name} does not exist.")

    @staticmethod
    def no_content(hub: str, content_type: str, name: str, version: str | None) -> OperationError:
        what = f"{content_type} {name}" + (f" version {version}" if version else "")
        return OperationError("ResourceNotFound", f"{what} does not exist in hub {hub}.")

    # -- hubs -------------------------------------------------------------------------------

    def create_hub(self, params: dict) -> dict:
        name = params["HubName"]
        try:
            self.repo.insert_hub(
                name=name,
                display_name=params.get("HubDisplayName"),
                description=params.get("HubDescription"),
                search_keywords=json.dumps(params.get("HubSearchKeywords", [])),
                tags=json.dumps(params.get("Tags", [])),
                s3_output_path=(params.get("S3StorageConfig") or {}).get("S3OutputPath"),
            )
        except repo_errors.HubExists:
            raise OperationError("ResourceInUse", f"Hub {name} already exists.") from None
        return {"HubArn": self.hub_arn(name)}

    def ensure_hub(self, name: str, description: str) -> None:
        """Create the hub unless it exists; safe when several processes race to do it."""
        if self.repo.get_hub(name) is not None:
            return
        try:
            self.create_hub({"HubName": name, "HubDescription": description})
        except OperationError as exc:
            if exc.code != "ResourceInUse":
                raise

    def _hub_output(self, row: Row) -> dict:
        out: dict[str, Any] = {
            "HubName": row.name,
            "HubArn": self.hub_arn(row.name),
            "HubDisplayName": row.display_name,
            "HubDescription": row.description,
            "HubSearchKeywords": json.loads(row.search_keywords),
            "HubStatus": row.status,
            "FailureReason": row.failure_reason,
            "CreationTime": row.created_at,  # epoch seconds; the wire encodes per shape
            "LastModifiedTime": row.modified_at,
        }
        if row.s3_output_path:
            out["S3StorageConfig"] = {"S3OutputPath": row.s3_output_path}
        return out

    def describe_hub(self, params: dict) -> dict:
        name = self.hub_name_of(params["HubName"])
        row = self.repo.get_hub(name)
        if row is None:
            raise self.no_hub(name)
        return self._hub_output(row)

    def list_hubs(self, params: dict) -> dict:
        filters = HubFilter(
            name_contains=params.get("NameContains"),
            created_before=to_epoch(params.get("CreationTimeBefore")),
            created_after=to_epoch(params.get("CreationTimeAfter")),
            modified_before=to_epoch(params.get("LastModifiedTimeBefore")),
            modified_after=to_epoch(params.get("LastModifiedTimeAfter")),
        )
        scope = {"op": "ListHubs", "f": filter_fingerprint(params), "h": None}
        rows, last = self._paged(scope, params, lambda after: self.repo.page_hubs(
            filters, params.get("SortBy", "CreationTime"),
            params.get("SortOrder", "Descending") == "Descending",
            params.get("MaxResults", 100), after))
        summaries = [
            {k: v for k, v in self._hub_output(row).items()
             if k not in ("FailureReason", "S3StorageConfig")}
            for row in rows
        ]
        return {"HubSummaries": summaries, "NextToken": self._tokens.issue(scope, last)}

    def update_hub(self, params: dict) -> dict:
        name = self.hub_name_of(params["HubName"])
        values: dict[str, Any] = {}
        if "HubDescription" in params:
            values["description"] = params["HubDescription"]
        if "HubDisplayName" in params:
            values["display_name"] = params["HubDisplayName"]
        if "HubSearchKeywords" in params:
            values["search_keywords"] = json.dumps(params["HubSearchKeywords"])
        try:
            self.repo.update_hub(name, **values)
        except repo_errors.HubNotFound:
            raise self.no_hub(name) from None
        return {"HubArn": self.hub_arn(name)}

    def delete_hub(self, params: dict) -> dict:
        name = self.hub_name_of(params["HubName"])
        try:
            self.repo.delete_hub(name)
        except repo_errors.HubNotFound:
            raise self.no_hub(name) from None
        except repo_errors.HubNotEmpty as exc:
            raise OperationError(
                "ResourceInUse",
                f"Hub {name} still holds {exc.count} content version(s); delete them first.",
            ) from None
        return {}

    # -- hub content --------------------------------------------------------------------

    def import_hub_content(self, params: dict) -> dict:
        hub = self.hub_name_of(params["HubName"])
        content_type = params["HubContentType"]
        name = params["HubContentName"]
        parse_version(params["DocumentSchemaVersion"], "DocumentSchemaVersion")
        document = params["HubContentDocument"]
        keywords = list(params.get("HubContentSearchKeywords", []))
        if content_type == documents.MODEL_REFERENCE_CONTENT_TYPE:
            raise OperationError(
                "ValidationException",
                "A ModelReference is added with CreateHubContentReference, not ImportHubContent.")
        try:
            documents.check_document(content_type, document)
            job_kind = self._job_kind(content_type, document)
            owned = documents.owned_object(content_type, document, keywords) or (None, None)
        except documents.DocumentError as exc:
            raise OperationError("ValidationException", str(exc)) from None
        version = parse_version(params["HubContentVersion"]) if "HubContentVersion" in params else None
        values = {
            "document_schema_version": params["DocumentSchemaVersion"],
            "display_name": params.get("HubContentDisplayName"),
            "description": params.get("HubContentDescription"),
            "markdown": params.get("HubContentMarkdown"),
            "document": document,
            "search_keywords": json.dumps(keywords),
            "tags": json.dumps(params.get("Tags", [])),
            "support_status": params.get("SupportStatus"),
            "status": STATUS_IMPORTING if job_kind else STATUS_AVAILABLE,
            "owned_bucket": owned[0],
            "owned_key": owned[1],
        }
        try:
            version = self.repo.insert_content(hub, content_type, name, version, values,
                                               job_kind=job_kind,
                                               max_queued=self.max_queued_imports)
        except repo_errors.HubNotFound:
            raise self.no_hub(hub) from None
        except repo_errors.QueueFull as exc:
            raise OperationError(
                "ResourceLimitExceeded",
                f"Hub {hub} already has {exc.active} imports in progress or queued "
                f"(limit {self.max_queued_imports}); wait for some to finish and retry.",
            ) from None
        except repo_errors.VersionExists as exc:
            raise OperationError(
                "ResourceInUse",
                f"{content_type} {name} version {format_version(exc.args[0])} already exists "
                f"in hub {hub}.",
            ) from None
        if job_kind and self.on_job_enqueued:
            self.on_job_enqueued()
        return {
            "HubArn": self.hub_arn(hub),
            "HubContentArn": self.content_arn(hub, content_type, name, format_version(version)),
        }

    @staticmethod
    def _job_kind(content_type: str, document: str) -> str | None:
        if content_type == DATASET_HUB_CONTENT_TYPE:
            return JOB_KIND_DATASET
        if content_type == EVALUATOR_HUB_CONTENT_TYPE and \
                documents.parse_json_document(document).is_evaluator:
            return JOB_KIND_EVALUATOR
        return None

    def _version(self, row: Row) -> str:
        return format_version((row.v_major, row.v_minor, row.v_patch))

    def _summary(self, row: Row) -> dict:
        """The fields a list shows (HubContentInfo); describe adds the rest."""
        version = self._version(row)
        reference = read_reference(row)
        return {
            "SageMakerPublicHubContentArn": reference.SageMakerPublicHubContentArn
            if reference else None,
            "HubContentName": row.name,
            "HubContentArn": self.content_arn(row.hub_name, row.content_type, row.name, version),
            "HubContentVersion": version,
            "HubContentType": row.content_type,
            "DocumentSchemaVersion": row.document_schema_version,
            "HubContentDisplayName": row.display_name,
            "HubContentDescription": row.description,
            "SupportStatus": row.support_status,
            "HubContentSearchKeywords": _decode_json(row.search_keywords),
            "HubContentStatus": row.status,
            "CreationTime": row.created_at,  # epoch seconds; the wire encodes per shape
        }

    def _content_output(self, row: Row) -> dict:
        dependencies: list[dict] = []
        if row.content_type == DATASET_HUB_CONTENT_TYPE:
            try:
                deps = documents.parse_dataset(row.document).dependencies()
            except documents.DocumentError:  # stored before documents were typed on import
                log.warning("hub content %s/%s has an unreadable document", row.hub_name, row.name)
                deps = []
            dependencies = [msgspec.to_builtins(d) for d in deps]
        reference = read_reference(row)
        return {
            **self._summary(row),
            "ReferenceMinVersion": (reference.MinVersion or None) if reference else None,
            "HubName": row.hub_name,
            "HubArn": self.hub_arn(row.hub_name),
            "HubContentMarkdown": row.markdown,
            "HubContentDocument": row.document,
            "HubContentDependencies": dependencies,
            "FailureReason": row.failure_reason,
            "LastModifiedTime": row.modified_at,
        }

    def _content_row(self, params: dict) -> Row:
        """The version ``params`` name (the latest without HubContentVersion)."""
        hub = self.hub_name_of(params["HubName"])
        content_type, name = params["HubContentType"], params["HubContentName"]
        version = params.get("HubContentVersion")
        try:
            row = self.repo.get_content(hub, content_type, name,
                                        parse_version(version) if version is not None else None)
        except repo_errors.HubNotFound:
            raise self.no_hub(hub) from None
        if row is None:
            raise self.no_content(hub, content_type, name, version)
        return row

    def describe_hub_content(self, params: dict) -> dict:
        return self._content_output(self._content_row(params))

    def create_hub_content_presigned_urls(self, params: dict) -> dict:
        if self.artifacts is None:
            raise OperationError("ValidationException",
                                 "This registry has no object store to sign URLs for.")
        row = self._content_row(params)
        return self.artifacts.presigned_urls(row, self._version(row), params, self._tokens)

    def _content_filter(self, params: dict) -> ContentFilter:
        return ContentFilter(
            name_contains=params.get("NameContains"),
            created_before=to_epoch(params.get("CreationTimeBefore")),
            created_after=to_epoch(params.get("CreationTimeAfter")),
            min_version=parse_version(params["MinVersion"], "MinVersion")
            if params.get("MinVersion") else None,
        )

    def _paged(self, scope: dict, params: dict, fetch: Callable[[Any], tuple[list[Row], Any]]
               ) -> tuple[list[Row], Any]:
        after = self._tokens.position(params, scope)
        try:
            return fetch(after)
        except ValueError:  # a position that does not fit this listing's sort key
            raise OperationError("ValidationException", "The NextToken is not valid.") from None
        except repo_errors.HubNotFound as exc:
            raise self.no_hub(exc.args[0]) from None

    def list_hub_contents(self, params: dict) -> dict:
        hub = self.hub_name_of(params["HubName"])
        content_type = params["HubContentType"]
        filters = self._content_filter(params)
        scope = {"op": "ListHubContents", "t": content_type, "f": filter_fingerprint(params),
                 "h": hub}
        rows, last = self._paged(scope, params, lambda after: self.repo.page_contents(
            hub, content_type, filters, name=None, latest_only=True,
            sort_by=params.get("SortBy", "CreationTime"),
            descending=params.get("SortOrder", "Descending") == "Descending",
            limit=params.get("MaxResults", 100), after=after, keep=self._schema_filter(params)))
        return {"HubContentSummaries": [self._summary(r) for r in rows],
                "NextToken": self._tokens.issue(scope, last)}

    def list_hub_content_versions(self, params: dict) -> dict:
        hub = self.hub_name_of(params["HubName"])
        content_type = params["HubContentType"]
        name = params["HubContentName"]
        filters = self._content_filter(params)
        if self.repo.get_hub(hub) is None:
            raise self.no_hub(hub)
        scope = {"op": "ListHubContentVersions", "t": content_type, "n": name,
                 "f": filter_fingerprint(params), "h": hub}
        # Newest version first unless told otherwise: what "list versions" means to a person.
        rows, last = self._paged(scope, params, lambda after: self.repo.page_contents(
            hub, content_type, filters, name=name, latest_only=False,
            sort_by=params.get("SortBy"),
            descending=params.get("SortOrder", "Descending") == "Descending",
            limit=params.get("MaxResults", 100), after=after, keep=self._schema_filter(params)))
        return {"HubContentSummaries": [self._summary(r) for r in rows],
                "NextToken": self._tokens.issue(scope, last)}

    @staticmethod
    def _schema_filter(params: dict) -> Callable[[Row], bool] | None:
        if not params.get("MaxSchemaVersion"):
            return None
        limit = parse_version(params["MaxSchemaVersion"], "MaxSchemaVersion")

        def keep(row: Row) -> bool:
            try:
                return parse_version(row.document_schema_version) <= limit
            except OperationError:
                return False

        return keep

    def update_hub_content(self, params: dict) -> dict:
        hub = self.hub_name_of(params["HubName"])
        content_type, name = params["HubContentType"], params["HubContentName"]
        version = params["HubContentVersion"]
        mapping = {
            "HubContentDisplayName": "display_name",
            "HubContentDescription": "description",
            "HubContentMarkdown": "markdown",
            "SupportStatus": "support_status",
        }
        values: dict[str, Any] = {mapping[k]: params[k] for k in mapping if k in params}
        if "HubContentSearchKeywords" in params:
            values["search_keywords"] = json.dumps(params["HubContentSearchKeywords"])
        if not values:
            raise OperationError(
                "ValidationException",
                "UpdateHubContent needs at least one of HubContentDisplayName, "
                "HubContentDescription, HubContentMarkdown, HubContentSearchKeywords, SupportStatus.",
            )
        try:
            row = self.repo.update_content(hub, content_type, name, parse_version(version), values)
        except repo_errors.HubNotFound:
            raise self.no_hub(hub) from None
        except repo_errors.ContentNotFound:
            raise self.no_content(hub, content_type, name, version) from None
        return {
            "HubArn": self.hub_arn(hub),
            "HubContentArn": self.content_arn(hub, content_type, name, self._version(row)),
        }

    def delete_hub_content(self, params: dict) -> dict:
        hub = self.hub_name_of(params["HubName"])
        content_type, name = params["HubContentType"], params["HubContentName"]
        version = params["HubContentVersion"]
        try:
            _, orphan = self.repo.delete_content(hub, content_type, name, parse_version(version))
        except repo_errors.HubNotFound:
            raise self.no_hub(hub) from None
        except repo_errors.ContentNotFound:
            raise self.no_content(hub, content_type, name, version) from None
        except repo_errors.StillImporting as exc:
            raise OperationError(
                "ResourceInUse",
                f"{content_type} {name} version {self._version(exc.args[0])} is still importing; "
                "wait for the import to finish, then delete it.",
            ) from None
        if orphan is not None and self.on_content_deleted:
            self.on_content_deleted(*orphan)
        return {}


__all__ = [
    "HubService",
    "format_version",
    "import_result_values",
    "parse_version",
]
