"""Lambda runtime names: python3.8 ... python3.13 accepted and recorded, run on our interpreter;
UpdateFunctionConfiguration over the real Lambda wire (boto3 against a server process)."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from airegistry.home import Home
from airegistry.runtime.runtimes import PYTHON_RUNTIMES, host_runtime
from airegistry.server.app import create_app
from airegistry.server.auth import AuthConfig
from airegistry.server.compose import build_services
from tests.server.conftest import start_server

KEY, SECRET = "AKIDRUNTIMES00000001", "runtimes-secret-0123456789abcdefghijklm"
ROLE = "arn:aws:iam::123456789012:role/r"
CODE = "import sys\n\ndef lambda_handler(e, c):\n    return {'reward': 1.0, 'python': '%d.%d' % sys.version_info[:2], 'limit': c.memory_limit_in_mb}\n"


def package(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("lambda_function.py", source)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def lam(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    home = Home(tmp_path_factory.mktemp("runtimes") / "home")
    app = create_app(build_services(home), auth=AuthConfig(keys={KEY: SECRET}))
    try:
        with start_server(app) as url:
            yield boto3.client(
                "lambda", endpoint_url=url, region_name="us-east-1", aws_access_key_id=KEY,
                aws_secret_access_key=SECRET, config=Config(retries={"max_attempts": 1}),
            )
    finally:
        home.close()


def test_every_python3_runtime_is_accepted_recorded_and_runs_here(lam: Any) -> None:
    assert tuple(f"python3.{m}" for m in range(8, 14)) == PYTHON_RUNTIMES
    for runtime in ("python3.8", "python3.9", "python3.13"):
        name = f"rt-{runtime.replace('.', '-')}"
        created = lam.create_function(FunctionName=name, Runtime=runtime, Role=ROLE,
                                      Handler="lambda_function.lambda_handler",
                                      Code={"ZipFile": package(CODE)})
        assert created["Runtime"] == runtime
        assert lam.get_function(FunctionName=name)["Configuration"]["Runtime"] == runtime
        out = json.loads(lam.invoke(FunctionName=name, Payload=b"{}")["Payload"].read())
        assert out["python"] == host_runtime().removeprefix("python")


@pytest.mark.parametrize("runtime", ["python2.7", "python3.7", "python3.14", "nodejs20.x", "python"])
def test_other_runtimes_are_refused_with_the_list(lam: Any, runtime: str) -> None:
    with pytest.raises(ClientError) as caught:
        lam.create_function(FunctionName="rt-bad", Runtime=runtime, Role=ROLE,
                            Handler="lambda_function.lambda_handler",
                            Code={"ZipFile": package(CODE)})
    error = caught.value.response["Error"]
    assert error["Code"] == "InvalidParameterValueException"
    assert runtime in error["Message"] and "python3.8" in error["Message"]


def test_update_function_configuration(lam: Any) -> None:
    lam.create_function(FunctionName="rt-update", Runtime="python3.9", Role=ROLE,
                        Handler="lambda_function.lambda_handler", Code={"ZipFile": package(CODE)},
                        MemorySize=512)
    before = json.loads(lam.invoke(FunctionName="rt-update")["Payload"].read())
    assert before["limit"] == "512"
    updated = lam.update_function_configuration(
        FunctionName="rt-update", Runtime="python3.11", MemorySize=768, Timeout=7,
        Description="now 3.11", Environment={"Variables": {"MODE": "strict"}},
    )
    assert (updated["Runtime"], updated["MemorySize"], updated["Timeout"]) == ("python3.11", 768, 7)
    assert updated["Description"] == "now 3.11"
    assert updated["Environment"] == {"Variables": {"MODE": "strict"}}
    # Warm workers of the old configuration are gone: the new memory limit is in force.
    after = json.loads(lam.invoke(FunctionName="rt-update")["Payload"].read())
    assert after["limit"] == "768"
    with pytest.raises(ClientError) as caught:
        lam.update_function_configuration(FunctionName="rt-update", Runtime="python2.7")
    assert caught.value.response["Error"]["Code"] == "InvalidParameterValueException"
    with pytest.raises(ClientError) as caught:
        lam.update_function_configuration(FunctionName="rt-update", Handler="missing.handler")
    assert caught.value.response["Error"]["Code"] == "InvalidParameterValueException"
    with pytest.raises(ClientError) as caught:
        lam.update_function_configuration(FunctionName="rt-absent", Timeout=3)
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert lam.get_function_configuration(FunctionName="rt-update")["Runtime"] == "python3.11"
