"""The airegistry command: outputs for people and scripts, and exit codes scripts can trust."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from airegistry.cli.main import main

ROWS = "".join(json.dumps({"prompt": f"q{i}", "completion": f"a{i}"}) + "\n" for i in range(5))


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_dataset_lifecycle_with_json_output(registry_home: Path, tmp_path: Path, capsys) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text(ROWS)
    code, out, _ = run(capsys, "datasets", "create", "cli-data", str(data), "--technique", "sft",
                       "--tag", "Project=Chatbot", "--json")
    assert code == 0
    created = json.loads(out)
    assert created["status"] == "Available" and created["version"] == "1.0.0"
    assert created["stats"]["rows"] == 5

    code, out, _ = run(capsys, "datasets", "list", "--json")
    assert code == 0 and [i["name"] for i in json.loads(out)["items"]] == ["cli-data"]
    code, out, _ = run(capsys, "datasets", "get", "cli-data", "--json")
    assert code == 0 and json.loads(out)["method"] == "uploaded"
    run(capsys, "datasets", "create", "cli-data", str(data), "--technique", "sft", "--json")
    code, out, _ = run(capsys, "datasets", "versions", "cli-data", "--json")
    assert [v["Version"] for v in json.loads(out)] == ["2.0.0", "1.0.0"]
    target = tmp_path / "copy.jsonl"
    code, out, _ = run(capsys, "datasets", "download", "cli-data", str(target))
    assert code == 0 and target.read_text() == ROWS
    code, out, _ = run(capsys, "datasets", "delete", "cli-data", "--version", "1.0.0", "--json")
    assert code == 0 and json.loads(out) == {"deleted": True}
    code, _, err = run(capsys, "datasets", "delete", "cli-data", "--version", "1.0.0")
    assert code == 1 and "no such dataset" in err
    code, _, _ = run(capsys, "datasets", "delete", "cli-data")
    assert code == 0


def test_exit_codes(registry_home: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x"}\n')
    code, _, err = run(capsys, "datasets", "create", "broken", str(bad), "--technique", "sft")
    assert code == 1 and "line 1" in err
    code, _, err = run(capsys, "datasets", "create", "missing", str(tmp_path / "nope.jsonl"))
    assert code == 2 and "not found" in err
    code, _, err = run(capsys, "datasets", "get", "absent")
    assert code == 1 and "ResourceNotFound" in err
    with pytest.raises(SystemExit) as exc:
        main(["datasets", "create", "x", str(bad), "--technique", "ppo"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["datasets"])
    assert exc.value.code == 2


def test_evaluator_commands(registry_home: Path, tmp_path: Path, capsys) -> None:
    code_file = tmp_path / "reward.py"
    code_file.write_text(
        "def lambda_handler(event, context):\n"
        "    return {'reward': 1.0 if event['response'] == 'yes' else 0.0}\n"
    )
    code, out, _ = run(capsys, "evaluators", "create", "cli-eval", "--type", "RewardFunction",
                       str(code_file), "--json")
    assert code == 0 and json.loads(out)["method"] == "byoc"
    code, out, _ = run(capsys, "evaluators", "invoke", "cli-eval", '{"prompt": "p", "response": "yes"}')
    assert code == 0 and json.loads(out)["reward"] == 1.0
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"prompt": "p", "response": r}) + "\n" for r in ["yes", "no", "yes"]))
    results = tmp_path / "results.jsonl"
    code, out, _ = run(capsys, "evaluators", "evaluate", "cli-eval", str(rows), "--json",
                       "--output", str(results))
    summary = json.loads(out)
    assert code == 0 and summary["items"] == 3 and summary["mean_reward"] == pytest.approx(2 / 3)
    assert len(results.read_text().splitlines()) == 3
    code, out, _ = run(capsys, "evaluators", "list", "--json")
    assert [i["name"] for i in json.loads(out)["items"]] == ["cli-eval"]
    code, _, err = run(capsys, "evaluators", "invoke", "cli-eval", "not json")
    assert code == 2 and "bad event" in err
    code, out, _ = run(capsys, "evaluators", "delete", "cli-eval", "--json")
    assert code == 0


def test_console_script_entry_point(registry_home: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "airegistry.cli.main", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.startswith("airegistry ")
