"""`GET /healthz` every 20 ms from a process of its own, until SIGTERM; then prints, as JSON, the
seconds each probe took and when it began (benchmarks: their own loop, busy with fake Slack and
the fake deploy system, would add its own delays to what it measures).

    python -m tests.perf.healthz_probe http://127.0.0.1:PORT
"""

from __future__ import annotations

import http.client
import json
import signal
import sys
import time
from types import FrameType
from urllib.parse import urlsplit

EVERY = 0.02


def probe(url: str) -> list[tuple[float, float]]:
    stopped = False

    def stop(_signal: int, _frame: FrameType | None) -> None:
        nonlocal stopped
        stopped = True

    signal.signal(signal.SIGTERM, stop)
    where = urlsplit(url)
    connection = http.client.HTTPConnection(where.hostname or "127.0.0.1", where.port, timeout=10)
    times = []
    begun = time.perf_counter()
    print("ready", flush=True)
    while not stopped:
        started = time.perf_counter()
        connection.request("GET", "/healthz")  # one keep-alive connection, as a prober keeps
        connection.getresponse().read()
        times.append((time.perf_counter() - started, started - begun))
        time.sleep(EVERY)
    return times


if __name__ == "__main__":
    json.dump(probe(sys.argv[1]), sys.stdout)
