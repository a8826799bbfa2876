"""What the read model hands to the pages: plain data (shaped here), no access to anything."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airegistry import keywords as kw
from airegistry.air_constants import REWARD_FUNCTION, REWARD_PROMPT

if TYPE_CHECKING:
    from airegistry.storage.metadata import BrowseRow


@dataclass
class ListItem:
    name: str
    version: str
    status: str
    description: str | None
    created: float
    technique: str | None = None
    format: str | None = None
    rows: int | None = None
    bytes: int | None = None
    type: str | None = None
    method: str | None = None
    reference: str | None = None
    failure_reason: str | None = None
    kind: str = "datasets"

    @classmethod
    def of(cls, r: BrowseRow, kind: str) -> ListItem:
        """A table row from a browse query's row (its keywords and import statistics)."""
        stats = r.stats or {}
        item = cls(name=r.name, version=r.version, status=r.status, description=r.description,
                   created=r.created_at, failure_reason=r.failure_reason, kind=kind)
        if kind == "datasets":
            item.technique = kw.find(r.keywords, "customization_technique:")
            item.format = stats.get("format")
            item.rows = stats.get("rows")
            item.bytes = stats.get("bytes")
        else:
            evaluator_type = kw.find(r.keywords, "@evaluatortype:")
            item.type = {"rewardfunction": REWARD_FUNCTION, "rewardprompt": REWARD_PROMPT}.get(
                evaluator_type or "", evaluator_type)
            item.method = kw.find(r.keywords, "method:")
            item.reference = kw.find(r.keywords, "@reference:")
        return item


@dataclass
class ListPage:
    items: list[ListItem]
    total: int
    page: int
    pages: int


@dataclass
class Version:
    version: str
    status: str
    created: float


@dataclass
class DatasetView:
    name: str
    version: str
    arn: str
    status: str
    description: str | None
    created: float
    modified: float
    technique: str | None
    method: str | None
    bucket: str
    key: str
    file_type: str | None
    stats: dict[str, Any]
    failure_reason: str | None
    failure_lines: list[int]
    failure_details: list[str]
    tags: list[tuple[str, str]]
    versions: list[Version]

    @property
    def source(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def format(self) -> str | None:
        return self.stats.get("format")


@dataclass
class EvaluatorView:
    name: str
    version: str
    arn: str
    status: str
    description: str | None
    created: float
    modified: float
    type: str | None
    method: str | None
    reference: str | None
    failure_reason: str | None
    versions: list[Version]
    code: str | None = None
    template: str | None = None
    placeholders: list[str] = field(default_factory=list)
    source_note: str | None = None


@dataclass
class Overview:
    counts: dict[str, dict[str, tuple[int, int]]]
    recent: list[ListItem]
    failed: list[ListItem]
    running_jobs: list[Any] = field(default_factory=list)
    failed_jobs: list[Any] = field(default_factory=list)


@dataclass
class TryResult:
    event: dict[str, Any]
    reward: float | None
    details: Any
    error: str | None
    error_type: str | None
    latency_ms: float


# -- training jobs and their models ---------------------------------------------------------


@dataclass
class JobListItem:
    name: str
    status: str
    secondary_status: str | None
    created: float
    ended: float | None

    @property
    def duration(self) -> float | None:
        return None if self.ended is None else self.ended - self.created


@dataclass
class JobListPage:
    """One page of jobs, newest first; pages follow each other by token (no page count)."""

    items: list[JobListItem]
    page: int
    token: str | None
    next_token: str | None


@dataclass
class DatasetRef:
    """A dataset a job trained on, exactly as its lineage names it."""

    channel: str
    name: str | None
    version: str | None
    arn: str | None
    uri: str | None
    sha256: str | None = None
    rows: int | None = None
    format: str | None = None


@dataclass
class ContentRef:
    """An evaluator or a model: a name and a version of the hub (and what else is known)."""

    name: str
    version: str | None
    arn: str | None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Lineage:
    datasets: list[DatasetRef]
    evaluator: ContentRef | None
    base_model: dict[str, Any]
    hyperparameters: list[tuple[str, str]]
    final_metrics: list[tuple[str, float]]
    versions: list[tuple[str, str]]


@dataclass
class MetricSummary:
    name: str
    last: float
    low: float
    high: float
    count: int


@dataclass
class Transition:
    status: str
    start: float | None
    end: float | None
    message: str | None


@dataclass
class JobView:
    name: str
    arn: str
    status: str
    secondary_status: str | None
    failure_reason: str | None
    created: float
    started: float | None
    ended: float | None
    technique: str | None
    training_type: str | None
    base_model: str | None
    step: int | None
    max_steps: int | None
    epoch: int | None
    max_epoch: int | None
    lineage: Lineage
    model: ContentRef | None
    model_artifacts: str | None
    tags: list[tuple[str, str]]
    transitions: list[Transition]
    charts: list[Any]
    metrics: list[MetricSummary]
    logs: str
    logs_cut: bool
    mlflow: dict[str, Any] | None

    @property
    def active(self) -> bool:
        return self.status in ("InProgress", "Stopping")

    @property
    def can_stop(self) -> bool:
        return self.status == "InProgress"

    @property
    def percent(self) -> float | None:
        if not self.max_steps or self.step is None:
            return None
        return min(100.0, 100.0 * self.step / self.max_steps)


@dataclass
class ModelView:
    name: str
    version: str
    arn: str
    status: str
    description: str | None
    created: float
    artifact_uri: str | None
    kind: str | None
    job_name: str | None
    files: list[dict[str, Any]]
    lineage: Lineage
    versions: list[Version]
    note: str | None = None
