"""Session: picks the backend and hands the SDK its three ports.

``Session()`` decides once, from the environment, where the registry is:

- ``AIREGISTRY_ENDPOINT_URL`` set: a remote airegistry server, through plain boto3
  clients pointed at it (standard AWS credential configuration);
- ``AIREGISTRY_BACKEND=aws``: the managed service, through plain boto3;
- otherwise the embedded registry in ``AIREGISTRY_HOME`` (default ``~/.airegistry``).

The SDK then talks to ``session.sagemaker_client`` (a boto3 ``sagemaker`` client in
every mode: in-process transport when embedded), ``session.objects`` and
``session.functions``, and never needs to know which mode it is in.
"""

from __future__ import annotations

import os
import threading
from functools import cached_property
from pathlib import Path
from typing import Any

from airegistry.home import Home, default_region, hub_name_for, open_home, registry_bucket_name
from airegistry.ports import BotoObjects, EmbeddedObjects, ObjectsPort

BACKENDS = ("embedded", "remote", "aws")


class Session:
    """Where the registry is, and the clients to reach it."""

    def __init__(
        self,
        *,
        backend: str | None = None,
        home: str | Path | None = None,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        boto_session: Any = None,
    ) -> None:
        endpoint_url = endpoint_url or os.environ.get("AIREGISTRY_ENDPOINT_URL") or None
        if backend is None:
            if endpoint_url:
                backend = "remote"
            elif os.environ.get("AIREGISTRY_BACKEND", "").lower() == "aws":
                backend = "aws"
            else:
                backend = os.environ.get("AIREGISTRY_BACKEND", "embedded").lower() or "embedded"
        if backend not in BACKENDS:
            raise ValueError(f"Unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
        if backend == "remote" and not endpoint_url:
            raise ValueError("The remote backend needs AIREGISTRY_ENDPOINT_URL (or endpoint_url=).")
        self.backend = backend
        self.endpoint_url = endpoint_url
        self._boto_session = boto_session
        self._home_path = Path(home).expanduser() if home else None
        self.region = region_name or (
            self.home.region if backend == "embedded" else default_region()
        )
        self._hub_ready = False
        self._lock = threading.Lock()

    # -- embedded ---------------------------------------------------------------------------

    @cached_property
    def home(self) -> Home:
        if self.backend != "embedded":
            raise RuntimeError(f"A {self.backend} session has no local home.")
        return open_home(self._home_path)

    # -- boto3 --------------------------------------------------------------------------------

    def _boto(self) -> Any:
        if self._boto_session is None:
            import boto3

            self._boto_session = boto3.session.Session(region_name=self.region)
        return self._boto_session

    def boto_client(self, service: str) -> Any:
        kwargs: dict[str, Any] = {"region_name": self.region}
        if self.backend == "remote":
            kwargs["endpoint_url"] = self.endpoint_url
            if service == "s3":
                from botocore.config import Config

                kwargs["config"] = Config(s3={"addressing_style": "path"})
        return self._boto().client(service, **kwargs)

    # -- the three ports --------------------------------------------------------------------

    @cached_property
    def sagemaker_client(self) -> Any:
        if self.backend == "embedded":
            from airegistry.hub.inprocess import make_inprocess_client

            return make_inprocess_client(self.home.wire, region=self.region)
        return self.boto_client("sagemaker")

    @cached_property
    def objects(self) -> ObjectsPort:
        if self.backend == "embedded":
            return EmbeddedObjects(self.home.objects)
        return BotoObjects(self.boto_client("s3"))

    @cached_property
    def functions(self) -> Any:
        if self.backend == "embedded":
            return self.home.functions
        return self.boto_client("lambda")

    # -- identity ---------------------------------------------------------------------------

    @cached_property
    def account_id(self) -> str:
        if self.backend == "embedded":
            return self.home.account_id
        return self.boto_client("sts").get_caller_identity()["Account"]

    @property
    def hub_name(self) -> str:
        return os.environ.get("AIREGISTRY_HUB_NAME") or hub_name_for(self.account_id, self.region)

    @property
    def default_bucket(self) -> str:
        return os.environ.get("AIREGISTRY_BUCKET") or registry_bucket_name(self.account_id, self.region)

    def ensure_hub(self) -> str:
        """The hub is created on first use, by whichever caller gets there first."""
        if self._hub_ready:
            return self.hub_name
        with self._lock:
            if self._hub_ready:
                return self.hub_name
            from botocore.exceptions import ClientError

            client = self.sagemaker_client
            try:
                client.describe_hub(HubName=self.hub_name)
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ResourceNotFound":
                    raise
                try:
                    client.create_hub(
                        HubName=self.hub_name,
                        HubDescription="AI Registry hub: datasets and evaluators for model customization",
                    )
                except ClientError as create_exc:
                    if create_exc.response["Error"]["Code"] != "ResourceInUse":
                        raise
            self._hub_ready = True
        return self.hub_name


_default: dict[tuple, Session] = {}
_default_lock = threading.Lock()


def _env_signature() -> tuple:
    keys = (
        "AIREGISTRY_ENDPOINT_URL", "AIREGISTRY_BACKEND", "AIREGISTRY_HOME", "AWS_REGION",
        "AWS_DEFAULT_REGION", "AIREGISTRY_HUB_NAME", "AIREGISTRY_BUCKET", "AIREGISTRY_DATABASE_URL",
        "AIREGISTRY_STORE_URL",
    )
    return (os.getpid(), *(os.environ.get(k) for k in keys))


def default_session() -> Session:
    """The session used when a call gets none; rebuilt when the environment changes."""
    signature = _env_signature()
    with _default_lock:
        session = _default.get(signature)
        if session is None:
            session = Session()
            _default.clear()
            _default[signature] = session
        return session


def resolve_session(session: Session | None) -> Session:
    return session if session is not None else default_session()
