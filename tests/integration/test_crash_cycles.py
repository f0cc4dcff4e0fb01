"""Repeated `kill -9` of a loaded daemon: no orphan crawl, no job lost or run twice, schedules kept.

`CrashHarness` drives the cycles and is also used by bench/crash.py (50 cycles, with figures).
"""

import json
import signal
import sqlite3
import time
import urllib.error

import psutil
import pytest

from tests.helpers import offline_zip
from tests.integration.daemonproc import DaemonProcess, pid_alive, wait_until

pytestmark = pytest.mark.integration

TERMINAL = {"SUCCESSFUL", "FAILED", "CANCELED"}


def crawl_processes(daemon_pid):
    """Live crawl processes started by the daemon whose pid was `daemon_pid` (found by their environment)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            # A warm crawl shows its command line as one string (launchers/warmparent.py show_command).
            if "scrapy_do.launchers.child" not in " ".join(proc.info["cmdline"] or []).split():
                continue
            if proc.environ().get("SCRAPY_DO_PARENT_PID") == str(daemon_pid) and pid_alive(proc.pid):
                found.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    return found


class CrashHarness:
    """One daemon working directory, crashed and restarted again and again, with the bookkeeping to judge it."""

    def __init__(self, workdir, slots=2, slow_per_cycle=2, quick_per_cycle=2, wait=20.0):
        conf = (f"[scrapy-do]\njob-slots = {slots}\ncancel-grace = 3\ncompleted-cap = 1000000\n"
                "[web]\ninterfaces = 127.0.0.1:0\n")
        self.workdir = workdir
        self.daemon = DaemonProcess(workdir, conf)
        self.slots = slots
        self.slow_per_cycle = slow_per_cycle
        self.quick_per_cycle = quick_per_cycle
        self.wait = wait
        self.slow, self.quick = [], []
        self.periodic = None
        self.daemon_pids = []
        self.starts = {}  # job id -> crawl starts seen in its log before the last kill

    # -- plumbing ---------------------------------------------------------

    def db(self, sql, *args):
        with sqlite3.connect(self.workdir / "projects" / "scrapy-do.db", timeout=10) as db:
            return db.execute(sql, args).fetchall()

    def schedule(self, spider, when="now", payload="{}"):
        code, body = self.daemon.request("/schedule-job.json", {"project": "offline", "spider": spider,
                                                                "when": when, "payload": payload})
        assert code == 200, body
        return body["identifier"]

    def until(self, condition, what, timeout=None):
        return wait_until(condition, timeout or self.wait, what)

    def start_count(self, identifier):
        try:
            return (self.workdir / "projects" / "log-dir" / f"{identifier}.out").read_text().count("slow spider started")
        except FileNotFoundError:
            return 0

    def started(self, identifier):
        """Whether the current crawl of `identifier` got going (logs are appended to across runs)."""
        return self.start_count(identifier) > self.starts.get(identifier, 0)

    def running(self):
        return [row[0] for row in self.db("SELECT identifier FROM runs WHERE status = 'RUNNING'")]

    # -- the cycle --------------------------------------------------------

    def start(self):
        """Start (or restart) the daemon; return seconds until it answers status.json."""
        t0 = time.monotonic()
        self.daemon.start()
        code, _ = self.daemon.get("/status.json")
        assert code == 200
        self.daemon_pids.append(self.daemon.proc.pid)
        if self.periodic is None:
            code, body = self.daemon.request("/push-project.json", {"archive": ("offline.zip", offline_zip())})
            assert code == 200, body
            self.periodic = self.schedule("quick", "every 3 hours")
        return time.monotonic() - t0

    def load(self):
        """Add slow and quick jobs, then wait until every slot runs a crawl that got going; return seconds."""
        t0 = time.monotonic()
        self.slow += [self.schedule("slow", payload='{"pages": 600}') for _ in range(self.slow_per_cycle)]
        self.quick += [self.schedule("quick", payload=json.dumps({"n": len(self.quick) + i}))
                       for i in range(self.quick_per_cycle)]
        busy = lambda: len(r := self.running()) == self.slots and all(map(self.started, r)) and r  # noqa: E731
        self.until(busy, f"{self.slots} running crawls")
        return time.monotonic() - t0

    def crash(self):
        """`kill -9` the daemon; return (orphans alive after 15 s, seconds until all were gone, crawls seen before)."""
        daemon_pid = self.daemon.proc.pid
        pids = set(crawl_processes(daemon_pid))
        seen = len(pids)
        self.starts.update({i: self.start_count(i) for i in self.slow})
        handles = self.db("SELECT handle FROM runs WHERE status = 'RUNNING' AND handle IS NOT NULL")
        pids |= {int(row[0][4:].partition("@")[0]) for row in handles}
        t0 = time.monotonic()
        self.daemon.stop(signal.SIGKILL)
        deadline = t0 + 15
        while time.monotonic() < deadline:
            alive = [p for p in pids if pid_alive(p)] + [p for p in crawl_processes(daemon_pid) if p not in pids]
            if not alive:
                return [], time.monotonic() - t0, seen
            time.sleep(0.05)
        return alive, time.monotonic() - t0, seen

    def recovered(self):
        """Seconds from a restart until every slot runs again (the daemon was started by `start`)."""
        t0 = time.monotonic()
        self.until(lambda: len(self.running()) == self.slots, "slots refilled after restart")
        return time.monotonic() - t0

    def periodic_status(self):
        return self.daemon.job(self.periodic)["status"]

    def stray_jobs(self):
        """Job ids in the store that we did not create and that are not children of the periodic job."""
        known = {self.periodic, *self.slow, *self.quick}
        rows = self.db("SELECT identifier, schedule_id FROM runs UNION ALL SELECT identifier, NULL FROM schedules")
        return [i for i, parent in rows if i not in known and parent != self.periodic]

    def finish(self):
        """Cancel the slow jobs, let the quick ones run, and return the final judgement as a dict."""
        for identifier in self.slow:
            if self.daemon.job(identifier)["status"] not in TERMINAL:
                code, body = self.daemon.request("/cancel-job.json", {"id": identifier})
                assert code == 200 or (code == 409 and "already finished" in body["msg"]), body
        children = [row[0] for row in self.db("SELECT identifier FROM runs WHERE schedule_id = ?", self.periodic)]
        expected = [*self.slow, *self.quick, *children]
        timeout = 30 + 3 * len(expected) / self.slots
        self.until(lambda: all(self.daemon.job(i)["status"] in TERMINAL for i in expected),
                   "every job to finish", timeout)
        statuses = dict(self.db("SELECT identifier, status FROM runs UNION ALL SELECT identifier, status FROM schedules"))
        runs = {}
        for n, identifier in enumerate(self.quick):
            log = self.workdir / "projects" / "log-dir" / f"{identifier}.out"
            text = log.read_text() if log.exists() else ""
            runs[identifier] = sum(1 for line in text.splitlines() if line.startswith('{"payload": {"n": %d}' % n))
        _, status = self.daemon.get("/status.json")
        terminal = sum(1 for i in expected if statuses.get(i) in TERMINAL)
        counted = status["jobs-successful"] + status["jobs-failed"] + status["jobs-canceled"]
        return {
            "lost": sorted(set(expected) - set(statuses)),
            "not_terminal": sorted(i for i in expected if statuses.get(i) not in TERMINAL),
            "stray": self.stray_jobs(),
            "quick_not_successful": sorted(i for i in self.quick if statuses.get(i) != "SUCCESSFUL"),
            "quick_run_count_wrong": {i: c for i, c in runs.items() if c != 1},
            "terminal_jobs": terminal,
            "terminal_counters": counted,
            "periodic": statuses.get(self.periodic),
            "children": len(children),
        }

    def stop(self):
        try:
            self.daemon.stop()
        except (OSError, urllib.error.URLError):
            pass
        return [p for pid in self.daemon_pids for p in crawl_processes(pid)]


def test_kill_9_cycles_lose_nothing_duplicate_nothing_and_leave_no_orphans(tmp_path):
    """Three kill -9 cycles of a loaded daemon: no orphan crawl, every job ends exactly once, the schedule stays."""
    harness = CrashHarness(tmp_path)
    t0 = time.monotonic()
    try:
        harness.start()
        for cycle in range(3):
            harness.load()
            orphans, _, seen = harness.crash()
            assert seen == harness.slots, f"cycle {cycle}: saw {seen} crawl processes before the kill"
            assert orphans == [], f"cycle {cycle}: crawls outlived the killed daemon: {orphans}"
            harness.start()
            assert harness.periodic_status() == "SCHEDULED", f"cycle {cycle}"
            assert harness.stray_jobs() == [], f"cycle {cycle}: jobs appeared from nowhere"
            harness.recovered()
        result = harness.finish()
    finally:
        leftovers = harness.stop()
    print(result)
    assert leftovers == []
    assert result["lost"] == [] and result["not_terminal"] == [] and result["stray"] == [], result
    assert result["quick_not_successful"] == [] and result["quick_run_count_wrong"] == {}, result
    assert result["terminal_counters"] == result["terminal_jobs"], result
    assert result["periodic"] == "SCHEDULED", result
    assert time.monotonic() - t0 < 90
