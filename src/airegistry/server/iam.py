"""IAM over the query protocol: every action is refused the way AWS refuses a caller
that holds no IAM permissions.

Clients such as the SageMaker SDK probe ``GetRole`` / ``SimulatePrincipalPolicy``
and carry on when told ``AccessDenied``; an unknown-operation or 5xx answer would make
them fail instead. The server has no IAM, so the honest answer is "not authorised".
"""

from __future__ import annotations

from airegistry.server.sts import caller_arn, query_error

IAM_NS = "https://iam.amazonaws.com/doc/2010-05-08/"


def handle_iam(action: str | None, params: dict[str, str], *, account_id: str,
               access_key: str | None, request_id: str) -> tuple[int, bytes]:
    """(status, XML body) for one IAM action; always 403 AccessDenied (400 if no action)."""
    if not action:
        return 400, query_error(IAM_NS, "MissingAction", "Missing Action parameter", request_id)
    resource = params.get("RoleName") or params.get("PolicySourceArn") or "*"
    if action == "GetRole" and "RoleName" in params:
        resource = f"arn:aws:iam::{account_id}:role/{params['RoleName']}"
    message = (
        f"User: {caller_arn(account_id, access_key)} is not authorized to perform: "
        f"iam:{action} on resource: {resource} because no identity-based policy allows the "
        f"iam:{action} action"
    )
    return 403, query_error(IAM_NS, "AccessDenied", message, request_id)
