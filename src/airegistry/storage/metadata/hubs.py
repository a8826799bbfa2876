"""Hubs and hub contents: every query of the hub service, and nothing of its rules.

The hub service decides what is valid and how answers look; this repository only reads
and writes rows. Two guarantees live here because only the database can give them:
version uniqueness (a unique constraint, never a read-then-write check: two racing
imports of one version get one winner and one ``VersionExists``, on SQLite and on
PostgreSQL alike), and "an importing version always has its job" (the content row and
its job row are inserted in one transaction).

Pages are keyset pages: ``after`` is the sort key of the last row of the previous page,
so a page costs an index walk and stays stable while rows are inserted.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import (
    Integer,
    bindparam,
    case,
    delete,
    exists,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from airegistry.storage.metadata.database import Database
from airegistry.storage.metadata.tables import hub_contents, hubs, jobs, now

Version = tuple[int, int, int]
ACTIVE_JOB_STATES = ("queued", "running")


class HubNotFound(Exception):
    pass


class HubExists(Exception):
    pass


class HubNotEmpty(Exception):
    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.count = count


class ContentNotFound(Exception):
    pass


class VersionExists(Exception):
    pass


class QueueFull(Exception):
    def __init__(self, active: int) -> None:
        super().__init__(active)
        self.active = active


class StillImporting(Exception):
    pass


@dataclass
class ContentFilter:
    """The filters ListHubContents / ListHubContentVersions share (epoch seconds)."""

    name_contains: str | None = None
    created_before: float | None = None
    created_after: float | None = None
    min_version: Version | None = None


@dataclass
class HubFilter:
    name_contains: str | None = None
    created_before: float | None = None
    created_after: float | None = None
    modified_before: float | None = None
    modified_after: float | None = None


# Built once: deriving an alias's column collection costs more than running the query.
_NEWER = hub_contents.alias("newer")
#: What a listing shows of each version (HubContentInfo): every column but the large ones a
#: summary never reads; the document only of ModelReference rows, whose reference it holds.
_SUMMARY_OMITS = frozenset({"document", "markdown", "tags", "stats", "failure_reason",
                            "owned_bucket", "owned_key"})
_SUMMARY_COLUMNS = [
    *(col for col in hub_contents.c if col.name not in _SUMMARY_OMITS),
    case((hub_contents.c.content_type == "ModelReference", hub_contents.c.document),
         else_=None).label("document"),
]
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
_HUB_SORT = {"HubName": hubs.c.name, "CreationTime": hubs.c.created_at,
             "HubStatus": hubs.c.status, "AccountIdOwner": hubs.c.name}
_CONTENT_SORT = {"HubContentName": hub_contents.c.name, "CreationTime": hub_contents.c.created_at,
                 "HubContentStatus": hub_contents.c.status}


class _ContentPage(NamedTuple):
    """What decides the SQL of a content page; the values travel as bind parameters."""

    by_name: bool
    latest_only: bool
    contains: bool
    before: bool
    after_time: bool
    min_version: bool
    sort_by: str | None
    descending: bool
    keyed: bool  # continues after a page key
    limited: bool  # LIMIT in SQL (no row filter after the query)


def _content_keys(sort_by: str | None, by_name: bool) -> list[Any]:
    """The page's sort key columns: they order it and make its continuation key."""
    c = hub_contents.c
    if sort_by is None:
        return [c.v_major, c.v_minor, c.v_patch, c.id]
    tiebreak = c.id if by_name else c.name
    sort = _CONTENT_SORT[sort_by]
    return [sort, tiebreak, c.id] if tiebreak is not c.id else [sort, c.id]


def _like_pattern(text: str) -> str:
    """``%text%`` for LIKE with ``/`` as the escape character: what SQLAlchemy's
    ``autoescape`` does, which takes only a literal, not a bind parameter."""
    escaped = text.replace("/", "//").replace("%", "/%").replace("_", "/_")
    return f"%{escaped}%"


@functools.lru_cache(maxsize=512)
def _content_page_statement(shape: _ContentPage) -> Any:
    """Build a content page's statement once per shape: building one cost more than SQLite
    took to answer it (a 100-summary page spent ~20% of its CPU in SQLAlchemy's builder)."""
    c = hub_contents.c
    query = select(*_SUMMARY_COLUMNS).where(c.hub_name == bindparam("hub"),
                                            c.content_type == bindparam("ctype"))
    if shape.by_name:
        query = query.where(c.name == bindparam("name"))
    if shape.latest_only:
        newer = _NEWER
        query = query.where(~exists().where(
            newer.c.hub_name == c.hub_name, newer.c.content_type == c.content_type,
            newer.c.name == c.name,
            tuple_(newer.c.v_major, newer.c.v_minor, newer.c.v_patch)
            > tuple_(c.v_major, c.v_minor, c.v_patch)))
    if shape.contains:
        query = query.where(c.name.like(bindparam("contains"), escape="/"))
    if shape.before:
        query = query.where(c.created_at < bindparam("before"))
    if shape.after_time:
        query = query.where(c.created_at > bindparam("after_time"))
    if shape.min_version:
        query = query.where(tuple_(c.v_major, c.v_minor, c.v_patch) >= tuple_(
            bindparam("min_major"), bindparam("min_minor"), bindparam("min_patch")))
    keys = _content_keys(shape.sort_by, shape.by_name)
    if shape.keyed:
        bound = tuple_(*[bindparam(f"k{i}", type_=k.type) for i, k in enumerate(keys)])
        query = query.where(tuple_(*keys) < bound if shape.descending else tuple_(*keys) > bound)
    query = query.order_by(*[k.desc() if shape.descending else k.asc() for k in keys])
    if shape.limited:
        query = query.limit(bindparam("limit", type_=Integer))
    return query


class HubRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- hubs ------------------------------------------------------------------------------

    def get_hub(self, name: str) -> Row | None:
        return self.db.first(_HUB_BY_NAME, {"hub": name})

    def insert_hub(self, **values: Any) -> None:
        ts = now()
        try:
            with self.db.write() as conn:
                conn.execute(insert(hubs).values(**values, status="InService", created_at=ts,
                                                 modified_at=ts))
        except IntegrityError:
            raise HubExists(values.get("name")) from None

    def update_hub(self, name: str, **values: Any) -> None:
        with self.db.write() as conn:
            _require_hub(conn, name)
            conn.execute(update(hubs).where(hubs.c.name == name)
                         .values(**values, modified_at=now()))

    def delete_hub(self, name: str) -> None:
        with self.db.write() as conn:
            _require_hub(conn, name)
            count = conn.execute(select(func.count()).select_from(hub_contents)
                                 .where(hub_contents.c.hub_name == name)).scalar_one()
            if count:
                raise HubNotEmpty(count)
            conn.execute(delete(hubs).where(hubs.c.name == name))

    def page_hubs(self, filters: HubFilter, sort_by: str, descending: bool, limit: int,
                  after: Sequence[Any] | None) -> tuple[list[Row], list[Any] | None]:
        query = select(hubs)
        if filters.name_contains:
            query = query.where(hubs.c.name.like(_like_pattern(filters.name_contains),
                                                 escape="/"))
        for bound, col, below in (
            (filters.created_before, hubs.c.created_at, True),
            (filters.created_after, hubs.c.created_at, False),
            (filters.modified_before, hubs.c.modified_at, True),
            (filters.modified_after, hubs.c.modified_at, False),
        ):
            if bound is not None:
                query = query.where(col < bound if below else col > bound)
        sort = _HUB_SORT[sort_by]
        keys = [sort, hubs.c.name] if sort is not hubs.c.name else [hubs.c.name]
        return self._page(query, keys, descending, limit, after, None)

    # -- contents --------------------------------------------------------------------------

    def get_content(self, hub: str, content_type: str, name: str,
                    version: Version | None) -> Row | None:
        """One version, or the latest when ``version`` is None; ``HubNotFound`` if no hub."""
        args: dict[str, Any] = {"hub": hub, "ctype": content_type, "name": name}
        if version is not None:
            args["major"], args["minor"], args["patch"] = version
            row = self.db.first(_CONTENT_VERSION, args)
        else:
            row = self.db.first(_CONTENT_LATEST, args)
        if row is None:
            with self.db.read() as conn:
                _require_hub(conn, hub)  # a missing hub is the better error
        return row

    def insert_content(self, hub: str, content_type: str, name: str, version: Version | None,
                       values: dict[str, Any], *, job_kind: str | None,
                       max_queued: int) -> Version:
        """Insert a version (the next major when ``version`` is None), with its import job.

        ``HubNotFound``; ``QueueFull`` when ``job_kind`` is set and the hub already has
        ``max_queued`` active imports; ``VersionExists`` when the version is taken.
        """
        ts = now()
        with self.db.write() as conn:
            _require_hub(conn, hub)
            if values.get("owned_bucket") and values.get("owned_key"):
                self._serialize_object(conn, values["owned_bucket"], values["owned_key"])
            if job_kind:
                active = conn.execute(select(func.count()).select_from(jobs).where(
                    jobs.c.hub_name == hub, jobs.c.state.in_(ACTIVE_JOB_STATES))).scalar_one()
                if active >= max_queued:
                    raise QueueFull(active)
            allocate = version is None
            for _attempt in range(64 if allocate else 1):
                if allocate:
                    # Under READ COMMITTED each try sees the versions committed so far; a
                    # racing insert of the same major blocks us on the unique index until
                    # it commits, then fails us, and the next try takes the major after it.
                    top = conn.execute(select(func.max(hub_contents.c.v_major)).where(
                        hub_contents.c.hub_name == hub,
                        hub_contents.c.content_type == content_type,
                        hub_contents.c.name == name)).scalar()
                    version = ((top or 0) + 1, 0, 0)
                assert version is not None
                try:
                    with conn.begin_nested():
                        result = conn.execute(insert(hub_contents).values(
                            hub_name=hub, content_type=content_type, name=name,
                            v_major=version[0], v_minor=version[1], v_patch=version[2],
                            created_at=ts, modified_at=ts, **values))
                    break
                except IntegrityError:
                    if not allocate or _attempt == 63:
                        raise VersionExists(version) from None
            if job_kind:
                conn.execute(insert(jobs).values(
                    hub_name=hub, content_id=result.inserted_primary_key[0], kind=job_kind,
                    state="queued", attempts=0, created_at=ts))
        return version

    def update_content(self, hub: str, content_type: str, name: str, version: Version,
                       values: dict[str, Any]) -> Row:
        with self.db.write() as conn:
            _require_hub(conn, hub)
            row = _require_content(conn, hub, content_type, name, version)
            conn.execute(update(hub_contents).where(hub_contents.c.id == row.id)
                         .values(**values, modified_at=now()))
        return row

    def delete_content(self, hub: str, content_type: str, name: str,
                       version: Version) -> tuple[Row, tuple[str, str] | None]:
        """Delete a version; returns it and the registry-owned object no version uses now.

        ``StillImporting`` while its import runs (its job would write to a deleted row).
        The returned object is only a candidate: delete it with ``collect_unreferenced``,
        which checks again under the object's lock (a new version may have named it since).
        """
        with self.db.write() as conn:
            _require_hub(conn, hub)
            row = _require_content(conn, hub, content_type, name, version)
            if row.status == "Importing":
                raise StillImporting(row)
            owned = (row.owned_bucket, row.owned_key) if row.owned_bucket and row.owned_key else None
            if owned:
                # Two versions sharing one object, deleted at once: without turns, each
                # would count the other (not yet committed) and neither would free it.
                self._serialize_object(conn, *owned)
            conn.execute(delete(jobs).where(jobs.c.content_id == row.id))
            conn.execute(delete(hub_contents).where(hub_contents.c.id == row.id))
            if owned and _versions_using(conn, *owned):
                owned = None
        return row, owned

    def collect_unreferenced(self, bucket: str, key: str, remove: Callable[[], None]) -> bool:
        """Run ``remove`` (delete the object) if no version names ``bucket``/``key``.

        Holds the object's turn while checking and removing, so a version inserted
        concurrently either is seen (nothing removed) or is inserted after the object is
        gone (its import then fails on the missing object, as for any missing source).
        """
        with self.db.write() as conn:
            self._serialize_object(conn, bucket, key)
            if _versions_using(conn, bucket, key):
                return False
            remove()
        return True

    def _serialize_object(self, conn: Connection, bucket: str, key: str) -> None:
        self.db.serialize(conn, f"owned-object:{bucket}/{key}")

    def page_contents(self, hub: str, content_type: str, filters: ContentFilter, *,
                      name: str | None, latest_only: bool, sort_by: str | None,
                      descending: bool, limit: int, after: Sequence[Any] | None,
                      keep: Callable[[Row], bool] | None = None,
                      ) -> tuple[list[Row], list[Any] | None]:
        """A page of versions: the latest of each name, or every version of ``name``.

        Rows carry the summary columns only (``_SUMMARY_COLUMNS``: no markdown, tags or
        stats; the document only of ModelReference rows). ``sort_by`` None means version
        order. ``keep`` filters rows after the query
        (for conditions SQL cannot express); the page is still ``limit`` rows.
        Returns the rows and the sort key of the last one when there are more.
        """
        shape = _ContentPage(
            by_name=name is not None, latest_only=latest_only,
            contains=bool(filters.name_contains),
            before=filters.created_before is not None, after_time=filters.created_after is not None,
            min_version=bool(filters.min_version), sort_by=sort_by, descending=descending,
            keyed=after is not None, limited=keep is None)
        keys = _content_keys(sort_by, name is not None)
        params: dict[str, Any] = {"hub": hub, "ctype": content_type, "limit": limit + 1}
        if name is not None:
            params["name"] = name
        if filters.name_contains:
            params["contains"] = _like_pattern(filters.name_contains)
        if filters.created_before is not None:
            params["before"] = filters.created_before
        if filters.created_after is not None:
            params["after_time"] = filters.created_after
        if filters.min_version:
            major, minor, patch = filters.min_version
            params.update(min_major=major, min_minor=minor, min_patch=patch)
        if after is not None:
            if len(after) != len(keys):
                raise ValueError("page key does not fit this listing")
            params.update({f"k{i}": value for i, value in enumerate(after)})
        rows, last = self._fetch_page(_content_page_statement(shape), params, keys, limit, keep)
        if not rows:
            with self.db.read() as conn:
                _require_hub(conn, hub)
        return rows, last

    def documents_naming(self, bucket: str) -> list[Row]:
        """``content_type``, ``document`` and owned object of every version that names
        ``bucket``: owns an object there, or mentions it in its document (a superset the
        caller narrows by parsing). For the garbage collection of unregistered uploads."""
        c = hub_contents.c
        query = select(c.content_type, c.document, c.owned_bucket, c.owned_key).where(
            (c.owned_bucket == bucket) | c.document.contains(bucket, autoescape=True))
        with self.db.read() as conn:
            return list(conn.execute(query).fetchall())

    # -- tags ------------------------------------------------------------------------------

    def get_tags(self, target: tuple[str, Any]) -> str:
        with self.db.read() as conn:
            table, cond = _tag_target(conn, target)
            return conn.execute(select(table.c.tags).where(cond)).scalar_one()

    def change_tags(self, target: tuple[str, Any], change: Callable[[str], str]) -> None:
        """Read-modify-write of a resource's tags JSON in one write transaction."""
        with self.db.write() as conn:
            table, cond = _tag_target(conn, target)
            current = conn.execute(select(table.c.tags).where(cond)).scalar_one()
            conn.execute(update(table).where(cond).values(tags=change(current)))

    # -- paging ----------------------------------------------------------------------------

    def _page(self, query: Any, keys: list[Any], descending: bool, limit: int,
              after: Sequence[Any] | None, keep: Callable[[Row], bool] | None,
              ) -> tuple[list[Row], list[Any] | None]:
        if after is not None:
            if len(after) != len(keys):
                raise ValueError("page key does not fit this listing")
            cmp = tuple_(*keys) < tuple_(*after) if descending else tuple_(*keys) > tuple_(*after)
            query = query.where(cmp)
        query = query.order_by(*[k.desc() if descending else k.asc() for k in keys])
        if keep is None:
            query = query.limit(limit + 1)
        return self._fetch_page(query, {}, keys, limit, keep)

    def _fetch_page(self, query: Any, params: dict[str, Any], keys: list[Any], limit: int,
                    keep: Callable[[Row], bool] | None) -> tuple[list[Row], list[Any] | None]:
        """Run a page query (already limited to ``limit + 1`` rows unless ``keep`` filters)."""
        out: list[Row] = []
        with self.db.read() as conn:
            if keep is None:
                out = list(conn.execute(query, params).fetchall())
            else:
                for row in conn.execute(query, params):
                    if keep(row):
                        out.append(row)
                        if len(out) > limit:
                            break
        if len(out) <= limit:
            return out, None
        out = out[:limit]
        return out, [getattr(out[-1], k.name) for k in keys]


def _versions_using(conn: Connection, bucket: str, key: str) -> int:
    return conn.execute(select(func.count()).select_from(hub_contents).where(
        hub_contents.c.owned_bucket == bucket, hub_contents.c.owned_key == key)).scalar_one()


def _require_hub(conn: Connection, name: str) -> Row:
    row = conn.execute(_HUB_BY_NAME, {"hub": name}).first()
    if row is None:
        raise HubNotFound(name)
    return row


def _require_content(conn: Connection, hub: str, content_type: str, name: str,
                     version: Version) -> Row:
    args = {"hub": hub, "ctype": content_type, "name": name, "major": version[0],
            "minor": version[1], "patch": version[2]}
    row = conn.execute(_CONTENT_VERSION, args).first()
    if row is None:
        raise ContentNotFound((hub, content_type, name, version))
    return row


def _tag_target(conn: Connection, target: tuple[str, Any]) -> tuple[Any, Any]:
    kind, ident = target
    if kind == "hub":
        _require_hub(conn, ident)
        return hubs, hubs.c.name == ident
    hub, content_type, name, version = ident
    row = _require_content(conn, hub, content_type, name, version)
    return hub_contents, hub_contents.c.id == row.id


__all__ = [
    "ContentFilter",
    "ContentNotFound",
    "HubExists",
    "HubFilter",
    "HubNotEmpty",
    "HubNotFound",
    "HubRepository",
    "QueueFull",
    "StillImporting",
    "VersionExists",
]
