"""AIRHubEntity: what datasets and evaluators share (versions, status, listing, deletion).

Subclasses say which hub content type they are and how to build themselves from a
``DescribeHubContent`` response or a list summary; everything else (version lookup,
waiting, pagination, deletion by name) lives here once.
"""

from __future__ import annotations

import random
import re
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from botocore.exceptions import ClientError

from airegistry.air_constants import TERMINAL_STATUSES, HubContentStatus
from airegistry.air_hub import AIRHub
from airegistry.session import Session

E = TypeVar("E", bound="AIRHubEntity")

_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_MAX_VERSION_ATTEMPTS = 64
_SHORT_VERSION_RE = re.compile(r"^\d{1,4}(\.\d{1,4}){0,2}$")


class WaitTimeoutError(TimeoutError):
    """``wait()`` ran out of time before the content reached a terminal status."""


def check_name(name: str, what: str) -> None:
    """Refuse a bad name before anything is uploaded; the service would refuse it later."""
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"Invalid {what} name {name!r}: use 1-63 letters, digits and hyphens, starting and "
            "ending with a letter or digit (pattern ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$)."
        )


def normalize_version(version: str | int | None) -> str | None:
    """``"1"`` means ``"1.0.0"`` and ``"2.1"`` means ``"2.1.0"``."""
    if version is None:
        return None
    text = str(version)
    if not _SHORT_VERSION_RE.match(text):
        raise ValueError(f"Invalid version {version!r}: expected MAJOR[.MINOR[.PATCH]], e.g. 1.0.0")
    parts = [int(p) for p in text.split(".")]
    parts += [0] * (3 - len(parts))
    return ".".join(str(p) for p in parts)


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


def is_not_found(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("ResourceNotFound", "ResourceNotFoundException")


class AIRHubEntity(ABC):
    """Base entity for AI Registry Hub content."""

    _list_kind: ClassVar[str] = "entity"
    _document_schema_version: ClassVar[str] = "2.0.0"

    def __init__(
        self,
        name: str,
        version: str,
        arn: str,
        status: HubContentStatus | str | None = None,
        created_time: datetime | None = None,
        updated_time: datetime | None = None,
        description: str | None = None,
        sagemaker_session: Session | None = None,
        failure_reason: str | None = None,
    ) -> None:
        self.name = name
        self.version = version
        self.arn = arn
        self.status = HubContentStatus(status) if status is not None else None
        self.created_time = created_time
        self.updated_time = updated_time
        self.description = description
        self.sagemaker_session = sagemaker_session
        self.failure_reason = failure_reason

    # -- what subclasses define ---------------------------------------------------------------

    @classmethod
    @abstractmethod
    def hub_content_type(cls) -> str:
        """The hub content type: "DataSet" or "JsonDoc"."""

    @classmethod
    def _get_hub_content_type_for_list(cls) -> str:
        return cls.hub_content_type()

    @classmethod
    @abstractmethod
    def _from_description(cls: type[E], response: dict, session: Session | None) -> E:
        """Build the entity from a DescribeHubContent response."""

    @classmethod
    @abstractmethod
    def _list_item(cls, summary: dict) -> dict[str, Any] | None:
        """The lower-case list item for a summary, or None when it is not of this kind."""

    @classmethod
    def _accepts(cls, response: dict) -> bool:
        return True

    # -- reading ------------------------------------------------------------------------------

    @classmethod
    def get(
        cls: type[E], name: str, sagemaker_session: Session | None = None, version: str | None = None
    ) -> E:
        """The latest version (or the given one); ``ClientError`` ResourceNotFound when absent."""
        response = AIRHub.describe_hub_content(
            cls.hub_content_type(), name, normalize_version(version), session=sagemaker_session
        )
        if not cls._accepts(response):
            raise ClientError(
                {
                    "Error": {
                        "Code": "ResourceNotFound",
                        "Message": f"{name} is not a {cls._list_kind} in this registry.",
                    }
                },
                "DescribeHubContent",
            )
        return cls._from_description(response, sagemaker_session)

    def refresh(self: E) -> E:
        fresh = type(self).get(self.name, self.sagemaker_session, version=self.version)
        self.__dict__.update({k: v for k, v in fresh.__dict__.items() if k != "sagemaker_session"})
        return self

    @classmethod
    def list(
        cls,
        max_results: int = 100,
        next_token: str | None = None,
        sagemaker_session: Session | None = None,
    ) -> dict[str, Any]:
        """One page: ``{"items": [...], "next_token": str | None}``, one item per name."""
        response = AIRHub.list_hub_content(
            cls._get_hub_content_type_for_list(),
            max_results=max_results,
            next_token=next_token,
            session=sagemaker_session,
        )
        items = [
            item
            for item in (cls._list_item(s) for s in response.get("HubContentSummaries", []))
            if item is not None
        ]
        return {"items": items, "next_token": response.get("NextToken")}

    @classmethod
    def get_all(
        cls: type[E], max_results: int | None = None, sagemaker_session: Session | None = None
    ) -> Iterator[E]:
        """Every entity (latest version of each name), across pages."""
        token: str | None = None
        produced = 0
        while True:
            page = cls.list(max_results=100, next_token=token, sagemaker_session=sagemaker_session)
            for item in page["items"]:
                if max_results is not None and produced >= max_results:
                    return
                yield cls.get(item["name"], sagemaker_session, version=item["version"])
                produced += 1
            token = page["next_token"]
            if not token:
                return

    def get_versions(self) -> list[dict[str, Any]]:
        """All versions, newest first, with the seed's keys."""
        summaries = AIRHub.list_hub_content_versions(
            self.hub_content_type(), self.name, session=self.sagemaker_session
        )
        versions = [
            {
                "Name": s["HubContentName"],
                "Version": s["HubContentVersion"],
                "Arn": s["HubContentArn"],
                "Status": HubContentStatus(s["HubContentStatus"]),
                "CreationTime": s.get("CreationTime"),
                "LastModifiedTime": s.get("LastModifiedTime", s.get("CreationTime")),
            }
            for s in summaries
        ]
        versions.sort(key=lambda v: version_key(v["Version"]), reverse=True)
        return versions

    # -- deleting ----------------------------------------------------------------------------

    def delete(self, version: str | None = None) -> bool:
        """Delete the version this object holds (or the given one); False if it is not there."""
        target = normalize_version(version) or self.version
        return type(self)._delete_version(self.name, target, self.sagemaker_session)

    @classmethod
    def delete_by_name(
        cls, name: str, version: str | None = None, sagemaker_session: Session | None = None
    ) -> bool:
        """Delete one version, or every version when none is given."""
        if version is not None:
            versions = [normalize_version(version)]
        else:
            try:
                summaries = AIRHub.list_hub_content_versions(
                    cls.hub_content_type(), name, session=sagemaker_session
                )
            except ClientError as exc:
                if is_not_found(exc):
                    return False
                raise
            versions = [s["HubContentVersion"] for s in summaries]
        deleted = False
        for target in versions:
            deleted = cls._delete_version(name, target, sagemaker_session) or deleted
        return deleted

    @classmethod
    def _delete_version(cls, name: str, version: str, session: Session | None) -> bool:
        """Delete one version; False when it is not there. Subclasses add their own cleanup."""
        try:
            AIRHub.delete_hub_content(cls.hub_content_type(), name, version, session=session)
        except ClientError as exc:
            if is_not_found(exc):
                return False
            raise
        return True

    # -- waiting -----------------------------------------------------------------------------

    def wait(self, poll: float = 5, timeout: float = 300) -> None:
        """Block until a terminal status; a live status line on a terminal, silence otherwise."""
        deadline = time.monotonic() + timeout
        # Imports usually finish in well under a second: check early, then settle on `poll`.
        interval = min(0.05, poll)
        live = None
        if sys.stdout.isatty():
            from rich.console import Console
            from rich.status import Status

            live = Status(
                f"{self._list_kind} {self.name} v{self.version}: {self.status}",
                console=Console(),
            )
            live.start()
        try:
            while True:
                self.refresh()
                if live is not None:
                    live.update(f"{self._list_kind} {self.name} v{self.version}: {self.status}")
                if self.status in TERMINAL_STATUSES:
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise WaitTimeoutError(
                        f"{self._list_kind} {self.name} version {self.version} is still "
                        f"{self.status} after {timeout} s"
                    )
                time.sleep(min(interval, remaining) * random.uniform(0.9, 1.1))
                interval = min(poll, interval * 2)
        finally:
            if live is not None:
                live.stop()

    @classmethod
    def _import_next_version(
        cls,
        session: Session,
        name: str,
        document: dict[str, Any] | str,
        keywords: list[str],
        tags: list[dict[str, str]],
        description: str | None,
    ) -> str:
        """Import as the next major version; a concurrent creator may win a number, so retry."""
        for attempt in range(_MAX_VERSION_ATTEMPTS):
            version = cls._next_major_version(session, name)
            try:
                AIRHub.import_hub_content(
                    cls.hub_content_type(),
                    name,
                    cls._document_schema_version,
                    document,
                    hub_content_version=version,
                    tags=tags,
                    session=session,
                    hub_content_search_keywords=keywords,
                    hub_content_description=description,
                )
                return version
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ResourceInUse":
                    raise
                time.sleep(random.uniform(0, 0.005 * (attempt + 1)))
        raise RuntimeError(f"Could not allocate a new version of {name} after many attempts.")

    @classmethod
    def _next_major_version(cls, session: Session, name: str) -> str:
        try:
            summaries = AIRHub.list_hub_content_versions(cls.hub_content_type(), name, session=session)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFound":
                summaries = []
            else:
                raise
        majors = [version_key(s["HubContentVersion"])[0] for s in summaries]
        return f"{max(majors, default=0) + 1}.0.0"

    @classmethod
    def _created(cls: type[E], session: Session, name: str, version: str, wait: bool) -> E:
        """The entity of a just-imported version, waited for when asked."""
        entity = cls.get(name, session, version=version)
        if wait:
            entity.wait()
            if entity.status == HubContentStatus.IMPORT_FAILED:
                raise ValueError(
                    f"{cls._list_kind.capitalize()} {name} version {version} failed to import: "
                    f"{entity.failure_reason}"
                )
        return entity

    # -- presentation --------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, version={self.version!r}, "
            f"status={self.status.value if self.status else None!r}, arn={self.arn!r})"
        )
