"""Where a DescribeHubContent / ListHubContents costs server time: the ASGI app, no socket.

Builds a home in a temp dir with one hub of ``--items`` JsonDoc items, signs real botocore
requests once (SigV4, as boto3 sends them), then drives the app's ASGI callable directly in
a loop: what the server does per request minus the HTTP parser and the socket. Prints the
microseconds per request and, with ``--profile``, cProfile's top functions.

    python benchmarks/profile_describe.py --op describe --n 5000 --profile
    python benchmarks/profile_describe.py --op list --n 1000

A tool for finding costs, not a target: bench_server.py measures what a client sees.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_server import CONTENT_TYPE, DESCRIBE_INDEX, HUB, item_document, item_name


def build(tmp: Path, items: int) -> tuple[Any, str, str]:
    from airegistry.home import open_home
    from airegistry.server.app import create_app
    from airegistry.server.auth import create_key
    from airegistry.server.compose import auth_for, build_services

    home_dir = tmp / "home"
    home = open_home(home_dir, start_jobs=False)
    key_id, secret = create_key(home.path)
    handle = home.wire.handle
    status, _, out = handle("SageMaker.CreateHub", json.dumps(
        {"HubName": HUB, "HubDescription": "profile"}).encode())
    assert status == 200, out
    for i in range(items):
        status, _, out = handle("SageMaker.ImportHubContent", json.dumps({
            "HubName": HUB, "HubContentName": item_name(i), "HubContentType": CONTENT_TYPE,
            "DocumentSchemaVersion": "1.0.0", "HubContentDocument": item_document(i)}).encode())
        assert status == 200, out
    app = create_app(build_services(home), auth=auth_for(home))
    return app, key_id, secret


def signed_scope(key_id: str, secret: str, target: str, payload: dict[str, Any],
                 ) -> tuple[dict[str, Any], bytes]:
    body = json.dumps(payload).encode()
    req = AWSRequest(method="POST", url="http://127.0.0.1:8080/", data=body, headers={
        "X-Amz-Target": f"SageMaker.{target}",
        "Content-Type": "application/x-amz-json-1.1",
        "User-Agent": "Boto3/1.43 md/Botocore#1.43 ua/2.1 os/linux lang/python#3.11",
        "amz-sdk-invocation-id": "0b6b3b7e-7c0b-4b8e-9d7e-0a0b0c0d0e0f",
        "amz-sdk-request": "attempt=1",
    })
    SigV4Auth(Credentials(key_id, secret), "sagemaker", "us-east-1").add_auth(req)
    headers = [(k.lower().encode(), str(v).encode()) for k, v in req.headers.items()]
    headers.append((b"host", b"127.0.0.1:8080"))
    headers.append((b"content-length", str(len(body)).encode()))
    scope = {"type": "http", "method": "POST", "path": "/", "raw_path": b"/",
             "query_string": b"", "headers": headers, "scheme": "http",
             "http_version": "1.1", "client": ("127.0.0.1", 5000),
             "server": ("127.0.0.1", 8080)}
    return scope, body


async def drive(app: Any, scope: dict[str, Any], body: bytes, n: int) -> float:
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    t0 = time.perf_counter()
    for _ in range(n):
        sent.clear()
        await app(dict(scope), receive, send)
    elapsed = time.perf_counter() - t0
    assert sent[0]["status"] == 200, sent
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--op", choices=["describe", "list"], default="describe")
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--sort", default="tottime", help="pstats sort key (tottime, cumulative)")
    args = parser.parse_args()
    import logging
    import os
    logging.getLogger("airegistry").setLevel(logging.WARNING)
    # the access log on, as deployed (``--log-level info``), written to /dev/null
    access = logging.getLogger("airegistry.server.access")
    access.setLevel(logging.INFO)
    access.propagate = False
    access.addHandler(logging.StreamHandler(open(os.devnull, "w")))  # noqa: SIM115
    with tempfile.TemporaryDirectory() as tmp:
        app, key_id, secret = build(Path(tmp), args.items)
        if args.op == "describe":
            scope, body = signed_scope(key_id, secret, "DescribeHubContent", {
                "HubName": HUB, "HubContentType": CONTENT_TYPE,
                "HubContentName": item_name(DESCRIBE_INDEX)})
        else:
            scope, body = signed_scope(key_id, secret, "ListHubContents", {
                "HubName": HUB, "HubContentType": CONTENT_TYPE, "MaxResults": 100})
        asyncio.run(drive(app, scope, body, 200))  # warm caches
        prof = cProfile.Profile() if args.profile else None
        if prof:
            prof.enable()
        elapsed = asyncio.run(drive(app, scope, body, args.n))
        if prof:
            prof.disable()
        print(f"{args.op}: {elapsed / args.n * 1e6:.0f} us per request in the app "
              f"({args.n} requests{', under cProfile' if prof else ''})")
        if prof:
            pstats.Stats(prof).sort_stats(args.sort).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
