"""Lambda's REST-JSON wire over the function service.

Only translation lives here: path and headers to keyword arguments, the service's
boto3-shaped results and ``ClientError``s back to Lambda's status codes, headers and
bodies. Authentication and access logging happen in the enclosing app.

Every request is checked against botocore's ``lambda`` service model before the
service sees it, as AWS checks it: a member of the wrong JSON type (``ZipFile: 123``,
``Environment: "x"``) is ``InvalidRequestContentException``, a broken constraint (an
environment variable named ``A=B``, a 300-character description) is
``ValidationException``, both 400; a runtime this server does not run is the function
service's ``InvalidParameterValueException`` naming the ones it does. An Invoke payload must be JSON that can be
handed to a function: valid UTF-8 without lone surrogates, nested at most
``MAX_PAYLOAD_DEPTH`` deep.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from typing import Any
from urllib.parse import unquote

import msgspec
from botocore.exceptions import ClientError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from airegistry.hub.botocore_model import OperationError, service_model, validate_input
from airegistry.server.asgi import ascii_int, run_sync

PREFIX = "/2015-03-31/functions"
#: Deepest nesting of an Invoke payload: well inside what the runtime's encoders handle.
MAX_PAYLOAD_DEPTH = 256

_TYPE_ERROR = "InvalidRequestContentException"
_INT_MIN, _UINT_MAX = -(2**63), 2**64 - 1


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body).encode() if body is not None else b"",
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _error(code: str, message: str, status: int) -> Response:
    return _json(
        status,
        {"Type": "User", "message": message, "__type": code},
        {"x-amzn-ErrorType": code},
    )


def _from_client_error(exc: ClientError) -> Response:
    err = exc.response.get("Error", {})
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
    return _error(str(err.get("Code", "ServiceException")), str(err.get("Message", "")), int(status))


class _Refused(Exception):
    """A request refused before it reaches the service; carries the response."""

    def __init__(self, response: Response) -> None:
        self.response = response


def _check(operation: str, params: dict[str, Any]) -> None:
    """Refuse ``params`` that break the ``lambda`` model's input shape of ``operation``.

    A string ``Runtime`` is left to the function service, which names the runtimes it runs
    (the model's enum lists every runtime AWS has, Node.js and Java included).
    """
    shape = service_model("lambda").operation_model(operation).input_shape
    checked = dict(params)
    if isinstance(checked.get("Runtime"), str):
        del checked["Runtime"]
    try:
        validate_input(operation, shape, checked, type_error_code=_TYPE_ERROR)
    except OperationError as exc:
        raise _Refused(_error(exc.code, exc.message, 400)) from None


async def _body_json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        raise _Refused(_error(_TYPE_ERROR, "Could not parse request body into json", 400)) from None
    if not isinstance(value, dict):
        raise _Refused(_error(_TYPE_ERROR, "The request body must be a JSON object", 400))
    return value


def _decode_zip(params: dict[str, Any], field: str = "ZipFile") -> None:
    if field in params and isinstance(params[field], str):
        try:
            params[field] = base64.b64decode(params[field], validate=True)
        except (binascii.Error, ValueError):
            raise _Refused(_error("InvalidParameterValueException",
                                  f"{field} is not valid base64", 400)) from None


def _check_payload(payload: bytes) -> None:
    """An Invoke payload is JSON a function can receive: parsed, re-encodable, bounded depth."""
    if not payload.strip():
        return
    try:
        # msgspec refuses invalid UTF-8 and lone surrogate escapes, which json.loads accepts.
        event = msgspec.json.decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        reason = "it is nested too deeply" if isinstance(exc, RecursionError) else (
            f"{exc} (the payload must be UTF-8 JSON without lone surrogates)")
        raise _Refused(_error(_TYPE_ERROR, f"Could not parse request body into json: {reason}",
                              400)) from None
    problem = _payload_problem(event, MAX_PAYLOAD_DEPTH)
    if problem:
        raise _Refused(_error(_TYPE_ERROR, f"Could not parse request body into json: {problem}",
                              400))


def _payload_problem(value: Any, limit: int) -> str | None:
    """Why a parsed payload cannot reach a function: too deep, or an integer the runtime's
    64-bit encoding cannot carry (JSON allows any size)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            if isinstance(item, int) and not _INT_MIN <= item <= _UINT_MAX:
                return f"the integer {str(item)[:40]} does not fit in 64 bits"
            continue
        if depth > limit:
            return f"nested deeper than {limit}"
        stack.extend((child, depth + 1) for child in children)
    return None


def _name(request: Request) -> str:
    return unquote(request.path_params["name"])


def create_lambda_app(functions: Any) -> Starlette:
    """An ASGI app serving the Lambda operations of ``functions`` (a FunctionService)."""

    async def call(method: str, **kwargs: Any) -> Any:
        return await run_sync(functools.partial(getattr(functions, method), **kwargs))

    def endpoint(handler: Any) -> Any:
        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except _Refused as refused:
                return refused.response
            except ClientError as exc:
                return _from_client_error(exc)
        return run

    async def create_or_list(request: Request) -> Response:
        if request.method == "GET":
            marker = request.query_params.get("Marker")
            max_text = request.query_params.get("MaxItems")
            max_items = 50 if max_text is None else ascii_int(max_text)
            if max_items is None or not 1 <= max_items <= 10000:
                return _error("InvalidParameterValueException", "MaxItems must be 1-10000", 400)
            return _json(200, await call("list_functions", Marker=marker, MaxItems=max_items))
        params = await _body_json(request)
        _check("CreateFunction", params)
        _decode_zip(params["Code"])
        try:
            return _json(201, await call("create_function", **params))
        except (TypeError, ValueError) as exc:
            return _error("InvalidParameterValueException", str(exc), 400)

    async def one(request: Request) -> Response:
        name = _name(request)
        _check("GetFunction" if request.method == "GET" else "DeleteFunction",
               {"FunctionName": name})
        if request.method == "GET":
            return _json(200, await call("get_function", FunctionName=name))
        await call("delete_function", FunctionName=name)
        return Response(status_code=204)

    async def configuration(request: Request) -> Response:
        name = _name(request)
        if request.method == "GET":
            _check("GetFunctionConfiguration", {"FunctionName": name})
            return _json(200, await call("get_function_configuration", FunctionName=name))
        params = await _body_json(request)
        params["FunctionName"] = name
        _check("UpdateFunctionConfiguration", params)
        try:
            return _json(200, await call("update_function_configuration", **params))
        except (TypeError, ValueError) as exc:
            return _error("InvalidParameterValueException", str(exc), 400)

    async def code(request: Request) -> Response:
        params = await _body_json(request)
        params["FunctionName"] = _name(request)
        _check("UpdateFunctionCode", params)
        _decode_zip(params)
        return _json(200, await call(
            "update_function_code", FunctionName=params["FunctionName"],
            ZipFile=params.get("ZipFile"), S3Bucket=params.get("S3Bucket"),
            S3Key=params.get("S3Key")))

    async def invocations(request: Request) -> Response:
        params = {"FunctionName": _name(request)}
        for member, header in (("InvocationType", "x-amz-invocation-type"),
                               ("LogType", "x-amz-log-type")):
            if header in request.headers:
                params[member] = request.headers[header]
        _check("Invoke", params)
        payload = await request.body()
        _check_payload(payload)
        result = await call(
            "invoke", FunctionName=params["FunctionName"], Payload=payload,
            InvocationType=params.get("InvocationType", "RequestResponse"),
            LogType=params.get("LogType", "None"))
        headers = {"X-Amz-Executed-Version": result.get("ExecutedVersion", "$LATEST")}
        if result.get("FunctionError"):
            headers["X-Amz-Function-Error"] = result["FunctionError"]
        if result.get("LogResult"):
            headers["X-Amz-Log-Result"] = result["LogResult"]
        return Response(
            result["Payload"].read(),
            status_code=result["StatusCode"],
            media_type="application/json",
            headers=headers,
        )

    routes = [
        Route(PREFIX, endpoint(create_or_list), methods=["GET", "POST"]),
        Route(PREFIX + "/", endpoint(create_or_list), methods=["GET", "POST"]),
        Route(PREFIX + "/{name}", endpoint(one), methods=["GET", "DELETE"]),
        Route(PREFIX + "/{name}/configuration", endpoint(configuration), methods=["GET", "PUT"]),
        Route(PREFIX + "/{name}/code", endpoint(code), methods=["PUT"]),
        Route(PREFIX + "/{name}/invocations", endpoint(invocations), methods=["POST"]),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error("UnknownOperationException", f"Unknown Lambda operation {request.url.path}", 404)

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
