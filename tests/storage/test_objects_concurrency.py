"""Several threads and processes sharing one store root: no torn reads, no lost writes."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from airegistry.storage.blobs import errors as E
from airegistry.storage.blobs.fs import FileBlobStore
from airegistry.storage.blobs.types import CHUNK_SIZE


def _pattern(writer: int, version: int, size: int) -> bytes:
    """A self-describing body: any mix of two versions is detectable from the bytes alone."""
    head = f"{writer:04d}:{version:04d}|".encode()
    return (head * (size // len(head) + 1))[:size]


def _is_whole_version(data: bytes, size: int) -> bool:
    return len(data) == size and data == _pattern(int(data[:4]), int(data[5:9]), size)


def _run_threads(targets: list[threading.Thread]) -> None:
    for t in targets:
        t.start()
    for t in targets:
        t.join(timeout=120)
        assert not t.is_alive(), "thread did not finish"


def test_concurrent_writers_and_readers_never_tear(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    store.create_bucket("bkt")
    size = CHUNK_SIZE + 4097  # more than one write chunk, so a torn file would be visible
    store.put_object("bkt", "hot", _pattern(9999, 0, size))
    errors: list[BaseException] = []
    reads = [0]
    done = threading.Event()

    def writer(w: int) -> None:
        try:
            for v in range(12):
                store.put_object("bkt", "hot", _pattern(w, v, size))
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        try:
            while True:  # at least one read even if the writers finish first
                finished = done.is_set()
                info, stream = store.open_object("bkt", "hot")
                with stream:
                    data = stream.read()  # verify=True: raises if bytes and record disagree
                assert _is_whole_version(data, size)
                assert info.sha256 == hashlib.sha256(data).hexdigest()
                reads[0] += 1
                if finished:
                    return
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    readers = [threading.Thread(target=reader) for _ in range(3)]
    for t in readers:
        t.start()
    _run_threads(writers)
    done.set()
    for t in readers:
        t.join(timeout=120)
    assert errors == []
    assert reads[0] > 0
    final = store.read_bytes("bkt", "hot")
    assert _is_whole_version(final, size) and int(final[5:9]) == 11
    assert list((tmp_path / "tmp").iterdir()) == []


def test_puts_and_deletes_racing_in_one_directory(tmp_path: Path) -> None:
    """Deletes prune empty directories while puts create them; puts must never fail."""
    store = FileBlobStore(tmp_path)
    store.create_bucket("bkt")
    errors: list[BaseException] = []
    acknowledged: set[str] = set()
    lock = threading.Lock()

    def putter(t: int) -> None:
        try:
            for i in range(40):
                key = f"deep/dir/tree/t{t}-{i}"
                store.put_object("bkt", key, key.encode())
                store.delete_object("bkt", key)
                if i % 5 == 0:
                    store.put_object("bkt", key, key.encode())
                    with lock:
                        acknowledged.add(key)
        except BaseException as exc:
            errors.append(exc)

    _run_threads([threading.Thread(target=putter, args=(t,)) for t in range(4)])
    assert errors == []
    listed = {o.key for o in store.list_objects("bkt").contents}
    assert listed == acknowledged
    for key in acknowledged:
        assert store.read_bytes("bkt", key) == key.encode()


def test_ensure_bucket_from_many_threads(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    results: list[object] = []

    def go() -> None:
        try:
            results.append(store.ensure_bucket("shared"))
        except BaseException as exc:
            results.append(exc)

    _run_threads([threading.Thread(target=go) for _ in range(8)])
    assert all(not isinstance(r, BaseException) for r in results), results
    assert len({r.created for r in results}) == 1  # type: ignore[union-attr]


def test_delete_bucket_never_loses_acknowledged_puts(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    store.create_bucket("bkt")
    acknowledged: list[str] = []
    errors: list[BaseException] = []
    writers_done = threading.Event()
    deletions = [0]

    def writer(t: int) -> None:
        try:
            for i in range(30):
                key = f"w{t}/{i}"
                try:
                    store.put_object("bkt", key, b"v")
                except E.NoSuchBucket:
                    continue
                acknowledged.append(key)
        except BaseException as exc:
            errors.append(exc)

    def deleter() -> None:
        try:
            while not writers_done.is_set():
                try:
                    store.delete_bucket("bkt")
                    deletions[0] += 1
                except (E.BucketNotEmpty, E.NoSuchBucket):
                    pass
                store.ensure_bucket("bkt")
        except BaseException as exc:
            errors.append(exc)

    d = threading.Thread(target=deleter)
    d.start()
    _run_threads([threading.Thread(target=writer, args=(t,)) for t in range(3)])
    writers_done.set()
    d.join(timeout=120)
    assert errors == []
    store.ensure_bucket("bkt")
    listed = {o.key for o in store.list_objects("bkt").contents}
    assert listed == set(acknowledged)


def test_concurrent_completions_of_one_upload(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path, min_part_size=16)
    store.create_bucket("bkt")
    uid = store.create_multipart_upload("bkt", "mp")
    parts = [store.upload_part("bkt", "mp", uid, n, bytes([n]) * 32) for n in (1, 2, 3)]
    outcomes: list[object] = []

    def complete() -> None:
        try:
            outcomes.append(
                store.complete_multipart_upload(
                    "bkt", "mp", uid, [(p.part_number, p.etag) for p in parts]
                )
            )
        except BaseException as exc:
            outcomes.append(exc)

    _run_threads([threading.Thread(target=complete) for _ in range(4)])
    successes = [o for o in outcomes if not isinstance(o, BaseException)]
    assert successes, outcomes
    # a completion that lost the race sees the upload gone, never a bogus InvalidPart
    assert all(isinstance(o, E.NoSuchUpload) for o in outcomes if o not in successes), outcomes
    assert store.read_bytes("bkt", "mp") == b"\x01" * 32 + b"\x02" * 32 + b"\x03" * 32


# ----------------------------------------------------------------------------- processes

_WRITER = textwrap.dedent(
    """
    import sys
    from airegistry.storage.blobs.fs import FileBlobStore
    root, writer = sys.argv[1], int(sys.argv[2])
    size = 200_003
    def pattern(w, v):
        head = f"{w:04d}:{v:04d}|".encode()
        return (head * (size // len(head) + 1))[:size]
    store = FileBlobStore(root)
    store.ensure_bucket("shared")
    for v in range(15):
        store.put_object("shared", "same-key", pattern(writer, v))
        store.put_object("shared", f"own/{writer}/{v}", pattern(writer, v))
        got = store.read_bytes("shared", "same-key")
        assert len(got) == size and got == pattern(int(got[:4]), int(got[5:9])), "torn read"
    print("ok", flush=True)
    """
)


@pytest.mark.slow
def test_many_processes_share_one_root(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(tmp_path), str(w)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        for w in range(4)
    ]
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err.decode()
        assert out.strip() == b"ok"
    store = FileBlobStore(tmp_path)
    final = store.read_bytes("shared", "same-key")
    assert _is_whole_version(final, 200_003)
    assert int(final[5:9]) == 14  # the last write of whichever writer finished last
    own = {o.key for o in store.list_objects("shared", prefix="own/", max_keys=1000).contents}
    assert own == {f"own/{w}/{v}" for w in range(4) for v in range(15)}
    assert list((tmp_path / "tmp").iterdir()) == []


_KILLED = textwrap.dedent(
    """
    import sys, time
    from airegistry.storage.blobs.fs import FileBlobStore
    store = FileBlobStore(sys.argv[1])
    store.ensure_bucket("bkt")
    def body():
        yield b"a" * (1 << 20)
        yield b"b" * (1 << 20)
        print("writing", flush=True)
        time.sleep(3600)
        yield b"never"
    store.put_object("bkt", "victim", body())
    """
)


@pytest.mark.slow
def test_sigkill_mid_write_leaves_nothing_visible(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == b"writing", proc.stderr.read() if proc.stderr else b""
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    store_dir = tmp_path
    leftovers = list((store_dir / "tmp").iterdir())
    assert len(leftovers) == 1  # the killed writer's temp file, invisible to readers
    store = FileBlobStore(store_dir)  # opening the store sweeps temps of dead processes
    with pytest.raises(E.NoSuchKey):
        store.head_object("bkt", "victim")
    assert store.list_objects("bkt").contents == []
    assert list((store_dir / "tmp").iterdir()) == []


def test_sweep_keeps_temps_of_live_writers(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    store.create_bucket("bkt")
    started = threading.Event()
    release = threading.Event()
    errors: list[BaseException] = []

    def body():
        yield b"x" * 10
        started.set()
        release.wait(timeout=120)
        yield b"y" * 10

    def put() -> None:
        try:
            store.put_object("bkt", "slow", body())
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=put)
    t.start()
    assert started.wait(timeout=120)
    assert FileBlobStore(tmp_path).sweep_stale_temps() == 0  # our own pid is alive
    release.set()
    t.join(timeout=120)
    assert errors == []
    assert store.read_bytes("bkt", "slow") == b"x" * 10 + b"y" * 10


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_can_write_after_parent_used_the_hash_pool(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    store.create_bucket("bkt")
    big = b"p" * (CHUNK_SIZE * 2)
    store.put_object("bkt", "parent", big)  # starts the parent's md5 helper threads
    pid = os.fork()
    if pid == 0:  # child: must not wait forever on the parent's (absent) pool threads
        code = 1
        signal.alarm(120)  # a hang becomes a failure (SIGALRM kills the child)
        try:
            FileBlobStore(tmp_path).put_object("bkt", "child", big)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert store.read_bytes("bkt", "child") == big
