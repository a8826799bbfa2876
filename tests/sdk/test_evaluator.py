"""The Evaluator API of the seed, and running evaluators, on the embedded registry."""

from __future__ import annotations

import json
import math
import textwrap
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from airegistry.air_constants import HubContentStatus
from airegistry.air_hub import AIRHub
from airegistry.dataset import DataSet
from airegistry.evaluator import (
    Evaluator,
    EvaluatorInvocationError,
    EvaluatorMethod,
    EvaluatorNotReachableError,
)

SEED_REWARD_FUNCTION = '''
import json

def lambda_handler(event, context):
    prompt = event['prompt']
    response = event['response']
    test_cases = extract_test_cases(prompt)
    try:
        passed = 0
        total = len(test_cases)
        for test_input, expected_output in test_cases:
            try:
                actual = execute_code(response, test_input)
                if actual == expected_output:
                    passed += 1
            except Exception:
                pass
        reward = passed / total if total > 0 else 0.0
        return {'reward': reward, 'details': f"Passed {passed}/{total} tests"}
    except SyntaxError:
        return {'reward': 0.0, 'details': "Syntax error in generated code"}
    except Exception as e:
        return {'reward': 0.0, 'details': f"Runtime error: {str(e)}"}

def execute_code(code, test_input):
    namespace = {}
    exec(code, namespace)
    return namespace["solve"](test_input)

def extract_test_cases(prompt):
    return json.loads(prompt.split("TESTS:", 1)[1])
'''


def write_handler(tmp_path: Path, body: str, name: str = "reward.py") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def handler_returning(tmp_path: Path, expression: str, name: str) -> Path:
    return write_handler(
        tmp_path,
        f"""
        def lambda_handler(event, context):
            return {expression}
        """,
        name,
    )


def test_seed_reward_function_runs_as_byoc(backend, tmp_path: Path) -> None:
    source = write_handler(tmp_path, SEED_REWARD_FUNCTION, "reward_function.py")
    ev = Evaluator.create(
        name="custom-reward", type="RewardFunction", source=str(source),
        role="arn:aws:iam::123456789012:role/LambdaRole", wait=True,
    )
    assert ev.method is EvaluatorMethod.BYOC
    assert ev.status is HubContentStatus.AVAILABLE
    assert ev.reference.startswith("arn:aws:lambda:us-east-1:") and ":function:air-custom-reward-" in ev.reference
    prompt = 'Write solve(x) returning x*2. TESTS:[[1, 2], [3, 6], [5, 11]]'
    result = ev.invoke({"prompt": prompt, "response": "def solve(x):\n    return x * 2\n"})
    assert result["reward"] == pytest.approx(2 / 3)
    assert result["details"] == "Passed 2/3 tests"

    doc = AIRHub.describe_hub_content("JsonDoc", "custom-reward")
    assert json.loads(doc["HubContentDocument"])["SubType"] == "AWS/Evaluator"
    content = json.loads(json.loads(doc["HubContentDocument"])["JsonContent"])
    assert content == {"Reference": ev.reference, "EvaluatorType": "RewardFunction"}
    keywords = doc["HubContentSearchKeywords"]
    for expected in ("method:byoc", "@subtype:aws/evaluator", "@evaluatortype:rewardfunction",
                     "@contenttype:byocode"):
        assert expected in keywords


def test_lambda_arn_evaluator_registers_but_is_not_reachable(backend) -> None:
    ev = Evaluator.create(
        name="code-correctness-evaluator", type="RewardFunction",
        source="arn:aws:lambda:us-west-2:123456789012:function:evaluate-code", wait=True,
    )
    assert ev.method is EvaluatorMethod.LAMBDA
    assert ev.reference == "arn:aws:lambda:us-west-2:123456789012:function:evaluate-code"
    got = Evaluator.get("code-correctness-evaluator")
    assert (got.type, got.method, got.reference) == ("RewardFunction", EvaluatorMethod.LAMBDA, ev.reference)
    with pytest.raises(EvaluatorNotReachableError, match=r"outside this registry|cannot reach it"):
        got.invoke({"prompt": "p", "response": "r"})
    keywords = AIRHub.describe_hub_content("JsonDoc", "code-correctness-evaluator")["HubContentSearchKeywords"]
    assert "@contenttype:byolambda" in keywords and "method:lambda" in keywords


def test_list_versions_and_delete(backend, tmp_path: Path) -> None:
    first = handler_returning(tmp_path, "{'reward': 0.25}", "first.py")
    second = handler_returning(tmp_path, "{'reward': 0.75}", "second.py")
    ev1 = Evaluator.create("versioned", "RewardFunction", str(first))
    ev2 = ev1.create_version(str(second))
    assert ev2.version == "2.0.0" and ev2.reference != ev1.reference
    # Versions never overwrite each other: each keeps its own function.
    assert ev1.invoke({"prompt": "p", "response": "r"})["reward"] == 0.25
    assert ev2.invoke({"prompt": "p", "response": "r"})["reward"] == 0.75
    assert [v["Version"] for v in ev1.get_versions()] == ["2.0.0", "1.0.0"]
    Evaluator.create("prompted", "RewardPrompt", "Rate {response} from 1 to 10")
    DataSet_count = len(DataSet.list()["items"])
    assert DataSet_count == 0
    items = {i["name"]: i for i in Evaluator.list(max_results=20)["items"]}
    assert set(items) == {"versioned", "prompted"}
    assert items["versioned"]["type"] == "RewardFunction" and items["versioned"]["version"] == "2.0.0"
    assert items["prompted"]["type"] == "RewardPrompt"
    assert items["prompted"]["reference"].startswith("s3://")
    assert ev1.delete() is True
    # The deleted version's function is gone with it.
    with pytest.raises(EvaluatorNotReachableError, match=r"no longer exists|Function not found"):
        ev1.invoke({"prompt": "p", "response": "r"})
    assert Evaluator.delete_by_name("versioned") is True
    with pytest.raises(ClientError):
        Evaluator.get("versioned")


def test_evaluator_get_refuses_a_non_evaluator_jsondoc(backend) -> None:
    AIRHub.import_hub_content("JsonDoc", "plain-doc", "2.0.0", {"SubType": "Other"}, "1.0.0")
    with pytest.raises(ClientError) as exc:
        Evaluator.get("plain-doc")
    assert exc.value.response["Error"]["Code"] == "ResourceNotFound"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"type": "Judge", "source": "x"}, "Unknown evaluator type"),
        ({"type": "RewardFunction", "source": ""}, "needs a source"),
        ({"type": "RewardFunction", "source": "missing.py"}, "not found"),
        ({"type": "RewardFunction", "source": "notes.txt"}, ".py"),
        ({"type": "RewardFunction", "source": "arn:aws:lambda:nope"}, "Invalid Lambda ARN"),
        ({"type": "RewardPrompt", "source": "Rate {response"}, "(?i)brace|unbalanced|unmatched"),
        ({"type": "RewardPrompt", "source": "   "}, "needs a source|empty"),
    ],
)
def test_registration_errors(backend, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Evaluator.create("bad-evaluator", **kwargs)
    assert Evaluator.list()["items"] == []


def test_code_without_handler_or_with_syntax_error(backend, tmp_path: Path) -> None:
    no_handler = write_handler(tmp_path, "def handler(event, context):\n    return {}\n", "nohandler.py")
    with pytest.raises(ValueError, match="lambda_handler"):
        Evaluator.create("no-handler", "RewardFunction", str(no_handler))
    broken = write_handler(tmp_path, "def lambda_handler(event, context)\n    return {}\n", "broken.py")
    with pytest.raises(ValueError, match="syntax error at line 1"):
        Evaluator.create("broken", "RewardFunction", str(broken))
    assert Evaluator.list()["items"] == []


@pytest.mark.parametrize(
    "expression",
    ["{'reward': float('nan')}", "{'reward': 1.5}", "{'reward': -0.1}", "{'reward': 'abc'}", "None",
     "{'score': 1}", "{'reward': None}", "{'reward': float('inf')}"],
)
def test_invalid_reward_values_fail_that_item(backend, tmp_path: Path, expression: str) -> None:
    path = write_handler(
        tmp_path,
        f"""
        def lambda_handler(event, context):
            if event.get("good"):
                return {{"reward": 0.5}}
            return {expression}
        """,
        "values.py",
    )
    ev = Evaluator.create("values", "RewardFunction", str(path))
    outcomes = ev.evaluate([{"good": True}, {"good": False}, {"good": True}], progress=False)
    assert [o.ok for o in outcomes] == [True, False, True]
    bad = outcomes[1]
    assert bad.error_type == "InvalidRewardValue"
    assert "item 1" in bad.error
    with pytest.raises(EvaluatorInvocationError, match="InvalidRewardValue"):
        ev.invoke({"good": False})


def test_raise_timeout_and_crash_fail_only_their_item(backend, tmp_path: Path) -> None:
    path = write_handler(
        tmp_path,
        """
        import ctypes, os, time

        def lambda_handler(event, context):
            mode = event.get("mode")
            if mode == "raise":
                raise KeyError("missing thing")
            if mode == "sleep":
                time.sleep(3600)
            if mode == "spin":
                while True:
                    pass
            if mode == "exit":
                os._exit(3)
            if mode == "segfault":
                ctypes.string_at(0)
            if mode == "print":
                print("x" * 5_000_000)
            return {"reward": 1.0, "details": mode}
        """,
        "chaos.py",
    )
    ev = Evaluator.create("chaos", "RewardFunction", str(path), function_timeout=1)
    modes = ["ok", "raise", "ok", "sleep", "ok", "spin", "exit", "ok", "segfault", "print", "ok"]
    outcomes = ev.evaluate([{"mode": m} for m in modes], progress=False)
    by_mode = dict(zip(modes, outcomes, strict=True))
    assert all(o.ok and o.reward == 1.0 for m, o in zip(modes, outcomes, strict=True) if m in ("ok", "print"))
    assert by_mode["raise"].error_type == "KeyError" and "missing thing" in by_mode["raise"].error
    assert "1.00 seconds" in by_mode["sleep"].error or "timed out" in by_mode["sleep"].error.lower()
    assert not by_mode["spin"].ok
    assert not by_mode["exit"].ok and not by_mode["segfault"].ok
    with pytest.raises(EvaluatorInvocationError, match="KeyError"):
        ev.invoke({"mode": "raise"})
    assert ev.invoke({"mode": "ok"})["reward"] == 1.0


def test_evaluate_a_dataset(backend, tmp_path: Path, write_jsonl) -> None:
    rows = [{"prompt": f"{i}+1?", "completion": f"Answer: {i + 1 if i % 4 else i}", "answer": i + 1}
            for i in range(40)]
    ds = DataSet.create("arith", str(write_jsonl("arith.jsonl", rows)), "sft")
    path = write_handler(
        tmp_path,
        """
        import re
        def lambda_handler(event, context):
            m = re.search(r"Answer:\\s*(-?\\d+)", event["response"])
            return {"reward": float(m is not None and int(m.group(1)) == event["answer"])}
        """,
        "arith.py",
    )
    ev = Evaluator.create("arith-judge", "RewardFunction", str(path))
    outcomes = ev.evaluate(ds, batch_size=16, progress=False)
    assert [o.index for o in outcomes] == list(range(40))
    assert sum(o.reward for o in outcomes) == 30
    assert len(ev.evaluate(iter(rows), limit=7, progress=False)) == 7


def test_trl_reward_function_contract(backend, tmp_path: Path) -> None:
    path = write_handler(
        tmp_path,
        """
        def lambda_handler(event, context):
            if event["response"] == "boom":
                raise RuntimeError("boom")
            return {"reward": 1.0 if event["response"] == event["solution"] else 0.0}
        """,
        "trl.py",
    )
    ev = Evaluator.create("trl-judge", "RewardFunction", str(path))
    reward_fn = ev.as_reward_function()
    assert reward_fn.__name__ == "airegistry_trl_judge"
    rewards = reward_fn(
        prompts=["a", "b", "c"],
        completions=["x", [{"role": "assistant", "content": "y"}], "boom"],
        solution=["x", "z", "boom"],
        trainer_state=None,
    )
    assert rewards[:2] == [1.0, 0.0] and math.isnan(rewards[2])


def test_reward_prompt_runs_through_an_openai_compatible_judge(backend, tmp_path: Path) -> None:
    from tests.runtime.openai_stub import OpenAIStub

    prompt_file = tmp_path / "prompt.txt"
    prompt_file.write_text("Question: {question}\nResponse: {response}\nScore (1-10):")
    ev = Evaluator.create("helpfulness", "RewardPrompt", str(prompt_file))
    with OpenAIStub(["Score: 10", "Score: 1"]) as stub:
        options = {"base_url": stub.base_url, "model": "judge-model", "api_key": "secret"}
        result = ev.invoke({"question": "q", "response": "r"}, **options)
        assert result["reward"] in (0.0, 1.0)
        outcomes = ev.evaluate([{"question": "q"}], progress=False, **options)
        assert not outcomes[0].ok and "response" in outcomes[0].error


def test_backends_give_the_same_outcomes(backend, tmp_path: Path) -> None:
    """score_batch/evaluate go through one batch interface whatever runs the function."""
    path = handler_returning(
        tmp_path,
        "{'reward': event['n'] / 10} if event['n'] != 4 else {'reward': 'four'}",
        "same.py",
    )
    ev = Evaluator.create("same-everywhere", "RewardFunction", str(path))
    events = [{"n": n} for n in range(8)]
    default = ev.score_batch(events)
    assert ev.score_batch(events, backend="lambda") == default
    assert default[4].error_type == "InvalidRewardValue"
    assert [o.reward for o in default if o.ok] == [0.0, 0.1, 0.2, 0.3, 0.5, 0.6, 0.7]
    if backend.name == "embedded":
        assert ev.score_batch(events, backend="pool") == default
        assert ev.evaluate(events, backend="lambda", progress=False) == default
    else:
        with pytest.raises(ValueError, match="embedded registry"):
            ev.score_batch(events, backend="pool")
    reward = ev.as_reward_function(backend="lambda")
    scores = reward(prompts=["p"] * 2, completions=["a", "b"], n=[1, 2])
    assert scores == [0.1, 0.2]
