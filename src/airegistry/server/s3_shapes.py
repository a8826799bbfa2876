"""Request XML checked against botocore's S3 service model: the shapes AWS publishes.

A configuration document (PutBucketCors, PutBucketLifecycleConfiguration, PutObjectTagging
...) is stored as sent and answered back by the matching Get, so it must be one that
SDKs can parse again. Rather than hand-writing a schema per sub-resource, the document is
walked against the operation's payload shape from botocore's model: the root element's
name, every child a member of its structure (flattened lists included), every required
member present, numbers, booleans and enum values well-formed. Anything else is
``MalformedXML`` naming the element, which is what S3 answers.
"""

from __future__ import annotations

import datetime as dt
import functools
import xml.etree.ElementTree as ET
from typing import Any

from airegistry.server import s3_xml
from airegistry.server.s3_xml import S3Error

#: Elements nested deeper than this are refused before the walk (S3's documents are shallow).
MAX_DEPTH = 32


@functools.lru_cache(maxsize=1)
def _model() -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("s3")


def payload_shape(operation: str) -> Any:
    """The shape of an operation's XML body (``PutBucketCors`` -> ``CORSConfiguration``)."""
    shape = _model().operation_model(operation).input_shape
    return shape.members[shape.serialization["payload"]]


def _malformed(path: str, why: str) -> S3Error:
    return S3Error("MalformedXML", "The XML you provided was not well-formed or did not validate "
                   f"against our published schema ({path}: {why})")


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _xml_name(name: str, shape: Any) -> str:
    return shape.serialization.get("name", name)


def _check_scalar(node: ET.Element, shape: Any, path: str) -> None:
    if len(node):
        raise _malformed(path, "expected a value, found elements")
    value = (node.text or "").strip()
    kind = shape.type_name
    if kind in ("integer", "long"):
        try:
            int(value, 10)
        except ValueError:
            raise _malformed(path, f"{value[:40]!r} is not an integer") from None
        if not value.lstrip("-").isascii():
            raise _malformed(path, f"{value[:40]!r} is not an integer")
    elif kind == "boolean":
        if value not in ("true", "false"):
            raise _malformed(path, f"{value[:40]!r} is not true or false")
    elif kind == "timestamp":
        try:
            dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _malformed(path, f"{value[:40]!r} is not an ISO 8601 date") from None
    elif kind == "string" and shape.enum and value not in shape.enum:
        raise _malformed(path, f"{value[:40]!r} is not one of {', '.join(shape.enum)}")


def _check(node: ET.Element, shape: Any, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _malformed(path, "nested too deeply")
    kind = shape.type_name
    if kind == "structure":
        _check_structure(node, shape, path, depth)
    elif kind == "list":
        member = shape.member
        name = _xml_name("member", member)
        for child in node:
            if _local(child.tag) != name:
                raise _malformed(f"{path}/{_local(child.tag)}", f"expected <{name}>")
            _check(child, member, f"{path}/{name}", depth + 1)
    elif kind == "map":
        return  # S3's request documents carry no maps; nothing here to hold one to
    else:
        _check_scalar(node, shape, path)


def _check_structure(node: ET.Element, shape: Any, path: str, depth: int) -> None:
    by_name: dict[str, tuple[str, Any, bool]] = {}
    for member_name, member in shape.members.items():
        if member.serialization.get("xmlAttribute"):
            continue
        flattened = member.type_name == "list" and member.serialization.get("flattened", False)
        by_name[_xml_name(member_name, member)] = (member_name, member, flattened)
    seen: set[str] = set()
    if (node.text or "").strip():
        raise _malformed(path, "unexpected text")
    for child in node:
        name = _local(child.tag)
        if name not in by_name:
            raise _malformed(f"{path}/{name}", f"<{name}> is not a member of {shape.name}")
        member_name, member, flattened = by_name[name]
        if member_name in seen and not flattened:
            raise _malformed(f"{path}/{name}", f"<{name}> appears twice")
        seen.add(member_name)
        _check(child, member.member if flattened else member, f"{path}/{name}", depth + 1)
    missing = [m for m in shape.required_members if m not in seen
               and not shape.members[m].serialization.get("xmlAttribute")]
    if missing:
        raise _malformed(path, f"missing required {', '.join(missing)}")


def parse_payload(body: bytes, operation: str) -> ET.Element:
    """Parse and check the XML body of ``operation``; its root element on success."""
    shape = payload_shape(operation)
    if not body.strip():
        raise _malformed(shape.name, "the request has no body")
    root = s3_xml.parse_xml(body, operation)
    expected = _xml_name(shape.name, shape)
    if _local(root.tag) != expected:
        raise _malformed(_local(root.tag), f"the document must be <{expected}>")
    _check(root, shape, expected, 0)
    return root


def children(node: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in node.iter() if _local(c.tag) == name]


__all__ = ["children", "parse_payload", "payload_shape"]
