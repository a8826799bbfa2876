"""STS over the query protocol: ``GetCallerIdentity`` for the caller's access key.

Clients (the SageMaker SDK, boto3 helpers, the AWS CLI's ``sts get-caller-identity``)
call this to learn the account and their own ARN. The server has no users or roles;
every access key acts as the session ``<access-key-id>`` of one role named
``airegistry``, so ARNs are stable and name the key that made the call.
"""

from __future__ import annotations

from airegistry.server.s3_xml import text

STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
ROLE_NAME = "airegistry"
ANONYMOUS = "anonymous"


def caller_arn(account_id: str, access_key: str | None) -> str:
    return f"arn:aws:sts::{account_id}:assumed-role/{ROLE_NAME}/{access_key or ANONYMOUS}"


def query_error(namespace: str, code: str, message: str, request_id: str,
                kind: str = "Sender") -> bytes:
    """The query protocol's ``<ErrorResponse>`` document (STS and IAM share it)."""
    return (
        f'<ErrorResponse xmlns="{namespace}"><Error><Type>{kind}</Type>'
        f"<Code>{text(code)}</Code><Message>{text(message)}</Message></Error>"
        f"<RequestId>{text(request_id)}</RequestId></ErrorResponse>"
    ).encode()


def handle_sts(action: str | None, *, account_id: str, access_key: str | None,
               request_id: str) -> tuple[int, bytes]:
    """Answer one STS action: (status, XML body)."""
    if action == "GetCallerIdentity":
        who = access_key or ANONYMOUS
        body = (
            f'<GetCallerIdentityResponse xmlns="{STS_NS}"><GetCallerIdentityResult>'
            f"<Arn>{text(caller_arn(account_id, access_key))}</Arn>"
            f"<UserId>{text('AROAAIREGISTRY0000000:' + who)}</UserId>"
            f"<Account>{text(account_id)}</Account>"
            f"</GetCallerIdentityResult><ResponseMetadata><RequestId>{text(request_id)}"
            f"</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
        )
        return 200, body.encode()
    if not action:
        return 400, query_error(STS_NS, "MissingAction", "Missing Action parameter", request_id)
    return 400, query_error(
        STS_NS, "InvalidAction", f"Could not find operation {action} for version 2011-06-15",
        request_id,
    )
