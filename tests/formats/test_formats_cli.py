"""The ``validate`` sub-command: exit codes, --json output, human output."""

from __future__ import annotations

import argparse
import json

import pytest
from fmt_helpers import GOOD, jsonl, write

from airegistry.cli.validate import add_validate_parser, run_validate


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="airegistry datasets")
    add_validate_parser(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(["validate", *argv])
    assert args.func is run_validate
    return args.func(args)


def test_valid_json_output(tmp_path, capsys) -> None:
    p = write(tmp_path, "d.jsonl", jsonl([GOOD["prompt_completion"]] * 2))
    assert _run([str(p), "--technique", "sft", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["valid"] is True and out["rows"] == 2 and out["format"] == "prompt_completion"


def test_invalid_exit_1_and_table(tmp_path, capsys) -> None:
    p = write(tmp_path, "d.jsonl", jsonl([GOOD["prompt_completion"], {"prompt": 3}]))
    assert _run([str(p)]) == 1
    out = capsys.readouterr().out
    assert "INVALID" in out and "$.prompt" in out and "line(s): 2" in out


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["missing.jsonl"], "no such file"),
        (["x.txt"], "unsupported file extension"),
        (["ok.jsonl", "--technique", "ppo"], "unknown technique"),
        (["ok.jsonl", "--max-size", "3"], "over the limit"),
    ],
)
def test_usage_errors_exit_2(tmp_path, capsys, argv, fragment) -> None:
    write(tmp_path, "x.txt", b"{}")
    write(tmp_path, "ok.jsonl", jsonl([GOOD["prompt_only"]]))
    argv = [str(tmp_path / argv[0]), *argv[1:]]
    assert _run(argv) == 2
    assert fragment in capsys.readouterr().err
    assert _run([*argv, "--json"]) == 2
    assert fragment in json.loads(capsys.readouterr().out)["error"]
