"""What the read model hands to the pages: plain data, no access to anything."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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


@dataclass
class TryResult:
    event: dict[str, Any]
    reward: float | None
    details: Any
    error: str | None
    error_type: str | None
    latency_ms: float
