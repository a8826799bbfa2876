"""Import jobs: the queue's SQL, safe under PostgreSQL's READ COMMITTED and SQLite alike.

A job row is created in the same transaction as the version it imports (see
``HubRepository.insert_content``). Claiming is a compare-and-set: the claim ``UPDATE``
names the state, owner and attempt count the runner read, so when two runners (two
processes, two hosts) go for one job, the second finds the row changed and its update
matches nothing; the job runs once. Claim transactions also take turns (``BEGIN
IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL), so the per-hub running count
read inside them cannot be raced past. Every later step (heartbeat, finish, hand back)
is conditional on ``owner`` still being the runner, so a runner that was presumed dead
and taken over can never overwrite its successor's result.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.engine import Row

from airegistry.storage.metadata.database import Database
from airegistry.storage.metadata.tables import hub_contents, jobs, now

_CLAIM_LOCK = 0x4A4F4253  # "JOBS"


@dataclass
class Claimed:
    job_id: int
    kind: str
    content: Row


class JobRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def claim(
        self,
        owner: str,
        free: int,
        *,
        per_hub_limit: int,
        stale_before: float,
        max_attempts: int,
        may_take: Callable[[str | None], bool],
        exhausted_values: dict[str, Any],
    ) -> list[Claimed]:
        """Claim up to ``free`` runnable jobs for ``owner``; return them with their content.

        A job is runnable when queued, or running under another owner whose heartbeat is
        older than ``stale_before`` or whom ``may_take(owner)`` declares dead (a process
        of this host that no longer exists). A job already tried ``max_attempts`` times
        ends its version with ``exhausted_values`` instead of running again.
        """
        claimed: list[tuple[int, str, int]] = []
        with self.db.write() as conn:
            self.db.serialize(conn, _CLAIM_LOCK)
            candidates = conn.execute(
                select(jobs)
                .where(or_(jobs.c.state == "queued",
                           and_(jobs.c.state == "running", jobs.c.owner != owner)))
                .order_by(jobs.c.id)
                .limit(200)
            ).all()
            running_by_hub: dict[str, int] = dict(conn.execute(
                select(jobs.c.hub_name, func.count())
                .where(jobs.c.state == "running", jobs.c.heartbeat_at >= stale_before)
                .group_by(jobs.c.hub_name)
            ).all())
            for job in candidates:
                if len(claimed) >= free:
                    break
                if job.state == "running":
                    fresh = job.heartbeat_at is not None and job.heartbeat_at >= stale_before
                    if fresh and not may_take(job.owner):
                        continue
                    if fresh:  # counted as running above, but its owner is dead
                        running_by_hub[job.hub_name] = running_by_hub.get(job.hub_name, 1) - 1
                if running_by_hub.get(job.hub_name, 0) >= per_hub_limit:
                    continue
                if job.attempts >= max_attempts:
                    conn.execute(update(hub_contents).where(hub_contents.c.id == job.content_id)
                                 .values(**exhausted_values, modified_at=now()))
                    conn.execute(delete(jobs).where(jobs.c.id == job.id))
                    continue
                won = conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job.id, jobs.c.state == job.state,
                           jobs.c.attempts == job.attempts,
                           jobs.c.owner.is_(None) if job.owner is None
                           else jobs.c.owner == job.owner)
                    .values(state="running", owner=owner, heartbeat_at=now(),
                            attempts=job.attempts + 1)
                ).rowcount
                if won != 1:
                    continue  # another runner changed it first: it is theirs
                running_by_hub[job.hub_name] = running_by_hub.get(job.hub_name, 0) + 1
                claimed.append((job.id, job.kind, job.content_id))
            rows = {}
            if claimed:
                rows = {r.id: r for r in conn.execute(select(hub_contents).where(
                    hub_contents.c.id.in_([c for _, _, c in claimed]))).all()}
        return [Claimed(j, k, rows[c]) for j, k, c in claimed if c in rows]

    def heartbeat(self, owner: str, job_ids: Sequence[int]) -> set[int]:
        """Refresh the heartbeat of ``owner``'s jobs; returns the ids still owned."""
        with self.db.write() as conn:
            conn.execute(update(jobs).where(jobs.c.id.in_(job_ids), jobs.c.owner == owner)
                         .values(heartbeat_at=now()))
            return set(conn.execute(select(jobs.c.id).where(
                jobs.c.id.in_(job_ids), jobs.c.owner == owner)).scalars())

    def finish(self, owner: str, job_id: int, content_id: int, values: dict[str, Any]) -> bool:
        """Record a job's result and remove it, if ``owner`` still holds it (else False)."""
        with self.db.write() as conn:
            gone = conn.execute(delete(jobs).where(jobs.c.id == job_id, jobs.c.owner == owner))
            if gone.rowcount != 1:
                return False  # taken over by another runner (we looked dead): its result wins
            conn.execute(update(hub_contents).where(hub_contents.c.id == content_id)
                         .values(**values, modified_at=now()))
        return True

    def hand_back(self, owner: str, job_ids: Sequence[int]) -> None:
        """Put ``owner``'s running jobs back in the queue without charging an attempt."""
        with self.db.write() as conn:
            conn.execute(update(jobs).where(jobs.c.id.in_(job_ids), jobs.c.owner == owner)
                         .values(state="queued", owner=None, heartbeat_at=None,
                                 attempts=jobs.c.attempts - 1))

    def depth(self) -> dict[str, int]:
        with self.db.read() as conn:
            rows = conn.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state)).all()
        return {state: count for state, count in rows}


__all__ = ["Claimed", "JobRepository"]
