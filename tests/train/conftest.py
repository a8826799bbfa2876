"""Shared pieces of the training tests: one tiny causal LM built here, registry datasets.

The model is a two-layer Llama with a 32-wide hidden state and a byte-level BPE
tokenizer trained on the test data with the ``tokenizers`` library, saved with
``save_pretrained``: it trains a step in milliseconds on a CPU and nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("trl")

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

def corpus() -> list[str]:
    texts = []
    for i in range(40):
        texts += [f"What is {i} plus {i}?", f" The answer is {2 * i}.", f" It is {2 * i + 1}."]
    return [*texts, "Say hello.", " Hello!", " Go away."]


def build_tiny_model(path: Path, *, chat_template: bool = True) -> Path:
    from airegistry.train.tiny_model import build_tiny_model as build

    return build(path, corpus(), chat_template=chat_template)


@pytest.fixture
def no_deprecated_calls():
    """Fail the test if a run passes a setting the installed libraries deprecate (their
    FutureWarnings and DeprecationWarnings would reach every user's terminal)."""
    import warnings

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        yield
    deprecated = [f"{w.filename}:{w.lineno}: {w.message}" for w in seen
                  if issubclass(w.category, FutureWarning | DeprecationWarning)
                  and any(lib in w.filename for lib in ("transformers", "trl", "peft", "accelerate"))]
    assert deprecated == []


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


def sft_rows(n: int = 16) -> list[dict]:
    return [{"prompt": f"What is {i} plus {i}?", "completion": f" The answer is {2 * i}."}
            for i in range(n)]


def dpo_rows(n: int = 16) -> list[dict]:
    return [{"prompt": f"What is {i} plus {i}?", "chosen": f" The answer is {2 * i}.",
             "rejected": f" It is {2 * i + 1}."} for i in range(n)]


def rl_rows(n: int = 16) -> list[dict]:
    return [{"prompt": f"What is {i} plus {i}?", "answer": str(2 * i)} for i in range(n)]


SMALL = {"max_steps": 2, "per_device_train_batch_size": 4, "logging_steps": 1}
RL_SMALL = {**SMALL, "num_generations": 4, "max_completion_length": 6}

REWARD_FUNCTION = '''
import os

def lambda_handler(event, context):
    answer = str(event.get("answer", ""))
    text = event["response"]
    score = 1.0 if answer and answer in text else min(len(text), 20) / 40.0
    return {"reward": score, "details": {"pid": os.getpid()}}
'''

FAILING_REWARD_FUNCTION = '''
def lambda_handler(event, context):
    raise RuntimeError("the grader is broken for " + str(event.get("answer")))
'''

BATCH_REWARD_FUNCTION = '''
def lambda_handler(event, context):
    out = []
    for sample in event:
        reply = sample["messages"][-1]["content"]
        out.append({"id": sample["id"], "aggregate_reward_score": min(len(reply), 10) / 10.0,
                    "metrics_list": [{"name": "length", "value": len(reply), "type": "Metric"}]})
    return out
'''


# The SDK suite's two backends (embedded, and a live server), for the trainers too.
from tests.sdk.conftest import backend  # noqa: E402, F401


@pytest.fixture
def make_dataset(tmp_path: Path):
    """Register rows as a dataset (waits for the import) on the current backend."""
    import json

    from airegistry.dataset import DataSet

    def make(name: str, rows: list[dict], technique: str | None) -> DataSet:
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return DataSet.create(name, str(path), technique)

    return make


@pytest.fixture
def make_reward(tmp_path: Path):
    from airegistry.evaluator import Evaluator

    def make(name: str, code: str):
        path = tmp_path / f"{name}.py"
        path.write_text(code)
        return Evaluator.create(name, "RewardFunction", str(path))

    return make


def generate(model_dir: Path, prompt: str = "What is 2 plus 2?") -> str:
    """Load what download_model wrote the way a user would, and generate a few tokens."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    inputs = tokenizer(prompt, return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=4, do_sample=False,
                         pad_token_id=tokenizer.pad_token_id)
    assert out.shape[1] > inputs["input_ids"].shape[1]
    return tokenizer.decode(out[0])
