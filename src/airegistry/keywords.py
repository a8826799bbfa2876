"""Search keywords: how list results carry what a list item needs without extra requests.

Hub search keywords may not contain upper-case letters (the model's pattern is
``[^A-Z]*``) and are at most 255 characters. Values such as S3 URIs can hold upper-case
letters, so they are stored percent-encoded (``%`` and upper-case letters escaped),
which round-trips exactly; values too long for a keyword are simply not indexed.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MAX_KEYWORD = 255
_ESCAPE_RE = re.compile(r"[%A-Z]")


def encode_value(value: str) -> str:
    return _ESCAPE_RE.sub(lambda m: f"%{ord(m[0]):02x}", value)


def decode_value(value: str) -> str:
    return unquote(value)


def keyword(prefix: str, value: str) -> str | None:
    text = prefix + encode_value(value)
    return text if len(text) <= MAX_KEYWORD else None


def find(keywords: list[str] | None, prefix: str) -> str | None:
    for item in keywords or ():
        if item.startswith(prefix):
            return decode_value(item[len(prefix) :])
    return None


def tag_keywords(tags: list[dict[str, str]]) -> list[str]:
    """Tags are also searchable as ``key:value`` keywords (lower-cased, as keywords must be)."""
    out = []
    for tag in tags:
        text = f"{tag['Key']}:{tag.get('Value', '')}".lower()
        if len(text) <= MAX_KEYWORD:
            out.append(text)
    return out
