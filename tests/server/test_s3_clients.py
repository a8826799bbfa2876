"""Other real clients against the server: boto3 over TLS (aws-chunked uploads with trailing
checksums, as boto3 sends them on HTTPS), s3fs + pandas, and the AWS CLI."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig

from airegistry.server.app import ServerOptions, create_app
from airegistry.server.auth import AuthConfig
from tests.server.conftest import RunningServer, make_services, start_server, wait_for_log


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    home = tmp_path_factory.mktemp("tls")
    cert, key = home / "cert.pem", home / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=120)
    services = make_services(home)
    akid, secret = "AKIDTLSSERVER0000001", "tls-secret-00000000000000000000000000000"
    app = create_app(services, auth=AuthConfig(keys={akid: secret}),
                     options=ServerOptions(max_object_size=64 * 1024 * 1024))
    with start_server(app, ssl_certfile=str(cert), ssl_keyfile=str(key)) as url:
        yield RunningServer(url, int(url.rsplit(":", 1)[1]), app, services.objects, akid, secret,
                            home)


@pytest.fixture
def tls_s3(tls_server: RunningServer) -> Any:
    warnings.filterwarnings("ignore", message="Unverified HTTPS request")
    return tls_server.client("s3")


@pytest.mark.parametrize("algorithm", [None, "CRC32", "CRC32C", "SHA256"])
def test_boto3_https_sends_aws_chunked_trailers(tls_server: RunningServer, tls_s3: Any,
                                                algorithm: str | None,
                                                access_log: pytest.LogCaptureFixture) -> None:
    bucket = f"tls-{(algorithm or 'default').lower()}"
    tls_s3.create_bucket(Bucket=bucket)
    body = os.urandom(300_000)
    extra = {"ChecksumAlgorithm": algorithm} if algorithm else {}
    put = tls_s3.put_object(Bucket=bucket, Key="obj", Body=body, **extra)
    alg = algorithm or "CRC32"  # botocore's default flexible checksum
    assert put[f"Checksum{alg}"]
    got = tls_s3.get_object(Bucket=bucket, Key="obj", ChecksumMode="ENABLED")
    assert got["Body"].read() == body
    assert got[f"Checksum{alg}"] == put[f"Checksum{alg}"]
    if alg == "CRC32":
        assert put["ChecksumCRC32"] == base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()
    lines = wait_for_log(access_log, f"/{bucket}/obj", count=2)
    put_line = next(json.loads(x) for x in lines
                    if f"/{bucket}/obj" in x and '"PutObject"' in x)
    # The encoded body is larger than the object: it really arrived aws-chunked.
    assert put_line["bytes_in"] > len(body)


def test_boto3_https_multipart_transfer(tls_s3: Any, tmp_path: Path) -> None:
    tls_s3.create_bucket(Bucket="tls-multipart")
    src = tmp_path / "f.bin"
    data = os.urandom(11 * 1024 * 1024)
    src.write_bytes(data)
    cfg = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    tls_s3.upload_file(str(src), "tls-multipart", "f.bin", Config=cfg)
    dst = tmp_path / "g.bin"
    tls_s3.download_file("tls-multipart", "f.bin", str(dst), Config=cfg)
    assert hashlib.sha256(dst.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()


def test_s3fs_and_pandas(server: RunningServer, s3: Any, bucket: str) -> None:
    pd = pytest.importorskip("pandas")
    s3fs = pytest.importorskip("s3fs")
    csv = "a,b\n" + "".join(f"{i},{i * i}\n" for i in range(1000))
    s3.put_object(Bucket=bucket, Key="data/table.csv", Body=csv.encode())
    rows = [{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(50)]
    s3.put_object(Bucket=bucket, Key="data/rows.jsonl",
                  Body="".join(json.dumps(r) + "\n" for r in rows).encode())
    opts = {"key": server.access_key, "secret": server.secret_key,
            "client_kwargs": {"endpoint_url": server.url, "region_name": "us-east-1"}}
    df = pd.read_csv(f"s3://{bucket}/data/table.csv", storage_options=opts)
    assert list(df.columns) == ["a", "b"] and len(df) == 1000 and df["b"].iloc[-1] == 999 * 999
    js = pd.read_json(f"s3://{bucket}/data/rows.jsonl", lines=True, storage_options=opts)
    assert js["completion"].tolist() == [r["completion"] for r in rows]
    fs = s3fs.S3FileSystem(**opts)
    assert sorted(fs.ls(f"{bucket}/data")) == [f"{bucket}/data/rows.jsonl",
                                               f"{bucket}/data/table.csv"]
    with fs.open(f"{bucket}/data/table.csv", "rb") as fh:
        fh.seek(4)
        assert fh.read(4) == b"0,0\n"
    fs.pipe(f"{bucket}/data/written.txt", b"from s3fs")
    assert s3.get_object(Bucket=bucket, Key="data/written.txt")["Body"].read() == b"from s3fs"


@pytest.mark.slow
def test_aws_cli(server: RunningServer, bucket: str, tmp_path: Path) -> None:
    aws = Path(sys.executable).with_name("aws")
    if not aws.exists():
        pytest.skip("the AWS CLI is not installed in this environment")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": server.access_key,
           "AWS_SECRET_ACCESS_KEY": server.secret_key, "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
    src = tmp_path / "up.txt"
    src.write_text("hello from the aws cli\n")

    def run(*args: str) -> str:
        res = subprocess.run([str(aws), "--endpoint-url", server.url, *args], env=env,
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        return res.stdout

    run("s3", "cp", str(src), f"s3://{bucket}/cli/up.txt")
    assert "up.txt" in run("s3", "ls", f"s3://{bucket}/cli/")
    run("s3", "cp", f"s3://{bucket}/cli/up.txt", str(tmp_path / "down.txt"))
    assert (tmp_path / "down.txt").read_text() == "hello from the aws cli\n"
    ident = json.loads(run("sts", "get-caller-identity"))
    assert ident["Arn"].endswith(f"/{server.access_key}")


def test_duckdb_through_s3fs(server: RunningServer, s3: Any, bucket: str) -> None:
    """DuckDB reads objects through an fsspec filesystem (no httpfs download needed)."""
    duckdb = pytest.importorskip("duckdb")
    s3fs = pytest.importorskip("s3fs")
    s3.put_object(Bucket=bucket, Key="d/rows.jsonl",
                  Body="".join(json.dumps({"i": i}) + "\n" for i in range(100)).encode())
    fs = s3fs.S3FileSystem(key=server.access_key, secret=server.secret_key,
                           client_kwargs={"endpoint_url": server.url, "region_name": "us-east-1"})
    con = duckdb.connect()
    con.register_filesystem(fs)
    total = con.execute(f"SELECT sum(i) FROM read_json_auto('s3://{bucket}/d/rows.jsonl')").fetchone()
    assert total == (sum(range(100)),)
