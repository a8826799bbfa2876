"""Everything train() refuses before any compute: a clear ValueError, nothing recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airegistry.dataset import DataSet
from airegistry.evaluator import Evaluator
from airegistry.session import default_session
from airegistry.train.dpo_trainer import DPOTrainer
from airegistry.train.job import TrainingJob, TrainingJobFailedError
from airegistry.train.rlaif_trainer import RLAIFTrainer
from airegistry.train.rlvr_trainer import RLVRTrainer
from airegistry.train.sft_trainer import SFTTrainer

from .conftest import (
    FAILING_REWARD_FUNCTION,
    REWARD_FUNCTION,
    RL_SMALL,
    SMALL,
    dpo_rows,
    rl_rows,
    sft_rows,
)


def no_jobs() -> bool:
    return TrainingJob.list()["items"] == []


def test_dataset_of_another_technique_names_both(registry_home, tiny_model, make_dataset) -> None:
    prefs = make_dataset("prefs", dpo_rows(), "dpo")
    with pytest.raises(ValueError, match=r"holds preference data \(DPO data\); SFTTrainer takes "
                                         r"prompt_completion, input_output, chat, converse"):
        SFTTrainer(model=str(tiny_model), training_dataset=prefs).train()
    sft = make_dataset("sft", sft_rows(), "sft")
    with pytest.raises(ValueError, match=r"prompt_completion data.*DPOTrainer takes preference"):
        DPOTrainer(model=str(tiny_model), training_dataset=sft.arn).train()
    assert no_jobs()


def test_dataset_importing_or_import_failed(registry_home, tiny_model, make_dataset, tmp_path) -> None:
    session = default_session()

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "completion": "b"}\n{"prompt": "only"}\n')
    session.objects.ensure_bucket("user-bucket")
    session.objects.upload_file(bad, "user-bucket", "bad.jsonl")
    with pytest.raises(ValueError, match="failed to import"):
        DataSet.create("broken", "s3://user-bucket/bad.jsonl", "sft")
    failed = DataSet.get("broken")
    with pytest.raises(ValueError, match=r"broken version 1.0.0 failed to import .*line 2"):
        SFTTrainer(model=str(tiny_model), training_dataset=failed).train()
    with pytest.raises(ValueError, match=r"s3://user-bucket/bad.jsonl is not valid for SFT.*line 2"):
        SFTTrainer(model=str(tiny_model), training_dataset="s3://user-bucket/bad.jsonl").train()
    session.home.jobs.stop()  # the import stays queued
    path = tmp_path / "queued.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in sft_rows()))
    queued = DataSet.create("queued", str(path), "sft", wait=False)
    with pytest.raises(ValueError, match=r"queued version 1.0.0 is still Importing"):
        SFTTrainer(model=str(tiny_model), training_dataset=queued).train()
    assert no_jobs()


def test_s3_uri_is_validated_and_trained_on_without_registering(registry_home, tiny_model, tmp_path) -> None:
    session = default_session()
    path = tmp_path / "good.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in sft_rows(8)))
    session.objects.ensure_bucket("user-bucket")
    session.objects.upload_file(path, "user-bucket", "data/good.jsonl")
    job = SFTTrainer(model=str(tiny_model), training_dataset="s3://user-bucket/data/good.jsonl",
                     hyperparameters=SMALL).train()
    assert job.training_job_status == "Completed"
    entry = job.lineage["datasets"][0]
    assert entry["uri"] == "s3://user-bucket/data/good.jsonl" and entry["arn"] is None
    assert len(entry["sha256"]) == 64 and entry["rows"] == 8
    assert DataSet.list()["items"] == []


def test_evaluator_of_the_wrong_type(registry_home, tiny_model, make_dataset, make_reward) -> None:
    data = make_dataset("rl", rl_rows(), "rlvr")
    prompt = Evaluator.create("judge-me", "RewardPrompt", "Rate {response}. Score (1-10):")
    function = make_reward("fn", REWARD_FUNCTION)
    with pytest.raises(ValueError, match=r"judge-me version 1.0.0 is a RewardPrompt; RLVRTrainer needs a RewardFunction"):
        RLVRTrainer(model=str(tiny_model), custom_reward_function=prompt, training_dataset=data).train()
    with pytest.raises(ValueError, match=r"fn version 1.0.0 is a RewardFunction; RLAIFTrainer needs a RewardPrompt"):
        RLAIFTrainer(model=str(tiny_model), reward_prompt=function.arn, training_dataset=data).train()
    with pytest.raises(ValueError, match="Evaluator nope does not exist"):
        RLVRTrainer(model=str(tiny_model), custom_reward_function="nope", training_dataset=data).train()
    with pytest.raises(ValueError, match="the endpoint"):
        RLAIFTrainer(model=str(tiny_model), reward_prompt=prompt, reward_model_id="m",
                     training_dataset=data).train()
    assert no_jobs()


def test_missing_model_names_both_places(registry_home, make_dataset, tmp_path) -> None:
    data = make_dataset("sft", sft_rows(), "sft")
    with pytest.raises(ValueError, match=r"not a directory \(.*no-such-model\) and not in the local "
                                         r"Hugging Face cache \(.*\)"):
        SFTTrainer(model=str(tmp_path / "no-such-model"), training_dataset=data).train()
    with pytest.raises(ValueError, match="Hugging Face cache"):
        SFTTrainer(model="someone/not-cached-model", training_dataset=data).train()
    assert no_jobs()


def test_unknown_hyperparameter_lists_valid_ones(registry_home, tiny_model, make_dataset) -> None:
    data = make_dataset("sft", sft_rows(), "sft")
    with pytest.raises(ValueError, match=r"Unknown hyperparameter lora_rank for SFT; valid names: .*lora_r,"):
        SFTTrainer(model=str(tiny_model), training_dataset=data, hyperparameters={"lora_rank": 4}).train()
    with pytest.raises(ValueError, match="num_generations"):
        SFTTrainer(model=str(tiny_model), training_dataset=data,
                   hyperparameters={"num_generations": 4}).train()
    with pytest.raises(ValueError, match="learning_rate must be float"):
        SFTTrainer(model=str(tiny_model), training_dataset=data,
                   hyperparameters={"learning_rate": "fast"}).train()
    with pytest.raises(ValueError, match="multiple of num_generations"):
        RLVRTrainer(model=str(tiny_model), training_dataset=data, custom_reward_function="x",
                    hyperparameters={"per_device_train_batch_size": 3}).train()
    assert no_jobs()


def test_dry_run_checks_and_records_nothing(registry_home, tiny_model, make_dataset, make_reward) -> None:
    data = make_dataset("rl", rl_rows(), "rlvr")
    reward = make_reward("fn", REWARD_FUNCTION)
    trainer = RLVRTrainer(model=str(tiny_model), custom_reward_function=reward,
                          training_dataset=data, hyperparameters=RL_SMALL)
    assert trainer.train(dry_run=True) is None
    assert no_jobs()


def test_reward_function_failing_on_every_row(registry_home, tiny_model, make_dataset, make_reward) -> None:
    data = make_dataset("rl", rl_rows(), "rlvr")
    broken = make_reward("broken", FAILING_REWARD_FUNCTION)
    with pytest.raises(ValueError, match=r"failed validation on 3 of 3 rows: row 1 of dataset rl: "
                                         r"RuntimeError: the grader is broken for 0"):
        RLVRTrainer(model=str(tiny_model), custom_reward_function=broken, training_dataset=data,
                    hyperparameters=RL_SMALL).train()
    assert no_jobs()
    # Without validation the job starts and fails with the reason.
    with pytest.raises(TrainingJobFailedError) as raised:
        RLVRTrainer(model=str(tiny_model), custom_reward_function=broken, training_dataset=data,
                    hyperparameters=RL_SMALL, skip_reward_validation=True).train()
    job = raised.value.job
    assert job.training_job_status == "Failed"
    assert "failed on every one of 4 completions" in job.failure_reason
    assert "the grader is broken" in job.failure_reason
    assert job.output_model_package_arn is None


def test_conversational_data_needs_a_chat_template(registry_home, make_dataset, tmp_path: Path) -> None:
    from .conftest import build_tiny_model

    plain = build_tiny_model(tmp_path / "plain", chat_template=False)
    chat = make_dataset("chat", [{"messages": [{"role": "user", "content": "Say hello."},
                                               {"role": "assistant", "content": "Hello!"}]}] * 4, "sft")
    with pytest.raises(ValueError, match="no chat template"):
        SFTTrainer(model=str(plain), training_dataset=chat).train()


def test_missing_training_stack_names_the_extra(monkeypatch) -> None:
    import importlib
    import importlib.util
    import sys

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("trl", "peft") else real(name, *a))
    monkeypatch.delitem(sys.modules, "airegistry.train.sft_trainer")
    with pytest.raises(ImportError, match=r"Training needs trl, peft, which are not installed: "
                                          r"pip install 'airegistry\[train\]'"):
        importlib.import_module("airegistry.train.sft_trainer")
