"""The server's composition root: a registry home, served over the AWS wire protocols.

This is the one place that knows both the home (``airegistry.home``: the services over
the metadata and blob stores) and the wire (``server.app``); neither imports the other.
``build_services`` decides what the server serves; add a service's handlers to the
home's ``wire_handlers`` and an extra ASGI app (a UI) to ``ServerServices.mounts`` here.

``app_factory`` is what uvicorn calls, once per worker process: the options reach it
through environment variables, so one worker and N workers build the app identically.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from airegistry.home import Home, open_home
from airegistry.hub.presign import presign_credentials
from airegistry.server.app import AiRegistryApp, ServerOptions, ServerServices, create_app
from airegistry.server.auth import AuthConfig

log = logging.getLogger("airegistry.server")

HOME_ENV = "AIREGISTRY_SERVER_HOME"
NO_AUTH_ENV = "AIREGISTRY_SERVER_NO_AUTH"


def build_services(home: Home) -> ServerServices:
    """What a server over ``home`` serves: SageMaker, S3 (its blob store), Lambda, metrics."""
    from airegistry.server.lambda_api import create_lambda_app
    from airegistry.storage.metadata import S3ConfigRepository

    services = ServerServices(objects=home.objects, account_id=home.account_id,
                              region=home.region, s3_configs=S3ConfigRepository(home.db))
    services.sagemaker = home.wire.handle
    services.lambda_app = create_lambda_app(home.functions)
    services.extra_metrics = home.metrics_text
    services.inline_point_reads = home.db.is_local
    return services


def auth_for(home: Home) -> AuthConfig:
    """The keys a server over ``home`` accepts: keys file, environment and metadata store,
    plus the registry's presign key for S3 reads (the URLs of CreateHubContentPresignedUrls)."""
    auth = AuthConfig.from_home(home.path, settings=home.settings)
    key_id, secret = presign_credentials(home.settings)
    auth.read_only = {key_id: secret}
    return auth


def options_from_env() -> ServerOptions:
    options = ServerOptions()
    bases = os.environ.get("AIREGISTRY_SERVER_VHOST_BASES")
    if bases:
        options.virtual_host_bases = tuple(b.strip() for b in bases.split(",") if b.strip())
    max_obj = os.environ.get("AIREGISTRY_SERVER_MAX_OBJECT_SIZE")
    if max_obj and max_obj.isdigit():
        options.max_object_size = int(max_obj)
    return options


def app_factory() -> AiRegistryApp:
    """uvicorn factory: ``airegistry.server.compose:app_factory``.

    Each worker builds its services from the home named by ``AIREGISTRY_SERVER_HOME``;
    ``AIREGISTRY_SERVER_NO_AUTH=1`` disables authentication (set by ``--no-auth``).
    """
    home_txt = os.environ.get(HOME_ENV)
    if not home_txt:
        raise RuntimeError(f"{HOME_ENV} must name the server home directory")
    home = open_home(Path(home_txt).expanduser())
    no_auth = os.environ.get(NO_AUTH_ENV, "") == "1"
    auth = None if no_auth else auth_for(home)
    services = build_services(home)
    from airegistry.ui import create_server_ui

    services.mounts["/ui/"] = create_server_ui(home.path, auth)
    return create_app(services, auth=auth, options=options_from_env())


__all__ = ["HOME_ENV", "NO_AUTH_ENV", "app_factory", "auth_for", "build_services"]
