"""Batch invocation on a Ray cluster: the same sandboxed worker pool, on every node.

One actor per node with CPUs holds a ``WorkerPool`` for the function (the same pool, sandbox and
limits as the embedded runtime, sized to the node's CPUs). The function's deployment package is
fetched once by the driver (``GetFunction``, checked against its ``CodeSha256``), put in Ray's
object store and unpacked by each actor. A batch is cut into chunks spread over the actors;
results come back in input order and reward checks happen in the caller as for every backend,
so outcomes are the pool's, item for item.

Connects to ``AIREGISTRY_RAY_ADDRESS`` when set (an existing cluster, e.g. ``ray://head:10001``
or ``auto``), else to the Ray already initialised in this process, else starts a local one.
Actors stay warm for further batches of the same function version until ``close()``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import shutil
import tempfile
import threading
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .contract import (
    FunctionUnreachableError,
    InvocationCancelledError,
    InvocationResult,
    ProgressCallback,
    RuntimeUnavailableError,
)

CHUNKS_PER_ACTOR = 4  # chunks in flight per actor: its pool is busy while results travel
MAX_CHUNK = 4096
START_TIMEOUT_S = 120.0


class PoolHost:
    """Ray actor body: a warm ``WorkerPool`` for one function version on one node."""

    def __init__(self, package: bytes, config: dict[str, Any], workers: int, isolation: str) -> None:
        from airegistry.runtime.pool import FunctionSpec, WorkerPool

        self._dir = Path(tempfile.mkdtemp(prefix="airegistry-ray-"))
        code = self._dir / "code"
        with zipfile.ZipFile(io.BytesIO(package)) as archive:
            archive.extractall(code)
        for path in [self._dir, code, *code.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        spec = FunctionSpec(code_dir=code, **config)
        self._pool = WorkerPool(spec, workers=workers, isolation=isolation)  # type: ignore[arg-type]
        self._pool.start()

    def run(self, events: list[Any]) -> list[tuple[bool, Any, float, str]]:
        return [(r.ok, r.payload, r.duration_ms, r.logs) for r in self._pool.invoke_batch(events)]

    def isolation(self) -> str:
        return self._pool.isolation

    def close(self) -> None:
        self._pool.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def ensure_ray() -> Any:
    """The ``ray`` module, connected (see the module docstring)."""
    try:
        import ray
    except ImportError:
        raise RuntimeUnavailableError(
            "the Ray backend needs Ray: pip install 'airegistry[ray]'"
        ) from None
    if not ray.is_initialized():
        address = os.environ.get("AIREGISTRY_RAY_ADDRESS") or None
        try:
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(include_dashboard=False, log_to_driver=False)
        except Exception as exc:
            raise RuntimeUnavailableError(f"cannot connect to Ray ({address or 'local'}): {exc}") from exc
    return ray


def _describe(session: Any, function: str) -> dict[str, Any]:
    from botocore.exceptions import ClientError

    try:
        return session.functions.get_function(FunctionName=function)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            raise FunctionUnreachableError(exc.response["Error"].get("Message", "")) from None
        raise


def _download(session: Any, described: dict[str, Any]) -> bytes:
    """The deployment package, checked against the function's ``CodeSha256``."""
    location = described["Code"]["Location"]
    if location.startswith("s3://"):
        from airegistry.dataset import parse_s3_uri

        with contextlib.closing(session.objects.open(*parse_s3_uri(location))) as stream:
            data = stream.read()
    else:  # AWS: a presigned https URL
        import urllib.request

        with urllib.request.urlopen(location, timeout=60) as response:
            data = response.read()
    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    if digest != described["Configuration"]["CodeSha256"]:
        name = described["Configuration"]["FunctionName"]
        raise RuntimeUnavailableError(f"the code of {name} does not match its CodeSha256")
    return data


def run_on_actors(
    ray: Any,
    actors: list[Any],
    events: Sequence[Any],
    *,
    cancel: threading.Event | None = None,
    progress: ProgressCallback | None = None,
) -> list[InvocationResult]:
    """Spread ``events`` over ``PoolHost`` actors in chunks; results in input order."""
    size = max(1, min(MAX_CHUNK, -(-len(events) // (len(actors) * CHUNKS_PER_ACTOR))))
    refs = {}
    for n, start in enumerate(range(0, len(events), size)):
        actor = actors[n % len(actors)]
        refs[actor.run.remote(list(events[start : start + size]))] = start
    results: list[InvocationResult | None] = [None] * len(events)
    waiting = list(refs)
    while waiting:
        if cancel is not None and cancel.is_set():
            for ref in waiting:
                ray.cancel(ref)
            raise InvocationCancelledError(list(results))
        done, waiting = ray.wait(waiting, num_returns=len(waiting), timeout=0.05)
        finished = 0
        for ref in done:
            start = refs[ref]
            for k, item in enumerate(ray.get(ref)):
                results[start + k] = InvocationResult(*item)
                finished += 1
        if finished and progress is not None:
            progress(finished)
    return results  # type: ignore[return-value]


class RayInvoker:
    """Runs batches on warm Ray actors (one per node), each hosting the sandboxed pool."""

    backend = "ray"

    def __init__(self, session: Any, *, isolation: str | None = None) -> None:
        self.session = session
        self.isolation = isolation or os.environ.get("AIREGISTRY_ISOLATION", "auto")
        self._lock = threading.Lock()
        self._actors: dict[str, list[Any]] = {}  # function version -> actors

    def _actors_for(self, function: str) -> list[Any]:
        ray = ensure_ray()
        described = _describe(self.session, function)
        config = described["Configuration"]
        key = f"{config['FunctionArn']}:{config['CodeSha256']}:{config.get('RevisionId', '')}"
        with self._lock:
            actors = self._actors.get(key)
            if actors is not None:
                return actors
            for stale in [k for k in self._actors if k.startswith(f"{config['FunctionArn']}:")]:
                self._kill(self._actors.pop(stale))
            spec = {
                "handler": config["Handler"],
                "timeout_s": float(config["Timeout"]),
                "memory_mb": int(config["MemorySize"]),
                "function_name": config["FunctionName"],
                "function_arn": config["FunctionArn"],
                "environment": dict((config.get("Environment") or {}).get("Variables") or {}),
            }
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            host = ray.remote(PoolHost)
            package_ref = ray.put(_download(self.session, described))
            actors = []
            for node in ray.nodes():
                cpus = int(node.get("Resources", {}).get("CPU", 0))
                if not node.get("Alive") or cpus < 1:
                    continue
                actors.append(
                    host.options(
                        # The pool's workers are sandboxed processes outside Ray's accounting;
                        # reserving the node's CPUs for the actor would only block other actors
                        # (another function's pool) from being placed there.
                        num_cpus=0,
                        max_concurrency=CHUNKS_PER_ACTOR + 1,
                        scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False),
                    ).remote(package_ref, spec, cpus, self.isolation)
                )
            if not actors:
                raise RuntimeUnavailableError("the Ray cluster has no alive node with a CPU")
            try:  # started, or the error now
                ray.get([a.isolation.remote() for a in actors], timeout=START_TIMEOUT_S)
            except ray.exceptions.GetTimeoutError:
                self._kill(actors)
                raise RuntimeUnavailableError(
                    f"Ray did not start the pool actors within {START_TIMEOUT_S:.0f} s"
                ) from None
            self._actors[key] = actors
            return actors

    def invoke_batch(
        self,
        function: str,
        events: Sequence[Any],
        *,
        cancel: threading.Event | None = None,
        progress: ProgressCallback | None = None,
    ) -> list[InvocationResult]:
        if not events:
            return []
        from airegistry.runtime.dispatch import encode_events

        encode_events(list(events), 0)  # an event that cannot travel: TypeError naming it
        actors = self._actors_for(function)
        return run_on_actors(ensure_ray(), actors, events, cancel=cancel, progress=progress)

    @staticmethod
    def _kill(actors: list[Any]) -> None:
        import ray

        for actor in actors:
            try:
                ray.get(actor.close.remote(), timeout=30)
            except Exception:  # closing is best effort; the kill below is not
                pass
            ray.kill(actor)

    def close(self) -> None:
        with self._lock:
            actors, self._actors = self._actors, {}
        if actors:
            for group in actors.values():
                self._kill(group)
