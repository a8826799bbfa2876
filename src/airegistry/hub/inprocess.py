"""A real boto3 ``sagemaker`` client whose transport is a ``SageMakerWire`` in this process.

The SDK is written once, against boto3's ``sagemaker`` client. For the embedded
backend we do not imitate that client, we use it: botocore builds and validates the
request exactly as it would for AWS (method names, keyword arguments, client-side
``ParamValidationError``), then -- instead of opening a connection -- a
``before-send`` event handler hands the serialised request to ``SageMakerWire.handle``
and gives botocore the bytes it returns. botocore parses them as it parses AWS's
responses: timezone-aware datetimes, ``ResponseMetadata``, modeled exceptions
(``client.exceptions.ResourceNotFound``) and ``ClientError`` codes. Paginators and
waiters work wherever botocore defines them.

The client never looks for credentials (requests are unsigned), never reads the
user's AWS profile or config files, never retries (a retry would re-run a handler)
and never touches the network.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import Any

import boto3.session
import botocore
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.client import BaseClient
from botocore.config import Config

from airegistry.hub.botocore_model import isolated_botocore_session
from airegistry.hub.json_protocol import SageMakerWire

__all__ = ["EMBEDDED_ENDPOINT", "make_inprocess_client"]

EMBEDDED_ENDPOINT = "http://airegistry.embedded"

_CLIENT_CONFIG = Config(
    signature_version=botocore.UNSIGNED,
    # Never retry: a retry would run a handler twice. "legacy" with zero retries keeps
    # error strings identical to a default boto3 client's (the "standard" mode appends
    # "(reached max retries: 0)" to every error, even a non-retryable one).
    retries={"max_attempts": 0, "mode": "legacy"},
    defaults_mode="legacy",  # "auto" would probe EC2 instance metadata
    use_fips_endpoint=False,  # FIPS / dual-stack with a custom endpoint are config errors
    use_dualstack_endpoint=False,
    parameter_validation=True,
)

_LOCK = threading.Lock()
_SESSION: boto3.session.Session | None = None
# (id(wire), region) -> client. Weak values: a client lives as long as its user keeps
# it, and it keeps its wire alive, so an id cannot be reused while its entry exists.
_CLIENTS: weakref.WeakValueDictionary[tuple[int, str], BaseClient] = weakref.WeakValueDictionary()


class _BodyStream:
    """The minimal ``raw`` object AWSResponse reads its content from."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._data


def _header(request: AWSPreparedRequest, name: str) -> str | None:
    value = request.headers.get(name)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _body(request: AWSPreparedRequest) -> bytes:
    body = request.body
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    return body.read()  # file-like body: never produced for JSON protocol requests


def _transport(wire: SageMakerWire) -> Any:
    def send(request: AWSPreparedRequest, **_: Any) -> AWSResponse:
        status, headers, data = wire.handle(_header(request, "X-Amz-Target"), _body(request))
        return AWSResponse(request.url, status, headers, _BodyStream(data))

    return send


def _session() -> boto3.session.Session:
    global _SESSION
    if _SESSION is None:
        _SESSION = boto3.session.Session(botocore_session=isolated_botocore_session())
    return _SESSION


def make_inprocess_client(wire: SageMakerWire, *, region: str) -> BaseClient:
    """The boto3 ``sagemaker`` client for ``wire`` in ``region`` (created once, then reused).

    The first client of a process costs a few hundred milliseconds (botocore loads the
    service model); later ones reuse it. Clients are thread-safe, as boto3 clients are.
    """
    if not isinstance(wire, SageMakerWire):
        raise TypeError(f"wire must be a SageMakerWire, got {type(wire).__name__}")
    if not region or not isinstance(region, str):
        raise ValueError("region must be a non-empty string, e.g. 'us-east-1'")
    key = (id(wire), region)
    with _LOCK:
        client = _CLIENTS.get(key)
        if client is not None:
            return client
        # botocore sessions are not safe for concurrent client creation: hold the lock.
        client = _session().client(
            "sagemaker",
            region_name=region,
            endpoint_url=EMBEDDED_ENDPOINT,
            config=_CLIENT_CONFIG,
        )
        client.meta.events.register("before-send.sagemaker", _transport(wire))
        _CLIENTS[key] = client
        return client
