"""The S3 surface of the fuzzer: random requests, and mutated well-formed operations."""

from __future__ import annotations

import json
import random

from tests.fuzz.values import BUCKET, NUMBERS, STRINGS, Case, header_text, qv

S3_SUBRESOURCES = ["uploads", "delete", "location", "acl", "tagging", "versioning", "cors",
                   "lifecycle", "policy", "list-type", "max-keys", "prefix", "delimiter",
                   "marker", "continuation-token", "start-after", "encoding-type", "uploadId",
                   "partNumber", "max-parts", "part-number-marker", "max-uploads", "key-marker",
                   "upload-id-marker", "response-content-type", "response-content-disposition",
                   "response-expires", "versionId", "x-id", "retention", "versions",
                   "version-id-marker", "website", "encryption", "publicAccessBlock",
                   "ownershipControls", "notification", "metrics", "inventory", "analytics",
                   "intelligent-tiering", "id", "attributes", "restore", "torrent", "logging",
                   "accelerate", "requestPayment", "replication", "object-lock", "legal-hold"]


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
                           "x-amz-trailer", "Content-Type", "x-amz-copy-source-if-match",
                           "x-amz-copy-source-range", "x-amz-object-attributes",
                           "x-amz-max-parts", "x-amz-part-number-marker", "x-amz-tagging",
                           "x-amz-tagging-directive"])
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


NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
S3_DOCUMENTS = {
    "tagging": f"<Tagging {NS}><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>",
    "cors": "<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod><AllowedOrigin>*"
            "</AllowedOrigin><MaxAgeSeconds>30</MaxAgeSeconds></CORSRule></CORSConfiguration>",
    "lifecycle": "<LifecycleConfiguration><Rule><ID>r</ID><Filter><Prefix>t/</Prefix></Filter>"
                 "<Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>"
                 "</LifecycleConfiguration>",
    "versioning": "<VersioningConfiguration><Status>Suspended</Status></VersioningConfiguration>",
    "encryption": "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault>"
                  "<SSEAlgorithm>AES256</SSEAlgorithm></ApplyServerSideEncryptionByDefault></Rule>"
                  "</ServerSideEncryptionConfiguration>",
    "website": "<WebsiteConfiguration><IndexDocument><Suffix>i.html</Suffix></IndexDocument>"
               "</WebsiteConfiguration>",
    "notification": "<NotificationConfiguration></NotificationConfiguration>",
    "publicAccessBlock": "<PublicAccessBlockConfiguration><BlockPublicAcls>true</BlockPublicAcls>"
                         "</PublicAccessBlockConfiguration>",
    "ownershipControls": "<OwnershipControls><Rule><ObjectOwnership>BucketOwnerEnforced"
                         "</ObjectOwnership></Rule></OwnershipControls>",
    "logging": "<BucketLoggingStatus></BucketLoggingStatus>",
    "accelerate": "<AccelerateConfiguration><Status>Suspended</Status></AccelerateConfiguration>",
    "requestPayment": "<RequestPaymentConfiguration><Payer>Requester</Payer>"
                      "</RequestPaymentConfiguration>",
    "replication": "<ReplicationConfiguration><Role>r</Role><Rule><Status>Enabled</Status>"
                   "<Destination><Bucket>arn:aws:s3:::x</Bucket></Destination></Rule>"
                   "</ReplicationConfiguration>",
    "object-lock": "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled>"
                   "</ObjectLockConfiguration>",
    "metrics": "<MetricsConfiguration><Id>m1</Id></MetricsConfiguration>",
    "policy": json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
         "Resource": f"arn:aws:s3:::{BUCKET}/*"}]}),
}


def s3_operation_case(rng: random.Random, upload_id: str) -> Case:
    """A well-formed request of one S3 operation, then one to three hostile mutations."""
    sub = rng.choice([*S3_DOCUMENTS, "versions", "copy", "part", "attributes", "objtagging",
                      "tagged-put"])
    method, path, headers, body = "GET", f"/{BUCKET}", {}, b""
    if sub in S3_DOCUMENTS:
        method = rng.choice(["PUT", "PUT", "GET", "DELETE"])
        path += f"?{sub}" + ("&id=m1" if sub == "metrics" else "")
        body = S3_DOCUMENTS[sub].encode() if method == "PUT" else b""
    elif sub == "versions":
        path += "?versions&" + rng.choice(["max-keys=2", "delimiter=/", "prefix=d",
                                           "key-marker=data.jsonl&version-id-marker=null"])
    elif sub == "copy":
        method, path = "PUT", f"/{BUCKET}/mp?partNumber=2&uploadId={upload_id}"
        headers = {"x-amz-copy-source": f"/{BUCKET}/data.jsonl",
                   "x-amz-copy-source-range": rng.choice(["bytes=0-3", "bytes=0-100000"])}
    elif sub == "part":
        method = rng.choice(["GET", "HEAD"])
        path += f"/mpobj?partNumber={rng.choice(['1', '2', '3'])}"
    elif sub == "attributes":
        path += "/mpobj?attributes"
        headers = {"x-amz-object-attributes": "ETag,ObjectParts,ObjectSize,StorageClass"}
    elif sub == "tagged-put":
        method, path, body = "PUT", f"/{BUCKET}/tagged", b"body"
        headers = {"x-amz-tagging": rng.choice(["a=b", "a=b&c=d", "a=1&a=2", "k%20=v%F0"])}
    else:
        method = rng.choice(["PUT", "GET", "DELETE"])
        path += "/data.jsonl?tagging"
        body = S3_DOCUMENTS["tagging"].encode() if method == "PUT" else b""
    for _ in range(rng.randint(0 if rng.random() < 0.2 else 1, 3)):
        roll = rng.random()
        if roll < 0.3 and body:
            cut = rng.randrange(len(body))
            body = rng.choice([body[:cut], body[:cut] + rng.randbytes(4) + body[cut + 1:],
                               body.replace(b"<", b"<x", 1), body * 2])
        elif roll < 0.5 and headers:
            headers[rng.choice(list(headers))] = header_text(rng)
        elif roll < 0.7:
            sep = "&" if "?" in path else "?"
            path += sep + f"{rng.choice(S3_SUBRESOURCES)}={qv(rng.choice(NUMBERS + STRINGS))}"
        elif roll < 0.85:
            body = rng.choice([b"", b"<a>" * 100, rng.randbytes(64), b"{}", b"[]",
                               b"<Tagging><TagSet><Tag><Key>\xe2\x98\x83</Key><Value>"
                               b"\xed\xa0\x80</Value></Tag></TagSet></Tagging>"])
        else:
            method = rng.choice(["GET", "PUT", "POST", "DELETE", "HEAD"])
    return Case("s3", method, path, headers, body, service="s3")
