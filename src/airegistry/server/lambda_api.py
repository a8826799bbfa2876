"""Lambda's REST-JSON wire over the function service.

Only translation lives here: path and headers to keyword arguments, the service's
boto3-shaped results and ``ClientError``s back to Lambda's status codes, headers and
bodies. Authentication and access logging happen in the enclosing app.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from typing import Any
from urllib.parse import unquote

from botocore.exceptions import ClientError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from airegistry.server.asgi import run_sync

PREFIX = "/2015-03-31/functions"


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


async def _body_json(request: Request) -> dict[str, Any] | Response:
    raw = await request.body()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return _error("InvalidRequestContentException", "Could not parse request body into json", 400)
    if not isinstance(value, dict):
        return _error("InvalidRequestContentException", "The request body must be a JSON object", 400)
    return value


def _decode_zip(params: dict[str, Any], field: str = "ZipFile") -> Response | None:
    if field in params and isinstance(params[field], str):
        try:
            params[field] = base64.b64decode(params[field], validate=True)
        except (binascii.Error, ValueError):
            return _error("InvalidParameterValueException", f"{field} is not valid base64", 400)
    return None


def create_lambda_app(functions: Any) -> Starlette:
    """An ASGI app serving the Lambda operations of ``functions`` (a FunctionService)."""

    async def call(method: str, **kwargs: Any) -> Any:
        return await run_sync(functools.partial(getattr(functions, method), **kwargs))

    async def create_or_list(request: Request) -> Response:
        try:
            if request.method == "GET":
                marker = request.query_params.get("Marker")
                max_items = int(request.query_params.get("MaxItems", "50"))
                if not 1 <= max_items <= 10000:
                    return _error("InvalidParameterValueException", "MaxItems must be 1-10000", 400)
                return _json(200, await call("list_functions", Marker=marker, MaxItems=max_items))
            params = await _body_json(request)
            if isinstance(params, Response):
                return params
            code = params.get("Code")
            if not isinstance(code, dict) or not isinstance(params.get("FunctionName"), str):
                return _error(
                    "InvalidParameterValueException", "FunctionName and Code are required", 400
                )
            bad = _decode_zip(code)
            if bad:
                return bad
            return _json(201, await call("create_function", **params))
        except ClientError as exc:
            return _from_client_error(exc)
        except (TypeError, ValueError) as exc:
            return _error("InvalidParameterValueException", str(exc), 400)

    async def one(request: Request) -> Response:
        name = unquote(request.path_params["name"])
        try:
            if request.method == "GET":
                return _json(200, await call("get_function", FunctionName=name))
            await call("delete_function", FunctionName=name)
            return Response(status_code=204)
        except ClientError as exc:
            return _from_client_error(exc)

    async def configuration(request: Request) -> Response:
        name = unquote(request.path_params["name"])
        try:
            if request.method == "GET":
                return _json(200, await call("get_function_configuration", FunctionName=name))
            params = await _body_json(request)
            if isinstance(params, Response):
                return params
            params.pop("FunctionName", None)
            return _json(
                200, await call("update_function_configuration", FunctionName=name, **params)
            )
        except ClientError as exc:
            return _from_client_error(exc)
        except (TypeError, ValueError) as exc:
            return _error("InvalidParameterValueException", str(exc), 400)

    async def code(request: Request) -> Response:
        params = await _body_json(request)
        if isinstance(params, Response):
            return params
        bad = _decode_zip(params)
        if bad:
            return bad
        try:
            return _json(
                200,
                await call(
                    "update_function_code",
                    FunctionName=unquote(request.path_params["name"]),
                    ZipFile=params.get("ZipFile"),
                    S3Bucket=params.get("S3Bucket"),
                    S3Key=params.get("S3Key"),
                ),
            )
        except ClientError as exc:
            return _from_client_error(exc)

    async def invocations(request: Request) -> Response:
        payload = await request.body()
        try:
            result = await call(
                "invoke",
                FunctionName=unquote(request.path_params["name"]),
                Payload=payload,
                InvocationType=request.headers.get("x-amz-invocation-type", "RequestResponse"),
                LogType=request.headers.get("x-amz-log-type", "None"),
            )
        except ClientError as exc:
            return _from_client_error(exc)
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
        Route(PREFIX, create_or_list, methods=["GET", "POST"]),
        Route(PREFIX + "/", create_or_list, methods=["GET", "POST"]),
        Route(PREFIX + "/{name}", one, methods=["GET", "DELETE"]),
        Route(PREFIX + "/{name}/configuration", configuration, methods=["GET", "PUT"]),
        Route(PREFIX + "/{name}/code", code, methods=["PUT"]),
        Route(PREFIX + "/{name}/invocations", invocations, methods=["POST"]),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        return _error("UnknownOperationException", f"Unknown Lambda operation {request.url.path}", 404)

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})
