"""Periodic housekeeping of a registry: abandoned multipart uploads and unregistered uploads.

Two things are left behind by clients that die midway, and nothing else would ever remove
them:

- **multipart uploads** that were never completed or aborted (a killed ``aws s3 cp``, a
  boto3 transfer interrupted): aborted once older than ``AIREGISTRY_MULTIPART_EXPIRY_SECONDS``
  (default a day), in every bucket (``storage.blobs.maintenance.expire_uploads``);
- **objects an SDK create uploaded but never registered**: ``DataSet.create`` and
  ``Evaluator.create`` upload the file to the registry bucket (under ``datasets/`` and
  ``evaluators/``) and then import the version; a process killed between the two leaves an
  object no version references. Objects there older than ``AIREGISTRY_ORPHAN_GRACE_SECONDS``
  (default an hour: far longer than the gap between an upload and its import) that no
  version names, as its owned object, its dataset file, a dependency or an evaluator's
  prompt, are deleted. Nothing outside those prefixes is touched (function code packages
  live under ``functions/`` and belong to the function service), nor any other bucket.

``Maintenance`` runs both every ``AIREGISTRY_MAINTENANCE_INTERVAL_SECONDS`` (default an hour;
0 turns it off) on a daemon thread of each process that runs import jobs. Each round is
claimed in the metadata store's settings first, so among all the processes and replicas
sharing one store a round runs once per interval, wherever.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from airegistry.hub import documents
from airegistry.storage.blobs import BlobStore
from airegistry.storage.blobs.errors import BlobStoreError, NoSuchBucket
from airegistry.storage.blobs.maintenance import expire_uploads
from airegistry.storage.metadata import HubRepository, SettingsRepository

log = logging.getLogger(__name__)

#: Where the SDK puts what it uploads before importing it (see ``dataset.py``, ``evaluator.py``).
UPLOAD_PREFIXES = ("datasets/", "evaluators/")
_CLAIM_KEY = "maintenance_last_run"


@dataclass
class MaintenanceSettings:
    interval_s: float = 3600.0
    multipart_expiry_s: float = 86400.0
    orphan_grace_s: float = 3600.0

    @classmethod
    def from_env(cls) -> MaintenanceSettings:
        def number(name: str, default: float) -> float:
            value = os.environ.get(name)
            if not value:
                return default
            try:
                parsed = float(value)
            except ValueError:
                raise ValueError(f"{name} must be a number of seconds, got {value!r}") from None
            if parsed < 0:
                raise ValueError(f"{name} must not be negative, got {value!r}")
            return parsed

        return cls(
            interval_s=number("AIREGISTRY_MAINTENANCE_INTERVAL_SECONDS", cls.interval_s),
            multipart_expiry_s=number("AIREGISTRY_MULTIPART_EXPIRY_SECONDS",
                                      cls.multipart_expiry_s),
            orphan_grace_s=number("AIREGISTRY_ORPHAN_GRACE_SECONDS", cls.orphan_grace_s),
        )


def _referenced(rows: Iterable[Any], bucket: str) -> tuple[set[str], tuple[str, ...]]:
    """Keys of ``bucket`` that versions name, and the prefixes their dependencies name."""
    keys: set[str] = set()
    prefixes: list[str] = []
    for row in rows:
        if row.owned_bucket == bucket and row.owned_key:
            keys.add(row.owned_key)
        try:
            named = documents.artifacts(row.content_type, row.document)
        except documents.DocumentError:
            continue
        for uri, _, kind in named:
            location = documents.s3_location(uri)
            if location is None or location[0] != bucket:
                continue
            (prefixes.append if kind == "prefix" else keys.add)(location[1])
    return keys, tuple(prefixes)


def collect_orphans(objects: BlobStore, hubs: HubRepository, bucket: str, grace_s: float, *,
                    now: datetime | None = None, prefixes: Iterable[str] = UPLOAD_PREFIXES) -> int:
    """Delete the unregistered uploads of ``bucket`` older than ``grace_s``; returns how many."""
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(seconds=grace_s)
    candidates: list[str] = []
    try:
        for prefix in prefixes:
            token = None
            while True:
                page = objects.list_objects(bucket, prefix=prefix, continuation_token=token)
                candidates += [o.key for o in page.contents if o.last_modified < cutoff]
                token = page.next_continuation_token
                if not token:
                    break
    except NoSuchBucket:
        return 0
    if not candidates:
        return 0
    # Read after listing: a version registered meanwhile is seen, so its object stays.
    keys, dependency_prefixes = _referenced(hubs.documents_naming(bucket), bucket)
    deleted = 0
    for key in candidates:
        if key in keys or key.startswith(dependency_prefixes):
            continue
        try:
            objects.delete_object(bucket, key)
        except NoSuchBucket:
            break
        deleted += 1
        log.info("deleted s3://%s/%s: uploaded by a create that never registered it", bucket, key)
    return deleted


@dataclass
class RoundResult:
    uploads_aborted: int = 0
    orphans_deleted: int = 0


class Maintenance:
    """Runs the housekeeping rounds of one registry on a daemon thread."""

    def __init__(self, objects: BlobStore, hubs: HubRepository, settings: SettingsRepository,
                 registry_bucket: str, config: MaintenanceSettings | None = None) -> None:
        self.objects = objects
        self.hubs = hubs
        self.settings = settings
        self.registry_bucket = registry_bucket
        self.config = config or MaintenanceSettings.from_env()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def run_once(self, *, now: datetime | None = None) -> RoundResult:
        """One round, unconditionally (tests and operators call it directly)."""
        result = RoundResult()
        result.uploads_aborted = expire_uploads(self.objects, self.config.multipart_expiry_s,
                                                now=now)
        result.orphans_deleted = collect_orphans(self.objects, self.hubs, self.registry_bucket,
                                                 self.config.orphan_grace_s, now=now)
        return result

    def run_if_due(self) -> RoundResult | None:
        """A round if no process sharing the store ran one within the interval."""
        if not self.settings.claim_interval(_CLAIM_KEY, self.config.interval_s, time.time()):
            return None
        return self.run_once()

    def start(self) -> None:
        if self.config.interval_s <= 0:
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            ref = weakref.ref(self)
            self._thread = threading.Thread(target=_loop, args=(ref, self._stop),
                                            name="airegistry-maintenance", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)


def _loop(ref: weakref.ref[Maintenance], stop: threading.Event) -> None:
    # The first round waits a little: a short SDK script exits before it would start.
    delay = 60.0
    while not stop.wait(delay):
        maintenance = ref()
        if maintenance is None:
            return
        delay = max(1.0, min(maintenance.config.interval_s, 600.0))
        try:
            maintenance.run_if_due()
        except BlobStoreError as exc:
            log.warning("maintenance round failed (blob store): %s", exc)
        except Exception:
            log.exception("maintenance round failed")
        del maintenance


__all__ = ["UPLOAD_PREFIXES", "Maintenance", "MaintenanceSettings", "collect_orphans"]
