"""What the function service checks of a caller's input before anything is stored.

Names, ARNs, sizes, deployment packages and environment variables, each refused with
Lambda's error code and status (``ClientError``, as boto3 raises it), so the embedded
service and the HTTP server report bad input identically.
"""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import PurePosixPath
from typing import Any

from botocore.exceptions import ClientError

FUNCTION_NAME_RE = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")
FUNCTION_ARN_RE = re.compile(
    r"^arn:aws[a-zA-Z-]*:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):function:"
    r"(?P<name>[a-zA-Z0-9-_]{1,64})(:(?P<qualifier>[a-zA-Z0-9-_$]+))?$"
)
MAX_ZIP_BYTES = 50 * 1024 * 1024
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024


def lambda_error(code: str, message: str, status: int, operation: str) -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
            "Type": "User",
            "message": message,
        },
        operation,
    )


_ENV_NAME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]+$")
#: Lambda's limit on a function's environment variables, names and values together.
MAX_ENVIRONMENT_BYTES = 4096


def checked_environment(operation: str, environment: Any, **strings: Any) -> dict[str, str]:
    """The environment variables of a create, refusing what would be stored unreadable.

    The wire checks the whole ``lambda`` model first; this guards the embedded callers:
    ``strings`` (Description, Role, ...) must be strings, ``Environment`` a
    ``{"Variables": {name: value}}`` whose names are Lambda's (``[a-zA-Z][a-zA-Z0-9_]+``)
    and whose values hold no NUL, so every later Invoke can set them.
    """
    for field, value in strings.items():
        if not isinstance(value, str):
            raise lambda_error("InvalidParameterValueException",
                               f"{field} must be a string, got {type(value).__name__}", 400,
                               operation)
    if environment is None:
        return {}
    variables = environment.get("Variables", {}) if isinstance(environment, dict) else None
    if not isinstance(variables, dict):
        raise lambda_error("InvalidParameterValueException",
                           "Environment must look like {'Variables': {'NAME': 'value'}}", 400,
                           operation)
    size = 0
    for name, value in variables.items():
        try:
            if not _ENV_NAME_RE.match(name) or "\x00" in value:
                raise ValueError(name)
            size += len(name.encode()) + len(value.encode("utf-8"))
        except (TypeError, ValueError):  # UnicodeEncodeError (a lone surrogate) included
            raise lambda_error(
                "InvalidParameterValueException",
                f"Environment variable {str(name)[:64]!r} needs a name matching "
                "[a-zA-Z][a-zA-Z0-9_]+ and a UTF-8 string value without NUL", 400,
                operation) from None
    if size > MAX_ENVIRONMENT_BYTES:
        raise lambda_error("InvalidParameterValueException",
                           f"Environment variables take {size} bytes; the limit is "
                           f"{MAX_ENVIRONMENT_BYTES}", 400, operation)
    return dict(variables)


def check_package(data: bytes, handler: str, operation: str) -> None:
    """Refuse a deployment package before it is stored: too big, not a zip, paths that
    would escape the code directory when unpacked, or no module for the handler."""
    if len(data) > MAX_ZIP_BYTES:
        raise lambda_error(
            "RequestEntityTooLargeException",
            f"The deployment package is {len(data):,} bytes; the limit is {MAX_ZIP_BYTES:,}",
            413,
            operation,
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except zipfile.BadZipFile:
        raise lambda_error(
            "InvalidParameterValueException",
            "Could not unzip uploaded file. Please check your file, then try to upload again.",
            400,
            operation,
        ) from None
    total = 0
    for info in infos:
        path = PurePosixPath(info.filename)
        if path.is_absolute() or ".." in path.parts or "\x00" in info.filename:
            raise lambda_error(
                "InvalidParameterValueException",
                f"Unsafe path in deployment package: {info.filename!r}",
                400,
                operation,
            )
        total += info.file_size
    if total > MAX_UNZIPPED_BYTES:
        raise lambda_error(
            "InvalidParameterValueException",
            f"Unzipped size must be smaller than {MAX_UNZIPPED_BYTES} bytes",
            400,
            operation,
        )
    module, _, function = handler.rpartition(".")
    if not module or not function:
        raise lambda_error(
            "InvalidParameterValueException",
            f"Handler {handler!r} must look like module.function",
            400,
            operation,
        )
    module_file = module.replace(".", "/") + ".py"
    names = {i.filename for i in infos}
    if module_file not in names and module.replace(".", "/") + "/__init__.py" not in names:
        raise lambda_error(
            "InvalidParameterValueException",
            f"The deployment package has no {module_file} for handler {handler!r}",
            400,
            operation,
        )
