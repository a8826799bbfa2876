"""Tags of hubs and hub content versions (AddTags, ListTags, DeleteTags).

Tags are stored as the AWS ``Tags`` list on the resource's row; a change is one
read-modify-write transaction of the repository, so concurrent AddTags do not lose
each other's keys. At most 50 tags per resource, as in the service model's limits.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from airegistry.hub.botocore_model import OperationError
from airegistry.hub.versions import format_version, parse_version
from airegistry.storage.metadata import hubs as repo_errors
from airegistry.storage.metadata.hubs import HubRepository

MAX_TAGS = 50


class HubTags:
    def __init__(self, repository: HubRepository, *, account_id: str, region: str) -> None:
        self.repo = repository
        self._prefix = f"arn:aws:sagemaker:{region}:{account_id}:"

    def _tag_target(self, arn: str) -> tuple[str, Any]:
        prefix = self._prefix
        if arn.startswith(prefix + "hub/"):
            return "hub", arn[len(prefix) + 4 :]
        if arn.startswith(prefix + "hub-content/"):
            parts = arn[len(prefix) + 12 :].split("/")
            if len(parts) == 4:
                return "content", (parts[0], parts[1], parts[2], parse_version(parts[3]))
        raise OperationError("ResourceNotFound", f"Resource {arn} does not exist.")

    def _tags_call(self, arn: str, call: Callable[[tuple[str, Any]], Any]) -> Any:
        target = self._tag_target(arn)
        try:
            return call(target)
        except repo_errors.HubNotFound as exc:
            raise OperationError("ResourceNotFound", f"Hub {exc.args[0]} does not exist.") from None
        except repo_errors.ContentNotFound:
            _, (hub, content_type, name, version) = target
            raise OperationError(
                "ResourceNotFound",
                f"{content_type} {name} version {format_version(version)} does not exist in hub "
                f"{hub}.",
            ) from None

    def add_tags(self, params: dict) -> dict:
        def merge(current: str) -> str:
            merged = {t["Key"]: t.get("Value", "") for t in json.loads(current)}
            merged.update({t["Key"]: t.get("Value", "") for t in params["Tags"]})
            if len(merged) > MAX_TAGS:
                raise OperationError(
                    "ValidationException", f"A resource can have at most {MAX_TAGS} tags.")
            return json.dumps([{"Key": k, "Value": v} for k, v in merged.items()])

        self._tags_call(params["ResourceArn"], lambda t: self.repo.change_tags(t, merge))
        return {"Tags": params["Tags"]}

    def list_tags(self, params: dict) -> dict:
        return {"Tags": json.loads(self._tags_call(params["ResourceArn"], self.repo.get_tags))}

    def delete_tags(self, params: dict) -> dict:
        drop = set(params["TagKeys"])

        def remove(current: str) -> str:
            return json.dumps([t for t in json.loads(current) if t["Key"] not in drop])

        self._tags_call(params["ResourceArn"], lambda t: self.repo.change_tags(t, remove))
        return {}
