"""Dataset statistics carried in the hub content's markdown.

The service model has no field for import statistics, and they must reach remote
clients through the same wire as everything else. HubContentMarkdown is the content's
human-readable page, so the statistics go there twice: as a table people read in any
client, and as one machine-readable comment line the SDK parses back.
"""

from __future__ import annotations

import json
import re
from typing import Any

_MARKER = "<!-- airegistry:stats "
_SECTION = "\n\n## Dataset statistics (airegistry)\n"
_STATS_RE = re.compile(r"<!-- airegistry:stats (\{.*?\}) -->", re.DOTALL)


def render_stats_markdown(existing: str | None, stats: dict[str, Any]) -> str:
    base = strip_stats_markdown(existing or "")
    lines = [
        "| rows | bytes | format | technique | warnings | errors |",
        "|---:|---:|---|---|---:|---:|",
        f"| {stats.get('rows')} | {stats.get('bytes')} | {stats.get('format')} | "
        f"{stats.get('technique') or '-'} | {stats.get('warning_count', 0)} | "
        f"{stats.get('error_count', 0)} |",
    ]
    fields = stats.get("stats") or {}
    if fields:
        lines += ["", "| field | count | min chars | mean chars | max chars |", "|---|---:|---:|---:|---:|"]
        for name, field in fields.items():
            lines.append(
                f"| {name} | {field.get('count')} | {field.get('min_chars')} | "
                f"{round(field.get('mean_chars') or 0, 1)} | {field.get('max_chars')} |"
            )
    blob = json.dumps(stats, separators=(",", ":"), default=str).replace("-->", "--\\u003e")
    return base + _SECTION + "\n".join(lines) + f"\n\n{_MARKER}{blob} -->\n"


def strip_stats_markdown(markdown: str) -> str:
    index = markdown.find(_SECTION)
    return markdown if index < 0 else markdown[:index]


def parse_stats_markdown(markdown: str | None) -> dict[str, Any] | None:
    if not markdown:
        return None
    match = _STATS_RE.search(markdown)
    if not match:
        return None
    try:
        value = json.loads(match[1])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
