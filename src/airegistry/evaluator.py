"""Evaluator: reward functions and reward prompts, registered and runnable.

Registration follows the managed service's documents exactly (content type ``JsonDoc``,
``SubType`` ``AWS/Evaluator``, a ``JsonContent`` string holding ``Reference`` and
``EvaluatorType``); running them is ours: reward functions on the function runtime
(warm sandboxed workers when embedded, Lambda-compatible everywhere), reward prompts
through an LLM judge on any OpenAI-compatible endpoint.

Every version owns its implementation: a BYOC version gets its own function and a
prompt version its own stored object, so creating a version never changes another.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

import msgspec
from botocore.exceptions import ClientError

from airegistry import keywords as kw
from airegistry.air_constants import (
    EVALUATOR_DOCUMENT_SCHEMA_VERSION,
    EVALUATOR_HUB_CONTENT_TYPE,
    EVALUATOR_SUBTYPE,
    EVALUATOR_TYPES,
    REWARD_FUNCTION,
    REWARD_PROMPT,
    HubContentStatus,
)
from airegistry.air_hub_entity import AIRHubEntity, check_name, is_not_found
from airegistry.evaluator_sources import (
    deploy_reward_function,
    discard_created,
    store_prompt,
)
from airegistry.hub import documents
from airegistry.runtime.rewards import RewardOutcome, outcome_from_error, outcome_from_payload
from airegistry.session import Session, resolve_session

#: Rows per ``evaluate`` batch: large enough that a batch's fixed cost (a function lookup,
#: one dispatch per worker) vanishes, while the progress bar still moves per finished
#: call (the batch interface reports progress from inside a batch).
DEFAULT_BATCH_SIZE = 4096


class EvaluatorMethod(str, Enum):
    """How a reward function is implemented."""

    BYOC = "byoc"
    LAMBDA = "lambda"

    def __str__(self) -> str:
        return self.value


class EvaluatorInvocationError(RuntimeError):
    """A single ``invoke()`` failed: the handler raised, timed out, crashed or broke the contract."""

    def __init__(self, message: str, error_type: str | None) -> None:
        super().__init__(message)
        self.error_type = error_type


class EvaluatorNotReachableError(RuntimeError):
    """The evaluator's implementation cannot be run from this backend (e.g. someone else's Lambda)."""


class Evaluator(AIRHubEntity):
    """Evaluator entity for AI Registry."""

    _list_kind = "evaluator"
    _document_schema_version = EVALUATOR_DOCUMENT_SCHEMA_VERSION

    def __init__(
        self,
        name: str | None = None,
        version: str | None = None,
        arn: str | None = None,
        type: str | None = None,
        method: EvaluatorMethod | None = None,
        reference: str | None = None,
        status: HubContentStatus | str | None = None,
        created_time: datetime | None = None,
        updated_time: datetime | None = None,
        sagemaker_session: Session | None = None,
        description: str | None = None,
        failure_reason: str | None = None,
    ) -> None:
        super().__init__(
            name=name or "",
            version=version or "",
            arn=arn or "",
            status=status,
            created_time=created_time,
            updated_time=updated_time,
            description=description,
            sagemaker_session=sagemaker_session,
            failure_reason=failure_reason,
        )
        self.type = type
        self.method = method
        self.reference = reference
        self._judges: dict[str, Any] = {}
        self._template: str | None = None

    @classmethod
    def hub_content_type(cls) -> str:
        return EVALUATOR_HUB_CONTENT_TYPE

    # -- hub documents -------------------------------------------------------------------------

    @classmethod
    def _accepts(cls, response: dict) -> bool:
        try:
            return documents.parse_json_document(response["HubContentDocument"]).is_evaluator
        except documents.DocumentError:
            return False

    @classmethod
    def _from_description(cls, response: dict, session: Session | None) -> Evaluator:
        content = documents.parse_json_document(response["HubContentDocument"]).evaluator()
        keywords = response.get("HubContentSearchKeywords", [])
        method = kw.find(keywords, documents.METHOD_PREFIX)
        return cls(
            name=response["HubContentName"],
            version=response["HubContentVersion"],
            arn=response["HubContentArn"],
            type=content.EvaluatorType or None,
            method=EvaluatorMethod(method) if method else None,
            reference=content.Reference,
            status=response["HubContentStatus"],
            created_time=response.get("CreationTime"),
            updated_time=response.get("LastModifiedTime"),
            sagemaker_session=session,
            description=response.get("HubContentDescription"),
            failure_reason=response.get("FailureReason"),
        )

    @classmethod
    def _list_item(cls, summary: dict) -> dict[str, Any] | None:
        keywords = summary.get("HubContentSearchKeywords", [])
        if documents.SUBTYPE_PREFIX + EVALUATOR_SUBTYPE.lower() not in keywords:
            return None
        evaluator_type = kw.find(keywords, documents.EVALUATOR_TYPE_PREFIX)
        method = kw.find(keywords, documents.METHOD_PREFIX)
        return {
            "name": summary["HubContentName"],
            "version": summary["HubContentVersion"],
            "arn": summary["HubContentArn"],
            "status": HubContentStatus(summary["HubContentStatus"]),
            "description": summary.get("HubContentDescription"),
            "created_time": summary.get("CreationTime"),
            "updated_time": summary.get("LastModifiedTime"),
            "type": {"rewardfunction": REWARD_FUNCTION, "rewardprompt": REWARD_PROMPT}.get(
                evaluator_type or "", evaluator_type
            ),
            "method": EvaluatorMethod(method) if method else None,
            "reference": kw.find(keywords, documents.REFERENCE_PREFIX),
        }

    # -- creating ------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        name: str,
        type: str,
        source: str,
        wait: bool = True,
        role: str | None = None,
        sagemaker_session: Session | None = None,
        description: str | None = None,
        *,
        function_timeout: int = 30,
        function_memory_mb: int = 1024,
    ) -> Evaluator:
        """Register an evaluator (next major version of an existing name).

        ``function_timeout`` (seconds) and ``function_memory_mb`` size the function a local
        or S3 reward function is deployed to (Lambda's defaults: 30 s, 1,024 MB here).
        """
        session = resolve_session(sagemaker_session)
        check_name(name, "evaluator")
        if type not in EVALUATOR_TYPES:
            raise ValueError(
                f"Unknown evaluator type {type!r}; expected one of {', '.join(EVALUATOR_TYPES)}"
            )
        if not isinstance(source, str) or not source.strip():
            raise ValueError("An evaluator needs a source (a Lambda ARN, a file, an s3:// URI or text)")
        created_function: str | None = None
        object_uri: str | None = None
        if type == REWARD_FUNCTION:
            byoc, reference, created_function = deploy_reward_function(
                session, name, source, role, function_timeout, function_memory_mb
            )
            method = EvaluatorMethod.BYOC if byoc else EvaluatorMethod.LAMBDA
        else:
            method = None
            reference = object_uri = store_prompt(session, name, source)
        content = documents.EvaluatorContent(
            Reference=reference, EvaluatorType=type,
            ObjectUri=object_uri if object_uri else msgspec.UNSET,
        )
        document = documents.encode(documents.evaluator_document(content))
        keywords = [documents.SUBTYPE_PREFIX + EVALUATOR_SUBTYPE.lower(),
                    documents.EVALUATOR_TYPE_PREFIX + type.lower()]
        if method is not None:
            keywords.append(documents.METHOD_PREFIX + method.value)
            keywords.append(documents.CONTENT_KIND_PREFIX
                            + ("byocode" if method is EvaluatorMethod.BYOC else "byolambda"))
        reference_keyword = kw.keyword(documents.REFERENCE_PREFIX, reference)
        if reference_keyword:
            keywords.append(reference_keyword)
        if object_uri:
            keywords.append(documents.OWNED)
        try:
            version = cls._import_next_version(session, name, document, keywords, [], description)
        except BaseException:
            discard_created(session, created_function, object_uri)
            raise
        return cls._created(session, name, version, wait)

    def create_version(
        self, source: str, wait: bool = True, role: str | None = None,
        description: str | None = None, **options: Any,
    ) -> Evaluator:
        """A new version of this evaluator's name; returns the new entity."""
        return type(self).create(
            self.name, self.type or REWARD_FUNCTION, source, wait=wait, role=role,
            sagemaker_session=self.sagemaker_session,
            description=description if description is not None else self.description,
            **options,
        )

    # -- deleting (BYOC functions go with their version) ---------------------------------------

    @classmethod
    def _delete_version(cls, name: str, version: str, session: Session | None) -> bool:
        try:
            victim = cls.get(name, session, version=version)
        except ClientError as exc:
            if is_not_found(exc):
                return False
            raise
        if not super()._delete_version(name, version, session):
            return False
        victim._delete_function()
        return True

    def _delete_function(self) -> None:
        if self.method is not EvaluatorMethod.BYOC or not self.reference:
            return
        with contextlib.suppress(ClientError):
            resolve_session(self.sagemaker_session).functions.delete_function(
                FunctionName=self.reference
            )

    # -- running ---------------------------------------------------------------------------------

    def invoke(
        self, event: Mapping[str, Any], *, backend: str | None = None, **judge_options: Any
    ) -> dict[str, Any]:
        """Score one event: ``{"reward": float in [0, 1], "details": ...}`` or an exception."""
        outcome = self.score_batch([dict(event)], backend=backend, **judge_options)[0]
        if not outcome.ok:
            raise EvaluatorInvocationError(
                f"Evaluator {self.name} v{self.version} failed: {outcome.error_type}: {outcome.error}",
                outcome.error_type,
            )
        return {"reward": outcome.reward, "details": outcome.details}

    def score_batch(
        self,
        events: Sequence[Mapping[str, Any]],
        *,
        backend: str | None = None,
        **judge_options: Any,
    ) -> list[RewardOutcome]:
        """Score events in order; one failure never fails the others.

        Reward functions run through the batch-invocation interface (``airegistry.batch``):
        ``backend`` is ``"pool"``, ``"lambda"`` or ``"ray"``, by default the session's own (see
        ``airegistry.batch.invoker_for``); outcomes are the same whichever runs them.
        """
        return self._score([dict(e) for e in events], backend, None, judge_options)

    def _score(self, events: list[dict[str, Any]], backend: str | None,
               progress: Callable[[int], None] | None,
               judge_options: Mapping[str, Any]) -> list[RewardOutcome]:
        """``score_batch`` on events the caller owns (no copy), reporting finished calls."""
        if self.type == REWARD_PROMPT:
            outcomes = self._judge_for(**judge_options).evaluate_batch(events)
            if progress is not None:
                progress(len(outcomes))
            return outcomes
        results = self._invoke_raw(events, backend, progress)
        return [self._outcome(i, r.ok, r.payload) for i, r in enumerate(results)]

    def _invoke_raw(self, events: Sequence[Any], backend: str | None,
                    progress: Callable[[int], None] | None = None) -> list[Any]:
        """The function's raw results through the batch-invocation interface, in order."""
        from airegistry.batch import FunctionUnreachableError, invoker_for

        session = resolve_session(self.sagemaker_session)
        try:
            return invoker_for(session, backend).invoke_batch(self.reference or "", events,
                                                              progress=progress)
        except FunctionUnreachableError as exc:
            raise EvaluatorNotReachableError(
                f"Evaluator {self.name} cannot be run from this backend: {exc}"
            ) from None

    def invoke_payload(self, payload: Any, *, backend: str | None = None) -> tuple[bool, Any]:
        """Run this reward function once on any JSON ``payload``; ``(ok, what it returned)``.

        No reward-contract check is applied: this is for callers that speak another
        contract, such as the official SDK's batch contract (a list of samples in, a list
        of scores out). When not ok, the second item is Lambda's error payload
        (``errorType``, ``errorMessage``). It runs through the same batch-invocation
        interface as ``score_batch``.
        """
        if self.type == REWARD_PROMPT:
            raise ValueError(f"Evaluator {self.name} is a reward prompt; it has no function to invoke")
        result = self._invoke_raw([payload], backend)[0]
        return result.ok, result.payload

    @staticmethod
    def _outcome(index: int, ok: bool, payload: Any) -> RewardOutcome:
        if ok:
            return outcome_from_payload(index, payload)
        payload = payload if isinstance(payload, dict) else {}
        return outcome_from_error(
            index, str(payload.get("errorType", "Unhandled")), str(payload.get("errorMessage", ""))
        )

    def _judge_for(self, **options: Any) -> Any:
        """One judge per set of options, reused across batches (its HTTP pool stays warm)."""
        from airegistry.runtime.judge import JudgeConfig, RewardPromptJudge

        key = json.dumps(options, sort_keys=True, default=str)
        cached = self._judges.get(key)
        if cached is not None:
            return cached
        if self._template is None:
            from airegistry.dataset import parse_s3_uri

            session = resolve_session(self.sagemaker_session)
            with contextlib.closing(session.objects.open(*parse_s3_uri(self.reference or ""))) as s:
                self._template = s.read().decode("utf-8")
        judge = RewardPromptJudge(self._template, JudgeConfig.from_env(**options))
        self._judges[key] = judge
        return judge

    def close(self) -> None:
        """Release the HTTP connections of reward-prompt judges (also done at garbage collection)."""
        for judge in self._judges.values():
            judge.close()
        self._judges.clear()

    def evaluate(
        self,
        data: Any,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
        response_field: str = "response",
        limit: int | None = None,
        progress: bool | None = None,
        backend: str | None = None,
        **judge_options: Any,
    ) -> list[RewardOutcome]:
        """Score every item of a DataSet, a list of dicts or any iterable of dicts, in order.

        A row without ``response`` uses ``completion`` (SFT rows) when it has one. Each item's
        outcome carries its reward or the reason it failed; a progress bar shows on a terminal.
        ``backend="ray"`` scores the batches on a Ray cluster (see ``score_batch``).
        """
        if not 1 <= batch_size <= 4096:
            raise ValueError("batch_size must be between 1 and 4096")
        from airegistry.dataset import DataSet

        rows: Iterable[Mapping[str, Any]] = iter_dataset_rows(data) if isinstance(data, DataSet) else data
        total = len(data) if isinstance(data, Sequence) else None
        if limit is not None and total is not None:
            total = min(total, limit)
        show = sys.stdout.isatty() if progress is None else progress
        outcomes: list[RewardOutcome] = []
        bar = None
        if show:
            from rich.progress import Progress

            bar = Progress(transient=False)
            task = bar.add_task(f"evaluating with {self.name}", total=total)
            bar.start()
        try:
            advance = (lambda n: bar.update(task, advance=n)) if bar is not None else None
            for batch in _batches(rows, batch_size, limit):
                events = [self._event(row, response_field) for row in batch]
                results = self._score(events, backend, advance, judge_options)
                offset = len(outcomes)
                for outcome in results:
                    outcome.index += offset
                outcomes.extend(results)
        finally:
            if bar is not None:
                bar.stop()
        return outcomes

    @staticmethod
    def _event(row: Mapping[str, Any], response_field: str) -> dict[str, Any]:
        if not isinstance(row, Mapping):
            raise ValueError(f"Evaluation items must be dicts, got {type(row).__name__}")
        event = dict(row)
        if "response" not in event:
            if response_field in event:
                event["response"] = event[response_field]
            elif "completion" in event:
                event["response"] = event["completion"]
        return event

    def as_reward_function(
        self, on_error: str = "nan", *, backend: str | None = None, **judge_options: Any
    ) -> Callable[..., list[float]]:
        """A TRL reward function (GRPOTrainer ``reward_funcs``) backed by this evaluator.

        ``judge_options`` (``base_url``, ``model``, ``api_key``, ``scale``, …) configure the
        judge of a reward prompt, as for ``invoke``/``evaluate``; ``backend`` as for
        ``score_batch`` (one call per batch of completions).
        """
        from airegistry.runtime.trl import make_trl_reward_function

        safe = "".join(c if c.isalnum() else "_" for c in self.name)

        def score(events: list[dict[str, Any]]) -> list[RewardOutcome]:
            return self.score_batch(events, backend=backend, **judge_options)

        return make_trl_reward_function(score, name=f"airegistry_{safe}", on_error=on_error)  # type: ignore[arg-type]


def _batches(
    rows: Iterable[Mapping[str, Any]], size: int, limit: int | None
) -> Iterator[list[Mapping[str, Any]]]:
    batch: list[Mapping[str, Any]] = []
    for count, row in enumerate(rows):
        if limit is not None and count >= limit:
            break
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def iter_dataset_rows(dataset: Any) -> Iterator[dict[str, Any]]:
    """Rows of a stored dataset, streamed (jsonl, json, csv, parquet)."""
    import csv
    import tempfile

    from airegistry.dataset import _file_type, _iter_lines, parse_s3_uri

    file_type = _file_type(parse_s3_uri(dataset.source)[1])
    if file_type == "jsonl":
        with contextlib.closing(dataset.open()) as stream:
            for line in _iter_lines(stream):
                if line.strip():
                    yield json.loads(line)
        return
    with tempfile.TemporaryDirectory() as tmp:
        local = dataset.download(Path(tmp))
        if file_type == "json":
            with open(local, "rb") as fh:
                yield from json.load(fh)
        elif file_type == "csv":
            with open(local, newline="", encoding="utf-8-sig") as fh:
                yield from csv.DictReader(fh)
        else:
            import pyarrow.parquet as pq

            for batch in pq.ParquetFile(local).iter_batches():
                yield from batch.to_pylist()
