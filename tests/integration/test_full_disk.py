"""A full disk under the store, for real: the store on a 24 MiB tmpfs that the test fills up.

The daemon keeps answering; what cannot be written is refused with a 507 that
names the disk; a crawl that ends meanwhile is announced (its log followers
finish) and recorded once space returns, counted once.
"""

import os
import subprocess
import threading
import time
import urllib.request

import pytest

from tests.helpers import offline_zip
from tests.integration.daemonproc import DaemonProcess

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root (CI runs as root)")]

CONF = "[scrapy-do]\nproject-store = {store}\njob-slots = 1\ncancel-grace = 3\n{extra}[web]\ninterfaces = 127.0.0.1:0\n"


@pytest.fixture
def disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0711", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(path):
    """Write zeros to `path` until the disk is full (unbuffered: every byte that fits is written)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                pass
    finally:
        os.close(fd)


def test_a_log_cap_beyond_the_free_space_is_a_start_up_warning(tmp_path, disk):
    d = DaemonProcess(tmp_path, CONF.format(store=disk / "projects", extra="")).start()
    try:
        assert "may reach 256.0 MiB (2 x job-slots x max-log-size 128.0 MiB)" in d.log.read_text()
    finally:
        d.stop()


def test_a_full_disk_refuses_new_jobs_and_records_an_ending_crawl_once_space_returns(tmp_path, disk):
    conf = CONF.format(store=disk / "projects", extra="max-log-size = 1M\n")
    d = DaemonProcess(tmp_path, conf).start()
    assert d.request("/push-project.json", {"archive": ("offline.zip", offline_zip())})[0] == 200
    # A clean stop folds SQLite's write-ahead log into the database and removes it: after the restart every
    # write needs new space, so filling the disk makes the next one fail.
    assert d.stop() == 0
    d.start()
    try:
        code, body = d.request("/schedule-job.json", {"project": "offline", "spider": "slow",
                                                       "payload": '{"pages": 60}'})
        assert code == 200, body
        job = body["identifier"]
        d.wait_job(job, {"RUNNING"}, timeout=30)
        fill(disk / "filler")

        code, body = d.request("/schedule-job.json", {"project": "offline", "spider": "quick"})
        assert code == 507 and body["status"] == "error", body
        assert "is full" in body["msg"] and "free some space" in body["msg"], body

        followed = {}

        def follow():
            with urllib.request.urlopen(f"{d.url}/get-log/data/{job}.out", timeout=60) as resp:
                followed["following"] = resp.headers.get("x-scrapy-do-following")
                followed["body"] = resp.read()
            followed["at"] = time.monotonic()

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        follower.join(45)  # the crawl takes about 6 s
        assert not follower.is_alive(), "following the log did not end when the crawl ended"
        assert followed["following"] == "yes"
        assert d.get("/status.json")[0] == 200
        assert d.job(job)["status"] == "RUNNING"  # its end is not written yet: the disk is full

        (disk / "filler").unlink()
        assert d.wait_job(job, {"SUCCESSFUL", "FAILED"}, timeout=60)["status"] == "SUCCESSFUL"
        code, status = d.get("/status.json")
        assert code == 200 and status["jobs-successful"] == 1, status
        code, body = d.request("/schedule-job.json", {"project": "offline", "spider": "quick"})
        assert code == 200, body
        assert d.wait_job(body["identifier"], {"SUCCESSFUL", "FAILED"})["status"] == "SUCCESSFUL"
    finally:
        d.stop()
