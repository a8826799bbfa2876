"""A seeded fuzzer of the server's wire: SageMaker, S3, Lambda, STS/IAM and authentication.

Each case is one HTTP request built from a ``random.Random(seed)``: mostly well-formed
requests of every operation with one to three hostile mutations (wrong JSON types, deep
nesting, Unicode digits, lone surrogates, huge numbers, odd names, broken XML, garbage
aws-chunked framing, tampered or malformed signatures, presigned URLs with odd dates),
sent over loopback to a full server (one registry home: hub, blob store, function service)
running under uvicorn. The same seed always produces the same requests.

A response is acceptable when the server answered with a status below 500. Any 5xx
(``501 NotImplemented`` included: every valid S3 request is an operation the server
carries out or refuses with a 4xx), any request the server dropped without answering,
and any error the server logged, is a failure. The S3 surface mixes random paths, query
parameters and headers with mutated well-formed requests of each operation (configuration
writes and reads, UploadPartCopy, partNumber reads of a multipart object,
GetObjectAttributes, ListObjectVersions, ...). The figures: requests sent, responses by
class.

    python -m tests.fuzz.fuzzer --count 20000 --seed 7     # a larger run, figures printed
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime as dt
import io
import json
import logging
import random
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.fuzz.s3_cases import s3_case, s3_operation_case
from tests.fuzz.values import (
    BUCKET,
    FUNCTION,
    HUB,
    KEY,
    NUMBERS,
    ROLE,
    SECRET,
    STRINGS,
    Case,
    deep,
    header_text,
    json_value,
    mutate_json,
    qv,
)
from tests.server.raw_requests import RawClient


@dataclass
class Report:
    seed: int
    sent: int = 0
    by_class: Counter = field(default_factory=Counter)
    by_surface: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    server_errors_logged: int = 0
    seconds: float = 0.0

    def figures(self) -> str:
        classes = ", ".join(f"{k}: {v}" for k, v in sorted(self.by_class.items()))
        surfaces = ", ".join(f"{k}: {v}" for k, v in sorted(self.by_surface.items()))
        return (f"fuzz seed={self.seed}: {self.sent} requests in {self.seconds:.1f} s; "
                f"responses by class: {classes}; failures (any 5xx or no answer): "
                f"{len(self.failures)}; errors logged by the server: {self.server_errors_logged}; "
                f"by surface: {surfaces}")


# -- surfaces ------------------------------------------------------------------------------

DOCUMENTS = [
    json.dumps({"DatasetS3Bucket": BUCKET, "DatasetS3Prefix": "data.jsonl"}),
    json.dumps({"DatasetS3Bucket": BUCKET, "DatasetS3Prefix": "k", "Dependencies": 5}),
    json.dumps({"DatasetS3Bucket": BUCKET, "DatasetS3Prefix": "k",
                "Dependencies": [{"DependencyOriginPath": 5}]}),
    json.dumps({"SubType": "AWS/Evaluator", "JsonContent": None}),
    json.dumps({"SubType": "AWS/Evaluator", "JsonContent": json.dumps({"Reference": 5})}),
    json.dumps({"SubType": "AWS/Evaluator",
                "JsonContent": json.dumps({"Reference": "arn:aws:lambda:us-east-1:1:function:x",
                                           "ObjectUri": 5})}),
    "[]", "not json", "{}", '{"x": ' + "[" * 2000 + "]" * 2000 + "}",
]
PUBLIC_ARN = "arn:aws:sagemaker:us-east-1:aws:hub-content/SageMakerPublicHub/Model/m1"


def sagemaker_case(rng: random.Random) -> Case:
    ctype = rng.choice(["DataSet", "JsonDoc", "Model", "ModelReference", "Notebook", "Bogus"])
    name = rng.choice(["c1", "c2", "data", "a" * 64, "../x", "☃", "x-y"])
    common = {"HubName": rng.choice([HUB, HUB, "absent-hub", "arn:aws:sagemaker:us-east-1:"
                                     "123456789012:hub/" + HUB, "../h"]),
              "HubContentType": ctype, "HubContentName": name}
    templates: dict[str, dict[str, Any]] = {
        "CreateHub": {"HubName": rng.choice(["h2", HUB, "x" * 70]), "HubDescription": "d"},
        "DescribeHub": {"HubName": common["HubName"]},
        "ListHubs": {"MaxResults": rng.choice([1, 100, 101, 0]), "NameContains": "h"},
        "UpdateHub": {"HubName": common["HubName"], "HubDescription": "d2"},
        "DeleteHub": {"HubName": rng.choice(["h2", "absent-hub"])},
        "ImportHubContent": {**common, "DocumentSchemaVersion": rng.choice(["2.0.0", "1.0", "x"]),
                             "HubContentDocument": rng.choice(DOCUMENTS),
                             "HubContentSearchKeywords": rng.choice([["@owned:registry"], []]),
                             "HubContentVersion": rng.choice(["1.0.0", "2.0.0", "9999.9999.9999"])},
        "DescribeHubContent": {**common, "HubContentVersion": rng.choice(["1.0.0", "0.0.0"])},
        "ListHubContents": {"HubName": common["HubName"], "HubContentType": ctype,
                            "NextToken": rng.choice(["x", "e30", "a" * 9000]),
                            "CreationTimeBefore": rng.choice([0, "2024-01-01", "garbage", 1e20])},
        "ListHubContentVersions": {**common, "MinVersion": rng.choice(["1.0.0", "a.b.c"])},
        "UpdateHubContent": {**common, "HubContentVersion": "1.0.0", "HubContentDescription": "d"},
        "DeleteHubContent": {**common, "HubContentVersion": "1.0.0"},
        "CreateHubContentReference": {"HubName": HUB, "SageMakerPublicHubContentArn": PUBLIC_ARN,
                                      "MinVersion": "1.0.0"},
        "UpdateHubContentReference": {**common, "MinVersion": "1.2.0"},
        "DeleteHubContentReference": common,
        "CreateHubContentPresignedUrls": {**common, "MaxResults": rng.choice([1, 100]),
                                          "AccessConfig": {"ExpectedS3Url": "s3://x/"}},
        "AddTags": {"ResourceArn": f"arn:aws:sagemaker:us-east-1:1:hub/{HUB}",
                    "Tags": [{"Key": "k", "Value": "v"}]},
        "ListTags": {"ResourceArn": rng.choice(["arn:x", f"arn:aws:sagemaker:us-east-1:1:hub/{HUB}"])},
        "DeleteTags": {"ResourceArn": "arn:x", "TagKeys": ["k"]},
    }
    operation = rng.choice([*templates, "Bogus", "", "CreateTrainingJob", "a" * 200])
    params = templates.get(operation, {"x": 1})
    body = json.dumps(params).encode() if rng.random() < 0.2 else mutate_json(rng, params)
    target = rng.choice([f"SageMaker.{operation}"] * 8 + ["SageMaker.", "Other.ListHubs", ""])
    headers = {"X-Amz-Target": target,
               "Content-Type": rng.choice(["application/x-amz-json-1.1"] * 4 + ["text/plain"])}
    return Case("sagemaker", "POST", "/", headers, body, service="sagemaker")


def lambda_case(rng: random.Random, good_zip: str) -> Case:
    name = rng.choice([FUNCTION] * 5 + ["absent-fn", "a" * 200, qv("☃"), "..",
                                        "arn:aws:lambda:us-east-1:123456789012:function:fz-fn",
                                        "arn:aws:lambda:eu-west-1:999999999999:function:x"])
    base = "/2015-03-31/functions"
    create = {"FunctionName": rng.choice(["fz-new", FUNCTION, "a" * 100, "☃"]), "Role": ROLE,
              "Runtime": rng.choice(["python3.12", "python3.9", "nodejs20.x", "cobol"]),
              "Handler": "lambda_function.lambda_handler",
              "Code": {"ZipFile": rng.choice([base64.b64encode(b"not a zip").decode(), "!!", 5])},
              "Environment": {"Variables": {"A": "1"}}, "Description": "d", "Timeout": 3}
    choice = rng.randrange(6)
    headers = {"Content-Type": "application/json"}
    if choice == 0:
        return Case("lambda", "POST", base, headers, mutate_json(rng, create), service="lambda")
    if choice == 1:
        limits = rng.choice(["", f"?MaxItems={qv(rng.choice(NUMBERS))}", f"?Marker={qv('x')}"])
        return Case("lambda", "GET", base + limits, headers, service="lambda")
    if choice == 2:
        method = rng.choice(["GET", "DELETE", "PATCH"]) if name != FUNCTION else "GET"
        return Case("lambda", method, f"{base}/{name}", headers, service="lambda")
    if choice == 3:
        return Case("lambda", rng.choice(["GET", "PUT"]), f"{base}/{name}/configuration",
                    headers, service="lambda")
    if choice == 4:
        body = mutate_json(rng, {"ZipFile": rng.choice([123, "!!", [1], None])})
        return Case("lambda", "PUT", f"{base}/{name}/code", headers, body, service="lambda")
    payload = rng.choice([json.dumps(json_value(rng)).encode(), deep(rng).encode(), b"",
                          b'{"\\ud800": 1}', b"\xff", b"not json", b'{"response": "abc"}',
                          b"1" * 7_000_000 if rng.random() < 0.01 else b"[]"])
    invocation = {"X-Amz-Invocation-Type": rng.choice(["RequestResponse", "Event", "DryRun",
                                                       header_text(rng)]),
                  "X-Amz-Log-Type": rng.choice(["None", "Tail", header_text(rng)])}
    target = FUNCTION if rng.random() < 0.8 else name
    return Case("lambda", "POST", f"{base}/{target}/invocations", {**headers, **invocation},
                payload, service="lambda")


def query_case(rng: random.Random) -> Case:
    action = rng.choice(["GetCallerIdentity", "GetRole", "SimulatePrincipalPolicy", "", "Bogus",
                         "a" * 500, qv("☃")])
    service = rng.choice(["sts", "iam"])
    body = f"Action={action}&Version=2011-06-15&RoleName={qv(rng.choice(STRINGS))}".encode()
    if rng.random() < 0.2:
        body = rng.randbytes(rng.randint(0, 200))
    return Case(service, "POST", "/", {"Content-Type": "application/x-www-form-urlencoded"}, body,
                service=service)


def auth_mutation(rng: random.Random, case: Case) -> Case:
    """Unsigned, tampered, malformed or presigned variants of a case (the auth surface)."""
    roll = rng.randrange(8)
    now = dt.datetime.now(dt.timezone.utc)
    scope_date = rng.choice([f"{now:%Y%m%d}", "20240101", "99991231", "²0240101", ""])
    credential = rng.choice([KEY, "UNKNOWN", "", "%00", "a" * 300])
    case.surface = f"auth/{case.surface}"
    if roll == 0:
        case.service = None  # unsigned
    elif roll == 1:
        case.tamper = lambda h: {**h, "Authorization": h.get("Authorization", "")[:-4] + "abcd"}
    elif roll == 2:
        garbage = rng.choice([
            "AWS4-HMAC-SHA256", "AWS4-HMAC-SHA256 Credential=", "Bearer x", "AWS x",
            f"AWS {KEY}:\xe9\xe9", f"AWS4-HMAC-SHA256 Credential={credential}/{scope_date}/us-east-1/"
            f"{case.service or 's3'}/aws4_request, SignedHeaders=host, Signature=\xe9",
            "AWS4-HMAC-SHA256 Credential=a/b/c/d/e/f, SignedHeaders=;;;, Signature=00"])
        case.service = None
        case.headers = {**case.headers, "Authorization": garbage,
                        rng.choice(["X-Amz-Date", "Date"]): rng.choice([
                            f"{now:%Y%m%dT%H%M%SZ}", "Fri, 31 Dec 9999 23:59:59 -1400",
                            "Mon, 01 Jan 1 00:00:00 +1400", "garbage", "²"])}
    elif roll == 3:
        service = case.service or "s3"
        params = {
            "X-Amz-Algorithm": rng.choice(["AWS4-HMAC-SHA256", "x"]),
            "X-Amz-Credential": f"{credential}/{scope_date}/us-east-1/{service}/aws4_request",
            "X-Amz-Date": rng.choice([f"{now:%Y%m%dT%H%M%SZ}", "20240101T000000Z", "²", "x" * 16]),
            "X-Amz-Expires": rng.choice(NUMBERS), "X-Amz-SignedHeaders": "host",
            "X-Amz-Signature": rng.choice(["%C3%A9", "00", "%ff", "a" * 64]),
        }
        sep = "&" if "?" in case.path else "?"
        case.path += sep + "&".join(f"{k}={qv(v) if k != 'X-Amz-Signature' else v}"
                                    for k, v in params.items())
        case.service = None
    elif roll == 4:
        sep = "&" if "?" in case.path else "?"
        case.path += sep + (f"AWSAccessKeyId={qv(credential)}&Signature="
                            f"{rng.choice(['%ff', 'y', '%00'])}&Expires={qv(rng.choice(NUMBERS))}")
        case.service = None
    elif roll == 5:
        case.headers = {**case.headers, "Date": rng.choice(["Fri, 31 Dec 9999 23:59:59 -1400",
                                                            "garbage"])}
        case.tamper = lambda h: {k: v for k, v in h.items() if k.lower() != "x-amz-date"}
    else:
        case.tamper = lambda h: {**h, "X-Amz-Date": rng.choice(["20000101T000000Z", "²" * 16])}
    return case


# -- running -------------------------------------------------------------------------------

def cases(seed: int, count: int, upload_id: str, good_zip: str) -> Iterator[Case]:
    rng = random.Random(seed)
    makers = [sagemaker_case, sagemaker_case, lambda r: s3_case(r, upload_id),
              lambda r: s3_case(r, upload_id), lambda r: s3_operation_case(r, upload_id),
              lambda r: lambda_case(r, good_zip), query_case]
    for _ in range(count):
        case = rng.choice(makers)(rng)
        if rng.random() < 0.2:
            case = auth_mutation(rng, case)
        yield case


def send(raw: RawClient, case: Case) -> httpx.Response:
    headers = raw.signed_headers(case.method, case.path, case.service, case.body, case.headers,
                                 case.payload_hash)
    if case.tamper is not None:
        headers = case.tamper(headers)
    encoded = [(k.encode("latin-1", "replace"), v.encode("latin-1", "replace"))
               for k, v in headers.items()]
    return raw.client.request(case.method, raw.url + case.path, content=case.body,
                              headers=encoded)


def _zip(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("lambda_function.py", source)
    return buffer.getvalue()


class _ErrorCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info is not None or "unhandled" in record.getMessage():
            self.records.append(record)


def run_fuzz(count: int, seed: int, root: Path | None = None) -> Report:
    """Start a full server over a fresh home, send ``count`` cases, return the figures."""
    from airegistry.home import Home
    from airegistry.server.app import create_app
    from airegistry.server.auth import AuthConfig
    from airegistry.server.compose import build_services
    from tests.server.conftest import start_server

    report = Report(seed)
    errors = _ErrorCounter()
    watched = [logging.getLogger(n) for n in ("airegistry", "uvicorn.error")]
    with contextlib.ExitStack() as stack:
        base = root or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        home = Home(base / "home", region="us-east-1")
        stack.callback(home.close)
        app = create_app(build_services(home), auth=AuthConfig(keys={KEY: SECRET}))
        url = stack.enter_context(start_server(app))
        http = stack.enter_context(httpx.Client(timeout=60))
        raw = RawClient(url, KEY, SECRET, http)
        good_zip = base64.b64encode(_zip(
            "def lambda_handler(event, context):\n    return {'ok': True}\n")).decode()
        setup = [raw.send("PUT", f"/{BUCKET}", service="s3"),
                 raw.send("PUT", f"/{BUCKET}/data.jsonl", service="s3",
                          body=b'{"prompt": "p", "completion": "c"}\n'),
                 raw.sagemaker("CreateHub", {"HubName": HUB, "HubDescription": "fuzz"}),
                 raw.lambda_("POST", "", {"FunctionName": FUNCTION, "Role": ROLE,
                                          "Runtime": "python3.12", "Timeout": 5,
                                          "Handler": "lambda_function.lambda_handler",
                                          "Code": {"ZipFile": good_zip}})]
        assert all(r.status_code < 300 for r in setup), [r.text for r in setup]
        upload_id = home.objects.create_multipart_upload(BUCKET, "mp")
        # a two-part object, for partNumber reads and GetObjectAttributes
        parts_upload = home.objects.create_multipart_upload(BUCKET, "mpobj")
        parts = [home.objects.upload_part(BUCKET, "mpobj", parts_upload, n, data)
                 for n, data in ((1, b"p" * (5 << 20)), (2, b"tail"))]
        home.objects.complete_multipart_upload(BUCKET, "mpobj", parts_upload,
                                               [(p.part_number, p.etag) for p in parts])
        for logger in watched:
            logger.addHandler(errors)
        try:
            started = time.monotonic()
            for index, case in enumerate(cases(seed, count, upload_id, good_zip)):
                report.sent += 1
                report.by_surface[case.surface.split("/")[0]] += 1
                try:
                    response = send(raw, case)
                except httpx.HTTPError as exc:
                    report.by_class["no answer"] += 1
                    report.failures.append(f"#{index} {case.describe()} -> {exc!r}")
                    continue
                status = response.status_code
                report.by_class[f"{status // 100}xx"] += 1
                if status >= 500:
                    report.failures.append(
                        f"#{index} {case.describe()} -> {status} {response.text[:300]!r}")
            report.seconds = time.monotonic() - started
            health = http.get(url + "/healthz")
            if health.status_code != 200:
                report.failures.append(f"/healthz answered {health.status_code} after the run")
        finally:
            for logger in watched:
                logger.removeHandler(errors)
    report.server_errors_logged = len(errors.records)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    report = run_fuzz(args.count, args.seed)
    print(report.figures())
    for failure in report.failures[:20]:
        print("FAILURE", failure)
    return 1 if report.failures or report.server_errors_logged else 0


if __name__ == "__main__":
    raise SystemExit(main())
