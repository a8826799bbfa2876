"""S3's configuration sub-resources: which exist, what each method of them is, the defaults.

A bucket's configurations (``?policy``, ``?tagging``, ``?cors``, ``?lifecycle``,
``?versioning``, ...) and an object's tags are documents the client writes and reads back
(``server.s3_config_store`` keeps them in the metadata store). This module is the table
of them: the S3 operation name of each method, and what a Get answers for a bucket that
has none (S3's empty document or its ``NoSuch...`` error). ``route`` turns a request into
``(action, sub-resource)``.

What the server does with a stored configuration is in ``docs/server.md``: documents are
kept and answered back; the server does not act on them (no CORS preflight, lifecycle
expiry, website hosting, notifications or policy evaluation: access is decided by the
server's own keys). Some writes are refused because accepting them would be a lie:
versioning ``Enabled`` (buckets keep one version per key), replication (needs versioning),
Object Lock, ACLs (ownership is ``BucketOwnerEnforced``).
"""

from __future__ import annotations

from dataclasses import dataclass

from airegistry.server import s3_xml
from airegistry.server.s3_xml import S3Error


@dataclass(frozen=True)
class SubResource:
    """One configuration sub-resource: its operations (None: S3 has no such method)."""

    get: str
    put: str | None = None
    delete: str | None = None
    #: (code, message) a Get answers while none is stored (404), unless ``empty`` is set.
    missing: tuple[str, str] | None = None
    #: The document a Get answers while none is stored (root element, body).
    empty: tuple[str, str] | None = None
    #: HTTP status of a successful Put (S3 answers 204 to a few of them).
    put_status: int = 200
    #: Configurations keyed by an ``id`` query parameter (inventory, metrics, ...).
    by_id: str | None = None


_S = SubResource
BUCKET: dict[str, SubResource] = {
    "acl": _S("GetBucketAcl", "PutBucketAcl"),
    "cors": _S("GetBucketCors", "PutBucketCors", "DeleteBucketCors",
               missing=("NoSuchCORSConfiguration", "The CORS configuration does not exist")),
    "lifecycle": _S("GetBucketLifecycleConfiguration", "PutBucketLifecycleConfiguration",
                    "DeleteBucketLifecycle",
                    missing=("NoSuchLifecycleConfiguration",
                             "The lifecycle configuration does not exist")),
    "policy": _S("GetBucketPolicy", "PutBucketPolicy", "DeleteBucketPolicy",
                 missing=("NoSuchBucketPolicy", "The bucket policy does not exist"),
                 put_status=204),
    "tagging": _S("GetBucketTagging", "PutBucketTagging", "DeleteBucketTagging",
                  missing=("NoSuchTagSet", "The TagSet does not exist"), put_status=204),
    "website": _S("GetBucketWebsite", "PutBucketWebsite", "DeleteBucketWebsite",
                  missing=("NoSuchWebsiteConfiguration",
                           "The specified bucket does not have a website configuration")),
    "replication": _S("GetBucketReplication", "PutBucketReplication", "DeleteBucketReplication",
                      missing=("ReplicationConfigurationNotFoundError",
                               "The replication configuration was not found")),
    "encryption": _S("GetBucketEncryption", "PutBucketEncryption", "DeleteBucketEncryption",
                     missing=("ServerSideEncryptionConfigurationNotFoundError",
                              "The server side encryption configuration was not found")),
    "object-lock": _S("GetObjectLockConfiguration", "PutObjectLockConfiguration",
                      missing=("ObjectLockConfigurationNotFoundError",
                               "Object Lock configuration does not exist for this bucket")),
    "publicAccessBlock": _S("GetPublicAccessBlock", "PutPublicAccessBlock",
                            "DeletePublicAccessBlock",
                            missing=("NoSuchPublicAccessBlockConfiguration",
                                     "The public access block configuration was not found")),
    "ownershipControls": _S("GetBucketOwnershipControls", "PutBucketOwnershipControls",
                            "DeleteBucketOwnershipControls",
                            empty=("OwnershipControls", "<Rule><ObjectOwnership>"
                                   "BucketOwnerEnforced</ObjectOwnership></Rule>")),
    "versioning": _S("GetBucketVersioning", "PutBucketVersioning",
                     empty=("VersioningConfiguration", "")),
    "logging": _S("GetBucketLogging", "PutBucketLogging", empty=("BucketLoggingStatus", "")),
    "notification": _S("GetBucketNotificationConfiguration",
                       "PutBucketNotificationConfiguration",
                       empty=("NotificationConfiguration", "")),
    "accelerate": _S("GetBucketAccelerateConfiguration", "PutBucketAccelerateConfiguration",
                     empty=("AccelerateConfiguration", "")),
    "requestPayment": _S("GetBucketRequestPayment", "PutBucketRequestPayment",
                         empty=("RequestPaymentConfiguration",
                                s3_xml.elem("Payer", "BucketOwner"))),
    "inventory": _S("GetBucketInventoryConfiguration", "PutBucketInventoryConfiguration",
                    "DeleteBucketInventoryConfiguration", by_id="ListBucketInventoryConfigurations"),
    "analytics": _S("GetBucketAnalyticsConfiguration", "PutBucketAnalyticsConfiguration",
                    "DeleteBucketAnalyticsConfiguration", by_id="ListBucketAnalyticsConfigurations"),
    "metrics": _S("GetBucketMetricsConfiguration", "PutBucketMetricsConfiguration",
                  "DeleteBucketMetricsConfiguration", by_id="ListBucketMetricsConfigurations"),
    "intelligent-tiering": _S("GetBucketIntelligentTieringConfiguration",
                              "PutBucketIntelligentTieringConfiguration",
                              "DeleteBucketIntelligentTieringConfiguration",
                              by_id="ListBucketIntelligentTieringConfigurations"),
}
OBJECT: dict[str, SubResource] = {
    "acl": _S("GetObjectAcl", "PutObjectAcl"),
    "tagging": _S("GetObjectTagging", "PutObjectTagging", "DeleteObjectTagging",
                  empty=("Tagging", "<TagSet></TagSet>")),
}
#: Object Lock is never configured: its object settings are refused as S3 refuses them.
_OBJECT_LOCK = frozenset({"retention", "legal-hold"})
#: Object sub-resources with their own handlers (``s3_object_extras``), by method.
OBJECT_EXTRAS = {("GET", "torrent"): "GetObjectTorrent", ("POST", "restore"): "RestoreObject",
                 ("GET", "attributes"): "GetObjectAttributes"}

NOT_ALLOWED = S3Error("MethodNotAllowed",
                      "The specified method is not allowed against this resource.", 405)


def route(method: str, names: set[str], *, on_object: bool) -> tuple[str, str, str] | None:
    """What a request naming a configuration sub-resource is: ``(action, sub, operation)``
    with action ``read``/``write``/``delete``/``extra``, or None when it names none; raises
    ``MethodNotAllowed`` for a method S3 has no such operation for, and S3's own refusals
    (ACL writes, Object Lock settings)."""
    table = OBJECT if on_object else BUCKET
    extras = {sub for _, sub in OBJECT_EXTRAS} if on_object else set()
    locks = _OBJECT_LOCK if on_object else frozenset()
    found = sorted(names & (set(table) | extras | locks))
    if not found:
        return None
    sub = found[0]
    if sub in extras:
        operation = OBJECT_EXTRAS.get((method, sub))
        if operation is None:
            raise NOT_ALLOWED
        return "extra", sub, operation
    if method not in ("GET", "PUT", "DELETE"):
        raise NOT_ALLOWED
    if sub in locks:
        raise S3Error("InvalidRequest", "Bucket is missing Object Lock Configuration")
    entry = table[sub]
    if sub == "acl" and method == "PUT":
        # Object ownership is BucketOwnerEnforced (AWS's default): ACLs are disabled.
        raise S3Error("AccessControlListNotSupported", "The bucket does not allow ACLs")
    if method == "GET":
        return "read", sub, entry.get
    if method == "PUT" and entry.put is not None:
        return "write", sub, entry.put
    if method == "DELETE" and entry.delete is not None:
        return "delete", sub, entry.delete
    raise NOT_ALLOWED


def access_control_policy(owner_id: str) -> bytes:
    owner = f"{s3_xml.elem('ID', owner_id)}{s3_xml.elem('DisplayName', owner_id)}"
    grantee = ('<Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
               f'xsi:type="CanonicalUser">{owner}</Grantee>')
    return s3_xml.document(
        "AccessControlPolicy",
        f"<Owner>{owner}</Owner><AccessControlList><Grant>{grantee}"
        "<Permission>FULL_CONTROL</Permission></Grant></AccessControlList>")


def unset_configuration(entry: SubResource) -> bytes:
    """What a Get answers while nothing is stored: S3's empty document, or its 404."""
    if entry.empty is not None:
        return s3_xml.document(*entry.empty)
    assert entry.missing is not None
    raise S3Error(*entry.missing, 404)


__all__ = ["BUCKET", "OBJECT", "OBJECT_EXTRAS", "SubResource", "access_control_policy",
           "route", "unset_configuration"]
