"""``airegistry train`` and ``airegistry jobs``."""

from __future__ import annotations

import json

import pytest

from airegistry.cli.main import main

from .conftest import FAILING_REWARD_FUNCTION, rl_rows, sft_rows


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.slow
def test_train_then_inspect_the_job(registry_home, tiny_model, make_dataset, capsys) -> None:
    make_dataset("cli-sft", sft_rows(), "sft")
    code, out, err = run(capsys, "train", "sft", "--model", str(tiny_model), "--dataset", "cli-sft:1",
                         "--set", "max_steps=2", "--set", "per_device_train_batch_size=4",
                         "--base-job-name", "tiny", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["training_job_status"] == "Completed"
    name = summary["training_job_name"]
    assert summary["output_model_package_arn"].endswith("/Model/tiny/1.0.0")

    code, out, _ = run(capsys, "jobs", "list", "--json")
    assert code == 0 and [i["training_job_name"] for i in json.loads(out)["items"]] == [name]
    code, out, _ = run(capsys, "jobs", "get", name, "--json")
    got = json.loads(out)
    assert code == 0 and got["hyper_parameters"]["max_steps"] == "2"
    assert got["lineage"]["datasets"][0]["name"] == "cli-sft"
    code, out, _ = run(capsys, "jobs", "logs", name)
    assert code == 0 and "step 2:" in out
    code, _, err = run(capsys, "jobs", "stop", name)
    assert code == 2 and "cannot be stopped" in err
    code, _, err = run(capsys, "jobs", "get", "no-such-job")
    assert code == 1 and "does not exist" in err


def test_usage_errors_and_failed_checks(registry_home, tiny_model, make_dataset, make_reward,
                                        capsys) -> None:
    make_dataset("cli-rl", rl_rows(), "rlvr")
    make_reward("cli-broken", FAILING_REWARD_FUNCTION)
    code, _, err = run(capsys, "train", "sft", "--model", str(tiny_model), "--dataset", "cli-rl",
                       "--set", "max_steps")
    assert code == 2 and "KEY=VALUE" in err
    code, _, err = run(capsys, "train", "sft", "--model", str(tiny_model), "--dataset", "cli-rl")
    assert code == 1 and "SFTTrainer takes" in err
    code, _, err = run(capsys, "train", "rlvr", "--model", str(tiny_model), "--dataset", "cli-rl",
                       "--evaluator", "cli-broken", "--dry-run")
    assert code == 1 and "failed validation on 3 of 3 rows" in err
    code, out, _ = run(capsys, "train", "rlvr", "--model", str(tiny_model), "--dataset", "cli-rl",
                       "--evaluator", "cli-broken", "--skip-reward-validation", "--dry-run", "--json")
    assert code == 0 and json.loads(out) == {"dry_run": True, "ok": True}
