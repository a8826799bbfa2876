"""The fuzzer's shared pieces: the registry it talks to, one request, hostile values.

Kept apart from ``fuzzer`` (surfaces, running) and ``s3_cases`` (the S3 surface) so both
build cases from the same values without importing each other.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

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
