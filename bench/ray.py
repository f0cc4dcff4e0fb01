"""The Ray backend against the local one, run by hand: `.venv/bin/python bench/ray.py [--rounds 5] [--jobs 30]`.

Starts a real local Ray head from .venv-ray (`make install-ray` first; tests/integration/rayhead.py) with
`--ray-cpus` CPUs (default 3, so that the 3 job slots' crawls can all run on it at once: each submission asks
for 1 CPU; RayHead's own default, 2, would hold the third in Ray's PENDING), and two real daemons on this
machine, both with job-slots = 3: one with `[executor] backend = local`, one with `backend = ray`
(`ray-poll-interval = 0.5`). Both get the offline fixture project. Prints one JSON object:
  * first_log_line_s: per backend, POST /schedule-job.json (when=now, spider `quick`) sent -> the first
    byte of <log-dir>/<job id>.err written by the daemon (the file's size polled every 5 ms), jobs one at
    a time (each waits for the previous one's end), interleaved local/ray; `warmup` is each daemon's first
    job, not counted (on Ray: the packages' zip and upload, the head's first submission), then the median
    and p90 (nearest rank: with 5 rounds, the slowest) over --rounds jobs, and every value;
  * ray_breakdown_median_s: where the time goes on Ray in those rounds (medians, seconds after the POST):
    `submitted` (the submission's start_time as Ray records it), `entrypoint_started` (Ray's line "Running
    entrypoint" in its job-driver log: the job's supervisor worker is up and its runtime env ready),
    `crawl_output_on_node` (the first byte of the crawl's output copied to that log by the wrapper,
    scrapy_do.launchers.remote), `first_byte_at_daemon` (the figure above: the wrapper sends every 0.5 s);
    the same for the warm-up job in ray_breakdown_warmup_s. `submitted` comes from the Jobs API after the job,
    the other two from the head's job-driver-<submission id>.log, polled with the .err (Ray's internals: null
    when that file is not where Ray 2.60 keeps it);
  * throughput: per backend, --jobs quick jobs scheduled at once (3 slots): wall time from just before the
    first POST to the last job's `finished` as the daemon records it, jobs per minute, the median time a
    job held its slot (`finished` - `started`), the most crawl processes alive at once (/proc sampled every
    0.1 s), on Ray the median of Ray's own start_time -> end_time (from the submission, so a wait for a
    CPU counts); ray_vs_local the ratio of the wall times.
`settings` also says the machine's load average before and after (the figures assume an idle machine).
No target is set (figures only). The head is stopped and the daemons too, whatever happens.
"""

import argparse
import json
import math
import os
import statistics
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import offline_zip, reachable_tempdir  # noqa: E402
from tests.integration.daemonproc import DaemonProcess  # noqa: E402
from tests.integration.rayhead import RayHead, unavailable  # noqa: E402

SLOTS = 3
RAY_POLL = 0.5
FILE_POLL = 0.005
SAMPLE = 0.1
FIRST_BYTE_TIMEOUT = 120.0
JOB_TIMEOUT = 120.0
ENDED = {"SUCCESSFUL", "FAILED", "CANCELED"}


def conf(backend, head=None):
    text = ("[scrapy-do]\njob-slots = %d\ncompleted-cap = 1000\ncancel-grace = 5\n"
            "[web]\ninterfaces = 127.0.0.1:0\n[executor]\nbackend = %s\n" % (SLOTS, backend))
    if backend == "ray":
        text += f"ray-address = {head.address}\nray-poll-interval = {RAY_POLL}\n"
    return text


def err_path(d, job):
    return d.workdir / "projects" / "log-dir" / f"{job}.err"


def driver_log(head, job):
    return Path(head.temp_dir) / "session_latest" / "logs" / f"job-driver-scrapy-do-{job}.log"


def epoch(shown):
    return datetime.fromisoformat(shown).timestamp()


def one_job(d, head=None):
    """Schedule `quick` now; seconds (after the POST was sent) until the daemon's .err has its first byte,
    and on Ray the moments of the breakdown. Returns once the job ended (SUCCESSFUL, else AssertionError)."""
    t0_wall, t0 = time.time(), time.perf_counter()
    job = d.schedule("offline", "quick")
    err = err_path(d, job)
    drv = driver_log(head, job) if head else None
    marks, drv_size = {}, 0
    deadline = t0 + FIRST_BYTE_TIMEOUT
    while True:
        now = time.perf_counter()
        if drv is not None and "crawl_output_on_node" not in marks:
            try:
                size = drv.stat().st_size
            except FileNotFoundError:
                size = 0
            if size != drv_size:
                drv_size = size
                lines = drv.read_bytes().split(b"\n")
                for i, line in enumerate(lines):
                    if line.startswith(b"Running entrypoint"):
                        marks.setdefault("entrypoint_started", now - t0)
                        if len(lines) > i + 2 or (len(lines) == i + 2 and lines[i + 1]):
                            marks["crawl_output_on_node"] = now - t0
                        break
        try:
            if err.stat().st_size > 0:
                first = now - t0
                break
        except FileNotFoundError:
            pass
        if now > deadline:
            raise AssertionError(f"no byte in {err} {FIRST_BYTE_TIMEOUT:.0f} s after scheduling; "
                                 f"{d.job(job)}; daemon log: {d.log.read_text()[-2000:]}")
        time.sleep(FILE_POLL)
    ended = d.wait_job(job, ENDED, timeout=JOB_TIMEOUT)
    assert ended["status"] == "SUCCESSFUL", (ended, err.read_text())
    if head is not None:
        info = head.json("GET", f"/api/jobs/scrapy-do-{job}")
        marks["submitted"] = info["start_time"] / 1000 - t0_wall
        marks["first_byte_at_daemon"] = first
        marks = {k: marks.get(k) for k in ("submitted", "entrypoint_started", "crawl_output_on_node",
                                           "first_byte_at_daemon")}
    return first, marks


def _is_crawl(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return argv[1:4] == [b"-m", b"scrapy_do.launchers.child", b"crawl"]  # a zombie's is empty


def crawls_running():
    """How many crawl processes (`python -m scrapy_do.launchers.child crawl`, either backend) live at once.

    A scan of /proc takes milliseconds, in which a crawl may end and the next one start (a local slot is
    refilled that fast); each one found is asked again once the scan is over: a crawl still there then
    did live beside every other one found."""
    found = [entry for entry in os.listdir("/proc") if entry.isdigit() and _is_crawl(entry)]
    return sum(1 for pid in found if _is_crawl(pid))


class Sampler(threading.Thread):
    """The most crawl processes alive at once, sampled every SAMPLE seconds until `stop()`."""

    def __init__(self):
        super().__init__(daemon=True)
        self.most = 0
        self._done = threading.Event()

    def run(self):
        while not self._done.wait(SAMPLE):
            self.most = max(self.most, crawls_running())

    def stop(self):
        self._done.set()
        self.join()
        return self.most


def batch(d, jobs, head=None):
    """`jobs` quick jobs scheduled at once; the wall time to the last end and what explains it."""
    sampler = Sampler()
    sampler.start()
    try:
        t0 = time.time()
        ids = [d.schedule("offline", "quick") for _ in range(jobs)]
        deadline = time.monotonic() + JOB_TIMEOUT + jobs * 10
        while True:
            code, body = d.get("/list-jobs.json", status="ACTIVE")
            assert code == 200, body
            if body["total"] == 0:
                break
            assert time.monotonic() < deadline, f"{body['total']} jobs still active"
            time.sleep(0.2)
    finally:
        most = sampler.stop()
    records = [d.job(i) for i in ids]
    bad = [r for r in records if r["status"] != "SUCCESSFUL"]
    assert not bad, f"{len(bad)} of {jobs} jobs did not succeed: {bad[0]}"
    wall = max(epoch(r["finished"]) for r in records) - t0
    out = {"wall_s": round(wall, 2), "jobs_per_min": round(jobs / wall * 60, 1),
           "slot_held_median_s": round(statistics.median(epoch(r["finished"]) - epoch(r["started"])
                                                         for r in records), 2),
           "most_crawls_at_once": most}
    if head is not None:
        mine = {f"scrapy-do-{i}" for i in ids}
        infos = [j for j in head.json("GET", "/api/jobs/") if j.get("submission_id") in mine]
        out["ray_start_to_end_median_s"] = round(statistics.median((j["end_time"] - j["start_time"]) / 1000
                                                                   for j in infos), 2)
    return out


def summary(values):
    ordered = sorted(values)
    return {"median": round(statistics.median(ordered), 3),
            "p90": round(ordered[math.ceil(0.9 * len(ordered)) - 1], 3),
            "all": [round(v, 3) for v in values]}


def measure(args, head, local, ray):
    """Both daemons up: push, the one-at-a-time rounds, then the batches."""
    report = {}
    for d in (local, ray):
        d.push("offline.zip", offline_zip())
    report["ray_version"] = head.json("GET", "/api/version").get("ray_version")

    warm_local, _ = one_job(local)
    warm_ray, warm_marks = one_job(ray, head)
    firsts = {"local": [], "ray": []}
    marks = []
    for _ in range(args.rounds):
        firsts["local"].append(one_job(local)[0])
        first, m = one_job(ray, head)
        firsts["ray"].append(first)
        marks.append(m)
    report["first_log_line_s"] = {
        "local": {"warmup": round(warm_local, 3), **summary(firsts["local"])},
        "ray": {"warmup": round(warm_ray, 3), **summary(firsts["ray"])},
    }
    report["ray_breakdown_median_s"] = {
        k: (round(statistics.median(m[k] for m in marks), 3) if all(m[k] is not None for m in marks) else None)
        for k in marks[0]} if marks else {}
    report["ray_breakdown_warmup_s"] = {k: (round(v, 3) if v is not None else None) for k, v in warm_marks.items()}

    local_batch = batch(local, args.jobs)
    ray_batch = batch(ray, args.jobs, head)
    report["throughput"] = {"local": local_batch, "ray": ray_batch,
                            "ray_vs_local": round(ray_batch["wall_s"] / local_batch["wall_s"], 2)}
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="jobs one at a time per backend (after a warm-up)")
    parser.add_argument("--jobs", type=int, default=30, help="jobs of the throughput run, per backend")
    parser.add_argument("--ray-cpus", type=int, default=SLOTS, help="CPUs the Ray head offers (RayHead num_cpus)")
    args = parser.parse_args()
    reason = unavailable()
    if reason:
        sys.exit(reason)

    report = {"settings": {"rounds": args.rounds, "jobs": args.jobs, "job_slots": SLOTS,
                           "ray_poll_interval_s": RAY_POLL, "ray_head_cpus": args.ray_cpus,
                           "ray_entrypoint_num_cpus": 1, "cpus_of_machine": os.cpu_count(),
                           "load_average_1m_at_start": round(os.getloadavg()[0], 2)}}
    head = RayHead(num_cpus=args.ray_cpus)
    try:
        report["ray_head_start_s"] = round(head.start(), 2)
        with reachable_tempdir("sd-bench-local-") as tmp_local, reachable_tempdir("sd-bench-ray-") as tmp_ray:
            daemons = []
            try:
                local = DaemonProcess(Path(tmp_local), conf("local"))
                daemons.append(local)
                local.start()
                ray = DaemonProcess(Path(tmp_ray), conf("ray", head))
                daemons.append(ray)
                ray.start()
                report.update(measure(args, head, local, ray))
            finally:
                for d in daemons:  # before their folders go, and before the head
                    try:
                        d.stop()
                    except Exception as e:  # the head must stop even so
                        print(f"stopping the daemon in {d.workdir} failed: {e}", file=sys.stderr)
    finally:
        head.close()
    report["settings"]["ray_version"] = report.pop("ray_version", None)
    report["settings"]["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
