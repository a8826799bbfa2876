"""Adapter from a batch scorer to TRL's reward-function contract (``GRPOTrainer(reward_funcs=...)``).

TRL calls each reward function as ``f(prompts=..., completions=..., completion_ids=...,
trainer_state=..., **dataset_columns)``, with one list entry per generated completion, and
expects ``list[float]`` back. Prompts and completions are plain strings for "standard"
datasets and lists of chat messages for conversational ones. TRL turns ``None``/NaN rewards
into "missing" (it aggregates reward functions with ``nansum``), which is what a failed
item should be: a broken judge reply or a crashed handler must not be read as a real 0.

This module depends on nothing from TRL: the contract is plain Python, so it is tested
without installing TRL.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from airegistry.runtime.rewards import RewardOutcome

__all__ = ["RewardBatchError", "make_trl_reward_function"]

logger = logging.getLogger(__name__)

OnError = Literal["nan", "raise", "zero"]

# Keyword arguments TRL passes that are not dataset columns.
_TRL_CONTROL_KWARGS = frozenset({"trainer_state", "log_extra", "log_metric"})


class RewardBatchError(RuntimeError):
    """Some items of a TRL reward batch failed and ``on_error="raise"`` was chosen."""

    def __init__(self, name: str, failures: Sequence[RewardOutcome], total: int) -> None:
        self.failures = list(failures)
        first = failures[0]
        super().__init__(
            f"reward function {name!r}: {len(failures)} of {total} items failed; first: "
            f"item {first.index}: {first.error_type}: {first.error}"
        )


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multimodal content parts
        return "".join(
            part.get("text", "")
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return "" if content is None else str(content)


def _is_conversation(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(m, Mapping) for m in value)


def _last_text(messages: list[Mapping[str, Any]], role: str) -> str:
    for message in reversed(messages):
        if message.get("role") == role:
            return _content_text(message.get("content"))
    # No message with that role (e.g. a completion without a role field): use the last one.
    return _content_text(messages[-1].get("content")) if messages else ""


class _NotPlain(Exception):
    pass


_MAX_DEPTH = 32


def _plain(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON data, or _NotPlain.

    Events travel to reward-function workers (and to Lambda) as JSON-like frames. Dataset
    columns can hold images, tensors or numpy scalars; arrays and numpy numbers are converted,
    anything else cannot be sent and is left out rather than failing the whole batch.
    """
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if depth >= _MAX_DEPTH:
        raise _NotPlain
    if isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _NotPlain
            out[key] = _plain(item, depth + 1)
        return out
    tolist = getattr(value, "tolist", None)  # numpy arrays and scalars, torch tensors
    if callable(tolist):
        try:
            converted = tolist()
        except Exception:
            raise _NotPlain from None
        if converted is not value:
            return _plain(converted, depth + 1)
    raise _NotPlain


def _check_lengths(n: int, name: str, value: Any) -> None:
    if len(value) != n:
        raise ValueError(
            f"TRL passed {len(value)} {name} for {n} completions; they must be the same length"
        )


def make_trl_reward_function(
    score_batch: Callable[[list[dict[str, Any]]], list[RewardOutcome]],
    *,
    name: str,
    on_error: OnError = "nan",
) -> Callable[..., list[float]]:
    """Wrap ``score_batch`` (events in, outcomes out, in order) as a TRL reward function.

    Each completion becomes an event with ``"response"`` (the completion text; the last
    assistant message for conversational completions), ``"prompt"`` (the prompt text; the
    last user message for conversational prompts), ``"prompt_messages"`` and
    ``"completion_messages"`` (the raw conversations, when conversational) and every
    dataset column. ``completion_ids`` are accepted but not forwarded: token ids are large
    and reward functions score text. Values are passed as JSON data (numpy/torch values are
    converted); values that are not data (images, arbitrary objects) are left out, with a
    warning, because events must cross a process boundary. The event keys
    listed here win over dataset columns of the same name.

    ``on_error`` decides what a failed item becomes: ``"nan"`` (TRL ignores it; a warning
    per batch names the count and the first error), ``"zero"`` (0.0, also warned about) or
    ``"raise"`` (RewardBatchError). A failure of ``score_batch`` itself always propagates.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("a TRL reward function needs a non-empty name (TRL logs rewards by it)")
    if on_error not in ("nan", "raise", "zero"):
        raise ValueError(f"on_error must be 'nan', 'raise' or 'zero', got {on_error!r}")

    def reward_function(
        prompts: Sequence[Any] | None = None,
        completions: Sequence[Any] | None = None,
        completion_ids: Sequence[Any] | None = None,
        **kwargs: Any,
    ) -> list[float]:
        if completions is None:
            raise TypeError(f"reward function {name!r} needs completions=[...]")
        completions = list(completions)
        n = len(completions)
        if prompts is not None:
            _check_lengths(n, "prompts", prompts)
        if completion_ids is not None:
            _check_lengths(n, "completion_ids", completion_ids)
        # Dataset columns arrive as lists with one value per completion; anything else
        # (trainer_state, logging hooks, future TRL additions) is not ours to forward.
        columns = {
            key: value
            for key, value in kwargs.items()
            if key not in _TRL_CONTROL_KWARGS
            and isinstance(value, (list, tuple))
            and len(value) == n
        }

        events: list[dict[str, Any]] = []
        left_out: set[str] = set()

        def put(event: dict[str, Any], key: str, value: Any) -> None:
            try:
                event[key] = _plain(value)
            except _NotPlain:
                left_out.add(key)

        for i, completion in enumerate(completions):
            event: dict[str, Any] = {}
            for key, column in columns.items():
                put(event, key, column[i])
            if prompts is not None:
                prompt = prompts[i]
                if _is_conversation(prompt):
                    event["prompt"] = _last_text(prompt, "user")
                    put(event, "prompt_messages", prompt)
                else:
                    event["prompt"] = _content_text(prompt)
            if _is_conversation(completion):
                event["response"] = _last_text(completion, "assistant")
                put(event, "completion_messages", completion)
            else:
                event["response"] = _content_text(completion)
            events.append(event)
        if left_out:
            logger.warning(
                "reward function %r: %s hold values that are not JSON data (images, tensors, "
                "objects) and were left out of the events",
                name,
                ", ".join(sorted(left_out)),
            )

        if not events:
            return []
        outcomes = score_batch(events)
        if len(outcomes) != n:
            raise RuntimeError(
                f"reward function {name!r}: scorer returned {len(outcomes)} results for {n} items"
            )
        ordered = sorted(outcomes, key=lambda o: o.index)
        if [o.index for o in ordered] != list(range(n)):
            raise RuntimeError(
                f"reward function {name!r}: scorer returned results for the wrong items"
            )
        rewards: list[float] = []
        failures: list[RewardOutcome] = []
        for outcome in ordered:
            if outcome.ok and outcome.reward is not None and math.isfinite(outcome.reward):
                rewards.append(float(outcome.reward))
                continue
            failures.append(outcome)
            rewards.append(math.nan if on_error == "nan" else 0.0)
        if failures:
            if on_error == "raise":
                raise RewardBatchError(name, failures, n)
            first = failures[0]
            logger.warning(
                "reward function %r: %d of %d items failed and count as %s; first: item %d: %s: %s",
                name,
                len(failures),
                n,
                "NaN (ignored by TRL)" if on_error == "nan" else "0.0",
                first.index,
                first.error_type,
                first.error,
            )
        return rewards

    reward_function.__name__ = name
    reward_function.__qualname__ = name
    return reward_function
