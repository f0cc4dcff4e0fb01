"""Engine figures, run by hand: `make bench` (or `.venv/bin/python bench/dispatch.py`).

Prints, with warm starts on and off side by side (each in its own process, one after the other):
  * dispatch latency: POST /schedule-job.json (when=now) sent -> the job RUNNING (the crawl's pid known),
    on an idle daemon (median, p90 over N runs);
  * first request: the same POST -> Scrapy's "Spider opened" in the job's .err (logged just before the
    crawl's first request), heard from the daemon's own log writes;
  * 30 quick jobs with 3 slots through the daemon vs. the floor of 30 bare
    `python -m scrapy crawl quick` runs three at a time with no daemon (the "cold floor");
  * CPU seconds per quick job: what the daemon's children used (crawls, and warm parents with the crawls
    they forked and reaped), over every job of the run;
  * the warm parent's memory (VmRSS, and Pss / shared from /proc/PID/smaps_rollup);
  * the idle daemon's RSS (a real `scrapy-do` process, project pushed), warm-start on and off.
Targets: dispatch median <= 20 ms (issue 2); warm (issue 17): first request median <= 50 ms, 30 jobs / cold
floor <= 0.5; idle RSS with warm-start off unchanged.
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
                                 interfaces=(("127.0.0.1", 0),), warm_start=args.only == "on")
    service = make_service(config, reactor)
    results = {}

    @defer.inlineCallbacks
    def run():
        service.startService()
        c = service.controller
        url = f"http://127.0.0.1:{service.getServiceNamed('web').ports[0].getHost().port}"
        yield c.push_project(offline_zip())
        started, finished, opened = {}, {}, {}
        hub = c.hub
        heard = hub.notify

        def notify(path):
            # The first write of a job's .err holding "Spider opened": just before its first request.
            heard(path)
            if path.endswith(".err") and path not in opened:
                with open(path, "rb") as f:
                    if b"Spider opened" in f.read():
                        opened[path] = time.perf_counter()
        hub.notify = notify
        cpu0 = os.times()

        def on_event(event):
            if not isinstance(event, JobChanged):
                return
            job = event.job
            if job.status is JobStatus.RUNNING:
                started.setdefault(job.identifier, time.perf_counter())  # reports re-save a RUNNING job
            elif job.status in COMPLETED:
                finished[job.identifier] = time.perf_counter()
        c.subscribe(on_event)

        def post(fields):
            body, ctype = multipart(fields)
            return treq.post(url + "/schedule-job.json", data=body, headers={"Content-Type": ctype})

        latencies, first = [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            resp = yield post({"project": "offline", "spider": "quick", "when": "now"})
            ident = (yield resp.json())["identifier"]
            while ident not in finished:
                yield task.deferLater(reactor, 0.01, lambda: None)
            latencies.append((started[ident] - t0) * 1000)
            first.append((opened[str(config.log_dir / f"{ident}.err")] - t0) * 1000)
        results["latency"], results["first_request"] = latencies, first

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
        warm = service.getServiceNamed("warm-starts").pool if args.only == "on" else None
        if warm is not None:
            from scrapy_do.launchers.warm import smaps_rollup

            results["parents"] = [{**p, **{k: v for k, v in smaps_rollup(p["pid"]).items()
                                           if k in ("Rss", "Pss", "Shared_Clean", "Shared_Dirty", "Private_Dirty")}}
                                  for p in warm.describe()]
        yield service.stopService()
        cpu1 = os.times()  # the warm parents are reaped by now: their crawls' CPU is counted
        jobs = args.runs + JOBS * args.rounds
        results["cpu_per_job_s"] = ((cpu1.children_user + cpu1.children_system)
                                    - (cpu0.children_user + cpu0.children_system)) / jobs

    def main():
        d = run()
        d.addErrback(lambda f: (results.setdefault("error", f), print(f.getTraceback())))
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(main)
    reactor.run()
    return results


def idle_rss(warm):
    with reachable_tempdir() as tmp:
        conf = (f"[scrapy-do]\nwarm-start = {warm}\n[web]\ninterfaces = 127.0.0.1:0\n")
        daemon = DaemonProcess(Path(tmp), conf).start()
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


def _figures(res, floors):
    lat, first = sorted(res["latency"]), sorted(res["first_request"])
    floor = statistics.median(floors)
    out = {
        "dispatch_ms_median": round(statistics.median(lat), 2),
        "dispatch_ms_p90": round(lat[int(len(lat) * 0.9) - 1], 2),
        "first_request_ms_median": round(statistics.median(first), 1),
        "first_request_ms_p90": round(first[int(len(first) * 0.9) - 1], 1),
        "daemon_30_jobs_s": [round(b, 2) for b in res["batch"]],
        "ratio_to_cold_floor_best": round(min(res["batch"]) / min(floors), 3),
        "ratio_to_cold_floor_median": round(statistics.median(res["batch"]) / floor, 3),
        "cpu_per_job_s": round(res["cpu_per_job_s"], 3),
    }
    for parent in res.get("parents", []):
        out.setdefault("warm_parents", []).append(
            {"rss_mib": round(parent["Rss"] / 1024, 1), "pss_mib": round(parent["Pss"] / 1024, 1),
             "shared_mib": round((parent["Shared_Clean"] + parent["Shared_Dirty"]) / 1024, 1),
             "private_dirty_mib": round(parent["Private_Dirty"] / 1024, 1)})
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="dispatch latency samples")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the 30-job batch and of the floor")
    parser.add_argument("--fork", action="store_true", help="make Twisted fork instead of posix_spawn (A/B)")
    parser.add_argument("--warm", choices=("both", "on", "off"), default="both",
                        help="warm-start of the daemon's runs (default: both, side by side)")
    parser.add_argument("--only", choices=("on", "off"), help=argparse.SUPPRESS)  # one run, in this process
    args = parser.parse_args()
    if args.only:
        print(json.dumps(in_process(args), default=str))
        return
    # Floors before and after the daemon's rounds, so drift in machine load shows.
    floors = [floor_run() for _ in range(args.rounds)]
    runs = {}
    for mode in (("on", "off") if args.warm == "both" else (args.warm,)):
        argv = [sys.executable, __file__, "--only", mode, "--runs", str(args.runs), "--rounds", str(args.rounds)]
        out = subprocess.run(argv + (["--fork"] if args.fork else []), check=True, capture_output=True,
                             text=True).stdout
        runs[mode] = json.loads(out.strip().splitlines()[-1])
    floors += [floor_run() for _ in range(args.rounds)]
    report = {"cold_floor_30_jobs_s": [round(f, 2) for f in floors]}
    for mode, res in runs.items():
        report[f"warm_{mode}"] = _figures(res, floors)
        report[f"warm_{mode}"]["idle_rss_mib"] = round(idle_rss(mode), 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
