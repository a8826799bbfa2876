"""Benchmark of ``airegistry server`` against moto's server and a canned-response floor.

One run starts three servers as subprocesses on free ports:

  ours   ``airegistry server --home <tmp> --workers N`` with a fresh access key (SigV4 on);
  moto   ``python -m moto.server`` (the anchor the issue names; no auth);
  floor  ``floor_app`` served by ``_stacks.py``: a minimal Starlette app on the same stack
         as ours (``--stack``) that answers every POST with a canned, valid DescribeHubContent or
         ListHubContents response. It does no work, so it is the client-side floor: what
         boto3 itself costs per call on this machine. For S3 it is the upload floor
         (``s3_upload_floor``): it receives each part and hashes what the protocol asks
         (MD5 for the ETag, the signed payload's sha256, the client's CRC32), keeps nothing.

and measures, with real boto3 clients (retries off, errors counted):

  * describe and a 100-item list page: requests/s, p50, p99, with 1 client process and
    with ``--clients`` processes (each its own boto3 client). Ours: DescribeHubContent /
    ListHubContents on a hub of JsonDoc items; moto: DescribeModelPackageGroup /
    ListModelPackageGroups (moto has no hub API); floor: canned hub responses.
  * the time to page through ``--items`` items with MaxResults=100 (items created through
    the API beforehand, on several threads);
  * the server's CPU time per request (user + system of its process tree over the 1-client
    window): steadier than req/s when other work shares the machine;
  * S3 upload_file/download_file of a ``--s3-mb`` file (default TransferConfig): MB/s each
    way and the server's peak RSS (process tree) during each transfer; ours and moto, and
    the floor's upload.

It prints a table, the ratios the issue's targets are stated in (met / MISSED), and the
issue's anchors for context. A script, not a test: nothing asserts a time.

    python benchmarks/bench_server.py --quick     # ~1.5 min: 1,000 items, 50 MB, 2 s windows
    python benchmarks/bench_server.py             # full: 10,000 items, 200 MB, 5 s windows

Each load window runs ``--rounds`` times, interleaved across the three servers, and the best
round is kept. The header shows the machine's load average at the start and end: with other
work on the machine the absolute numbers drop, the ratios within one run much less.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server_bench_support import (
    Call,
    Endpoint,
    LoadResult,
    RssSampler,
    ServerProcess,
    ServerStartError,
    free_port,
    make_client,
    managed_servers,
    run_in_threads,
    run_load,
    run_parallel,
    start_server,
    tree_cpu_seconds,
)
from _stacks import STACKS, launcher_argv

HUB = "bench-hub"
CONTENT_TYPE = "JsonDoc"
ACCOUNT = "123456789012"
PAGE = 100
DESCRIBE_INDEX = 42
BUCKET = "bench-s3"
MB = 1024 * 1024
FLOOR_ITEMS_ENV = "BENCH_FLOOR_ITEMS"
#: The stack ours and the floor run on unless --stack says otherwise: what
#: ``airegistry server`` uses by default.
DEFAULT_STACK = "uvicorn-httptools"

ANCHORS = """\
Anchors from issue #5 (measured earlier on this machine, for context):
  moto   ~240 describe/s (p50 3.1 ms), 79 list pages/s, 10,000 items paged in 1.2-2.3 s,
         S3 ~100 MB/s up, ~70 MB/s down, server RSS 4-7x the object
  floor  ~1,000 describe/s, 10,000 items paged in ~0.2 s
Targets: describe >= 2.5x moto and, with 1 client, >= 0.8x the floor on the same stack
(issue #12; #5 asked 0.6x); 10,000 items paged in <= 2x the floor's time; S3 >= 3x moto
both ways with server RSS < 150 MB during the transfer."""


# -- the items every server holds -------------------------------------------------------------


def item_name(i: int) -> str:
    return f"item-{i:05d}"


def group_name(i: int) -> str:
    return f"group-{i:05d}"


def item_document(i: int) -> str:
    """A small realistic JsonDoc (~250 bytes), identical for ours and the floor."""
    return json.dumps({
        "Kind": "benchmark-record", "Index": i, "Owner": "bench-team",
        "Labels": ["sft", "chat", "v1"],
        "Notes": "synthetic record used to measure the hub API round trip " * 3,
    }, separators=(",", ":"))


def group_description(i: int) -> str:
    """Same order of size as ``item_document`` so moto's responses are comparable."""
    return f"benchmark model package group {i} " + "synthetic description text " * 7


# -- the floor server (runs in a subprocess of this script) -----------------------------------


def _floor_describe(i: int) -> dict[str, Any]:
    hub_arn = f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:hub/{HUB}"
    return {
        "HubContentName": item_name(i),
        "HubContentArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:hub-content/{HUB}/"
                         f"{CONTENT_TYPE}/{item_name(i)}/1.0.0",
        "HubContentVersion": "1.0.0", "HubContentType": CONTENT_TYPE,
        "DocumentSchemaVersion": "1.0.0", "HubName": HUB, "HubArn": hub_arn,
        "HubContentDocument": item_document(i), "HubContentSearchKeywords": [],
        "HubContentDependencies": [], "HubContentStatus": "Available",
        "CreationTime": 1764300000.123, "LastModifiedTime": 1764300000.123,
    }


def _floor_summary(i: int) -> dict[str, Any]:
    return {
        "HubContentName": item_name(i),
        "HubContentArn": f"arn:aws:sagemaker:us-east-1:{ACCOUNT}:hub-content/{HUB}/"
                         f"{CONTENT_TYPE}/{item_name(i)}/1.0.0",
        "HubContentVersion": "1.0.0", "HubContentType": CONTENT_TYPE,
        "DocumentSchemaVersion": "1.0.0", "HubContentSearchKeywords": [],
        "HubContentStatus": "Available", "CreationTime": 1764300000.123,
    }


def floor_app(items: int) -> Any:
    """Answer every POST with precomputed bytes: no validation, no storage, no signing check.

    ListHubContents pages are addressed by ``NextToken`` ``p<page>``; the body is parsed
    only to find that token, which any real server must do too.
    """
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    ctype = "application/x-amz-json-1.1"
    pages_total = max(1, math.ceil(items / PAGE))
    pages: list[bytes] = []
    for page in range(pages_total):
        doc: dict[str, Any] = {"HubContentSummaries": [
            _floor_summary(i) for i in range(page * PAGE, min(items, (page + 1) * PAGE))]}
        if page + 1 < pages_total:
            doc["NextToken"] = f"p{page + 1}"
        pages.append(json.dumps(doc).encode())
    describe = json.dumps(_floor_describe(DESCRIBE_INDEX)).encode()
    headers = {"x-amzn-RequestId": "00000000-0000-0000-0000-000000000000"}

    async def endpoint(request: Request) -> Response:
        if request.method == "GET":
            return Response(b"ok", media_type="text/plain")
        operation = request.headers.get("x-amz-target", "").rpartition(".")[2]
        if operation == "ListHubContents":
            body = await request.body()
            token = json.loads(body).get("NextToken") if body else None
            page = int(token[1:]) if token else 0
            return Response(pages[page], media_type=ctype, headers=headers)
        await request.body()
        return Response(describe, media_type=ctype, headers=headers)

    return Starlette(routes=[Route("/", endpoint, methods=["GET", "POST"]),
                             Route("/{path:path}", s3_upload_floor,
                                   methods=["GET", "PUT", "POST", "DELETE", "HEAD"])])


_CRC32_HEADER = "x-amz-checksum-crc32"


async def s3_upload_floor(request: Any) -> Any:
    """The S3 upload floor: what any server must do with an upload's bytes, and nothing else.

    Every part's body is received, hashed with MD5 (its ETag), with sha256 when the client
    signed the payload (SigV4 requires the server to check it) and with CRC32 when the client
    sent that checksum (S3 checks and records it); the bytes are then dropped. Nothing is
    stored, so nothing can be read back: this measures the upload ceiling of the stack, the
    client and the hashing the protocol asks for on this machine.
    """
    import base64
    import secrets
    import zlib

    from starlette.responses import Response

    xml = "application/xml"
    query = request.query_params
    bucket, _, key = request.url.path.lstrip("/").partition("/")
    if request.method == "DELETE":
        return Response(status_code=204)
    if request.method == "PUT" and not key:
        return Response(headers={"Location": f"/{bucket}"})
    if request.method == "POST" and "uploads" in query:
        upload_id = secrets.token_hex(16)
        return Response(
            f"<InitiateMultipartUploadResult><Bucket>{bucket}</Bucket><Key>{key}</Key><UploadId>{upload_id}"
            "</UploadId></InitiateMultipartUploadResult>",
            media_type=xml)
    if request.method == "POST" and "uploadId" in query:
        await request.body()
        return Response(
            "<CompleteMultipartUploadResult><Bucket>{}</Bucket><Key>{}</Key>"
            '<ETag>"{}-1"</ETag></CompleteMultipartUploadResult>'.format(
                bucket, key, "0" * 32), media_type=xml)
    if request.method != "PUT":
        return Response(status_code=404)
    signed = request.headers.get("x-amz-content-sha256", "")
    want_crc = request.headers.get(_CRC32_HEADER)
    md5 = hashlib.md5()
    sha = hashlib.sha256() if re.fullmatch(r"[0-9a-f]{64}", signed) else None
    crc = 0
    async for chunk in request.stream():
        md5.update(chunk)
        if sha is not None:
            sha.update(chunk)
        if want_crc is not None:
            crc = zlib.crc32(chunk, crc)
    if sha is not None and sha.hexdigest() != signed:
        return Response("sha256 mismatch", status_code=400)
    headers = {"ETag": f'"{md5.hexdigest()}"'}
    if want_crc is not None:
        got = base64.b64encode(crc.to_bytes(4, "big")).decode()
        if got != want_crc:
            return Response("crc32 mismatch", status_code=400)
        headers[_CRC32_HEADER] = got
    return Response(headers=headers)


def floor_app_from_env() -> Any:
    """``floor_app`` for ``_stacks.py`` (the item count comes in ``BENCH_FLOOR_ITEMS``)."""
    return floor_app(int(os.environ.get(FLOOR_ITEMS_ENV, "1000")))


# -- starting the three servers -----------------------------------------------------------


def airegistry_argv() -> list[str]:
    exe = Path(sys.executable).with_name("airegistry")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "airegistry.cli.main"]


def create_key(home: Path) -> tuple[str, str]:
    """Run ``airegistry server --create-key`` and parse the two ``NAME=value`` lines it prints."""
    out = subprocess.run([*airegistry_argv(), "server", "--home", str(home), "--create-key"],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise RuntimeError(f"--create-key failed ({out.returncode}): {out.stderr.strip()}")
    key = re.search(r"^AWS_ACCESS_KEY_ID=(\S+)$", out.stdout, re.M)
    secret = re.search(r"^AWS_SECRET_ACCESS_KEY=(\S+)$", out.stdout, re.M)
    if not key or not secret:
        raise RuntimeError(f"could not parse --create-key output:\n{out.stdout}")
    return key.group(1), secret.group(1)


def start_ours(tmp: Path, args: argparse.Namespace) -> tuple[ServerProcess, Endpoint, bool]:
    home = tmp / "home"
    home.mkdir()
    auth = not args.no_auth
    key_id, secret = ("AKIDBENCHNOAUTH00000", "benchmark-no-auth-secret")
    if auth:
        try:
            key_id, secret = create_key(home)
        except Exception as exc:
            print(f"!! could not create an access key ({exc}); falling back to --no-auth")
            auth = False
    port = free_port()
    server = start_ours_on(args.stack, home, port, tmp, auth=auth, workers=args.workers,
                           log_level=args.server_log_level)
    return server, Endpoint("ours", server.endpoint, key_id, secret), auth


def start_ours_on(stack: str, home: Path, port: int, tmp: Path, *, auth: bool,
                  workers: int = 1, log_level: str = "info",
                  name: str = "ours") -> ServerProcess:
    """Our server over ``home`` on ``stack``: ``airegistry server`` for the uvicorn stacks
    (with the connection guard it ships with), the app factory on the others."""
    uvicorn_opts = STACKS[stack]
    if uvicorn_opts is not None:
        http, loop = uvicorn_opts
        argv = [*airegistry_argv(), "server", "--home", str(home), "--port", str(port),
                "--workers", str(workers), "--log-level", log_level, "--http", http,
                "--loop", loop]
        if not auth:
            argv.append("--no-auth")
        return start_server(name, argv, port, tmp, ready_path="/healthz")
    env = {"AIREGISTRY_SERVER_HOME": str(home),
           "AIREGISTRY_SERVER_NO_AUTH": "0" if auth else "1"}
    return start_server(name, launcher_argv(stack, port, "airegistry.server.compose:app_factory"),
                        port, tmp, ready_path="/healthz", env=env)


def start_moto(tmp: Path) -> tuple[ServerProcess, Endpoint]:
    port = free_port()
    server = start_server("moto", [sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                                   "-p", str(port)], port, tmp)
    return server, Endpoint("moto", server.endpoint, "testing", "testing")


def start_floor(tmp: Path, items: int, stack: str = DEFAULT_STACK,
                name: str = "floor") -> tuple[ServerProcess, Endpoint]:
    port = free_port()
    server = start_server(name, launcher_argv(stack, port, "bench_server:floor_app_from_env"),
                          port, tmp, env={FLOOR_ITEMS_ENV: str(items)})
    return server, Endpoint("floor", server.endpoint, "testing", "testing")


# -- setup through the API ------------------------------------------------------------------


def populate_ours(endpoint: Endpoint, items: int, threads: int) -> float:
    client = make_client(endpoint, "sagemaker")
    client.create_hub(HubName=HUB, HubDescription="airegistry server benchmark")

    def one(c: Any, i: int) -> None:
        c.import_hub_content(HubName=HUB, HubContentName=item_name(i),
                             HubContentType=CONTENT_TYPE, DocumentSchemaVersion="1.0.0",
                             HubContentDocument=item_document(i))

    return run_parallel(one, items, threads, lambda: make_client(endpoint, "sagemaker"),
                        "ours ImportHubContent")


def populate_moto(endpoint: Endpoint, items: int, threads: int) -> float:
    def one(c: Any, i: int) -> None:
        c.create_model_package_group(ModelPackageGroupName=group_name(i),
                                     ModelPackageGroupDescription=group_description(i))

    return run_parallel(one, items, threads, lambda: make_client(endpoint, "sagemaker"),
                        "moto CreateModelPackageGroup")


# -- measurements -----------------------------------------------------------------------------


def calls_for(name: str, items: int) -> tuple[Call, Call, str, dict[str, Any]]:
    """(describe, first list page, list member, list params) for one server."""
    page_len = min(PAGE, items)
    if name == "moto":
        return (Call("describe_model_package_group",
                     {"ModelPackageGroupName": group_name(DESCRIBE_INDEX)}, "ModelPackageGroupArn"),
                Call("list_model_package_groups", {"MaxResults": PAGE},
                     "ModelPackageGroupSummaryList", page_len),
                "ModelPackageGroupSummaryList", {"MaxResults": PAGE})
    list_params = {"HubName": HUB, "HubContentType": CONTENT_TYPE, "MaxResults": PAGE}
    return (Call("describe_hub_content", {"HubName": HUB, "HubContentType": CONTENT_TYPE,
                                          "HubContentName": item_name(DESCRIBE_INDEX)},
                 "HubContentDocument"),
            Call("list_hub_contents", list_params, "HubContentSummaries", page_len),
            "HubContentSummaries", list_params)


class Pager:
    """Follows NextToken from the first page to the last with one warm client."""

    def __init__(self, endpoint: Endpoint, method: str, params: dict[str, Any],
                 member: str) -> None:
        self.call = getattr(make_client(endpoint, "sagemaker"), method)
        self.params = params
        self.member = member

    def run(self) -> tuple[float, int]:
        """(seconds, items seen) for one full pass."""
        t0 = time.perf_counter()
        seen = 0
        token: str | None = None
        while True:
            response = self.call(**self.params, **({"NextToken": token} if token else {}))
            seen += len(response[self.member])
            token = response.get("NextToken")
            if not token:
                return time.perf_counter() - t0, seen


def make_payload(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    chunk = 8 * MB
    with path.open("wb") as fh:
        left = size
        while left:
            block = os.urandom(min(chunk, left))
            digest.update(block)
            fh.write(block)
            left -= len(block)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(8 * MB), b""):
            digest.update(block)
    return digest.hexdigest()


def s3_transfer(endpoint: Endpoint, server: ServerProcess, src: Path, src_sha: str,
                tmp: Path, *, download: bool = True) -> dict[str, float]:
    """upload_file then download_file with boto3's default TransferConfig; MB/s and peak RSS.

    ``download=False`` (the floor, which keeps nothing) measures the upload only."""
    client = make_client(endpoint, "s3")
    client.create_bucket(Bucket=BUCKET)
    size = src.stat().st_size
    key = f"bench/{src.name}"
    pid = server.proc.pid
    with RssSampler(pid) as rss_up:
        cpu0, srv0, t0 = time.process_time(), tree_cpu_seconds(pid), time.perf_counter()
        client.upload_file(str(src), BUCKET, key)
        up_s = time.perf_counter() - t0
        up_client, up_server = time.process_time() - cpu0, _cpu_delta(pid, srv0)
    uploaded = {"s3_up_mbs": size / MB / up_s, "rss_up_mb": rss_up.peak / MB,
                "s3_up_client_cpu": up_client, "s3_up_server_cpu": up_server, "s3_up_s": up_s}
    if not download:
        return uploaded
    dst = tmp / f"download-{endpoint.name}.bin"
    with RssSampler(pid) as rss_down:
        cpu0, srv0, t0 = time.process_time(), tree_cpu_seconds(pid), time.perf_counter()
        client.download_file(BUCKET, key, str(dst))
        down_s = time.perf_counter() - t0
        down_client, down_server = time.process_time() - cpu0, _cpu_delta(pid, srv0)
    ok = dst.stat().st_size == size and sha256_file(dst) == src_sha
    dst.unlink()
    with contextlib.suppress(Exception):
        client.delete_object(Bucket=BUCKET, Key=key)
    if not ok:
        print(f"!! {endpoint.name}: downloaded object differs from the uploaded file")
    return {
        **uploaded, "s3_down_mbs": size / MB / down_s,
        "rss_base_mb": rss_up.baseline / MB, "rss_down_mb": rss_down.peak / MB,
        "s3_ok": float(ok),
        "s3_down_client_cpu": down_client, "s3_down_server_cpu": down_server, "s3_down_s": down_s,
    }


def _cpu_delta(pid: int, before: float | None) -> float | None:
    after = tree_cpu_seconds(pid)
    return after - before if after is not None and before is not None else None


def transfer_ceiling(ours: dict[str, Any], moto: dict[str, Any], way: str) -> float | None:
    """The most ours/moto one transfer can reach on this machine's cores, from CPU alone.

    The boto3 client does its share of the work (reading, checksums, HTTP) whatever the
    server is, and the cores are shared by both: even a server that cost nothing could not
    finish before ``client CPU / cores``. moto's wall time over that is the ceiling.
    """
    client_cpu, moto_s = ours.get(f"s3_{way}_client_cpu"), moto.get(f"s3_{way}_s")
    if not client_cpu or not moto_s:
        return None
    return moto_s / (client_cpu / (os.cpu_count() or 1))


def record_load(results: dict[str, Any], name: str, label: str, load: LoadResult) -> None:
    results[f"{label}_rps"] = load.rps
    results[f"{label}_p50"] = load.percentile_ms(50)
    results[f"{label}_p99"] = load.percentile_ms(99)
    results[f"{label}_err"] = load.errors
    results[f"{label}_cpu"] = load.server_cpu_ms_per_request
    if load.errors:
        print(f"!! {name} {label}: {load.errors} errors; first: {load.first_error}")


# -- report ----------------------------------------------------------------------------------


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def print_table(res: dict[str, dict[str, Any]], args: argparse.Namespace, auth: bool) -> None:
    n = args.clients
    rows = [
        ("describe req/s, 1 client", "describe1_rps", ",.0f"),
        ("describe p50 ms, 1 client", "describe1_p50", ".2f"),
        ("describe p99 ms, 1 client", "describe1_p99", ".2f"),
        (f"describe req/s, {n} clients", "describeN_rps", ",.0f"),
        (f"describe p50 ms, {n} clients", "describeN_p50", ".2f"),
        (f"describe p99 ms, {n} clients", "describeN_p99", ".2f"),
        ("list page (100) /s, 1 client", "list1_rps", ",.1f"),
        ("list page p50 ms, 1 client", "list1_p50", ".2f"),
        ("list page p99 ms, 1 client", "list1_p99", ".2f"),
        (f"list page (100) /s, {n} clients", "listN_rps", ",.1f"),
        (f"list page p50 ms, {n} clients", "listN_p50", ".2f"),
        (f"list page p99 ms, {n} clients", "listN_p99", ".2f"),
        ("server CPU ms per describe", "describe1_cpu", ".2f"),
        ("server CPU ms per list page", "list1_cpu", ".2f"),
        (f"page through {args.items:,} items, s", "page_all_s", ".3f"),
        (f"S3 upload {args.s3_mb} MB, MB/s", "s3_up_mbs", ",.1f"),
        (f"S3 download {args.s3_mb} MB, MB/s", "s3_down_mbs", ",.1f"),
        ("server RSS idle, MB", "rss_base_mb", ",.0f"),
        ("server peak RSS upload, MB", "rss_up_mb", ",.0f"),
        ("server peak RSS download, MB", "rss_down_mb", ",.0f"),
        ("S3 upload: client CPU s", "s3_up_client_cpu", ".2f"),
        ("S3 upload: server CPU s", "s3_up_server_cpu", ".2f"),
        ("S3 download: client CPU s", "s3_down_client_cpu", ".2f"),
        ("S3 download: server CPU s", "s3_down_server_cpu", ".2f"),
        ("setup: items created/s", "setup_rate", ",.0f"),
    ]
    names = ["ours", "moto", "floor"]
    width = max(len(r[0]) for r in rows) + 2
    print()
    print(f"airegistry server benchmark: {args.items:,} items, {args.duration:g} s windows, "
          f"{n} client processes, best of {args.rounds}, S3 {args.s3_mb} MB, ours --workers {args.workers}, stack {args.stack}, "
          f"auth {'SigV4 on' if auth else 'OFF (--no-auth)'}, {os.cpu_count()} CPUs, "
          f"load avg {args.load_start:.1f} at start, {os.getloadavg()[0]:.1f} at end")
    print(f"{'measurement':<{width}}" + "".join(f"{x:>12}" for x in names))
    print("-" * (width + 12 * len(names)))
    for label, key, spec in rows:
        print(f"{label:<{width}}" + "".join(f"{_fmt(res[x].get(key), spec):>12}" for x in names))
    errors = {x: sum(v for k, v in res[x].items() if k.endswith("_err")) for x in names}
    if any(errors.values()):
        print("request errors during measurement: " + ", ".join(f"{k} {v}" for k, v in errors.items()))

    ours, moto, floor = res["ours"], res["moto"], res["floor"]

    def ratio(a: Any, b: Any) -> float | None:
        return a / b if a is not None and b else None

    checks: list[tuple[str, float | None, str, float]] = [
        ("describe/s ours/floor, 1 client", ratio(ours.get("describe1_rps"),
                                                  floor.get("describe1_rps")), ">=", 0.8),
        (f"describe/s ours/floor, {n} clients", ratio(ours.get("describeN_rps"),
                                                      floor.get("describeN_rps")), ">=", 0.6),
        ("describe/s ours/moto, 1 client", ratio(ours.get("describe1_rps"),
                                                 moto.get("describe1_rps")), ">=", 2.5),
        (f"describe/s ours/moto, {n} clients", ratio(ours.get("describeN_rps"),
                                                     moto.get("describeN_rps")), ">=", 2.5),
        (f"{args.items:,} items paged: time ours/floor", ratio(ours.get("page_all_s"),
                                                               floor.get("page_all_s")), "<=", 2.0),
        ("S3 upload MB/s ours/moto", ratio(ours.get("s3_up_mbs"), moto.get("s3_up_mbs")),
         ">=", 3.0),
        ("S3 download MB/s ours/moto", ratio(ours.get("s3_down_mbs"), moto.get("s3_down_mbs")),
         ">=", 3.0),
        ("ours peak RSS during transfer, MB", max(ours.get("rss_up_mb") or 0,
                                                  ours.get("rss_down_mb") or 0) or None, "<", 150),
    ]
    info = [
        ("list page/s ours/floor, 1 client", ratio(ours.get("list1_rps"), floor.get("list1_rps"))),
        ("list page/s ours/moto, 1 client", ratio(ours.get("list1_rps"), moto.get("list1_rps"))),
        (f"{args.items:,} items paged: time ours/moto", ratio(ours.get("page_all_s"),
                                                              moto.get("page_all_s"))),
        ("describe/s floor/moto, 1 client (the most)", ratio(floor.get("describe1_rps"),
                                                             moto.get("describe1_rps"))),
        ("server CPU per describe ours/moto", ratio(ours.get("describe1_cpu"),
                                                   moto.get("describe1_cpu"))),
        ("server CPU per describe ours/floor", ratio(ours.get("describe1_cpu"),
                                                    floor.get("describe1_cpu"))),
        ("S3 upload ours/moto ceiling (client CPU)", transfer_ceiling(ours, moto, "up")),
        ("S3 download ours/moto ceiling (client CPU)", transfer_ceiling(ours, moto, "down")),
        ("S3 upload floor/moto (upload floor)", ratio(floor.get("s3_up_mbs"),
                                                     moto.get("s3_up_mbs"))),
        ("S3 upload ours/floor", ratio(ours.get("s3_up_mbs"), floor.get("s3_up_mbs"))),
    ]
    print()
    print(f"{'target':<44}{'value':>10}  {'target':<9}result")
    print("-" * 72)
    for label, value, op, bound in checks:
        if value is None:
            verdict = "not measured"
        else:
            met = value >= bound if op == ">=" else value <= bound if op == "<=" else value < bound
            verdict = "met" if met else "MISSED"
        print(f"{label:<44}{_fmt(value, '.2f'):>10}  {op} {bound:<6g}{verdict}")
    for label, value in info:
        print(f"{label:<44}{_fmt(value, '.2f'):>10}  (context)")
    print()
    print(ANCHORS)


# -- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small sizes for a < 2 minute run (1,000 items, 50 MB, 2 s windows)")
    parser.add_argument("--items", type=int, default=None,
                        help="items created and paged through (default 10,000; quick 1,000)")
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds per load window (default 5; quick 2)")
    parser.add_argument("--clients", type=int, default=4, help="client processes for the "
                        "concurrent measurements (default 4)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="repetitions of each load window, best kept (default 2; quick 1)")
    parser.add_argument("--s3-mb", type=int, default=None,
                        help="S3 object size in MiB (default 200; quick 50; 0 skips S3)")
    parser.add_argument("--page-repeats", type=int, default=None,
                        help="timed passes through all pages, median reported (default 3; quick 2)")
    parser.add_argument("--setup-threads", type=int, default=8,
                        help="threads creating the items through the API (default 8)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers of our server")
    parser.add_argument("--no-auth", action="store_true",
                        help="run our server with --no-auth (default: SigV4 with a fresh key)")
    parser.add_argument("--server-log-level", default="info",
                        help="our server's --log-level (default info: access log on, as deployed)")
    parser.add_argument("--only", default="ours,moto,floor",
                        help="comma-separated subset of servers to run (default all three)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temp dir (server logs) and print its path")
    parser.add_argument("--json-out", type=Path, default=None, help="also write results as JSON")
    parser.add_argument("--stack", choices=sorted(STACKS), default=DEFAULT_STACK,
                        help="HTTP stack of ours and the floor (default %(default)s, what "
                             "`airegistry server` uses; compare them with bench_stacks.py)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.items = args.items if args.items is not None else (1000 if quick else 10_000)
    args.duration = args.duration if args.duration is not None else (2.0 if quick else 5.0)
    args.s3_mb = args.s3_mb if args.s3_mb is not None else (50 if quick else 200)
    args.rounds = args.rounds if args.rounds is not None else (1 if quick else 2)
    args.page_repeats = args.page_repeats if args.page_repeats is not None else (2 if quick else 3)
    if args.items < 1 or args.duration <= 0 or args.clients < 1 or args.rounds < 1:
        parser.error("--items, --duration, --clients and --rounds must be positive")
    unknown = {x.strip() for x in args.only.split(",")} - {"ours", "moto", "floor"}
    if unknown:
        parser.error(f"--only: unknown server(s) {', '.join(sorted(unknown))}; "
                     "choose from ours, moto, floor")
    return args


def _raise_interrupt(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    wanted = [x.strip() for x in args.only.split(",") if x.strip()]
    res: dict[str, dict[str, Any]] = {x: {} for x in ("ours", "moto", "floor")}
    tmp = Path(tempfile.mkdtemp(prefix="bench-server-"))
    auth = not args.no_auth
    try:
        with managed_servers() as servers:
            started: dict[str, tuple[ServerProcess, Endpoint]] = {}
            t0 = time.perf_counter()
            if "ours" in wanted:
                server, endpoint, auth = start_ours(tmp, args)
                servers.append(server)
                started["ours"] = (server, endpoint)
            if "moto" in wanted:
                server, endpoint = start_moto(tmp)
                servers.append(server)
                started["moto"] = (server, endpoint)
            if "floor" in wanted:
                server, endpoint = start_floor(tmp, args.items, args.stack)
                servers.append(server)
                started["floor"] = (server, endpoint)
            print(f"servers up in {time.perf_counter() - t0:.1f} s: " + ", ".join(
                f"{k} {v[1].url}" for k, v in started.items()), flush=True)

            print(f"creating {args.items:,} items through the API "
                  f"({args.setup_threads} threads)...", flush=True)
            # ours and moto are populated at the same time: independent servers, and the
            # setup is not what is being measured (its rate is shown for information only).
            populate = {"ours": populate_ours, "moto": populate_moto}
            setup = run_in_threads({
                name: functools.partial(populate[name], started[name][1], args.items,
                                        args.setup_threads)
                for name in populate if name in started})
            for name, secs in setup.items():
                res[name]["setup_rate"] = args.items / secs

            # Interleaved: each measurement runs on every server back to back, so a busy
            # neighbour on a shared machine skews all three alike instead of one.
            plans = {name: calls_for(name, args.items) for name in started}
            # Each window runs --rounds times and the best round (highest req/s) is kept, with
            # its own p50/p99: on a shared machine the best round is the least disturbed one.
            for label, index in (("describe", 0), ("list", 1)):
                for clients, suffix in ((1, "1"), (args.clients, "N")):
                    best: dict[str, LoadResult] = {}
                    for _round in range(args.rounds):
                        for name, (server, endpoint) in started.items():
                            load = run_load(endpoint, plans[name][index], clients=clients,
                                            duration_s=args.duration, server_pid=server.proc.pid)
                            cpu = load.server_cpu_ms_per_request
                            print(f"  {name:<5} {label:<8} {clients} client(s): "
                                  f"{load.rps:8.1f}/s p50 {load.percentile_ms(50):7.2f} ms "
                                  f"p99 {load.percentile_ms(99):7.2f} ms"
                                  f"  server CPU {_fmt(cpu, '.2f')} ms/req"
                                  + (f"  errors {load.errors}" if load.errors else ""),
                                  flush=True)
                            if name not in best or load.rps > best[name].rps:
                                best[name] = load
                    for name, load in best.items():
                        record_load(res[name], name, label + suffix, load)
            pagers = {name: Pager(endpoint, plans[name][1].method, plans[name][3], plans[name][2])
                      for name, (_server, endpoint) in started.items()}
            passes: dict[str, list[float]] = {name: [] for name in started}
            # The servers are warm from the load windows; every pass is timed.
            for _attempt in range(args.page_repeats):
                for name, pager in pagers.items():
                    secs, seen = pager.run()
                    if seen != args.items:
                        print(f"!! {name}: paging returned {seen} items, expected {args.items}")
                    passes[name].append(secs)
            for name, times in passes.items():
                res[name]["page_all_s"] = sorted(times)[len(times) // 2]
                print(f"  {name:<5} paged {args.items:,} items in "
                      + ", ".join(f"{t:.3f}" for t in times) + " s", flush=True)

            if args.s3_mb > 0 and ("ours" in started or "moto" in started):
                src = tmp / "payload.bin"
                print(f"S3: writing a {args.s3_mb} MB random file...", flush=True)
                sha = make_payload(src, args.s3_mb * MB)
                for name in ("ours", "moto", "floor"):
                    if name in started:
                        server, endpoint = started[name]
                        full = name != "floor"  # the floor keeps nothing to download
                        try:
                            res[name].update(s3_transfer(endpoint, server, src, sha, tmp,
                                                         download=full))
                        except Exception as exc:  # report it and keep the rest of the table
                            print(f"!! {name} S3 transfer failed: {type(exc).__name__}: {exc}")
                            continue
                        down = (f", down {res[name]['s3_down_mbs']:.1f} MB/s, peak RSS "
                                f"{res[name]['rss_up_mb']:.0f}/{res[name]['rss_down_mb']:.0f} MB"
                                if full else " (upload floor)")
                        print(f"  {name:<5} S3 up {res[name]['s3_up_mbs']:.1f} MB/s{down}",
                              flush=True)
                src.unlink()
            for name, (server, _endpoint) in started.items():
                if server.proc.poll() is not None:
                    print(f"!! {name} server died during the run:\n{server.log_tail()}")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print_table(res, args, auth)
    return res


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # explicit, because a shell starting us in the background leaves SIGINT ignored
    signal.signal(signal.SIGINT, _raise_interrupt)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    args.load_start = os.getloadavg()[0]
    try:
        results = run(args)
    except KeyboardInterrupt:
        print("\ninterrupted; servers stopped and temp files removed", file=sys.stderr)
        return 130
    except ServerStartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.json_out:
        args.json_out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                             "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
