"""The reward contract: what a handler may return, and how a bad result is reported."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from airegistry.runtime.rewards import (
    INVALID_REWARD_VALUE,
    InvalidRewardValueError,
    RewardOutcome,
    outcome_from_error,
    outcome_from_payload,
    validate_reward,
)


@pytest.mark.parametrize(
    ("reward", "expected"),
    [(0, 0.0), (1, 1.0), (0.0, 0.0), (1.0, 1.0), (0.95, 0.95), (Fraction(1, 4), 0.25)],
)
def test_valid_rewards_pass_through_as_float(reward: object, expected: float) -> None:
    outcome = outcome_from_payload(3, {"reward": reward, "details": "Passed 3/4 tests"})
    assert outcome.ok
    assert outcome.reward == expected
    assert isinstance(outcome.reward, float)
    assert outcome.details == "Passed 3/4 tests"
    assert outcome.index == 3
    assert outcome.error is None and outcome.error_type is None


def test_details_are_optional() -> None:
    outcome = outcome_from_payload(0, {"reward": 0.5})
    assert outcome.ok and outcome.details is None


@pytest.mark.parametrize(
    ("reward", "shown"),
    [
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (float("-inf"), "-inf"),
        (1.5, "1.5"),
        (-0.1, "-0.1"),
        ("abc", "'abc'"),
        (None, "None"),
        (True, "True"),
        (False, "False"),
        ([0.5], "[0.5]"),
        ({"value": 0.5}, "{'value': 0.5}"),
        (10**400, None),  # too large for a float
    ],
)
def test_invalid_reward_values_fail_the_item_and_name_item_and_value(
    reward: object, shown: str | None
) -> None:
    outcome = outcome_from_payload(7, {"reward": reward})
    assert not outcome.ok
    assert outcome.reward is None
    assert outcome.error_type == INVALID_REWARD_VALUE
    assert outcome.error is not None
    assert outcome.error.startswith("invalid reward value for item 7: ")
    if shown is not None:
        assert shown in outcome.error


def test_message_format_for_out_of_range_value() -> None:
    outcome = outcome_from_payload(3, {"reward": 1.5})
    assert outcome.error == (
        "invalid reward value for item 3: 1.5 (must be a finite number in [0, 1])"
    )


def test_missing_reward_key_lists_the_keys_present() -> None:
    outcome = outcome_from_payload(2, {"score": 0.5, "details": "x"})
    assert outcome.error_type == INVALID_REWARD_VALUE
    assert outcome.error is not None
    assert "item 2" in outcome.error
    assert "no 'reward' key" in outcome.error
    assert "'details'" in outcome.error and "'score'" in outcome.error


@pytest.mark.parametrize("payload", [None, 0.5, "0.5", [0.5], ("reward", 0.5)])
def test_non_dict_payload_fails_the_item(payload: object) -> None:
    outcome = outcome_from_payload(0, payload)
    assert outcome.error_type == INVALID_REWARD_VALUE
    assert outcome.error is not None
    assert type(payload).__name__ in outcome.error
    assert "item 0" in outcome.error


def test_item_id_is_named_when_given() -> None:
    outcome = outcome_from_payload(4, {"reward": -0.1}, item_id="row-42")
    assert outcome.error is not None
    assert "item 4 (id 'row-42')" in outcome.error
    assert "-0.1" in outcome.error


def test_huge_offending_values_are_truncated_in_the_message() -> None:
    outcome = outcome_from_payload(0, {"reward": "x" * 5_000_000})
    assert outcome.error is not None
    assert len(outcome.error) < 500


def test_validate_reward_raises_a_value_error_subclass_with_context() -> None:
    with pytest.raises(InvalidRewardValueError) as info:
        validate_reward(float("nan"), 9, item_id="abc")
    err = info.value
    assert isinstance(err, ValueError)
    assert err.index == 9 and err.item_id == "abc"
    assert math.isnan(err.value)
    assert validate_reward(1, 0) == 1.0


def test_outcome_from_error_is_a_failed_outcome() -> None:
    outcome = outcome_from_error(5, "Timeout", "Task timed out after 30.00 seconds")
    assert outcome == RewardOutcome(
        index=5,
        reward=None,
        details=None,
        error="Task timed out after 30.00 seconds",
        error_type="Timeout",
    )
    assert not outcome.ok
    assert not outcome_from_error(0, "Unhandled", "").ok
