"""The Lambda REST-JSON wire and the SageMaker JSON wire of a full server, through boto3."""

from __future__ import annotations

import base64
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
from airegistry.server.app import create_app
from airegistry.server.auth import AuthConfig
from airegistry.server.compose import build_services
from tests.server.conftest import start_server

KEY, SECRET = "AKIDLAMBDAWIRE000001", "lambda-wire-secret-0123456789abcdefghij"


def package(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("lambda_function.py", source)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    home = Home(tmp_path_factory.mktemp("lambda-wire") / "home")
    app = create_app(build_services(home), auth=AuthConfig(keys={KEY: SECRET}))
    try:
        with start_server(app) as url:
            def make(service: str) -> Any:
                return boto3.client(service, endpoint_url=url, region_name="us-east-1",
                                    aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                                    config=Config(retries={"max_attempts": 1}))
            yield {"lambda": make("lambda"), "sagemaker": make("sagemaker"), "home": home}
    finally:
        home.close()


def test_function_lifecycle(clients: dict[str, Any]) -> None:
    lam = clients["lambda"]
    created = lam.create_function(
        FunctionName="wire-fn", Runtime="python3.12", Role="arn:aws:iam::123456789012:role/r",
        Handler="lambda_function.lambda_handler",
        Code={"ZipFile": package("def lambda_handler(e, c):\n    return {'reward': 0.5, 'echo': e}\n")},
        Timeout=5, MemorySize=512,
    )
    assert created["FunctionName"] == "wire-fn" and created["Timeout"] == 5
    assert created["FunctionArn"].endswith(":function:wire-fn")
    assert len(base64.b64decode(created["CodeSha256"])) == 32
    got = lam.get_function(FunctionName="wire-fn")
    assert got["Configuration"]["CodeSha256"] == created["CodeSha256"]
    assert "wire-fn" in [f["FunctionName"] for f in lam.list_functions()["Functions"]]

    out = lam.invoke(FunctionName="wire-fn", Payload=json.dumps({"x": 1}))
    assert out["StatusCode"] == 200 and "FunctionError" not in out
    assert json.loads(out["Payload"].read()) == {"reward": 0.5, "echo": {"x": 1}}

    updated = lam.update_function_code(
        FunctionName="wire-fn",
        ZipFile=package("def lambda_handler(e, c):\n    raise ValueError('bad input ' + str(e))\n"),
    )
    assert updated["CodeSha256"] != created["CodeSha256"]
    failed = lam.invoke(FunctionName="wire-fn", Payload=b'{"y": 2}', LogType="Tail")
    assert failed["FunctionError"] == "Unhandled"
    payload = json.loads(failed["Payload"].read())
    assert payload["errorType"] == "ValueError"
    assert "bad input" in payload["errorMessage"]
    assert isinstance(payload["stackTrace"], list)

    lam.delete_function(FunctionName="wire-fn")
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName="wire-fn", Payload=b"{}")
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_function_errors(clients: dict[str, Any]) -> None:
    lam = clients["lambda"]
    common = {"Runtime": "python3.12", "Role": "arn:aws:iam::123456789012:role/r",
              "Handler": "lambda_function.lambda_handler"}
    with pytest.raises(ClientError) as exc:
        lam.create_function(FunctionName="no-module", Code={"ZipFile": b"not a zip"}, **common)
    assert exc.value.response["Error"]["Code"] == "InvalidParameterValueException"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("other.py", "x = 1\n")
    with pytest.raises(ClientError) as exc:
        lam.create_function(FunctionName="no-module", Code={"ZipFile": archive.getvalue()}, **common)
    assert "lambda_function.py" in exc.value.response["Error"]["Message"]
    slip = io.BytesIO()
    with zipfile.ZipFile(slip, "w") as z:
        z.writestr("lambda_function.py", "def lambda_handler(e, c):\n    return 1\n")
        z.writestr("../../escape.py", "x = 1\n")
    with pytest.raises(ClientError) as exc:
        lam.create_function(FunctionName="zip-slip", Code={"ZipFile": slip.getvalue()}, **common)
    assert "Unsafe path" in exc.value.response["Error"]["Message"]
    good = package("def lambda_handler(e, c):\n    return {}\n")
    lam.create_function(FunctionName="twice", Code={"ZipFile": good}, **common)
    with pytest.raises(ClientError) as exc:
        lam.create_function(FunctionName="twice", Code={"ZipFile": good}, **common)
    assert exc.value.response["Error"]["Code"] == "ResourceConflictException"
    with pytest.raises(ClientError) as exc:
        lam.invoke(FunctionName="arn:aws:lambda:eu-west-1:999999999999:function:theirs", Payload=b"{}")
    assert exc.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_sagemaker_errors_on_the_wire(clients: dict[str, Any]) -> None:
    sm = clients["sagemaker"]
    with pytest.raises(ClientError) as exc:
        sm.describe_hub(HubName="absent-hub")
    assert exc.value.response["Error"]["Code"] == "ResourceNotFound"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    sm.create_hub(HubName="wire-hub", HubDescription="d")
    described = sm.describe_hub(HubName="wire-hub")
    assert described["CreationTime"].tzinfo is not None
    with pytest.raises(ClientError) as exc:
        sm.import_hub_content(HubName="wire-hub", HubContentType="JsonDoc", HubContentName="a..b",
                              DocumentSchemaVersion="2.0.0", HubContentDocument="{}")
    assert exc.value.response["Error"]["Code"] == "ValidationException"


def test_home_path_is_not_reachable_from_function_workers(clients: dict[str, Any]) -> None:
    lam = clients["lambda"]
    home: Home = clients["home"]
    probe = (
        "import os\n"
        "def lambda_handler(event, context):\n"
        "    found = []\n"
        "    for path in event['paths']:\n"
        "        try:\n"
        "            open(path, 'rb').read(1)\n"
        "            found.append(path)\n"
        "        except OSError:\n"
        "            pass\n"
        "    secrets = [k for k in os.environ if k.startswith('AIREGISTRY')\n"
        "               or k in ('AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN')]\n"
        "    return {'found': found, 'env': secrets}\n"
    )
    lam.create_function(FunctionName="probe", Runtime="python3.12", Role="arn:aws:iam::123456789012:role/r",
                        Handler="lambda_function.lambda_handler", Code={"ZipFile": package(probe)})
    import os

    assert "AIREGISTRY_HOME" in os.environ  # the parent has it; the worker must not
    db = str(home.path / "registry.db")
    out = json.loads(lam.invoke(FunctionName="probe", Payload=json.dumps({"paths": [db]}))["Payload"].read())
    assert out["env"] == []
    from airegistry.runtime.pool import isolation_status

    if isolation_status()["mode"] == "full":
        assert out["found"] == []
    else:
        pytest.skip("bubblewrap unavailable: only the environment is isolated (see docs/runtime.md)")


