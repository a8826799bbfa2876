"""How a dataset row looks on a page, per format, and what a failure reason says.

Rows become small view objects (blocks of text, conversations, two sides of a
preference) that the templates lay out; the templates escape every string, so nothing
here needs to think about HTML. Shapes follow docs/formats.md; a row that does not have
the shape its format promises falls back to readable JSON rather than failing the page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from airegistry.formats.detect import looks_like

#: Keys whose string values the import statistics measure (see formats/texts.py).
TEXT_KEYS = frozenset({"prompt", "completion", "chosen", "rejected", "input", "output", "query",
                       "content", "text", "response", "system"})


@dataclass
class Part:
    kind: str  # "text" | "media" | "json"
    text: str


@dataclass
class Message:
    role: str
    parts: list[Part]
    label: str | None = None  # e.g. "preferred" on a Converse candidate


@dataclass
class Block:
    label: str
    parts: list[Part] = field(default_factory=list)
    messages: list[Message] | None = None


@dataclass
class RowView:
    layout: str  # "blocks" | "conversation" | "sides" | "json"
    format: str | None
    blocks: list[Block] = field(default_factory=list)
    conversation: list[Message] = field(default_factory=list)
    sides: list[Block] = field(default_factory=list)
    extras: str | None = None
    json: str | None = None


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def _parts(content: Any) -> list[Part]:
    """Message content: a string, OpenAI content parts, or Bedrock Converse blocks."""
    if isinstance(content, str):
        return [Part("text", content)]
    if isinstance(content, list):
        out: list[Part] = []
        for item in content:
            if isinstance(item, dict) and isinstance(item.get("text"), str):
                out.append(Part("text", item["text"]))
            elif isinstance(item, dict):
                kind = item.get("type") or next(iter(item), "part")
                out.append(Part("media", f"[{kind}]"))
            else:
                out.append(Part("json", pretty(item)))
        return out
    return [Part("json", pretty(content))]


def _message(m: Any, label: str | None = None) -> Message:
    if not isinstance(m, dict):
        return Message("?", [Part("json", pretty(m))])
    parts = _parts(m.get("content", ""))
    for extra in ("tool_calls", "toolUse", "toolResult", "name", "tool_call_id"):
        if extra in m:
            parts.append(Part("json", pretty({extra: m[extra]})))
    return Message(str(m.get("role", "?")), parts, label)


def _text_or_messages(label: str, value: Any) -> Block:
    if isinstance(value, list) and all(isinstance(m, dict) and "role" in m for m in value):
        return Block(label, messages=[_message(m) for m in value])
    return Block(label, parts=_parts(value) if isinstance(value, str) else [Part("json", pretty(value))])


def _extras(row: dict, used: set[str]) -> str | None:
    rest = {k: v for k, v in row.items() if k not in used}
    return pretty(rest) if rest else None


def row_view(value: Any, format_name: str | None = None) -> RowView:
    """The layout of one row; ``format_name`` is the dataset's (detected per row if None)."""
    if not isinstance(value, dict):
        return RowView("json", None, json=pretty(value))
    fmt = format_name or looks_like(value)
    try:
        view = _shaped(value, fmt)
    except (TypeError, AttributeError, KeyError):
        view = None
    return view or RowView("json", fmt, json=pretty(value))


def _shaped(row: dict, fmt: str | None) -> RowView | None:
    if fmt == "prompt_completion" and "prompt" in row and "completion" in row:
        blocks = [_text_or_messages("prompt", row["prompt"]),
                  _text_or_messages("completion", row["completion"])]
        return RowView("blocks", fmt, blocks=blocks, extras=_extras(row, {"prompt", "completion"}))
    if fmt == "input_output" and "input" in row and "output" in row:
        blocks = [_text_or_messages("input", row["input"]), _text_or_messages("output", row["output"])]
        return RowView("blocks", fmt, blocks=blocks, extras=_extras(row, {"input", "output"}))
    if fmt in ("chat", "converse") and isinstance(row.get("messages"), list):
        conversation = []
        system = row.get("system")
        if isinstance(system, list):
            conversation.append(Message("system", _parts(system)))
        elif isinstance(system, str):
            conversation.append(Message("system", [Part("text", system)]))
        conversation += [_message(m) for m in row["messages"]]
        return RowView("conversation", fmt, conversation=conversation,
                       extras=_extras(row, {"messages", "system"}))
    if fmt == "preference" and "chosen" in row and "rejected" in row:
        key = "prompt" if "prompt" in row else "input"
        blocks = [_text_or_messages(key, row[key])] if key in row else []
        sides = [_text_or_messages("chosen", row["chosen"]),
                 _text_or_messages("rejected", row["rejected"])]
        return RowView("sides", fmt, blocks=blocks, sides=sides,
                       extras=_extras(row, {"prompt", "input", "chosen", "rejected"}))
    if fmt == "converse_preference" and isinstance(row.get("messages"), list):
        conversation, sides = [], []
        system = row.get("system")
        if isinstance(system, list):
            conversation.append(Message("system", _parts(system)))
        for m in row["messages"]:
            if isinstance(m, dict) and isinstance(m.get("candidates"), list):
                for c in m["candidates"]:
                    label = str(c.get("preferenceLabel", "candidate")) if isinstance(c, dict) else "?"
                    content = c.get("content", "") if isinstance(c, dict) else c
                    sides.append(Block(label, parts=_parts(content)))
            else:
                conversation.append(_message(m))
        return RowView("sides", fmt, conversation=conversation, sides=sides,
                       extras=_extras(row, {"messages", "system"}))
    return None


def text_lengths(value: Any, key: str = "") -> Iterator[tuple[str, int]]:
    """(statistics key, characters) of every text field, keyed as the import statistics are."""
    if isinstance(value, dict):
        for k, v in value.items():
            sub = f"{key}.{k}" if key else str(k)
            if isinstance(v, str):
                if k in TEXT_KEYS:
                    yield sub, len(v)
            else:
                yield from text_lengths(v, sub)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, str):
                if key.rsplit(".", 1)[-1] in TEXT_KEYS:
                    yield key, len(item)
            else:
                yield from text_lengths(item, key + "[]")


_LINES_RE = re.compile(r"first failing line\(s\): ([\d, ]+)")
_DETAIL_SPLIT = re.compile(r"; (?=(?:line \d+|header)\b)")


def failure_lines(reason: str | None) -> list[int]:
    """The line numbers a validation failure names (the hub keeps the first 20)."""
    match = _LINES_RE.search(reason or "")
    if not match:
        return []
    return [int(n) for n in match[1].replace(" ", "").split(",") if n.isdigit()]


def failure_details(reason: str | None) -> list[str]:
    """The per-line messages of a validation failure ("line 3 $.prompt: ...")."""
    if not reason:
        return []
    match = _LINES_RE.search(reason)
    tail = reason[match.end():] if match else reason
    start = re.search(r"\b(?:line \d+|header)\b", tail)
    if not start:
        return []
    details = tail[start.start():]
    details = re.sub(r"; and \d+ more\.?$|\.$", "", details.strip())
    return [d.strip() for d in _DETAIL_SPLIT.split(details) if d.strip()]
