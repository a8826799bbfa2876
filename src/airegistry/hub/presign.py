"""``CreateHubContentPresignedUrls``: expiring SigV4 URLs to a version's objects on our S3 side.

The objects a version names (a dataset's file and its dependencies, an evaluator's prompt:
``documents.artifacts``) are served by the registry's own S3 endpoint, so the URLs are
S3 ``GetObject`` URLs of that endpoint, presigned with SigV4 by botocore and valid for
``URL_EXPIRES_SECONDS`` (15 minutes, as on AWS). Only objects held by the registry's
blob store get a URL; a version registered by reference to a bucket elsewhere has none.

They are signed with the registry's *presign key*: an access key kept in the metadata
store's settings (``presign_credentials``), created once and shared by every process and
server replica over that store. The server accepts it for S3 reads only (``GET``/``HEAD``),
so a URL cannot be turned into any other request, and its secret never leaves the store.

The endpoint a URL names is, in order: ``AIREGISTRY_PUBLIC_URL``; the scheme and host the
request came to (the server sets ``request_origin``); ``http://127.0.0.1:8080``, where
``airegistry server`` listens by default (for the embedded registry).
"""

from __future__ import annotations

import secrets
import string
import threading
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from airegistry.hub import documents
from airegistry.hub.botocore_model import OperationError, isolated_botocore_session
from airegistry.hub.pages import PageTokens

PUBLIC_URL_ENV = "AIREGISTRY_PUBLIC_URL"
DEFAULT_ENDPOINT = "http://127.0.0.1:8080"
URL_EXPIRES_SECONDS = 900
#: Most objects one version's prefix dependencies may expand to.
MAX_ARTIFACTS = 10_000
DEFAULT_MAX_RESULTS = 100

#: ``scheme://host[:port]`` of the HTTP request being answered (set by the server).
request_origin: ContextVar[str | None] = ContextVar("airegistry_request_origin", default=None)

_KEY_SETTING = "presign_key_id"
_SECRET_SETTING = "presign_key_secret"


class Settings(Protocol):
    def get_or_create(self, key: str, factory: Any) -> str: ...


def presign_credentials(settings: Settings) -> tuple[str, str]:
    """The registry's presign key (id, secret), created on first use, the same everywhere."""
    alphabet = string.ascii_uppercase + string.digits
    key_id = settings.get_or_create(
        _KEY_SETTING, lambda: "AKARPRESIGN" + "".join(secrets.choice(alphabet) for _ in range(9)))
    secret = settings.get_or_create(_SECRET_SETTING, lambda: secrets.token_urlsafe(30))
    return key_id, secret


class UrlSigner(Protocol):
    def endpoint(self) -> str: ...
    def presign_get(self, bucket: str, key: str, expires_s: int) -> str: ...


class SigV4UrlSigner:
    """Presigns S3 GetObject URLs of the registry's endpoint with botocore (SigV4)."""

    def __init__(self, settings: Settings, region: str, public_url: str | None = None) -> None:
        self._settings = settings
        self._region = region
        self._public_url = public_url
        self._clients: dict[str, Any] = {}
        self._lock = threading.Lock()

    def endpoint(self) -> str:
        return (self._public_url or request_origin.get() or DEFAULT_ENDPOINT).rstrip("/")

    def _client(self, endpoint: str) -> Any:
        with self._lock:
            client = self._clients.get(endpoint)
            if client is None:
                from botocore.config import Config

                key_id, secret = presign_credentials(self._settings)
                client = isolated_botocore_session().create_client(
                    "s3", region_name=self._region, endpoint_url=endpoint,
                    aws_access_key_id=key_id, aws_secret_access_key=secret,
                    config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))
                if len(self._clients) >= 16:  # hosts seen: bounded, the oldest goes
                    self._clients.pop(next(iter(self._clients)))
                self._clients[endpoint] = client
            return client

    def presign_get(self, bucket: str, key: str, expires_s: int) -> str:
        return self._client(self.endpoint()).generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_s)


@dataclass(frozen=True)
class _Artifact:
    bucket: str
    key: str
    local_path: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


class ArtifactUrls:
    """Resolves a version's objects on the blob store and signs a page of URLs to them."""

    def __init__(self, objects: Any, signer: UrlSigner) -> None:
        self.objects = objects
        self.signer = signer

    def _resolve(self, content_type: str, document: str) -> list[_Artifact]:
        try:
            entries = documents.artifacts(content_type, document)
        except documents.DocumentError:
            return []
        found: list[_Artifact] = []
        for uri, local, kind in entries:
            location = documents.s3_location(uri)
            if location is None or not self.objects.has_bucket(location[0]):
                continue  # not an object of this registry's store
            bucket, key = location
            if kind == "object":
                if self.objects.exists(bucket, key):
                    found.append(_Artifact(bucket, key, local))
                continue
            token = None
            while len(found) < MAX_ARTIFACTS:
                page = self.objects.list_objects(bucket, prefix=key, continuation_token=token)
                for item in page.contents:
                    found.append(_Artifact(bucket, item.key, f"{local}/{item.key[len(key):]}"))
                token = page.next_continuation_token
                if not token:
                    break
        return found[:MAX_ARTIFACTS]

    def presigned_urls(self, row: Any, version: str, params: dict, tokens: PageTokens) -> dict:
        artifacts = self._resolve(row.content_type, row.document)
        expected = (params.get("AccessConfig") or {}).get("ExpectedS3Url")
        if expected:
            endpoint = self.signer.endpoint()
            for item in artifacts:
                if not (item.uri.startswith(expected)
                        or f"{endpoint}/{item.bucket}/{item.key}".startswith(expected)):
                    raise OperationError(
                        "ValidationException",
                        f"{item.uri} of {row.content_type} {row.name} version {version} is not "
                        f"under ExpectedS3Url {expected}")
        scope = {"op": "CreateHubContentPresignedUrls", "h": row.hub_name,
                 "t": row.content_type, "n": row.name, "v": version}
        position = tokens.position(params, scope)
        start = position[0] if position else 0
        if not isinstance(start, int) or start < 0:
            raise OperationError("ValidationException", "The NextToken is not valid.")
        limit = params.get("MaxResults", DEFAULT_MAX_RESULTS)
        page = artifacts[start:start + limit]
        configs = [{"Url": self.signer.presign_get(a.bucket, a.key, URL_EXPIRES_SECONDS),
                    "LocalPath": a.local_path} for a in page]
        more = start + limit < len(artifacts)
        return {"AuthorizedUrlConfigs": configs,
                "NextToken": tokens.issue(scope, [start + limit]) if more else None}


__all__ = [
    "PUBLIC_URL_ENV",
    "URL_EXPIRES_SECONDS",
    "ArtifactUrls",
    "SigV4UrlSigner",
    "presign_credentials",
    "request_origin",
]
