"""What makes a configuration document acceptable, beyond its botocore shape.

``s3_shapes`` checks a document's structure; the rules here are S3's own limits (tag
counts and lengths, a policy's JSON) and the writes this server refuses because it
cannot honour them: versioning ``Enabled`` (every bucket keeps exactly one version per
key, so claiming versioning would lose data a client believes is kept), replication
(S3 requires versioning for it), Object Lock (S3 allows it only on buckets created with
it) and any object ownership other than ``BucketOwnerEnforced`` (ACLs are disabled).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from airegistry.server import s3_shapes
from airegistry.server.s3_xml import S3Error

#: S3's bucket policy size limit.
MAX_POLICY_BYTES = 20 * 1024
MAX_BUCKET_TAGS = 50
MAX_OBJECT_TAGS = 10
_POLICY_VERSIONS = ("2012-10-17", "2008-10-17")


def _texts(root: ET.Element, name: str) -> list[str]:
    return [(n.text or "").strip() for n in s3_shapes.children(root, name)]


def check_policy(body: bytes) -> str:
    """A bucket policy is a JSON object with a ``Statement``; ``MalformedPolicy`` otherwise."""
    if len(body) > MAX_POLICY_BYTES:
        raise S3Error("PolicyTooLarge", f"Policies must be at most {MAX_POLICY_BYTES} bytes")
    try:
        text = body.decode("utf-8")
        policy = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise S3Error("MalformedPolicy", "Policies must be valid JSON") from None
    if not isinstance(policy, dict):
        raise S3Error("MalformedPolicy", "Policies must be a JSON object")
    version = policy.get("Version")
    if version is not None and version not in _POLICY_VERSIONS:
        raise S3Error("MalformedPolicy", f"The policy Version must be one of "
                      f"{', '.join(_POLICY_VERSIONS)}")
    statements = policy.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise S3Error("MalformedPolicy", "Missing required field Statement")
    for i, statement in enumerate(statements, start=1):
        if not isinstance(statement, dict):
            raise S3Error("MalformedPolicy", f"Statement {i} must be a JSON object")
        if statement.get("Effect") not in ("Allow", "Deny"):
            raise S3Error("MalformedPolicy", f"Statement {i}: Effect must be Allow or Deny")
        if "Action" not in statement and "NotAction" not in statement:
            raise S3Error("MalformedPolicy", f"Statement {i}: missing required field Action")
    return text


def check_tags(root: ET.Element, limit: int) -> None:
    keys = _texts(root, "Key")
    values = _texts(root, "Value")
    if len(keys) > limit:
        raise S3Error("BadRequest" if limit == MAX_OBJECT_TAGS else "InvalidTag",
                      f"Object tags cannot be greater than {limit}" if limit == MAX_OBJECT_TAGS
                      else f"A bucket can have at most {limit} tags")
    if len(set(keys)) != len(keys):
        raise S3Error("InvalidTag", "Cannot provide multiple Tags with the same key")
    for key in keys:
        if not 1 <= len(key) <= 128:
            raise S3Error("InvalidTag", "The TagKey you have provided is invalid")
        if key.lower().startswith("aws:"):
            raise S3Error("InvalidTag", "Your TagKey cannot be prefixed with aws:")
    if any(len(v) > 256 for v in values):
        raise S3Error("InvalidTag", "The TagValue you have provided is invalid")


def check_bucket_document(sub: str, operation: str, body: bytes) -> str:
    """The document to store for a bucket configuration write, or the S3Error to answer."""
    if sub == "policy":
        return check_policy(body)
    root = s3_shapes.parse_payload(body, operation)
    if sub == "tagging":
        check_tags(root, MAX_BUCKET_TAGS)
    elif sub == "versioning":
        if "Enabled" in _texts(root, "Status"):
            raise S3Error("InvalidBucketState", "Versioning cannot be enabled on this server: "
                          "buckets keep one version of each key. Only Suspended is accepted.",
                          409)
        if "Enabled" in _texts(root, "MfaDelete"):
            raise S3Error("InvalidRequest", "MFA delete requires versioning, which cannot be "
                          "enabled on this server")
    elif sub == "replication":
        raise S3Error("InvalidRequest", "Versioning must be 'Enabled' on the bucket to apply a "
                      "replication configuration")
    elif sub == "object-lock":
        raise S3Error("InvalidBucketState", "Object Lock configuration cannot be enabled on "
                      "existing buckets", 409)
    elif sub == "ownershipControls" and set(_texts(root, "ObjectOwnership")) != {
            "BucketOwnerEnforced"}:
        raise S3Error("InvalidRequest", "ACLs are disabled on this server: the only object "
                      "ownership is BucketOwnerEnforced")
    return _utf8(body)


def _utf8(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise S3Error("MalformedXML", "The XML you provided must be UTF-8") from None


def check_object_tagging(body: bytes) -> str:
    root = s3_shapes.parse_payload(body, "PutObjectTagging")
    check_tags(root, MAX_OBJECT_TAGS)
    return _utf8(body)


def document_id(body: str) -> str | None:
    """The ``<Id>`` of an id-keyed configuration (inventory, metrics, ...)."""
    root = ET.fromstring(body)
    for child in root:
        if child.tag.rsplit("}", 1)[-1] == "Id":
            return (child.text or "").strip()
    return None


__all__ = ["check_bucket_document", "check_object_tagging", "check_policy", "document_id"]
