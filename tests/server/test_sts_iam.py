"""STS GetCallerIdentity and IAM's deny-everything answers, through boto3."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from botocore.exceptions import ClientError

from tests.server.conftest import ACCOUNT_ID, RunningServer, sign_headers

EMPTY = hashlib.sha256(b"").hexdigest()


def test_get_caller_identity(server: RunningServer) -> None:
    ident = server.client("sts").get_caller_identity()
    assert ident["Account"] == ACCOUNT_ID
    assert ident["Arn"] == f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/airegistry/{server.access_key}"
    assert ident["UserId"].endswith(f":{server.access_key}")


def test_get_caller_identity_via_get(server: RunningServer) -> None:
    """The query protocol also arrives as GET with the action in the query string."""
    query = "Action=GetCallerIdentity&Version=2011-06-15"
    headers = sign_headers(server, "GET", "/", headers={}, payload_hash=EMPTY, service="sts",
                           query=query)
    r = httpx.get(f"{server.url}/?{query}", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    assert f"<Account>{ACCOUNT_ID}</Account>" in r.text
    r = httpx.get(f"{server.url}/?{query}", timeout=30)
    assert r.status_code == 403  # unsigned: refused in STS's XML error format
    assert "<ErrorResponse" in r.text and "MissingAuthenticationToken" in r.text


def test_unsupported_sts_action(server: RunningServer) -> None:
    with pytest.raises(ClientError) as exc:
        server.client("sts").get_session_token()
    assert exc.value.response["Error"]["Code"] == "InvalidAction"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


@pytest.mark.parametrize("call", ["get_role", "simulate_principal_policy", "list_roles"])
def test_iam_answers_access_denied(server: RunningServer, call: str) -> None:
    iam = server.client("iam")
    kwargs = {
        "get_role": {"RoleName": "SageMakerRole"},
        "simulate_principal_policy": {
            "PolicySourceArn": f"arn:aws:iam::{ACCOUNT_ID}:role/x", "ActionNames": ["s3:GetObject"]},
        "list_roles": {},
    }[call]
    with pytest.raises(ClientError) as exc:
        getattr(iam, call)(**kwargs)
    err = exc.value.response["Error"]
    assert err["Code"] == "AccessDenied"
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert f"iam:{call.title().replace('_', '')}" in err["Message"]


def test_iam_wrong_signature_is_signature_error(server: RunningServer) -> None:
    iam = server.client("iam", secret_key="w" * 40)
    with pytest.raises(ClientError) as exc:
        iam.get_role(RoleName="r")
    assert exc.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
