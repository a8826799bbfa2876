"""Benchmark of dataset validation against its floors and peers, in one run.

Generates seeded synthetic JSONL datasets (SFT prompt/completion, DPO preference, OpenAI
chat; realistic lengths, unicode, escapes) of each size asked for and measures, each in a
fresh subprocess, CPU seconds (self + workers), wall seconds and peak RSS of:

  (a) reading the lines, no parsing        (b) orjson.loads per line: the parse floor
  (c) json.loads per line                  (d) airegistry validate, single process
  (e) airegistry validate, parallel, cold: the first call of a process, which starts
      the validation workers (a one-file CLI run)
  (h) airegistry validate, parallel, warm: workers started before the clock starts
      (every later file or import of the process)
  (s) airegistry validate, a stream, single process, hashing it (what an import of a
      stored object does: the store's stream verifies the sha256)
  (t) the same stream, parallel, warm (the caller reads, hashes and ships the parts)
  (f) jsonschema Draft 7, every row        (g) pyarrow.json.read_json (threaded)
  (p) the parallel floor: (b) in one warm process per core, each on its share of the
      file (cut at newlines), started before the clock: what this machine's cores give
      a perfectly parallel parse, against which (h) is judged

and prints a table with each CPU/wall ratio to (b), then per dataset and size the ratios
the issues name: single CPU / floor, parallel wall / single wall (cold and warm; for the
stream, t/s), parallel (warm) wall / pyarrow wall, with the memory of all processes
together ("RSS all": the caller's peak plus each worker's) and the 1-minute load average
before and after. Each
measurement is repeated (``--repeat``, default 3, interleaved) and the lowest CPU and wall
times are kept, because a shared machine adds noise that only ever makes things slower;
peak RSS is the highest seen. Usage:

    python benchmarks/bench_validate.py [--size-mb 20,100,300] [--only abdeghpst] [--repeat 3]
                                        [--data-dir DIR]

It is a script, not a test: nothing here asserts a time. Parallel-vs-single ratios only
mean something when the other cores are idle: check the load columns.
"""

from __future__ import annotations

import argparse
import itertools
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
    "e": "ours parallel cold",
    "h": "ours parallel warm",
    "s": "ours stream single",
    "t": "ours stream par warm",
    "f": "jsonschema Draft7",
    "g": "pyarrow read_json",
    "p": "orjson parallel floor",
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


def _proc_cpu(pid: int) -> float:
    """CPU seconds a running process has used (ns resolution; getrusage sees only reaped
    children, and the warm workers outlive the measurement)."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e9


def _proc_peak_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _floor_part(path: str, start: int, end: int) -> None:
    """Child of (p): parse lines ``[start, end)`` with orjson once the parent says go."""
    import orjson

    print("ready", flush=True)
    sys.stdin.read(1)
    c0 = _cpu()
    with open(path, "rb", buffering=1 << 20) as f:
        f.seek(start)
        left = end - start
        for line in f:
            orjson.loads(line)
            left -= len(line)
            if left <= 0:
                break
    print(json.dumps({"cpu": _cpu() - c0}), flush=True)


def _start_floor_parts(path: str) -> list[subprocess.Popen]:
    from airegistry.formats.parallel import split_points
    from airegistry.formats.pool import POOL

    points = split_points(path, os.path.getsize(path), POOL.size)
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--floor-part", path,
                               str(a), str(b)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
             for a, b in itertools.pairwise(points)]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    return procs


def _measure(what: str, path: str, kind: str) -> None:
    base: dict[int, float] = {}
    floor_parts = _start_floor_parts(path) if what == "p" else []
    if what in "dehst":
        import airegistry.formats  # noqa: F401  (imports are not part of the measure)
        from airegistry.formats.pool import POOL, start_workers

        if what in "ht":
            start_workers()
            base = {pid: _proc_cpu(pid) for pid in POOL.pids}
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
    elif what in "deh":
        from airegistry.formats import validate

        rep = validate(path, technique=TECHNIQUE[kind], parallel=what != "d")
        assert rep.valid, rep.summary()
    elif what in "st":
        from airegistry.formats import validate

        with open(path, "rb", buffering=0) as f:
            rep = validate(f, technique=TECHNIQUE[kind], filename=path, compute_sha256=True,
                           size_hint=os.path.getsize(path), parallel=what == "t")
        assert rep.valid and rep.sha256, rep.summary()
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
    part_cpu = 0.0
    if floor_parts:
        for proc in floor_parts:
            proc.stdin.write("g")
            proc.stdin.flush()
        for proc in floor_parts:
            part_cpu += json.loads(proc.stdout.readline())["cpu"]
            proc.wait()
    wall = time.perf_counter() - t0
    cpu = _cpu() - c0
    if floor_parts:  # their CPU from "go" on, not their start-up (which getrusage adds)
        cpu = part_cpu
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    rss = max(me.ru_maxrss, kids.ru_maxrss) / 1024
    rss_all = rss
    if what in "eht":
        pids = POOL.pids
        assert len(pids) > 1, "the parallel run had no workers"
        cpu += sum(_proc_cpu(pid) - base.get(pid, 0.0) for pid in pids)
        rss_all = me.ru_maxrss / 1024 + sum(map(_proc_peak_mb, pids))
        rss = max(rss, *map(_proc_peak_mb, pids))
    print(json.dumps({"cpu": cpu, "wall": wall, "rss_mb": rss, "rss_all_mb": rss_all}))


def _run(what: str, path: str, kind: str) -> dict:
    out = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--measure", what, path, kind],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _best(runs: list[dict]) -> dict:
    return {"cpu": min(r["cpu"] for r in runs), "wall": min(r["wall"] for r in runs),
            "rss_mb": max(r["rss_mb"] for r in runs),
            "rss_all_mb": max(r["rss_all_mb"] for r in runs)}


def _ratio(results: dict, a: str, b: str, key: str = "wall") -> str:
    if a in results and b in results:
        return f"{results[a][key] / results[b][key]:.2f}"
    return "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", default="20,100,300",
                    help="size of each dataset (MB); several, comma-separated")
    ap.add_argument("--data-dir", help="keep the generated datasets here and reuse them "
                    "(default: a temporary directory)")
    ap.add_argument("--only", default="abcdefghpst",
                    help="subset of measurements, e.g. abdeghst")
    ap.add_argument("--datasets", default="sft,dpo,chat")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per measurement, the fastest is kept (the machine may be "
                    "shared); jsonschema (f) always runs once")
    ap.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--floor-part", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.floor_part:
        _floor_part(args.floor_part[0], int(args.floor_part[1]), int(args.floor_part[2]))
        return
    if args.measure:
        _measure(*args.measure)
        return
    sizes = [float(x) for x in args.size_mb.split(",")]
    order = "b" + args.only.replace("b", "")
    summary = []
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data_dir or tmp
        os.makedirs(data_dir, exist_ok=True)
        print(f"{'MB':>5} {'dataset':8} {'measure':22} {'cpu s':>7} {'wall s':>7} "
              f"{'RSS MB':>14} {'cpu/floor':>9} {'wall/floor':>10}")
        for size_mb in sizes:
            for kind in args.datasets.split(","):
                path = os.path.join(data_dir, f"{kind}-{size_mb:g}MB.jsonl")
                if not os.path.exists(path):
                    generate(kind, path + ".tmp", int(size_mb * 1_000_000))
                    os.replace(path + ".tmp", path)
                load0 = os.getloadavg()[0]
                runs: dict[str, list[dict]] = {}
                for _ in range(args.repeat):
                    for w in order:
                        if w == "f" and w in runs:
                            continue
                        runs.setdefault(w, []).append(_run(w, path, kind))
                load1 = os.getloadavg()[0]
                results = {w: _best(r) for w, r in runs.items()}
                floor = results["b"]
                for w in order:
                    m = results[w]
                    rss = f"{m['rss_mb']:.0f}"
                    if w in "eht":
                        rss += f" (all {m['rss_all_mb']:.0f})"
                    print(f"{size_mb:5g} {kind:8} ({w}) {KINDS[w]:18} {m['cpu']:7.2f} "
                          f"{m['wall']:7.2f} {rss:>14} {m['cpu'] / floor['cpu']:9.2f} "
                          f"{m['wall'] / floor['wall']:10.2f}", flush=True)
                summary.append((size_mb, kind, results, load0, load1))
                if args.data_dir is None:
                    os.remove(path)
    print()
    print(f"{'MB':>5} {'dataset':8} {'single cpu/floor':>16} {'par/single cold':>15} "
          f"{'par/single warm':>15} {'floor par/single':>16} {'stream par/single':>17} "
          f"{'warm/pyarrow':>12} "
          f"{'RSS all warm':>12} {'pyarrow RSS':>11} {'load':>9}")
    for size_mb, kind, r, load0, load1 in summary:
        rss = f"{r['h']['rss_all_mb']:.0f}" if "h" in r else "-"
        prss = f"{r['g']['rss_mb']:.0f}" if "g" in r else "-"
        print(f"{size_mb:5g} {kind:8} {_ratio(r, 'd', 'b', 'cpu'):>16} "
              f"{_ratio(r, 'e', 'd'):>15} {_ratio(r, 'h', 'd'):>15} "
              f"{_ratio(r, 'p', 'b'):>16} {_ratio(r, 't', 's'):>17} {_ratio(r, 'h', 'g'):>12} {rss:>12} {prss:>11} "
              f"{load0:4.2f}-{load1:4.2f}")


if __name__ == "__main__":
    main()
