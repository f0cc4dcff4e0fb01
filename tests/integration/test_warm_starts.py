"""Warm crawl starts through the real daemon (launchers/warmpool.py): real warm parents, real crawls forked from
them, real kill -9s; the crawls fetch data: URLs of copies of the offline project."""

import json
import os
import signal
import sys
import urllib.request

import psutil
import pytest

from tests.helpers import offline_copy, reachable_tempdir, zip_tree
from tests.integration.daemonproc import DaemonProcess, wait_gone, wait_until

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl, /proc and SCM_RIGHTS")]

CONF = "[scrapy-do]\njob-slots = 2\ncancel-grace = 3\nwarm-start = on\n{extra}[web]\ninterfaces = 127.0.0.1:0\n"

#: Prints what tells a warm crawl from a cold one, and what must not differ.
WHOAMI = '''
import json, os
import scrapy


class WhoAmI(scrapy.Spider):
    name = "whoami"
    start_urls = ["data:,who"]

    def parse(self, response):
        with open("/proc/self/cgroup") as f:
            cgroup = f.read()
        with open("/proc/self/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\\0", b" ").decode().strip()
        print(json.dumps({"pid": os.getpid(), "ppid": os.getppid(), "uid": os.getuid(), "cgroup": cgroup,
                          "cmdline": cmdline, "cwd": os.getcwd(), "sid": os.getsid(0), "pgid": os.getpgid(0),
                          "data": os.environ.get("SPIDER_DATA_DIR")}), flush=True)
        yield {"who": os.getpid()}
'''


def project(root, name="warmth", extra=None):
    """A copy of the offline project named `name`, with the whoami spider (and `extra` as another module)."""
    return zip_tree(offline_copy(root, name, {"whoami": WHOAMI, "extra": extra or None}))


@pytest.fixture
def store():
    with reachable_tempdir() as tmp:
        yield tmp


def start(tmp_path, store, extra=""):
    return DaemonProcess(tmp_path, CONF.format(extra=f"project-store = {store}/projects\n{extra}")).start()


def err_log(d, store, job):
    return (d.workdir / store / "projects" / "log-dir" / f"{job}.err").read_text()


def out_lines(d, store, job):
    text = (d.workdir / store / "projects" / "log-dir" / f"{job}.out").read_text()
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def run(d, spider="whoami", project="warmth", **fields):
    job = d.schedule(project, spider, **fields)
    return job, d.wait_job(job, {"SUCCESSFUL", "FAILED", "CANCELED"}, timeout=60)


def status(d):
    code, body = d.get("/status.json")
    assert code == 200, body
    return body


def warm_parents(d):
    """The daemon's warm parent processes (its children running warmparent.py)."""
    return [p for p in psutil.Process(d.proc.pid).children()
            if "scrapy_do.launchers.warmparent" in " ".join(p.cmdline())]


def test_crawls_fork_from_one_warm_parent_and_look_like_cold_crawls(tmp_path, store):
    d = start(tmp_path, store)
    try:
        d.push("warmth.zip", project(tmp_path))
        first, done = run(d)
        second, again = run(d)
        assert done["status"] == again["status"] == "SUCCESSFUL", (done, err_log(d, store, first))
        seen = [out_lines(d, store, job)[0] for job in (first, second)]
        parents = warm_parents(d)
        assert len(parents) == 1 and {s["ppid"] for s in seen} == {parents[0].pid}
        for job, s in zip((first, second), seen):
            assert "starts cold" not in err_log(d, store, job)
            assert s["pid"] == s["sid"] == s["pgid"]  # its own session and group, as a cold crawl
            assert s["cmdline"] == f"{sys.executable} -m scrapy_do.launchers.child crawl whoami"  # what ps shows
            assert s["data"] and os.path.realpath(s["cwd"]) == os.path.realpath(s["data"])
            if os.getuid() == 0:
                assert s["uid"] == 65534  # the default crawl user under root, as for a cold crawl
            if "own cgroup" in d.log.read_text():
                assert job in s["cgroup"]
        assert done["stats"]["item_scraped_count"] == 1  # the stats and items reports work as in a cold crawl
        with urllib.request.urlopen(f"{d.url}/get-items/{first}.jl", timeout=10) as resp:
            assert [json.loads(line)["who"] for line in resp.read().splitlines()] == [seen[0]["pid"]]
        body = status(d)
        assert body["warm-start"] == "on" and body["warm-parents"] == 1 and body["warm-memory"] > 20
    finally:
        d.stop()
    assert wait_gone(parents[0].pid, 10)  # the daemon's stop takes its warm parents with it


def test_warm_start_off_and_a_job_with_warm_off_start_cold(tmp_path, store):
    d = start(tmp_path, store)
    try:
        d.push("warmth.zip", project(tmp_path))
        job, done = run(d, warm="off")
        assert done["status"] == "SUCCESSFUL" and done["warm"] is False
        assert out_lines(d, store, job)[0]["ppid"] == d.proc.pid and not warm_parents(d)
        assert status(d)["warm-parents"] == 0
    finally:
        d.stop()
    (tmp_path / "off").mkdir()
    off = DaemonProcess(tmp_path / "off", CONF.replace("warm-start = on", "warm-start = off").format(
        extra=f"project-store = {store}/projects\n")).start()
    try:
        job, done = run(off)
        assert done["status"] == "SUCCESSFUL"
        assert out_lines(off, store, job)[0]["ppid"] == off.proc.pid and not warm_parents(off)
        assert status(off)["warm-start"] == "off" and status(off)["warm-parents"] == 0
    finally:
        off.stop()


THREAD_AT_IMPORT = '''
import threading, time
threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()
'''


def test_a_project_that_starts_a_thread_at_import_starts_cold_saying_why(tmp_path, store):
    d = start(tmp_path, store)
    try:
        d.push("warmth.zip", project(tmp_path, extra=THREAD_AT_IMPORT))
        for _ in range(2):
            job, done = run(d)
            assert done["status"] == "SUCCESSFUL"
            assert "this crawl starts cold: the project cannot be warm: 2 threads run" in err_log(d, store, job)
            assert out_lines(d, store, job)[0]["ppid"] == d.proc.pid
        assert d.log.read_text().count("starts its crawls cold") == 1  # asked once per version, not per crawl
        assert status(d)["warm-parents"] == 0
    finally:
        d.stop()


def test_a_warm_parent_killed_outright_ends_its_crawl_and_is_replaced(tmp_path, store):
    d = start(tmp_path, store)
    try:
        d.push("warmth.zip", project(tmp_path))
        job = d.schedule("warmth", "slow", payload='{"pages": 100}')
        d.wait_job(job, {"RUNNING"}, timeout=30)
        (parent,) = warm_parents(d)
        crawl = wait_until(lambda: parent.children(), what="the crawl's fork")[0]
        os.kill(parent.pid, signal.SIGKILL)
        ended = d.wait_job(job, {"FAILED", "SUCCESSFUL"}, timeout=30)
        assert wait_gone(crawl.pid, 10)  # its parent-death signal stopped it: no orphan
        assert ended["status"] == "FAILED" and "warm parent of this crawl died" in err_log(d, store, job)
        replaced = wait_until(lambda: [p for p in warm_parents(d) if p.pid != parent.pid], what="a new warm parent")
        later, done = run(d)
        assert done["status"] == "SUCCESSFUL" and "starts cold" not in err_log(d, store, later)
        assert out_lines(d, store, later)[0]["ppid"] == replaced[0].pid
    finally:
        d.stop()


SLOW_IMPORT = '''
import time
time.sleep(2)
'''


def test_a_job_waiting_for_a_warm_parent_that_dies_starts_cold(tmp_path, store):
    d = start(tmp_path, store)
    try:
        d.push("warmth.zip", project(tmp_path, extra=SLOW_IMPORT))
        job = d.schedule("warmth", "whoami")
        (parent,) = wait_until(lambda: warm_parents(d), what="the warm parent's start")
        os.kill(parent.pid, signal.SIGKILL)
        done = d.wait_job(job, {"SUCCESSFUL", "FAILED"}, timeout=60)
        assert done["status"] == "SUCCESSFUL"
        assert "this crawl starts cold: the warm parent died" in err_log(d, store, job)
        assert out_lines(d, store, job)[0]["ppid"] == d.proc.pid
    finally:
        d.stop()


def test_a_push_retires_the_old_versions_parent_and_idle_parents_go(tmp_path, store):
    d = start(tmp_path, store, "warm-idle = 3\n")
    try:
        d.push("warmth.zip", project(tmp_path))
        first, _ = run(d)
        old = out_lines(d, store, first)[0]["ppid"]
        d.push("warmth.zip", project(tmp_path / "v2"))
        second, done = run(d)
        new = out_lines(d, store, second)[0]["ppid"]
        assert done["status"] == "SUCCESSFUL" and new != old
        assert wait_gone(old, 10)
        assert wait_gone(new, 15)  # idle for warm-idle seconds
        assert status(d)["warm-parents"] == 0
    finally:
        d.stop()


def test_at_most_warm_parents_are_kept(tmp_path, store):
    d = start(tmp_path, store, "warm-parents = 1\n")
    try:
        d.push("warmth.zip", project(tmp_path))
        d.push("other.zip", project(tmp_path, name="other"))
        first, _ = run(d)
        second, done = run(d, project="other")
        assert done["status"] == "SUCCESSFUL" and "starts cold" not in err_log(d, store, second)
        assert wait_gone(out_lines(d, store, first)[0]["ppid"], 10)  # the least recently used one retired
        assert [p.pid for p in warm_parents(d)] == [out_lines(d, store, second)[0]["ppid"]]
    finally:
        d.stop()


def test_a_killed_daemon_leaves_neither_warm_parent_nor_warm_crawl_behind(tmp_path, store):
    d = start(tmp_path, store)
    d.push("warmth.zip", project(tmp_path))
    job = d.schedule("warmth", "slow", payload='{"pages": 40}')
    d.wait_job(job, {"RUNNING"}, timeout=30)
    (parent,) = warm_parents(d)
    crawl = wait_until(lambda: parent.children(), what="the crawl's fork")[0]
    d.stop(signal.SIGKILL)
    assert wait_gone(parent.pid, 15) and wait_gone(crawl.pid, 15)
    d.start()
    try:
        done = d.wait_job(job, {"SUCCESSFUL", "FAILED"}, timeout=90)  # queued again, as after a cold crawl
        assert done["status"] == "SUCCESSFUL"
    finally:
        d.stop()
