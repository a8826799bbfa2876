"""The job record: separate training processes, stop, death, and the SageMaker operations."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from airegistry.session import default_session
from airegistry.train import process as processes
from airegistry.train.job import TrainingJob
from airegistry.train.sft_trainer import SFTTrainer

from .conftest import generate, sft_rows

LONG = {"max_steps": 5000, "per_device_train_batch_size": 2, "logging_steps": 1}


@pytest.fixture
def fast_heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIREGISTRY_TRAINING_HEARTBEAT_SECONDS", "0.2")


def wait_until(predicate, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def start_long_job(tiny_model: Path, make_dataset) -> TrainingJob:
    data = make_dataset("long", sft_rows(), "sft")
    job = SFTTrainer(model=str(tiny_model), training_dataset=data, hyperparameters=LONG,
                     base_job_name="tiny").train(wait=False)
    assert job.training_job_status == "InProgress"
    return job


def stepping(job: TrainingJob) -> bool:
    job.refresh()
    assert job.training_job_status in ("InProgress", "Stopping"), job.failure_reason
    return (job.progress_info or {}).get("CurrentStep", 0) >= 2


@pytest.mark.slow
def test_stop_mid_run_keeps_the_last_weights(backend, tiny_model, make_dataset, fast_heartbeat,
                                             tmp_path) -> None:
    job = start_long_job(tiny_model, make_dataset)
    try:
        wait_until(lambda: stepping(job))
        job.stop()
        assert job.training_job_status in ("Stopping", "Stopped")
        job.wait(poll=0.2, timeout=120)
    finally:
        process = processes.launched(job.training_job_name)
        if process.poll() is None and job.training_job_status != "Stopped":
            process.kill()
        process.wait(timeout=60)
    assert job.training_job_status == "Stopped" and job.secondary_status == "Stopped"
    assert 2 <= job.progress_info["CurrentStep"] < 5000
    assert job.output_model_package_arn is None  # a stopped run is not registered
    assert job.lineage["stopped"] is True
    assert [t["Status"] for t in job.secondary_status_transitions][-2:] == ["Stopping", "Stopped"]
    generate(job.download_model(tmp_path / "stopped"))
    with pytest.raises(ClientError, match="Stopped and cannot be stopped"):
        job.stop()


@pytest.mark.slow
def test_training_process_killed_is_reported_failed(registry_home, tiny_model, make_dataset,
                                                    fast_heartbeat) -> None:
    job = start_long_job(tiny_model, make_dataset)
    process = processes.launched(job.training_job_name)
    try:
        wait_until(lambda: stepping(job))
        pid = int(job.environment["AIREGISTRY_TRAINING_PID"])
        assert pid == process.pid
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: process.poll() is not None, timeout=30)
        job.refresh()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
    assert job.training_job_status == "Failed"
    assert job.failure_reason == "training process died (exit status -9, killed by SIGKILL)"
    # Another reader agrees, and the record never changes again.
    assert TrainingJob.get(job.training_job_name).training_job_status == "Failed"


@pytest.mark.slow
def test_dead_process_seen_by_a_reader_without_its_exit_status(
    registry_home, tiny_model, make_dataset, fast_heartbeat
) -> None:
    job = start_long_job(tiny_model, make_dataset)
    process = processes._LAUNCHED.pop(job.training_job_name)
    try:
        wait_until(lambda: stepping(job))
        process.kill()
        wait_until(lambda: not stepping_alive(process.pid))
        reader = TrainingJob.get(job.training_job_name)
    finally:
        process.wait(timeout=30)
    assert reader.training_job_status == "Failed"
    assert f"pid {process.pid} is gone" in reader.failure_reason


def stepping_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_silent_job_is_failed_by_the_registry(registry_home, monkeypatch) -> None:
    monkeypatch.setenv("AIREGISTRY_TRAINING_STALE_SECONDS", "0.5")
    client = default_session().sagemaker_client
    client.create_training_job(TrainingJobName="silent", RoleArn="arn:aws:iam::123456789012:role/r",
                               OutputDataConfig={"S3OutputPath": "s3://bucket/out/"})
    assert client.describe_training_job(TrainingJobName="silent")["TrainingJobStatus"] == "InProgress"
    time.sleep(0.7)
    listed = client.list_training_jobs()["TrainingJobSummaries"]
    assert [(s["TrainingJobName"], s["TrainingJobStatus"]) for s in listed] == [("silent", "Failed")]
    described = client.describe_training_job(TrainingJobName="silent")
    assert described["FailureReason"].startswith("training process died: no report for")
    with pytest.raises(ClientError, match="finished job does not change"):
        client.update_trial_component(TrialComponentName="silent-aws-training-job",
                                      Status={"PrimaryStatus": "Completed"})


def test_training_job_operations_through_plain_boto3(backend) -> None:
    session = default_session()
    client = session.sagemaker_client
    if backend.name == "remote":
        client = boto3.client("sagemaker", endpoint_url=os.environ["AIREGISTRY_ENDPOINT_URL"],
                              region_name="us-east-1")
    for i in range(3):
        client.create_training_job(
            TrainingJobName=f"job-{i}", RoleArn="arn:aws:iam::123456789012:role/r",
            OutputDataConfig={"S3OutputPath": "s3://bucket/out/"}, HyperParameters={"seed": str(i)},
        )
    # A job recorded by another tool has no record files (and nothing is looked up on AWS
    # for them, though this fresh registry has no bucket yet).
    recorded = TrainingJob.get("job-0")
    assert (recorded.lineage, recorded.logs(), recorded.metrics()) == ({}, "", [])
    with pytest.raises(ClientError) as duplicate:
        client.create_training_job(TrainingJobName="job-0", RoleArn="arn:aws:iam::123456789012:role/r",
                                   OutputDataConfig={"S3OutputPath": "s3://bucket/out/"})
    assert duplicate.value.response["Error"]["Code"] == "ResourceInUse"
    with pytest.raises(ClientError) as missing:
        client.describe_training_job(TrainingJobName="job-9")
    assert missing.value.response["Error"]["Code"] == "ValidationException"
    names = []
    token = None
    while True:
        page = client.list_training_jobs(MaxResults=2, SortBy="Name", SortOrder="Ascending",
                                         **({"NextToken": token} if token else {}))
        names += [s["TrainingJobName"] for s in page["TrainingJobSummaries"]]
        token = page.get("NextToken")
        if not token:
            break
    assert names == ["job-0", "job-1", "job-2"]
    client.update_trial_component(
        TrialComponentName="job-1-aws-training-job",
        Parameters={"SecondaryStatus": {"StringValue": "Training"},
                    "Progress.CurrentStep": {"NumberValue": 7},
                    "Metric.train_loss": {"NumberValue": 0.5}},
        OutputArtifacts={"SageMaker.ModelArtifact": {"Value": "s3://bucket/out/job-1/"}},
    )
    client.stop_training_job(TrainingJobName="job-1")
    client.update_trial_component(TrialComponentName="job-1-aws-training-job",
                                  Status={"PrimaryStatus": "Stopped"})
    job = client.describe_training_job(TrainingJobName="job-1")
    assert job["TrainingJobStatus"] == "Stopped"
    assert job["ProgressInfo"]["CurrentStep"] == 7
    assert job["FinalMetricDataList"][0]["MetricName"] == "train_loss"
    assert job["ModelArtifacts"]["S3ModelArtifacts"] == "s3://bucket/out/job-1/"
    assert job["HyperParameters"] == {"seed": "1"}
    stopped = client.list_training_jobs(StatusEquals="Stopped")["TrainingJobSummaries"]
    assert [s["TrainingJobName"] for s in stopped] == ["job-1"]
    assert [j["training_job_name"] for j in TrainingJob.list(status_equals="InProgress")["items"]] == [
        "job-2", "job-0"]
