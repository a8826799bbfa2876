"""Parallel validation on the warm workers: the report is the serial one, byte for byte
(errors, their order and line numbers, warnings, statistics, sha256), on every format and
on bad files; and the workers' life (reuse, death, errors, concurrent callers, exit, fork)."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from fmt_helpers import GOOD, TECHNIQUE_OF, OneWayStream, jsonl, write

import airegistry.formats.parallel as par_mod
from airegistry.formats import DatasetTooLargeError, ValidationLimits, validate
from airegistry.formats.pool import POOL, shutdown_workers, start_workers

_FIXED = {"role", "preferenceLabel", "schemaVersion"}  # values from a fixed set


def _vary(row: object, i: int) -> object:
    """A copy of ``row`` whose texts differ from row to row (so statistics mean something)."""
    if isinstance(row, dict):
        return {k: v if k in _FIXED else _vary(v, i) for k, v in row.items()}
    if isinstance(row, list):
        return [_vary(v, i) for v in row]
    if isinstance(row, str):
        return row + " ß" * (i % 13) + "x" * (i % 7)
    return row


def _rows(fmt: str, n: int) -> list:
    """``n`` rows of ``fmt`` with bad ones sprinkled over every part."""
    rows: list = []
    for i in range(n):
        row = _vary(GOOD[fmt], i)
        if i % 211 == 17:
            row = copy.deepcopy(row)
            key = next(iter(row))
            row[key] = 12345  # mistyped
        elif i % 307 == 40:
            row = {"unrelated": i}
        rows.append(row)
    return rows


def _assert_same(path, parts: int | None = None, technique=None, limits=None) -> dict:
    """Serial and parallel reports of ``path`` are equal; the parallel run really ran."""
    limits = limits or ValidationLimits()
    serial = validate(path, parallel=False, technique=technique, limits=limits,
                      compute_sha256=True)
    size = path.stat().st_size
    done = par_mod.validate_jsonl_parallel(str(path), size, technique, limits,
                                           compute_sha256=True, parts=parts)
    assert done is not None
    from airegistry.formats.validate import _report

    par = _report(done[0], "jsonl", size, done[1], path.name)
    assert par.to_dict() == serial.to_dict()
    seen: list[int] = []
    through = validate(path, parallel=True, technique=technique, limits=limits,
                       compute_sha256=True, progress=seen.append)
    assert through.to_dict() == serial.to_dict()
    assert seen == sorted(seen) and seen[-1] == size
    # The same file as a stream, cut into about ``parts`` parts by the caller.
    saved = par_mod.PART_BYTES
    par_mod.PART_BYTES = max(1, size // (parts or 4))
    try:
        streamed = validate(OneWayStream(path.read_bytes(), step=1 << 16), filename=path.name,
                            parallel=True, technique=technique, limits=limits,
                            compute_sha256=True)
    finally:
        par_mod.PART_BYTES = saved
    assert streamed.to_dict() == serial.to_dict()
    return serial.to_dict()


@pytest.mark.parametrize("fmt", sorted(GOOD))
def test_every_format_parallel_equals_serial(tmp_path, fmt) -> None:
    p = write(tmp_path, f"{fmt}.jsonl", jsonl(_rows(fmt, 1500)))
    for technique in dict.fromkeys([*TECHNIQUE_OF[fmt][:1], None]):
        report = _assert_same(p, parts=7, technique=technique)
        assert report["format"] == fmt and 0 < report["error_count"] < 100


def test_bad_file_parallel_equals_serial(tmp_path) -> None:
    """Every kind of bad line, in every part, and more than 100 errors in all."""
    pc = GOOD["prompt_completion"]
    pref = GOOD["preference"]
    # The format is detected on line 6: before it, rows are judged as a serial run does.
    chunks = [b"\xef\xbb\xbf", b"not json\n", b"[1, 2]\n", b"\n", b'{"unrelated": 0}\n',
              jsonl([pc])]
    for i in range(4000):
        k = i % 9
        if k == 0:
            chunks.append(b'{"prompt": "caf\xe9", "completion": "x"}\n')  # invalid UTF-8
        elif k == 1:
            chunks.append(b"   \r\n")  # blank
        elif k == 2:
            chunks.append(b'{"prompt": "a", "completion": }\r\n')  # invalid JSON
        elif k == 3:
            chunks.append(jsonl([pref]))  # another format
        elif k == 4:
            chunks.append(jsonl([{"prompt": "  ", "completion": "x"}]))  # whitespace only
        elif k == 5:
            chunks.append(b'{"prompt": "' + b"y" * 3000 + b'", "completion": "z"}\n')  # long
        elif k == 6:
            chunks.append(b'{"prompt": "a"}{"prompt": "b"}\n')  # two values on one line
        else:
            chunks.append(jsonl([_vary(pc, i)]))
    chunks.append(json.dumps(pc).encode())  # the last line has no newline
    p = write(tmp_path, "bad.jsonl", b"".join(chunks))
    limits = ValidationLimits(max_line_bytes=2000)
    for parts in (2, 5, 13):
        report = _assert_same(p, parts=parts, limits=limits)
    assert report["error_count"] > 2000 and len(report["errors"]) == 100
    assert report["warning_count"] > 400 and report["errors"][0]["line"] == 1
    assert report["format"] == "prompt_completion"


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_stream_with_a_line_longer_than_a_part(tmp_path, monkeypatch, where) -> None:
    """From the long line on, the caller validates the rest of the stream itself."""
    rows = _rows("chat", 1200)
    long_row = {"messages": [{"role": "user", "content": "q" * 50_000},
                             {"role": "assistant", "content": "a"}]}
    rows.insert({"first": 0, "middle": 600, "last": len(rows)}[where], long_row)
    data = jsonl(rows)
    p = write(tmp_path, "long.jsonl", data)
    monkeypatch.setattr(par_mod, "PART_BYTES", 20_000)
    serial = validate(p, parallel=False, compute_sha256=True)
    streamed = validate(OneWayStream(data), filename="long.jsonl", parallel=True,
                        compute_sha256=True)
    assert streamed.to_dict() == serial.to_dict() and serial.error_count > 0


def test_stream_without_a_recognisable_row_and_with_busy_workers(tmp_path) -> None:
    junk = b"not json\n" * 5000
    r = validate(OneWayStream(junk), filename="junk.jsonl", parallel=True)
    assert r.error_count == 5000 and r.format is None and r.rows == 5000
    data = jsonl(_rows("preference", 2000))
    serial = validate(write(tmp_path, "p.jsonl", data), parallel=False)
    with POOL.lease() as held:  # another validation holds the workers
        assert held is not None
        r = validate(OneWayStream(data), filename="p.jsonl", parallel=True)
    assert r.to_dict() == serial.to_dict()


def test_stream_failing_midway_raises_as_a_serial_run_does(tmp_path, monkeypatch) -> None:
    from airegistry.formats import SourceReadError

    data = jsonl(_rows("chat", 3000))
    monkeypatch.setattr(par_mod, "PART_BYTES", len(data) // 10)
    raised = []
    for parallel in (False, True):
        with pytest.raises(SourceReadError) as failed:
            validate(OneWayStream(data, fail_after=len(data) // 2), filename="x.jsonl",
                     parallel=parallel)
        # (where the stream broke depends on how much each read asked for)
        raised.append(str(failed.value).split(": ", 1)[1])
        with pytest.raises(DatasetTooLargeError) as too_large:
            validate(OneWayStream(data), filename="x.jsonl", parallel=parallel,
                     limits=ValidationLimits(max_bytes=len(data) // 2))
        raised.append(str(too_large.value))
    assert raised[:2] == raised[2:]
    _assert_same(write(tmp_path, "x.jsonl", data), parts=5)  # the workers still serve


def test_preference_warnings_over_the_listing_limit(tmp_path) -> None:
    same = {"prompt": "p", "chosen": "same", "rejected": "same"}
    p = write(tmp_path, "dpo.jsonl", jsonl([same if i % 3 else _vary(GOOD["preference"], i)
                                            for i in range(3000)]))
    report = _assert_same(p, parts=9, technique="dpo")
    assert report["warning_count"] == 2000 and len(report["warnings"]) == 100


def test_workers_are_reused_across_files(tmp_path) -> None:
    a = write(tmp_path, "a.jsonl", jsonl(_rows("chat", 800)))
    b = write(tmp_path, "b.jsonl", jsonl(_rows("prompt_completion", 800)))
    assert start_workers() == POOL.size
    pids = POOL.pids
    _assert_same(a, parts=5)
    _assert_same(b, parts=5)
    assert POOL.pids == pids and POOL.warm


def test_a_dead_worker_is_replaced(tmp_path) -> None:
    p = write(tmp_path, "a.jsonl", jsonl(_rows("chat", 800)))
    start_workers()
    victim = POOL.pids[0]
    os.kill(victim, signal.SIGKILL)
    _assert_same(p, parts=5)
    assert victim not in POOL.pids and len(POOL.pids) == POOL.size


@pytest.mark.parametrize("source", ["file", "stream"])
def test_a_worker_dying_mid_run_loses_nothing(tmp_path, monkeypatch, source) -> None:
    """The part a worker held when it died is validated by the caller."""
    from airegistry.formats.pool import Worker

    data = jsonl(_rows("prompt_completion", 3000))
    p = write(tmp_path, "a.jsonl", data)
    start_workers()
    real_send = Worker.send
    sent: list[int] = []

    def send_then_die(self, job):
        real_send(self, job)
        sent.append(self.proc.pid)
        if len(sent) == 3:  # a part after the first ones
            self.proc.kill()
            self.proc.wait()

    monkeypatch.setattr(par_mod, "PART_BYTES", len(data) // 8)
    monkeypatch.setattr(Worker, "send", send_then_die)
    serial = validate(p, parallel=False)
    if source == "file":
        got = validate(p, parallel=True)
    else:
        got = validate(OneWayStream(data, step=1 << 16), filename="a.jsonl", parallel=True)
    assert len(sent) > 3 and sent[2] not in POOL.pids
    assert got.to_dict() | {"summary": ""} == serial.to_dict() | {"summary": ""}


def test_an_error_in_a_worker_is_raised_and_the_pool_stays_usable(tmp_path) -> None:
    p = write(tmp_path, "a.jsonl", jsonl(_rows("prompt_completion", 3000)))
    size = p.stat().st_size
    with pytest.raises(DatasetTooLargeError):
        # A limit only a later part crosses: raised in a worker, re-raised here.
        par_mod.validate_jsonl_parallel(str(p), size, None, ValidationLimits(max_bytes=size // 2),
                                        parts=8)
    _assert_same(p, parts=8)


def test_concurrent_callers_get_their_own_exact_reports(tmp_path) -> None:
    files = [write(tmp_path, f"{i}.jsonl", jsonl(_rows(fmt, 2000)))
             for i, fmt in enumerate(["chat", "prompt_completion", "preference", "chat"])]
    expected = [validate(f, parallel=False).to_dict() for f in files]
    got: dict[int, dict] = {}

    def run(i: int) -> None:
        got[i] = validate(files[i], parallel=True).to_dict()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(files))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [got[i] for i in range(len(files))] == expected


def test_lease_is_exclusive() -> None:
    with POOL.lease() as first:
        assert first is not None
        with POOL.lease() as second:
            assert second is None
    with POOL.lease() as again:
        assert again is not None


def test_shutdown_is_clean_and_a_later_run_starts_new_workers(tmp_path) -> None:
    p = write(tmp_path, "a.jsonl", jsonl(_rows("chat", 800)))
    start_workers()
    procs = [w.proc for w in POOL._workers]
    shutdown_workers()
    assert [proc.returncode for proc in procs] == [0] * len(procs)
    assert not POOL.warm and POOL.pids == []
    _assert_same(p, parts=5)
    assert POOL.warm


def test_auto_mode_threshold_is_lower_once_workers_run(monkeypatch) -> None:
    import importlib

    validate_mod = importlib.import_module("airegistry.formats.validate")
    monkeypatch.setattr(validate_mod, "cpu_count", lambda: 2)
    monkeypatch.setattr(validate_mod.os, "getloadavg", lambda: (0.2, 0.2, 0.2))
    size = par_mod.WARM_THRESHOLD

    class Pool:
        warm = False

    monkeypatch.setattr(validate_mod, "POOL", Pool)
    assert not validate_mod._use_parallel(None, size)
    Pool.warm = True
    assert validate_mod._use_parallel(None, size)
    assert not validate_mod._use_parallel(None, size - 1)


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # a zombie has exited
    except FileNotFoundError:
        return True


_SCRIPT = textwrap.dedent("""
    import sys, time
    from airegistry.formats import validate
    from airegistry.formats.pool import POOL
    report = validate(sys.argv[1], parallel=True)
    assert report.rows > 0
    print(" ".join(map(str, POOL.pids)), flush=True)
    if sys.argv[2] == "hang":
        time.sleep(600)
""")


@pytest.mark.parametrize("end", ["exit", "sigkill"])
def test_workers_end_with_their_parent(tmp_path, end) -> None:
    """At a normal exit the pool stops its workers; when the parent is killed, they see
    their stdin close and leave by themselves."""
    p = write(tmp_path, "a.jsonl", jsonl(_rows("chat", 800)))
    proc = subprocess.Popen(
        [sys.executable, "-c", _SCRIPT, str(p), "hang" if end == "sigkill" else "exit"],
        stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    pids = [int(x) for x in proc.stdout.readline().split()]
    assert pids
    if end == "sigkill":
        proc.kill()
        deadline = time.monotonic() + 30  # a bound on waiting, not a measured speed
        while not all(map(_gone, pids)) and time.monotonic() < deadline:
            time.sleep(0.05)
    else:
        assert proc.wait(timeout=60) == 0
    proc.wait(timeout=60)
    assert all(map(_gone, pids))


def test_a_forked_child_does_not_share_the_parents_workers(tmp_path) -> None:
    p = write(tmp_path, "a.jsonl", jsonl(_rows("chat", 800)))
    expected = validate(p, parallel=False).to_dict()
    start_workers()
    parent_pids = POOL.pids
    pid = os.fork()
    if pid == 0:  # the child: its own workers, the parent's untouched
        code = 1
        try:
            fresh = POOL.pids == []
            ok = validate(p, parallel=True).to_dict() == expected
            mine = POOL.pids and not set(POOL.pids) & set(parent_pids)
            shutdown_workers()
            code = 0 if fresh and ok and mine else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert POOL.pids == parent_pids
    _assert_same(p, parts=5)
