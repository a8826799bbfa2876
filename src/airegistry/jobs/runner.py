"""Import jobs: persisted in the metadata store, claimed atomically, kept alive by heartbeats.

A job row is created in the same transaction as the hub content version it imports, so
a version in status ``Importing`` always has a job that will end it. Any process that
opens the home runs a ``JobRunner``; runners in several processes share the queue:

- a claim is a compare-and-set on the job row inside a claim transaction that checks
  the hub's running count (``storage.metadata.jobs``), so two runners -- two
  processes, or two server replicas on two hosts -- never take one job, even under
  PostgreSQL's READ COMMITTED, and a hub never runs more than ``per_hub_limit`` at once;
- a running job's owner refreshes ``heartbeat_at``; a job whose heartbeat went stale
  (``AIREGISTRY_JOB_STALE_SECONDS``, from any host), or whose owner is a process on this
  host that no longer exists (SIGKILL, crash), is claimed again by the next runner;
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

from sqlalchemy.engine import Row

from airegistry.pids import pid_alive
from airegistry.storage.metadata import JobRepository
from airegistry.storage.metadata.tables import now

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
ResultValues = Callable[[ImportOutcome], dict[str, Any]]
"""How an outcome is written on its version (the hub service's rules: statuses, limits)."""


class JobRunner:
    """Runs import jobs of one home in background threads of this process."""

    def __init__(
        self,
        repository: JobRepository,
        executors: dict[str, Executor],
        result_values: ResultValues,
        *,
        per_hub_limit: int = 4,
        heartbeat_s: float = 2.0,
        stale_s: float = 30.0,
        poll_s: float = 1.0,
        max_attempts: int = 5,
    ) -> None:
        self.repo = repository
        self.executors = executors
        self._values = result_values
        self.per_hub_limit = per_hub_limit
        self.heartbeat_s = heartbeat_s
        self.stale_s = stale_s
        self.poll_s = poll_s
        self.max_attempts = max_attempts
        # Which machine owns a job: replicas on one host (containers) may set distinct names.
        self.host = (os.environ.get("AIREGISTRY_NODE_NAME") or socket.gethostname())[:100]
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
                self.repo.hand_back(self.owner, [c.job_id for c in active])
            except Exception:  # pragma: no cover - best effort at interpreter exit
                log.exception("could not hand running imports back to the queue")
        self._pool.shutdown(wait=False, cancel_futures=True)

    def queue_depth(self) -> dict[str, int]:
        return self.repo.depth()

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
        owned = self.repo.heartbeat(self.owner, ids)
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
        return not pid_alive(pid)

    def _claim_and_submit(self) -> None:
        with self._lock:
            free = self.per_hub_limit - len(self._active)
        if free <= 0:
            return
        exhausted = self._values(ImportOutcome(
            "ImportFailed",
            f"The import was interrupted {self.max_attempts} times (the process running it "
            "died); giving up. Check the source and create a new version.",
        ))
        claimed = self.repo.claim(
            self.owner, free, per_hub_limit=self.per_hub_limit,
            stale_before=now() - self.stale_s, max_attempts=self.max_attempts,
            may_take=self._is_orphan, exhausted_values=exhausted,
        )
        for item in claimed:
            ctx = JobContext(job_id=item.job_id, kind=item.kind, content=item.content)
            with self._lock:
                self._active[item.job_id] = ctx
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
            # False: taken over by another runner (we looked dead); its result wins
            self.repo.finish(self.owner, ctx.job_id, ctx.content.id, self._values(outcome))
        except Exception:
            log.exception("could not record the result of import job %s", ctx.job_id)
        finally:
            with self._lock:
                self._active.pop(ctx.job_id, None)
            self._wake.set()
