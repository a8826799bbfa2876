"""Everything the web UI reads from or does to the registry, in one place.

The pages never touch services directly; they ask this module, which talks to:

- the hub service (describe, versions, tags) and the metadata store's
  ``BrowseRepository`` (filtered, counted table pages);
- the object store, through ranged reads only (row previews, code, templates,
  downloads): no page ever loads a whole dataset;
- the SDK's ``Evaluator`` for running evaluators (``invoke`` and ``evaluate``) and the
  SDK entities for deleting versions, so the UI does exactly what code would;
- the SDK's ``TrainingJob`` (``list``, ``get``, ``metrics``, ``lineage``, ``stop``: the
  training service's operations, dead training processes reported as code would see
  them) and ``TrainedModel`` for jobs and the models they registered; a job's tags come
  from its record (``TrainingJobRepository``), as DescribeTrainingJob has none.

It returns plain view objects (dataclasses), so the templates hold no logic about where
data comes from. Everything here is blocking; the routes run it on worker threads.
"""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from collections.abc import Iterable, Iterator
from typing import Any

from botocore.exceptions import ClientError

from airegistry import keywords as kw
from airegistry.air_constants import (
    DATASET_HUB_CONTENT_TYPE,
    EVALUATOR_HUB_CONTENT_TYPE,
    EVALUATOR_SUBTYPE,
    REWARD_FUNCTION,
    REWARD_PROMPT,
)
from airegistry.hub.botocore_model import OperationError
from airegistry.session import Session
from airegistry.stats_markdown import parse_stats_markdown
from airegistry.storage.metadata import BrowseRepository
from airegistry.train.artifacts import MANIFEST, MODEL_CONTENT_TYPE, TrainedModel, record_uri
from airegistry.train.job import TrainingJob
from airegistry.ui import preview, render
from airegistry.ui.charts import Chart, histogram
from airegistry.ui.errors import BadRequest, NotFound
from airegistry.ui.stored_files import open_stored
from airegistry.ui.training import epoch, job_view, model_view
from airegistry.ui.views import (
    DatasetView,
    EvaluatorView,
    JobListItem,
    JobListPage,
    JobView,
    ListItem,
    ListPage,
    ModelView,
    Overview,
    TryResult,
    Version,
)

PAGE_SIZE = 50
JOB_PAGE_SIZE = 25
#: Bytes read from the end of a job's log for its page.
LOG_TAIL_BYTES = 64 << 10
#: Rows read to draw the text-length histograms (the import statistics hold no histogram).
HISTOGRAM_SAMPLE_ROWS = 2000
MAX_CODE_BYTES = 1 << 20
EVALUATOR_KEYWORD = f"@subtype:{EVALUATOR_SUBTYPE.lower()}"
KINDS = {"datasets": DATASET_HUB_CONTENT_TYPE, "evaluators": EVALUATOR_HUB_CONTENT_TYPE}


class ReadModel:
    """The UI's window on one registry (an embedded session over a home)."""

    def __init__(self, session: Session) -> None:
        if session.backend != "embedded":
            raise ValueError("the web UI serves a registry home (an embedded session)")
        self.session = session
        self.home = session.home
        self.browse = BrowseRepository(self.home.db)
        self._hub: str | None = None
        self._lock = threading.Lock()

    # -- basics -------------------------------------------------------------------------------

    @property
    def hub(self) -> str:
        if self._hub is None:
            with self._lock:
                if self._hub is None:
                    self._hub = self.session.ensure_hub()
        return self._hub

    def _describe(self, content_type: str, name: str, version: str | None) -> dict:
        params = {"HubName": self.hub, "HubContentType": content_type, "HubContentName": name}
        if version:
            params["HubContentVersion"] = version
        try:
            return self.home.hub.describe_hub_content(params)
        except OperationError as exc:
            if exc.code == "ResourceNotFound":
                what = "dataset" if content_type == DATASET_HUB_CONTENT_TYPE else "evaluator"
                raise NotFound(f"There is no {what} {name!r}"
                               + (f" with version {version}" if version else "") + ".") from None
            raise BadRequest(exc.message) from None

    def _versions(self, content_type: str, name: str) -> list[Version]:
        out: list[Version] = []
        token = None
        while True:
            params: dict[str, Any] = {"HubName": self.hub, "HubContentType": content_type,
                                      "HubContentName": name, "MaxResults": 100}
            if token:
                params["NextToken"] = token
            page = self.home.hub.list_hub_content_versions(params)
            out += [Version(s["HubContentVersion"], s["HubContentStatus"], s["CreationTime"])
                    for s in page["HubContentSummaries"]]
            token = page.get("NextToken")
            if not token:
                return out

    def _tags(self, arn: str) -> list[tuple[str, str]]:
        try:
            tags = self.home.hub.tags.list_tags({"ResourceArn": arn})["Tags"]
        except OperationError:
            return []
        return [(str(t.get("Key", "")), str(t.get("Value", ""))) for t in tags]

    # -- lists ----------------------------------------------------------------------------------

    def overview(self) -> Overview:
        browse = self.browse
        counts = {
            "datasets": browse.counts(self.hub, DATASET_HUB_CONTENT_TYPE),
            "evaluators": browse.counts(self.hub, EVALUATOR_HUB_CONTENT_TYPE, [EVALUATOR_KEYWORD]),
        }
        recent: list[ListItem] = []
        failed: list[ListItem] = []
        for kind, ctype, kws in (("datasets", DATASET_HUB_CONTENT_TYPE, []),
                                 ("evaluators", EVALUATOR_HUB_CONTENT_TYPE, [EVALUATOR_KEYWORD])):
            recent += [ListItem.of(r, kind) for r in browse.page(
                self.hub, ctype, keywords=kws, latest_only=False, order="created", limit=10).rows]
            failed += [ListItem.of(r, kind) for r in browse.page(
                self.hub, ctype, keywords=kws, status="ImportFailed", order="created",
                limit=10).rows]
        recent.sort(key=lambda i: i.created, reverse=True)
        failed.sort(key=lambda i: i.created, reverse=True)
        running = [j for s in ("InProgress", "Stopping") for j in self.jobs_page(status=s).items]
        failed_jobs = self.jobs_page(status="Failed", per_page=5).items
        return Overview(counts, recent[:10], failed[:10], running, failed_jobs)

    def list_page(self, kind: str, *, name: str = "", status: str = "", technique: str = "",
                  type: str = "", order: str = "created", page: int = 1,
                  per_page: int = PAGE_SIZE) -> ListPage:
        keywords: list[str] = []
        if kind == "datasets":
            if technique:
                keywords.append(f"customization_technique:{technique}")
        else:
            keywords.append(EVALUATOR_KEYWORD)
            if type:
                keywords.append(f"@evaluatortype:{type.lower()}")
        page = max(1, page)
        result = self.browse.page(self.hub, KINDS[kind], name_contains=name or None,
                                 keywords=keywords, status=status or None, order=order,
                                 offset=(page - 1) * per_page, limit=per_page)
        pages = max(1, -(-result.total // per_page))
        return ListPage([ListItem.of(r, kind) for r in result.rows], result.total, page, pages)

    def dataset_names(self, limit: int = 200) -> list[str]:
        rows = self.browse.page(self.hub, DATASET_HUB_CONTENT_TYPE,
                               status="Available", order="created", limit=limit).rows
        return [r.name for r in rows]

    # -- one dataset ----------------------------------------------------------------------------

    def dataset(self, name: str, version: str | None = None) -> DatasetView:
        d = self._describe(DATASET_HUB_CONTENT_TYPE, name, version)
        document = json.loads(d["HubContentDocument"])
        keywords = d.get("HubContentSearchKeywords") or []
        reason = d.get("FailureReason")
        bucket, key = document.get("DatasetS3Bucket", ""), document.get("DatasetS3Prefix", "")
        return DatasetView(
            name=d["HubContentName"], version=d["HubContentVersion"], arn=d["HubContentArn"],
            status=d["HubContentStatus"], description=d.get("HubContentDescription"),
            created=d["CreationTime"], modified=d.get("LastModifiedTime") or d["CreationTime"],
            technique=kw.find(keywords, "customization_technique:"),
            method=kw.find(keywords, "method:"), bucket=bucket, key=key,
            file_type=preview.file_type_of(key),
            stats=parse_stats_markdown(d.get("HubContentMarkdown")) or {},
            failure_reason=reason, failure_lines=render.failure_lines(reason),
            failure_details=render.failure_details(reason), tags=self._tags(d["HubContentArn"]),
            versions=self._versions(DATASET_HUB_CONTENT_TYPE, name),
        )

    def preview(self, ds: DatasetView, start: preview.Cursor) -> preview.PreviewPage:
        if ds.file_type is None:
            raise BadRequest(f"{ds.key} is not a file type the registry reads")
        f = open_stored(self.home.objects, ds.bucket, ds.key)
        if f.size == 0:
            return preview.PreviewPage(start=start)
        try:
            return preview.read_page(f, ds.file_type, start)
        except preview.PreviewError as exc:
            raise BadRequest(str(exc)) from None

    def length_histograms(self, ds: DatasetView) -> tuple[dict[str, Chart], int, bool]:
        """Per text field, a histogram of lengths over the first rows; (charts, rows, all?)."""
        if ds.file_type is None:
            return {}, 0, True
        lengths: dict[str, list[int]] = {}
        seen = 0
        complete = True
        try:
            f = open_stored(self.home.objects, ds.bucket, ds.key)
            for row in preview.iter_rows(f, ds.file_type):
                if seen >= HISTOGRAM_SAMPLE_ROWS:
                    complete = False
                    break
                seen += 1
                for key, n in render.text_lengths(row.value):
                    lengths.setdefault(key, []).append(n)
        except (preview.PreviewError, NotFound):
            return {}, 0, True
        charts = {k: histogram(v, title=k, lo=0, integer=True, x_label="characters")
                  for k, v in lengths.items()}
        return charts, seen, complete

    def download(self, ds: DatasetView) -> tuple[int, Iterator[bytes]]:
        f = open_stored(self.home.objects, ds.bucket, ds.key)

        def chunks() -> Iterator[bytes]:
            while True:
                chunk = f.read(preview.CHUNK)
                if not chunk:
                    return
                yield chunk

        return f.size, chunks()

    def dataset_row(self, name: str, version: str | None, number: int) -> dict[str, Any]:
        ds = self.dataset(name, version)
        if ds.file_type is None:
            raise BadRequest(f"{ds.key} is not a file type the registry reads")
        f = open_stored(self.home.objects, ds.bucket, ds.key)
        try:
            for row in preview.iter_rows(f, ds.file_type, preview.Cursor(number)):
                if row.error or not isinstance(row.value, dict):
                    raise BadRequest(f"row {number} of {name} cannot be used: {row.error or 'not an object'}")
                return row.value
        except preview.PreviewError as exc:
            raise BadRequest(str(exc)) from None
        raise NotFound(f"{name} has no row {number}.")

    def dataset_rows(self, ds: DatasetView) -> Iterator[preview.PreviewRow]:
        """Every row, streamed, each parsed whole (for evaluation)."""
        if ds.file_type is None:
            raise BadRequest(f"{ds.key} is not a file type the registry reads")
        f = open_stored(self.home.objects, ds.bucket, ds.key)
        return preview.iter_rows(f, ds.file_type, row_bytes=preview.MAX_ROW_BYTES)

    def rows_at(self, ds: DatasetView, cursors: Iterable[preview.Cursor]) -> list[preview.PreviewRow]:
        """The rows at these cursors (one short ranged read each)."""
        assert ds.file_type is not None
        f = open_stored(self.home.objects, ds.bucket, ds.key)
        out = []
        for cursor in cursors:
            out += list(_first(preview.iter_rows(f, ds.file_type, cursor)))
        return out

    # -- one evaluator --------------------------------------------------------------------------

    def evaluator(self, name: str, version: str | None = None) -> EvaluatorView:
        d = self._describe(EVALUATOR_HUB_CONTENT_TYPE, name, version)
        document = json.loads(d["HubContentDocument"])
        if document.get("SubType") != EVALUATOR_SUBTYPE:
            raise NotFound(f"There is no evaluator {name!r}.")
        content = json.loads(document.get("JsonContent") or "{}")
        keywords = d.get("HubContentSearchKeywords") or []
        view = EvaluatorView(
            name=d["HubContentName"], version=d["HubContentVersion"], arn=d["HubContentArn"],
            status=d["HubContentStatus"], description=d.get("HubContentDescription"),
            created=d["CreationTime"], modified=d.get("LastModifiedTime") or d["CreationTime"],
            type=content.get("EvaluatorType"), method=kw.find(keywords, "method:"),
            reference=content.get("Reference"), failure_reason=d.get("FailureReason"),
            versions=self._versions(EVALUATOR_HUB_CONTENT_TYPE, name),
        )
        if view.type == REWARD_PROMPT and view.reference:
            self._load_template(view)
        elif view.type == REWARD_FUNCTION and view.method == "byoc" and view.reference:
            self._load_code(view)
        elif view.type == REWARD_FUNCTION:
            view.source_note = f"The code lives in the Lambda function {view.reference}."
        return view

    def _read_small(self, uri: str, limit: int) -> bytes:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        f = open_stored(self.home.objects, bucket, key)
        if f.size > limit:
            raise BadRequest(f"{uri} is larger than {limit:,} bytes")
        return f.read(limit)

    def _load_template(self, view: EvaluatorView) -> None:
        from airegistry.runtime.templates import PromptTemplate, TemplateError

        try:
            view.template = self._read_small(view.reference or "", 4 << 20).decode("utf-8", "replace")
            view.placeholders = list(PromptTemplate(view.template).placeholders)
        except (NotFound, BadRequest, TemplateError) as exc:
            view.source_note = f"The prompt cannot be shown: {exc}"

    def _load_code(self, view: EvaluatorView) -> None:
        try:
            location = self.home.functions.get_function(FunctionName=view.reference)["Code"]["Location"]
            archive = zipfile.ZipFile(io.BytesIO(self._read_small(location, 64 << 20)))
            info = archive.getinfo("lambda_function.py")
            if info.file_size > MAX_CODE_BYTES:
                view.source_note = f"The code is {info.file_size:,} bytes; too large to show."
                return
            view.code = archive.read(info).decode("utf-8", "replace")
        except (NotFound, BadRequest, KeyError, zipfile.BadZipFile) as exc:
            view.source_note = f"The code cannot be shown: {exc}"
        except Exception as exc:  # the function service reports missing functions its own way
            view.source_note = f"The code cannot be shown: {type(exc).__name__}: {exc}"

    # -- running evaluators (through the SDK) -------------------------------------------------

    def _sdk_evaluator(self, name: str, version: str | None) -> Any:
        from airegistry.evaluator import Evaluator

        try:
            return Evaluator.get(name, self.session, version=version)
        except ClientError as exc:
            raise NotFound(exc.response.get("Error", {}).get("Message") or str(exc)) from None

    def try_evaluator(self, name: str, version: str | None, event: dict[str, Any]) -> TryResult:
        evaluator = self._sdk_evaluator(name, version)
        started = time.perf_counter()
        try:
            result = evaluator.invoke(event)
        except Exception as exc:  # every failure of user code is a result to show, not a crash
            return TryResult(event, None, None, str(exc), getattr(exc, "error_type", None)
                             or type(exc).__name__, (time.perf_counter() - started) * 1000)
        finally:
            evaluator.close()
        return TryResult(event, result["reward"], result.get("details"), None, None,
                         (time.perf_counter() - started) * 1000)

    def evaluate(self, name: str, version: str | None, events: Iterable[dict[str, Any]],
                 limit: int | None) -> list[Any]:
        """``Evaluator.evaluate`` over ``events``; small batches so progress moves often."""
        evaluator = self._sdk_evaluator(name, version)
        try:
            return evaluator.evaluate(events, batch_size=16, limit=limit, progress=False)
        finally:
            evaluator.close()

    # -- training jobs (through the SDK's TrainingJob) ------------------------------------------

    def jobs_page(self, *, status: str = "", name: str = "", token: str | None = None,
                  page: int = 1, per_page: int = JOB_PAGE_SIZE) -> JobListPage:
        try:
            result = TrainingJob.list(max_results=per_page, next_token=token or None,
                                      status_equals=status or None, name_contains=name or None,
                                      sagemaker_session=self.session)
        except ClientError as exc:  # a token from other filters, or a forged one
            raise BadRequest(_message(exc)) from None
        items = [JobListItem(i["training_job_name"], i["training_job_status"],
                             i.get("secondary_status"), epoch(i["creation_time"]) or 0.0,
                             epoch(i.get("training_end_time"))) for i in result["items"]]
        return JobListPage(items, page, token, result["next_token"])

    def _job(self, name: str) -> Any:
        try:
            return TrainingJob.get(name, self.session)
        except ValueError:
            raise NotFound(f"There is no training job {name!r}.") from None
        except ClientError as exc:
            raise BadRequest(_message(exc)) from None

    def job(self, name: str) -> JobView:
        job = self._job(name)
        record = self.home.training.store.get(job.training_job_name)
        logs, cut = self._tail(record_uri(self.session, job.training_job_name, "logs.txt"))
        return job_view(job, job.lineage, job.metrics(),
                        json.loads(record.tags) if record is not None and record.tags else [],
                        logs, cut)

    def _tail(self, uri: str, limit: int = LOG_TAIL_BYTES) -> tuple[bytes, bool]:
        """The last ``limit`` bytes of an object of the registry's store, and whether cut."""
        from airegistry.dataset import parse_s3_uri
        from airegistry.storage.blobs.errors import BlobStoreError

        bucket, key = parse_s3_uri(uri)
        try:
            size = self.home.objects.head_object(bucket, key).size
            if not size:
                return b"", False
            _, stream = self.home.objects.open_object(bucket, key,
                                                      byte_range=(max(0, size - limit), size - 1))
            with stream:
                return stream.read(), size > limit
        except BlobStoreError:  # no log yet (or none at all: a job recorded by another tool)
            return b"", False

    def job_progress(self, name: str) -> dict[str, Any]:
        job = self._job(name)
        info = job.progress_info or {}
        return {"state": "running" if job.training_job_status in ("InProgress", "Stopping")
                else "done", "status": job.training_job_status,
                "done": info.get("CurrentStep") or 0, "total": info.get("MaxSteps")}

    def stop_job(self, name: str) -> str:
        """``TrainingJob.stop()``: the job goes Stopping, its process ends it Stopped."""
        job = self._job(name)
        try:
            job.stop()
        except ClientError as exc:  # it finished meanwhile
            raise BadRequest(_message(exc)) from None
        return str(job.training_job_status)

    def model(self, name: str, version: str | None = None) -> ModelView:
        try:
            model = TrainedModel.get(name, self.session, version=version)
        except ClientError:
            raise NotFound(f"There is no model {name!r}" + (f" with version {version}" if version
                           else "") + ".") from None
        manifest, note = {}, None
        if model.artifact_uri:
            try:
                manifest = json.loads(self._read_small(f"{model.artifact_uri.rstrip('/')}/{MANIFEST}", 1 << 20))
            except (NotFound, BadRequest, ValueError) as exc:
                note = f"The weights' manifest cannot be read: {exc}"
        return model_view(model, manifest, self._versions(MODEL_CONTENT_TYPE, model.name), note)

    # -- deleting -------------------------------------------------------------------------------

    def delete_version(self, kind: str, name: str, version: str) -> bool:
        """Delete one version through the SDK (a BYOC function goes with its version)."""
        from airegistry.dataset import DataSet
        from airegistry.evaluator import Evaluator

        entity = DataSet if kind == "datasets" else Evaluator
        try:
            return entity.delete_by_name(name, version, sagemaker_session=self.session)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        except ClientError as exc:  # e.g. ResourceInUse: the version is still importing
            raise BadRequest(_message(exc)) from None

    def exists(self, kind: str, name: str) -> bool:
        try:
            self._describe(KINDS[kind], name, None)
        except NotFound:
            return False
        return True


def _message(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Message") or str(exc)


def _first(rows: Iterator[preview.PreviewRow]) -> Iterator[preview.PreviewRow]:
    for row in rows:
        yield row
        return
