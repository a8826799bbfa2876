"""Benchmark: our trainers against plain TRL, and the GRPO reward phase three ways.

Run:  .venv/bin/python benchmarks/bench_train.py [--steps 40] [--quick]

In one run, on the same tiny model (built here, nothing downloaded) and the same data:

  (a) plain TRL ``SFTTrainer`` on a python-list dataset (``Dataset.from_list``), LoRA, with
      the settings ours uses (fp32 on the CPU, no gradient checkpointing: TRL's own defaults
      turn both bf16 and checkpointing on, which would make the anchor slower);
  (b) ``airegistry.train.sft_trainer.SFTTrainer`` on the same rows registered as a dataset
      (embedded registry: job record, heartbeats, metric rows, upload and registration
      around the same TRL loop).
      Per-step wall time after the first step, from on_log timestamps in both cases (the
      median of consecutive differences). Target: (b) <= 1.05 x (a).

  (c) the GRPO reward phase: TRL calls the reward function once per generation batch with
      ``prompts``/``completions``/dataset columns. For the specification's kind of reward
      function (the seed's: run the generated code on the prompt's test cases):
      (c1) a plain python reward function in the training process      -- the anchor;
      (c2) our registered evaluator through the warm sandboxed pool, via the reward function
           the trainers hand to TRL (one ``Evaluator.score_batch`` per batch);
      (c3) one fresh subprocess per completion.
      Completions scored per second. Target: (c2) >= 0.8 x (c1).
Ratios are measured in this run on this machine.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The specification's reward function (SEED.txt), with its two helpers filled in: run the
# generated code on the test cases found in the prompt.
REWARD_CODE = '''
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


def rows(n: int) -> list[dict[str, str]]:
    return [{"prompt": f"What is {i} plus {i}?", "completion": f" The answer is {2 * i}."}
            for i in range(n)]


def per_step(times: list[float]) -> float:
    """Median wall time between consecutive steps, the first step excluded."""
    gaps = [b - a for a, b in itertools.pairwise(times[1:])]
    return statistics.median(gaps)


def bench_plain_trl(model: Path, data: list[dict], steps: int, work: Path) -> float:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from transformers.trainer_callback import PrinterCallback
    from trl import SFTConfig, SFTTrainer

    stamps: list[float] = []

    class Stamp(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs and "loss" in logs:
                stamps.append(time.time())

    tokenizer = AutoTokenizer.from_pretrained(model)
    config = SFTConfig(output_dir=str(work / "plain"), max_steps=steps, per_device_train_batch_size=4,
                       learning_rate=1e-4, logging_steps=1, report_to="none", save_strategy="no",
                       disable_tqdm=True, use_cpu=True, max_length=1024, seed=42,
                       dataloader_pin_memory=False, bf16=False, gradient_checkpointing=False)
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, target_modules="all-linear",
                      task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(model), args=config,
                         train_dataset=Dataset.from_list(data), processing_class=tokenizer,
                         peft_config=lora)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(Stamp())
    trainer.train()
    return per_step(stamps)


def bench_ours(model: Path, data: list[dict], steps: int, work: Path) -> float:
    from airegistry.dataset import DataSet
    from airegistry.train.sft_trainer import SFTTrainer

    path = work / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in data))
    dataset = DataSet.create(f"bench-{int(time.time() * 1000)}", str(path), "sft")
    job = SFTTrainer(model=str(model), training_dataset=dataset, base_job_name="bench",
                     hyperparameters={"max_steps": steps, "per_device_train_batch_size": 4}).train()
    stamps = [r["time"] for r in job.metrics() if "loss" in r]
    return per_step(stamps)


def reward_inputs(n: int) -> dict[str, list[Any]]:
    prompts = [f"Write solve(x) returning {i % 5} times x. TESTS: "
               + json.dumps([[k, k * (i % 5)] for k in range(4)]) for i in range(n)]
    completions = [f"def solve(x):\n    return x * {i % 5 if i % 3 else i % 5 + 1}\n" for i in range(n)]
    return {"prompts": prompts, "completions": completions, "answer": [str(i % 5) for i in range(n)]}


def bench_rewards(batch: int, batches: int, subprocess_items: int, work: Path) -> dict[str, float]:
    from airegistry.evaluator import Evaluator
    from airegistry.train.rewards import RewardScorer

    namespace: dict[str, Any] = {}
    exec(REWARD_CODE, namespace)
    handler = namespace["lambda_handler"]

    def in_process(prompts: list[str], completions: list[str], answer: list[str], **_: Any) -> list[float]:
        return [handler({"prompt": p, "response": c, "answer": a}, None)["reward"]
                for p, c, a in zip(prompts, completions, answer, strict=True)]

    source = work / "reward.py"
    source.write_text(REWARD_CODE)
    evaluator = Evaluator.create(f"bench-reward-{int(time.time() * 1000)}", "RewardFunction", str(source))
    ours = RewardScorer(evaluator, "event", []).trl_function()
    inputs = reward_inputs(batch)
    expected = in_process(**inputs)
    assert ours(**inputs) == expected  # the same rewards, and the pool is warm

    def throughput(fn: Any, repeat: int = 3) -> float:
        best = 0.0
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(batches):
                fn(**inputs)
            best = max(best, batch * batches / (time.perf_counter() - start))
        return best

    results = {"in_process": throughput(in_process), "pool": throughput(ours)}
    script = REWARD_CODE + "\nimport json, sys\nprint(json.dumps(lambda_handler(json.loads(sys.argv[1]), None)))\n"
    start = time.perf_counter()
    for i in range(subprocess_items):
        event = {"prompt": inputs["prompts"][i], "response": inputs["completions"][i],
                 "answer": inputs["answer"][i]}
        out = subprocess.run([sys.executable, "-I", "-c", script, json.dumps(event)],
                             capture_output=True, text=True, check=True)
        assert json.loads(out.stdout)["reward"] == expected[i]
    results["subprocess"] = subprocess_items / (time.perf_counter() - start)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of (a) and (b)")
    parser.add_argument("--quick", action="store_true", help="fewer steps and batches")
    args = parser.parse_args()
    steps = 15 if args.quick else args.steps
    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    os.environ["AIREGISTRY_HOME"] = str(work / "home")
    from airegistry.train.tiny_model import build_tiny_model

    data = rows(64)
    model = build_tiny_model(work / "model", [r["prompt"] + r["completion"] for r in data])
    # Alternate the two trainers; each one's best of the runs is kept.
    plain, ours = [], []
    for _ in range(args.rounds):
        plain.append(bench_plain_trl(model, data, steps, work))
        ours.append(bench_ours(model, data, steps, work))
    a, b = min(plain), min(ours)
    print("runs (ms/step): plain " + " ".join(f"{x * 1000:.2f}" for x in plain)
          + "; ours " + " ".join(f"{x * 1000:.2f}" for x in ours))
    print(f"SFT per-step wall after the first ({steps} steps, tiny model, LoRA, CPU):")
    print(f"  (a) plain TRL SFTTrainer, list dataset   {a * 1000:8.2f} ms/step")
    print(f"  (b) airegistry SFTTrainer, registry data {b * 1000:8.2f} ms/step   "
          f"ratio (b)/(a) = {b / a:.3f}  (target <= 1.05)")
    batch, batches = (64, 5) if args.quick else (256, 10)
    rewards = bench_rewards(batch, batches, 8 if args.quick else 24, work)
    base = rewards["in_process"]
    print(f"\nGRPO reward phase, the seed's reward function, batches of {batch} completions:")
    for key, label in (("in_process", "(c1) python function in the trainer"),
                       ("pool", "(c2) registered evaluator via the pool"),
                       ("subprocess", "(c3) one subprocess per completion")):
        print(f"  {label:42s} {rewards[key]:10.0f} completions/s   ratio to (c1) = "
              f"{rewards[key] / base:.3f}" + ("  (target >= 0.8)" if key == "pool" else ""))
    from airegistry.home import close_homes

    close_homes()


if __name__ == "__main__":
    main()
