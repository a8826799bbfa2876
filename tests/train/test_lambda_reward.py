"""RLVR with a Lambda ARN as ``custom_reward_function``: registered as an evaluator first (as
the official SDK does), then called through the registry's own function runtime."""

from __future__ import annotations

from pathlib import Path

import pytest

from airegistry.evaluator import Evaluator, EvaluatorMethod
from airegistry.evaluator_sources import package_reward_function
from airegistry.session import default_session
from airegistry.train.job import TrainingJob
from airegistry.train.rlvr_trainer import RLVRTrainer

from .conftest import REWARD_FUNCTION, RL_SMALL, rl_rows


def deploy(name: str, code: str) -> str:
    """A function of the backend's own runtime, deployed through its Lambda API; its ARN."""
    response = default_session().functions.create_function(
        FunctionName=name, Runtime="python3.11", Role="arn:aws:iam::123456789012:role/grader",
        Handler="lambda_function.lambda_handler", Code={"ZipFile": package_reward_function(code)},
        Timeout=30,
    )
    return response["FunctionArn"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["embedded", "remote"], indirect=True)
def test_lambda_arn_of_our_runtime_is_registered_and_trains(
    backend, tiny_model: Path, make_dataset, no_deprecated_calls
) -> None:
    data = make_dataset("rl-lambda", rl_rows(8), "rlvr")
    arn = deploy("adds-up-grader", REWARD_FUNCTION)
    assert arn.startswith("arn:aws:lambda:") and arn.endswith(":function:adds-up-grader")
    job = RLVRTrainer(model=str(tiny_model), custom_reward_function=arn, training_dataset=data,
                      hyperparameters=RL_SMALL, base_job_name="tiny").train()
    assert job.training_job_status == "Completed", job.failure_reason
    registered = Evaluator.get("adds-up-grader")
    assert (registered.method, registered.reference, registered.type) == (
        EvaluatorMethod.LAMBDA, arn, "RewardFunction")
    lineage = job.lineage["evaluator"]
    assert (lineage["arn"], lineage["version"], lineage["reference"], lineage["reward_contract"]) == (
        registered.arn, "1.0.0", arn, "event")
    assert job.environment["AIREGISTRY_EVALUATOR"] == registered.arn
    assert job.final_metrics["reward_items"] == 8 and job.final_metrics["reward_failures"] == 0
    rewards = [r["reward"] for r in job.metrics() if "reward" in r]
    assert len(rewards) == 2 and all(0.0 <= r <= 1.0 for r in rewards)


@pytest.mark.parametrize("backend", ["embedded", "remote"], indirect=True)
def test_unreachable_lambda_arn_fails_the_checks(backend, tiny_model: Path, make_dataset) -> None:
    data = make_dataset("rl", rl_rows(), "rlvr")
    session = default_session()
    elsewhere = f"arn:aws:lambda:eu-west-3:{int(session.account_id) + 1:012d}:function:their-grader"
    for dry_run in (True, False):
        with pytest.raises(ValueError, match=r"function:their-grader cannot be reached from this "
                                             r"registry \(.*another account or region.*\)\. "
                                             rf"RLVRTrainer on the {backend.name} backend"):
            RLVRTrainer(model=str(tiny_model), custom_reward_function=elsewhere,
                        training_dataset=data, hyperparameters=RL_SMALL).train(dry_run=dry_run)
    # Nothing was registered or recorded.
    assert Evaluator.list()["items"] == [] and TrainingJob.list()["items"] == []

    # One of ours that was deleted since: refused by name, as the registered evaluator too.
    arn = deploy("gone-grader", REWARD_FUNCTION)
    registered = Evaluator.create("gone-grader", "RewardFunction", arn)
    session.functions.delete_function(FunctionName="gone-grader")
    for value in (arn, registered):
        with pytest.raises(ValueError, match=r"gone-grader.*cannot be reached from this registry"):
            RLVRTrainer(model=str(tiny_model), custom_reward_function=value, training_dataset=data,
                        hyperparameters=RL_SMALL, skip_reward_validation=True).train()
    assert TrainingJob.list()["items"] == []
    with pytest.raises(ValueError, match="not a valid Lambda function ARN"):
        RLVRTrainer(model=str(tiny_model), custom_reward_function="arn:aws:lambda:nowhere",
                    training_dataset=data).train(dry_run=True)
