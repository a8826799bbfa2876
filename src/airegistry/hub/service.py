"""The hub service: hubs, hub content, versions, status machine and listing semantics.

Every method takes the validated parameters of one SageMaker operation (PascalCase
keys, datetimes already decoded by the wire layer) and returns that operation's output
dict. Errors are ``OperationError`` with AWS codes, so the in-process client and the
HTTP server report them identically.

Version uniqueness is the database's job (a unique constraint on hub, type, name and
the three version numbers), never a read-then-write check: two processes importing
the same version at once get exactly one winner and one ``ResourceInUse``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

import msgspec
from sqlalchemy import bindparam, delete, exists, func, insert, select, tuple_, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from airegistry.hub.model import OperationError
from airegistry.storage.metadata import Database, hub_contents, hubs, jobs, now

Handler = Callable[[dict], dict]

_VERSION_RE = re.compile(r"^(\d{1,4})\.(\d{1,4})\.(\d{1,4})$")
_HUB_ARN_RE = re.compile(r"^arn:[a-z0-9-.]{1,63}:sagemaker:[\w-]+:(\d{12}|aws):hub/(.+)$")

# Content types whose import runs a job; everything else is available at once.
JOB_KIND_DATASET = "import_dataset"
JOB_KIND_EVALUATOR = "import_evaluator"

STATUS_IMPORTING = "Importing"
STATUS_AVAILABLE = "Available"
STATUS_IMPORT_FAILED = "ImportFailed"

ACTIVE_JOB_STATES = ("queued", "running")

# Built once: deriving an alias's column collection costs more than running the query.
_NEWER = hub_contents.alias("newer")
# The hot reads are built once with bind parameters: constructing a statement costs
# several times what SQLite needs to answer it.
_HUB_BY_NAME = select(hubs).where(hubs.c.name == bindparam("hub"))
_CONTENT_OF_NAME = (
    hub_contents.c.hub_name == bindparam("hub"),
    hub_contents.c.content_type == bindparam("ctype"),
    hub_contents.c.name == bindparam("name"),
)
_CONTENT_VERSION = select(hub_contents).where(
    *_CONTENT_OF_NAME,
    hub_contents.c.v_major == bindparam("major"),
    hub_contents.c.v_minor == bindparam("minor"),
    hub_contents.c.v_patch == bindparam("patch"),
)
_CONTENT_LATEST = (
    select(hub_contents)
    .where(*_CONTENT_OF_NAME)
    .order_by(
        hub_contents.c.v_major.desc(), hub_contents.c.v_minor.desc(), hub_contents.c.v_patch.desc()
    )
    .limit(1)
)
_decode_json = msgspec.json.decode


def parse_version(value: str, field: str = "HubContentVersion") -> tuple[int, int, int]:
    """Versions are compared numerically; the model's pattern lets any character separate them."""
    match = _VERSION_RE.match(value)
    if not match:
        raise OperationError(
            "ValidationException",
            f"Value '{value}' at '{field}' is not a version of the form MAJOR.MINOR.PATCH "
            "(for example 1.0.0)",
        )
    return int(match[1]), int(match[2]), int(match[3])


def format_version(parts: tuple[int, int, int]) -> str:
    return f"{parts[0]}.{parts[1]}.{parts[2]}"


def to_epoch(value: datetime) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.timestamp()


class HubService:
    """Business rules of the hub operations, over the metadata store."""

    def __init__(
        self,
        db: Database,
        *,
        account_id: str,
        region: str,
        token_secret: bytes,
        max_queued_imports: int = 1000,
        on_job_enqueued: Callable[[], None] | None = None,
        on_content_deleted: Callable[[str | None, str | None], None] | None = None,
    ) -> None:
        self.db = db
        self.account_id = account_id
        self.region = region
        self._token_secret = token_secret
        self.max_queued_imports = max_queued_imports
        self.on_job_enqueued = on_job_enqueued
        self.on_content_deleted = on_content_deleted

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
            "AddTags": self.add_tags,
            "ListTags": self.list_tags,
            "DeleteTags": self.delete_tags,
        }

    # -- ARNs -------------------------------------------------------------------------------

    def hub_arn(self, hub: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{self.account_id}:hub/{hub}"

    def content_arn(self, hub: str, content_type: str, name: str, version: str) -> str:
        return (
            f"arn:aws:sagemaker:{self.region}:{self.account_id}:hub-content/"
            f"{hub}/{content_type}/{name}/{version}"
        )

    def _hub_name(self, value: str) -> str:
        match = _HUB_ARN_RE.match(value)
        return match[2] if match else value

    # -- hubs -------------------------------------------------------------------------------

    def _require_hub(self, conn: Connection, name: str) -> Row:
        row = conn.execute(_HUB_BY_NAME, {"hub": name}).first()
        if row is None:
            raise OperationError("ResourceNotFound", f"Hub {name} does not exist.")
        return row

    def create_hub(self, params: dict) -> dict:
        name = params["HubName"]
        ts = now()
        try:
            with self.db.write() as conn:
                conn.execute(
                    insert(hubs).values(
                        name=name,
                        display_name=params.get("HubDisplayName"),
                        description=params.get("HubDescription"),
                        search_keywords=json.dumps(params.get("HubSearchKeywords", [])),
                        tags=json.dumps(params.get("Tags", [])),
                        s3_output_path=(params.get("S3StorageConfig") or {}).get("S3OutputPath"),
                        status="InService",
                        created_at=ts,
                        modified_at=ts,
                    )
                )
        except IntegrityError:
            raise OperationError("ResourceInUse", f"Hub {name} already exists.") from None
        return {"HubArn": self.hub_arn(name)}

    def ensure_hub(self, name: str, description: str) -> None:
        """Create the hub unless it exists; safe when several processes race to do it."""
        with self.db.read() as conn:
            if conn.execute(select(hubs.c.name).where(hubs.c.name == name)).first():
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
        with self.db.read() as conn:
            return self._hub_output(self._require_hub(conn, self._hub_name(params["HubName"])))

    def list_hubs(self, params: dict) -> dict:
        sort_by = params.get("SortBy", "CreationTime")
        column = {
            "HubName": hubs.c.name,
            "CreationTime": hubs.c.created_at,
            "HubStatus": hubs.c.status,
            "AccountIdOwner": hubs.c.name,
        }[sort_by]
        descending = params.get("SortOrder", "Descending") == "Descending"
        query = select(hubs)
        if params.get("NameContains"):
            query = query.where(hubs.c.name.contains(params["NameContains"], autoescape=True))
        for key, col, op in (
            ("CreationTimeBefore", hubs.c.created_at, "<"),
            ("CreationTimeAfter", hubs.c.created_at, ">"),
            ("LastModifiedTimeBefore", hubs.c.modified_at, "<"),
            ("LastModifiedTimeAfter", hubs.c.modified_at, ">"),
        ):
            if params.get(key) is not None:
                bound = to_epoch(params[key])
                query = query.where(col < bound if op == "<" else col > bound)
        scope = {"op": "ListHubs", "f": self._filter_fingerprint(params)}
        rows, token = self._page(query, column, hubs.c.name, None, descending, params, scope)
        summaries = [
            {
                k: v
                for k, v in self._hub_output(row).items()
                if k not in ("FailureReason", "S3StorageConfig")
            }
            for row in rows
        ]
        return {"HubSummaries": summaries, "NextToken": token}

    def update_hub(self, params: dict) -> dict:
        name = self._hub_name(params["HubName"])
        values: dict[str, Any] = {"modified_at": now()}
        if "HubDescription" in params:
            values["description"] = params["HubDescription"]
        if "HubDisplayName" in params:
            values["display_name"] = params["HubDisplayName"]
        if "HubSearchKeywords" in params:
            values["search_keywords"] = json.dumps(params["HubSearchKeywords"])
        with self.db.write() as conn:
            self._require_hub(conn, name)
            conn.execute(update(hubs).where(hubs.c.name == name).values(**values))
        return {"HubArn": self.hub_arn(name)}

    def delete_hub(self, params: dict) -> dict:
        name = self._hub_name(params["HubName"])
        with self.db.write() as conn:
            self._require_hub(conn, name)
            count = conn.execute(
                select(func.count()).select_from(hub_contents).where(hub_contents.c.hub_name == name)
            ).scalar_one()
            if count:
                raise OperationError(
                    "ResourceInUse",
                    f"Hub {name} still holds {count} content version(s); delete them first.",
                )
            conn.execute(delete(hubs).where(hubs.c.name == name))
        return {}

    # -- hub content --------------------------------------------------------------------

    def import_hub_content(self, params: dict) -> dict:
        hub = self._hub_name(params["HubName"])
        content_type = params["HubContentType"]
        name = params["HubContentName"]
        parse_version(params["DocumentSchemaVersion"], "DocumentSchemaVersion")
        document = params["HubContentDocument"]
        job_kind = self._job_kind(content_type, document)
        keywords = list(params.get("HubContentSearchKeywords", []))
        ts = now()
        status = STATUS_IMPORTING if job_kind else STATUS_AVAILABLE
        with self.db.write() as conn:
            self._require_hub(conn, hub)
            if "HubContentVersion" in params:
                version = parse_version(params["HubContentVersion"])
            else:
                version = self._next_major(conn, hub, content_type, name)
            if job_kind:
                active = conn.execute(
                    select(func.count())
                    .select_from(jobs)
                    .where(jobs.c.hub_name == hub, jobs.c.state.in_(ACTIVE_JOB_STATES))
                ).scalar_one()
                if active >= self.max_queued_imports:
                    raise OperationError(
                        "ResourceLimitExceeded",
                        f"Hub {hub} already has {active} imports in progress or queued "
                        f"(limit {self.max_queued_imports}); wait for some to finish and retry.",
                    )
            owned = self._owned_object(content_type, document, keywords)
            try:
                with conn.begin_nested():
                    result = conn.execute(
                        insert(hub_contents).values(
                            hub_name=hub,
                            content_type=content_type,
                            name=name,
                            v_major=version[0],
                            v_minor=version[1],
                            v_patch=version[2],
                            document_schema_version=params["DocumentSchemaVersion"],
                            display_name=params.get("HubContentDisplayName"),
                            description=params.get("HubContentDescription"),
                            markdown=params.get("HubContentMarkdown"),
                            document=document,
                            search_keywords=json.dumps(keywords),
                            tags=json.dumps(params.get("Tags", [])),
                            support_status=params.get("SupportStatus"),
                            status=status,
                            owned_bucket=owned[0],
                            owned_key=owned[1],
                            created_at=ts,
                            modified_at=ts,
                        )
                    )
            except IntegrityError:
                raise OperationError(
                    "ResourceInUse",
                    f"{content_type} {name} version {format_version(version)} already exists "
                    f"in hub {hub}.",
                ) from None
            if job_kind:
                conn.execute(
                    insert(jobs).values(
                        hub_name=hub,
                        content_id=result.inserted_primary_key[0],
                        kind=job_kind,
                        state="queued",
                        attempts=0,
                        created_at=ts,
                    )
                )
        if job_kind and self.on_job_enqueued:
            self.on_job_enqueued()
        return {
            "HubArn": self.hub_arn(hub),
            "HubContentArn": self.content_arn(hub, content_type, name, format_version(version)),
        }

    @staticmethod
    def _job_kind(content_type: str, document: str) -> str | None:
        if content_type == "DataSet":
            doc = _json_object(document, "HubContentDocument")
            for field in ("DatasetS3Bucket", "DatasetS3Prefix"):
                if not isinstance(doc.get(field), str) or not doc[field]:
                    raise OperationError(
                        "ValidationException",
                        f"A DataSet HubContentDocument needs a non-empty string field {field}.",
                    )
            return JOB_KIND_DATASET
        if content_type == "JsonDoc":
            doc = _json_object(document, "HubContentDocument")
            if doc.get("SubType") == "AWS/Evaluator":
                content = doc.get("JsonContent")
                parsed = _json_object(content, "HubContentDocument.JsonContent") if isinstance(
                    content, str
                ) else None
                if not parsed or not isinstance(parsed.get("Reference"), str):
                    raise OperationError(
                        "ValidationException",
                        "An evaluator JsonDoc needs JsonContent, a JSON string with a "
                        "string Reference.",
                    )
                return JOB_KIND_EVALUATOR
        return None

    @staticmethod
    def _owned_object(
        content_type: str, document: str, keywords: list[str]
    ) -> tuple[str | None, str | None]:
        """Objects the registry uploaded itself are garbage-collected with their last version."""
        if "@owned:registry" not in keywords:
            return None, None
        doc = json.loads(document)
        if content_type == "DataSet":
            return doc["DatasetS3Bucket"], doc["DatasetS3Prefix"]
        reference = json.loads(doc.get("JsonContent", "{}")).get("ObjectUri") or ""
        if reference.startswith("s3://"):
            bucket, _, key = reference[5:].partition("/")
            return bucket, key
        return None, None

    def _next_major(
        self, conn: Connection, hub: str, content_type: str, name: str
    ) -> tuple[int, int, int]:
        top = conn.execute(
            select(func.max(hub_contents.c.v_major)).where(
                hub_contents.c.hub_name == hub,
                hub_contents.c.content_type == content_type,
                hub_contents.c.name == name,
            )
        ).scalar()
        return ((top or 0) + 1, 0, 0)

    def _content_row(
        self, conn: Connection, hub: str, content_type: str, name: str, version: str | None
    ) -> Row:
        args: dict[str, Any] = {"hub": hub, "ctype": content_type, "name": name}
        if version is not None:
            args["major"], args["minor"], args["patch"] = parse_version(version)
            row = conn.execute(_CONTENT_VERSION, args).first()
        else:
            row = conn.execute(_CONTENT_LATEST, args).first()
        if row is None:
            what = f"{content_type} {name}" + (f" version {version}" if version else "")
            raise OperationError("ResourceNotFound", f"{what} does not exist in hub {hub}.")
        return row

    def _version(self, row: Row) -> str:
        return format_version((row.v_major, row.v_minor, row.v_patch))

    def _summary(self, row: Row) -> dict:
        """The fields a list shows (HubContentInfo); describe adds the rest."""
        version = self._version(row)
        return {
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
        if row.content_type == "DataSet":
            deps = json.loads(row.document).get("Dependencies") or []
            dependencies = [d for d in deps if isinstance(d, dict)]
        return {
            **self._summary(row),
            "HubName": row.hub_name,
            "HubArn": self.hub_arn(row.hub_name),
            "HubContentMarkdown": row.markdown,
            "HubContentDocument": row.document,
            "HubContentDependencies": dependencies,
            "FailureReason": row.failure_reason,
            "LastModifiedTime": row.modified_at,
        }

    def describe_hub_content(self, params: dict) -> dict:
        hub = self._hub_name(params["HubName"])
        with self.db.read() as conn:
            try:
                row = self._content_row(
                    conn, hub, params["HubContentType"], params["HubContentName"],
                    params.get("HubContentVersion"),
                )
            except OperationError:
                self._require_hub(conn, hub)  # a missing hub is the better error
                raise
            return self._content_output(row)

    def _content_filters(self, query: Any, params: dict) -> Any:
        if params.get("NameContains"):
            query = query.where(
                hub_contents.c.name.contains(params["NameContains"], autoescape=True)
            )
        if params.get("CreationTimeBefore") is not None:
            query = query.where(hub_contents.c.created_at < to_epoch(params["CreationTimeBefore"]))
        if params.get("CreationTimeAfter") is not None:
            query = query.where(hub_contents.c.created_at > to_epoch(params["CreationTimeAfter"]))
        if params.get("MinVersion"):
            query = query.where(
                tuple_(hub_contents.c.v_major, hub_contents.c.v_minor, hub_contents.c.v_patch)
                >= tuple_(*parse_version(params["MinVersion"], "MinVersion"))
            )
        return query

    def _sort_column(self, params: dict, default: str) -> Any:
        sort_by = params.get("SortBy", default)
        return {
            "HubContentName": hub_contents.c.name,
            "CreationTime": hub_contents.c.created_at,
            "HubContentStatus": hub_contents.c.status,
        }[sort_by]

    def list_hub_contents(self, params: dict) -> dict:
        hub = self._hub_name(params["HubName"])
        content_type = params["HubContentType"]
        newer = _NEWER
        query = select(hub_contents).where(
            hub_contents.c.hub_name == hub,
            hub_contents.c.content_type == content_type,
            ~exists().where(
                newer.c.hub_name == hub_contents.c.hub_name,
                newer.c.content_type == hub_contents.c.content_type,
                newer.c.name == hub_contents.c.name,
                tuple_(newer.c.v_major, newer.c.v_minor, newer.c.v_patch)
                > tuple_(hub_contents.c.v_major, hub_contents.c.v_minor, hub_contents.c.v_patch),
            ),
        )
        query = self._content_filters(query, params)
        scope = {"op": "ListHubContents", "t": content_type, "f": self._filter_fingerprint(params)}
        rows, token = self._page(
            query,
            self._sort_column(params, "CreationTime"),
            hub_contents.c.name,
            hub,
            params.get("SortOrder", "Descending") == "Descending",
            params,
            scope,
            post_filter=self._schema_filter(params),
        )
        if not rows:
            with self.db.read() as conn:
                self._require_hub(conn, hub)
        return {"HubContentSummaries": [self._summary(r) for r in rows], "NextToken": token}

    def list_hub_content_versions(self, params: dict) -> dict:
        hub = self._hub_name(params["HubName"])
        content_type = params["HubContentType"]
        name = params["HubContentName"]
        query = select(hub_contents).where(
            hub_contents.c.hub_name == hub,
            hub_contents.c.content_type == content_type,
            hub_contents.c.name == name,
        )
        query = self._content_filters(query, params)
        with self.db.read() as conn:
            self._require_hub(conn, hub)
        scope = {
            "op": "ListHubContentVersions", "t": content_type, "n": name,
            "f": self._filter_fingerprint(params),
        }
        if "SortBy" in params:
            sort_column = self._sort_column(params, "CreationTime")
            tiebreak = hub_contents.c.id
        else:
            # Newest version first unless told otherwise: what "list versions" means to a person.
            sort_column = hub_contents.c.v_major
            tiebreak = hub_contents.c.id
        rows, token = self._page(
            query,
            sort_column,
            tiebreak,
            hub,
            params.get("SortOrder", "Descending") == "Descending",
            params,
            scope,
            post_filter=self._schema_filter(params),
            version_order="SortBy" not in params,
        )
        return {"HubContentSummaries": [self._summary(r) for r in rows], "NextToken": token}

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
        hub = self._hub_name(params["HubName"])
        content_type = params["HubContentType"]
        name = params["HubContentName"]
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
        values["modified_at"] = now()
        with self.db.write() as conn:
            self._require_hub(conn, hub)
            row = self._content_row(conn, hub, content_type, name, version)
            conn.execute(update(hub_contents).where(hub_contents.c.id == row.id).values(**values))
        return {
            "HubArn": self.hub_arn(hub),
            "HubContentArn": self.content_arn(hub, content_type, name, self._version(row)),
        }

    def delete_hub_content(self, params: dict) -> dict:
        hub = self._hub_name(params["HubName"])
        content_type = params["HubContentType"]
        name = params["HubContentName"]
        orphan: tuple[str | None, str | None] = (None, None)
        with self.db.write() as conn:
            self._require_hub(conn, hub)
            row = self._content_row(conn, hub, content_type, name, params["HubContentVersion"])
            if row.status == STATUS_IMPORTING:
                raise OperationError(
                    "ResourceInUse",
                    f"{content_type} {name} version {self._version(row)} is still importing; "
                    "wait for the import to finish, then delete it.",
                )
            conn.execute(delete(jobs).where(jobs.c.content_id == row.id))
            conn.execute(delete(hub_contents).where(hub_contents.c.id == row.id))
            if row.owned_bucket and row.owned_key:
                still_used = conn.execute(
                    select(func.count())
                    .select_from(hub_contents)
                    .where(
                        hub_contents.c.owned_bucket == row.owned_bucket,
                        hub_contents.c.owned_key == row.owned_key,
                    )
                ).scalar_one()
                if not still_used:
                    orphan = (row.owned_bucket, row.owned_key)
        if orphan[0] and self.on_content_deleted:
            self.on_content_deleted(orphan[0], orphan[1])
        return {}

    # -- tags ------------------------------------------------------------------------------

    def _tag_target(self, conn: Connection, arn: str) -> tuple[Any, Any]:
        prefix = f"arn:aws:sagemaker:{self.region}:{self.account_id}:"
        if arn.startswith(prefix + "hub/"):
            name = arn[len(prefix) + 4 :]
            self._require_hub(conn, name)
            return hubs, hubs.c.name == name
        if arn.startswith(prefix + "hub-content/"):
            parts = arn[len(prefix) + 12 :].split("/")
            if len(parts) == 4:
                row = self._content_row(conn, parts[0], parts[1], parts[2], parts[3])
                return hub_contents, hub_contents.c.id == row.id
        raise OperationError("ResourceNotFound", f"Resource {arn} does not exist.")

    def add_tags(self, params: dict) -> dict:
        with self.db.write() as conn:
            table, cond = self._tag_target(conn, params["ResourceArn"])
            current = json.loads(conn.execute(select(table.c.tags).where(cond)).scalar_one())
            merged = {t["Key"]: t.get("Value", "") for t in current}
            merged.update({t["Key"]: t.get("Value", "") for t in params["Tags"]})
            if len(merged) > 50:
                raise OperationError("ValidationException", "A resource can have at most 50 tags.")
            tags = [{"Key": k, "Value": v} for k, v in merged.items()]
            conn.execute(update(table).where(cond).values(tags=json.dumps(tags)))
        return {"Tags": params["Tags"]}

    def list_tags(self, params: dict) -> dict:
        with self.db.read() as conn:
            table, cond = self._tag_target(conn, params["ResourceArn"])
            return {"Tags": json.loads(conn.execute(select(table.c.tags).where(cond)).scalar_one())}

    def delete_tags(self, params: dict) -> dict:
        with self.db.write() as conn:
            table, cond = self._tag_target(conn, params["ResourceArn"])
            current = json.loads(conn.execute(select(table.c.tags).where(cond)).scalar_one())
            drop = set(params["TagKeys"])
            kept = [t for t in current if t["Key"] not in drop]
            conn.execute(update(table).where(cond).values(tags=json.dumps(kept)))
        return {}

    # -- import results (called by the job runner) ----------------------------------------

    def finish_import(
        self,
        content_id: int,
        *,
        status: str,
        failure_reason: str | None = None,
        stats: Mapping[str, Any] | None = None,
        markdown: str | None = None,
        conn: Connection,
    ) -> None:
        values: dict[str, Any] = {
            "status": status,
            "failure_reason": failure_reason[:1024] if failure_reason else None,
            "modified_at": now(),
        }
        if stats is not None:
            values["stats"] = json.dumps(stats)
        if markdown is not None:
            values["markdown"] = markdown[:170_391]
        conn.execute(update(hub_contents).where(hub_contents.c.id == content_id).values(**values))

    # -- pagination ------------------------------------------------------------------------

    def _filter_fingerprint(self, params: dict) -> str:
        relevant = {
            k: (v.isoformat() if isinstance(v, datetime) else v)
            for k, v in params.items()
            if k not in ("NextToken", "MaxResults")
        }
        return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:16]

    def _sign(self, payload: dict) -> str:
        body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode())
        mac = hmac.new(self._token_secret, body, hashlib.sha256).digest()[:16]
        return (body + b"." + base64.urlsafe_b64encode(mac)).decode()

    def _unsign(self, token: str, scope: dict) -> dict:
        try:
            body, _, mac = token.encode().partition(b".")
            expected = hmac.new(self._token_secret, body, hashlib.sha256).digest()[:16]
            if not hmac.compare_digest(base64.urlsafe_b64decode(mac), expected):
                raise ValueError("bad mac")
            payload = json.loads(base64.urlsafe_b64decode(body))
        except (ValueError, TypeError):
            raise OperationError("ValidationException", "The NextToken is not valid.") from None
        if payload.get("s") != scope:
            raise OperationError(
                "ValidationException",
                "The NextToken does not belong to this request (another hub, content type "
                "or set of filters).",
            )
        return payload

    def _page(
        self,
        query: Any,
        sort_column: Any,
        tiebreak: Any,
        hub: str | None,
        descending: bool,
        params: dict,
        scope: dict,
        *,
        post_filter: Callable[[Row], bool] | None = None,
        version_order: bool = False,
    ) -> tuple[list[Row], str | None]:
        """Keyset pagination: stable under concurrent inserts, and cheap on deep pages."""
        limit = params.get("MaxResults", 100)
        scope = dict(scope, h=hub)
        table = sort_column.table
        id_col = table.c.id if "id" in table.c else table.c.name
        if version_order:
            key_cols = [table.c.v_major, table.c.v_minor, table.c.v_patch, id_col]
        else:
            key_cols = [sort_column, tiebreak, id_col] if tiebreak is not id_col else [
                sort_column, id_col
            ]
        if params.get("NextToken"):
            last = self._unsign(params["NextToken"], scope)["k"]
            if len(last) != len(key_cols):
                raise OperationError("ValidationException", "The NextToken is not valid.")
            cmp = tuple_(*key_cols) < tuple_(*last) if descending else tuple_(*key_cols) > tuple_(
                *last
            )
            query = query.where(cmp)
        order = [c.desc() if descending else c.asc() for c in key_cols]
        query = query.order_by(*order)
        out: list[Row] = []
        with self.db.read() as conn:
            if post_filter is None:
                out = list(conn.execute(query.limit(limit + 1)).fetchall())
            else:
                for row in conn.execute(query):
                    if post_filter(row):
                        out.append(row)
                        if len(out) > limit:
                            break
        token = None
        if len(out) > limit:
            out = out[:limit]
            tail = out[-1]
            token = self._sign({"s": scope, "k": [getattr(tail, c.name) for c in key_cols]})
        return out, token


def _json_object(text: str, field: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise OperationError("ValidationException", f"{field} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise OperationError("ValidationException", f"{field} must be a JSON object.")
    return value


__all__ = [
    "HubService",
    "format_version",
    "parse_version",
]
