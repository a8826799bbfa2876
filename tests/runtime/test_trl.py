"""TRL's reward-function contract, exercised in plain Python (TRL is not a dependency)."""

from __future__ import annotations

import inspect
import logging
import math
from typing import Any

import pytest

from airegistry.runtime.rewards import RewardOutcome, outcome_from_error, outcome_from_payload
from airegistry.runtime.trl import RewardBatchError, make_trl_reward_function


class RecordingScorer:
    """A score_batch that records its events and scores by a rule."""

    def __init__(self, rule=None) -> None:
        self.batches: list[list[dict[str, Any]]] = []
        self.rule = rule or (lambda event: {"reward": min(len(event["response"]) / 10, 1.0)})

    def __call__(self, events: list[dict[str, Any]]) -> list[RewardOutcome]:
        self.batches.append(events)
        outcomes = []
        for i, event in enumerate(events):
            try:
                payload = self.rule(event)
            except Exception as exc:
                outcomes.append(outcome_from_error(i, type(exc).__name__, str(exc)))
            else:
                outcomes.append(outcome_from_payload(i, payload))
        return outcomes


class FakeTrainerState:
    global_step = 3


def test_name_is_set_for_trl_logging() -> None:
    fn = make_trl_reward_function(RecordingScorer(), name="helpfulness")
    assert fn.__name__ == "helpfulness"
    params = inspect.signature(fn).parameters
    assert "completions" in params
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def test_string_prompts_and_completions() -> None:
    scorer = RecordingScorer()
    fn = make_trl_reward_function(scorer, name="len")
    rewards = fn(
        prompts=["Say hi", "Say bye"],
        completions=["hello", "goodbye, friend"],
        completion_ids=[[1, 2], [3, 4, 5]],
        trainer_state=FakeTrainerState(),
    )
    assert rewards == [0.5, 1.0]
    assert all(isinstance(r, float) for r in rewards)
    assert scorer.batches == [
        [
            {"prompt": "Say hi", "response": "hello"},
            {"prompt": "Say bye", "response": "goodbye, friend"},
        ]
    ]


def test_completions_only() -> None:
    scorer = RecordingScorer()
    fn = make_trl_reward_function(scorer, name="len")
    assert fn(completions=["abcde"]) == [0.5]
    assert scorer.batches[0] == [{"response": "abcde"}]


def test_conversational_prompts_and_completions() -> None:
    scorer = RecordingScorer()
    fn = make_trl_reward_function(scorer, name="len")
    prompts = [
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "First question"},
            {"role": "assistant", "content": "First answer"},
            {"role": "user", "content": "What is 2+2?"},
        ]
    ]
    completions = [[{"role": "assistant", "content": "4"}]]
    assert fn(prompts=prompts, completions=completions) == [0.1]
    [event] = scorer.batches[0]
    assert event["prompt"] == "What is 2+2?"
    assert event["prompt_messages"] == prompts[0]
    assert event["response"] == "4"
    assert event["completion_messages"] == completions[0]


def test_conversational_completion_uses_the_last_assistant_message() -> None:
    scorer = RecordingScorer()
    fn = make_trl_reward_function(scorer, name="len")
    completion = [
        {"role": "assistant", "content": "calling a tool"},
        {"role": "tool", "content": "42"},
        {"role": "assistant", "content": [{"type": "text", "text": "The answer"}, {"type": "text", "text": " is 42"}]},
    ]
    fn(prompts=["q"], completions=[completion])
    assert scorer.batches[0][0]["response"] == "The answer is 42"


def test_message_without_role_falls_back_to_last_message() -> None:
    scorer = RecordingScorer()
    fn = make_trl_reward_function(scorer, name="len")
    fn(completions=[[{"content": "only content"}]])
    assert scorer.batches[0][0]["response"] == "only content"


def test_dataset_columns_are_added_per_index_and_control_kwargs_ignored() -> None:
    scorer = RecordingScorer(
        lambda e: {"reward": 1.0 if e["response"].strip() == e["ground_truth"] else 0.0}
    )
    fn = make_trl_reward_function(scorer, name="exact")
    rewards = fn(
        prompts=["1+1?", "2+2?", "3+3?"],
        completions=["2", "5", " 6 "],
        completion_ids=[[1], [2], [3]],
        ground_truth=["2", "4", "6"],
        task=("math", "math", "math"),
        trainer_state=FakeTrainerState(),
        log_extra=lambda *a: None,
        unrelated_setting="not a column",
    )
    assert rewards == [1.0, 0.0, 1.0]
    assert scorer.batches[0][1] == {
        "ground_truth": "4",
        "task": "math",
        "prompt": "2+2?",
        "response": "5",
    }


def test_column_values_are_sent_as_json_data_and_non_data_is_left_out(caplog) -> None:
    np = pytest.importorskip("numpy")

    class Image:  # stands for a PIL image column
        pass

    scorer = RecordingScorer()
    fn = make_trl_reward_function(scorer, name="len")
    with caplog.at_level(logging.WARNING, logger="airegistry.runtime.trl"):
        fn(
            completions=["a", "b"],
            answer=[np.int64(4), np.float32(0.5)],
            vector=[np.array([1, 2]), np.array([3])],
            meta=[{"k": (1, 2)}, {"k": None}],
            image=[Image(), Image()],
        )
    first, second = scorer.batches[0]
    assert first == {"answer": 4, "vector": [1, 2], "meta": {"k": [1, 2]}, "response": "a"}
    assert type(first["answer"]) is int and type(second["answer"]) is float
    assert "image" not in second
    assert "'len'" in caplog.text and "image" in caplog.text


def test_response_key_wins_over_a_dataset_column_of_the_same_name() -> None:
    scorer = RecordingScorer()
    fn = make_trl_reward_function(scorer, name="len")
    fn(completions=["generated"], response=["reference"])
    assert scorer.batches[0][0]["response"] == "generated"


def test_empty_batch_does_not_call_the_scorer() -> None:
    scorer = RecordingScorer()
    assert make_trl_reward_function(scorer, name="x")(prompts=[], completions=[]) == []
    assert scorer.batches == []


def failing_rule(event: dict[str, Any]) -> Any:
    if event["response"] == "crash":
        raise RuntimeError("handler blew up")
    if event["response"] == "bad":
        return {"reward": 1.5}
    return {"reward": 0.25}


def test_on_error_nan_returns_nan_and_warns_once_per_batch(caplog) -> None:
    fn = make_trl_reward_function(RecordingScorer(failing_rule), name="judge")
    with caplog.at_level(logging.WARNING, logger="airegistry.runtime.trl"):
        rewards = fn(completions=["ok", "crash", "bad", "ok"])
    assert rewards[0] == 0.25 and rewards[3] == 0.25
    assert math.isnan(rewards[1]) and math.isnan(rewards[2])
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "'judge'" in message
    assert "2 of 4" in message
    assert "item 1" in message and "handler blew up" in message


def test_on_error_nan_is_the_default() -> None:
    fn = make_trl_reward_function(RecordingScorer(failing_rule), name="judge")
    assert math.isnan(fn(completions=["bad"])[0])


def test_on_error_zero_returns_zero_and_warns(caplog) -> None:
    fn = make_trl_reward_function(RecordingScorer(failing_rule), name="judge", on_error="zero")
    with caplog.at_level(logging.WARNING, logger="airegistry.runtime.trl"):
        assert fn(completions=["ok", "bad"]) == [0.25, 0.0]
    assert "invalid reward value for item 1" in caplog.text


def test_on_error_raise_names_count_and_first_error() -> None:
    fn = make_trl_reward_function(RecordingScorer(failing_rule), name="judge", on_error="raise")
    with pytest.raises(RewardBatchError) as info:
        fn(completions=["ok", "bad", "crash"])
    message = str(info.value)
    assert "2 of 3" in message
    assert "item 1: InvalidRewardValue: invalid reward value for item 1: 1.5" in message
    assert [f.index for f in info.value.failures] == [1, 2]
    assert fn(completions=["ok"]) == [0.25]


def test_no_warning_when_everything_succeeds(caplog) -> None:
    fn = make_trl_reward_function(RecordingScorer(failing_rule), name="judge")
    with caplog.at_level(logging.WARNING, logger="airegistry.runtime.trl"):
        fn(completions=["ok", "ok"])
    assert caplog.records == []


def test_scorer_failure_propagates_whatever_on_error_says() -> None:
    def broken(events: list[dict[str, Any]]) -> list[RewardOutcome]:
        raise ConnectionError("runtime is down")

    fn = make_trl_reward_function(broken, name="x", on_error="zero")
    with pytest.raises(ConnectionError):
        fn(completions=["a"])


def test_outcomes_are_reordered_by_index_and_count_checked() -> None:
    def reversed_scorer(events: list[dict[str, Any]]) -> list[RewardOutcome]:
        return [outcome_from_payload(i, {"reward": i / 10}) for i in reversed(range(len(events)))]

    assert make_trl_reward_function(reversed_scorer, name="r")(completions=["a", "b", "c"]) == [
        0.0,
        0.1,
        0.2,
    ]

    def short_scorer(events: list[dict[str, Any]]) -> list[RewardOutcome]:
        return [outcome_from_payload(0, {"reward": 1})]

    with pytest.raises(RuntimeError, match="1 results for 2 items"):
        make_trl_reward_function(short_scorer, name="s")(completions=["a", "b"])


def test_mismatched_lengths_are_refused() -> None:
    fn = make_trl_reward_function(RecordingScorer(), name="x")
    with pytest.raises(ValueError, match="2 prompts for 1 completions"):
        fn(prompts=["a", "b"], completions=["c"])


def test_missing_completions_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        make_trl_reward_function(RecordingScorer(), name="x")(prompts=["a"])


@pytest.mark.parametrize(("kwargs", "fragment"), [({"name": ""}, "name"), ({"name": "x", "on_error": "skip"}, "on_error")])
def test_bad_arguments(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        make_trl_reward_function(RecordingScorer(), **kwargs)


def test_reward_prompt_judge_as_a_trl_reward_function() -> None:
    from airegistry.runtime.judge import JudgeConfig, RewardPromptJudge

    try:
        from .openai_stub import OpenAIStub
    except ImportError:
        from openai_stub import OpenAIStub  # type: ignore[no-redef]

    replies = {"4": "Score: 10", "5": "Score: 1", "??": "I refuse to grade this."}

    def reply(body: dict[str, Any]) -> str:
        return replies[body["messages"][-1]["content"].rsplit("A: ", 1)[1]]

    with OpenAIStub(reply) as stub:
        config = JudgeConfig(base_url=stub.base_url, model="m", max_retries=0, trust_env=False)
        with RewardPromptJudge("Q: {prompt} (expected {answer})\nA: {response}", config) as judge:
            fn = make_trl_reward_function(judge.evaluate_batch, name="judge")
            rewards = fn(
                prompts=[[{"role": "user", "content": "2+2?"}]] * 3,
                completions=[[{"role": "assistant", "content": c}] for c in ("4", "5", "??")],
                answer=["4", "4", "4"],
                trainer_state=FakeTrainerState(),
            )
    assert rewards[:2] == [1.0, 0.0]
    assert math.isnan(rewards[2])
    sent = sorted(r.json["messages"][-1]["content"] for r in stub.requests)
    assert sent == [f"Q: 2+2? (expected 4)\nA: {c}" for c in ("4", "5", "??")]
