"""Read-only queries for browsing hub content page by page (the web UI's tables).

``ListHubContents`` pages with an opaque token and cannot filter by status or keyword,
count, or jump to page 37; a table a person pages through needs all of that. These
queries run over the hub tables directly and never write. Each page is one statement:
the total comes from a window function (``count(*) OVER ()``) on the same rows, so the
table shows "page 37 of 200" without a second query.

A repository of its own beside ``HubRepository``: it serves people paging through a
table, not the AWS operations, and never writes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, exists, func, select, tuple_

from airegistry.storage.metadata.database import Database
from airegistry.storage.metadata.tables import hub_contents

ORDERS = ("name", "created")

_NEWER = hub_contents.alias("browse_newer")


@dataclass(frozen=True)
class BrowseRow:
    """One version of one hub content, with what a table shows about it."""

    name: str
    version: str
    content_type: str
    status: str
    description: str | None
    keywords: list[str]
    stats: dict[str, Any] | None
    failure_reason: str | None
    created_at: float
    modified_at: float


@dataclass(frozen=True)
class BrowsePage:
    rows: list[BrowseRow]
    #: Versions matching the filters (names, when ``latest_only``), across all pages.
    total: int


def _is_latest() -> Any:
    """No version of the same name is newer: the row is that name's latest version."""
    return ~exists().where(
        _NEWER.c.hub_name == hub_contents.c.hub_name,
        _NEWER.c.content_type == hub_contents.c.content_type,
        _NEWER.c.name == hub_contents.c.name,
        tuple_(_NEWER.c.v_major, _NEWER.c.v_minor, _NEWER.c.v_patch)
        > tuple_(hub_contents.c.v_major, hub_contents.c.v_minor, hub_contents.c.v_patch),
    )


def _keyword_clause(keyword: str) -> Any:
    # search_keywords holds a JSON list of strings; a keyword is present when its JSON
    # string literal is. LIKE wildcards in the keyword are escaped.
    literal = json.dumps(keyword)
    escaped = literal.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return hub_contents.c.search_keywords.like(f"%{escaped}%", escape="\\")


def _filters(hub: str, content_type: str, name_contains: str | None, keywords: Sequence[str],
             status: str | None, latest_only: bool) -> list[Any]:
    clauses: list[Any] = [hub_contents.c.hub_name == hub, hub_contents.c.content_type == content_type]
    if latest_only:
        clauses.append(_is_latest())
    if name_contains:
        clauses.append(hub_contents.c.name.icontains(name_contains, autoescape=True))
    clauses.extend(_keyword_clause(k) for k in keywords)
    if status:
        clauses.append(hub_contents.c.status == status)
    return clauses


class BrowseRepository:
    """Filtered, counted pages of one hub's content, for the web UI's tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def page(
        self,
        hub: str,
        content_type: str,
        *,
        name_contains: str | None = None,
        keywords: Sequence[str] = (),
        status: str | None = None,
        latest_only: bool = True,
        order: str = "name",
        offset: int = 0,
        limit: int = 50,
    ) -> BrowsePage:
        """One page of hub content, filtered, with the total, in one statement.

        ``latest_only`` keeps each name's newest version (the filters then apply to that
        version: ``status="ImportFailed"`` lists names whose latest version failed).
        ``keywords`` must all be present. ``order`` is ``"name"`` (A-Z) or ``"created"``
        (newest first). An ``offset`` past the end returns no rows and the true total.
        """
        if order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}, not {order!r}")
        if offset < 0 or limit < 0:
            raise ValueError("offset and limit must not be negative")
        clauses = _filters(hub, content_type, name_contains, keywords, status, latest_only)
        sort = (
            [hub_contents.c.name.asc(), hub_contents.c.id.asc()]
            if order == "name"
            else [hub_contents.c.created_at.desc(), hub_contents.c.id.desc()]
        )
        query = (
            select(hub_contents, func.count().over().label("browse_total"))
            .where(and_(*clauses))
            .order_by(*sort)
            .offset(offset)
            .limit(limit)
        )
        with self.db.read() as conn:
            rows = conn.execute(query).fetchall()
            if rows:
                total = int(rows[0].browse_total)
            else:
                total = int(conn.execute(
                    select(func.count()).select_from(hub_contents).where(and_(*clauses))
                ).scalar_one())
        return BrowsePage([_row(r) for r in rows], total)

    def counts(self, hub: str, content_type: str,
               keywords: Sequence[str] = ()) -> dict[str, tuple[int, int]]:
        """Per status: (versions in that status, names whose latest version is in it)."""
        latest = func.sum(case((_is_latest(), 1), else_=0))
        query = (
            select(hub_contents.c.status, func.count(), latest)
            .where(and_(*_filters(hub, content_type, None, keywords, None, False)))
            .group_by(hub_contents.c.status)
        )
        with self.db.read() as conn:
            return {status: (int(n), int(names or 0)) for status, n, names in conn.execute(query)}


def _row(r: Any) -> BrowseRow:
    stats = None
    if r.stats:
        try:
            parsed = json.loads(r.stats)
        except ValueError:
            parsed = None
        stats = parsed if isinstance(parsed, dict) else None
    try:
        keywords = json.loads(r.search_keywords)
    except ValueError:
        keywords = []
    return BrowseRow(
        name=r.name,
        version=f"{r.v_major}.{r.v_minor}.{r.v_patch}",
        content_type=r.content_type,
        status=r.status,
        description=r.description,
        keywords=[k for k in keywords if isinstance(k, str)] if isinstance(keywords, list) else [],
        stats=stats,
        failure_reason=r.failure_reason,
        created_at=float(r.created_at),
        modified_at=float(r.modified_at),
    )


__all__ = ["ORDERS", "BrowsePage", "BrowseRepository", "BrowseRow"]
