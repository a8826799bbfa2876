"""A seeded fuzzer of the server's wire: SageMaker, S3, Lambda, STS/IAM and authentication.

Each case is one HTTP request built from a ``random.Random(seed)``: mostly well-formed
requests of every operation with one to three hostile mutations (wrong JSON types, deep
nesting, Unicode digits, lone surrogates, huge numbers, odd names, broken XML, garbage
aws-chunked framing, tampered or malformed signatures, presigned URLs with odd dates),
sent over loopback to a full server (one registry home: hub, blob store, function service)
running under uvicorn. The same seed always produces the same requests.

A response is acceptable when the server answered with a status below 500. ``501
NotImplemented`` (valid S3 requests for what the server documents as not implemented:
configuration writes such as PutBucketPolicy, UploadPartCopy, ListObjectVersions) is
counted on its own line; every other 5xx, any request the server dropped without
answering, and any error the server logged, is a failure. The figures: requests sent, responses by class.

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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from tests.server.raw_requests import RawClient

KEY, SECRET = "AKIDFUZZTESTKEY00001", "fuzz-secret-0123456789abcdefghijklmnopqr"
ROLE = "arn:aws:iam::123456789012:role/fuzz"
BUCKET, HUB, FUNCTION = "fz-bkt", "fz-hub", "fz-fn"


@dataclass
class Case:
    surface: str
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    service: str | None = None  # sign for this service; None: send as built
    payload_hash: str | None = None
    tamper: Callable[[dict[str, str]], dict[str, str]] | None = None

    def describe(self) -> str:
        body = self.body[:200]
        return (f"{self.surface}: {self.method} {self.path[:300]} headers={self.headers!r:.300} "
                f"body={body!r} signed={self.service}")


@dataclass
class Report:
    seed: int
    sent: int = 0
    by_class: Counter = field(default_factory=Counter)
    by_surface: Counter = field(default_factory=Counter)
    not_implemented: int = 0
    failures: list[str] = field(default_factory=list)
    server_errors_logged: int = 0
    seconds: float = 0.0

    def figures(self) -> str:
        classes = ", ".join(f"{k}: {v}" for k, v in sorted(self.by_class.items()))
        surfaces = ", ".join(f"{k}: {v}" for k, v in sorted(self.by_surface.items()))
        return (f"fuzz seed={self.seed}: {self.sent} requests in {self.seconds:.1f} s; "
                f"responses by class: {classes}; of the 5xx, 501 NotImplemented: "
                f"{self.not_implemented}; failures (other 5xx or no answer): "
                f"{len(self.failures)}; errors logged by the server: {self.server_errors_logged}; "
                f"by surface: {surfaces}")


# -- hostile values ------------------------------------------------------------------------

NUMBERS = ["", "0", "1", "-1", "2", "1000", "1001", "10000", "10001", "²", "٣", "¹⁰", "9" * 20,
           "9" * 5000, "1e3", "0x10", " 5", "5 ", "+5", "1.5", "NaN", "-0", "00000000000000000001"]
STRINGS = ["", "a", "..", "../x", "a..b", "☃", "\u00e9", "a" * 64, "a" * 300, "x" * 5000,
           "\x00", "a\x00b", "\ud800", "\udfff", "a\nb", "a\r\nb", "<script>", "' OR 1=1 --",
           "%s%s%n", "${jndi:x}", "\u202e", "\ufeff", "a b", "/", "//", "\\", "*", "?", "#"]


def json_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.25:
        return rng.choice([None, True, False, 0, -1, 2**31, 2**63, 2**64, 1.5, -1e308, 10**40])
    if roll < 0.55:
        return rng.choice(STRINGS)
    if roll < 0.75:
        return [json_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice([*STRINGS, "Key", "Value", "Variables"]): json_value(rng, depth + 1)
            for _ in range(rng.randint(0, 3))}


def deep(rng: random.Random) -> str:
    n = rng.choice([100, 900, 1100, 5000, 50_000])
    return rng.choice(["[" * n + "]" * n, '{"a":' * n + "1" + "}" * n])


def header_text(rng: random.Random) -> str:
    """A header value h11 will send: Latin-1 without CR, LF or NUL."""
    value = rng.choice(NUMBERS + STRINGS + ["bytes=0-", "bytes=-0", "bytes=5-1", "*", '"x"'])
    value = value.encode("latin-1", "replace").decode("latin-1")
    # h11 (the client) refuses surrounding whitespace as well
    return "".join(c for c in value if c not in "\r\n\x00")[:4000].strip(" \t")


def qv(value: str) -> str:
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def mutate_json(rng: random.Random, params: dict[str, Any]) -> bytes:
    params = json.loads(json.dumps(params))
    for _ in range(rng.randint(1, 3)):
        roll = rng.random()
        keys = list(params)
        if roll < 0.3 and keys:
            params[rng.choice(keys)] = json_value(rng)
        elif roll < 0.45 and keys:
            del params[rng.choice(keys)]
        elif roll < 0.55:
            params[rng.choice([*STRINGS, "Unknown", "NextToken", "MaxResults"])] = json_value(rng)
        elif roll < 0.65 and keys:
            key = rng.choice(keys)
            text = json.dumps(params)
            return text.replace(json.dumps(key), json.dumps(key) + ":" + deep(rng) + ',"_"', 1
                                ).encode()
        elif roll < 0.72:
            return rng.choice([b"", b"[]", b"null", b"{", b"not json", b'{"a": NaN}',
                               b'{"a": 1e999}', b'{"\\ud800": 1}', b"\xff\xfe", deep(rng).encode(),
                               b'{"a": "\\u0000"}', b"1" * 5000])
        elif keys:
            key = rng.choice(keys)
            if isinstance(params[key], str):
                params[key] = rng.choice(STRINGS)
    return json.dumps(params).encode()


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


S3_SUBRESOURCES = ["uploads", "delete", "location", "acl", "tagging", "versioning", "cors",
                   "lifecycle", "policy", "list-type", "max-keys", "prefix", "delimiter",
                   "marker", "continuation-token", "start-after", "encoding-type", "uploadId",
                   "partNumber", "max-parts", "part-number-marker", "max-uploads", "key-marker",
                   "upload-id-marker", "response-content-type", "response-content-disposition",
                   "response-expires", "versionId", "x-id", "retention"]


def s3_case(rng: random.Random, upload_id: str) -> Case:
    bucket = rng.choice([BUCKET] * 6 + ["fz-missing", "FZ_BAD", "a" * 70, "..", "%2e%2e", "fz-bkt."])
    key = rng.choice(["k", "data.jsonl", "dir/k", "", "..", "a/../b", "%00", "%ff", qv("☃"),
                      "a" * 1100, "//", qv(rng.choice(STRINGS)) or "z", "mp"])
    path = f"/{bucket}" + (f"/{key}" if key else "")
    query = []
    for _ in range(rng.choice([0, 0, 1, 2, 3])):
        name = rng.choice(S3_SUBRESOURCES)
        value = upload_id if name == "uploadId" and rng.random() < 0.6 else rng.choice(
            NUMBERS + STRINGS + ["2", "url", "/"])
        query.append(name if rng.random() < 0.15 else f"{name}={qv(value)}")
    if query:
        path += "?" + "&".join(query)
    method = rng.choice(["GET"] * 4 + ["PUT"] * 3 + ["HEAD", "DELETE", "POST", "POST", "OPTIONS"])
    headers: dict[str, str] = {}
    for _ in range(rng.choice([0, 1, 2, 3])):
        name = rng.choice(["Range", "If-Match", "If-None-Match", "Content-MD5",
                           "x-amz-checksum-crc32", "x-amz-checksum-sha256",
                           "x-amz-checksum-algorithm", "x-amz-decoded-content-length",
                           "Content-Encoding", "x-amz-copy-source", "x-amz-meta-a",
                           "x-amz-expected-bucket-owner", "x-amz-metadata-directive",
                           "x-amz-trailer", "Content-Type", "x-amz-copy-source-if-match"])
        headers[name] = header_text(rng) if name != "Content-Encoding" else rng.choice(
            ["aws-chunked", "gzip", header_text(rng)])
    body = b""
    if method in ("PUT", "POST") and rng.random() < 0.8:
        body = rng.choice([
            rng.randbytes(rng.randint(0, 4096)),
            b"<Delete><Object><Key>k</Key></Object><Object><Key>\xff</Key></Object></Delete>",
            b"<CompleteMultipartUpload><Part><PartNumber>99999999999999999999</PartNumber>"
            b"<ETag>x</ETag></Part></CompleteMultipartUpload>",
            b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY b "c">]><Delete>&b;</Delete>',
            b"<CompleteMultipartUpload></CompleteMultipartUpload>",
            b"zz;chunk-signature=abc\r\nxx\r\n0\r\n\r\n", b"5\r\nhello\r\n0\r\nx-amz-checksum-crc32:AAAA\r\n\r\n",
            b"{}",
        ])
    payload = rng.choice([None] * 6 + ["UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
                                       "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "0" * 64, "junk"])
    return Case("s3", method, path, headers, body, service="s3", payload_hash=payload)


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
              lambda r: s3_case(r, upload_id), lambda r: s3_case(r, upload_id),
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
                if status == 501 and (case.method == "HEAD"
                                      or "<Code>NotImplemented</Code>" in response.text):
                    report.not_implemented += 1
                elif status >= 500:
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
