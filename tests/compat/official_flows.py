"""The official SDK's flows, run inside the virtualenv that has ``sagemaker-train``.

Not a test module (pytest does not collect it): ``test_official_sdk.py`` runs it with that
virtualenv's interpreter against a real ``airegistry server`` process, with the endpoint,
keys, region and SageMaker config in the environment. It prints one JSON object per
step (``{"step", "ok", "detail"}``) and keeps going after a failed step where the
next ones do not depend on it, so one run reports every flow.

Usage: python official_flows.py WORKDIR
"""

from __future__ import annotations

import io
import json
import sys
import time
import traceback
import zipfile
from pathlib import Path

# The SDK creates its boto3 clients at import time: AWS_ENDPOINT_URL must already be set.
import boto3

RESULTS: list[dict] = []


def report(step: str, ok: bool, detail: str = "", seconds: float = 0.0) -> None:
    RESULTS.append({"step": step, "ok": ok, "detail": detail})
    print(json.dumps({"step": step, "ok": ok, "seconds": round(seconds, 1),
                      "detail": detail[-2000:]}), flush=True)


def step(name: str):
    def wrap(fn):
        def run(*args, **kwargs):
            started = time.monotonic()
            try:
                value = fn(*args, **kwargs)
            except BaseException as exc:  # a step that fails must not stop the others
                report(name, False, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}",
                       time.monotonic() - started)
                return None
            report(name, True, "" if value is None else str(value), time.monotonic() - started)
            return value if value is not None else True
        return run
    return wrap


def status_of(entity) -> str:
    value = entity.status
    return getattr(value, "value", value)


def main(workdir: Path) -> int:
    from sagemaker.ai_registry.dataset import DataSet
    from sagemaker.ai_registry.dataset_utils import CustomizationTechnique
    from sagemaker.ai_registry.evaluator import Evaluator

    train = workdir / "train.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"question {i}"},
                          {"role": "assistant", "content": f"answer {i}"}]} for i in range(20)]
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    reward = workdir / "reward_function.py"
    reward.write_text(
        "def lambda_handler(event, context):\n"
        "    return {'score': float(len(str(event.get('response', ''))))}\n"
    )
    prompt = workdir / "judge_prompt.txt"
    prompt.write_text("Rate the answer from 1 to 10. Answer: {response}\n")
    lam = boto3.client("lambda")

    @step("default bucket: Session(default_bucket=...).default_bucket() creates it")
    def default_bucket():
        # The SDK uploads to sagemaker-<region>-<account> and expects it to exist. Its
        # Session.default_bucket() derives that name through a hard-coded STS endpoint
        # (sts.<region>.amazonaws.com), so a user of any other endpoint names the bucket
        # and lets the same method create it: ListBuckets, HeadBucket (404), CreateBucket.
        from sagemaker.core.helper.session_helper import Session

        account = boto3.client("sts").get_caller_identity()["Account"]
        region = boto3.session.Session().region_name
        name = Session(default_bucket=f"sagemaker-{region}-{account}").default_bucket()
        boto3.client("s3").head_bucket(Bucket=name, ExpectedBucketOwner=account)
        return name

    @step("dataset.create(wait=True)")
    def create_wait():
        ds = DataSet.create(name="official-sft", source=str(train),
                            customization_technique=CustomizationTechnique.SFT, wait=True)
        ds.refresh()
        assert status_of(ds) == "Available", status_of(ds)
        assert ds.version == "1.0.0", ds.version
        return f"{ds.name} {ds.version} {status_of(ds)} {ds.source}"

    @step("dataset.create(wait=False) + wait()")
    def create_nowait():
        ds = DataSet.create(name="official-nowait", source=str(train), wait=False)
        ds.wait(poll=1, timeout=120)
        assert status_of(ds) == "Available", status_of(ds)
        return f"{ds.name} {ds.version} {status_of(ds)}"

    @step("DataSet.get")
    def get():
        ds = DataSet.get("official-sft")
        assert ds.name == "official-sft" and status_of(ds) == "Available", (ds.name, ds.status)
        assert ds.source.startswith("s3://"), ds.source
        assert ds.customization_technique == CustomizationTechnique.SFT, ds.customization_technique
        return ds.source

    @step("DataSet.list")
    def listing():
        out = DataSet.list()
        names = sorted(item["HubContentName"] for item in out["items"])
        assert names == ["official-nowait", "official-sft"], names
        return names

    @step("DataSet.get_all")
    def get_all():
        names = sorted(d.name for d in DataSet.get_all())
        assert names == ["official-nowait", "official-sft"], names
        return names

    @step("dataset second version")
    def second_version():
        ds = DataSet.create(name="official-sft", source=str(train),
                            customization_technique=CustomizationTechnique.SFT, wait=False)
        ds.wait(poll=1, timeout=120)
        assert ds.version == "2.0.0", ds.version
        return ds.version

    @step("dataset.get_versions")
    def versions():
        ds = DataSet.get("official-sft")
        found = sorted(v.version for v in ds.get_versions())
        assert found == ["1.0.0", "2.0.0"], found
        return found

    @step("evaluator from an existing Lambda ARN")
    def from_arn():
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("lambda_function.py", reward.read_text())
        fn = lam.create_function(FunctionName="official-existing", Runtime="python3.12",
                                 Role="arn:aws:iam::123456789012:role/reward",
                                 Handler="lambda_function.lambda_handler",
                                 Code={"ZipFile": buf.getvalue()})
        ev = Evaluator.create(name="official-lambda", type="RewardFunction",
                              source=fn["FunctionArn"], wait=True)
        ev.refresh()
        assert status_of(ev) == "Available", status_of(ev)
        assert ev.reference == fn["FunctionArn"], ev.reference
        return ev.reference

    @step("evaluator BYOC from a local file (python3.9), invocable through boto3")
    def byoc():
        ev = Evaluator.create(name="official-byoc", type="RewardFunction", source=str(reward),
                              wait=True)
        ev.refresh()
        assert status_of(ev) == "Available", status_of(ev)
        out = lam.invoke(FunctionName=ev.reference, Payload=json.dumps({"response": "abcd"}))
        payload = json.loads(out["Payload"].read())
        assert "FunctionError" not in out, payload
        assert payload == {"score": 4.0}, payload
        config = lam.get_function_configuration(FunctionName=ev.reference)
        return f"{ev.reference} runtime={config['Runtime']} -> {payload}"

    @step("evaluator RewardPrompt from a file")
    def reward_prompt():
        ev = Evaluator.create(name="official-prompt", type="RewardPrompt", source=str(prompt),
                              wait=True)
        ev.refresh()
        assert status_of(ev) == "Available", status_of(ev)
        assert ev.reference.startswith("s3://"), ev.reference
        return ev.reference

    @step("Evaluator.get_all")
    def evaluators():
        names = sorted(e.name for e in Evaluator.get_all())
        return names

    @step("DataSet.delete_by_name")
    def delete_by_name():
        assert DataSet.delete_by_name("official-sft") is True
        try:
            DataSet.get("official-sft")
        except Exception as exc:
            assert "ResourceNotFound" in str(exc) or "does not exist" in str(exc), exc
        else:
            raise AssertionError("official-sft still exists after delete_by_name")
        return "deleted"

    @step("evaluator.delete")
    def evaluator_delete():
        ev = Evaluator.get("official-lambda")
        assert ev.delete() is True
        remaining = sorted(e.name for e in Evaluator.get_all())
        assert "official-lambda" not in remaining, remaining
        return remaining

    for fn in (default_bucket, create_wait, create_nowait, get, listing, get_all, second_version, versions,
               from_arn, byoc, reward_prompt, evaluators, delete_by_name, evaluator_delete):
        fn()
    return 0 if all(r["ok"] for r in RESULTS) else 1


if __name__ == "__main__":
    started = time.monotonic()
    code = main(Path(sys.argv[1]))
    print(json.dumps({"done": True, "seconds": round(time.monotonic() - started, 1)}), flush=True)
    sys.exit(code)
