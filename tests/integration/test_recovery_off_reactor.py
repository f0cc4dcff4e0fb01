"""Recovery after `kill -9` happens off the reactor: the daemon answers while leftover crawls die.

Two crawls that ignore SIGTERM outlive a killed daemon. The next start stops
them (SIGTERM, SIGKILL after cancel-grace) in threads and at the same time,
answers status.json with 503 + Retry-After until that is done, then 200, and
runs both jobs again.
"""

import json
import signal
import time
import urllib.error
import urllib.request

import pytest

from tests.helpers import FIXTURES, zip_tree
from tests.integration.daemonproc import DaemonProcess, pid_alive

pytestmark = pytest.mark.integration

GRACE = 4
CONF = f"[scrapy-do]\njob-slots = 2\ncancel-grace = {GRACE}\n[web]\ninterfaces = 127.0.0.1:0\n"


def pids_of(daemon, jobs, timeout=30):
    deadline = time.monotonic() + timeout
    found = {}
    while time.monotonic() < deadline and len(found) < len(jobs):
        for job in jobs:
            path = daemon.workdir / "projects" / "log-dir" / f"{job}.out"
            if job not in found and path.exists():
                for line in path.read_text().splitlines():
                    if line.startswith('{"stubborn"'):
                        found[job] = json.loads(line)["stubborn"]
        time.sleep(0.1)
    assert len(found) == len(jobs), found
    return found


def status_code(url):
    try:
        with urllib.request.urlopen(url + "/status.json", timeout=5) as resp:
            return resp.status, None
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("retry-after")


def test_leftover_crawls_are_stopped_in_parallel_while_the_daemon_answers(tmp_path):
    d = DaemonProcess(tmp_path, CONF).start()
    assert d.request("/push-project.json", {"archive": ("hostile.zip", zip_tree(FIXTURES / "hostile"))})[0] == 200
    jobs = [d.request("/schedule-job.json", {"project": "hostile", "spider": "stubborn"})[1]["identifier"]
            for _ in range(2)]
    pids = pids_of(d, jobs)
    d.stop(signal.SIGKILL)
    time.sleep(0.5)
    assert all(pid_alive(pid) for pid in pids.values())  # SIGTERM from the parent's death was ignored

    started = time.monotonic()
    d.start(wait=False)
    # The port is bound before recovery: wait for it, then sample status.json until it is ready.
    deadline = started + 30
    url = None
    while url is None and time.monotonic() < deadline:
        port = d.port_if_listening()
        url = f"http://127.0.0.1:{port}" if port else None
        time.sleep(0.02)
    assert url, d.log.read_text()
    answers = []
    while time.monotonic() < deadline:
        asked = time.monotonic()
        code, retry_after = status_code(url)
        answers.append((code, retry_after, time.monotonic() - asked))
        if code == 200:
            break
        time.sleep(0.1)
    recovered_after = time.monotonic() - started
    assert answers[-1][0] == 200, answers
    starting = [a for a in answers if a[0] == 503]
    assert starting and all(retry == "1" for _, retry, _ in starting), answers
    # Answers came at once while the leftovers were being stopped (the reactor was not blocked).
    assert max(took for _, _, took in answers) < 1.0, answers
    assert not any(pid_alive(pid) for pid in pids.values())
    # Both were stopped at the same time: about one grace period, not two.
    assert GRACE <= recovered_after < 2 * GRACE, recovered_after
    d.url = url
    try:
        for job in jobs:
            assert d.wait_job(job, {"RUNNING"}, timeout=30)["status"] == "RUNNING"
    finally:
        d.stop()
