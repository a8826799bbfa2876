"""Request metrics in Prometheus text format, without a client-library dependency.

Each uvicorn worker process keeps its own counters; every series carries a ``pid``
label so a scrape of ``/metrics`` (answered by whichever worker accepts the
connection) never mixes workers up. Aggregate with ``sum without (pid)`` in PromQL.
That is the documented trade-off against a shared multiprocess registry.
"""

from __future__ import annotations

import os
import threading
from bisect import bisect_left
from collections import defaultdict

#: Latency histogram buckets in seconds (Prometheus convention).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics:
    """Counters and histograms for requests, labelled by service, operation and status."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self._hist: dict[tuple[str, str], list[float]] = {}
        self._bytes_in: dict[str, int] = defaultdict(int)
        self._bytes_out: dict[str, int] = defaultdict(int)
        self._in_flight = 0
        self.pid = os.getpid()

    def started(self) -> None:
        with self._lock:
            self._in_flight += 1

    def observe(self, service: str, operation: str, status: int, seconds: float,
                bytes_in: int, bytes_out: int) -> None:
        with self._lock:
            self._in_flight -= 1
            self._requests[(service, operation, status)] += 1
            hist = self._hist.get((service, operation))
            if hist is None:
                # Per-bucket (not cumulative) counts, len(BUCKETS) of them, then the +Inf
                # count (all observations), then the sum. render() cumulates; observing
                # stays one bisect instead of a loop over every bucket.
                hist = self._hist[(service, operation)] = [0.0] * (len(BUCKETS) + 2)
            i = bisect_left(BUCKETS, seconds)
            if i < len(BUCKETS):
                hist[i] += 1
            hist[len(BUCKETS)] += 1
            hist[len(BUCKETS) + 1] += seconds
            self._bytes_in[service] += bytes_in
            self._bytes_out[service] += bytes_out

    def render(self) -> str:
        pid = self.pid
        lines = [
            "# HELP airegistry_requests_total HTTP requests by service, operation and status.",
            "# TYPE airegistry_requests_total counter",
        ]
        with self._lock:
            for (svc, op, status), n in sorted(self._requests.items()):
                lines.append(
                    f'airegistry_requests_total{{pid="{pid}",service="{_label(svc)}",'
                    f'operation="{_label(op)}",status="{status}"}} {n}'
                )
            lines += [
                "# HELP airegistry_request_duration_seconds Request latency.",
                "# TYPE airegistry_request_duration_seconds histogram",
            ]
            for (svc, op), hist in sorted(self._hist.items()):
                base = f'pid="{pid}",service="{_label(svc)}",operation="{_label(op)}"'
                cumulative = 0
                for i, bound in enumerate(BUCKETS):
                    cumulative += int(hist[i])
                    lines.append(
                        f'airegistry_request_duration_seconds_bucket{{{base},le="{bound}"}} '
                        f"{cumulative}"
                    )
                lines.append(
                    f'airegistry_request_duration_seconds_bucket{{{base},le="+Inf"}} '
                    f"{int(hist[len(BUCKETS)])}"
                )
                lines.append(
                    f"airegistry_request_duration_seconds_sum{{{base}}} {hist[len(BUCKETS) + 1]:.6f}"
                )
                lines.append(
                    f"airegistry_request_duration_seconds_count{{{base}}} {int(hist[len(BUCKETS)])}"
                )
            lines += [
                "# HELP airegistry_request_bytes_total Request body bytes received.",
                "# TYPE airegistry_request_bytes_total counter",
            ]
            lines += [
                f'airegistry_request_bytes_total{{pid="{pid}",service="{_label(s)}"}} {n}'
                for s, n in sorted(self._bytes_in.items())
            ]
            lines += [
                "# HELP airegistry_response_bytes_total Response body bytes sent.",
                "# TYPE airegistry_response_bytes_total counter",
            ]
            lines += [
                f'airegistry_response_bytes_total{{pid="{pid}",service="{_label(s)}"}} {n}'
                for s, n in sorted(self._bytes_out.items())
            ]
            lines += [
                "# HELP airegistry_requests_in_flight Requests being served right now.",
                "# TYPE airegistry_requests_in_flight gauge",
                f'airegistry_requests_in_flight{{pid="{pid}"}} {self._in_flight}',
            ]
        return "\n".join(lines) + "\n"
