"""Per-call deadlines of one worker, enforced by the parent from the worker's shared slot."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .channel import WorkerProcess
    from .dispatch import Flight

IDLE_GRACE_NS = 1_000_000_000  # extra slack when a worker sits "between calls" with work queued


class DeadlineWatch:
    """Deadline bookkeeping for one worker's in-flight calls.

    The worker reports (call id, start time) in a shared slot. The slot is written by untrusted
    code, so its start time is clamped to [last progress, now] and the first time we saw each
    id is remembered: a worker cannot postpone its own deadline by rewriting the slot.
    """

    __slots__ = ("first_seen", "last_progress")

    def __init__(self, now: int) -> None:
        self.first_seen: dict[int, int] = {}
        self.last_progress = now

    def progress(self, now: int, expected: int) -> None:
        """Results arrived: forget the idle marker and every call answered by now."""
        self.last_progress = now
        seen = self.first_seen
        if seen:
            for cid in [c for c in seen if c < expected]:
                del seen[cid]

    @staticmethod
    def running_call(worker: WorkerProcess, flight: Flight) -> int | None:
        cid = worker.slot[0]
        return cid if flight.running(cid, worker.next_id) else None

    def deadline(
        self, worker: WorkerProcess, flight: Flight, now: int, timeout_ns: int
    ) -> tuple[int | None, int, int]:
        """(running call id or None, when to kill, when to look again)."""
        slot = worker.slot
        cid = slot[0]
        t0 = slot[1]
        if cid and flight.running(cid, worker.next_id):
            since = self.first_seen.get(cid)
            if since is None:
                since = min(max(t0, self.last_progress), now)
                self.first_seen[cid] = since
            return cid, since + timeout_ns, since + timeout_ns
        # Between calls (or not started yet): a call may begin any moment, and its deadline is
        # at least ``timeout`` away, so looking again after ``timeout`` is soon enough.
        since = self.first_seen.get(0)
        if since is None:
            since = max(now, self.last_progress)
            self.first_seen[0] = since
        kill_at = since + timeout_ns + IDLE_GRACE_NS
        return None, kill_at, min(kill_at, now + timeout_ns)
