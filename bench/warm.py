"""Warm crawl starts (issue 17), run by hand: `.venv/bin/python bench/warm.py --runs 20`.

Side by side in one run, on a copy of the offline fixture project, no daemon:
  * cold: `python -m scrapy_do.launchers.child crawl quick` as local.py spawns it (clean environment, the
    arguments on stdin, stdout/stderr pipes); warm: the same crawl forked from a warm parent
    (scrapy_do/launchers/warm.py), its pipes passed with the request;
  * from the request (spawn call / start message) to: the pid known; the crawl's first stderr byte; Scrapy's
    "Spider opened" (just before its first request); the quick spider's stdout line (printed in parse, so
    its first request answered): median and p90 over N runs;
  * CPU seconds per quick job (user+sys of the crawl, from wait4), warm vs cold, and the warm parent's own
    start-up (wall and CPU, once);
  * the warm parent's memory (VmRSS, /proc/PID/smaps_rollup: Rss, Pss, Shared_*, Private_*), and that of a
    running crawl forked from it beside a cold one (how much the fork shares);
  * 30 quick jobs three at a time, cold vs warm (wall time), unless --jobs 0.
Target (issue 17): median request -> first request <= 50 ms warm.
"""

import argparse
import json
import os
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scrapy_do.domain.options import RunOptions  # noqa: E402
from scrapy_do.launchers.local import CHILD_MODULE, crawl_arguments, crawl_environment  # noqa: E402
from scrapy_do.launchers.warm import WarmParent, parent_environment, smaps_rollup  # noqa: E402
from tests.helpers import OFFLINE  # noqa: E402

MARKS = ("first_err", "spider_opened", "first_response")


def watch(out_r, err_r, t0, timeout=60.0):
    """Read both pipes to their end; the perf_counter offsets (ms) of each mark."""
    marks = {}
    buffers = {out_r: b"", err_r: b""}
    sel = selectors.DefaultSelector()
    for fd in buffers:
        os.set_blocking(fd, False)
        sel.register(fd, selectors.EVENT_READ)
    open_fds = set(buffers)
    deadline = time.monotonic() + timeout
    while open_fds and time.monotonic() < deadline:
        for key, _ in sel.select(0.5):
            fd = key.fd
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                continue
            now = (time.perf_counter() - t0) * 1000
            if not chunk:
                sel.unregister(fd)
                open_fds.discard(fd)
                continue
            buffers[fd] += chunk
            if fd == err_r:
                marks.setdefault("first_err", now)
                if b"Spider opened" in buffers[fd]:
                    marks.setdefault("spider_opened", now)
            elif b"\n" in buffers[fd]:
                marks.setdefault("first_response", now)
    for fd in buffers:
        os.close(fd)
    return marks, buffers[out_r], buffers[err_r]


def crawl_env(tree):
    return crawl_environment(os.environ, {"SCRAPY_DO_PARENT_PID": str(os.getpid()), "SCRAPY_DO_CWD": str(tree)})


def arguments(spider="quick", payload="{}"):
    return crawl_arguments(RunOptions(spider=spider, payload=payload))


def cold_once(tree, spider="quick", payload="{}", sample=None):
    env = crawl_env(tree)
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", CHILD_MODULE, "crawl", spider], env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    marks = {"pid": (time.perf_counter() - t0) * 1000}
    proc.stdin.write(json.dumps({"args": arguments(spider, payload)}).encode())
    proc.stdin.close()
    out_r, err_r = os.dup(proc.stdout.fileno()), os.dup(proc.stderr.fileno())
    proc.stdout.close()
    proc.stderr.close()
    if sample:
        sample(proc.pid)
    seen, _, err = watch(out_r, err_r, t0)
    marks.update(seen)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, err.decode()[-2000:]
    return marks, usage.ru_utime + usage.ru_stime


def warm_once(parent, tree, job_id, spider="quick", payload="{}", sample=None):
    env = crawl_env(tree)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    t0 = time.perf_counter()
    crawl = parent.spawn(job_id, spider, arguments(spider, payload), env, out_w, err_w)
    marks = {"pid": (time.perf_counter() - t0) * 1000}
    os.close(out_w)
    os.close(err_w)
    if sample:
        sample(crawl.pid)
    seen, _, err = watch(out_r, err_r, t0)
    marks.update(seen)
    parent.wait(job_id, 30)
    assert crawl.status == 0, (crawl, err.decode()[-2000:])
    return marks, crawl.cpu


def summary(samples):
    out = {}
    for mark in ("pid", *MARKS):
        values = sorted(s[mark] for s in samples if mark in s)
        if values:
            out[mark] = {"median_ms": round(statistics.median(values), 1),
                         "p90_ms": round(values[max(0, int(len(values) * 0.9 + 0.5) - 1)], 1),
                         "max_ms": round(values[-1], 1)}
    return out


def memory_of_running(run):
    """Run `run(sample)` on a 20-page slow crawl; sample its smaps_rollup while it runs (in a thread)."""
    box = {}

    def sample(pid):
        def later():
            time.sleep(1.0)
            box.update(smaps_rollup(pid))
        box["thread"] = ThreadPoolExecutor(1).submit(later)

    run(sample)
    box.pop("thread").result()
    keys = ("Rss", "Pss", "Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty")
    return {k.lower() + "_mib": round(box.get(k, 0) / 1024, 1) for k in keys}


def batch(jobs, slots, one):
    start = time.perf_counter()
    with ThreadPoolExecutor(slots) as pool:
        list(pool.map(one, range(jobs)))
    return round(time.perf_counter() - start, 2)


def warm_batch(parent, tree, jobs, slots):
    """`jobs` quick crawls, `slots` at a time, from one thread (the client is not thread-safe, like the
    daemon's reactor); their few KiB of output wait in the pipes, read after each ends."""
    env, argv = crawl_env(tree), arguments()
    start = time.perf_counter()
    waiting, running, pipes = list(range(jobs)), set(), {}
    while waiting or running:
        while waiting and len(running) < slots:
            i = waiting.pop(0)
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            parent.request(f"batch{i}", "quick", argv, env, out_w, err_w)
            os.close(out_w)
            os.close(err_w)
            running.add(f"batch{i}")
            pipes[f"batch{i}"] = (out_r, err_r)
        parent.read_events(1.0)
        for job_id in [j for j in running if parent.crawls[j].ended]:
            assert parent.crawls[job_id].status == 0, parent.crawls[job_id]
            running.discard(job_id)
            for fd in pipes.pop(job_id):
                os.close(fd)
    return round(time.perf_counter() - start, 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="samples of each start (after one warm-up each)")
    parser.add_argument("--jobs", type=int, default=30, help="quick jobs three at a time, cold and warm (0: skip)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sd-bench-warm-"))
    tree = shutil.copytree(OFFLINE, tmp / "offline", ignore=shutil.ignore_patterns("__pycache__"))
    try:
        before = os.times()
        t0 = time.perf_counter()
        parent = WarmParent.start(parent_environment(os.environ, tree))
        parent_ready_s = time.perf_counter() - t0
        cold_once(tree)
        warm_once(parent, tree, "warm-up")
        cold, warm, cold_cpu, warm_cpu = [], [], [], []
        for i in range(args.runs):  # interleaved, so drift in machine load hits both alike
            marks, cpu = cold_once(tree)
            cold.append(marks)
            cold_cpu.append(cpu)
            marks, cpu = warm_once(parent, tree, f"w{i}")
            warm.append(marks)
            warm_cpu.append(cpu)
        rollup = smaps_rollup(parent.pid)
        mem = {"warm_child": memory_of_running(
                   lambda s: warm_once(parent, tree, "mem", "slow", '{"pages": 20}', sample=s)),
               "cold_child": memory_of_running(lambda s: cold_once(tree, "slow", '{"pages": 20}', sample=s))}
        report = {
            "runs": args.runs,
            "cold": summary(cold),
            "warm": summary(warm),
            "cpu_s_per_quick_job": {"cold_median": round(statistics.median(cold_cpu), 3),
                                    "warm_median": round(statistics.median(warm_cpu), 3)},
            "warm_parent": {
                "ready_s": round(parent_ready_s, 3),
                "warmup_s_in_parent": parent.ready["warmup_s"],
                "modules": parent.ready["modules"],
                "rss_mib_at_ready": round(parent.ready["rss_kib"] / 1024, 1),
                **{k.lower() + "_mib": round(rollup.get(k, 0) / 1024, 1)
                   for k in ("Rss", "Pss", "Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty")},
            },
            "running_slow_crawl_memory": mem,
        }
        if args.jobs:
            report[f"{args.jobs}_quick_jobs_3_slots_s"] = {
                "cold": batch(args.jobs, 3, lambda _: cold_once(tree)),
                "warm": warm_batch(parent, tree, args.jobs, 3),
            }
        parent.close()
        after = os.times()
        report["bench_children_cpu_s"] = round(after.children_user + after.children_system
                                               - before.children_user - before.children_system, 2)
        print(json.dumps(report, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    main()
