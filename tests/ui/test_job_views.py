"""The job pages' shaping: line charts, curves from metric rows, lineage, log tails; and the
read model over a real embedded home with a job recorded through plain boto3."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from airegistry.ui import training
from airegistry.ui.charts import DOTS_UP_TO, MAX_POINTS, line_chart


def test_line_chart_geometry() -> None:
    chart = line_chart({"loss": [(1, 5.74), (2, 5.71), (3, math.nan), (4, 5.5)],
                        "eval_loss": [(4, 5.72)], "empty": [(1, math.inf)]}, title="Loss")
    assert [line.name for line in chart.lines] == ["loss", "eval_loss"]
    loss, evals = chart.lines
    xs = [float(p.split(",")[0]) for p in loss.points.split()]
    ys = [float(p.split(",")[1]) for p in loss.points.split()]
    assert xs == sorted(xs) and xs[0] == chart.left and xs[-1] == chart.right
    assert len(xs) == 3 and loss.count == 3 and loss.last == 5.5  # the NaN is left out
    assert ys[-1] == chart.base  # the lowest value sits on the axis
    assert [t.label for t in chart.y_ticks] == ["5.5", "5.6", "5.7", "5.8"]
    assert [t.label for t in chart.x_ticks] == ["1", "2", "3", "4"]
    assert evals.dots[0].label == "step 4: 5.72" and evals.dots[0].x == chart.right
    # One point, a flat line, tiny values: still axes that contain the data.
    single = line_chart({"r": [(1, 3.0)]}, title="r")
    assert [t.label for t in single.y_ticks] == ["2", "3", "4"] and len(single.lines[0].dots) == 1
    tiny = line_chart({"loss": [(1, 2e-7), (2, -4e-8)]}, title="loss")
    assert tiny.y_ticks[0].label == "-1e-07" and tiny.y_ticks[-1].label == "2e-07"
    assert line_chart({}, title="none").lines == []


def test_line_chart_thins_long_series() -> None:
    chart = line_chart({"reward": [(i, (i % 7) / 10) for i in range(1, 5001)]}, title="reward")
    line = chart.lines[0]
    assert len(line.points.split()) <= MAX_POINTS + 1 and line.count == 5000
    assert line.points.split()[-1].startswith(f"{chart.right:.1f},")  # the last step is kept
    assert line.dots == [] and DOTS_UP_TO < MAX_POINTS
    assert chart.x_ticks[-1].label == "5000"


def test_curves_and_metric_table_from_trl_rows() -> None:
    rows = [
        {"step": 1, "epoch": 0.5, "time": 1.0, "loss": 2.0, "learning_rate": 1e-4, "reward": 0.1},
        {"step": 2, "epoch": 1.0, "time": 2.0, "loss": 1.5, "learning_rate": 5e-5, "reward": math.nan},
        {"step": 2, "epoch": 1.0, "time": 3.0, "eval_loss": 1.7, "train_runtime": 0.3},
    ]
    charts = training.curves(rows)
    assert [c.title for c in charts] == ["Loss", "Reward", "Learning rate"]
    assert [line.name for line in charts[0].lines] == ["loss", "eval_loss"]
    assert charts[1].lines[0].count == 1  # the NaN reward is not a point
    dpo = training.curves([{"step": 1, "loss": 0.7, "rewards/chosen": 0.1, "rewards/rejected": -0.1}])
    assert [line.name for line in dpo[1].lines] == ["rewards/chosen", "rewards/rejected"]
    table = {m.name: m for m in training.metric_summaries(rows)}
    assert set(table) == {"loss", "learning_rate", "reward", "eval_loss", "train_runtime"}
    assert (table["loss"].last, table["loss"].low, table["loss"].high, table["loss"].count) == (1.5, 1.5, 2.0, 2)


def test_lineage_from_the_file_or_from_the_record() -> None:
    arn = "arn:aws:sagemaker:us-east-1:123456789012:hub-content/hub/DataSet/qa-train/2.0.0"
    channels = [{"ChannelName": "train", "ContentType": "prompt_completion", "DataSource": {
        "S3DataSource": {"S3Uri": "s3://b/k.jsonl"}, "DatasetSource": {"DatasetArn": arn}}},
        {"ChannelName": "validation", "DataSource": {"S3DataSource": {"S3Uri": "s3://b/v.jsonl"}}}]
    evaluator = "arn:aws:sagemaker:us-east-1:123456789012:hub-content/hub/JsonDoc/grader/1.0.0"
    fallback = training.lineage_of({}, channels=channels, environment={"AIREGISTRY_EVALUATOR": evaluator},
                                   hyperparameters={"max_steps": "5"}, final_metrics={"loss": 1.0})
    assert [(d.channel, d.name, d.version, d.uri) for d in fallback.datasets] == [
        ("train", "qa-train", "2.0.0", "s3://b/k.jsonl"), ("validation", None, None, "s3://b/v.jsonl")]
    assert (fallback.evaluator.name, fallback.evaluator.version) == ("grader", "1.0.0")
    assert fallback.hyperparameters == [("max_steps", "5")] and fallback.final_metrics == [("loss", 1.0)]
    recorded = training.lineage_of({
        "datasets": [{"channel": "train", "name": "qa-train", "version": "1.0.0", "arn": arn,
                      "uri": "s3://b/k.jsonl", "sha256": "ab" * 32, "rows": 16}],
        "evaluator": {"name": "grader", "version": "3.0.0", "type": "RewardFunction",
                      "reward_contract": "batch"},
        "hyperparameters": {"packing": False, "max_steps": 5}, "final_metrics": {"x": math.nan},
        "versions": {"trl": "1.16.0", "peft": None},
    })
    assert recorded.datasets[0].sha256 == "ab" * 32 and recorded.datasets[0].rows == 16
    assert recorded.evaluator.extra == {"type": "RewardFunction", "reward_contract": "batch"}
    assert recorded.hyperparameters == [("max_steps", "5"), ("packing", "false")]
    assert recorded.final_metrics == [] and recorded.versions == [("trl", "1.16.0")]
    assert training.content_ref("not an arn") is None


def test_log_tail_drops_the_cut_line() -> None:
    data = b"".join(f"line {i}\n".encode() for i in range(300))
    tail = training.log_tail(data[-1000:], cut=True)
    lines = tail.splitlines()
    assert len(lines) <= training.LOG_TAIL_LINES and lines[-1] == "line 299"
    assert all(line.startswith("line ") and line.split()[1].isdigit() for line in lines)
    assert training.log_tail("é\n".encode() + b"\xff", cut=False) == "é\n\ufffd"


@pytest.fixture
def model(registry_home: Path):
    from airegistry.session import Session
    from airegistry.ui.read_model import ReadModel

    return ReadModel(Session(backend="embedded", home=registry_home))


def test_read_model_jobs_recorded_by_another_tool(model) -> None:
    from airegistry.ui.errors import BadRequest, NotFound

    client = model.session.sagemaker_client
    for i in range(3):
        client.create_training_job(TrainingJobName=f"job-{i}", RoleArn="arn:aws:iam::123456789012:role/r",
                                   OutputDataConfig={"S3OutputPath": "s3://b/o/"},
                                   Tags=[{"Key": "n", "Value": str(i)}])
    client.update_trial_component(TrialComponentName="job-0-aws-training-job",
                                  Parameters={"Progress.CurrentStep": {"NumberValue": 3}},
                                  Status={"PrimaryStatus": "Failed", "Message": "<b>no</b>"})
    first = model.jobs_page(per_page=2)
    assert [j.name for j in first.items] == ["job-2", "job-1"] and first.next_token
    second = model.jobs_page(per_page=2, token=first.next_token, page=2)
    assert [j.name for j in second.items] == ["job-0"] and second.next_token is None
    with pytest.raises(BadRequest):
        model.jobs_page(per_page=2, token=first.next_token, status="Failed")
    overview = model.overview()
    assert [j.name for j in overview.running_jobs] == ["job-2", "job-1"]
    assert [j.name for j in overview.failed_jobs] == ["job-0"]
    job = model.job("job-0")
    assert (job.status, job.failure_reason, job.step, job.tags) == ("Failed", "<b>no</b>", 3, [("n", "0")])
    assert job.charts == [] and job.logs == "" and job.lineage.datasets == [] and job.model is None
    assert model.job_progress("job-1") == {"state": "running", "status": "InProgress", "done": 0,
                                           "total": None}
    assert model.stop_job("job-1") == "Stopping"
    with pytest.raises(BadRequest, match="cannot be stopped"):
        model.stop_job("job-0")
    for missing in ("job-9", "<script>", "x" * 80):
        with pytest.raises(NotFound):
            model.job(missing)
    with pytest.raises(NotFound):
        model.model("no-such-model")
