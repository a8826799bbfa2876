"""Reads of S3's configuration sub-resources, which the registry never holds.

Buckets here have no CORS rules, lifecycle rules, policy, tags, website, replication,
encryption or object-lock configuration, no versioning and no logging, and objects no
tags; every bucket and object belongs to the server's account with ``FULL_CONTROL``, and
object ownership is ``BucketOwnerEnforced`` (AWS's default: ACLs are disabled, so setting
one is ``AccessControlListNotSupported``).
A ``GET`` of one of these sub-resources says exactly that, in S3's words (the empty
document, or the ``NoSuch...`` error S3 gives for a configuration that does not exist),
so clients that probe them (``aws s3api get-bucket-versioning``, SDK helpers reading
ACLs or tags) work, and deleting one succeeds (there is none). Writing a configuration is
not supported (501 ``NotImplemented``).
"""

from __future__ import annotations

from airegistry.server import s3_xml
from airegistry.server.s3_xml import S3Error

_MISSING = {
    "cors": ("NoSuchCORSConfiguration", "The CORS configuration does not exist"),
    "lifecycle": ("NoSuchLifecycleConfiguration", "The lifecycle configuration does not exist"),
    "policy": ("NoSuchBucketPolicy", "The bucket policy does not exist"),
    "tagging": ("NoSuchTagSet", "The TagSet does not exist"),
    "website": ("NoSuchWebsiteConfiguration",
                "The specified bucket does not have a website configuration"),
    "replication": ("ReplicationConfigurationNotFoundError",
                    "The replication configuration was not found"),
    "encryption": ("ServerSideEncryptionConfigurationNotFoundError",
                   "The server side encryption configuration was not found"),
    "object-lock": ("ObjectLockConfigurationNotFoundError",
                    "Object Lock configuration does not exist for this bucket"),
    "publicAccessBlock": ("NoSuchPublicAccessBlockConfiguration",
                          "The public access block configuration was not found"),
}
_EMPTY = {
    "versioning": "VersioningConfiguration",
    "logging": "BucketLoggingStatus",
    "notification": "NotificationConfiguration",
    "accelerate": "AccelerateConfiguration",
}

#: The operation each read is (metrics and the access log name it so).
#: DELETE of a configuration the bucket does not have succeeds (204), as on S3.
BUCKET_DELETES = {
    "cors": "DeleteBucketCors", "lifecycle": "DeleteBucketLifecycle",
    "policy": "DeleteBucketPolicy", "tagging": "DeleteBucketTagging",
    "website": "DeleteBucketWebsite", "replication": "DeleteBucketReplication",
    "encryption": "DeleteBucketEncryption", "publicAccessBlock": "DeletePublicAccessBlock",
}
BUCKET_READS = {
    "acl": "GetBucketAcl", "cors": "GetBucketCors", "lifecycle": "GetBucketLifecycleConfiguration",
    "policy": "GetBucketPolicy", "tagging": "GetBucketTagging", "website": "GetBucketWebsite",
    "replication": "GetBucketReplication", "encryption": "GetBucketEncryption",
    "object-lock": "GetObjectLockConfiguration", "ownershipControls": "GetBucketOwnershipControls",
    "publicAccessBlock": "GetPublicAccessBlock", "versioning": "GetBucketVersioning",
    "logging": "GetBucketLogging", "notification": "GetBucketNotificationConfiguration",
    "accelerate": "GetBucketAccelerateConfiguration", "requestPayment": "GetBucketRequestPayment",
}
OBJECT_READS = {"acl": "GetObjectAcl", "tagging": "GetObjectTagging"}


#: Bucket sub-resources of features not implemented at all (their reads included).
UNIMPLEMENTED_BUCKET = frozenset({"versions", "inventory", "analytics", "metrics",
                                  "intelligent-tiering"})
#: Object sub-resources that can be read or deleted (nothing to delete) but not written.
OBJECT_DELETES = {"tagging": "DeleteObjectTagging"}
UNIMPLEMENTED_OBJECT = frozenset({"torrent", "restore", "attributes"})
#: Object Lock is never configured: its object settings are refused as S3 refuses them.
_OBJECT_LOCK = frozenset({"retention", "legal-hold"})

NOT_ALLOWED = S3Error("MethodNotAllowed",
                      "The specified method is not allowed against this resource.", 405)


def route(method: str, names: set[str], *, on_object: bool) -> tuple[str, str] | None:
    """What a request naming configuration sub-resources is: ``("read", sub)``,
    ``("delete", sub)``, or None when it names none; raises ``NotImplemented`` (a write, or
    a feature the server lacks) or ``MethodNotAllowed`` (a method S3 has no such
    operation for)."""
    reads = OBJECT_READS if on_object else BUCKET_READS
    deletes = OBJECT_DELETES if on_object else BUCKET_DELETES
    lacking = UNIMPLEMENTED_OBJECT if on_object else UNIMPLEMENTED_BUCKET
    locks = _OBJECT_LOCK if on_object else frozenset()
    found = sorted(names & (set(reads) | set(lacking) | locks))
    if not found:
        return None
    sub = found[0]
    if method not in ("GET", "PUT", "DELETE"):
        raise NOT_ALLOWED
    if sub in locks:
        raise S3Error("InvalidRequest", "Bucket is missing Object Lock Configuration")
    if sub == "acl" and method == "PUT":
        # Object ownership is BucketOwnerEnforced (AWS's default): ACLs are disabled.
        raise S3Error("AccessControlListNotSupported", "The bucket does not allow ACLs")
    if sub in lacking or method == "PUT":
        what = "Object" if on_object else "Bucket"
        raise S3Error("NotImplemented", f"{what} subresource {sub!r} is not implemented", 501)
    if method == "GET":
        return "read", sub
    if method == "DELETE" and sub in deletes:
        return "delete", sub
    raise NOT_ALLOWED


def access_control_policy(owner_id: str) -> bytes:
    owner = f"{s3_xml.elem('ID', owner_id)}{s3_xml.elem('DisplayName', owner_id)}"
    grantee = ('<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
               f'xsi:type="CanonicalUser">{owner}</Grantee>')
    return s3_xml.document(
        "AccessControlPolicy",
        f"<Owner>{owner}</Owner><AccessControlList><Grant>{grantee}"
        "<Permission>FULL_CONTROL</Permission></Grant></AccessControlList>")


def bucket_configuration(subresource: str, owner_id: str) -> bytes:
    """The body of a ``GET /<bucket>?<subresource>``, or the S3Error S3 answers."""
    if subresource == "acl":
        return access_control_policy(owner_id)
    if subresource == "ownershipControls":
        return s3_xml.document("OwnershipControls", "<Rule><ObjectOwnership>BucketOwnerEnforced"
                                                    "</ObjectOwnership></Rule>")
    if subresource == "requestPayment":
        return s3_xml.document("RequestPaymentConfiguration", s3_xml.elem("Payer", "BucketOwner"))
    if subresource in _EMPTY:
        return s3_xml.document(_EMPTY[subresource], "")
    code, message = _MISSING[subresource]
    raise S3Error(code, message, 404)


def object_configuration(subresource: str, owner_id: str) -> bytes:
    """The body of a ``GET /<bucket>/<key>?acl`` or ``?tagging``."""
    if subresource == "acl":
        return access_control_policy(owner_id)
    return s3_xml.document("Tagging", "<TagSet></TagSet>")


__all__ = ["BUCKET_DELETES", "BUCKET_READS", "OBJECT_DELETES", "OBJECT_READS",
           "bucket_configuration", "object_configuration", "route"]
