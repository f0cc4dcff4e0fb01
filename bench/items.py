"""Figures for live stats and item capture (issue 13), run by hand: `.venv/bin/python bench/items.py`.

Prints:
  * the wall time of the fixture's `bulk` spider (20,000 small items as fast as Scrapy yields them),
    started as the daemon starts crawls (scrapy_do.launchers.child): without the daemon's extension,
    with it reporting stats only, and with item capture, to a stand-in for the daemon's report endpoints
    in this process; the median over N runs of each, and Scrapy's own elapsed_time_seconds;
  * the cost the extension adds to such a crawl, measured where it is not drowned in this VM's noise (one
    crawl's wall time varies by +-10 % from run to run): the extra time per item of Scrapy's item processor
    with the daemon's step (reporter.ItemProcessor and capture) over Scrapy's own, in a tight loop through
    the real processor and the project's pipeline, times 20,000, plus the imports the extension adds to a
    crawl's start (measured in a fresh interpreter that has imported Scrapy's crawler), over the crawl's
    median wall time; the reports themselves go while the crawl runs;
  * three such crawls at once: the API's p50/p99 (GET /list-jobs.json?status=ACTIVE and /status.json,
    one after another) while they run, against the same on the idle daemon;
  * the daemon's RSS idle and at its peak during the three crawls.
Targets (issue 13): cost <= 3 %; API p99 <= 20 ms with 3 crawls; RSS <= idle + 10 MiB.
"""

import argparse
import http.server
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil  # noqa: E402

from tests.helpers import OFFLINE, offline_zip, reachable_tempdir  # noqa: E402
from tests.integration.daemonproc import DaemonProcess  # noqa: E402

CONF = "[scrapy-do]\njob-slots = 3\nkeep-items = {items}\n[web]\ninterfaces = 127.0.0.1:0\n"
PAYLOAD = json.dumps({"count": 20000})


class Receiver(http.server.BaseHTTPRequestHandler):
    """Stands in for the daemon's report endpoints: takes every report, acknowledges every item."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        answer = b'{"status": "ok"}'
        if "/items.jl" in self.path:
            first = int(self.path.rsplit("first=", 1)[1])
            answer = json.dumps({"status": "ok", "received": first + body.count(b"\n"), "capped": False}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


def crawls(runs, log_level="INFO"):
    """The crawl as the daemon starts it (scrapy_do.launchers.child), without the extension, with it reporting
    stats only, and with item capture: {kind: [(wall s, Scrapy's elapsed_time_seconds)]}, runs interleaved."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/report/x"
    feed = Path(tempfile.mkdtemp(prefix="sd-bench-feed-")) / "items.jl"
    reports = {"no extension": (None, []),
               "stats only": ({"url": url + ".json", "token": "t", "interval": 2}, []),
               "stats and items": ({"url": url + ".json", "token": "t", "interval": 2, "items": url + "/items.jl"},
                                   []),
               "for reference: no extension, FEEDS jsonlines to a file": (None, ["-O", f"{feed}:jsonlines"])}
    times = {kind: [] for kind in reports}
    argv = [sys.executable, "-m", "scrapy_do.launchers.child", "crawl", "bulk"]
    for _ in range(runs):
        for kind, (report, extra) in reports.items():
            sent = json.dumps({"args": ["-a", f"payload={PAYLOAD}", "-s", f"LOG_LEVEL={log_level}", *extra],
                               "report": report})
            start = time.perf_counter()
            done = subprocess.run(argv, cwd=OFFLINE, input=sent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  check=True, text=True)
            wall = time.perf_counter() - start
            assert "'item_scraped_count': 20000" in done.stderr, done.stderr[-2000:]
            elapsed = float(re.search(r"'elapsed_time_seconds': ([0-9.]+)", done.stderr).group(1))
            times[kind].append((wall, elapsed))
    server.shutdown()
    return times


def _one_pass(manager, items):
    """Every item through the item processor, as Scrapy's scraper awaits it (each finishes at once here)."""
    for item in items:
        step = manager.process_item_async(item)
        try:
            step.send(None)
        except StopIteration:
            pass


def item_step_seconds(count=20000, repeat=7):
    """(Scrapy's own processor, with the daemon's step): seconds for `count` items, the fastest of `repeat`."""
    import timeit

    sys.path.insert(0, str(OFFLINE))
    from scrapy.pipelines import ItemPipelineManager
    from scrapy.utils.test import get_crawler
    from twisted.internet import defer

    from scrapy_do.crawl import reporter

    items = [{"n": i, "name": f"item {i}", "price": i * 0.01, "tags": ["a", "b"]} for i in range(count)]

    def manager(capturing):
        crawler = get_crawler(settings_dict={"ITEM_PIPELINES": {"offline.pipelines.DropMarked": 300}})
        if not capturing:
            return ItemPipelineManager.from_crawler(crawler)
        r = reporter.Reporter(crawler, {"url": "http://127.0.0.1:9/x.json", "token": "t",
                                        "items": "http://127.0.0.1:9/x/items.jl"})
        r._post = lambda *args, **kwargs: defer.Deferred()  # a batch on its way, never answered: no I/O here
        return reporter.ItemProcessor.from_crawler(crawler)
    plain = min(timeit.repeat(lambda: _one_pass(manager(False), items), number=1, repeat=repeat))
    ours = min(timeit.repeat(lambda: _one_pass(manager(True), items), number=1, repeat=repeat))
    return plain, ours


IMPORTS = """
import time
import scrapy.crawler, scrapy.core.engine, scrapy.core.scraper, scrapy.pipelines, scrapy.extensions.corestats
start = time.perf_counter()
import scrapy_do.crawl.reporter, twisted.web.client
print(time.perf_counter() - start)
"""


def import_seconds(repeat=5):
    """What the extension's imports add to a crawl's start (the fastest of `repeat` fresh interpreters)."""
    return min(float(subprocess.run([sys.executable, "-c", IMPORTS], cwd=OFFLINE, capture_output=True, text=True,
                                    check=True).stdout) for _ in range(repeat))


def daemon(workdir, keep_items):
    d = DaemonProcess(Path(workdir), CONF.format(items="on" if keep_items else "off"))
    d.start()
    code, body = d.request("/push-project.json", {"archive": ("offline.zip", offline_zip())})
    assert code == 200, body
    return d


def schedule(d):
    code, body = d.request("/schedule-job.json", {"project": "offline", "spider": "bulk", "payload": PAYLOAD})
    assert code == 200, body
    return body["identifier"]


def latencies(d, seconds=None, until=None):
    """Request times (ms) of the two API calls, in turn, for `seconds` or until `until()` is true."""
    out = []
    paths = ["/list-jobs.json?status=ACTIVE", "/status.json"]
    end = time.monotonic() + (seconds or 3600)
    i = 0
    while time.monotonic() < end and not (until and until()):
        start = time.perf_counter()
        with urllib.request.urlopen(d.url + paths[i % 2], timeout=30) as resp:
            resp.read()
        out.append((time.perf_counter() - start) * 1000)
        i += 1
    return out


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def concurrent(crawls=3):
    with reachable_tempdir("sd-bench-items-") as tmp:
        return _concurrent(tmp, crawls)


def _concurrent(tmp, crawls):
    d = daemon(tmp, True)
    try:
        proc = psutil.Process(d.proc.pid)
        time.sleep(1)
        idle_rss = proc.memory_info().rss
        idle = latencies(d, seconds=5)
        jobs = [schedule(d) for _ in range(crawls)]
        peak = [idle_rss]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], proc.memory_info().rss)
                time.sleep(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        for job in jobs:
            d.wait_job(job, {"RUNNING", "SUCCESSFUL"}, timeout=60)

        ended = threading.Event()

        def watch():  # twice a second, apart from the measured requests
            while not all(d.job(j)["status"] in ("SUCCESSFUL", "FAILED") for j in jobs):
                time.sleep(0.5)
            ended.set()

        watcher = threading.Thread(target=watch)
        watcher.start()
        busy = latencies(d, until=ended.is_set)
        watcher.join()
        done.set()
        sampler.join()
        for job in jobs:
            record = d.wait_job(job, {"SUCCESSFUL", "FAILED"}, timeout=120)
            assert record["stats"]["item_scraped_count"] == 20000, record
        return idle, busy, idle_rss, peak[0]
    finally:
        d.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="runs of each kind of crawl (default 7)")
    parser.add_argument("--log-levels", default="INFO,DEBUG",
                        help="the crawls' LOG_LEVEL, each in turn (default INFO,DEBUG: DEBUG is Scrapy's default, "
                             "which logs every item)")
    args = parser.parse_args()
    info_wall = None
    for level in args.log_levels.split(","):
        kinds = crawls(args.runs, level)
        print(f"bulk spider, 20,000 items, LOG_LEVEL={level}, {args.runs} rounds: process wall time (median, "
              "fastest) | Scrapy's elapsed_time_seconds (median) | cost: the median of each round's ratio to the "
              "crawl without the extension run just before it")
        floor = kinds["no extension"]
        for name, times in kinds.items():
            wall, crawl = (statistics.median(t[i] for t in times) for i in (0, 1))
            fastest = min(t[0] for t in times)
            paired = statistics.median(t[0] / f[0] for t, f in zip(times, floor))
            print(f"  {name:54} {wall:6.3f} s, {fastest:6.3f} s | {crawl:6.3f} s | "
                  f"{(paired - 1) * 100:+5.1f} %")
        if level == "INFO" or info_wall is None:
            info_wall = statistics.median(t[0] for t in floor)
    plain, ours = item_step_seconds()
    imports = import_seconds()
    added = ours - plain + imports
    print(f"the extension's own cost: {(ours - plain) / 20000 * 1e6:.2f} µs per item (Scrapy's item processor "
          f"{plain / 20000 * 1e6:.2f} µs, with the daemon's step {ours / 20000 * 1e6:.2f} µs), "
          f"{(ours - plain) * 1000:.1f} ms for 20,000 items, plus {imports * 1000:.1f} ms of imports: "
          f"{added * 1000:.1f} ms, {added / info_wall * 100:+.1f} % of the crawl's median {info_wall:.3f} s "
          "(LOG_LEVEL=INFO)")
    print("  target: the extension and item capture cost the crawl <= +3 % (the paired medians above are within "
          "this VM's noise of a few % either way; use 11 rounds or more)")
    idle, busy, idle_rss, peak = concurrent()
    print(f"API while idle:         p50 {percentile(idle, 50):5.1f} ms  p99 {percentile(idle, 99):5.1f} ms "
          f"({len(idle)} requests)")
    print(f"API with 3 bulk crawls: p50 {percentile(busy, 50):5.1f} ms  p99 {percentile(busy, 99):5.1f} ms "
          f"({len(busy)} requests)   target p99 <= 20 ms")
    print(f"daemon RSS: idle {idle_rss / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB "
          f"(+{(peak - idle_rss) / 2**20:.1f} MiB)   target <= +10 MiB")


if __name__ == "__main__":
    main()
