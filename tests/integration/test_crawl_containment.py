"""What a crawl can reach, with the real daemon and real crawls of the `hostile` fixture project.

Its processes end with it, its payload stays out of `ps`, it does not inherit
the daemon's secrets, and its logs belong to the daemon.
"""

import json
import os
import stat
import time

import pytest

from tests.helpers import FIXTURES, zip_tree
from tests.integration.daemonproc import DaemonProcess, pid_alive, wait_gone

pytestmark = pytest.mark.integration

HOSTILE = FIXTURES / "hostile"


@pytest.fixture
def daemon(tmp_path):
    d = DaemonProcess(tmp_path, "[scrapy-do]\njob-slots = 2\ncancel-grace = 3\n[web]\ninterfaces = 127.0.0.1:0\n",
                      env={"SCRAPY_DO_TEST_SECRET": "hunter2", "AWS_SECRET_ACCESS_KEY": "k"}).start()
    code, body = d.request("/push-project.json", {"archive": ("hostile.zip", zip_tree(HOSTILE))})
    assert code == 200, body
    yield d
    d.stop()


def schedule(daemon, spider, payload="{}"):
    code, body = daemon.request("/schedule-job.json", {"project": "hostile", "spider": spider, "payload": payload})
    assert code == 200, body
    return body["identifier"]


def log_path(daemon, identifier, kind="out"):
    return daemon.workdir / "projects" / "log-dir" / f"{identifier}.{kind}"


def wait_for_line(path, key, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            for line in path.read_text().splitlines():
                if line.startswith("{") and key in line:
                    return json.loads(line)
        time.sleep(0.1)
    raise AssertionError(f"{path} never printed {key}: {path.read_text() if path.exists() else 'no log'}")


def test_cancel_ends_the_crawls_children_and_setsid_grandchildren(daemon):
    """Canceling a crawl ends the processes it started, even one that left its session."""
    job = schedule(daemon, "forker")
    pids = wait_for_line(log_path(daemon, job), "grandchild")
    assert pid_alive(pids["child"]) and pid_alive(pids["grandchild"])
    code, _ = daemon.request("/cancel-job.json", {"id": job})
    assert code == 200
    assert daemon.job(job)["status"] == "CANCELED"
    assert wait_gone(pids["child"], 10), "the crawl's child outlived the cancel"
    assert wait_gone(pids["grandchild"], 10), "the crawl's setsid grandchild outlived the cancel"


def test_a_crawl_killed_outright_takes_its_children_with_it(daemon):
    """If the crawl's main process dies by SIGKILL, what it started is killed too."""
    job = schedule(daemon, "forker")
    pids = wait_for_line(log_path(daemon, job), "grandchild")
    running = daemon.wait_job(job, {"RUNNING"})
    assert running["status"] == "RUNNING"
    main = [p for p in os.listdir("/proc") if p.isdigit() and _is_crawl_of(int(p), job, daemon)]
    assert main, "the crawl's main process was not found"
    os.kill(int(main[0]), 9)
    daemon.wait_job(job, {"FAILED"}, timeout=20)
    assert wait_gone(pids["child"], 10) and wait_gone(pids["grandchild"], 10)


def _is_crawl_of(pid, job, daemon):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().split(b"\0")
        with open(f"/proc/{pid}/stat") as f:
            ppid = int(f.read().split(")")[-1].split()[1])
    except OSError:
        return False
    # A warm crawl's parent is the daemon's warm parent of the project (launchers/warmpool.py), and `ps` shows it
    # a cold crawl's command line.
    shown = b" ".join(cmdline)
    return b"scrapy_do.launchers.child crawl forker" in shown and daemon.proc.pid in (ppid, _parent_of(ppid))


def _parent_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().split(")")[-1].split()[1])
    except OSError:
        return None


def test_payload_is_not_on_the_command_line_and_secrets_not_in_the_environment(daemon):
    """The crawl gets its payload (not through argv) and none of the daemon's secret variables."""
    job = schedule(daemon, "snoop", payload='{"token": "s3cr3t"}')
    seen = wait_for_line(log_path(daemon, job), "environ")
    assert json.loads(seen["payload"]) == {"token": "s3cr3t"}
    assert not any("s3cr3t" in arg for arg in seen["cmdline"]), seen["cmdline"]
    assert "SCRAPY_DO_TEST_SECRET" not in seen["environ"] and "AWS_SECRET_ACCESS_KEY" not in seen["environ"]
    assert seen["environ"]["SPIDER_DATA_DIR"].endswith("spider-data/hostile")
    assert "PATH" in seen["environ"]


def test_logs_are_created_owner_and_group_only(daemon):
    """A crawl's .out and .err are 0640, not world-readable."""
    job = schedule(daemon, "snoop")
    daemon.wait_job(job, {"SUCCESSFUL"})
    for kind in ("out", "err"):
        assert stat.S_IMODE(log_path(daemon, job, kind).stat().st_mode) == 0o640


def test_deleting_a_running_jobs_log_affects_nothing_else(daemon):
    """`rm` of a running job's .out: the job still ends, later jobs run and their logs follow."""
    job = schedule(daemon, "forker", payload='{"pages": 20}')
    wait_for_line(log_path(daemon, job), "grandchild")
    log_path(daemon, job).unlink()
    assert daemon.wait_job(job, {"SUCCESSFUL", "FAILED"}, timeout=30)["status"] == "SUCCESSFUL"
    second = schedule(daemon, "snoop")
    assert daemon.wait_job(second, {"SUCCESSFUL"}, timeout=30)["status"] == "SUCCESSFUL"
    assert "environ" in log_path(daemon, second).read_text()
    code, _ = daemon.get("/status.json")
    assert code == 200


def test_a_symlink_in_a_finished_logs_place_is_not_followed(daemon):
    """The log of a finished job replaced by a symlink to /etc/shadow: 404, not the file behind it."""
    job = schedule(daemon, "snoop")
    daemon.wait_job(job, {"SUCCESSFUL"})
    out = log_path(daemon, job)
    out.unlink()
    out.symlink_to("/etc/shadow")
    code, body = daemon.get(f"/get-log/data/{job}.out")
    assert code == 404 and body["status"] == "error", body
