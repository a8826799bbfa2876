"""A registry home with one dataset of each format, a failed import, hostile content,
two evaluators and 10,000 filler datasets: what the browser tests look at."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

XSS_SCRIPT = "<script>window.__xss = (window.__xss || 0) + 1</script>"
XSS_IMG = '<img src="x" onerror="window.__xss = (window.__xss || 0) + 1">'
FILLER = 10_000
UNICODE_DESCRIPTION = "Données d'entraînement ✓ — 日本語のデータ, with .. and ../ in it"

REWARD_CODE = '''\
"""Scores a response by its length; details carry markup to prove it stays text."""


def lambda_handler(event, context):
    response = str(event.get("response", ""))
    return {
        "reward": min(1.0, len(response) / 40),
        "details": {"chars": len(response), "note": '<img src="x" onerror="window.__xss=1">'},
    }
'''


def _jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n"
                            for r in rows), encoding="utf-8")
    return path


def _rows_pc(n: int) -> list[dict]:
    return [{"prompt": f"Question {i}: what is {i} + {i}?", "completion": "It is " + "very " * (i % 9) + f"{2 * i}."}
            for i in range(1, n + 1)]


def build(home: Path, work: Path) -> dict[str, Any]:
    """Create everything through the SDK (and the filler rows straight into the hub table)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airegistry.dataset import DataSet
    from airegistry.evaluator import Evaluator
    from airegistry.session import Session

    work.mkdir(parents=True, exist_ok=True)
    session = Session(backend="embedded", home=home)
    made: dict[str, Any] = {}

    def create(name: str, path: Path, technique: str | None, **kw: Any) -> None:
        made[name] = DataSet.create(name, str(path), technique, sagemaker_session=session, **kw)

    create("sft-pc", _jsonl(work / "pc.jsonl", _rows_pc(120)), "sft",
           description=UNICODE_DESCRIPTION, tags=[{"Key": "team", "Value": "équipe support"}, {"Key": "言語", "Value": "日本語"}])
    create("chat-sft", _jsonl(work / "chat.jsonl", [
        {"messages": [{"role": "system", "content": "You are terse."},
                      {"role": "user", "content": f"Say hi {i}"},
                      {"role": "assistant", "content": f"Hi {i}!"}]} for i in range(1, 8)]), "sft")
    create("converse-sft", _jsonl(work / "converse.jsonl", [
        {"schemaVersion": "bedrock-conversation-2024", "system": [{"text": "Be kind."}],
         "messages": [{"role": "user", "content": [{"text": f"Tell me about {i}"}]},
                      {"role": "assistant", "content": [{"text": f"{i} is a number."}]}]}
        for i in range(1, 5)]), "sft")
    create("prefs-dpo", _jsonl(work / "prefs.jsonl", [
        {"prompt": f"Write a greeting #{i}", "chosen": "Hello, and welcome!", "rejected": "go away"}
        for i in range(1, 6)]), "dpo")
    with open(work / "prompts.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["prompt"])
        writer.writerows([[f"Solve {i} * 3"] for i in range(1, 71)])
    create("prompts-csv", work / "prompts.csv", "rlvr")
    (work / "io.json").write_text(json.dumps(
        [{"input": f"in {i}", "output": f"out {i}"} for i in range(1, 61)]), encoding="utf-8")
    create("io-json", work / "io.json", "sft")
    table = pa.table({"prompt": [f"pq prompt {i}" for i in range(1, 81)],
                      "completion": [f"pq answer {i}" for i in range(1, 81)]})
    pq.write_table(table, work / "pc.parquet", row_group_size=30)
    create("pc-parquet", work / "pc.parquet", "sft")
    create("hostile", _jsonl(work / "hostile.jsonl", [
        {"prompt": XSS_SCRIPT, "completion": XSS_IMG},
        {"prompt": "</pre></div><b>bold?</b>", "completion": "'\"><svg onload=window.__xss=1>"},
    ]), "sft", description=XSS_IMG + XSS_SCRIPT)

    create("to-delete", _jsonl(work / "delete-me.jsonl", _rows_pc(3)), "sft")
    create("to-delete", _jsonl(work / "delete-me-2.jsonl", _rows_pc(4)), "sft")

    # A failed import: rows 2 and 4 break the format. Registered by reference so the
    # bad file reaches the import job (a local file is refused before upload).
    bad = _jsonl(work / "bad.jsonl", [
        {"prompt": "fine", "completion": "fine"},
        {"prompt": "no completion"},
        {"prompt": "fine", "completion": "fine"},
        "{not json",
    ])
    session.objects.ensure_bucket("user-data")
    session.objects.upload_file(bad, "user-data", "incoming/bad.jsonl")
    try:
        DataSet.create("broken-import", "s3://user-data/incoming/bad.jsonl", "sft", sagemaker_session=session)
    except ValueError:
        pass
    made["broken-import"] = DataSet.get("broken-import", session)

    reward = work / "reward.py"
    reward.write_text(REWARD_CODE, encoding="utf-8")
    made["length-reward"] = Evaluator.create("length-reward", "RewardFunction", str(reward),
                                             sagemaker_session=session,
                                             description="Longer answers score higher")
    made["judge-prompt"] = Evaluator.create(
        "judge-prompt", "RewardPrompt",
        "Rate the answer from 0 to 10.\nQuestion: {prompt}\nAnswer: {response}\n<b>not bold</b>",
        sagemaker_session=session)
    seed_filler(session)
    made["hub"] = session.hub_name
    return made


def seed_filler(session: Any, count: int = FILLER) -> None:
    """``count`` available datasets, written in one statement (through the hub service this
    would take many seconds and its import queue bound): dated in the past, so the real
    datasets above stay first in the default newest-first order."""
    from sqlalchemy import insert

    from airegistry.storage.metadata.tables import hub_contents

    hub = session.ensure_hub()
    base = time.time() - 400 * 86400
    rows = []
    for i in range(count):
        stats = {"rows": 100 + i, "bytes": 4096 + i, "format": "prompt_completion", "technique": "sft"}
        rows.append({
            "hub_name": hub, "content_type": "DataSet", "name": f"filler-{i:05d}",
            "v_major": 1, "v_minor": 0, "v_patch": 0, "document_schema_version": "2.0.0",
            "document": json.dumps({"DatasetType": "SFT", "DatasetS3Bucket": "user-data",
                                    "DatasetS3Prefix": f"filler/{i}.jsonl", "Dependencies": []}),
            "search_keywords": json.dumps(["method:generated", "customization_technique:sft"]),
            "tags": "[]", "status": "Available", "stats": json.dumps(stats),
            "created_at": base + i, "modified_at": base + i,
        })
    with session.home.db.write() as conn:
        conn.execute(insert(hub_contents), rows)
