"""Where an S3 upload/download costs server time: one real server, boto3, py-spy on it.

Starts ``airegistry server`` (``--http``/``--loop`` as given) over a temp home, uploads a
``--mb`` MiB random file with boto3's ``upload_file`` (its default multipart
TransferConfig) and downloads it again, while ``py-spy record`` samples the server (when
py-spy is installed and may attach): the flame data goes to ``--out`` as
speedscope/raw text, and a per-function summary of the hottest frames is printed.

    python benchmarks/profile_s3.py --mb 200 --http httptools --out /tmp/s3prof

A tool for finding costs; bench_server.py measures the ratios.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _server_bench_support import Endpoint, free_port, make_client, managed_servers
from bench_server import MB, create_key, make_payload, start_ours_on


def summarize(raw: Path, top: int) -> None:
    """py-spy's raw (collapsed) stacks -> own-time share per leaf frame."""
    leaf: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        total += int(count)
        leaf[frames[-1]] += int(count)
    for frame, count in leaf.most_common(top):
        print(f"{100 * count / max(total, 1):6.1f}%  {frame}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--stack", default="uvicorn-httptools")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "s3prof")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="profile-s3-"))
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    try:
        with managed_servers() as servers:
            home = tmp / "home"
            home.mkdir()
            key_id, secret = create_key(home)
            server = start_ours_on(args.stack, home, free_port(), tmp, auth=True,
                                   log_level="warning")
            servers.append(server)
            client = make_client(Endpoint("ours", server.endpoint, key_id, secret), "s3")
            client.create_bucket(Bucket="prof")
            src = tmp / "payload.bin"
            make_payload(src, args.mb * MB)
            for phase in ("upload", "download"):
                raw = args.out / f"{phase}.txt"
                rec = None
                if os.path.exists(spy):
                    rec = subprocess.Popen([spy, "record", "--pid", str(server.proc.pid),
                                            "--format", "raw", "--output", str(raw),
                                            "--rate", "250", "--subprocesses", "--nonblocking"],
                                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                    time.sleep(1.0)
                t0 = time.perf_counter()
                if phase == "upload":
                    client.upload_file(str(src), "prof", "obj")
                else:
                    client.download_file("prof", "obj", str(tmp / "back.bin"))
                secs = time.perf_counter() - t0
                print(f"{phase}: {args.mb / secs:.1f} MB/s")
                if rec is not None:
                    rec.send_signal(2)
                    _, err = rec.communicate(timeout=60)
                    if raw.exists():
                        summarize(raw, args.top)
                    else:
                        print(f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
