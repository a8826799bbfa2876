"""Does each micro-optimisation of the filesystem blob store pay? Each against the plain way.

Measured in one run, on the store itself (``FileBlobStore``, no HTTP), each variant
alternated with the other ``--rounds`` times and the best kept:

  * put ``--mb`` MiB (1 MiB pieces, as the server hands them on) with O_DIRECT writes vs
    buffered writes (page cache, then the same fsync);
  * the same put with md5 on a helper thread vs md5 inline;
  * CompleteMultipartUpload of ``--mb`` MiB in 8 MiB parts (boto3's part size), O_DIRECT
    vs buffered (the double-buffered assembly this once had was measured here against the
    plain loop and removed: docs/storage.md);
  * ListObjectsV2 through ``--keys`` keys in one folder, 1,000 a page, with the directory
    listing cache vs a rescan per page.

The alternatives are switched by replacing, for the measurement only, the writer's md5
thread pool with an inline executor and ``set_direct`` with one that refuses (what the
store does where O_DIRECT is unavailable). Wall seconds and process CPU seconds are both
reported; ratios > 1 mean the optimisation is faster. A script, not a test.

    python benchmarks/bench_storage.py              # 200 MB, 10,000 keys, best of 3
    python benchmarks/bench_storage.py --mb 50 --keys 2000 --rounds 2
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

from airegistry.storage.blobs.fs import assembly, writer
from airegistry.storage.blobs.fs.store import FileBlobStore

MB = 1024 * 1024
PIECE = MB
PART = 8 * MB
BUCKET = "bench-storage"


class InlineExecutor(Executor):
    """Runs each submitted call at once on the caller's thread: the plain, serial way."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            fut.set_exception(exc)
        return fut


@contextlib.contextmanager
def plain_threads() -> Iterator[None]:
    inline = InlineExecutor()
    saved = writer.pool
    writer.pool = lambda: inline  # type: ignore[assignment]
    try:
        yield
    finally:
        writer.pool = saved


@contextlib.contextmanager
def buffered_io() -> Iterator[None]:
    def refuse(_fd: int, _on: bool) -> bool:
        return False

    saved = writer.set_direct, assembly.set_direct
    writer.set_direct = assembly.set_direct = refuse  # type: ignore[assignment]
    try:
        yield
    finally:
        writer.set_direct, assembly.set_direct = saved


def pieces(data: bytes) -> Iterator[memoryview]:
    view = memoryview(data)
    for start in range(0, len(view), PIECE):
        yield view[start:start + PIECE]


def timed(fn: Callable[[], Any]) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t0, time.process_time() - c0


def best(variants: dict[str, Callable[[], tuple[float, float]]],
         rounds: int) -> dict[str, tuple[float, float]]:
    out: dict[str, tuple[float, float]] = {}
    for _ in range(rounds):
        for name, run in variants.items():
            wall, cpu = run()
            if name not in out or wall < out[name][0]:
                out[name] = (wall, cpu)
    return out


def bench_put(store: FileBlobStore, data: bytes, rounds: int) -> dict[str, tuple[float, float]]:
    def put(ctx: Callable[[], contextlib.AbstractContextManager[None]]
            ) -> Callable[[], tuple[float, float]]:
        def run() -> tuple[float, float]:
            with ctx():
                return timed(lambda: store.put_object(BUCKET, "put", pieces(data)))
        return run

    return best({"optimised": put(contextlib.nullcontext), "buffered": put(buffered_io),
                 "md5 inline": put(plain_threads)}, rounds)


def bench_assembly(store: FileBlobStore, data: bytes,
                   rounds: int) -> dict[str, tuple[float, float]]:
    def complete(ctx: Callable[[], contextlib.AbstractContextManager[None]]
                 ) -> Callable[[], tuple[float, float]]:
        def run() -> tuple[float, float]:
            upload = store.create_multipart_upload(BUCKET, "mpu")
            parts = []
            for number, start in enumerate(range(0, len(data), PART), 1):
                info = store.upload_part(BUCKET, "mpu", upload, number,
                                         pieces(data[start:start + PART]))
                parts.append((number, info.etag))
            with ctx():
                return timed(lambda: store.complete_multipart_upload(BUCKET, "mpu", upload, parts))
        return run

    return best({"optimised": complete(contextlib.nullcontext),
                 "buffered": complete(buffered_io)}, rounds)


def bench_multipart_flow(store: FileBlobStore, data: bytes,
                         rounds: int) -> dict[str, tuple[float, float]]:
    """Parts and completion together: what an upload_file costs the store."""
    def flow(ctx: Callable[[], contextlib.AbstractContextManager[None]]
             ) -> Callable[[], tuple[float, float]]:
        def one() -> None:
            upload = store.create_multipart_upload(BUCKET, "flow")
            parts = []
            for number, start in enumerate(range(0, len(data), PART), 1):
                info = store.upload_part(BUCKET, "flow", upload, number,
                                         pieces(data[start:start + PART]))
                parts.append((number, info.etag))
            store.complete_multipart_upload(BUCKET, "flow", upload, parts)

        def run() -> tuple[float, float]:
            with ctx():
                return timed(one)
        return run

    return best({"optimised": flow(contextlib.nullcontext), "buffered": flow(buffered_io)},
                rounds)


def bench_listing(store: FileBlobStore, keys: int, rounds: int) -> dict[str, tuple[float, float]]:
    for i in range(keys):
        store.put_object(BUCKET, f"many/key-{i:06d}", [b"x"])
    time.sleep(3.2)  # the cache keeps only listings of directories quiet for 3 s

    def page_all() -> None:
        token = None
        seen = 0
        while True:
            res = store.list_objects(BUCKET, prefix="many/", max_keys=1000,
                                     continuation_token=token)
            seen += res.key_count
            token = res.next_continuation_token
            if not res.is_truncated:
                break
        assert seen == keys, seen

    def variant(cache: bool) -> Callable[[], tuple[float, float]]:
        def run() -> tuple[float, float]:
            saved = store._dir_cache
            if not cache:
                store._dir_cache = None  # type: ignore[assignment]
            try:
                return timed(page_all)
            finally:
                store._dir_cache = saved
        return run

    return best({"optimised": variant(True), "no cache": variant(False)}, rounds)


def report(title: str, res: dict[str, tuple[float, float]]) -> None:
    base_wall, base_cpu = res["optimised"]
    print(f"\n{title}")
    print(f"  {'variant':<16}{'wall s':>9}{'cpu s':>9}{'wall ratio':>12}{'cpu ratio':>11}")
    for name, (wall, cpu) in res.items():
        print(f"  {name:<16}{wall:>9.3f}{cpu:>9.3f}{wall / base_wall:>12.2f}"
              f"{cpu / base_cpu if base_cpu else float('nan'):>11.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None,
                        help="where the store lives (default: a temp dir; the disk matters)")
    parser.add_argument("--only", default="put,assembly,flow,listing")
    args = parser.parse_args(argv)
    only = {x.strip() for x in args.only.split(",")}
    root = Path(tempfile.mkdtemp(prefix="bench-storage-", dir=args.dir))
    try:
        store = FileBlobStore(root)
        store.create_bucket(BUCKET)
        data = os.urandom(args.mb * MB)
        print(f"filesystem blob store at {root}, {args.mb} MiB, {os.cpu_count()} CPUs, "
              f"load avg {os.getloadavg()[0]:.1f}; ratio = variant / optimised "
              "(> 1: the optimisation pays)")
        if "put" in only:
            report(f"put_object {args.mb} MiB (1 MiB pieces)", bench_put(store, data, args.rounds))
        if "assembly" in only:
            report(f"complete_multipart_upload {args.mb} MiB in 8 MiB parts",
                   bench_assembly(store, data, args.rounds))
        if "flow" in only:
            report(f"upload_part x {args.mb // 8} + complete, {args.mb} MiB",
                   bench_multipart_flow(store, data, args.rounds))
        if "listing" in only:
            report(f"list {args.keys:,} keys, 1,000 per page",
                   bench_listing(store, args.keys, args.rounds))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
