"""The app around the protocols: dispatch, --no-auth, ops endpoints, access log, keys, CLI."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config

from airegistry.server.app import ServerServices, create_app
from airegistry.server.auth import (
    KEYS_FILE_NAME,
    AuthConfig,
    KeyStoreError,
    create_key,
    parse_env_keys,
)
from airegistry.storage.blobs.fs import FileBlobStore
from tests.server.conftest import (
    ACCOUNT_ID,
    REGION,
    RunningServer,
    make_configs,
    start_server,
    wait_for_log,
)

# -- ops endpoints and access log ---------------------------------------------------------------


def test_healthz(server: RunningServer) -> None:
    r = httpx.get(f"{server.url}/healthz", timeout=30)
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_metrics_count_requests_by_operation(server: RunningServer, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="m", Body=b"1")
    s3.get_object(Bucket=bucket, Key="m")["Body"].read()
    with pytest.raises(Exception):  # noqa: B017
        s3.get_object(Bucket=bucket, Key="missing")
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    assert re.search(r'airegistry_requests_total\{pid="\d+",service="s3",operation="PutObject",'
                     r'status="200"\} [1-9]', text)
    assert 'operation="GetObject",status="404"' in text
    assert 'airegistry_request_duration_seconds_bucket{' in text and 'le="+Inf"' in text
    assert "# TYPE airegistry_request_duration_seconds histogram" in text


def test_access_log_is_one_json_line_per_request(server: RunningServer, s3: Any, bucket: str,
                                                 access_log: pytest.LogCaptureFixture) -> None:
    s3.put_object(Bucket=bucket, Key="logme", Body=b"12345")
    records = [json.loads(line) for line in wait_for_log(access_log, "/logme")]
    put = [r for r in records if r["operation"] == "PutObject" and r["path"].endswith("/logme")]
    assert len(put) == 1
    rec = put[0]
    assert rec["method"] == "PUT" and rec["status"] == 200 and rec["service"] == "s3"
    assert rec["bytes_in"] == 5 and rec["duration_ms"] >= 0 and rec["request_id"]
    assert rec["access_key"] == server.access_key


# -- dispatch to the plugged-in services -----------------------------------------------------------


class FakeLambda:
    """A stand-in Lambda ASGI app recording what the dispatcher hands it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bytes, str | None]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            msg = await receive()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        self.calls.append((scope["method"], scope["path"], body, scope.get("airegistry.access_key")))
        out = json.dumps({"Functions": []}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": out})


FAKE_REQUEST_ID = "3f0c2a9e-0000-4000-8000-00000000abcd"


def _fake_sagemaker(target: str | None, body: bytes) -> tuple[int, dict[str, str], bytes]:
    if target == "SageMaker.ListHubs":
        return 200, {"Content-Type": "application/x-amz-json-1.1",
                     "x-amzn-RequestId": FAKE_REQUEST_ID}, b'{"HubSummaries": []}'
    return 400, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps(
        {"__type": "UnknownOperationException", "message": f"unknown {target}"}).encode()


@pytest.fixture(scope="module")
def plugged(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("plugged")
    fake_lambda = FakeLambda()
    services = ServerServices(objects=FileBlobStore(root / "objects"), account_id=ACCOUNT_ID,
                              region=REGION, s3_configs=make_configs(root),
                              sagemaker=_fake_sagemaker, lambda_app=fake_lambda,
                              extra_metrics=lambda: "airegistry_import_jobs{state=\"queued\"} 3")
    key, secret = "AKIDPLUGGED000000001", "plugged-secret-00000000000000000000000000"
    app = create_app(services, auth=AuthConfig(keys={key: secret}))
    with start_server(app) as url:
        yield RunningServer(url, int(url.rsplit(":", 1)[1]), app, services.objects, key, secret,
                            root), fake_lambda


def test_signed_dispatch_by_credential_scope(plugged: Any) -> None:
    server, fake_lambda = plugged
    assert server.client("sagemaker").list_hubs()["HubSummaries"] == []
    assert server.client("lambda").list_functions()["Functions"] == []
    method, path, _, key = fake_lambda.calls[-1]
    assert (method, path.rstrip("/"), key) == ("GET", "/2015-03-31/functions", server.access_key)
    assert server.client("sts").get_caller_identity()["Account"] == ACCOUNT_ID
    s3 = server.client("s3")
    s3.create_bucket(Bucket="plugged")
    assert s3.list_buckets()["Buckets"][0]["Name"] == "plugged"


def test_access_log_names_the_request_id_the_client_got(
        plugged: Any, access_log: pytest.LogCaptureFixture) -> None:
    from botocore.exceptions import ClientError

    server, _ = plugged
    sm = server.client("sagemaker")
    # the handler's own id (the hub's), and the server's when the handler gives none
    assert sm.list_hubs()["ResponseMetadata"]["RequestId"] == FAKE_REQUEST_ID
    with pytest.raises(ClientError) as err:
        sm.describe_hub(HubName="h")
    failed = err.value.response["ResponseMetadata"]["RequestId"]
    records = [json.loads(line) for line in wait_for_log(access_log, '"DescribeHub"')]
    ids = {r["operation"]: r["request_id"] for r in records if r["service"] == "sagemaker"}
    assert ids["ListHubs"] == FAKE_REQUEST_ID and ids["DescribeHub"] == failed


def test_sagemaker_errors_pass_through(plugged: Any) -> None:
    from botocore.exceptions import ClientError

    server, _ = plugged
    with pytest.raises(ClientError) as exc:
        server.client("sagemaker").list_hub_contents(HubName="h", HubContentType="DataSet")
    assert exc.value.response["Error"]["Code"] == "UnknownOperationException"


def test_lambda_receives_body(plugged: Any) -> None:
    server, fake_lambda = plugged
    server.client("lambda").invoke(FunctionName="fn", Payload=b'{"x": 1}')
    method, path, body, _ = fake_lambda.calls[-1]
    assert (method, path, body) == ("POST", "/2015-03-31/functions/fn/invocations", b'{"x": 1}')


def test_extra_metrics_appended(plugged: Any) -> None:
    server, _ = plugged
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    assert 'airegistry_import_jobs{state="queued"} 3' in text


def test_unknown_service_in_scope(plugged: Any) -> None:
    server, _ = plugged
    client = boto3.client("dynamodb", endpoint_url=server.url, region_name=REGION,
                          aws_access_key_id=server.access_key,
                          aws_secret_access_key=server.secret_key,
                          config=Config(retries={"max_attempts": 1}))
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as exc:
        client.list_tables()
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


# -- --no-auth ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("noauth")
    fake_lambda = FakeLambda()
    services = ServerServices(objects=FileBlobStore(root / "objects"), account_id=ACCOUNT_ID,
                              region=REGION, s3_configs=make_configs(root),
                              sagemaker=_fake_sagemaker, lambda_app=fake_lambda)
    app = create_app(services, auth=None)
    with start_server(app) as url:
        yield url, fake_lambda


def test_no_auth_unsigned_dispatch(open_server: Any) -> None:
    url, fake_lambda = open_server
    assert httpx.put(f"{url}/free", timeout=30).status_code == 200
    assert httpx.put(f"{url}/free/a.txt", content=b"hi", timeout=30).status_code == 200
    assert httpx.get(f"{url}/free/a.txt", timeout=30).content == b"hi"
    r = httpx.post(url + "/", data={"Action": "GetCallerIdentity", "Version": "2011-06-15"},
                   timeout=30)
    assert r.status_code == 200 and "assumed-role/airegistry/anonymous" in r.text
    r = httpx.get(f"{url}/?Action=GetRole&RoleName=r&Version=2010-05-08", timeout=30)
    assert r.status_code == 403 and "AccessDenied" in r.text
    r = httpx.post(url + "/", headers={"X-Amz-Target": "SageMaker.ListHubs"}, content=b"{}",
                   timeout=30)
    assert r.json() == {"HubSummaries": []}
    assert httpx.get(f"{url}/2015-03-31/functions/", timeout=30).status_code == 200
    assert fake_lambda.calls[-1][3] is None


def test_no_auth_still_accepts_signed_clients(open_server: Any) -> None:
    url, _ = open_server
    s3 = boto3.client("s3", endpoint_url=url, region_name=REGION, aws_access_key_id="ANY",
                      aws_secret_access_key="thing", config=Config(s3={"addressing_style": "path"}))
    s3.create_bucket(Bucket="signed-anyway")
    s3.put_object(Bucket="signed-anyway", Key="k", Body=b"v", ChecksumAlgorithm="SHA256")
    assert s3.get_object(Bucket="signed-anyway", Key="k")["Body"].read() == b"v"
    sts = boto3.client("sts", endpoint_url=url, region_name=REGION, aws_access_key_id="ANYKEY",
                       aws_secret_access_key="x")
    assert sts.get_caller_identity()["Arn"].endswith("/ANYKEY")


def test_no_auth_logs_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("WARNING", logger="airegistry.server")
    create_app(ServerServices(objects=FileBlobStore(tmp_path / "o"), account_id=ACCOUNT_ID,
                              region=REGION, s3_configs=make_configs(tmp_path)), auth=None)
    assert any("DISABLED" in r.getMessage() for r in caplog.records)


# -- keys ------------------------------------------------------------------------------------------------


def test_create_key_stores_private_file(tmp_path: Path) -> None:
    key_id, secret = create_key(tmp_path)
    key2, _ = create_key(tmp_path)
    path = tmp_path / KEYS_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    auth = AuthConfig.from_home(tmp_path, env={})
    assert auth.lookup(key_id) == secret and auth.lookup(key2) is not None
    assert len(key_id) == 20 and len(secret) == 40
    assert secret not in repr(auth)


def test_env_keys(tmp_path: Path) -> None:
    auth = AuthConfig.from_home(tmp_path, env={"AIREGISTRY_SERVER_KEYS": "AK1:S1, AK2:S2"})
    assert auth.lookup("AK1") == "S1" and auth.lookup("AK2") == "S2"
    with pytest.raises(KeyStoreError) as exc:
        parse_env_keys("AK1:S1,broken")
    assert "entry 2" in str(exc.value) and "S1" not in str(exc.value)


def test_world_readable_keys_file_refused(tmp_path: Path) -> None:
    create_key(tmp_path)
    os.chmod(tmp_path / KEYS_FILE_NAME, 0o644)
    with pytest.raises(KeyStoreError, match="chmod 600"):
        AuthConfig.from_home(tmp_path, env={})


def test_malformed_keys_file(tmp_path: Path) -> None:
    path = tmp_path / KEYS_FILE_NAME
    path.write_text('{"keys": [{"access_key_id": 1}]}')
    os.chmod(path, 0o600)
    with pytest.raises(KeyStoreError, match=r"keys\[0\]"):
        AuthConfig.from_home(tmp_path, env={})


def test_key_created_while_running_is_accepted(tmp_path: Path) -> None:
    auth = AuthConfig.from_home(tmp_path, env={})
    key_id, secret = create_key(tmp_path)
    assert auth.lookup(key_id) == secret


# -- the CLI end to end ------------------------------------------------------------------------------

_RUNNER = (
    "import argparse, sys\n"
    "from airegistry.cli.server import add_server_parser\n"
    "p = argparse.ArgumentParser(); add_server_parser(p.add_subparsers())\n"
    "a = p.parse_args(sys.argv[1:]); sys.exit(a.func(a))\n"
)


def _cli(*args: str, **kwargs: Any) -> Any:
    return subprocess.run([sys.executable, "-c", _RUNNER, "server", *args], capture_output=True,
                          text=True, timeout=120, **kwargs)


def test_cli_refuses_to_start_without_keys(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "AIREGISTRY_SERVER_KEYS"}
    res = _cli("--home", str(tmp_path), "--port", "0", env=env)
    assert res.returncode == 2
    assert "--create-key" in res.stderr


@pytest.mark.slow
def test_cli_create_key_and_serve(tmp_path: Path) -> None:
    res = _cli("--home", str(tmp_path), "--create-key")
    assert res.returncode == 0, res.stderr
    key_id = re.search(r"AWS_ACCESS_KEY_ID=(\S+)", res.stdout).group(1)  # type: ignore[union-attr]
    secret = re.search(r"AWS_SECRET_ACCESS_KEY=(\S+)", res.stdout).group(1)  # type: ignore[union-attr]
    proc = subprocess.Popen([sys.executable, "-c", _RUNNER, "server", "--home", str(tmp_path),
                             "--port", "0"], stderr=subprocess.PIPE, text=True)
    try:
        port = None
        lines = []
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            m = re.search(r"running on http://127\.0\.0\.1:(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        assert port, "".join(lines)
        url = f"http://127.0.0.1:{port}"
        sts = boto3.client("sts", endpoint_url=url, region_name=REGION, aws_access_key_id=key_id,
                           aws_secret_access_key=secret)
        assert sts.get_caller_identity()["Arn"].endswith(f"/{key_id}")
        s3 = boto3.client("s3", endpoint_url=url, region_name=REGION, aws_access_key_id=key_id,
                          aws_secret_access_key=secret,
                          config=Config(s3={"addressing_style": "path"}))
        s3.create_bucket(Bucket="cli-bucket")
        s3.put_object(Bucket="cli-bucket", Key="k", Body=b"persisted")
        assert s3.get_object(Bucket="cli-bucket", Key="k")["Body"].read() == b"persisted"
    finally:
        proc.send_signal(signal.SIGTERM)
        rest = proc.communicate(timeout=60)[1]
    # uvicorn re-raises SIGTERM after a graceful shutdown, so the exit status reports it.
    assert proc.returncode in (0, -signal.SIGTERM), rest
    assert "Application shutdown complete" in rest
    assert secret not in "".join(lines) + rest
