"""`airegistry server` as users run it: a real process, several workers, kill -9, SIGTERM,
and the clients people point at it (boto3, the AWS CLI, pandas through s3fs)."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.config import Config

pytestmark = pytest.mark.slow

REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    def __init__(self, home: Path, workers: int = 1) -> None:
        self.home = home
        self.workers = workers
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = home.parent / f"server-{self.port}.log"

    def create_key(self) -> tuple[str, str]:
        out = subprocess.run(
            [sys.executable, "-m", "airegistry.cli.main", "server", "--home", str(self.home), "--create-key"],
            capture_output=True, text=True, check=True,
        ).stdout
        values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        return values["AWS_ACCESS_KEY_ID"], values["AWS_SECRET_ACCESS_KEY"]

    def start(self) -> None:
        env = dict(os.environ)
        env.pop("AIREGISTRY_ENDPOINT_URL", None)
        with open(self.log, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "airegistry.cli.main", "server", "--home", str(self.home),
                 "--port", str(self.port), "--workers", str(self.workers)],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError("server did not become healthy:\n" + self.log.read_text()[-3000:])

    def signal(self, sig: int) -> int:
        assert self.proc is not None
        if sig == signal.SIGKILL:
            # uvicorn's supervisor and its workers all die, as when the machine loses the service.
            subprocess.run(["pkill", "-KILL", "-P", str(self.proc.pid)], check=False)
        self.proc.send_signal(sig)
        return self.proc.wait(60)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@contextmanager
def running(home: Path, workers: int = 1) -> Iterator[tuple[ServerProcess, str, str]]:
    server = ServerProcess(home, workers)
    key, secret = server.create_key()
    server.start()
    try:
        yield server, key, secret
    finally:
        server.stop()


def client(server: ServerProcess, key: str, secret: str, service: str):
    return boto3.client(
        service, endpoint_url=server.url, region_name=REGION, aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )


def test_acknowledged_writes_survive_sigkill_and_workers_share_the_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    server = ServerProcess(home, workers=2)
    key, secret = server.create_key()
    server.start()
    try:
        s3 = client(server, key, secret, "s3")
        sm = client(server, key, secret, "sagemaker")
        s3.create_bucket(Bucket="durable")
        sm.create_hub(HubName="team-hub", HubDescription="shared")
        for i in range(20):  # spread over both workers by the kernel
            s3.put_object(Bucket="durable", Key=f"k{i}", Body=f"value {i}".encode())
            sm.import_hub_content(
                HubName="team-hub", HubContentType="JsonDoc", HubContentName=f"doc-{i}",
                DocumentSchemaVersion="2.0.0", HubContentDocument=json.dumps({"i": i}),
            )
        server.signal(signal.SIGKILL)
    finally:
        server.stop()
    server.start()
    try:
        s3 = client(server, key, secret, "s3")
        sm = client(server, key, secret, "sagemaker")
        for i in range(20):
            assert s3.get_object(Bucket="durable", Key=f"k{i}")["Body"].read() == f"value {i}".encode()
        names = set()
        token = None
        while True:
            page = sm.list_hub_contents(HubName="team-hub", HubContentType="JsonDoc", MaxResults=7,
                                        **({"NextToken": token} if token else {}))
            names |= {s["HubContentName"] for s in page["HubContentSummaries"]}
            token = page.get("NextToken")
            if not token:
                break
        assert names == {f"doc-{i}" for i in range(20)}
    finally:
        server.stop()


def test_imports_resume_after_a_restart(tmp_path: Path) -> None:
    home = tmp_path / "home"
    rows = "".join(json.dumps({"prompt": f"q{i} " * 20, "completion": f"a{i} " * 20}) + "\n" for i in range(60_000))
    server = ServerProcess(home)
    key, secret = server.create_key()
    server.start()
    try:
        s3 = client(server, key, secret, "s3")
        sm = client(server, key, secret, "sagemaker")
        s3.create_bucket(Bucket="src")
        s3.put_object(Bucket="src", Key="big.jsonl", Body=rows.encode())
        sm.create_hub(HubName="resume-hub", HubDescription="r")
        sm.import_hub_content(
            HubName="resume-hub", HubContentType="DataSet", HubContentName="big",
            DocumentSchemaVersion="2.0.0", HubContentVersion="1.0.0",
            HubContentDocument=json.dumps({"DatasetS3Bucket": "src", "DatasetS3Prefix": "big.jsonl"}),
            HubContentSearchKeywords=["customization_technique:sft"],
        )
        server.signal(signal.SIGKILL)
    finally:
        server.stop()
    server.start()
    try:
        sm = client(server, key, secret, "sagemaker")
        deadline = time.monotonic() + 120
        while True:
            status = sm.describe_hub_content(
                HubName="resume-hub", HubContentType="DataSet", HubContentName="big"
            )["HubContentStatus"]
            if status != "Importing" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert status == "Available"
    finally:
        server.stop()


def test_sigterm_drains_in_flight_requests(tmp_path: Path) -> None:
    with running(tmp_path / "home") as (server, key, secret):
        lam = client(server, key, secret, "lambda")
        code = io.BytesIO()
        with zipfile.ZipFile(code, "w") as archive:
            archive.writestr(
                "lambda_function.py",
                "import time\n"
                "def lambda_handler(event, context):\n"
                "    time.sleep(event.get('sleep', 0))\n"
                "    return {'reward': 1.0}\n",
            )
        lam.create_function(FunctionName="slow", Runtime="python3.12", Role="arn:aws:iam::123456789012:role/x",
                            Handler="lambda_function.lambda_handler", Code={"ZipFile": code.getvalue()})
        lam.invoke(FunctionName="slow", Payload=b"{}")  # warm the pool
        result: dict = {}

        def call() -> None:
            response = lam.invoke(FunctionName="slow", Payload=json.dumps({"sleep": 2}).encode())
            result["status"] = response["StatusCode"]
            result["payload"] = json.loads(response["Payload"].read())

        thread = threading.Thread(target=call)
        thread.start()
        time.sleep(0.7)
        exit_code = server.signal(signal.SIGTERM)
        thread.join(30)
        assert result == {"status": 200, "payload": {"reward": 1.0}}
        # uvicorn re-raises the signal after its graceful shutdown, as a supervisor expects.
        assert exit_code in (0, -signal.SIGTERM)
        assert "Traceback" not in server.log.read_text()


def test_aws_cli_and_pandas_against_the_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    aws = shutil.which("aws", path=str(Path(sys.executable).parent)) or shutil.which("aws")
    with running(tmp_path / "home") as (server, key, secret):
        env = dict(os.environ, AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret,
                   AWS_DEFAULT_REGION=REGION, AWS_CONFIG_FILE=os.devnull,
                   AWS_SHARED_CREDENTIALS_FILE=os.devnull)
        if aws is None:
            pytest.skip("the AWS CLI is not installed (it is part of the dev extra)")
        data = tmp_path / "local.csv"
        data.write_text("prompt,completion\nhi,there\n")
        def cli(*args: str) -> str:
            done = subprocess.run([aws, "--endpoint-url", server.url, *args], env=env,
                                  capture_output=True, text=True)
            assert done.returncode == 0, f"aws {' '.join(args)}: {done.stderr}"
            return done.stdout

        cli("s3", "mb", "s3://cli-bucket")
        cli("s3", "cp", str(data), "s3://cli-bucket/d/local.csv")
        assert "local.csv" in cli("s3", "ls", "s3://cli-bucket/d/")
        cli("sagemaker", "create-hub", "--hub-name", "cli-hub", "--hub-description", "x")
        hubs = json.loads(cli("sagemaker", "list-hubs"))
        assert [h["HubName"] for h in hubs["HubSummaries"]] == ["cli-hub"]
        identity = json.loads(cli("sts", "get-caller-identity"))
        assert len(identity["Account"]) == 12

        # The SDK in remote mode, then pandas reading the registered dataset through s3fs.
        import pandas as pd

        for name, value in (("AIREGISTRY_ENDPOINT_URL", server.url), ("AWS_ACCESS_KEY_ID", key),
                            ("AWS_SECRET_ACCESS_KEY", secret), ("AWS_DEFAULT_REGION", REGION),
                            ("AWS_CONFIG_FILE", os.devnull), ("AWS_SHARED_CREDENTIALS_FILE", os.devnull)):
            monkeypatch.setenv(name, value)
        from airegistry.dataset import DataSet

        rows = tmp_path / "train.jsonl"
        rows.write_text("".join(json.dumps({"prompt": f"q{i}", "completion": f"a{i}"}) + "\n" for i in range(25)))
        ds = DataSet.create("pandas-data", str(rows), "sft")
        frame = pd.read_json(
            ds.source, lines=True,
            storage_options={"key": key, "secret": secret, "client_kwargs": {"endpoint_url": server.url,
                                                                              "region_name": REGION}},
        )
        assert len(frame) == 25 and list(frame.columns) == ["prompt", "completion"]
