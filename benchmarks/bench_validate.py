"""Benchmark of dataset validation against its floors and peers, in one run.

Generates seeded synthetic JSONL datasets (SFT prompt/completion, DPO preference, OpenAI
chat; realistic lengths, unicode, escapes) and measures, each in a fresh subprocess,
CPU seconds (self + children), wall seconds and peak RSS of:

  (a) reading the lines, no parsing        (b) orjson.loads per line: the parse floor
  (c) json.loads per line                  (d) airegistry validate, single process
  (e) airegistry validate, parallel        (f) jsonschema Draft 7, every row
  (g) pyarrow.json.read_json

and prints a table with each CPU/wall ratio to (b). Each measurement is repeated
(``--repeat``, default 3, interleaved) and the lowest CPU and wall times are kept, because
a shared machine adds noise that only ever makes things slower; peak RSS is the highest
seen. Usage:

    python benchmarks/bench_validate.py [--size-mb 300] [--dir DIR] [--only abde] [--repeat 3]

It is a script, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time

KINDS = {
    "a": "read lines",
    "b": "orjson.loads (floor)",
    "c": "json.loads",
    "d": "airegistry single",
    "e": "airegistry parallel",
    "f": "jsonschema Draft7",
    "g": "pyarrow read_json",
}

WORDS = ["the", "model", "learns", "from", "data", "and", "every", "row", "must", "be", "usable", "training", "signal", "données", "café", "naïve", "über", "straße", "日本語", "テキスト", "中文", "데이터", "emoji", "🚀", "✅", 'quote"inside', "back\\slash", "tab\there", "new\nline", "math", "∑", "∫", "≤", "≥", "code", "{x:", "[1,", "2]}"]

_MSG = {"type": "object", "required": ["role", "content"],
        "properties": {"role": {"enum": ["system", "developer", "user", "assistant", "tool"]},
                       "content": {"type": "string", "minLength": 1}}}
_TEXT = {"anyOf": [{"type": "string", "minLength": 1},
                   {"type": "array", "minItems": 1, "items": _MSG}]}
SCHEMAS = {
    "sft": {"type": "object", "required": ["prompt", "completion"],
            "properties": {"prompt": _TEXT, "completion": _TEXT}},
    "dpo": {"type": "object", "required": ["prompt", "chosen", "rejected"],
            "properties": {"prompt": _TEXT, "chosen": _TEXT, "rejected": _TEXT}},
    "chat": {"type": "object", "required": ["messages"],
             "properties": {"messages": {"type": "array", "minItems": 1, "items": _MSG}}},
}
TECHNIQUE = {"sft": "sft", "dpo": "dpo", "chat": "sft"}


def _text(r: random.Random, lo: int, hi: int) -> str:
    return " ".join(r.choices(WORDS, k=r.randint(lo, hi)))


def _row(kind: str, r: random.Random, i: int) -> dict:
    if kind == "sft":
        return {"prompt": _text(r, 10, 200), "completion": _text(r, 20, 400), "id": i}
    if kind == "dpo":
        return {"prompt": _text(r, 10, 150), "chosen": _text(r, 20, 300),
                "rejected": _text(r, 20, 300)}
    msgs = [{"role": "system", "content": _text(r, 5, 40)}]
    for _ in range(r.randint(1, 4)):
        msgs.append({"role": "user", "content": _text(r, 5, 120)})
        msgs.append({"role": "assistant", "content": _text(r, 10, 250)})
    return {"messages": msgs}


def generate(kind: str, path: str, size: int, seed: int = 7) -> None:
    import orjson

    r = random.Random(f"{seed}-{kind}")
    written = 0
    i = 0
    with open(path, "wb") as f:
        while written < size:
            block = b"".join(orjson.dumps(_row(kind, r, i + k)) + b"\n" for k in range(1000))
            i += 1000
            f.write(block)
            written += len(block)


# --------------------------------------------------------------- child side
def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _measure(what: str, path: str, kind: str) -> None:
    if what in "de":
        import airegistry.formats  # noqa: F401  (imports are not part of the measure)
    c0 = _cpu()
    t0 = time.perf_counter()
    if what == "a":
        with open(path, "rb", buffering=1 << 20) as f:
            for _ in f:
                pass
    elif what == "b":
        import orjson

        with open(path, "rb", buffering=1 << 20) as f:
            for line in f:
                orjson.loads(line)
    elif what == "c":
        with open(path, "rb", buffering=1 << 20) as f:
            for line in f:
                json.loads(line)
    elif what in "de":
        from airegistry.formats import validate

        rep = validate(path, technique=TECHNIQUE[kind], parallel=what == "e")
        assert rep.valid, rep.summary()
    elif what == "f":
        import jsonschema
        import orjson

        v = jsonschema.Draft7Validator(SCHEMAS[kind])
        with open(path, "rb", buffering=1 << 20) as f:
            for line in f:
                for _ in v.iter_errors(orjson.loads(line)):
                    raise SystemExit("schema error")
    elif what == "g":
        import pyarrow.json as pj

        pj.read_json(path)
    wall = time.perf_counter() - t0
    cpu = _cpu() - c0
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({
        "cpu": cpu,
        "wall": wall,
        "rss_mb": max(me.ru_maxrss, kids.ru_maxrss) / 1024,
    }))


def _run(what: str, path: str, kind: str) -> dict:
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--measure", what, path, kind],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=float, default=300, help="size of each dataset (MB)")
    ap.add_argument("--dir", help="where to put the datasets (default: a temp dir)")
    ap.add_argument("--only", default="abcdefg", help="subset of measurements, e.g. abde")
    ap.add_argument("--datasets", default="sft,dpo,chat")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per measurement, the fastest is kept (the machine may be "
                    "shared); jsonschema (f) always runs once")
    ap.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        _measure(*args.measure)
        return
    size = int(args.size_mb * 1_000_000)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        print(f"{'dataset':8} {'measure':22} {'cpu s':>7} {'wall s':>7} {'RSS MB':>7} "
              f"{'cpu/floor':>9} {'wall/floor':>10}")
        for kind in args.datasets.split(","):
            path = os.path.join(tmp, f"{kind}.jsonl")
            generate(kind, path, size)
            results = {}
            for _ in range(args.repeat):
                for w in "b" + args.only.replace("b", ""):
                    if w == "f" and w in results:
                        continue
                    m = _run(w, path, kind)
                    best = results.get(w)
                    results[w] = m if best is None else {
                        "cpu": min(best["cpu"], m["cpu"]), "wall": min(best["wall"], m["wall"]),
                        "rss_mb": max(best["rss_mb"], m["rss_mb"])}
            floor = results["b"]
            for w in sorted(results):
                m = results[w]
                print(f"{kind:8} ({w}) {KINDS[w]:18} {m['cpu']:7.2f} {m['wall']:7.2f} "
                      f"{m['rss_mb']:7.0f} {m['cpu'] / floor['cpu']:9.2f} "
                      f"{m['wall'] / floor['wall']:10.2f}", flush=True)
            if "d" in results and "e" in results:
                print(f"{kind:8} parallel wall / single wall = "
                      f"{results['e']['wall'] / results['d']['wall']:.2f}", flush=True)
            os.remove(path)


if __name__ == "__main__":
    main()
