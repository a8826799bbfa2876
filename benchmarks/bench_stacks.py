"""Which ASGI server stack to run ``airegistry server`` on: describe/list ratios per stack.

For each candidate stack (``_stacks.STACKS``: uvicorn with h11, with httptools, with
httptools + uvloop; granian; hypercorn) this starts our server (one home, SigV4 on, the
same items) and the canned floor of ``bench_server.py`` on that stack, and measures
DescribeHubContent and a 100-item ListHubContents page with one boto3 client, next to
moto's server (werkzeug; the same for every stack, measured again alongside each stack so
that every ratio comes from the same few seconds). What a user feels is ours/moto; that
the floor gets faster too is shown (ours/floor) but does not decide.

    python benchmarks/bench_stacks.py                 # every stack, 3 s windows, best of 2
    python benchmarks/bench_stacks.py --stacks uvicorn-h11,uvicorn-httptools --duration 2

A script, not a test: nothing asserts a time. On a shared machine the absolute rates move;
compare the ratios.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server_bench_support import (
    Endpoint,
    LoadResult,
    free_port,
    managed_servers,
    run_load,
)
from _stacks import STACKS
from bench_server import (
    calls_for,
    create_key,
    populate_ours,
    start_floor,
    start_moto,
    start_ours_on,
)

_MODULE_OF = {"uvicorn-httptools": "httptools", "uvicorn-httptools-uvloop": "uvloop",
              "granian": "granian", "hypercorn": "hypercorn"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stacks", default=",".join(STACKS),
                        help="comma-separated stacks to compare (default: all)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per window")
    parser.add_argument("--rounds", type=int, default=2, help="rounds per window, best kept")
    parser.add_argument("--items", type=int, default=200, help="items in the hub")
    args = parser.parse_args(argv)
    args.stack_list = [x.strip() for x in args.stacks.split(",") if x.strip()]
    unknown = set(args.stack_list) - set(STACKS)
    if unknown:
        parser.error(f"unknown stack(s) {', '.join(sorted(unknown))}; choose from "
                     f"{', '.join(STACKS)}")
    return args


def measure(started: dict[str, tuple[Any, Endpoint]], items: int, duration: float,
            rounds: int) -> dict[str, dict[str, LoadResult]]:
    """Best of ``rounds`` for describe and list, 1 client, interleaved across servers."""
    plans = {name: calls_for("moto" if name == "moto" else "ours", items) for name in started}
    best: dict[str, dict[str, LoadResult]] = {name: {} for name in started}
    for label, index in (("describe", 0), ("list", 1)):
        for _round in range(rounds):
            for name, (server, endpoint) in started.items():
                load = run_load(endpoint, plans[name][index], clients=1, duration_s=duration,
                                server_pid=server.proc.pid)
                if load.errors:
                    print(f"!! {name} {label}: {load.errors} errors; first: {load.first_error}")
                if label not in best[name] or load.rps > best[name][label].rps:
                    best[name][label] = load
    return best


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    tmp = Path(tempfile.mkdtemp(prefix="bench-stacks-"))
    rows: list[tuple[str, dict[str, dict[str, LoadResult]]]] = []
    try:
        with managed_servers() as servers:
            moto, moto_ep = start_moto(tmp)
            servers.append(moto)
            home = tmp / "home"
            home.mkdir()
            key_id, secret = create_key(home)
            populated = False
            for stack in args.stack_list:
                module = _MODULE_OF.get(stack)
                if module and importlib.util.find_spec(module) is None:
                    print(f"-- {stack}: {module} is not installed, skipped")
                    continue
                ours = start_ours_on(stack, home, free_port(), tmp, auth=True,
                                     log_level="warning", name=f"ours-{stack}")
                floor, floor_ep = start_floor(tmp, args.items, stack, name=f"floor-{stack}")
                servers.extend([ours, floor])
                ours_ep = Endpoint("ours", ours.endpoint, key_id, secret)
                if not populated:
                    populate_ours(ours_ep, args.items, 4)
                    from bench_server import populate_moto
                    populate_moto(moto_ep, args.items, 4)
                    populated = True
                started = {"ours": (ours, ours_ep), "floor": (floor, floor_ep),
                           "moto": (moto, moto_ep)}
                best = measure(started, args.items, args.duration, args.rounds)
                rows.append((stack, best))
                print(f"   {stack:<26} describe ours {best['ours']['describe'].rps:6.0f}/s "
                      f"floor {best['floor']['describe'].rps:6.0f}/s "
                      f"moto {best['moto']['describe'].rps:6.0f}/s", flush=True)
                for server in (ours, floor):
                    server.stop()
                    servers.remove(server)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print_table(rows, args)
    return 0


def print_table(rows: list[tuple[str, dict[str, dict[str, LoadResult]]]],
                args: argparse.Namespace) -> None:
    print()
    print(f"stack comparison: 1 boto3 client, {args.duration:g} s windows, best of "
          f"{args.rounds}, SigV4 on; ratios are same-window rates")
    head = (f"{'stack':<26}{'describe/s':>11}{'ours/moto':>10}{'ours/floor':>11}"
            f"{'CPU ms':>8}{'list/s':>8}{'ours/moto':>10}{'ours/floor':>11}")
    print(head)
    print("-" * len(head))
    for stack, best in rows:
        d = {k: best[k]["describe"] for k in best}
        lst = {k: best[k]["list"] for k in best}
        cpu = d["ours"].server_cpu_ms_per_request
        print(f"{stack:<26}{d['ours'].rps:>11.0f}{d['ours'].rps / d['moto'].rps:>10.2f}"
              f"{d['ours'].rps / d['floor'].rps:>11.2f}"
              f"{(cpu if cpu is not None else float('nan')):>8.2f}"
              f"{lst['ours'].rps:>8.1f}{lst['ours'].rps / lst['moto'].rps:>10.2f}"
              f"{lst['ours'].rps / lst['floor'].rps:>11.2f}")
    print(f"(measured {time.strftime('%Y-%m-%d %H:%M')}; CPU ms = our server's CPU per describe)")


if __name__ == "__main__":
    sys.exit(main())
