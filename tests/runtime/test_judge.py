"""The LLM judge for reward prompts, against a local OpenAI-compatible stub server."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import Any

import pytest

from airegistry.runtime.judge import (
    JudgeConfig,
    JudgeConnectionError,
    JudgeHTTPError,
    JudgeReplyError,
    JudgeTimeoutError,
    RewardPromptJudge,
    ScoreParseError,
    parse_score,
)
from airegistry.runtime.templates import TemplateError

try:
    from .openai_stub import OpenAIStub, StubReply
except ImportError:  # tests/ collected without packages (rootdir-relative imports)
    from openai_stub import OpenAIStub, StubReply  # type: ignore[no-redef]

API_KEY = "sk-test-SECRET-0123456789abcdef"


@pytest.fixture
def stub_factory():
    started: list[OpenAIStub] = []

    def make(reply: Any = "Score: 7", **kwargs: Any) -> OpenAIStub:
        stub = OpenAIStub(reply, **kwargs).start()
        started.append(stub)
        return stub

    yield make
    for stub in started:
        stub.stop()


class SleepRecorder:
    """Stands in for time.sleep so retry delays are observed, not waited for."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, seconds: float) -> None:
        with self._lock:
            self.calls.append(seconds)


def make_config(stub: OpenAIStub, **overrides: Any) -> JudgeConfig:
    settings: dict[str, Any] = {
        "base_url": stub.base_url,
        "model": "judge-1",
        "api_key": API_KEY,
        "max_retries": 2,
        "timeout_s": 10,
        "backoff_base_s": 0.01,
        "trust_env": False,
    }
    settings.update(overrides)
    return JudgeConfig(**settings)


def user_message(body: dict[str, Any]) -> str:
    return body["messages"][-1]["content"]


# ----------------------------------------------------------------------------- happy path


def test_evaluate_happy_path_and_request_shape(stub_factory) -> None:
    stub = stub_factory("The answer is correct and clear.\nScore: 7")
    config = make_config(stub, system_prompt="You are a strict grader.", temperature=0.0)
    with RewardPromptJudge("Q: {question}\nR: {response}\nScore (1-10):", config) as judge:
        result = judge.evaluate({"question": "2+2?", "response": "4"})

    assert result["reward"] == pytest.approx(6 / 9)
    assert result["details"]["raw_score"] == pytest.approx(7)
    assert result["details"]["reply"].endswith("Score: 7")
    assert len(stub.requests) == 1
    request = stub.requests[0]
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.json["model"] == "judge-1"
    assert request.json["temperature"] == 0.0
    assert request.json["messages"] == [
        {"role": "system", "content": "You are a strict grader."},
        {"role": "user", "content": "Q: 2+2?\nR: 4\nScore (1-10):"},
    ]


def test_no_authorization_header_without_a_key(stub_factory) -> None:
    stub = stub_factory("Score: 5")
    with RewardPromptJudge("{response}", make_config(stub, api_key=None)) as judge:
        judge.evaluate({"response": "x"})
    assert "authorization" not in stub.requests[0].headers
    assert stub.requests[0].json["messages"] == [{"role": "user", "content": "x"}]


def test_declared_scale_is_used_for_normalisation(stub_factory) -> None:
    stub = stub_factory("4/5")
    with RewardPromptJudge("{response}", make_config(stub, scale=(0, 5))) as judge:
        assert judge.evaluate({"response": "x"})["reward"] == pytest.approx(0.8)


REPLIES = {
    "plain": ("Score: 7", 7),
    "fraction": ("Good answer. 7/10", 7),
    "bold": ("I'd rate it **8**", 8),
    "json": ('{"score": 8, "reason": "mostly right"}', 8),
    "fenced-json": ('```json\n{"score": 3}\n```', 3),
    "bare": ("9", 9),
    "labelled-with-scale": ("Solid.\nScore (1-10): 10", 10),
    "bold-label": ("**Score:** 1", 1),
}


def test_score_parsing_variants_through_the_judge(stub_factory) -> None:
    stub = stub_factory(lambda body: REPLIES[user_message(body)][0])
    with RewardPromptJudge("{response}", make_config(stub)) as judge:
        outcomes = judge.evaluate_batch([{"response": key} for key in REPLIES])
    for outcome, (_reply, score) in zip(outcomes, REPLIES.values(), strict=True):
        assert outcome.ok, outcome.error
        assert outcome.reward == pytest.approx((score - 1) / 9)
        assert outcome.details["raw_score"] == pytest.approx(score)


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Score: 7", 7),
        ("score = 2", 2),
        ("The final rating is 6.5", 6.5),
        ("Rating: 3 out of 10", 3),
        ("It covers 3 points well.\n\nScore: 8", 8),
        ("Passed 3/4 checks. **Score**: 2/10", 2),
        ('Reasoning... {"score": "6"}', 6),
        ("I would give this a 6.", 6),
        ("**5**", 5),
        ("10", 10),
        ("1.", 1),
    ],
)
def test_parse_score_variants(reply: str, expected: float) -> None:
    assert parse_score(reply, (1, 10)) == pytest.approx((expected - 1) / 9)


@pytest.mark.parametrize(
    ("reply", "fragment"),
    [
        ("Score: 11", "outside the declared scale 1-10"),
        ("Score: 0", "outside the declared scale 1-10"),
        ('{"score": -3}', "outside the declared scale"),
        ("I cannot judge this.", "no score found"),
        ("Points 3 and 4 are fine", "no score found"),
        ("", "no score found"),
    ],
)
def test_parse_score_rejects_absent_or_out_of_scale(reply: str, fragment: str) -> None:
    with pytest.raises(ScoreParseError) as info:
        parse_score(reply, (1, 10))
    assert fragment in str(info.value)
    assert repr(" ".join(reply.split())) in str(info.value)  # the reply excerpt


def test_parse_score_excerpt_is_bounded() -> None:
    with pytest.raises(ScoreParseError) as info:
        parse_score("blah " * 10_000, (1, 10))
    assert len(str(info.value)) < 400


@pytest.mark.parametrize(
    "reply",
    [
        "score" + " " * 50_000 + "x",
        "Score (" * 30_000,
        "score: " * 50_000,
        "1/" * 50_000,
        "9" * 100_000 + "a",
        "99999a9" * 10_000,
        "```" + " " * 50_000,
        " " * 100_000,
        "*" * 100_000,
        "{" * 50_000,
        '{"a":' * 20_000,  # nesting deep enough to exhaust the JSON decoder's recursion
    ],
)
def test_parse_score_handles_hostile_replies(reply: str) -> None:
    # Replies may echo model output verbatim. These inputs made earlier patterns backtrack
    # catastrophically or crash the JSON decoder; now each is a plain "no score" error
    # (a regression would hang until the suite's timeout rather than pass).
    with pytest.raises(ScoreParseError):
        parse_score(reply, (1, 10))


def test_out_of_scale_reply_fails_only_that_item(stub_factory) -> None:
    stub = stub_factory(lambda body: {"a": "Score: 7", "b": "Score: 42"}[user_message(body)])
    with RewardPromptJudge("{response}", make_config(stub)) as judge:
        good, bad = judge.evaluate_batch([{"response": "a"}, {"response": "b"}])
    assert good.ok and good.reward == pytest.approx(6 / 9)
    assert not bad.ok
    assert bad.error_type == "ScoreParseError"
    assert bad.error is not None and "42" in bad.error and "Score: 42" in bad.error


# ----------------------------------------------------------------------------- retries


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_retry_then_success(stub_factory, status: int) -> None:
    stub = stub_factory("Score: 10")
    stub.fail_next(2, status)
    sleeps = SleepRecorder()
    judge = RewardPromptJudge("{response}", make_config(stub, max_retries=4), sleep=sleeps)
    with judge:
        assert judge.evaluate({"response": "x"})["reward"] == 1.0
    assert len(stub.requests) == 3
    assert len(sleeps.calls) == 2
    # Exponential backoff with jitter: attempt k waits within [base*2^k/2, base*2^k].
    for attempt, delay in enumerate(sleeps.calls):
        ceiling = 0.01 * 2**attempt
        assert ceiling / 2 <= delay <= ceiling


def test_retry_after_header_is_honoured(stub_factory) -> None:
    stub = stub_factory("Score: 10")
    stub.fail_next(1, 429, retry_after=3)
    sleeps = SleepRecorder()
    with RewardPromptJudge("{response}", make_config(stub), sleep=sleeps) as judge:
        judge.evaluate({"response": "x"})
    assert sleeps.calls == [3.0]


def test_retry_after_is_capped_by_backoff_max(stub_factory) -> None:
    stub = stub_factory("Score: 10")
    stub.fail_next(1, 503, retry_after=3600)
    sleeps = SleepRecorder()
    config = make_config(stub, backoff_max_s=2.0)
    with RewardPromptJudge("{response}", config, sleep=sleeps) as judge:
        judge.evaluate({"response": "x"})
    assert sleeps.calls == [2.0]


def test_retry_after_http_date_in_the_past_means_retry_now(stub_factory) -> None:
    stub = stub_factory("Score: 10")
    stub.fail_next(1, 429, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")
    sleeps = SleepRecorder()
    with RewardPromptJudge("{response}", make_config(stub), sleep=sleeps) as judge:
        judge.evaluate({"response": "x"})
    assert sleeps.calls == [0.0]


def test_gives_up_after_retries_naming_the_status_not_the_key(stub_factory, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    stub = stub_factory("Score: 10")
    stub.fail_next(10, 503, message=f"overloaded (your key {API_KEY})")
    sleeps = SleepRecorder()
    with RewardPromptJudge("{response}", make_config(stub, max_retries=2), sleep=sleeps) as judge:
        with pytest.raises(JudgeHTTPError) as info:
            judge.evaluate({"response": "x"})
        outcomes = judge.evaluate_batch([{"response": "y"}])
    message = str(info.value)
    assert info.value.status == 503
    assert "HTTP 503" in message
    assert "gave up after 3 attempts" in message
    assert API_KEY not in message
    assert len(stub.requests) == 6  # 3 attempts for evaluate, 3 for the batch item
    assert outcomes[0].error_type == "JudgeHTTPError"
    assert outcomes[0].error is not None and "HTTP 503" in outcomes[0].error
    assert API_KEY not in outcomes[0].error
    assert caplog.records, "retries should be logged"
    assert API_KEY not in caplog.text


def test_client_errors_are_not_retried_and_hint_at_the_cause(stub_factory) -> None:
    stub = stub_factory(
        StubReply(status=401, content=f"Incorrect API key provided: {API_KEY}")
    )
    sleeps = SleepRecorder()
    judge = RewardPromptJudge("{response}", make_config(stub), sleep=sleeps)
    with judge, pytest.raises(JudgeHTTPError) as info:
        judge.evaluate({"response": "x"})
    assert len(stub.requests) == 1
    assert sleeps.calls == []
    assert info.value.status == 401
    assert "HTTP 401" in str(info.value)
    assert "API key" in str(info.value)
    assert API_KEY not in str(info.value)


def test_timeout_is_retried_then_reported_with_the_timeout(stub_factory) -> None:
    stub = stub_factory("Score: 5", delay_s=30)  # the stub cuts delays short when it stops
    sleeps = SleepRecorder()
    config = make_config(stub, timeout_s=0.2, max_retries=1)
    judge = RewardPromptJudge("{response}", config, sleep=sleeps)
    with judge, pytest.raises(JudgeTimeoutError) as info:
        judge.evaluate({"response": "x"})
    assert isinstance(info.value, TimeoutError)
    assert "timed out after 0.2 s" in str(info.value)
    assert "gave up after 2 attempts" in str(info.value)
    assert len(sleeps.calls) == 1


def test_unreachable_endpoint_is_a_connection_error() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = JudgeConfig(
        base_url=f"http://user:pw@127.0.0.1:{port}/v1?token=abc",
        model="m",
        api_key=API_KEY,
        max_retries=0,
        trust_env=False,
    )
    judge = RewardPromptJudge("{response}", config)
    with judge, pytest.raises(JudgeConnectionError) as info:
        judge.evaluate({"response": "x"})
    message = str(info.value)
    assert f"127.0.0.1:{port}/v1" in message
    assert "pw" not in message and "token" not in message and API_KEY not in message


def test_malformed_success_body_is_a_reply_error(stub_factory) -> None:
    stub = stub_factory(StubReply(body=b'{"unexpected": true}'))
    with RewardPromptJudge("{response}", make_config(stub)) as judge:
        with pytest.raises(JudgeReplyError):
            judge.evaluate({"response": "x"})
        [outcome] = judge.evaluate_batch([{"response": "x"}])
    assert outcome.error_type == "JudgeReplyError"


# ----------------------------------------------------------------------------- batches


def test_batch_results_are_in_input_order(stub_factory) -> None:
    # Later items answer faster, so completion order is the reverse of input order.
    def reply(body: dict[str, Any]) -> StubReply:
        n = int(user_message(body))
        return StubReply(content=f"Score: {n}", delay_s=(10 - n) * 0.02)

    stub = stub_factory(reply)
    progress: list[int] = []
    with RewardPromptJudge("{n}", make_config(stub, concurrency=4)) as judge:
        outcomes = judge.evaluate_batch([{"n": n} for n in range(1, 11)], progress=progress.append)
    assert [o.index for o in outcomes] == list(range(10))
    assert [o.details["raw_score"] for o in outcomes] == pytest.approx(list(range(1, 11)))
    assert sum(progress) == 10


def test_concurrency_bound_is_respected_and_reached(stub_factory) -> None:
    # Each request waits until three are in flight, so a serial client could never get
    # three in flight and an unbounded one would exceed three.
    stub = stub_factory("Score: 5", hold_until_in_flight=3, hold_timeout_s=60)
    with RewardPromptJudge("{response}", make_config(stub, concurrency=3)) as judge:
        outcomes = judge.evaluate_batch([{"response": str(i)} for i in range(12)])
    assert all(o.ok for o in outcomes)
    assert len(stub.requests) == 12
    assert stub.max_in_flight == 3


def test_concurrency_one_is_serial(stub_factory) -> None:
    stub = stub_factory("Score: 5", delay_s=0.01)
    with RewardPromptJudge("{response}", make_config(stub, concurrency=1)) as judge:
        judge.evaluate_batch([{"response": str(i)} for i in range(5)])
    assert stub.max_in_flight == 1


def test_missing_placeholder_fails_only_that_item_without_a_request(stub_factory) -> None:
    stub = stub_factory("Score: 5")
    with RewardPromptJudge("Q: {question} R: {response}", make_config(stub)) as judge:
        outcomes = judge.evaluate_batch(
            [{"question": "q", "response": "r"}, {"prompt": "q", "response": "r"}]
        )
        with pytest.raises(TemplateError):
            judge.evaluate({"response": "r"})
    assert outcomes[0].ok
    assert outcomes[1].error_type == "TemplateError"
    assert outcomes[1].error is not None and "{question}" in outcomes[1].error
    assert len(stub.requests) == 1


def test_empty_batch(stub_factory) -> None:
    stub = stub_factory("Score: 5")
    with RewardPromptJudge("{response}", make_config(stub)) as judge:
        assert judge.evaluate_batch([]) == []
    assert stub.requests == []


def test_callable_from_a_thread_and_from_inside_an_event_loop(stub_factory) -> None:
    stub = stub_factory("Score: 10")
    judge = RewardPromptJudge("{response}", make_config(stub))
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(judge.evaluate_batch([{"response": "a"}])))
    worker.start()
    worker.join()

    async def inside_loop() -> float:
        return judge.evaluate({"response": "b"})["reward"]

    assert asyncio.run(inside_loop()) == 1.0
    judge.close()
    assert results[0][0].reward == 1.0


# ----------------------------------------------------------------------------- config


@pytest.fixture
def clean_env(monkeypatch):
    for name in (
        "AIREGISTRY_JUDGE_BASE_URL",
        "AIREGISTRY_JUDGE_MODEL",
        "AIREGISTRY_JUDGE_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_API_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_from_env_reads_airegistry_variables(clean_env) -> None:
    clean_env.setenv("AIREGISTRY_JUDGE_BASE_URL", "http://judge.local/v1")
    clean_env.setenv("AIREGISTRY_JUDGE_MODEL", "qwen")
    clean_env.setenv("AIREGISTRY_JUDGE_API_KEY", "k1")
    clean_env.setenv("OPENAI_BASE_URL", "http://other/v1")
    clean_env.setenv("OPENAI_API_KEY", "k2")
    config = JudgeConfig.from_env(concurrency=2)
    assert (config.base_url, config.model, config.api_key) == ("http://judge.local/v1", "qwen", "k1")
    assert config.concurrency == 2
    assert config.endpoint == "http://judge.local/v1/chat/completions"


def test_from_env_falls_back_to_openai_variables(clean_env) -> None:
    clean_env.setenv("OPENAI_BASE_URL", "https://api.example.com/v1/")
    clean_env.setenv("OPENAI_API_KEY", "k2")
    config = JudgeConfig.from_env(model="gpt-x", api_key=None)
    assert config.base_url == "https://api.example.com/v1/"
    assert config.endpoint == "https://api.example.com/v1/chat/completions"
    assert config.api_key == "k2"


def test_from_env_arguments_win(clean_env) -> None:
    clean_env.setenv("AIREGISTRY_JUDGE_BASE_URL", "http://env/v1")
    clean_env.setenv("AIREGISTRY_JUDGE_MODEL", "env-model")
    config = JudgeConfig.from_env(base_url="http://arg/v1", model="arg-model", scale=(0, 1))
    assert (config.base_url, config.model, config.scale) == ("http://arg/v1", "arg-model", (0.0, 1.0))


def test_from_env_explains_what_to_set(clean_env) -> None:
    with pytest.raises(ValueError) as info:
        JudgeConfig.from_env()
    message = str(info.value)
    assert "AIREGISTRY_JUDGE_BASE_URL" in message
    assert "OPENAI_BASE_URL" in message
    assert "AIREGISTRY_JUDGE_MODEL" in message
    clean_env.setenv("OPENAI_BASE_URL", "http://x/v1")
    with pytest.raises(ValueError) as info:
        JudgeConfig.from_env()
    assert "AIREGISTRY_JUDGE_MODEL" in str(info.value)
    assert "AIREGISTRY_JUDGE_BASE_URL" not in str(info.value)


def test_api_key_is_not_in_reprs() -> None:
    config = JudgeConfig(base_url="http://x/v1", model="m", api_key=API_KEY)
    assert API_KEY not in repr(config)
    assert API_KEY not in repr(RewardPromptJudge("{response}", config))


def test_api_key_whitespace_is_stripped_and_bad_keys_refused_without_echo() -> None:
    config = JudgeConfig(base_url="http://x/v1", model="m", api_key=f"  {API_KEY}\n")
    assert config.api_key == API_KEY
    for bad in ("   ", "sk-abc def-SECRET", "sk-abc\ndef-SECRET", "sk-ключ-SECRET"):
        with pytest.raises(ValueError) as info:
            JudgeConfig(base_url="http://x/v1", model="m", api_key=bad)
        assert "SECRET" not in str(info.value)


@pytest.mark.parametrize(
    "overrides",
    [
        {"base_url": "ftp://x"},
        {"base_url": "localhost:8000/v1"},
        {"model": ""},
        {"scale": (10, 1)},
        {"scale": (1, float("inf"))},
        {"scale": (1,)},
        {"concurrency": 0},
        {"max_retries": -1},
        {"timeout_s": 0},
    ],
)
def test_invalid_config_is_refused(overrides: dict[str, Any]) -> None:
    settings: dict[str, Any] = {"base_url": "http://x/v1", "model": "m"}
    settings.update(overrides)
    with pytest.raises(ValueError):
        JudgeConfig(**settings)


def test_template_string_is_parsed_at_construction() -> None:
    config = JudgeConfig(base_url="http://x/v1", model="m")
    with pytest.raises(TemplateError):
        RewardPromptJudge("Score {response", config)
