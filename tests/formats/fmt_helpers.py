"""Small builders shared by the formats tests (rows for every format, file writers)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

MSGS = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is 2+2?"},
    {"role": "assistant", "content": "4"},
]

GOOD: dict[str, dict[str, Any]] = {
    "prompt_completion": {"prompt": "Say hi", "completion": "hi", "id": 1},
    "input_output": {"input": "2+2", "output": "4"},
    "chat": {"messages": MSGS},
    "converse": {
        "schemaVersion": "bedrock-conversation-2024",
        "system": [{"text": "be brief"}],
        "messages": [
            {"role": "user", "content": [{"text": "hello"}]},
            {"role": "assistant", "content": [{"text": "hi"}]},
        ],
    },
    "preference": {"prompt": "Pick", "chosen": "good", "rejected": "bad"},
    "converse_preference": {
        "system": [{"text": "be brief"}],
        "messages": [
            {"role": "user", "content": [{"text": "hello"}]},
            {
                "role": "assistant",
                "candidates": [
                    {"content": [{"text": "hi"}], "preferenceLabel": "preferred"},
                    {"content": [{"text": "go away"}], "preferenceLabel": "non-preferred"},
                ],
            },
        ],
    },
    "prompt_only": {"prompt": "Write a haiku"},
    "verl": {
        "prompt": [{"role": "user", "content": "1+1?"}],
        "data_source": "gsm8k",
        "ability": "math",
        "reward_model": {"ground_truth": "2", "style": "rule"},
        "extra_info": {"split": "train"},
    },
    "prompt_samples": {"prompt": "1+1?", "samples": [{"completion": "2", "score": 1}]},
    "genqa": {"query": "What is the capital of France?", "response": "Paris"},
}

TECHNIQUE_OF = {
    "prompt_completion": ["sft", None],
    "input_output": ["sft", None],
    "chat": ["sft", "rlaif", "rlvr", None],
    "converse": ["sft", None],
    "preference": ["dpo", None],
    "converse_preference": ["dpo", None],
    "prompt_only": ["rlaif", "rlvr", None],
    "verl": ["rlvr", "rlaif", None],
    "prompt_samples": ["rlvr", None],
    "genqa": [None],
}


def jsonl(rows: list[Any]) -> bytes:
    return b"".join(json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in rows)


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    p = tmp_path / name
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


class OneWayStream(io.RawIOBase):
    """A non-seekable binary stream returning small, irregular reads (like a socket)."""

    def __init__(self, data: bytes, fail_after: int | None = None, step: int = 7777) -> None:
        self._data = data
        self._pos = 0
        self._fail_after = fail_after
        self._step = step

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def read(self, n: int = -1) -> bytes:
        if self._fail_after is not None and self._pos >= self._fail_after:
            raise ConnectionResetError("connection reset by peer")
        n = min(n if n >= 0 else len(self._data), self._step)
        out = self._data[self._pos : self._pos + n]
        self._pos += len(out)
        return out
