"""Concurrent API load while crawls run, by hand: `.venv/bin/python bench/load.py [--seconds 30] [--clients 50]`.

Starts a real `scrapy-do` process (job slots 3) over a store pre-filled with completed jobs, pushes the
offline fixture project, starts 3 slow crawls (they run for the whole test), then runs N client threads,
each with its own keep-alive connection (http.client), for the given time, mixing:
  * GET /status.json                                   (50 %)
  * GET /list-jobs.json?status=COMPLETED&limit=50       (40 %)
  * POST /schedule-job.json, when=every 2 hours         (10 %; all canceled after the run, not timed)
It prints JSON: requests/s, p50/p90/p99/max latency (ms) per kind and overall, error count (non-2xx,
exceptions), and whether the target (no error, overall p99 < 100 ms) is met. Latencies include the
client's own time: its threads share the machine (and the GIL) with the daemon and the crawls.
"""

import argparse
import http.client
import json
import random
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from api import fill  # noqa: E402  (bench/api.py: completed jobs stored before start)
from tests.helpers import offline_zip, reachable_tempdir  # noqa: E402
from tests.integration.daemonproc import DaemonProcess  # noqa: E402

KINDS = [
    ("status", 50, "GET", "/status.json", None),
    ("list-jobs", 40, "GET", "/list-jobs.json?status=COMPLETED&limit=50", None),
    ("schedule", 10, "POST", "/schedule-job.json",
     urllib.parse.urlencode({"project": "offline", "spider": "quick", "when": "every 2 hours",
                             "description": "bench/load.py"}).encode()),
]
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def percentile(sorted_values, q):
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, max(0, int(round(q / 100 * len(sorted_values))) - 1))
    return round(sorted_values[index], 2)


def summary(latencies, errors, seconds):
    values = sorted(latencies)
    return {"requests": len(values) + errors, "errors": errors,
            "requests_per_s": round((len(values) + errors) / seconds, 1),
            "p50_ms": percentile(values, 50), "p90_ms": percentile(values, 90),
            "p99_ms": percentile(values, 99), "max_ms": round(values[-1], 2) if values else None}


class Client(threading.Thread):
    """One keep-alive connection sending a random mix of `kinds` for `seconds` (bench/lag.py uses it too,
    with its own mix and a `pause` between requests)."""

    def __init__(self, port, seconds, seed, start_barrier, kinds=KINDS, pause=0.0):
        super().__init__(daemon=True)
        self.port = port
        self.seconds = seconds
        self.rng = random.Random(seed)
        self.barrier = start_barrier
        self.kinds = kinds
        self.pause = pause
        self.latencies = {kind[0]: [] for kind in kinds}
        self.errors = {kind[0]: 0 for kind in kinds}
        self.error_samples = []
        self.scheduled = []

    def connect(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)

    def run(self):
        names = [k[0] for k in self.kinds]
        weights = [k[1] for k in self.kinds]
        by_name = {k[0]: k for k in self.kinds}
        conn = self.connect()
        try:
            self.barrier.wait(30)
        except threading.BrokenBarrierError:
            return
        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline:
            name, _, method, path, body = by_name[self.rng.choices(names, weights)[0]]
            t0 = time.perf_counter()
            try:
                conn.request(method, path, body=body, headers=FORM if body else {})
                response = conn.getresponse()
                data = response.read()
                elapsed = (time.perf_counter() - t0) * 1000
                if response.status != 200:
                    raise RuntimeError(f"{response.status}: {data[:200]!r}")
                if name == "schedule":
                    self.scheduled.append(json.loads(data)["identifier"])
                self.latencies[name].append(elapsed)
            except Exception as e:  # noqa: BLE001 - every failure counts as an error
                self.errors[name] += 1
                if len(self.error_samples) < 5:
                    self.error_samples.append(f"{name}: {e!r}")
                conn.close()
                conn = self.connect()
                continue
            if self.pause:
                time.sleep(self.pause * self.rng.uniform(0.5, 1.5))
        conn.close()


def cancel_all(port, identifiers, workers=4):
    """Cancel the scheduled jobs (not timed); return how many cancels failed."""
    failed = []
    chunks = [identifiers[i::workers] for i in range(workers)]

    def work(chunk):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for identifier in chunk:
            try:
                conn.request("POST", "/cancel-job.json", body=urllib.parse.urlencode({"id": identifier}).encode(),
                             headers=FORM)
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    failed.append(identifier)
            except Exception:  # noqa: BLE001
                failed.append(identifier)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.close()

    threads = [threading.Thread(target=work, args=(c,)) for c in chunks]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    return len(failed)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--slow-crawls", type=int, default=3)
    parser.add_argument("--completed", type=int, default=1000, help="completed jobs pre-filled in the store")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    with reachable_tempdir() as tmp:
        tmp = Path(tmp)
        (tmp / "projects").mkdir()
        fill(tmp / "projects" / "scrapy-do.db", args.completed)
        daemon = DaemonProcess(tmp, "[scrapy-do]\njob-slots = 3\ncancel-grace = 3\ncompleted-cap = 1000000\n"
                                    "[web]\ninterfaces = 127.0.0.1:0\n")
        daemon.start()
        try:
            code, body = daemon.request("/push-project.json", {"archive": ("offline.zip", offline_zip())})
            assert code == 200, body
            pages = int(args.seconds * 10) + 300  # 0.1 s a page: outlives the run
            crawls = []
            for _ in range(args.slow_crawls):
                code, body = daemon.request("/schedule-job.json", {"project": "offline", "spider": "slow",
                                                                   "payload": json.dumps({"pages": pages})})
                assert code == 200, body
                crawls.append(body["identifier"])
            for identifier in crawls[:3]:
                daemon.wait_job(identifier, {"RUNNING"}, timeout=60)
            time.sleep(2)  # let the crawls get past Scrapy's start-up

            port = int(daemon.url.rsplit(":", 1)[1])
            barrier = threading.Barrier(args.clients + 1)
            clients = [Client(port, args.seconds, args.seed * 1000 + i, barrier) for i in range(args.clients)]
            for c in clients:
                c.start()
            daemon_proc = psutil.Process(daemon.proc.pid)
            barrier.wait(30)
            cpu0 = daemon_proc.cpu_times()
            start = time.monotonic()
            for c in clients:
                c.join(args.seconds + 60)
            elapsed = time.monotonic() - start
            cpu1 = daemon_proc.cpu_times()
            still_running = [j for j in crawls if daemon.job(j)["status"] == "RUNNING"]

            report = {"seconds": round(elapsed, 1), "clients": args.clients, "slow_crawls_running":
                      len(still_running), "completed_jobs_in_store": args.completed, "kinds": {}}
            all_latencies, all_errors = [], 0
            for name, *_ in KINDS:
                lat = [x for c in clients for x in c.latencies[name]]
                err = sum(c.errors[name] for c in clients)
                report["kinds"][name] = summary(lat, err, elapsed)
                all_latencies += lat
                all_errors += err
            report["overall"] = summary(all_latencies, all_errors, elapsed)
            report["daemon_cpu_s"] = round((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system), 1)
            report["error_samples"] = [s for c in clients for s in c.error_samples][:10]
            scheduled = [i for c in clients for i in c.scheduled]
            report["scheduled_then_canceled"] = len(scheduled)
            report["cancel_failures"] = cancel_all(port, scheduled)
            report["target"] = "no error, overall p99 < 100 ms"
            report["meets_target"] = all_errors == 0 and (report["overall"]["p99_ms"] or 0) < 100
            print(json.dumps(report, indent=2))
            return 0 if report["meets_target"] else 1
        finally:
            daemon.stop()


if __name__ == "__main__":
    sys.exit(main())
