"""Errors in the wire format of the protocol a client speaks: S3 XML, AWS JSON, query XML.

Authentication failures are answered here too, with the code botocore expects from AWS
for that protocol, so a client raises the same ``ClientError`` it would raise there.
"""

from __future__ import annotations

import json

from airegistry.server import sigv4
from airegistry.server.asgi import RequestContext, Send, send_response
from airegistry.server.iam import IAM_NS
from airegistry.server.s3_xml import error_document
from airegistry.server.sts import STS_NS, query_error

AUTH_CODES: dict[str, dict[sigv4.AuthFailure, tuple[str, int]]] = {
    "s3": {
        sigv4.AuthFailure.MISSING: ("AccessDenied", 403),
        sigv4.AuthFailure.MALFORMED: ("AuthorizationHeaderMalformed", 400),
        sigv4.AuthFailure.UNKNOWN_KEY: ("InvalidAccessKeyId", 403),
        sigv4.AuthFailure.BAD_SIGNATURE: ("SignatureDoesNotMatch", 403),
        sigv4.AuthFailure.SKEWED: ("RequestTimeTooSkewed", 403),
        sigv4.AuthFailure.EXPIRED: ("AccessDenied", 403),
    },
    "json": {
        sigv4.AuthFailure.MISSING: ("MissingAuthenticationTokenException", 403),
        sigv4.AuthFailure.MALFORMED: ("IncompleteSignatureException", 400),
        sigv4.AuthFailure.UNKNOWN_KEY: ("UnrecognizedClientException", 403),
        sigv4.AuthFailure.BAD_SIGNATURE: ("InvalidSignatureException", 403),
        sigv4.AuthFailure.SKEWED: ("InvalidSignatureException", 403),
        sigv4.AuthFailure.EXPIRED: ("InvalidSignatureException", 403),
    },
    "query": {
        sigv4.AuthFailure.MISSING: ("MissingAuthenticationToken", 403),
        sigv4.AuthFailure.MALFORMED: ("IncompleteSignature", 400),
        sigv4.AuthFailure.UNKNOWN_KEY: ("InvalidClientTokenId", 403),
        sigv4.AuthFailure.BAD_SIGNATURE: ("SignatureDoesNotMatch", 403),
        sigv4.AuthFailure.SKEWED: ("SignatureDoesNotMatch", 403),
        sigv4.AuthFailure.EXPIRED: ("ExpiredToken", 403),
    },
}


def family(service: str) -> str:
    if service == "s3":
        return "s3"
    if service in ("sts", "iam"):
        return "query"
    return "json"


async def send_protocol_error(send: Send, ctx: RequestContext, service: str, code: str,
                              message: str, status: int) -> None:
    """An error in the wire format of ``service`` (S3 XML, AWS JSON, or query XML)."""
    ctx.error_code = code
    kind = family(service)
    rid = ctx.request_id
    head = ctx.method == "HEAD"
    if kind == "s3":
        body = error_document(code, message, ctx.path, rid)
        headers = [("Content-Type", "application/xml"), ("x-amz-request-id", rid)]
    elif kind == "query":
        ns = IAM_NS if service == "iam" else STS_NS
        body = query_error(ns, code, message, rid)
        headers = [("Content-Type", "text/xml"), ("x-amzn-RequestId", rid)]
    else:
        ctype = "application/json" if service == "lambda" else "application/x-amz-json-1.1"
        doc: dict[str, str] = {"__type": code, "message": message}
        if service == "lambda":
            doc["Type"] = "User"
        body = json.dumps(doc).encode()
        headers = [("Content-Type", ctype), ("x-amzn-RequestId", rid), ("x-amzn-ErrorType", code)]
    await send_response(send, ctx, status, headers, body, head=head)


