"""Evaluations started from the UI: run in the background, progress and results as records.

A run streams the dataset's rows into ``Evaluator.evaluate`` (the SDK does the scoring)
on a background thread and writes its record every half second: rows read, state, and
at the end the reward distribution (bin counts), summary numbers, the failures, and the
lowest-scoring rows (read back by their cursors, so no run holds the dataset in memory).
A record whose heartbeat stopped (the server was restarted mid-run) reads as interrupted.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from array import array
from collections import Counter
from collections.abc import Iterator
from typing import Any

from airegistry.ui.preview import Cursor
from airegistry.ui.read_model import ReadModel
from airegistry.ui.state import RecordStore

log = logging.getLogger(__name__)

KIND = "evaluations"
BINS = 20
LOWEST = 10
HEARTBEAT_S = 0.5
STALE_S = 60.0


class EvaluationRunner:
    def __init__(self, model: ReadModel, store: RecordStore, *, parallel: int = 2) -> None:
        self.model = model
        self.store = store
        self._slots = threading.BoundedSemaphore(parallel)

    def start(self, evaluator: str, evaluator_version: str | None, dataset: str,
              dataset_version: str | None, limit: int | None) -> str:
        """Check both exist, record the run as queued, and start it; returns the run id."""
        ev = self.model.evaluator(evaluator, evaluator_version)
        ds = self.model.dataset(dataset, dataset_version)
        rows = ds.stats.get("rows") if isinstance(ds.stats.get("rows"), int) else None
        total = min(t for t in (rows, limit) if t is not None) if rows or limit else None
        run_id = self.store.new_id()
        record: dict[str, Any] = {
            "id": run_id, "state": "queued", "evaluator": ev.name, "evaluator_version": ev.version,
            "dataset": ds.name, "dataset_version": ds.version, "limit": limit, "total": total,
            "done": 0, "started": time.time(), "heartbeat": time.time(),
        }
        self.store.put(KIND, run_id, record)
        self.store.prune(KIND)
        thread = threading.Thread(target=self._run, args=(record,), name=f"ui-evaluate-{run_id[:6]}",
                                  daemon=True)
        thread.start()
        return run_id

    def get(self, run_id: str) -> dict[str, Any] | None:
        record = self.store.get(KIND, run_id)
        if record and record.get("state") in ("queued", "running") \
                and time.time() - float(record.get("heartbeat", 0)) > STALE_S:
            record["state"] = "interrupted"
        return record

    def _run(self, record: dict[str, Any]) -> None:
        with self._slots:
            try:
                self._evaluate(record)
            except Exception as exc:
                log.exception("evaluation %s failed", record["id"])
                record.update(state="failed", error=f"{type(exc).__name__}: {exc}")
            record["heartbeat"] = record["finished"] = time.time()
            self.store.put(KIND, record["id"], record)

    def _evaluate(self, record: dict[str, Any]) -> None:
        ds = self.model.dataset(record["dataset"], record["dataset_version"])
        record["state"] = "running"
        self.store.put(KIND, record["id"], record)
        numbers, offsets = array("q"), array("q")
        unreadable = 0
        last_write = time.monotonic()

        def events() -> Iterator[dict[str, Any]]:
            nonlocal unreadable, last_write
            for row in self.model.dataset_rows(ds):
                if row.error or not isinstance(row.value, dict):
                    unreadable += 1
                    continue
                numbers.append(row.number)
                offsets.append(-1 if row.at is None else row.at)
                record["done"] = len(numbers)
                if time.monotonic() - last_write > HEARTBEAT_S:
                    last_write = time.monotonic()
                    record["heartbeat"] = time.time()
                    self.store.put(KIND, record["id"], record)
                yield row.value

        outcomes = self.model.evaluate(record["evaluator"], record["evaluator_version"], events(),
                                       record["limit"])
        rewards = [o.reward for o in outcomes if o.ok]
        failed = [o for o in outcomes if not o.ok]
        counts = [0] * BINS
        for r in rewards:
            counts[min(BINS - 1, int(r * BINS))] += 1
        lowest = sorted((o for o in outcomes if o.ok), key=lambda o: (o.reward, o.index))[:LOWEST]
        cursors = [Cursor(numbers[o.index], None if offsets[o.index] < 0 else offsets[o.index])
                   for o in lowest]
        rows = self.model.rows_at(ds, cursors)
        record.update(
            state="done", done=len(outcomes), scored=len(rewards), failed=len(failed),
            unreadable=unreadable, bins=counts,
            mean=statistics.fmean(rewards) if rewards else None,
            median=statistics.median(rewards) if rewards else None,
            min=min(rewards) if rewards else None, max=max(rewards) if rewards else None,
            error_types=Counter(o.error_type or "Error" for o in failed).most_common(10),
            failures=[{"number": numbers[o.index], "error_type": o.error_type, "error": o.error}
                      for o in failed[:10]],
            lowest=[{"number": row.number, "reward": o.reward, "details": o.details,
                     "row": row.value} for o, row in zip(lowest, rows, strict=False)],
        )
