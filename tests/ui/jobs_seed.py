"""A registry home with real training jobs, for the job pages' browser tests.

Trained through the SDK on the tiny model of ``airegistry.train.tiny_model``: one SFT run
(LoRA, with a validation set, a few steps so the loss is a curve), one RLVR run rewarded
by a registered reward function (a reward curve), one RLVR run whose reward function
fails on every completion with HTML in its message (a Failed job, hostile text), and jobs
recorded through plain boto3 as another tool would: one with hostile hyperparameters and
failure reason and no lineage file, and filler jobs so the table has pages.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

XSS_IMG = '<img src="x" onerror="window.__xss = (window.__xss || 0) + 1">'
XSS_SCRIPT = "<script>window.__xss = (window.__xss || 0) + 1</script>"
FILLER_JOBS = 30

REWARD_CODE = '''
def lambda_handler(event, context):
    answer = str(event.get("answer", ""))
    text = event["response"]
    return {"reward": 1.0 if answer and answer in text else min(len(text), 20) / 40.0}
'''
BROKEN_CODE = f'''
def lambda_handler(event, context):
    raise RuntimeError({XSS_IMG + XSS_SCRIPT!r})
'''
SFT_STEPS = 6
RL_STEPS = 3


def corpus() -> list[str]:
    texts = []
    for i in range(20):
        texts += [f"What is {i} plus {i}?", f" The answer is {2 * i}."]
    return texts


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _filler(client: Any) -> None:
    """Jobs another tool recorded and finished, older than the trained ones."""
    for i in range(FILLER_JOBS):
        name = f"filler-job-{i:02d}"
        client.create_training_job(TrainingJobName=name, RoleArn="arn:aws:iam::123456789012:role/r",
                                   OutputDataConfig={"S3OutputPath": "s3://elsewhere/out/"},
                                   HyperParameters={"epochs": str(i)})
        client.update_trial_component(TrialComponentName=f"{name}-aws-training-job",
                                      Status={"PrimaryStatus": "Completed"})


def _hostile(client: Any, dataset_arn: str) -> str:
    """A job recorded through the SageMaker API with markup wherever free text goes."""
    name = "imported-hostile-job"
    client.create_training_job(
        TrainingJobName=name, RoleArn="arn:aws:iam::123456789012:role/r",
        OutputDataConfig={"S3OutputPath": "s3://elsewhere/out/"},
        HyperParameters={"note": XSS_SCRIPT, "style": XSS_IMG},
        InputDataConfig=[{"ChannelName": "train", "DataSource": {
            "S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://elsewhere/data.jsonl"},
            "DatasetSource": {"DatasetArn": dataset_arn}}}],
        Tags=[{"Key": "team", "Value": "équipe données"}],
    )
    client.update_trial_component(TrialComponentName=f"{name}-aws-training-job",
                                  Status={"PrimaryStatus": "Failed", "Message": XSS_IMG + XSS_SCRIPT})
    return name


def build(home: Path, work: Path) -> dict[str, Any]:
    """Train and record everything in ``home``; returns the names the tests look for."""
    from airegistry.dataset import DataSet
    from airegistry.evaluator import Evaluator
    from airegistry.session import Session
    from airegistry.train.job import TrainingJobFailedError
    from airegistry.train.rlvr_trainer import RLVRTrainer
    from airegistry.train.sft_trainer import SFTTrainer
    from airegistry.train.tiny_model import build_tiny_model

    work.mkdir(parents=True, exist_ok=True)
    session = Session(backend="embedded", home=home)
    _filler(session.sagemaker_client)
    model = str(build_tiny_model(work / "tiny-model", corpus()))
    pc = [{"prompt": f"What is {i} plus {i}?", "completion": f" The answer is {2 * i}."} for i in range(16)]
    train = DataSet.create("qa-train", str(_jsonl(work / "train.jsonl", pc)), "sft", sagemaker_session=session)
    valid = DataSet.create("qa-valid", str(_jsonl(work / "valid.jsonl", pc[:8])), "sft",
                           sagemaker_session=session)
    prompts = DataSet.create("rl-prompts", str(_jsonl(work / "rl.jsonl", [
        {"prompt": f"What is {i} plus {i}?", "answer": str(2 * i)} for i in range(16)])), "rlvr",
        sagemaker_session=session)
    (work / "adds_up.py").write_text(REWARD_CODE)
    (work / "broken.py").write_text(BROKEN_CODE)
    reward = Evaluator.create("adds-up", "RewardFunction", str(work / "adds_up.py"), sagemaker_session=session)
    broken = Evaluator.create("broken-grader", "RewardFunction", str(work / "broken.py"),
                              sagemaker_session=session)
    small = {"per_device_train_batch_size": 4, "logging_steps": 1}
    rl = {**small, "max_steps": RL_STEPS, "num_generations": 4, "max_completion_length": 6}
    sft = SFTTrainer(model=model, training_dataset=train, validation_dataset=valid,
                     hyperparameters={**small, "max_steps": SFT_STEPS}, base_job_name="tiny",
                     model_package_group="tiny-chat", tags=[{"Key": "team", "Value": "équipe-ml"}],
                     sagemaker_session=session).train()
    rlvr = RLVRTrainer(model=model, custom_reward_function=reward, training_dataset=prompts,
                       hyperparameters=rl, base_job_name="tiny", model_package_group="tiny-rl",
                       sagemaker_session=session).train()
    try:
        RLVRTrainer(model=model, custom_reward_function=broken, training_dataset=prompts,
                    hyperparameters=rl, base_job_name="broken", skip_reward_validation=True,
                    sagemaker_session=session).train()
        raise AssertionError("the broken reward function did not fail its job")
    except TrainingJobFailedError as exc:
        failed = exc.job.training_job_name
    hostile = _hostile(session.sagemaker_client, train.arn)
    return {
        "model": model, "sft": sft.training_job_name, "rlvr": rlvr.training_job_name,
        "failed": failed, "hostile": hostile, "sft_model": sft.output_model_package_arn,
        "train": [train.name, train.version], "valid": [valid.name, valid.version],
        "prompts": [prompts.name, prompts.version], "reward": [reward.name, reward.version],
    }
