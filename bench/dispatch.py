"""Engine figures, run by hand: `make bench` (or `.venv/bin/python bench/dispatch.py`).

Prints:
  * dispatch latency: POST /schedule-job.json (when=now) sent -> crawl process
    spawned, on an idle daemon (median, p90 over N runs);
  * 30 quick jobs with 3 slots through the daemon vs. the floor of 30 bare
    `python -m scrapy crawl quick` runs three at a time with no daemon;
  * the idle daemon's RSS (a real `scrapy-do` process, project pushed).
Targets (issue 2): median dispatch <= 20 ms; ratio <= 1.03; idle RSS <= 45 MiB.
"""

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import OFFLINE, multipart, offline_zip, reachable_tempdir  # noqa: E402
from tests.integration.daemonproc import DaemonProcess  # noqa: E402

JOBS = 30
SLOTS = 3


def floor_run(jobs=JOBS, slots=SLOTS):
    """30 bare crawls, three at a time, refilled as soon as one ends."""
    argv = [sys.executable, "-m", "scrapy", "crawl", "quick"]

    def one(_):
        subprocess.run(argv, cwd=OFFLINE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)

    start = time.perf_counter()
    with ThreadPoolExecutor(slots) as pool:
        list(pool.map(one, range(jobs)))
    return time.perf_counter() - start


def in_process(args):
    """Dispatch latency and the 30-job run against an in-process daemon over real HTTP."""
    from twisted.internet import defer, reactor, task

    import treq
    from scrapy_do.config import load
    from scrapy_do.domain.models import COMPLETED, JobStatus
    from scrapy_do.events import JobChanged
    from scrapy_do.service import make_service

    if args.fork:
        reactor._neverUseSpawn = True  # A/B: Twisted's fork path instead of posix_spawn
    workdir = Path(tempfile.mkdtemp(prefix="sd-bench-"))
    os.chmod(workdir, 0o711)  # the crawl user (nobody under root) passes through to the store
    config = dataclasses.replace(load(cwd=workdir), job_slots=SLOTS, completed_cap=1000,
                                 interfaces=(("127.0.0.1", 0),))
    service = make_service(config, reactor)
    results = {}

    @defer.inlineCallbacks
    def run():
        service.startService()
        c = service.controller
        url = f"http://127.0.0.1:{service.getServiceNamed('web').ports[0].getHost().port}"
        yield c.push_project(offline_zip())
        started, finished = {}, {}

        def on_event(event):
            if not isinstance(event, JobChanged):
                return
            job = event.job
            if job.status is JobStatus.RUNNING:
                started[job.identifier] = time.perf_counter()
            elif job.status in COMPLETED:
                finished[job.identifier] = time.perf_counter()
        c.subscribe(on_event)

        def post(fields):
            body, ctype = multipart(fields)
            return treq.post(url + "/schedule-job.json", data=body, headers={"Content-Type": ctype})

        latencies = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            resp = yield post({"project": "offline", "spider": "quick", "when": "now"})
            ident = (yield resp.json())["identifier"]
            latencies.append((started[ident] - t0) * 1000)
            while ident not in finished:
                yield task.deferLater(reactor, 0.01, lambda: None)
        results["latency"] = latencies

        for round_ in range(args.rounds):
            finished.clear()
            t0 = time.perf_counter()
            ids = []
            for _ in range(JOBS):
                resp = yield post({"project": "offline", "spider": "quick", "when": "now"})
                ids.append((yield resp.json())["identifier"])
            while len(finished) < JOBS:
                yield task.deferLater(reactor, 0.01, lambda: None)
            results.setdefault("batch", []).append(max(finished.values()) - t0)
            failed = [i for i in ids if c.get_job(i).status is not JobStatus.SUCCESSFUL]
            assert not failed, f"{len(failed)} jobs failed"
        yield service.stopService()

    def main():
        d = run()
        d.addErrback(lambda f: (results.setdefault("error", f), print(f.getTraceback())))
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(main)
    reactor.run()
    return results


def idle_rss():
    with reachable_tempdir() as tmp:
        daemon = DaemonProcess(Path(tmp)).start()
        body, ctype = multipart({"archive": ("offline.zip", offline_zip())})
        urllib.request.urlopen(urllib.request.Request(daemon.url + "/push-project.json", data=body,
                                                      headers={"Content-Type": ctype}), timeout=60).read()
        for _ in range(20):
            urllib.request.urlopen(daemon.url + "/status.json").read()
        time.sleep(2)
        with open(f"/proc/{daemon.proc.pid}/status") as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024
        daemon.stop()
        return rss


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="dispatch latency samples")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the 30-job batch and of the floor")
    parser.add_argument("--fork", action="store_true", help="make Twisted fork instead of posix_spawn (A/B)")
    args = parser.parse_args()
    # Floors before and after the daemon's rounds, so drift in machine load shows.
    floors = [floor_run() for _ in range(args.rounds)]
    res = in_process(args)
    floors += [floor_run() for _ in range(args.rounds)]
    lat = sorted(res["latency"])
    floor, batch = min(floors), min(res["batch"])
    report = {
        "dispatch_ms_median": round(statistics.median(lat), 2),
        "dispatch_ms_p90": round(lat[int(len(lat) * 0.9) - 1], 2),
        "dispatch_ms_max": round(lat[-1], 2),
        "floor_30_jobs_s": [round(f, 2) for f in floors],
        "daemon_30_jobs_s": [round(b, 2) for b in res["batch"]],
        "ratio_best": round(batch / floor, 3),
        "ratio_median": round(statistics.median(res["batch"]) / statistics.median(floors), 3),
        "idle_rss_mib": round(idle_rss(), 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
