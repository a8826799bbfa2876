"""AIRHub: the low-level hub operations of the seed, on whichever backend the session picks.

Responses are the service model's shapes (PascalCase keys, timezone-aware datetimes):
the hub port is a boto3 ``sagemaker`` client in every mode, so these methods only fill
in the hub name and normalise arguments.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from airegistry.keywords import tag_keywords
from airegistry.session import Session, resolve_session


def normalize_tags(tags: Iterable[Any] | None) -> list[dict[str, str]]:
    """Tags as AWS dicts, from ``{"Key","Value"}`` dicts or ``(key, value)`` pairs."""
    out: list[dict[str, str]] = []
    for tag in tags or ():
        if isinstance(tag, Mapping):
            if "Key" not in tag:
                raise ValueError(f"A tag needs a 'Key': {dict(tag)!r}")
            out.append({"Key": str(tag["Key"]), "Value": str(tag.get("Value", ""))})
        elif isinstance(tag, tuple | list) and len(tag) == 2:
            out.append({"Key": str(tag[0]), "Value": str(tag[1])})
        else:
            raise ValueError(f"A tag must be a {{'Key','Value'}} dict or a (key, value) pair: {tag!r}")
    return out


class AIRHub:
    """Central hub client for AI Registry content operations."""

    @classmethod
    def get_hub_name(cls, session: Session | None = None) -> str:
        return resolve_session(session).hub_name

    @classmethod
    def _client(cls, session: Session | None) -> tuple[Any, str]:
        session = resolve_session(session)
        return session.sagemaker_client, session.ensure_hub()

    @classmethod
    def import_hub_content(
        cls,
        hub_content_type: str,
        hub_content_name: str,
        document_schema_version: str,
        hub_content_document: Mapping[str, Any] | str,
        hub_content_version: str | None = None,
        tags: Iterable[Any] | None = None,
        session: Session | None = None,
        *,
        hub_content_search_keywords: Iterable[str] | None = None,
        hub_content_description: str | None = None,
        hub_content_display_name: str | None = None,
        hub_content_markdown: str | None = None,
    ) -> dict[str, Any]:
        client, hub = cls._client(session)
        document = (
            hub_content_document
            if isinstance(hub_content_document, str)
            else json.dumps(hub_content_document)
        )
        aws_tags = normalize_tags(tags)
        keywords = list(dict.fromkeys([*(hub_content_search_keywords or ()), *tag_keywords(aws_tags)]))
        params: dict[str, Any] = {
            "HubName": hub,
            "HubContentType": hub_content_type,
            "HubContentName": hub_content_name,
            "DocumentSchemaVersion": document_schema_version,
            "HubContentDocument": document,
        }
        optional = {
            "HubContentVersion": hub_content_version,
            "HubContentDescription": hub_content_description,
            "HubContentDisplayName": hub_content_display_name,
            "HubContentMarkdown": hub_content_markdown,
        }
        params.update({k: v for k, v in optional.items() if v is not None})
        if keywords:
            params["HubContentSearchKeywords"] = keywords
        if aws_tags:
            params["Tags"] = aws_tags
        return client.import_hub_content(**params)

    @classmethod
    def list_hub_content(
        cls,
        hub_content_type: str,
        max_results: int = 100,
        next_token: str | None = None,
        session: Session | None = None,
        **filters: Any,
    ) -> dict[str, Any]:
        client, hub = cls._client(session)
        params: dict[str, Any] = {
            "HubName": hub,
            "HubContentType": hub_content_type,
            "MaxResults": max_results,
            **filters,
        }
        if next_token:
            params["NextToken"] = next_token
        return client.list_hub_contents(**params)

    @classmethod
    def describe_hub_content(
        cls,
        hub_content_type: str,
        hub_content_name: str,
        hub_content_version: str | None = None,
        session: Session | None = None,
    ) -> dict[str, Any]:
        client, hub = cls._client(session)
        params = {
            "HubName": hub,
            "HubContentType": hub_content_type,
            "HubContentName": hub_content_name,
        }
        if hub_content_version:
            params["HubContentVersion"] = hub_content_version
        return client.describe_hub_content(**params)

    @classmethod
    def delete_hub_content(
        cls,
        hub_content_type: str,
        hub_content_name: str,
        hub_content_version: str,
        session: Session | None = None,
    ) -> None:
        client, hub = cls._client(session)
        client.delete_hub_content(
            HubName=hub,
            HubContentType=hub_content_type,
            HubContentName=hub_content_name,
            HubContentVersion=hub_content_version,
        )

    @classmethod
    def list_hub_content_versions(
        cls,
        hub_content_type: str,
        hub_content_name: str,
        session: Session | None = None,
    ) -> list[dict[str, Any]]:
        """Every version, newest first (all pages)."""
        client, hub = cls._client(session)
        out: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {
                "HubName": hub,
                "HubContentType": hub_content_type,
                "HubContentName": hub_content_name,
                "MaxResults": 100,
            }
            if token:
                params["NextToken"] = token
            page = client.list_hub_content_versions(**params)
            out.extend(page.get("HubContentSummaries", []))
            token = page.get("NextToken")
            if not token:
                return out
