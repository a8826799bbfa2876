"""AWS Signature Version 4 verification of incoming requests.

The server is the *receiving* side of SigV4: it must rebuild the canonical request
exactly as the client did, from the bytes that actually arrived (raw path, raw query,
only the headers the client listed as signed), then recompute the signature with the
secret of the claimed access key. Signing itself (key derivation, HMAC chain, string
to sign) follows botocore's ``SigV4Auth`` byte for byte; canonicalisation is done
here because botocore canonicalises an *outgoing* ``AWSRequest`` and would
re-normalise things the client already fixed (header order, path encoding).

Both forms are supported: the ``Authorization`` header and presigned query strings
(``X-Amz-Signature`` and friends, with ``X-Amz-Expires`` honoured).
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_PAYLOADS = frozenset({STREAMING_UNSIGNED_TRAILER, STREAMING_SIGNED, STREAMING_SIGNED_TRAILER})

#: AWS rejects requests whose timestamp is further than this from the server clock.
MAX_CLOCK_SKEW = _dt.timedelta(minutes=15)
#: Longest validity a presigned URL may ask for (7 days, as on AWS).
MAX_PRESIGN_EXPIRES = 7 * 24 * 3600


class AuthFailure(Enum):
    """Why a request was refused; each protocol maps this to its own error code."""

    MISSING = "missing"  # no signature at all
    MALFORMED = "malformed"  # signature present but unparseable
    UNKNOWN_KEY = "unknown_key"
    BAD_SIGNATURE = "bad_signature"
    SKEWED = "skewed"  # timestamp too far from the server clock
    EXPIRED = "expired"  # presigned URL past X-Amz-Expires


class SigV4Error(Exception):
    """Raised when a request cannot be authenticated; ``kind`` selects the wire error."""

    def __init__(self, kind: AuthFailure, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True)
class SignatureInfo:
    """What the client claims: parsed from the Authorization header or the query."""

    access_key: str
    date_stamp: str  # YYYYMMDD from the credential scope
    region: str
    service: str
    signed_headers: tuple[str, ...]
    signature: str
    amz_date: str  # YYYYMMDDTHHMMSSZ
    presigned: bool
    expires: int | None = None

    @property
    def scope(self) -> str:
        return f"{self.date_stamp}/{self.region}/{self.service}/aws4_request"


@dataclass(frozen=True)
class VerifiedRequest:
    """A request whose signature checked out; carries what chunk signing needs."""

    access_key: str
    service: str
    region: str
    amz_date: str
    scope: str
    signature: str  # the seed signature for aws-chunked chunk signatures
    signing_key: bytes
    payload_hash: str


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode("utf-8"), hashlib.sha256).digest()


@functools.lru_cache(maxsize=256)
def derive_signing_key(secret: str, date_stamp: str, region: str, service: str) -> bytes:
    """The SigV4 key-derivation chain (same as botocore's ``SigV4Auth.signature``).

    Cached: the key only changes per (key, day, region, service), and four HMACs per
    request are a measurable share of a small request's cost.
    """
    k_date = _hmac(("AWS4" + secret).encode("utf-8"), date_stamp)
    k_region = _hmac(k_date, region)
    k_service = _hmac(k_region, service)
    return _hmac(k_service, "aws4_request")


def sign(signing_key: bytes, string_to_sign: str) -> str:
    return hmac.new(signing_key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def _parse_credential(credential: str) -> tuple[str, str, str, str]:
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not all(parts):
        raise SigV4Error(
            AuthFailure.MALFORMED,
            f"Credential must be <key>/<YYYYMMDD>/<region>/<service>/aws4_request, got {credential!r}",
        )
    return parts[0], parts[1], parts[2], parts[3]


def parse_authorization_header(value: str) -> tuple[str, str, str, str, tuple[str, ...], str]:
    """Split ``AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...``."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise SigV4Error(
            AuthFailure.MALFORMED, f"Unsupported authorization algorithm {algorithm!r}"
        )
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, val = part.strip().partition("=")
        if sep:
            fields[name.strip()] = val.strip()
    missing = [f for f in ("Credential", "SignedHeaders", "Signature") if f not in fields]
    if missing:
        raise SigV4Error(
            AuthFailure.MALFORMED, f"Authorization header is missing {', '.join(missing)}"
        )
    key, date_stamp, region, service = _parse_credential(fields["Credential"])
    signed = tuple(h for h in fields["SignedHeaders"].lower().split(";") if h)
    return key, date_stamp, region, service, signed, fields["Signature"]


def credential_service(headers: dict[str, str], query: Sequence[tuple[str, str]]) -> str | None:
    """The service named in the credential scope, or None when the request is unsigned.

    Used for protocol dispatch before authentication, so it never raises.
    """
    auth = headers.get("authorization", "")
    cred = ""
    if auth.startswith(ALGORITHM):
        for part in auth[len(ALGORITHM) :].split(","):
            name, _, val = part.strip().partition("=")
            if name.strip() == "Credential":
                cred = val.strip()
    else:
        for k, v in query:
            if k == "X-Amz-Credential":
                cred = v
    parts = cred.split("/")
    return parts[3] if len(parts) == 5 else None


def extract_signature(headers: dict[str, str], query: Sequence[tuple[str, str]]) -> SignatureInfo:
    """Find the signature in the Authorization header or presigned query parameters."""
    auth = headers.get("authorization")
    qmap = dict(query)
    if auth is not None:
        key, date_stamp, region, service, signed, signature = parse_authorization_header(auth)
        amz_date = headers.get("x-amz-date") or _http_date_to_amz(headers.get("date", ""))
        if not amz_date:
            raise SigV4Error(AuthFailure.MALFORMED, "Missing X-Amz-Date or Date header")
        return SignatureInfo(key, date_stamp, region, service, signed, signature, amz_date, False)
    if "X-Amz-Signature" in qmap or "X-Amz-Credential" in qmap:
        needed = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders",
                  "X-Amz-Signature")
        missing = [n for n in needed if n not in qmap]
        if missing:
            raise SigV4Error(
                AuthFailure.MALFORMED, f"Presigned URL is missing {', '.join(missing)}"
            )
        if qmap["X-Amz-Algorithm"] != ALGORITHM:
            raise SigV4Error(
                AuthFailure.MALFORMED, f"Unsupported X-Amz-Algorithm {qmap['X-Amz-Algorithm']!r}"
            )
        key, date_stamp, region, service = _parse_credential(qmap["X-Amz-Credential"])
        expires: int | None = None
        if "X-Amz-Expires" in qmap:
            try:
                expires = int(qmap["X-Amz-Expires"])
            except ValueError:
                raise SigV4Error(
                    AuthFailure.MALFORMED, "X-Amz-Expires must be an integer number of seconds"
                ) from None
            if not 1 <= expires <= MAX_PRESIGN_EXPIRES:
                raise SigV4Error(
                    AuthFailure.MALFORMED,
                    f"X-Amz-Expires must be between 1 and {MAX_PRESIGN_EXPIRES} seconds",
                )
        signed = tuple(h for h in qmap["X-Amz-SignedHeaders"].lower().split(";") if h)
        return SignatureInfo(key, date_stamp, region, service, signed, qmap["X-Amz-Signature"],
                             qmap["X-Amz-Date"], True, expires)
    raise SigV4Error(AuthFailure.MISSING, "Request is not signed")


def precheck(headers: dict[str, str], query: Sequence[tuple[str, str]],
             lookup_secret: Callable[[str], str | None],
             now: _dt.datetime | None = None) -> SignatureInfo:
    """The checks that need no body: signed at all, well-formed, known key, fresh.

    Lets the server refuse a request before buffering its body; the full
    :func:`verify_request` still runs afterwards. Returns the parsed signature so
    that call can take it (``info=``) instead of parsing the same headers again.
    """
    info = extract_signature(headers, query)
    now = now or _dt.datetime.now(_dt.timezone.utc)
    when = parse_amz_date(info.amz_date)
    if not info.presigned and abs(now - when) > MAX_CLOCK_SKEW:
        raise SigV4Error(
            AuthFailure.SKEWED,
            "The difference between the request time and the current time is too large.",
        )
    if lookup_secret(info.access_key) is None:
        raise SigV4Error(
            AuthFailure.UNKNOWN_KEY,
            "The AWS Access Key Id you provided does not exist in our records.",
        )
    return info


def _http_date_to_amz(value: str) -> str:
    if not value:
        return ""
    from email.utils import parsedate_to_datetime

    try:
        parsed = parsedate_to_datetime(value)
        if parsed.tzinfo is None:  # "-0000": RFC 5322's unknown zone, taken as UTC
            parsed = parsed.replace(tzinfo=_dt.timezone.utc)
        # A date near year 1 or 9999 with an offset leaves datetime's range in UTC.
        return parsed.astimezone(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    except (TypeError, ValueError, OverflowError, IndexError):
        return ""


def parse_amz_date(amz_date: str) -> _dt.datetime:
    # Hand-parsed: strptime is slow enough to show up in per-request profiles.
    try:
        if len(amz_date) != 16 or amz_date[8] != "T" or amz_date[15] != "Z":
            raise ValueError(amz_date)
        return _dt.datetime(
            int(amz_date[0:4]), int(amz_date[4:6]), int(amz_date[6:8]), int(amz_date[9:11]),
            int(amz_date[11:13]), int(amz_date[13:15]), tzinfo=_dt.timezone.utc,
        )
    except ValueError:
        raise SigV4Error(
            AuthFailure.MALFORMED, f"X-Amz-Date {amz_date!r} is not in YYYYMMDDTHHMMSSZ form"
        ) from None


def _aws_quote(value: str) -> str:
    return quote(value, safe="-_.~")


def canonical_query(raw_query: bytes | str, *, exclude_signature: bool) -> str:
    """AWS canonical query: decode each pair, re-encode with AWS's rule, sort."""
    if isinstance(raw_query, bytes):
        raw_query = raw_query.decode("latin-1")
    pairs: list[tuple[str, str]] = []
    for item in raw_query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        name, value = unquote(name), unquote(value)
        if exclude_signature and name == "X-Amz-Signature":
            continue
        pairs.append((_aws_quote(name), _aws_quote(value)))
    pairs.sort()
    return "&".join(f"{k}={v}" for k, v in pairs)


def canonical_uri_candidates(raw_path: str, service: str) -> list[str]:
    """The canonical URIs a conforming client could have signed for this raw path.

    S3 signs the path as sent (single encoding, no dot-segment normalisation); other
    services sign the URI-encoding of the already-encoded path. Clients differ in how
    they encoded the path on the wire, so the decoded-then-reencoded form is also
    tried; every candidate still needs the secret key to match.
    """
    raw_path = raw_path or "/"
    if service == "s3":
        candidates = [raw_path, quote(unquote(raw_path), safe="/~")]
    else:
        candidates = [quote(raw_path, safe="/~"), raw_path]
    seen: list[str] = []
    for c in candidates:
        if c not in seen:
            seen.append(c)
    return seen


def canonical_headers(
    header_pairs: Sequence[tuple[str, str]], signed: Sequence[str]
) -> tuple[str, str]:
    names = sorted(set(signed))
    wanted = frozenset(names)
    values: dict[str, list[str]] = {}
    for name, value in header_pairs:
        name = name.lower()
        if name in wanted:  # only signed headers are canonicalised; the rest are ignored
            values.setdefault(name, []).append(" ".join(value.split()))
    lines = []
    for name in names:
        if name not in values:
            raise SigV4Error(
                AuthFailure.BAD_SIGNATURE, f"Signed header {name!r} is not present in the request"
            )
        lines.append(f"{name}:{','.join(values[name])}")
    return "\n".join(lines) + "\n", ";".join(names)


def string_to_sign(amz_date: str, scope: str, canonical_request: str) -> str:
    digest = hashlib.sha256(canonical_request.encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def verify_request(
    *,
    method: str,
    raw_path: str,
    raw_query: bytes | str,
    header_pairs: Sequence[tuple[str, str]],
    payload_hash: str | None,
    lookup_secret: Callable[[str], str | None],
    now: _dt.datetime | None = None,
    info: SignatureInfo | None = None,
) -> VerifiedRequest:
    """Authenticate one request or raise :class:`SigV4Error`.

    ``payload_hash`` is what the client put in the canonical request: the value of
    ``x-amz-content-sha256`` for S3 (the body is then checked against it while it
    streams), the hex SHA-256 of the buffered body for the JSON/query protocols, or
    None for a presigned URL (which signs ``UNSIGNED-PAYLOAD`` unless told otherwise).
    """
    headers: dict[str, str] | None = None
    if info is None:
        headers = {k.lower(): v for k, v in header_pairs}
        info = extract_signature(headers, _split_query(raw_query))
    now = now or _dt.datetime.now(_dt.timezone.utc)
    when = parse_amz_date(info.amz_date)
    if info.date_stamp != info.amz_date[:8]:
        raise SigV4Error(
            AuthFailure.MALFORMED, "Credential scope date does not match the request date"
        )
    if info.presigned:
        if when - now > MAX_CLOCK_SKEW:
            raise SigV4Error(AuthFailure.SKEWED, "Presigned URL date is in the future")
        expires = info.expires if info.expires is not None else MAX_PRESIGN_EXPIRES
        if now > when + _dt.timedelta(seconds=expires):
            raise SigV4Error(AuthFailure.EXPIRED, "Request has expired")
    elif abs(now - when) > MAX_CLOCK_SKEW:
        raise SigV4Error(
            AuthFailure.SKEWED,
            "The difference between the request time and the current time is too large.",
        )
    if "host" not in info.signed_headers:
        raise SigV4Error(AuthFailure.MALFORMED, "The host header must be signed")
    secret = lookup_secret(info.access_key)
    if secret is None:
        raise SigV4Error(
            AuthFailure.UNKNOWN_KEY,
            "The AWS Access Key Id you provided does not exist in our records.",
        )
    if info.presigned:
        if headers is None:
            headers = {k.lower(): v for k, v in header_pairs}
        qmap = dict(_split_query(raw_query))
        payload = qmap.get("X-Amz-Content-Sha256") or headers.get("x-amz-content-sha256")
        payload = payload or UNSIGNED_PAYLOAD
    else:
        payload = payload_hash if payload_hash is not None else EMPTY_SHA256
    # compare_digest refuses str with non-ASCII characters; bytes compare whatever arrived.
    signature = info.signature.encode("utf-8", "surrogateescape")
    canon_headers, signed_list = canonical_headers(header_pairs, info.signed_headers)
    query = canonical_query(raw_query, exclude_signature=info.presigned)
    key = derive_signing_key(secret, info.date_stamp, info.region, info.service)
    for uri in canonical_uri_candidates(raw_path, info.service):
        creq = "\n".join([method.upper(), uri, query, canon_headers, signed_list, payload])
        expected = sign(key, string_to_sign(info.amz_date, info.scope, creq))
        if hmac.compare_digest(expected.encode(), signature):
            return VerifiedRequest(
                access_key=info.access_key,
                service=info.service,
                region=info.region,
                amz_date=info.amz_date,
                scope=info.scope,
                signature=info.signature,
                signing_key=key,
                payload_hash=payload,
            )
    raise SigV4Error(
        AuthFailure.BAD_SIGNATURE,
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method.",
    )


def _split_query(raw_query: bytes | str) -> list[tuple[str, str]]:
    if isinstance(raw_query, bytes):
        raw_query = raw_query.decode("latin-1")
    out = []
    for item in raw_query.split("&"):
        if item:
            name, _, value = item.partition("=")
            out.append((unquote(name), unquote(value)))
    return out
