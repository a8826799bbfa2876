"""Quickstart: the seed's whole workflow (datasets, evaluators, training) on the embedded registry.

Run it with ``make demo`` (a fresh temporary home) or ``python examples/quickstart.py``
(uses ``AIREGISTRY_HOME``, default ``~/.airegistry``). It creates its own data in a
temporary working directory, so it needs nothing but airegistry itself.

The code between the "seed" markers is the seed's own usage, after the rename
``sagemaker.ai_registry`` -> ``airegistry``; the rest prepares data and shows what the
registry adds (running evaluators).
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path

from botocore.exceptions import ClientError

from airegistry.air_constants import HubContentStatus
from airegistry.dataset import DataSet
from airegistry.evaluator import Evaluator
from airegistry.session import default_session
from airegistry.train.common import CustomizationTechnique

REWARD_FUNCTION = '''\
import re


def lambda_handler(event, context):
    """1.0 when the number after "Answer:" matches the ground truth, else 0.0."""
    match = re.search(r"Answer:\\s*(-?\\d+)", event["response"])
    expected = str(event.get("answer"))
    correct = match is not None and match.group(1) == expected
    return {"reward": 1.0 if correct else 0.0,
            "details": "correct" if correct else f"expected {expected}"}
'''


def make_data(workdir: Path) -> None:
    """Training rows as a local file; eval rows placed in a bucket of the registry's store."""
    rng = random.Random(7)
    (workdir / "data").mkdir()
    with open(workdir / "data" / "train.jsonl", "w", encoding="utf-8") as out:
        for _ in range(200):
            a, b = rng.randint(1, 99), rng.randint(1, 99)
            out.write(json.dumps({"prompt": f"What is {a} + {b}?", "completion": f"Answer: {a + b}"}) + "\n")
    eval_rows = []
    for _ in range(50):
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        guess = a + b if rng.random() < 0.7 else a + b + 1
        eval_rows.append({"prompt": f"What is {a} + {b}?", "completion": f"Answer: {guess}", "answer": a + b})
    body = "".join(json.dumps(r) + "\n" for r in eval_rows).encode()
    # Stands for the user's own S3 bucket: on the embedded default, any bucket of the
    # registry's store is read in place (other buckets are read through boto3).
    store = default_session().home.objects
    store.ensure_bucket("my-bucket")
    store.put_object("my-bucket", "data/eval.jsonl", body, content_type="application/jsonl")
    (workdir / "reward_function.py").write_text(REWARD_FUNCTION)


def main() -> None:
    session = default_session()
    print(f"registry home: {session.home.path}  (backend: {session.backend}, hub: {session.hub_name})")
    workdir = Path(tempfile.mkdtemp(prefix="airegistry-quickstart-"))
    os.chdir(workdir)
    make_data(workdir)

    # ---- seed: create the training dataset -----------------------------------------------
    print("Creating training dataset...")
    try:
        train_dataset = DataSet.create(
            name="chatbot-training-v1",
            source="./data/train.jsonl",  # Local file
            customization_technique=CustomizationTechnique.SFT,
            description="Customer support chatbot training data",
            tags=[{"Key": "Project", "Value": "Chatbot"}, {"Key": "Version", "Value": "1.0"}],
            wait=True,
        )
    except ValueError as e:
        print(f"Invalid dataset: {e}")
        raise
    except ClientError as e:
        if e.response["Error"]["Code"] == "ResourceInUse":
            print("Dataset with this name already exists")
        raise
    if train_dataset.status != HubContentStatus.AVAILABLE:
        train_dataset.wait(poll=5, timeout=300)
    print(f"Training dataset ready: {train_dataset.arn}")
    print(f"  S3 location: {train_dataset.source}")
    print(f"  Status: {train_dataset.status}")
    print(f"  Rows: {train_dataset.stats['rows']}, format: {train_dataset.stats['format']}")

    # ---- seed: the evaluation dataset, by reference -----------------------------------------
    print("\nCreating evaluation dataset...")
    eval_dataset = DataSet.create(
        name="chatbot-eval-v1",
        source="s3://my-bucket/data/eval.jsonl",  # S3 file
        customization_technique=CustomizationTechnique.SFT,
        wait=True,
    )
    print(f"Eval dataset ready: {eval_dataset.arn} (method: {eval_dataset.method})")

    # ---- seed: evaluators ----------------------------------------------------------------------
    print("\nCreating reward evaluator...")
    evaluator = Evaluator.create(
        name="helpfulness-evaluator",
        type="RewardFunction",
        source="arn:aws:lambda:us-west-2:123456789012:function:evaluate-helpfulness",
        wait=True,
    )
    print(f"Evaluator ready: {evaluator.arn} (method: {evaluator.method})")

    custom = Evaluator.create(
        name="custom-reward",
        type="RewardFunction",
        source="./reward_function.py",  # Local file
        role="arn:aws:iam::123456789012:role/LambdaRole",
        wait=True,
    )
    print(f"Function created and evaluator registered: {custom.reference}")

    prompt_evaluator = Evaluator.create(
        name="answer-quality-evaluator",
        type="RewardPrompt",
        source="""
Evaluate the helpfulness of the following response on a scale of 1-10.
Question: {prompt}
Response: {response}
Score (1-10):
""",
        wait=True,
    )
    print(f"Reward prompt stored at: {prompt_evaluator.reference}")

    # ---- seed: list everything ---------------------------------------------------------------
    print("\n=== AI Registry Contents ===")
    print("\nDatasets:")
    datasets = DataSet.list(max_results=20)
    for ds in datasets["items"]:
        print(f"  - {ds['name']} (v{ds['version']}): {ds['status']}")
    print("\nEvaluators:")
    evaluators = Evaluator.list(max_results=20)
    for ev in evaluators["items"]:
        print(f"  - {ev['name']} ({ev['type']}): {ev['status']}")

    # ---- beyond the seed: run the reward function on the eval dataset -----------------------
    print("\nScoring the eval dataset with custom-reward (sandboxed workers)...")
    outcomes = custom.evaluate(eval_dataset, progress=False)
    scored = [o.reward for o in outcomes if o.ok]
    print(f"  {len(scored)}/{len(outcomes)} items scored, mean reward {sum(scored) / len(scored):.2f}")
    print(f"  one call: {custom.invoke({'prompt': 'What is 2 + 2?', 'response': 'Answer: 4', 'answer': 4})}")

    # ---- seed: step 5, use in training -------------------------------------------------------
    # A two-layer model built here on the spot stands for "meta-llama/Llama-2-7b-hf" (nothing
    # is downloaded): the workflow is the same, it just trains in seconds on a CPU.
    from airegistry.train.sft_trainer import SFTTrainer
    from airegistry.train.tiny_model import build_tiny_model

    texts = [line for line in (workdir / "data" / "train.jsonl").read_text().splitlines()]
    tiny_model = build_tiny_model(workdir / "tiny-model", texts)
    print("\nTraining (SFT, LoRA) on chatbot-training-v1...")
    trainer = SFTTrainer(
        model=str(tiny_model),
        training_dataset=train_dataset,  # Use DataSet object
        validation_dataset=eval_dataset,
        accept_eula=True,
        hyperparameters={"max_steps": 10, "per_device_train_batch_size": 8},
        base_job_name="chatbot",
    )
    job = trainer.train()
    print(f"Training job {job.training_job_name}: {job.training_job_status}")
    print(f"  train loss {job.final_metrics['train_loss']:.3f}, eval loss {job.final_metrics['eval_loss']:.3f}")
    print(f"  weights: {job.model_artifacts_uri}")
    print(f"  registered model: {job.output_model_package_arn}")
    trained_on = job.lineage["datasets"][0]
    print(f"  lineage: {trained_on['name']} v{trained_on['version']} (sha256 {trained_on['sha256'][:12]}…)")
    local = job.download_model(workdir / "trained-model", merge=True)
    print(f"  downloaded and merged into {local}")

    # ---- seed: versions and cleanup -----------------------------------------------------------
    print("\nDataset version management:")
    v2 = train_dataset.create_version("./data/train.jsonl")
    dataset = DataSet.get("chatbot-training-v1")
    versions = dataset.get_versions()
    print(f"Dataset versions for {dataset.name}:")
    for version_info in versions:
        print(f"  Version {version_info['Version']}: {version_info['Status']}")
        print(f"    Created: {version_info['CreationTime']}")
    dataset.delete(version="1")
    print(f"Deleted version 1.0.0; latest is now {DataSet.get('chatbot-training-v1').version} ({v2.arn})")

    eval_dataset.delete()
    evaluator.delete()
    print("\nDeleted chatbot-eval-v1 and helpfulness-evaluator. Done.")


if __name__ == "__main__":
    main()
