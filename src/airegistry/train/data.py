"""Registry rows → TRL's dataset formats.

Each registry format (FORMATS.md) maps onto one of TRL's: prompt-completion and
conversational language modelling for SFT, preference for DPO, prompt-only for GRPO.
Text content parts become plain text; images and video cannot be trained on by these
text-only trainers and are refused with the row number. For the RL techniques every
converted row carries ``_airegistry_row``, its position in the dataset, so that reward
functions see the row's own columns exactly as stored (``answer``,
``reward_model.ground_truth``, ``samples``, …) instead of what Arrow makes of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ROW_INDEX_COLUMN = "_airegistry_row"

ACCEPTED_FORMATS: dict[str, tuple[str, ...]] = {
    "sft": ("prompt_completion", "input_output", "chat", "converse"),
    "dpo": ("preference", "converse_preference"),
    "rlvr": ("prompt_only", "verl", "chat", "prompt_samples"),
    "rlaif": ("prompt_only", "verl", "chat", "prompt_samples"),
}

Messages = list[dict[str, str]]


class RowError(ValueError):
    pass


def _text(content: Any, row: int, what: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if not isinstance(part, Mapping):
                raise RowError(f"row {row}: {what} holds a content part that is not an object")
            if "text" in part and isinstance(part["text"], str):
                texts.append(part["text"])
            elif part.get("type") == "refusal":
                texts.append(str(part.get("refusal", "")))
            else:
                kind = part.get("type") or next(iter(part), "?")
                raise RowError(
                    f"row {row}: {what} holds {kind!r} content; the local trainers train on text only"
                )
        return "".join(texts)
    raise RowError(f"row {row}: {what} must be text or content parts, got {type(content).__name__}")


def _messages(messages: Any, row: int) -> Messages:
    return [
        {"role": str(m.get("role")), "content": _text(m.get("content"), row, f"message {i}")}
        for i, m in enumerate(messages)
    ]


def _converse_messages(record: Mapping[str, Any], row: int) -> Messages:
    out: Messages = []
    system = record.get("system") or []
    if system:
        out.append({"role": "system", "content": "\n".join(s["text"] for s in system)})
    for i, message in enumerate(record["messages"]):
        if "content" in message:
            out.append({"role": message["role"],
                        "content": _text(message["content"], row, f"message {i}")})
    return out


def _as_conversation(value: Any, role: str, row: int) -> Messages:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    return _messages(value, row)


def _pair(prompt: Any, answer: Any, row: int) -> dict[str, Any]:
    """Both sides plain text, or both conversations (TRL does not mix them in one row)."""
    if isinstance(prompt, str) and isinstance(answer, str):
        return {"prompt": prompt, "completion": answer}
    return {"prompt": _as_conversation(prompt, "user", row),
            "completion": _as_conversation(answer, "assistant", row)}


def _sft(record: Mapping[str, Any], fmt: str, row: int) -> dict[str, Any]:
    if fmt == "prompt_completion":
        return _pair(record["prompt"], record["completion"], row)
    if fmt == "input_output":
        return {"prompt": record["input"], "completion": record["output"]}
    if fmt == "chat":
        return {"messages": _messages(record["messages"], row)}
    return {"messages": _converse_messages(record, row)}


def _dpo(record: Mapping[str, Any], fmt: str, row: int) -> dict[str, Any]:
    if fmt == "preference":
        prompt = record.get("prompt", record.get("input"))
        chosen, rejected = record["chosen"], record["rejected"]
        if all(isinstance(v, str) for v in (prompt, chosen, rejected)):
            return {"prompt": prompt, "chosen": chosen, "rejected": rejected}
        return {
            "prompt": _as_conversation(prompt, "user", row),
            "chosen": _as_conversation(chosen, "assistant", row),
            "rejected": _as_conversation(rejected, "assistant", row),
        }
    context = _converse_messages(record, row)
    for message in record["messages"]:
        candidates = message.get("candidates")
        if candidates:
            by_label = {c["preferenceLabel"]: c for c in candidates}
            return {
                "prompt": context,
                "chosen": [{"role": "assistant", "content": _text(
                    by_label["preferred"]["content"], row, "preferred candidate")}],
                "rejected": [{"role": "assistant", "content": _text(
                    by_label["non-preferred"]["content"], row, "non-preferred candidate")}],
            }
    raise RowError(f"row {row}: no assistant message with candidates")


def _prompt_only(record: Mapping[str, Any], fmt: str, row: int) -> dict[str, Any]:
    if fmt == "chat":
        messages = _messages(record["messages"], row)
        while messages and messages[-1]["role"] == "assistant":
            messages.pop()  # the model writes the answer
        if not messages:
            raise RowError(f"row {row}: a chat row needs a message before the assistant's")
        prompt: Any = messages
    else:
        prompt = record["prompt"]
        prompt = prompt if isinstance(prompt, str) else _messages(prompt, row)
    return {"prompt": prompt, ROW_INDEX_COLUMN: row - 1}


_CONVERTERS = {"sft": _sft, "dpo": _dpo, "rlvr": _prompt_only, "rlaif": _prompt_only}


def to_trl_rows(rows: list[Mapping[str, Any]], fmt: str, technique: str) -> list[dict[str, Any]]:
    """Convert every row (numbered from 1 in errors, like the validator's line numbers)."""
    if fmt not in ACCEPTED_FORMATS[technique]:
        raise ValueError(
            f"{technique.upper()} cannot train on {fmt} data; it takes "
            f"{', '.join(ACCEPTED_FORMATS[technique])}"
        )
    convert = _CONVERTERS[technique]
    out = [convert(record, fmt, i) for i, record in enumerate(rows, 1)]
    if not out:
        raise ValueError("the training dataset has no rows")
    return out


def is_conversational(rows: list[dict[str, Any]]) -> bool:
    first = rows[0] if rows else {}
    return "messages" in first or isinstance(first.get("prompt"), list)


def prompt_text(record: Mapping[str, Any], fmt: str) -> str:
    """The prompt of a stored row as plain text (reward validation events)."""
    if fmt == "chat":
        users = [m for m in record["messages"] if m.get("role") == "user"]
        return _text(users[-1]["content"], 0, "message") if users else ""
    prompt = record.get("prompt", "")
    if isinstance(prompt, str):
        return prompt
    users = [m for m in prompt if m.get("role") == "user"]
    return _text(users[-1]["content"], 0, "message") if users else ""


def reference_response(record: Mapping[str, Any]) -> str:
    """A plausible response for reward validation: the row's own reference, if it has one."""
    for key in ("completion", "response", "answer", "solution"):
        value = record.get(key)
        if isinstance(value, str) and value:
            return value
    reward_model = record.get("reward_model")
    if isinstance(reward_model, Mapping) and reward_model.get("ground_truth") is not None:
        return str(reward_model["ground_truth"])
    samples = record.get("samples")
    if isinstance(samples, list) and samples and isinstance(samples[0], Mapping):
        return str(samples[0].get("completion", ""))
    return ""
