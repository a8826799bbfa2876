"""The function service: the embedded side of the Lambda-shaped port.

Methods take boto3 ``lambda`` keyword arguments and return boto3-shaped dicts, and
errors are ``ClientError`` with Lambda's codes, so the SDK uses this object and a real
boto3 Lambda client interchangeably. The HTTP server's Lambda REST handler calls the
same methods.

Deployment packages are zips stored in the blob store (any backend: the home's
filesystem or a shared S3 bucket) under their sha256; each one is fetched and unpacked
once per host (atomically, checked against its sha256) into the local code cache
``<home>/runtime/code/<sha256>`` and run by warm worker pools from
``airegistry.runtime.pool``. So a function deployed through one server replica runs on
another: the metadata row and the package are shared, the unpacked copy is local.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import os
import shutil
import tempfile
import threading
import uuid
import weakref
import zipfile
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from airegistry.runtime.function_inputs import (
    FUNCTION_ARN_RE,
    FUNCTION_NAME_RE,
    MAX_PAYLOAD_BYTES,
    check_package,
    checked_environment,
    lambda_error,
)
from airegistry.runtime.runtimes import DEFAULT_RUNTIME, unsupported_runtime_message
from airegistry.storage.blobs import BlobStore
from airegistry.storage.metadata import FunctionExists, FunctionRepository


def _iso(ts: float) -> str:
    """Lambda reports LastModified as an ISO-8601 string with milliseconds and offset."""
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"


class _Payload(io.BytesIO):
    """Stands for botocore's StreamingBody: ``.read()`` gives the bytes."""


class FunctionService:
    """Lambda-compatible functions of one registry home."""

    def __init__(
        self,
        repository: FunctionRepository,
        objects: BlobStore,
        *,
        account_id: str,
        region: str,
        code_bucket: str,
        cache_dir: Path,
        hidden_paths: tuple[Path, ...] = (),
        isolation: str | None = None,
    ) -> None:
        self.repo = repository
        self.objects = objects
        self.account_id = account_id
        self.region = region
        self.code_bucket = code_bucket
        # The registry's directories (home, blobs): workers must never see them.
        self.hidden_paths = hidden_paths
        self.cache_dir = cache_dir
        self.isolation = isolation or os.environ.get("AIREGISTRY_ISOLATION", "auto")
        self._pools: Any = None
        self._seen: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()

    # -- names and ARNs ----------------------------------------------------------------------

    def arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"

    def _name(self, value: str, operation: str) -> str:
        match = FUNCTION_ARN_RE.match(value)
        if match:
            if match["account"] != self.account_id or match["region"] != self.region:
                raise lambda_error(
                    "ResourceNotFoundException",
                    f"Function not found: {value} (it belongs to another account or region; "
                    "this registry cannot reach it)",
                    404,
                    operation,
                )
            return match["name"]
        if not FUNCTION_NAME_RE.match(value):
            raise lambda_error(
                "InvalidParameterValueException",
                f"Invalid function name {value!r}: 1-64 letters, digits, hyphens or underscores",
                400,
                operation,
            )
        return value

    def owns_arn(self, arn: str) -> bool | None:
        """True/False for an ARN of this registry (exists or not); None for anyone else's."""
        match = FUNCTION_ARN_RE.match(arn)
        if not match or match["account"] != self.account_id or match["region"] != self.region:
            return None
        return self.repo.exists(match["name"])

    # -- packages ----------------------------------------------------------------------------

    def _code_bytes(self, code: dict[str, Any], operation: str) -> bytes:
        if "ZipFile" in code:
            data = code["ZipFile"]
            if isinstance(data, (bytes, bytearray)):
                return bytes(data)
            try:
                return base64.b64decode(data, validate=True)
            except (TypeError, ValueError):
                raise lambda_error("InvalidParameterValueException",
                                   "ZipFile must be the bytes of a zip (or their base64)", 400,
                                   operation) from None
        if "S3Bucket" in code and "S3Key" in code:
            try:
                return self.objects.read_bytes(code["S3Bucket"], code["S3Key"])
            except Exception as exc:
                raise lambda_error(
                    "InvalidParameterValueException",
                    f"Error occurred while GetObject. S3 Bucket: {code['S3Bucket']}, "
                    f"S3 Key: {code['S3Key']}: {exc}",
                    400,
                    operation,
                ) from None
        raise lambda_error(
            "InvalidParameterValueException", "Code needs ZipFile or S3Bucket and S3Key", 400, operation
        )

    def _store_code(self, name: str, data: bytes) -> tuple[str, str, str]:
        digest = hashlib.sha256(data).digest()
        key = f"functions/{name}/{digest.hex()}.zip"
        self.objects.ensure_bucket(self.code_bucket)
        self.objects.put_object(self.code_bucket, key, data, content_type="application/zip")
        return key, base64.b64encode(digest).decode(), digest.hex()

    def _configuration(self, row: Any) -> dict[str, Any]:
        return {
            "FunctionName": row.name,
            "FunctionArn": self.arn(row.name),
            "Runtime": row.runtime,
            "Role": row.role,
            "Handler": row.handler,
            "CodeSize": row.code_size,
            "Description": row.description or "",
            "Timeout": row.timeout,
            "MemorySize": row.memory_size,
            "LastModified": _iso(row.modified_at),
            "CodeSha256": row.code_sha256,
            "Version": "$LATEST",
            "Environment": {"Variables": json.loads(row.environment)},
            "RevisionId": row.revision_id,
            "State": "Active",
            "LastUpdateStatus": "Successful",
            "PackageType": "Zip",
            "Architectures": ["x86_64"],
        }

    def _row(self, name: str, operation: str) -> Any:
        row = self.repo.get(name)
        if row is None:
            raise lambda_error(
                "ResourceNotFoundException",
                f"Function not found: {self.arn(name)}",
                404,
                operation,
            )
        return row

    # -- Lambda operations ---------------------------------------------------------------------

    def create_function(
        self,
        *,
        FunctionName: str,
        Role: str,
        Code: dict[str, Any],
        Runtime: str = DEFAULT_RUNTIME,
        Handler: str = "lambda_function.lambda_handler",
        Description: str = "",
        Timeout: int = 30,
        MemorySize: int = 1024,
        Environment: dict[str, Any] | None = None,
        Tags: dict[str, str] | None = None,
        **_ignored: Any,
    ) -> dict[str, Any]:
        op = "CreateFunction"
        name = self._name(FunctionName, op)
        variables = checked_environment(op, Environment, Role=Role, Runtime=Runtime,
                                        Handler=Handler, Description=Description)
        if not isinstance(Code, dict):
            raise lambda_error("InvalidParameterValueException", "Code must be a structure",
                               400, op)
        self._check_settings(op, Runtime, Timeout, MemorySize)
        data = self._code_bytes(Code, op)
        check_package(data, Handler, op)
        key, sha_b64, _ = self._store_code(name, data)
        try:
            self.repo.insert(
                name=name,
                runtime=Runtime,
                handler=Handler,
                role=Role,
                description=Description,
                timeout=int(Timeout),
                memory_size=int(MemorySize),
                environment=json.dumps(variables),
                code_bucket=self.code_bucket,
                code_key=key,
                code_sha256=sha_b64,
                code_size=len(data),
                revision_id=str(uuid.uuid4()),
                tags=json.dumps(Tags or {}),
            )
        except FunctionExists:
            raise lambda_error(
                "ResourceConflictException", f"Function already exist: {name}", 409, op
            ) from None
        return self._configuration(self._row(name, op))

    @staticmethod
    def _check_settings(op: str, runtime: Any, timeout: Any, memory_mb: Any) -> None:
        problem = unsupported_runtime_message(runtime)
        if problem is not None:
            raise lambda_error("InvalidParameterValueException", problem, 400, op)
        if not 1 <= int(timeout) <= 900:
            raise lambda_error("InvalidParameterValueException", "Timeout must be 1-900 seconds", 400, op)
        if not 128 <= int(memory_mb) <= 10240:
            raise lambda_error("InvalidParameterValueException", "MemorySize must be 128-10240 MB", 400, op)

    def get_function(self, *, FunctionName: str, **_ignored: Any) -> dict[str, Any]:
        op = "GetFunction"
        row = self._row(self._name(FunctionName, op), op)
        return {
            "Configuration": self._configuration(row),
            "Code": {"RepositoryType": "S3", "Location": f"s3://{row.code_bucket}/{row.code_key}"},
            "Tags": json.loads(row.tags),
        }

    def get_function_configuration(self, *, FunctionName: str, **_ignored: Any) -> dict[str, Any]:
        return self.get_function(FunctionName=FunctionName)["Configuration"]

    def update_function_code(
        self, *, FunctionName: str, ZipFile: bytes | None = None, S3Bucket: str | None = None,
        S3Key: str | None = None, **_ignored: Any,
    ) -> dict[str, Any]:
        op = "UpdateFunctionCode"
        name = self._name(FunctionName, op)
        row = self._row(name, op)
        code: dict[str, Any] = {"ZipFile": ZipFile} if ZipFile is not None else {
            "S3Bucket": S3Bucket, "S3Key": S3Key,
        }
        data = self._code_bytes(code, op)
        check_package(data, row.handler, op)
        key, sha_b64, _ = self._store_code(name, data)
        self.repo.update(name, code_key=key, code_sha256=sha_b64, code_size=len(data),
                         revision_id=str(uuid.uuid4()))
        self._discard_pools(name)
        return self._configuration(self._row(name, op))

    def update_function_configuration(
        self,
        *,
        FunctionName: str,
        Runtime: str | None = None,
        Handler: str | None = None,
        Timeout: int | None = None,
        MemorySize: int | None = None,
        Description: str | None = None,
        Role: str | None = None,
        Environment: dict[str, Any] | None = None,
        **_ignored: Any,
    ) -> dict[str, Any]:
        """Change a function's settings; warm workers of the old settings are discarded."""
        op = "UpdateFunctionConfiguration"
        name = self._name(FunctionName, op)
        given = {"Runtime": Runtime, "Handler": Handler, "Description": Description, "Role": Role}
        variables = checked_environment(op, Environment,
                                        **{k: v for k, v in given.items() if v is not None})
        row = self._row(name, op)
        runtime = row.runtime if Runtime is None else Runtime
        timeout = row.timeout if Timeout is None else Timeout
        memory = row.memory_size if MemorySize is None else MemorySize
        self._check_settings(op, runtime, timeout, memory)
        values: dict[str, Any] = {
            "runtime": runtime, "timeout": int(timeout), "memory_size": int(memory),
            "revision_id": str(uuid.uuid4()),
        }
        if Handler is not None:
            data = self.objects.read_bytes(row.code_bucket, row.code_key)
            check_package(data, Handler, op)
            values["handler"] = Handler
        if Description is not None:
            values["description"] = Description
        if Role is not None:
            values["role"] = Role
        if Environment is not None:
            values["environment"] = json.dumps(variables)
        self.repo.update(name, **values)
        self._discard_pools(name)
        return self._configuration(self._row(name, op))

    def delete_function(self, *, FunctionName: str, **_ignored: Any) -> dict[str, Any]:
        op = "DeleteFunction"
        name = self._name(FunctionName, op)
        row = self._row(name, op)
        self.repo.delete(name)
        self._discard_pools(name)
        with contextlib.suppress(Exception):
            self.objects.delete_object(row.code_bucket, row.code_key)
        return {"ResponseMetadata": {"HTTPStatusCode": 204}}

    def list_functions(
        self, *, Marker: str | None = None, MaxItems: int = 50, **_ignored: Any
    ) -> dict[str, Any]:
        rows = self.repo.page(Marker, int(MaxItems))
        out: dict[str, Any] = {"Functions": [self._configuration(r) for r in rows[: int(MaxItems)]]}
        if len(rows) > int(MaxItems):
            out["NextMarker"] = rows[int(MaxItems) - 1].name
        return out

    def invoke(
        self,
        *,
        FunctionName: str,
        Payload: bytes | str | None = b"{}",
        InvocationType: str = "RequestResponse",
        LogType: str = "None",
        **_ignored: Any,
    ) -> dict[str, Any]:
        op = "Invoke"
        raw = Payload.encode() if isinstance(Payload, str) else (Payload or b"{}")
        if len(raw) > MAX_PAYLOAD_BYTES:
            raise lambda_error(
                "RequestTooLargeException",
                f"Request must be smaller than {MAX_PAYLOAD_BYTES} bytes for the Invoke operation",
                413,
                op,
            )
        try:
            event = json.loads(raw) if raw.strip() else {}
        except ValueError:
            raise lambda_error(
                "InvalidRequestContentException", "Could not parse request body into json", 400, op
            ) from None
        if InvocationType == "DryRun":
            self._row(self._name(FunctionName, op), op)
            return {"StatusCode": 204, "Payload": _Payload(b"")}
        result = self.invoke_batch(FunctionName, [event])[0]
        response: dict[str, Any] = {
            "StatusCode": 202 if InvocationType == "Event" else 200,
            "ExecutedVersion": "$LATEST",
            "Payload": _Payload(json.dumps(result.payload).encode()),
        }
        if not result.ok:
            response["FunctionError"] = "Unhandled"
        if LogType == "Tail":
            response["LogResult"] = base64.b64encode(result.logs.encode()[-4096:]).decode()
        return response

    # -- fast path for evaluation ---------------------------------------------------------------

    def invoke_batch(
        self, function: str, events: Sequence[Any], *, cancel: Any = None, progress: Any = None
    ) -> list[Any]:
        """Run many events on the function's warm pool; results in order (InvocationResult).

        ``cancel``/``progress`` as in ``airegistry.batch.contract``."""
        op = "Invoke"
        name = self._name(function, op)
        row = self._row(name, op)
        pool = self._pool_for(row)
        return pool.invoke_batch(list(events), cancel=cancel, progress=progress)

    def _pool_manager(self) -> Any:
        with self._lock:
            if self._pools is None:
                from airegistry.runtime.manager import PoolManager

                self._pools = PoolManager(isolation=self.isolation)
            return self._pools

    def _pool_for(self, row: Any) -> Any:
        from airegistry.runtime.pool import FunctionSpec

        sha_hex = base64.b64decode(row.code_sha256).hex()
        key = f"{row.name}:{sha_hex}"

        def spec() -> FunctionSpec:
            return FunctionSpec(
                code_dir=self._unpacked(row, sha_hex),
                handler=row.handler,
                timeout_s=float(row.timeout),
                memory_mb=int(row.memory_size),
                function_name=row.name,
                function_arn=self.arn(row.name),
                environment=json.loads(row.environment),
                hidden_paths=self.hidden_paths,
            )

        pool = self._pool_manager().get(key, spec)
        self._seen[key] = pool
        return pool

    def _unpacked(self, row: Any, sha_hex: str) -> Path:
        target = self.cache_dir / sha_hex
        if target.is_dir():
            return target
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        data = self.objects.read_bytes(row.code_bucket, row.code_key)
        if hashlib.sha256(data).hexdigest() != sha_hex:
            raise lambda_error(
                "ServiceException", f"Stored code of {row.name} failed its checksum", 500, "Invoke"
            )
        staging = Path(tempfile.mkdtemp(dir=self.cache_dir, prefix=f".{sha_hex[:12]}-"))
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                archive.extractall(staging)
            for path in [staging, *staging.rglob("*")]:
                path.chmod(0o755 if path.is_dir() else 0o644)
            try:
                os.rename(staging, target)
            except OSError:
                if not target.is_dir():
                    raise
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return target

    def _discard_pools(self, name: str) -> None:
        if self._pools is not None:
            for key in self._pools.keys():  # noqa: SIM118 - PoolManager is not a dict
                if key.startswith(f"{name}:"):
                    self._pools.discard(key)

    def worker_count(self) -> int:
        if self._pools is None:
            return 0
        total = 0
        for pool in list(self._seen.values()):
            stats = pool.stats()
            if not stats["closed"]:
                total += int(stats["alive"])
        return total

    def close(self) -> None:
        if self._pools is not None:
            self._pools.close_all()
