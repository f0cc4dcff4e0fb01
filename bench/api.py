"""API latency figures, run by hand: `.venv/bin/python bench/api.py`.

Starts a real `scrapy-do` process and measures, over one keep-alive
connection from this process:
  * 1,000 sequential GET /status.json (median, p99);
  * GET /list-jobs.json?status=COMPLETED returning 1,000 jobs (median, p99);
  * GET /list-jobs.json?status=COMPLETED&limit=50 with 100,000 completed jobs
    in the store (median, p99).
Targets (issue 3): status p99 <= 0.7 ms; 1,000 jobs median <= 8 ms; limit=50 p99 <= 3 ms.
"""

import http.client
import json
import statistics
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scrapy_do.domain.models import Actor, JobStatus, Run, RunOptions  # noqa: E402
from scrapy_do.store import SqliteStore  # noqa: E402
from tests.helpers import reachable_tempdir  # noqa: E402
from tests.integration.daemonproc import DaemonProcess  # noqa: E402


def fill(db_path, count):
    store = SqliteStore(db_path).open()
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    store._db.execute("BEGIN")
    for i in range(count):
        ts = start + timedelta(seconds=i)
        options = RunOptions(spider="quick", description=f"job {i}", payload='{"n": %d}' % i)
        store.add_job(Run(identifier=str(uuid.uuid4()), status=(JobStatus.SUCCESSFUL, JobStatus.FAILED)[i % 2],
                          actor=Actor.SCHEDULER, project="offline", options=options, timestamp=ts, duration=3,
                          started=ts, finished=ts + timedelta(seconds=3), exit_code=0))
    store._db.execute("COMMIT")
    store.close()


def measure(conn, path, n):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
        times.append((time.perf_counter() - t0) * 1000)
        assert response.status == 200, body[:200]
    times.sort()
    return {"median_ms": round(statistics.median(times), 3), "p99_ms": round(times[int(n * 0.99) - 1], 3),
            "bytes": len(body)}


def run(jobs, label, probes):
    with reachable_tempdir() as tmp:
        tmp = Path(tmp)
        (tmp / "projects").mkdir()
        fill(tmp / "projects" / "scrapy-do.db", jobs)
        daemon = DaemonProcess(tmp, "[scrapy-do]\ncompleted-cap = 1000000\n[web]\ninterfaces = 127.0.0.1:0\n")
        daemon.start()
        port = int(daemon.url.rsplit(":", 1)[1])
        conn = http.client.HTTPConnection("127.0.0.1", port)
        try:
            results = {}
            for name, path, n in probes:
                measure(conn, path, min(n, 50))  # warm up
                results[name] = measure(conn, path, n)
            print(json.dumps({label: results}, indent=2))
        finally:
            conn.close()
            daemon.stop()


def main():
    run(1000, "1,000 completed jobs", [
        ("status.json", "/status.json", 1000),
        ("list-jobs COMPLETED (1,000 jobs)", "/list-jobs.json?status=COMPLETED", 200),
    ])
    run(100_000, "100,000 completed jobs", [
        ("list-jobs COMPLETED limit=50", "/list-jobs.json?status=COMPLETED&limit=50", 1000),
        ("status.json", "/status.json", 1000),
    ])


if __name__ == "__main__":
    main()
