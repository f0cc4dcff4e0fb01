"""Daylight-saving time end to end: the real `scrapy-do` process under Debian's libfaketime.

The engine's unit tests inject a clock; these start the real daemon (and so its
real `scrapy crawl` children, which inherit the environment) with
`TZ=Europe/Berlin`, `LD_PRELOAD=libfaketime.so.1` and a *relative*
`FAKETIME="+/-<seconds>"`, computed just before the start as the wanted instant
minus the real time. The fake clock then ticks at real speed, so Twisted's
timers (epoll waits are relative) behave, and nothing has to be parsed in a
zone. Europe/Berlin falls back on 2026-10-25 at 01:00 UTC (03:00 CEST becomes
02:00 CET, so local 02:00-03:00 happens twice) and springs forward on
2026-03-29 at 01:00 UTC (02:00 CET becomes 03:00 CEST).

libfaketime caveats (Debian's 0.9.10, Python 3.11), found by trying each wait:

* Its default fakes CLOCK_MONOTONIC as well. Then time.sleep, select, epoll and
  subprocess waits work, but every *timed* lock wait (threading.Event.wait,
  Lock.acquire(timeout=...), Condition.wait, queue.get(timeout=...)) hangs:
  CPython passes an absolute CLOCK_MONOTONIC deadline to sem_clockwait /
  pthread_cond_clockwait, which libfaketime does not intercept, so the faked
  deadline lies years ahead of the real clock. The daemon and the crawls use no
  timed lock waits, so this default is what these tests use.
* FAKETIME_DONT_FAKE_MONOTONIC=1 cures the lock waits but breaks time.sleep
  (clock_nanosleep with TIMER_ABSTIME fails with EINVAL), hence also
  psutil.wait_procs and Popen.wait(timeout=...), which the daemon uses to stop
  crawls. FAKETIME_FORCE_MONOTONIC_FIX=1 and libfaketimeMT.so.1 change nothing.
* FAKETIME_NO_CACHE is not needed: the offset comes from the environment, not
  from a file that could change.
* The test process itself is not faked; `fake_now()` adds the offset to its own
  clock to know the daemon's time.
"""

import calendar
import glob
import json
import re
import signal
import sqlite3
import subprocess
import time
import urllib.error
import urllib.request
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.helpers import multipart, offline_zip
from tests.integration.daemonproc import DaemonProcess

pytestmark = pytest.mark.integration

ZONE = "Europe/Berlin"
BERLIN = ZoneInfo(ZONE)
FALL_BACK = calendar.timegm((2026, 10, 25, 1, 0, 0))
SPRING_FORWARD = calendar.timegm((2026, 3, 29, 1, 0, 0))
OFFSET = re.compile(r"[+-]\d\d:\d\d$")
# The `slow` spider fetches `pages` data: URLs 0.1 s apart: 60 pages plus
# Scrapy's start-up make a crawl of about 7 s.
CRAWL_PAYLOAD = '{"pages": 60}'
# The daemon starts this many (fake) seconds before the `now` job is
# scheduled, so that start-up and the push cannot push the job's start past
# the transition on a slow machine.
LEAD = 6


def libfaketime():
    """The path of Debian's libfaketime.so.1; fail (not skip) when it is missing."""
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1") + glob.glob("/usr/lib/faketime/libfaketime.so.1"))
    if not found:
        pytest.fail("libfaketime.so.1 is missing: these tests need Debian's `faketime` package, which "
                    "`make test` installs (or run: apt-get install faketime)", pytrace=False)
    return found[0]


def utc(*fields):
    return calendar.timegm(fields)


def local(epoch):
    """The Berlin wall time of `epoch`, as the daemon should print it."""
    return datetime.fromtimestamp(epoch, BERLIN)


def tail(daemon, chars=3000):
    """The end of the daemon's stdout and stderr logs, for assertion messages."""
    parts = []
    for path in (daemon.log, daemon.err):
        try:
            parts.append(f"--- {path.name}:\n{path.read_text(errors='replace')[-chars:]}")
        except FileNotFoundError:
            pass
    return "\n".join(parts)


def db_summary(daemon):
    """How many job rows of each status the daemon's SQLite file holds (works even if the daemon hangs)."""
    try:
        with sqlite3.connect(daemon.workdir / "projects" / "scrapy-do.db", timeout=5) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            table = "jobs" if "jobs" in tables else "runs"
            return dict(db.execute(f"SELECT status, COUNT(*) FROM {table} GROUP BY status"))
    except sqlite3.Error as e:
        return f"unreadable ({e})"


def fetch(daemon, path, timeout, fields=None):
    """GET `path` (POST `fields`) with a short timeout: (status, body bytes), or None if no answer came in time."""
    data, headers = None, {}
    if fields is not None:
        data, headers["Content-Type"] = multipart(fields)
    try:
        request = urllib.request.Request(daemon.url + path, data=data, headers=headers)
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (TimeoutError, urllib.error.URLError) as e:
        if isinstance(e, urllib.error.URLError) and not isinstance(e.reason, TimeoutError):
            raise
        return None


@pytest.fixture
def dst_daemon(tmp_path):
    """Start the real daemon in Berlin with its clock faked to a given UTC epoch; kill it at the end."""
    started = []

    def start(epoch):
        daemon = DaemonProcess(tmp_path)
        preload = libfaketime()
        daemon.offset = epoch - time.time()
        daemon.env = {"TZ": ZONE, "LD_PRELOAD": preload, "FAKETIME": f"{daemon.offset:+.6f}"}
        started.append(daemon)
        daemon.start()
        code, body = daemon.get("/status.json")
        assert code == 200, body
        seen = datetime.fromisoformat(body["time"][:19])
        expected = local(fake_now(daemon)).replace(tzinfo=None, microsecond=0)
        assert abs((seen - expected).total_seconds()) < 5, (
            f"libfaketime did not take effect: the daemon says {body['time']!r}, expected about {expected} "
            f"(LD_PRELOAD={preload}, FAKETIME={daemon.env['FAKETIME']})\n{tail(daemon)}")
        return daemon

    yield start
    for daemon in started:
        if daemon.proc is None or daemon.proc.poll() is not None:
            continue
        try:
            daemon.stop(timeout=10)
        except subprocess.TimeoutExpired:
            # A daemon stuck on its reactor thread cannot act on SIGTERM; its
            # crawls get SIGTERM from the kernel when it dies (PDEATHSIG).
            daemon.proc.send_signal(signal.SIGKILL)
            daemon.proc.wait(10)


def fake_now(daemon):
    return time.time() + daemon.offset


def wait_until(daemon, epoch):
    time.sleep(max(0.0, epoch - fake_now(daemon)))


def push(daemon):
    code, body = daemon.request("/push-project.json", {"archive": ("offline.zip", offline_zip())})
    assert code == 200, f"{body}\n{tail(daemon)}"


def schedule(daemon, spider, when="now", payload="{}"):
    code, body = daemon.request("/schedule-job.json",
                                {"project": "offline", "spider": spider, "when": when, "payload": payload})
    assert code == 200, f"{body}\n{tail(daemon)}"
    return body["identifier"]


def wait_done(daemon, identifier, timeout=30):
    """Poll until the job is SUCCESSFUL, FAILED or CANCELED (bounded); fail with the log tail otherwise."""
    deadline = time.monotonic() + timeout
    job = None
    while time.monotonic() < deadline:
        job = daemon.job(identifier)
        if job["status"] in ("SUCCESSFUL", "FAILED", "CANCELED"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {identifier} did not finish within {timeout} s: {job}\n{tail(daemon)}")


def crawl_across(dst_daemon, transition, before, after):
    """Run a ~7 s `now` crawl starting 3 s before `transition`; list what is wrong with its times."""
    daemon = dst_daemon(transition - 3 - LEAD)
    push(daemon)
    wait_until(daemon, transition - 3)
    assert fake_now(daemon) < transition - 1, "the machine is too slow: the push ended too close to the transition"
    t0 = time.monotonic()
    identifier = schedule(daemon, "slow", payload=CRAWL_PAYLOAD)
    job = wait_done(daemon, identifier)
    elapsed = time.monotonic() - t0
    assert job["status"] == "SUCCESSFUL", f"{job}\n{tail(daemon)}"
    assert fake_now(daemon) > transition + 1, f"the crawl ended before the transition: {job}\n{tail(daemon)}"
    problems = []
    if not isinstance(job["duration"], (int, float)) or abs(job["duration"] - elapsed) > 2:
        problems.append(f"duration is {job['duration']!r} s but {elapsed:.1f} real seconds passed")
    if not str(job["started"]).endswith(before):
        problems.append(f"started {job['started']!r} does not end with {before}")
    if not str(job["finished"]).endswith(after):
        problems.append(f"finished {job['finished']!r} does not end with {after}")
    code, log = fetch(daemon, f"/get-log/data/{identifier}.err", timeout=10) or (None, b"")
    if code != 200 or local(transition).strftime("%Y-%m-%d").encode() not in log:
        problems.append(f"the crawl's log does not show the fake date (HTTP {code}): {log[-300:]!r}")
    return daemon, job, problems


@pytest.mark.parametrize("when", ["every 10 minutes", "every minute"])
def test_schedule_in_repeated_hour_waits_and_daemon_keeps_answering(dst_daemon, when):
    """Scheduled at the second 02:09:30 (CET) of the fall-back night, a job waits and the daemon keeps answering."""
    daemon = dst_daemon(utc(2026, 10, 25, 1, 9, 30))
    push(daemon)
    scheduled_at, local_time = time.monotonic(), local(fake_now(daemon))
    answer = fetch(daemon, "/schedule-job.json", timeout=5,
                   fields={"project": "offline", "spider": "quick", "when": when})
    assert answer is not None, (
        f"schedule-job {when!r} at {local_time} got no answer within 5 s; the SQLite file holds jobs by status "
        f"{db_summary(daemon)}\n{tail(daemon)}")
    assert answer[0] == 200, answer
    parent = json.loads(answer[1])["identifier"]
    while time.monotonic() < scheduled_at + 8:
        answer = fetch(daemon, "/status.json", timeout=2)
        assert answer is not None and answer[0] == 200, (
            f"status.json did not answer within 2 s, {time.monotonic() - scheduled_at:.1f} s after scheduling "
            f"{when!r} at {local_time}; the SQLite file holds jobs by status {db_summary(daemon)}\n{tail(daemon)}")
        time.sleep(0.25)
    jobs = []
    for status in ("PENDING", "RUNNING", "COMPLETED"):
        code, body = daemon.get("/list-jobs.json", status=status)
        assert code == 200, body
        jobs += body["jobs"]
    assert len(jobs) < 3 and not [j for j in jobs if j["parent"] == parent], (
        f"{when!r} spawned jobs long before its next due time: {len(jobs)} jobs, "
        f"by status {db_summary(daemon)}; first: {jobs[:2]}\n{tail(daemon)}")
    job = daemon.job(parent)
    assert job["status"] == "SCHEDULED" and job["timestamp"].startswith("2026-10-25 02:") \
        and job["timestamp"].endswith("+01:00"), f"{job}\n{tail(daemon)}"


def test_crawl_across_fall_back_keeps_elapsed_duration(dst_daemon):
    """A crawl from 02:59:57 CEST to past 02:00 CET reports its elapsed seconds and both offsets."""
    daemon, job, problems = crawl_across(dst_daemon, FALL_BACK, "+02:00", "+01:00")
    assert not problems, "; ".join(problems) + f"\njob: {job}\n{tail(daemon)}"


def test_crawl_across_spring_forward_keeps_elapsed_duration(dst_daemon):
    """A crawl from 01:59:57 CET to past 03:00 CEST reports its elapsed seconds; every time carries its offset."""
    daemon, job, problems = crawl_across(dst_daemon, SPRING_FORWARD, "+01:00", "+02:00")
    code, status = daemon.get("/status.json")
    assert code == 200, status
    if not OFFSET.search(status["time"]):
        problems.append(f"status.json time {status['time']!r} carries no UTC offset")
    assert not problems, "; ".join(problems) + f"\njob: {job}\n{tail(daemon)}"
