"""The reward contract, enforced in the parent process.

A reward function (or a reward prompt's judge) produces ``{"reward": <number>, "details": ...}``.
Training code downstream silently misbehaves on rewards that are NaN, infinite or outside
[0, 1] (advantages blow up, means turn into NaN), so the registry refuses such values at the
boundary and turns them into a per-item failure that names the item and the value. The check
runs in the parent, never in the worker: user code cannot opt out of it.
"""

from __future__ import annotations

import math
import numbers
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "INVALID_REWARD_VALUE",
    "REWARD_MAX",
    "REWARD_MIN",
    "InvalidRewardValueError",
    "RewardOutcome",
    "outcome_from_error",
    "outcome_from_payload",
    "validate_reward",
]

REWARD_MIN = 0.0
REWARD_MAX = 1.0

#: ``RewardOutcome.error_type`` of an item whose handler returned something that is not a reward.
INVALID_REWARD_VALUE = "InvalidRewardValue"

# Offending values are echoed in messages; a handler that returns a 50 MB string must not
# produce a 50 MB error message.
_value_repr = reprlib.Repr()
_value_repr.maxstring = 80
_value_repr.maxother = 80
_value_repr.maxlist = 6
_value_repr.maxdict = 6
_value_repr.maxlevel = 2


def _describe_value(value: Any) -> str:
    return _value_repr.repr(value)


def _item_label(index: int, item_id: str | None) -> str:
    if item_id is None:
        return f"item {index}"
    return f"item {index} (id {_describe_value(item_id)})"


class InvalidRewardValueError(ValueError):
    """A handler's result is not a finite number in [0, 1] under a ``reward`` key.

    The message is meant to be read by the person who wrote the handler, so it names the item
    (its position in the batch and, when known, its id) and shows the offending value.
    """

    def __init__(
        self,
        index: int,
        value: Any,
        *,
        item_id: str | None = None,
        problem: str | None = None,
    ) -> None:
        self.index = index
        self.item_id = item_id
        self.value = value
        label = _item_label(index, item_id)
        if problem is None:
            problem = f"{_describe_value(value)} (must be a finite number in [0, 1])"
        super().__init__(f"invalid reward value for {label}: {problem}")


def validate_reward(value: Any, index: int, *, item_id: str | None = None) -> float:
    """Return ``value`` as a float if it is a valid reward, else raise InvalidRewardValueError.

    ``bool`` is refused even though it is an ``int`` subclass: ``True`` as a reward is almost
    always a handler that forgot to convert a pass/fail check, and silently reading it as 1.0
    would hide that. Integers (0 and 1) and any other real number type (numpy floats, Fraction)
    are accepted.
    """
    kind = type(value)  # exact float/int first: the ABC check costs more than the rest
    if kind is not float and kind is not int and (
        isinstance(value, bool) or not isinstance(value, numbers.Real)
    ):
        type_name = kind.__name__
        raise InvalidRewardValueError(
            index,
            value,
            item_id=item_id,
            problem=(
                f"{_describe_value(value)} of type {type_name} "
                "(must be a finite number in [0, 1])"
            ),
        )
    try:
        reward = float(value)
    except (OverflowError, ValueError, TypeError) as exc:
        raise InvalidRewardValueError(
            index,
            value,
            item_id=item_id,
            problem=f"{_describe_value(value)} cannot be read as a float ({exc})",
        ) from None
    if not math.isfinite(reward) or not REWARD_MIN <= reward <= REWARD_MAX:
        raise InvalidRewardValueError(index, value, item_id=item_id)
    return reward


@dataclass
class RewardOutcome:
    """The result of scoring one item: a valid reward, or an error that says why not.

    ``error_type`` mirrors Lambda's ``errorType`` for failures of the function itself (for
    example ``"Timeout"``, ``"ValueError"``) and is ``"InvalidRewardValue"`` when the function
    returned but its result broke the reward contract.
    """

    index: int
    reward: float | None
    details: Any = None
    error: str | None = None
    error_type: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.reward is not None


def outcome_from_payload(index: int, payload: Any, *, item_id: str | None = None) -> RewardOutcome:
    """Validate what a handler returned for item ``index`` and wrap it as an outcome.

    Never raises for bad payloads: one broken item must not take the batch down with it.
    """
    try:
        if type(payload) is not dict and not isinstance(payload, Mapping):
            raise InvalidRewardValueError(
                index,
                payload,
                item_id=item_id,
                problem=(
                    f"the handler returned {type(payload).__name__} "
                    f"{_describe_value(payload)}; expected a dict like "
                    "{'reward': 0.5, 'details': ...}"
                ),
            )
        if "reward" not in payload:
            keys = sorted(str(k) for k in payload)
            raise InvalidRewardValueError(
                index,
                payload,
                item_id=item_id,
                problem=(
                    "the result has no 'reward' key "
                    f"(keys: {_describe_value(keys)}); expected a dict like "
                    "{'reward': 0.5, 'details': ...}"
                ),
            )
        reward = validate_reward(payload["reward"], index, item_id=item_id)
    except InvalidRewardValueError as exc:
        return RewardOutcome(
            index=index,
            reward=None,
            details=None,
            error=str(exc),
            error_type=INVALID_REWARD_VALUE,
        )
    return RewardOutcome(index=index, reward=reward, details=payload.get("details"))


def outcome_from_error(index: int, error_type: str, message: str) -> RewardOutcome:
    """Wrap a failure of the call itself (timeout, crash, handler exception) as an outcome."""
    return RewardOutcome(
        index=index, reward=None, details=None, error=message, error_type=error_type
    )
