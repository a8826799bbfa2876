"""A registry home: the metadata store, the blob store and the services over them.

Opening a home wires the services together (metadata repositories, blob store, hub
service, import jobs, function runtime) exactly once per process and directory. The
embedded SDK backend and the HTTP server (``airegistry.server.compose``) both start
here, so they cannot drift apart; this module knows nothing of the server.

Layout: ``registry.db`` (SQLite, WAL) unless ``AIREGISTRY_DATABASE_URL`` points
elsewhere (PostgreSQL), ``blobs/`` (the filesystem blob store) unless
``AIREGISTRY_STORE_URL`` points elsewhere (``s3://bucket/prefix``), ``runtime/code/``
(the local cache of unpacked function code, by sha256), ``.migrate.lock``. With both
URLs set the directory holds only local caches: several server replicas on several
hosts share one database and one bucket, each with a home of its own.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from airegistry.hub.presign import PUBLIC_URL_ENV, ArtifactUrls, SigV4UrlSigner
from airegistry.hub.service import HubService, import_result_values
from airegistry.jobs.imports import (
    SourceMissingError,
    make_dataset_importer,
    make_evaluator_importer,
)
from airegistry.jobs.maintenance import Maintenance
from airegistry.jobs.runner import ImportOutcome, JobRunner
from airegistry.storage.blobs import STORE_URL_ENV, BlobStore, open_blob_store
from airegistry.storage.blobs.errors import BlobStoreError
from airegistry.storage.blobs.fs import FileBlobStore
from airegistry.storage.metadata import (
    DATABASE_URL_ENV,
    Database,
    FunctionRepository,
    HubRepository,
    JobRepository,
    SettingsRepository,
    migrate,
)

if TYPE_CHECKING:
    from airegistry.hub.json_protocol import Handler, SageMakerWire
    from airegistry.runtime.functions import FunctionService
    from airegistry.training.service import TrainingJobService

log = logging.getLogger(__name__)

DEFAULT_MAX_DATASET_BYTES = 1024**3


def default_home() -> Path:
    return Path(os.environ.get("AIREGISTRY_HOME") or Path.home() / ".airegistry").expanduser()


def default_region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def registry_bucket_name(account_id: str, region: str) -> str:
    """The bucket where the registry keeps what it uploads (datasets, evaluator code, prompts)."""
    return f"airegistry-{account_id}-{region}"


def hub_name_for(account_id: str, region: str) -> str:
    return f"airegistry-{account_id}-{region}"


def max_dataset_bytes() -> int:
    value = os.environ.get("AIREGISTRY_MAX_DATASET_BYTES")
    return int(value) if value else DEFAULT_MAX_DATASET_BYTES


def _outcome_values(outcome: ImportOutcome) -> dict[str, Any]:
    return import_result_values(outcome.status, outcome.failure_reason, outcome.stats,
                                outcome.markdown)


class Home:
    """The services of one registry directory, wired together."""

    def __init__(
        self,
        path: Path,
        *,
        database_url: str | None = None,
        store_url: str | None = None,
        region: str | None = None,
        start_jobs: bool = True,
    ) -> None:
        self.path = path.expanduser().resolve()
        self.path.mkdir(parents=True, exist_ok=True)
        url = database_url or os.environ.get(DATABASE_URL_ENV)
        self.db = Database(url or f"sqlite:///{self.path / 'registry.db'}",
                           pool_size=int(os.environ.get("AIREGISTRY_DATABASE_POOL_SIZE", "10")))
        # The first read (the schema revision) is where a database that is down fails,
        # with DatabaseUnavailable naming host and database.
        migrate(self.db, lock_path=self.path / ".migrate.lock")
        self.settings = SettingsRepository(self.db)
        self.region = region or default_region()
        self.account_id = self.settings.get_or_create(
            "account_id", lambda: str(secrets.randbelow(9 * 10**11) + 10**11))
        token_secret = bytes.fromhex(
            self.settings.get_or_create("token_secret", lambda: secrets.token_hex(32)))
        self.objects: BlobStore = open_blob_store(
            store_url or os.environ.get(STORE_URL_ENV), default_root=self.path / "blobs")
        self.hub = HubService(
            HubRepository(self.db),
            account_id=self.account_id,
            region=self.region,
            token_secret=token_secret,
            max_queued_imports=int(os.environ.get("AIREGISTRY_MAX_QUEUED_IMPORTS", "1000")),
            on_job_enqueued=self._job_enqueued,
            on_content_deleted=self._collect_object,
            artifacts=ArtifactUrls(self.objects, SigV4UrlSigner(
                self.settings, self.region, os.environ.get(PUBLIC_URL_ENV))),
        )
        self.jobs = JobRunner(
            JobRepository(self.db),
            {
                "import_dataset": make_dataset_importer(self.open_source, max_dataset_bytes()),
                "import_evaluator": make_evaluator_importer(self._check_function, self._object_exists),
            },
            _outcome_values,
            per_hub_limit=int(os.environ.get("AIREGISTRY_MAX_CONCURRENT_IMPORTS", "4")),
            heartbeat_s=float(os.environ.get("AIREGISTRY_JOB_HEARTBEAT_SECONDS", "2")),
            stale_s=float(os.environ.get("AIREGISTRY_JOB_STALE_SECONDS", "30")),
        )
        self.maintenance = Maintenance(self.objects, self.hub.repo, self.settings,
                                       self.registry_bucket)
        if start_jobs:
            self.start_background()

    def start_background(self) -> None:
        """Import jobs and the periodic housekeeping (``jobs.maintenance``) of this process."""
        self.jobs.start()
        self.maintenance.start()

    @property
    def shares_state(self) -> bool:
        """Whether the metadata lives outside this directory (replicas can share it)."""
        return not self.db.is_local

    # -- derived names ----------------------------------------------------------------------

    @property
    def registry_bucket(self) -> str:
        return registry_bucket_name(self.account_id, self.region)

    @property
    def hub_name(self) -> str:
        return hub_name_for(self.account_id, self.region)

    # -- services ---------------------------------------------------------------------------

    def wire_handlers(self) -> dict[str, Handler]:
        """Every SageMaker operation this home answers: add another service's handlers here."""
        return {**self.hub.handlers(), **self.training.handlers()}

    @cached_property
    def wire(self) -> SageMakerWire:
        from airegistry.hub.json_protocol import SageMakerWire

        return SageMakerWire(self.wire_handlers())

    @cached_property
    def training(self) -> TrainingJobService:
        from airegistry.training.service import TrainingJobService

        return TrainingJobService(self.db, account_id=self.account_id, region=self.region)

    @cached_property
    def functions(self) -> FunctionService:
        from airegistry.runtime.functions import FunctionService

        hidden = (self.path,)
        if isinstance(self.objects, FileBlobStore):  # a store outside the home: hide it too
            hidden += (self.objects.root,)
        return FunctionService(
            FunctionRepository(self.db), self.objects, account_id=self.account_id,
            region=self.region, code_bucket=self.registry_bucket,
            cache_dir=self.path / "runtime" / "code", hidden_paths=hidden,
        )

    def metrics_text(self) -> str:
        depth = self.jobs.queue_depth()
        lines = [
            "# HELP airegistry_import_jobs Import jobs by state.",
            "# TYPE airegistry_import_jobs gauge",
        ]
        for state in ("queued", "running"):
            lines.append(f'airegistry_import_jobs{{state="{state}"}} {depth.get(state, 0)}')
        if "functions" in self.__dict__:
            lines += [
                "# HELP airegistry_runtime_workers Warm evaluator worker processes.",
                "# TYPE airegistry_runtime_workers gauge",
                f"airegistry_runtime_workers {self.functions.worker_count()}",
            ]
        return "\n".join(lines) + "\n"

    # -- callbacks used by jobs and the hub service ----------------------------------------

    def _job_enqueued(self) -> None:
        self.jobs.wake()

    def _collect_object(self, bucket: str, key: str) -> None:
        try:
            self.hub.repo.collect_unreferenced(
                bucket, key, lambda: self.objects.delete_object(bucket, key))
        except BlobStoreError:
            log.warning("could not delete unreferenced object s3://%s/%s", bucket, key, exc_info=True)

    def owns_bucket(self, bucket: str) -> bool:
        return self.objects.has_bucket(bucket)

    def open_source(self, bucket: str, key: str) -> tuple[BinaryIO, int | None, str | None]:
        """Open a dataset source: the registry's own store first, any S3 bucket otherwise."""
        if self.owns_bucket(bucket):
            try:
                info, stream = self.objects.open_object(bucket, key)
            except BlobStoreError as exc:
                raise SourceMissingError(str(exc)) from None
            return stream, info.size, info.sha256
        return open_external_s3(bucket, key)

    def _object_exists(self, bucket: str, key: str) -> bool:
        if self.owns_bucket(bucket):
            return self.objects.exists(bucket, key)
        try:
            stream, _, _ = open_external_s3(bucket, key)
            stream.close()
        except SourceMissingError:
            return False
        return True

    def _check_function(self, arn: str) -> bool | None:
        return self.functions.owns_arn(arn)

    def close(self) -> None:
        self.maintenance.stop()
        self.jobs.stop()
        if "functions" in self.__dict__:
            self.functions.close()
        self.objects.close()
        self.db.dispose()


def open_external_s3(bucket: str, key: str) -> tuple[BinaryIO, int | None, str | None]:
    """Read an object of a bucket that is not ours, with the standard AWS configuration."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        response = boto3.session.Session().client("s3").get_object(Bucket=bucket, Key=key)
    except (ClientError, BotoCoreError) as exc:
        raise SourceMissingError(f"s3://{bucket}/{key}: {exc}") from None
    return response["Body"], response.get("ContentLength"), None


_homes: dict[tuple[Path, int], Home] = {}
_homes_lock = threading.Lock()


def open_home(path: Path | str | None = None, *, start_jobs: bool = True) -> Home:
    """The process-wide Home for a directory (created on first use)."""
    resolved = Path(path or default_home()).expanduser().resolve()
    key = (resolved, os.getpid())
    with _homes_lock:
        home = _homes.get(key)
        if home is None:
            home = Home(resolved, start_jobs=start_jobs)
            _homes[key] = home
        elif start_jobs:
            home.start_background()
        return home


def close_homes() -> None:
    with _homes_lock:
        homes = list(_homes.values())
        _homes.clear()
    for home in homes:
        home.close()
