"""Import jobs: persisted in the metadata store, claimed atomically, kept alive by heartbeats.

A job row is created in the same transaction as the hub content version it imports, so
a version in status ``Importing`` always has a job that will end it. Any process that
opens the home runs a ``JobRunner``; runners in several processes share the queue:

- a claim is one write transaction that checks the hub's running count and flips the
  job to ``running`` under this process's owner id, so two runners never take one job
  and a hub never runs more than ``per_hub_limit`` imports at once;
- a running job's owner refreshes ``heartbeat_at``; a job whose heartbeat went stale,
  or whose owner is a process on this host that no longer exists (SIGKILL, crash), is
  claimed again by the next runner;
- a job interrupted ``max_attempts`` times fails its version instead of looping forever;
- a process that exits normally with imports still running hands them back to the
  queue (no attempt is charged), so a short-lived CLI call never burns attempts.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import uuid
import weakref
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.engine import Row

from airegistry.storage.metadata import Database, hub_contents, jobs, now

log = logging.getLogger(__name__)


@dataclass
class ImportOutcome:
    """What an executor decided about one version."""

    status: str  # "Available" or "ImportFailed"
    failure_reason: str | None = None
    stats: dict[str, Any] | None = None
    markdown: str | None = None


@dataclass
class JobContext:
    job_id: int
    kind: str
    content: Row
    cancelled: threading.Event = field(default_factory=threading.Event)


Executor = Callable[[JobContext], ImportOutcome]
Finisher = Callable[..., None]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class JobRunner:
    """Runs import jobs of one home in background threads of this process."""

    def __init__(
        self,
        db: Database,
        executors: dict[str, Executor],
        finish: Finisher,
        *,
        per_hub_limit: int = 4,
        heartbeat_s: float = 2.0,
        stale_s: float = 30.0,
        poll_s: float = 1.0,
        max_attempts: int = 5,
    ) -> None:
        self.db = db
        self.executors = executors
        self._finish = finish
        self.per_hub_limit = per_hub_limit
        self.heartbeat_s = heartbeat_s
        self.stale_s = stale_s
        self.poll_s = poll_s
        self.max_attempts = max_attempts
        self.host = socket.gethostname()[:100]
        self.token = uuid.uuid4().hex[:12]
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._active: dict[int, JobContext] = {}
        self._pool = ThreadPoolExecutor(max_workers=per_hub_limit, thread_name_prefix="airegistry-import")
        self._thread: threading.Thread | None = None

    @property
    def owner(self) -> str:
        return f"{self.host}:{os.getpid()}:{self.token}"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._loop, name="airegistry-jobs", daemon=True)
            self._thread.start()
        ref = weakref.ref(self)
        atexit.register(lambda: (r := ref()) and r.stop())

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Stop claiming and hand unfinished jobs back to the queue for another process."""
        self._stop.set()
        self._wake.set()
        with self._lock:
            active = list(self._active.values())
        for ctx in active:
            ctx.cancelled.set()
        if active:
            try:
                with self.db.write() as conn:
                    conn.execute(
                        update(jobs)
                        .where(jobs.c.id.in_([c.job_id for c in active]), jobs.c.owner == self.owner)
                        .values(
                            state="queued", owner=None, heartbeat_at=None,
                            attempts=jobs.c.attempts - 1,
                        )
                    )
            except Exception:  # pragma: no cover - best effort at interpreter exit
                log.exception("could not hand running imports back to the queue")
        self._pool.shutdown(wait=False, cancel_futures=True)

    def queue_depth(self) -> dict[str, int]:
        with self.db.read() as conn:
            rows = conn.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state)).all()
        return {state: count for state, count in rows}

    # -- main loop ---------------------------------------------------------------------------

    def _loop(self) -> None:
        last_beat = 0.0
        while not self._stop.is_set():
            try:
                if now() - last_beat >= self.heartbeat_s:
                    self._heartbeat()
                    last_beat = now()
                self._claim_and_submit()
            except Exception:
                log.exception("import job loop failed; retrying")
            self._wake.wait(min(self.poll_s, self.heartbeat_s))
            self._wake.clear()

    def _heartbeat(self) -> None:
        with self._lock:
            ids = list(self._active)
        if not ids:
            return
        with self.db.write() as conn:
            conn.execute(
                update(jobs)
                .where(jobs.c.id.in_(ids), jobs.c.owner == self.owner)
                .values(heartbeat_at=now())
            )
            owned = set(
                conn.execute(
                    select(jobs.c.id).where(jobs.c.id.in_(ids), jobs.c.owner == self.owner)
                ).scalars()
            )
        for job_id in ids:
            if job_id not in owned:
                with self._lock:
                    ctx = self._active.get(job_id)
                if ctx:
                    ctx.cancelled.set()

    def _is_orphan(self, owner: str | None) -> bool:
        """A running job whose owner process on this host is gone can be taken at once."""
        if not owner:
            return True
        host, _, rest = owner.partition(":")
        pid_text, _, token = rest.partition(":")
        if host != self.host:
            return False
        try:
            pid = int(pid_text)
        except ValueError:
            return True
        if pid == os.getpid():
            return token != self.token
        return not _pid_alive(pid)

    def _claim_and_submit(self) -> None:
        with self._lock:
            free = self.per_hub_limit - len(self._active)
        if free <= 0:
            return
        claimed: list[tuple[int, str, int]] = []
        failed: list[tuple[int, int]] = []
        stale_before = now() - self.stale_s
        with self.db.write() as conn:
            candidates = conn.execute(
                select(jobs)
                .where(
                    or_(
                        jobs.c.state == "queued",
                        and_(jobs.c.state == "running", jobs.c.owner != self.owner),
                    )
                )
                .order_by(jobs.c.id)
                .limit(200)
            ).all()
            running_by_hub: dict[str, int] = dict(
                conn.execute(
                    select(jobs.c.hub_name, func.count())
                    .where(jobs.c.state == "running", jobs.c.heartbeat_at >= stale_before)
                    .group_by(jobs.c.hub_name)
                ).all()
            )
            for job in candidates:
                if len(claimed) >= free:
                    break
                if job.state == "running":
                    fresh = job.heartbeat_at is not None and job.heartbeat_at >= stale_before
                    if fresh and not self._is_orphan(job.owner):
                        continue
                    if fresh:
                        # Counted as running above, but its owner is dead.
                        running_by_hub[job.hub_name] = running_by_hub.get(job.hub_name, 1) - 1
                if running_by_hub.get(job.hub_name, 0) >= self.per_hub_limit:
                    continue
                if job.attempts >= self.max_attempts:
                    failed.append((job.id, job.content_id))
                    continue
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job.id)
                    .values(
                        state="running", owner=self.owner, heartbeat_at=now(),
                        attempts=job.attempts + 1,
                    )
                )
                running_by_hub[job.hub_name] = running_by_hub.get(job.hub_name, 0) + 1
                claimed.append((job.id, job.kind, job.content_id))
            for job_id, content_id in failed:
                self._finish(
                    content_id,
                    status="ImportFailed",
                    failure_reason=(
                        f"The import was interrupted {self.max_attempts} times (the process "
                        "running it died); giving up. Check the source and create a new version."
                    ),
                    conn=conn,
                )
                conn.execute(delete(jobs).where(jobs.c.id == job_id))
            contents = {}
            if claimed:
                rows = conn.execute(
                    select(hub_contents).where(hub_contents.c.id.in_([c for _, _, c in claimed]))
                ).all()
                contents = {r.id: r for r in rows}
        for job_id, kind, content_id in claimed:
            row = contents.get(content_id)
            if row is None:
                continue
            ctx = JobContext(job_id=job_id, kind=kind, content=row)
            with self._lock:
                self._active[job_id] = ctx
            self._pool.submit(self._run, ctx)

    def _run(self, ctx: JobContext) -> None:
        try:
            executor = self.executors.get(ctx.kind)
            if executor is None:
                outcome = ImportOutcome("ImportFailed", f"No importer for job kind {ctx.kind}.")
            else:
                try:
                    outcome = executor(ctx)
                except Exception as exc:
                    log.exception("import job %s failed unexpectedly", ctx.job_id)
                    outcome = ImportOutcome(
                        "ImportFailed", f"Import failed unexpectedly: {type(exc).__name__}: {exc}"
                    )
            if ctx.cancelled.is_set():
                return
            with self.db.write() as conn:
                still_mine = conn.execute(
                    select(jobs.c.id).where(jobs.c.id == ctx.job_id, jobs.c.owner == self.owner)
                ).first()
                if still_mine is None:
                    return  # taken over by another process (we looked dead); its result wins
                self._finish(
                    ctx.content.id,
                    status=outcome.status,
                    failure_reason=outcome.failure_reason,
                    stats=outcome.stats,
                    markdown=outcome.markdown,
                    conn=conn,
                )
                conn.execute(delete(jobs).where(jobs.c.id == ctx.job_id))
        except Exception:
            log.exception("could not record the result of import job %s", ctx.job_id)
        finally:
            with self._lock:
                self._active.pop(ctx.job_id, None)
            self._wake.set()
