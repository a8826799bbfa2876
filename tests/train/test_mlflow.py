"""MLflow logging against a local MLflow store (SQLite)."""

from __future__ import annotations

import pytest

from airegistry.train.sft_trainer import SFTTrainer

from .conftest import SMALL, sft_rows

mlflow = pytest.importorskip("mlflow")


@pytest.mark.slow
def test_params_metrics_and_lineage_are_logged(registry_home, tiny_model, make_dataset, tmp_path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    data = make_dataset("sft", sft_rows(), "sft")
    # Artifacts (lineage.json) go under the test's directory, not the working directory.
    MlflowClient(tracking_uri=uri).create_experiment(
        "tiny-exp", artifact_location=(tmp_path / "artifacts").as_uri())
    job = SFTTrainer(model=str(tiny_model), training_dataset=data, hyperparameters=SMALL,
                     mlflow_resource_arn=uri, mlflow_experiment_name="tiny-exp",
                     mlflow_run_name="first-run").train()
    details = job.mlflow_details
    client = MlflowClient(tracking_uri=uri)
    run = client.get_run(details["MlflowRunId"])
    assert run.info.experiment_id == details["MlflowExperimentId"]
    assert client.get_experiment(run.info.experiment_id).name == "tiny-exp"
    assert run.info.run_name == "first-run" and run.info.status == "FINISHED"
    assert run.data.params["max_steps"] == "2" and run.data.params["lora_r"] == "8"
    losses = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in losses] == [1, 2]
    tags = run.data.tags
    assert tags["airegistry.lineage.datasets.0.arn"] == data.arn
    assert tags["airegistry.lineage.datasets.0.version"] == data.version
    assert tags["airegistry.lineage.versions.trl"]
    assert job.environment["MLFLOW_TRACKING_URI"] == uri
    assert (tmp_path / "artifacts").is_dir()
