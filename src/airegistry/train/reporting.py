"""The training process's side of the record: heartbeats, progress, stop requests, logs.

A background thread sends the latest progress every ``AIREGISTRY_TRAINING_HEARTBEAT_SECONDS``
(default 2) as an ``UpdateTrialComponent`` report, which the registry also takes as the
heartbeat, and reads the job back to notice ``Stopping`` (``StopTrainingJob``). The
training loop never waits on the network: its callback only updates in-memory state and
checks an ``Event``. Per-step metric rows and log lines are written to the record's
objects every few heartbeats and at the end.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from airegistry.session import Session
from airegistry.train.artifacts import record_uri
from airegistry.training.service import trial_component_name

log = logging.getLogger(__name__)

DEFAULT_HEARTBEAT_SECONDS = 2.0
_FLUSH_EVERY = 5  # heartbeats between object flushes


def heartbeat_seconds() -> float:
    value = os.environ.get("AIREGISTRY_TRAINING_HEARTBEAT_SECONDS")
    return float(value) if value else DEFAULT_HEARTBEAT_SECONDS


def process_start_token(pid: int) -> str | None:
    """When ``pid`` started (clock ticks since boot, Linux), so a reused pid is told apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return None
    fields = data[data.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


def _string(value: Any) -> dict[str, Any]:
    return {"StringValue": str(value)[:2500]}


def _number(value: float) -> dict[str, Any]:
    return {"NumberValue": float(value)}


class _Capture(logging.Handler):
    def __init__(self, reporter: JobReporter) -> None:
        super().__init__(logging.INFO)
        self.reporter = reporter
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.reporter.log_line(self.format(record))


class JobReporter:
    """Reports one job's progress to the registry from the process that trains it."""

    CAPTURED_LOGGERS = ("airegistry", "transformers", "trl", "peft")

    def __init__(
        self, session: Session, job_name: str, *, heartbeat_s: float | None = None,
        primary: bool = True,
    ) -> None:
        self.session = session
        # Only one process of a multi-GPU run reports; the others only watch for a stop.
        self.primary = primary
        self.client = session.sagemaker_client
        self.job_name = job_name
        self.component = trial_component_name(job_name)
        self.heartbeat_s = heartbeat_seconds() if heartbeat_s is None else heartbeat_s
        self.stop_requested = threading.Event()
        self.abandoned = threading.Event()  # the record no longer accepts our reports
        self._lock = threading.Lock()
        self._parameters: dict[str, Any] = {}
        self._rows: list[dict[str, Any]] = []
        self._lines: list[str] = []
        self._dirty = False
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._capture = _Capture(self)

    # -- what the training loop calls (cheap, no network) --------------------------------

    def progress(self, **values: float) -> None:
        with self._lock:
            for key, value in values.items():
                self._parameters[f"Progress.{key}"] = _number(value)

    def status_message(self, message: str) -> None:
        with self._lock:
            self._parameters["StatusMessage"] = _string(message)

    def metric_row(self, row: Mapping[str, Any]) -> None:
        with self._lock:
            self._rows.append(dict(row))
            self._dirty = True

    def log_line(self, line: str) -> None:
        with self._lock:
            self._lines.append(line)
            self._dirty = True

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        pid = os.getpid()
        parameters = {
            "Process.Host": _string(socket.gethostname()),
            "Process.Pid": _string(pid),
            "SecondaryStatus": _string("Downloading"),
            "StatusMessage": _string("Loading the datasets and the base model"),
        }
        start = process_start_token(pid)
        if start:
            parameters["Process.Start"] = _string(start)
        self._send({"Parameters": parameters, "StartTime": datetime.now(timezone.utc)})
        for name in self.CAPTURED_LOGGERS:
            logging.getLogger(name).addHandler(self._capture)
        self._thread = threading.Thread(target=self._beat, name=f"heartbeat-{self.job_name}", daemon=True)
        self._thread.start()

    def secondary(self, status: str, message: str) -> None:
        self._send({"Parameters": {"SecondaryStatus": _string(status), "StatusMessage": _string(message)}})

    def finish(
        self,
        status: str,
        *,
        message: str | None = None,
        metrics: Mapping[str, float] | None = None,
        artifacts: Mapping[str, str] | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> None:
        """The last report: terminal status, final metrics, artifacts; objects flushed first."""
        self._done.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for name in self.CAPTURED_LOGGERS:
            logging.getLogger(name).removeHandler(self._capture)
        self.flush()
        parameters = {f"Metric.{k}": _number(v) for k, v in (metrics or {}).items()}
        parameters.update({k: _string(v) for k, v in (extra or {}).items()})
        with self._lock:
            parameters.update(self._parameters)
        report: dict[str, Any] = {
            "Status": {"PrimaryStatus": status, **({"Message": message[:1024]} if message else {})},
            "EndTime": datetime.now(timezone.utc),
            "Parameters": parameters,
        }
        if artifacts:
            report["OutputArtifacts"] = {k: {"Value": v} for k, v in artifacts.items()}
        self._send(report)

    def _beat(self) -> None:
        beats = 0
        while not self._done.wait(self.heartbeat_s):
            with self._lock:
                parameters = dict(self._parameters)
            self._send({"Parameters": parameters} if parameters else {})
            try:
                status = self.client.describe_training_job(TrainingJobName=self.job_name)[
                    "TrainingJobStatus"
                ]
            except (ClientError, BotoCoreError) as exc:
                log.warning("could not read job %s back: %s", self.job_name, exc)
            else:
                if status == "Stopping":
                    self.stop_requested.set()
                elif status in ("Failed", "Completed", "Stopped"):
                    self.abandoned.set()
                    self.stop_requested.set()
            beats += 1
            if beats % _FLUSH_EVERY == 0:
                self.flush()

    def _send(self, report: dict[str, Any]) -> None:
        if self.abandoned.is_set() or not self.primary:
            return
        try:
            self.client.update_trial_component(TrialComponentName=self.component, **report)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ValidationException":
                # The record is final (a reader declared us dead, or we finished): stop.
                log.warning("job %s no longer accepts reports: %s", self.job_name, exc)
                self.abandoned.set()
                self.stop_requested.set()
            else:
                log.warning("report for job %s failed: %s", self.job_name, exc)
        except BotoCoreError as exc:
            log.warning("report for job %s failed: %s", self.job_name, exc)

    def flush(self) -> None:
        """Write metrics.jsonl and logs.txt (whole objects: small for the runs this serves)."""
        with self._lock:
            if not self._dirty or not self.primary:
                return
            rows = list(self._rows)
            lines = list(self._lines)
            self._dirty = False
        try:
            from airegistry.dataset import parse_s3_uri

            metrics_uri = record_uri(self.session, self.job_name, "metrics.jsonl")
            logs_uri = record_uri(self.session, self.job_name, "logs.txt")
            bucket, metrics_key = parse_s3_uri(metrics_uri)
            self.session.objects.ensure_bucket(bucket)
            body = "".join(json.dumps(r, default=str) + "\n" for r in rows).encode()
            self.session.objects.put_bytes(bucket, metrics_key, body, content_type="application/jsonl")
            self.session.objects.put_bytes(
                bucket, parse_s3_uri(logs_uri)[1], ("\n".join(lines) + "\n").encode(),
                content_type="text/plain",
            )
        except Exception as exc:
            log.warning("could not store the metrics and logs of job %s: %s", self.job_name, exc)

    @property
    def rows(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._rows)


def timestamp() -> float:
    return time.time()
