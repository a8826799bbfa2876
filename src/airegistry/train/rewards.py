"""Rewards for GRPO: the registered evaluator, called once per batch of completions.

Two reward-function contracts are understood:

- ``event`` (the specification's): one event per completion, ``{"prompt", "response",
  <row columns>}`` → ``{"reward", "details"}``; a batch goes to ``Evaluator.score_batch``
  in one call, which runs it on whatever backend the runtime has (warm sandboxed pool,
  Lambda, Ray).
- ``batch`` (the official SDK's): one invocation per batch whose event is a list of
  samples ``{"id", "messages": [... the prompt, {"role": "assistant", ...}],
  <row columns, e.g. reference_answer>}`` and whose result is a list of ``{"id",
  "aggregate_reward_score", "metrics_list"}``.

``contract="auto"`` decides during reward validation: the event contract is tried on the
validation rows first; only when it fails on every row and the batch contract succeeds is
the function taken to speak the batch contract. Without validation, auto means event.
Reward prompts (RLAIF) always use the event contract, scored by the judge.

A failed or timed-out item gets no reward (NaN, which TRL leaves out) and is counted;
a batch in which every item failed stops the training with the reason.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airegistry.evaluator import Evaluator, EvaluatorNotReachableError
from airegistry.runtime.rewards import RewardOutcome, outcome_from_error, outcome_from_payload
from airegistry.runtime.trl import make_trl_reward_function
from airegistry.train.data import ROW_INDEX_COLUMN, prompt_text, reference_response

log = logging.getLogger(__name__)

EVENT = "event"
BATCH = "batch"
CONTRACTS = ("auto", EVENT, BATCH)
VALIDATION_ROWS = 3


class RewardFunctionFailed(RuntimeError):
    """Every completion of a batch failed to get a reward: training cannot go on."""


@dataclass
class RewardStats:
    """Counters the job reports as metrics (thread-safe: TRL may call from several threads)."""

    calls: int = 0
    items: int = 0
    failures: int = 0
    reward_sum: float = 0.0
    error_types: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, outcomes: Sequence[RewardOutcome]) -> None:
        with self._lock:
            self.calls += 1
            self.items += len(outcomes)
            for outcome in outcomes:
                if outcome.ok and outcome.reward is not None and math.isfinite(outcome.reward):
                    self.reward_sum += outcome.reward
                else:
                    self.failures += 1
                    key = outcome.error_type or "Unknown"
                    self.error_types[key] = self.error_types.get(key, 0) + 1

    def metrics(self) -> dict[str, float]:
        with self._lock:
            scored = self.items - self.failures
            out = {"reward_calls": float(self.calls), "reward_items": float(self.items),
                   "reward_failures": float(self.failures)}
            if scored:
                out["mean_reward"] = self.reward_sum / scored
            return out


def _batch_samples(events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    samples = []
    for i, event in enumerate(events):
        prompt = event.get("prompt_messages") or [{"role": "user", "content": event.get("prompt", "")}]
        sample = {k: v for k, v in event.items()
                  if k not in ("prompt", "response", "prompt_messages", "completion_messages",
                               "messages")}
        sample["id"] = str(i)
        sample["messages"] = [*prompt, {"role": "assistant", "content": event.get("response", "")}]
        samples.append(sample)
    return samples


def score_with_batch_contract(evaluator: Evaluator, events: Sequence[Mapping[str, Any]]) -> list[RewardOutcome]:
    """One invocation for the whole batch, results matched back by id."""
    try:
        ok, payload = evaluator.invoke_payload(_batch_samples(events))
    except Exception as exc:
        return [outcome_from_error(i, type(exc).__name__, str(exc)) for i in range(len(events))]
    if not ok:
        payload = payload if isinstance(payload, Mapping) else {}
        kind = str(payload.get("errorType", "Unhandled"))
        message = str(payload.get("errorMessage", ""))
        return [outcome_from_error(i, kind, message) for i in range(len(events))]
    if not isinstance(payload, list):
        message = f"the batch contract returns a list, got {type(payload).__name__}"
        return [outcome_from_error(i, "InvalidRewardValue", message) for i in range(len(events))]
    by_id = {str(item.get("id")): item for item in payload if isinstance(item, Mapping)}
    outcomes = []
    for i in range(len(events)):
        item = by_id.get(str(i))
        if item is None:
            outcomes.append(outcome_from_error(i, "InvalidRewardValue", f"no result for sample id {i}"))
            continue
        outcomes.append(outcome_from_payload(
            i, {"reward": item.get("aggregate_reward_score"), "details": item.get("metrics_list")},
            item_id=str(i),
        ))
    return outcomes


class RewardScorer:
    """The TRL reward function of one training run."""

    def __init__(
        self,
        evaluator: Evaluator,
        contract: str,
        rows: Sequence[Mapping[str, Any]],
        *,
        judge_options: Mapping[str, Any] | None = None,
        batch_size: int = 0,
    ) -> None:
        self.evaluator = evaluator
        self.contract = contract
        self.rows = rows
        self.judge_options = dict(judge_options or {})
        self.batch_size = batch_size
        self.stats = RewardStats()

    def _events(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Put each completion's own stored row back (exact values, not Arrow's)."""
        out = []
        for event in events:
            index = event.pop(ROW_INDEX_COLUMN, None)
            row = self.rows[int(index)] if index is not None else {}
            out.append({**row, **event})
        return out

    def _score_chunk(self, events: list[dict[str, Any]]) -> list[RewardOutcome]:
        if self.contract == BATCH:
            return score_with_batch_contract(self.evaluator, events)
        return self.evaluator.score_batch(events, **self.judge_options)

    def score(self, events: list[dict[str, Any]]) -> list[RewardOutcome]:
        events = self._events(events)
        size = self.batch_size or len(events)
        outcomes: list[RewardOutcome] = []
        for start in range(0, len(events), size):
            chunk = self._score_chunk(events[start:start + size])
            for outcome in chunk:
                outcome.index += start
            outcomes.extend(chunk)
        self.stats.add(outcomes)
        failed = [o for o in outcomes if not o.ok]
        if outcomes and len(failed) == len(outcomes):
            first = failed[0]
            raise RewardFunctionFailed(
                f"reward function {self.evaluator.name} v{self.evaluator.version} failed on every "
                f"one of {len(outcomes)} completions; first: {first.error_type}: {first.error}"
            )
        return outcomes

    def trl_function(self) -> Any:
        safe = "".join(c if c.isalnum() else "_" for c in self.evaluator.name or "reward")
        return make_trl_reward_function(self.score, name=f"airegistry_{safe}", on_error="nan")


def validation_events(rows: Sequence[Mapping[str, Any]], fmt: str) -> list[dict[str, Any]]:
    events = []
    for row in rows[:VALIDATION_ROWS]:
        event = dict(row)
        event["prompt"] = prompt_text(row, fmt)
        event["response"] = reference_response(row)
        events.append(event)
    return events


def _describe(outcome: RewardOutcome, row: int, label: str) -> str:
    return f"row {row} of {label}: {outcome.error_type}: {outcome.error}"


def validate_reward_function(
    evaluator: Evaluator, rows: Sequence[Mapping[str, Any]], fmt: str, contract: str, label: str
) -> str:
    """Invoke the function on the first rows through the runtime; returns the contract in use.

    Each row must get a finite reward in [0, 1]; the error names the row and what came back.
    """
    events = validation_events(rows, fmt)
    if not events:
        raise ValueError(f"{label} has no rows to validate the reward function on")
    name = f"Reward function {evaluator.name} v{evaluator.version}"
    try:
        if contract == BATCH:
            outcomes = score_with_batch_contract(evaluator, events)
        else:
            outcomes = evaluator.score_batch(events)
            if contract == "auto" and not any(o.ok for o in outcomes):
                batch = score_with_batch_contract(evaluator, events)
                if all(o.ok for o in batch):
                    return BATCH
    except EvaluatorNotReachableError as exc:  # e.g. its function was deleted a moment ago
        raise ValueError(f"{name} cannot be run from this registry: {exc}") from None
    failed = [o for o in outcomes if not o.ok]
    if failed:
        details = "; ".join(_describe(o, o.index + 1, label) for o in failed)
        raise ValueError(f"{name} failed validation on {len(failed)} of {len(outcomes)} rows: {details}")
    return BATCH if contract == BATCH else EVENT
