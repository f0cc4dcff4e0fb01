"""`scrapy-do` as users run it: a subprocess, signals, `kill -9`, bad configs, the twistd form."""

import signal
import socket
import sqlite3
import subprocess
import sys

import pytest

from tests.helpers import offline_zip
from tests.integration.daemonproc import DaemonProcess, pid_alive, wait_gone

pytestmark = pytest.mark.integration


def push(daemon):
    code, body = daemon.request("/push-project.json", {"archive": ("offline.zip", offline_zip())})
    assert code == 200, body
    return body


def schedule(daemon, spider, when="now", payload="{}"):
    code, body = daemon.request("/schedule-job.json",
                                {"project": "offline", "spider": spider, "when": when, "payload": payload})
    assert code == 200, body
    return body["identifier"]


def db_statuses(workdir):
    with sqlite3.connect(workdir / "projects" / "scrapy-do.db") as db:
        return dict(db.execute("SELECT identifier, status FROM runs UNION ALL SELECT identifier, status FROM schedules"))


@pytest.mark.parametrize("conf, text", [
    ("[scrapy-do]\njob-slots = 0\n", "[scrapy-do] job-slots"),
    ("[scrapy-do]\ncompleted-cap = lots\n", "[scrapy-do] completed-cap"),
    ("[web]\ninterfaces = localhost\n", "[web] interfaces"),
    ("not an ini file\n", "not a valid INI file"),
])
def test_bad_config_stops_startup_with_one_clear_line(tmp_path, conf, text):
    """A bad value makes `scrapy-do` exit non-zero with one line naming the key."""
    (tmp_path / "bad.conf").write_text(conf)
    proc = subprocess.run([sys.executable, "-m", "scrapy_do", "--config", "bad.conf"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and text in lines[0], proc.stderr


def test_busy_port_stops_startup(tmp_path):
    """If the port is taken the daemon exits non-zero instead of idling without a web interface."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        daemon = DaemonProcess(tmp_path, f"[web]\ninterfaces = 127.0.0.1:{port}\n").start(wait=False)
        assert daemon.proc.wait(30) == 1
    assert "cannot listen on 127.0.0.1" in daemon.err.read_text()
    # Nothing is created before the ports are bound: no fresh store or database is left behind.
    assert not (tmp_path / "projects").exists()


def test_sigterm_stops_crawls_and_next_start_runs_them_again(tmp_path):
    """SIGTERM stops running crawls, leaves their jobs PENDING, and the next start re-runs them."""
    daemon = DaemonProcess(tmp_path).start()
    push(daemon)
    job_id = schedule(daemon, "slow")
    pid = daemon.wait_job(job_id, {"RUNNING"})
    crawl_pid = _pid_of(tmp_path, job_id)
    assert pid_alive(crawl_pid)
    assert daemon.stop() == 0
    assert not pid_alive(crawl_pid)
    assert db_statuses(tmp_path)[job_id] == "PENDING"
    daemon.start()
    daemon.wait_job(job_id, {"RUNNING"})
    assert daemon.request("/cancel-job.json", {"id": job_id})[0] == 200
    assert daemon.job(job_id)["status"] == "CANCELED"
    assert daemon.stop() == 0
    del pid


def _pid_of(workdir, job_id):
    with sqlite3.connect(workdir / "projects" / "scrapy-do.db") as db:
        handle = db.execute("SELECT handle FROM runs WHERE identifier = ?", (job_id,)).fetchone()[0]
        return int(handle[4:].partition("@")[0]) if handle else None


def test_kill_9_recovery_reruns_jobs_once_and_leaves_no_orphans(tmp_path):
    """After `kill -9`, no crawl of the dead daemon survives and every job resumes exactly once."""
    daemon = DaemonProcess(tmp_path).start()
    push(daemon)
    periodic = schedule(daemon, "slow", "every 3 hours")
    running = [schedule(daemon, "slow") for _ in range(2)]
    pending = schedule(daemon, "quick")
    for job_id in running:
        daemon.wait_job(job_id, {"RUNNING"})
    old_pids = [_pid_of(tmp_path, j) for j in running]
    daemon.stop(signal.SIGKILL)
    assert all(wait_gone(p) for p in old_pids), "crawls outlived the killed daemon"
    daemon.start()
    for job_id in running:
        daemon.wait_job(job_id, {"RUNNING"})
        assert daemon.request("/cancel-job.json", {"id": job_id})[0] == 200
    assert daemon.wait_job(pending, {"SUCCESSFUL"})
    statuses = db_statuses(tmp_path)
    assert statuses == {periodic: "SCHEDULED", pending: "SUCCESSFUL", **dict.fromkeys(running, "CANCELED")}
    assert daemon.stop() == 0


def test_original_twistd_form_still_starts(tmp_path):
    """`scrapy-do -n scrapy-do --config FILE`, the 0.5.0 unit-file form, starts and serves."""
    daemon = DaemonProcess(tmp_path)
    daemon.argv = ["-n", "--pidfile=", "scrapy-do", "--config", str(daemon.conf)]
    daemon.start()
    code, body = daemon.get("/status.json")
    assert code == 200 and body["status"] == "ok"
    assert daemon.stop() in (0, -signal.SIGTERM)  # plain twistd re-raises the signal it stopped on


def test_log_size_cap_truncates_with_marker_and_crawl_goes_on(tmp_path):
    """A crawl logging past max-log-size keeps a capped log with a marker and still succeeds."""
    daemon = DaemonProcess(tmp_path, "[scrapy-do]\nmax-log-size = 4K\n[web]\ninterfaces = 127.0.0.1:0\n").start()
    push(daemon)
    job_id = schedule(daemon, "slow", payload='{"pages": 40}')
    assert daemon.wait_job(job_id, {"SUCCESSFUL", "FAILED"})["status"] == "SUCCESSFUL"
    err = (tmp_path / "projects" / "log-dir" / f"{job_id}.err").read_bytes()
    assert len(err) < 4096 + 200
    assert err.rstrip().endswith(b"its further output is dropped")
    assert daemon.stop() == 0


@pytest.mark.parametrize("setup, text", [
    ("file-as-store", "cannot create the project store"),
    ("corrupt-db", "cannot open the database"),
])
def test_unusable_store_stops_startup_with_one_line(tmp_path, setup, text):
    """A project store that is a file, or a corrupt database, stops start-up with one clear line."""
    if setup == "file-as-store":
        (tmp_path / "projects").write_text("not a directory")
    else:
        (tmp_path / "projects").mkdir()
        (tmp_path / "projects" / "scrapy-do.db").write_bytes(b"garbage" * 1000)
    proc = subprocess.run([sys.executable, "-m", "scrapy_do"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=30)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and text in lines[0], proc.stderr


TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"


def test_twistd_plugin_starts_the_daemon(tmp_path):
    """`twistd -n scrapy-do --config FILE` finds our plugin and serves (plugin dir on the path as in a wheel)."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    daemon = DaemonProcess(tmp_path)
    daemon.argv = ["-n", "--pidfile=", "scrapy-do", "--config", str(daemon.conf)]
    env_path = {"PYTHONPATH": str(repo)}
    import os
    import subprocess as sp

    daemon.log = tmp_path / "twistd.log"
    daemon.err = tmp_path / "twistd.err"
    with open(daemon.log, "wb") as out, open(daemon.err, "wb") as err:
        daemon.proc = sp.Popen([sys.executable, "-c", TWISTD, *daemon.argv], cwd=tmp_path,
                               stdout=out, stderr=err, env={**os.environ, **env_path})
    daemon.url = f"http://127.0.0.1:{daemon.wait_ready()}"
    code, body = daemon.get("/status.json")
    assert code == 200 and body["status"] == "ok"
    assert daemon.stop() in (0, -signal.SIGTERM)  # plain twistd re-raises the signal it stopped on
