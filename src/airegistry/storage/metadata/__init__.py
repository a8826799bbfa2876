"""The metadata store: one repository per aggregate, over SQLite or PostgreSQL.

SQL lives in this package and nowhere else. Services take a repository:
``HubRepository`` (hubs and their contents, with the import job a content version
starts), ``JobRepository`` (the import queue), ``FunctionRepository`` (deployed
functions), ``SettingsRepository`` (shared named values), ``TrainingJobRepository``
(training-job records), ``S3ConfigRepository`` (S3 bucket and object
configuration documents), ``BrowseRepository`` (filtered, counted pages for the web UI's
tables). ``Database`` is the engine and its transactions; ``migrate`` brings a database
to the newest schema.
"""

from airegistry.storage.metadata.browse import BrowsePage, BrowseRepository, BrowseRow
from airegistry.storage.metadata.database import DATABASE_URL_ENV, Database, DatabaseUnavailable
from airegistry.storage.metadata.functions import FunctionExists, FunctionRepository
from airegistry.storage.metadata.hubs import HubRepository
from airegistry.storage.metadata.jobs import Claimed, JobRepository
from airegistry.storage.metadata.migrate import HEAD_REVISION, migrate
from airegistry.storage.metadata.s3_configs import S3ConfigRepository
from airegistry.storage.metadata.settings import SettingsRepository
from airegistry.storage.metadata.training_jobs import TrainingJobRepository

__all__ = [
    "DATABASE_URL_ENV",
    "HEAD_REVISION",
    "BrowsePage",
    "BrowseRepository",
    "BrowseRow",
    "Claimed",
    "Database",
    "DatabaseUnavailable",
    "FunctionExists",
    "FunctionRepository",
    "HubRepository",
    "JobRepository",
    "S3ConfigRepository",
    "SettingsRepository",
    "TrainingJobRepository",
    "migrate",
]
