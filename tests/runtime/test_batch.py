"""The batch-invocation contract (airegistry/batch/contract.py), checked against every backend:
the embedded warm pool, Lambda fan-out against a real server process, and a real local Ray.

One function covers ordering and each per-item error; the Ray backend must give the pool's
results item for item. Ray is started once for the module (it costs seconds and ~700 MB).
"""

from __future__ import annotations

import io
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from airegistry.batch import FunctionUnreachableError, close_invokers, invoker_for
from airegistry.batch.contract import InvocationCancelledError
from airegistry.batch.fanout import LambdaFanoutInvoker
from airegistry.batch.local import LocalPoolInvoker
from airegistry.home import Home
from airegistry.server.app import create_app
from airegistry.server.auth import AuthConfig
from airegistry.server.compose import build_services
from airegistry.session import Session
from tests.server.conftest import start_server

KEY, SECRET = "AKIDBATCHCONTRACT001", "batch-contract-secret-0123456789abcdefg"
CODE = """
import os
import time

def lambda_handler(event, context):
    kind = event.get("kind", "ok")
    if kind == "raise":
        raise ValueError(f"bad item {event['i']}")
    if kind == "sleep":
        time.sleep(30)
    if kind == "exit":
        os._exit(3)
    if kind == "slow":
        time.sleep(0.05)
    return {"reward": (event["i"] % 10) / 10, "details": {"i": event["i"]}}
"""
EVENTS = [{"i": i} for i in range(40)] + [
    {"i": 40, "kind": "raise"},
    {"i": 41, "kind": "sleep"},
    {"i": 42},
    {"i": 43, "kind": "exit"},
    {"i": 44},
]


def package() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("lambda_function.py", CODE)
    return buffer.getvalue()


def create(functions: Any, name: str) -> str:
    return functions.create_function(
        FunctionName=name, Runtime="python3.11", Role="arn:aws:iam::123456789012:role/r",
        Handler="lambda_function.lambda_handler", Code={"ZipFile": package()}, Timeout=1,
    )["FunctionArn"]


def check_contract(results: list[Any]) -> list[tuple[bool, Any]]:
    assert len(results) == len(EVENTS)
    for i in range(40):
        assert results[i].ok and results[i].payload["details"] == {"i": i}
    assert results[40].payload["errorType"] == "ValueError"
    assert results[40].payload["errorMessage"] == "bad item 40"
    assert results[41].payload["errorType"] == "Sandbox.Timedout"
    assert results[42].ok and results[44].ok
    assert results[43].payload["errorType"] == "Runtime.ExitError"
    return [(r.ok, {k: v for k, v in r.payload.items() if k != "stackTrace"}) for r in results]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Session, str]]:
    session = Session(backend="embedded", home=tmp_path_factory.mktemp("batch") / "home")
    arn = create(session.functions, "batch-fn")
    yield session, arn
    close_invokers(session)
    session.home.close()


@pytest.fixture(scope="module")
def pool_results(embedded: tuple[Session, str]) -> list[tuple[bool, Any]]:
    session, arn = embedded
    invoker = invoker_for(session)
    assert isinstance(invoker, LocalPoolInvoker)
    return check_contract(invoker.invoke_batch(arn, EVENTS))


def test_pool_backend_keeps_the_contract(pool_results: list[tuple[bool, Any]]) -> None:
    assert len(pool_results) == len(EVENTS)


def test_pool_progress_cancel_and_errors(embedded: tuple[Session, str]) -> None:
    session, arn = embedded
    invoker = invoker_for(session, "pool")
    seen: list[int] = []
    events = [{"i": i, "kind": "slow"} for i in range(20)]
    results = invoker.invoke_batch(arn, events, progress=seen.append)
    assert sum(seen) == 20 and all(r.ok for r in results)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(InvocationCancelledError) as caught:
        invoker.invoke_batch(arn, [{"i": i, "kind": "slow"} for i in range(400)], cancel=cancel)
    assert len(caught.value.results) == 400
    assert any(r is None for r in caught.value.results)
    with pytest.raises(TypeError, match="event #1"):
        invoker.invoke_batch(arn, [{"i": 0}, {"i": object()}])
    with pytest.raises(FunctionUnreachableError, match="outside this registry"):
        invoker.invoke_batch("arn:aws:lambda:us-east-1:999999999999:function:theirs", [{}])
    with pytest.raises(ValueError, match="Unknown evaluation backend"):
        invoker_for(session, "spark")


def test_lambda_fanout_against_a_server_keeps_the_contract(
    tmp_path: Path, pool_results: list[tuple[bool, Any]]
) -> None:
    home = Home(tmp_path / "server-home")
    app = create_app(build_services(home), auth=AuthConfig(keys={KEY: SECRET}))
    try:
        with start_server(app) as url:
            client = boto3.client(
                "lambda", endpoint_url=url, region_name="us-east-1", aws_access_key_id=KEY,
                aws_secret_access_key=SECRET, config=Config(retries={"max_attempts": 1}),
            )
            arn = create(client, "batch-fn")
            invoker = LambdaFanoutInvoker(client, concurrency=4)
            seen: list[int] = []
            results = invoker.invoke_batch(arn, EVENTS, progress=seen.append)
            assert check_contract(results) == pool_results
            assert sum(seen) == len(EVENTS)
            cancel = threading.Event()
            cancel.set()
            with pytest.raises(InvocationCancelledError):
                invoker.invoke_batch(arn, EVENTS, cancel=cancel)
            with pytest.raises(TypeError, match="event #0"):
                invoker.invoke_batch(arn, [{"x": {1, 2}}])
            with pytest.raises(FunctionUnreachableError):
                invoker.invoke_batch("absent-fn", [{}])
    finally:
        home.close()


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False
    )
    try:
        yield ray
    finally:
        ray.shutdown()


def test_ray_gives_the_pools_results(
    local_ray: Any, embedded: tuple[Session, str], pool_results: list[tuple[bool, Any]]
) -> None:
    session, arn = embedded
    invoker = invoker_for(session, "ray")
    seen: list[int] = []
    assert check_contract(invoker.invoke_batch(arn, EVENTS, progress=seen.append)) == pool_results
    assert sum(seen) == len(EVENTS)
    # Warm actors serve the next batch; a bad event is named before anything is sent.
    assert [r.payload["details"]["i"] for r in invoker.invoke_batch(arn, EVENTS[:5])] == list(
        range(5)
    )
    with pytest.raises(TypeError, match="event #1"):
        invoker.invoke_batch(arn, [{"i": 0}, {"i": object()}])
    with pytest.raises(FunctionUnreachableError):
        invoker.invoke_batch("absent-fn", [{}])


def test_evaluate_with_backend_ray_matches_the_pool(
    local_ray: Any, registry_home: Path, tmp_path: Path
) -> None:
    from airegistry.evaluator import Evaluator

    source = tmp_path / "reward.py"
    source.write_text(
        "def lambda_handler(event, context):\n"
        "    n = int(event['response'])\n"
        "    if n == 7:\n"
        "        raise KeyError('seven')\n"
        "    return {'reward': 1.5 if n == 3 else n / 20, 'details': n}\n"
    )
    ev = Evaluator.create(name="ray-vs-pool", type="RewardFunction", source=str(source))
    rows = [{"prompt": "p", "response": str(n)} for n in range(20)]
    try:
        on_pool = ev.evaluate(rows, batch_size=8, progress=False)
        on_ray = ev.evaluate(rows, batch_size=8, progress=False, backend="ray")
    finally:
        close_invokers()
    assert on_ray == on_pool
    assert on_pool[3].error_type == "InvalidRewardValue" and on_pool[7].error_type == "KeyError"
    assert [o.index for o in on_ray] == list(range(20))


def test_ray_address_joins_an_existing_cluster(
    local_ray: Any, embedded: tuple[Session, str]
) -> None:
    """AIREGISTRY_RAY_ADDRESS: another process runs its batch on the cluster started here."""
    import json
    import os
    import subprocess
    import sys

    session, arn = embedded
    address = local_ray.get_runtime_context().gcs_address
    script = (
        "import json, sys\n"
        "import ray\n"
        "from airegistry.batch import close_invokers, invoker_for\n"
        "from airegistry.session import Session\n"
        "s = Session(backend='embedded', home=sys.argv[1])\n"
        "out = invoker_for(s, 'ray').invoke_batch(sys.argv[2], [{'i': 3}, {'i': 40, 'kind': 'raise'}])\n"
        "print(json.dumps([ray.get_runtime_context().gcs_address, [r.ok for r in out]]))\n"
        "close_invokers()\n"
    )
    env = {**os.environ, "AIREGISTRY_RAY_ADDRESS": address}
    done = subprocess.run(
        [sys.executable, "-c", script, str(session.home.path), arn],
        env=env, capture_output=True, text=True, timeout=240, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    joined, oks = json.loads(done.stdout.strip().splitlines()[-1])
    assert joined == address and oks == [True, False]
