"""Which format does a row look like?

Detection is by *shape* (which keys are present), not by full validation: a row with
``prompt`` and ``completion`` is a ``prompt_completion`` row even if its completion is an
integer, so that the report can say "``$.completion``: expected str" instead of the
useless "matches no format". The order below goes from the most specific signature to the
least specific one (``prompt_only`` accepts extra keys, so it must come after every format
that also has a ``prompt``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .schemas import FORMATS, allowed_formats

_VERL_KEYS = frozenset({"data_source", "ability", "reward_model", "extra_info"})


def _is_converse_messages(row: Mapping[str, Any], messages: list[Any]) -> bool:
    if "schemaVersion" in row or isinstance(row.get("system"), list):
        return True
    for m in messages:
        if isinstance(m, dict):
            content = m.get("content")
            if isinstance(content, list) and content:
                first = content[0]
                # OpenAI content parts carry "type"; Bedrock blocks are keyed by kind.
                return isinstance(first, dict) and "type" not in first
            return False
    return False


def looks_like(row: Mapping[str, Any]) -> str | None:
    """The format whose signature ``row`` carries, ignoring any technique."""
    if "messages" in row:
        messages = row["messages"]
        if isinstance(messages, list):
            if any(isinstance(m, dict) and "candidates" in m for m in messages):
                return "converse_preference"
            if _is_converse_messages(row, messages):
                return "converse"
        return "chat"
    if "chosen" in row or "rejected" in row:
        return "preference"
    if "prompt" in row:
        if "samples" in row:
            return "prompt_samples"
        if "completion" in row:
            return "prompt_completion"
        if not _VERL_KEYS.isdisjoint(row.keys()):
            return "verl"
    if "input" in row and "output" in row:
        return "input_output"
    if "prompt" in row:
        return "prompt_only"
    if "query" in row:
        return "genqa"
    return None


def technique_label(technique: str | None) -> str:
    return technique.upper() if technique else "any technique"


def detect(row: Mapping[str, Any], technique: str | None) -> tuple[str | None, str]:
    """``(format, "")`` when the row fits a format allowed for ``technique``, else
    ``(None, reason)`` with a message that says what the row looks like instead."""
    name = looks_like(row)
    allowed = allowed_formats(technique)
    if name is None:
        keys = ", ".join(sorted(map(str, row.keys()))[:10]) or "none"
        return None, (
            f"row matches no known dataset format (keys: {keys}); "
            f"{technique_label(technique)} accepts: {', '.join(allowed)}"
        )
    if name not in allowed:
        used_for = ", ".join(t.upper() for t in FORMATS[name].techniques) or "evaluation only"
        return None, (
            f"row looks like format `{name}` ({used_for}), which {technique_label(technique)} "
            f"does not accept; accepted: {', '.join(allowed)}"
        )
    return name, ""


def detect_columns(
    columns: list[str], technique: str | None
) -> tuple[str | None, list[tuple[str, str]]]:
    """Format of a CSV file from its header: ``(format, [])`` or ``(None, [(column, msg)])``.

    Only flat formats can live in a CSV. When the header is close to an accepted format,
    the missing columns are named, which is far more useful than "unknown format".
    """
    present = set(columns)
    allowed = [FORMATS[n] for n in allowed_formats(technique) if FORMATS[n].flat]
    name = looks_like(dict.fromkeys(present, ""))
    if name is not None and not FORMATS[name].flat:
        return None, [("", f"format `{name}` has nested fields and cannot be stored in CSV")]
    if name is not None and any(f.name == name for f in allowed):
        return name, []
    best: tuple[int, list[str], str] | None = None
    for f in allowed:
        need = list(f.csv_required)
        if f.csv_alternatives and present.isdisjoint(f.csv_alternatives):
            need.append(f.csv_alternatives[0])
        missing = [c for c in need if c not in present]
        known = set(f.csv_required) | set(f.csv_optional) | set(f.csv_alternatives)
        overlap = len(known & present)
        if overlap and (best is None or len(missing) < len(best[1])):
            best = (overlap, missing, f.name)
    if best is not None and best[1]:
        return None, [
            (c, f"missing column `{c}` (required by format `{best[2]}`)") for c in best[1]
        ]
    if name is not None:  # a flat format the technique does not accept
        _, reason = detect(dict.fromkeys(present, ""), technique)
        return None, [("", reason)]
    shown = ", ".join(repr(c) for c in columns[:8]) or "nothing"
    expected = "; ".join(",".join(f.csv_required) for f in allowed)
    return None, [
        (
            "",
            f"a header row naming the columns is required; the first row has {shown}, "
            f"expected e.g. {expected}",
        )
    ]
