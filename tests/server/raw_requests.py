"""Raw HTTP requests to the server, signed the way botocore signs them, for hostile input.

boto3 refuses to send most malformed requests (its own validation, its own encodings), so
the tests that check how the server answers them build the bytes themselves: any method,
path, query string, header value (as Latin-1 bytes) and body, signed with SigV4 by
botocore's ``SigV4Auth`` over exactly those bytes, or left unsigned.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REGION = "us-east-1"


@dataclass
class RawClient:
    url: str
    key: str
    secret: str
    client: httpx.Client

    def send(self, method: str, path: str, *, service: str | None = None, body: bytes = b"",
             headers: dict[str, str] | None = None,
             payload_hash: str | None = None) -> httpx.Response:
        """One request; signed for ``service`` unless it is None. ``path`` may hold a query.

        For S3, ``payload_hash`` is what ``x-amz-content-sha256`` says (default: the real
        hash of ``body``), e.g. ``UNSIGNED-PAYLOAD`` or a streaming value.
        """
        hdrs = self.signed_headers(method, path, service, body, headers, payload_hash)
        raw = [(k.encode("latin-1"), v.encode("latin-1") if isinstance(v, str) else v)
               for k, v in hdrs.items()]
        return self.client.request(method, self.url + path, content=body, headers=raw)

    def signed_headers(self, method: str, path: str, service: str | None, body: bytes = b"",
                       headers: dict[str, str] | None = None,
                       payload_hash: str | None = None) -> dict[str, str]:
        hdrs = dict(headers or {})
        if service is None:
            return hdrs
        request = AWSRequest(method=method, url=self.url + path, data=body, headers=hdrs)
        if service == "s3":
            request.headers["x-amz-content-sha256"] = (
                payload_hash or hashlib.sha256(body).hexdigest())
        SigV4Auth(Credentials(self.key, self.secret), service, REGION).add_auth(request)
        return dict(request.headers.items())

    def sagemaker(self, operation: str, body: Any) -> httpx.Response:
        data = body if isinstance(body, bytes) else _json(body)
        return self.send("POST", "/", service="sagemaker", body=data, headers={
            "X-Amz-Target": f"SageMaker.{operation}",
            "Content-Type": "application/x-amz-json-1.1"})

    def lambda_(self, method: str, path: str, body: Any = b"",
                headers: dict[str, str] | None = None) -> httpx.Response:
        data = body if isinstance(body, bytes) else _json(body)
        return self.send(method, "/2015-03-31/functions" + path, service="lambda", body=data,
                         headers={"Content-Type": "application/json", **(headers or {})})


def _json(value: Any) -> bytes:
    import json

    return json.dumps(value).encode()


def error_code(response: httpx.Response) -> str | None:
    """The AWS error code of a response in any of the three error formats."""
    text = response.text
    if response.headers.get("x-amzn-errortype"):
        return response.headers["x-amzn-errortype"].split(":", 1)[0]
    if "<Code>" in text:
        return text.split("<Code>", 1)[1].split("</Code>", 1)[0]
    return None
