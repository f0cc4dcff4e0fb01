"""Scheduler figures for issue 12, run by hand: `.venv/bin/python bench/schedules.py`.

Prints, for a real `scrapy-do` process:
  * idle CPU with 10,000 schedules (every N hours, every day at HH:MM in
    several zones, cron expressions in several zones), after their re-arming
    at start-up (which it also times);
  * with 100,000 PENDING jobs of one spider held back by max-per-spider = 1,
    how long `schedule-job` of another spider at priority 1000 takes from the
    POST to its crawl process (median, p90).
Targets: idle CPU < 1 %; median <= 20 ms.
"""

import argparse
import json
import random
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scrapy_do.domain import spec as specs  # noqa: E402
from scrapy_do.domain.models import RunOptions, new_run, new_schedule  # noqa: E402
from scrapy_do.store import SqliteStore  # noqa: E402
from tests.helpers import offline_zip, reachable_tempdir  # noqa: E402
from tests.integration.daemonproc import DaemonProcess  # noqa: E402

ZONES = ["Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC", "Australia/Sydney"]
CONF = "[scrapy-do]\njob-slots = 2\nmax-per-spider = 1\ncompleted-cap = 50\n[web]\ninterfaces = 127.0.0.1:0\n"


def a_spec(rng):
    kind = rng.randrange(3)
    if kind == 0:
        return f"every {rng.randint(2, 48)} hours", None
    if kind == 1:
        return f"every day at {rng.randrange(24):02d}:{rng.randrange(60):02d}", rng.choice(ZONES)
    return f"{rng.randrange(60)} {rng.randrange(24)} * * {rng.choice(['*', 'mon-fri', 'sat,sun'])}", \
        rng.choice(ZONES)


def fill(store_path, schedules=0, pending=0, rng=None):
    store = SqliteStore(store_path).open()
    now = datetime.now(timezone.utc)
    jobs = []
    for _ in range(schedules):
        text, zone = a_spec(rng)
        jobs.append(new_schedule("offline", RunOptions("slow"), specs.parse(text).text, now, timezone=zone))
    jobs += [new_run("offline", RunOptions("slow", payload='{"pages": 100000}'), now) for _ in range(pending)]
    store.add_jobs(jobs)
    store.close()


def idle_cpu(daemon, seconds):
    proc = psutil.Process(daemon.proc.pid)
    before, t0 = proc.cpu_times(), time.monotonic()
    time.sleep(seconds)
    after, took = proc.cpu_times(), time.monotonic() - t0
    return 100 * ((after.user - before.user) + (after.system - before.system)) / took


def wait_recovered(daemon, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "job slots ready" in daemon.log.read_text():
            return
        time.sleep(0.05)
    raise AssertionError("the daemon did not recover in time")


def dispatch_latency(daemon, runs):
    proc = psutil.Process(daemon.proc.pid)
    latencies = []
    for _ in range(runs):
        known = {c.pid for c in proc.children()}
        t0 = time.perf_counter()
        code, body = daemon.request("/schedule-job.json", {"project": "offline", "spider": "quick",
                                                            "priority": "1000"})
        assert code == 200, body
        while not {c.pid for c in proc.children()} - known:
            time.sleep(0.0005)
        latencies.append((time.perf_counter() - t0) * 1000)
        daemon.wait_job(body["identifier"], {"SUCCESSFUL", "FAILED"}, timeout=60)
    return latencies


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=10000)
    parser.add_argument("--pending", type=int, default=100000)
    parser.add_argument("--idle-seconds", type=float, default=30)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    rng = random.Random(12)
    out = {}
    with reachable_tempdir() as tmp:
        d = DaemonProcess(Path(tmp), CONF).start()
        assert d.request("/push-project.json", {"archive": ("offline.zip", offline_zip())})[0] == 200
        d.stop()
        db = Path(tmp) / "projects" / "scrapy-do.db"
        fill(db, schedules=args.schedules, rng=rng)
        t0 = time.monotonic()
        d.start(wait=False)
        wait_recovered(d)
        out["start_with_schedules_s"] = round(time.monotonic() - t0, 2)
        d.url = f"http://127.0.0.1:{d.port_if_listening()}"
        time.sleep(2)
        out["idle_cpu_percent_with_schedules"] = round(idle_cpu(d, args.idle_seconds), 3)
        out["rss_mib_with_schedules"] = round(psutil.Process(d.proc.pid).memory_info().rss / 2 ** 20, 1)
        d.stop()
        fill(db, pending=args.pending)
        d.start(wait=False)
        wait_recovered(d)
        d.url = f"http://127.0.0.1:{d.port_if_listening()}"
        latencies = sorted(dispatch_latency(d, args.runs))
        out["dispatch_ms_median_with_pending"] = round(statistics.median(latencies), 2)
        out["dispatch_ms_p90_with_pending"] = round(latencies[int(0.9 * (len(latencies) - 1))], 2)
        code, body = d.get("/list-jobs.json", status="PENDING", limit="1")
        out["pending"] = body["total"]
        d.stop()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
