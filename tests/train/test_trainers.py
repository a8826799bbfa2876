"""Each trainer runs a few real TRL steps through the SDK, on both backends."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from airegistry.air_constants import REWARD_FUNCTION as REWARD_FUNCTION_TYPE
from airegistry.train.artifacts import TrainedModel
from airegistry.train.dpo_trainer import DPOTrainer
from airegistry.train.job import TrainingJob
from airegistry.train.rlaif_trainer import RLAIFTrainer
from airegistry.train.rlvr_trainer import RLVRTrainer
from airegistry.train.sft_trainer import SFTTrainer

from .conftest import (
    BATCH_REWARD_FUNCTION,
    REWARD_FUNCTION,
    RL_SMALL,
    SMALL,
    dpo_rows,
    generate,
    rl_rows,
    sft_rows,
)


def check_completed(job: TrainingJob, technique: str) -> None:
    assert job.training_job_status == "Completed", job.failure_reason
    assert job.secondary_status == "Completed"
    assert job.training_job_name.startswith(f"tiny-{technique}-")
    assert job.training_job_arn.endswith(job.training_job_name.lower())
    assert job.progress_info["CurrentStep"] == 2
    assert job.progress_info["MaxSteps"] == 2
    assert job.model_artifacts_uri.startswith("s3://")
    assert job.output_model_package_arn.endswith("/Model/tiny/" + job.output_model_package_arn.rsplit("/", 1)[1])
    steps = [row for row in job.metrics() if "loss" in row]
    assert [row["step"] for row in steps] == [1, 2]
    assert all(math.isfinite(row["loss"]) for row in steps)
    assert "train_loss" in job.final_metrics and math.isfinite(job.final_metrics["train_loss"])
    assert "step 2" in job.logs()
    versions = job.lineage["versions"]
    assert versions["trl"] and versions["torch"] and versions["peft"] and versions["transformers"]


@pytest.mark.slow
def test_sft_trains_registers_and_downloads(backend, tiny_model: Path, make_dataset, tmp_path: Path,
                                            no_deprecated_calls) -> None:
    train = make_dataset("sft-train", sft_rows(), "sft")
    valid = make_dataset("sft-valid", sft_rows(8), "sft")
    trainer = SFTTrainer(model=str(tiny_model), training_dataset=train, validation_dataset=valid,
                         hyperparameters=SMALL, base_job_name="tiny", model_package_group="tiny",
                         accept_eula=True)
    job = trainer.train()
    check_completed(job, "sft")
    assert math.isfinite(job.final_metrics["eval_loss"])
    channels = {c["ChannelName"]: c["DataSource"]["DatasetSource"]["DatasetArn"]
                for c in job.input_data_config}
    assert channels == {"train": train.arn, "validation": valid.arn}
    lineage = job.lineage
    assert [(d["name"], d["version"], d["sha256"]) for d in lineage["datasets"]] == [
        ("sft-train", train.version, train.stats["sha256"]),
        ("sft-valid", valid.version, valid.stats["sha256"]),
    ]
    assert lineage["base_model"]["path"] == str(tiny_model.resolve())
    assert len(lineage["base_model"]["weights_index_sha256"]) == 64
    assert lineage["final_metrics"]["train_loss"] == job.final_metrics["train_loss"]
    model = TrainedModel.get("tiny")
    assert model.arn == job.output_model_package_arn
    assert model.lineage["datasets"][0]["arn"] == train.arn
    # The lineage survives the datasets it names.
    train.delete()
    assert TrainingJob.get(job.training_job_name).lineage["datasets"][0]["arn"] == train.arn
    assert TrainedModel.get("tiny").lineage["datasets"][0]["arn"] == train.arn

    adapter = job.download_model(tmp_path / "adapter")
    assert (adapter / "adapter_model.safetensors").is_file()
    generate(adapter)
    merged = job.download_model(tmp_path / "merged", merge=True)
    assert (merged / "model.safetensors").is_file() and not (merged / "adapter_config.json").exists()
    generate(merged)

    # One new major version of the model package group per run.
    second = SFTTrainer(model=str(tiny_model), training_dataset=valid, hyperparameters=SMALL,
                        base_job_name="tiny", model_package_group="tiny").train()
    assert second.output_model_package_arn.endswith("/tiny/2.0.0")
    assert second.training_job_name != job.training_job_name


@pytest.mark.slow
def test_dpo_full_weights(backend, tiny_model: Path, make_dataset, tmp_path: Path,
                          no_deprecated_calls) -> None:
    data = make_dataset("dpo-train", dpo_rows(), "dpo")
    job = DPOTrainer(model=str(tiny_model), training_type="FULL", training_dataset=data.arn,
                     hyperparameters={**SMALL, "beta": 0.2}, base_job_name="tiny").train()
    check_completed(job, "dpo")
    assert job.hyper_parameters["beta"] == "0.2"
    assert job.lineage["training_type"] == "FULL"
    assert "rewards/margins" in job.metrics()[0]
    full = job.download_model(tmp_path / "full")
    assert (full / "model.safetensors").is_file()
    generate(full)


@pytest.mark.slow
def test_rlvr_rewards_come_from_the_registered_function(
    backend, tiny_model: Path, make_dataset, make_reward, tmp_path: Path, monkeypatch,
    no_deprecated_calls,
) -> None:
    data = make_dataset("rl-train", rl_rows(), "rlvr")
    reward = make_reward("adds-up", REWARD_FUNCTION)
    calls: list[int] = []
    if backend.name == "embedded":
        from airegistry.runtime.functions import FunctionService

        original = FunctionService.invoke_batch

        def spy(self, function, events, **kwargs):
            calls.append(len(events))
            return original(self, function, events, **kwargs)

        monkeypatch.setattr(FunctionService, "invoke_batch", spy)
    job = RLVRTrainer(model=str(tiny_model), custom_reward_function=reward, training_dataset=data,
                      hyperparameters=RL_SMALL, base_job_name="tiny", accept_eula=True).train()
    check_completed(job, "rlvr")
    rows = [r for r in job.metrics() if "reward" in r]
    assert len(rows) == 2 and all(0.0 <= r["reward"] <= 1.0 for r in rows)
    assert job.final_metrics["reward_items"] == 8 and job.final_metrics["reward_failures"] == 0
    evaluator = job.lineage["evaluator"]
    assert (evaluator["arn"], evaluator["version"], evaluator["reward_contract"]) == (
        reward.arn, reward.version, "event")
    if backend.name == "embedded":
        # 3 validation rows in one call, then one call per generation batch of 4 completions.
        assert calls == [3, 4, 4]


@pytest.mark.slow
def test_rlvr_official_batch_contract_is_detected(
    backend, tiny_model: Path, make_dataset, make_reward
) -> None:
    data = make_dataset("rl-batch", rl_rows(8), "rlvr")
    reward = make_reward("batch-grader", BATCH_REWARD_FUNCTION)
    assert reward.type == REWARD_FUNCTION_TYPE
    job = RLVRTrainer(model=str(tiny_model), custom_reward_function=reward.arn,
                      training_dataset=data, hyperparameters=RL_SMALL, base_job_name="tiny").train()
    check_completed(job, "rlvr")
    assert job.lineage["evaluator"]["reward_contract"] == "batch"
    assert job.final_metrics["reward_failures"] == 0


@pytest.mark.slow
def test_rlaif_scores_with_the_judge(backend, tiny_model: Path, make_dataset) -> None:
    from airegistry.evaluator import Evaluator
    from tests.runtime.openai_stub import OpenAIStub

    data = make_dataset("rlaif-train", rl_rows(8), "rlaif")
    prompt = Evaluator.create("helpful", "RewardPrompt",
                              "Rate the answer to {prompt}: {response}\nScore (1-10):")
    with OpenAIStub(reply="Score: 7") as stub:
        job = RLAIFTrainer(model=str(tiny_model), reward_prompt="helpful", reward_model_id="judge-1",
                           judge_options={"base_url": stub.base_url, "trust_env": False},
                           training_dataset=data, hyperparameters=RL_SMALL,
                           base_job_name="tiny").train()
        seen = list(stub.requests)
    check_completed(job, "rlaif")
    assert len(seen) == 8 and {r.json["model"] for r in seen} == {"judge-1"}
    assert "What is" in seen[0].json["messages"][-1]["content"]
    assert abs(job.final_metrics["mean_reward"] - 6 / 9) < 1e-6
    assert job.lineage["evaluator"]["arn"] == prompt.arn
