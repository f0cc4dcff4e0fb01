"""`scrapy-do-cl` against the real daemon: every command, formats, --json, --wait, errors."""

import io
import json
import shutil
import subprocess
import sys

import pytest

from scrapy_do.client.cli import FORMATS, main
from tests.helpers import OFFLINE
from tests.integration.daemonproc import DaemonProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = DaemonProcess(tmp_path_factory.mktemp("daemon")).start()
    project = tmp_path_factory.mktemp("src") / "checkout"
    shutil.copytree(OFFLINE, project, ignore=shutil.ignore_patterns("__pycache__"))
    d.project_path = project
    yield d
    d.stop()


def ensure_pushed(daemon):
    if "offline" not in daemon.get("/list-projects.json")[1]["projects"]:
        assert cl(daemon, "push-project", "--project-path", str(daemon.project_path))[0] == 0


def cl(daemon, *argv):
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    code = main(["--url", daemon.url, *argv], stdout=out, defaults={})
    out.flush()
    return code, out.buffer.getvalue().decode()


def test_push_list_schedule_wait_and_logs(daemon):
    """The whole workflow: push, list, schedule --wait, list-jobs, get-log, as a user types it."""
    code, text = cl(daemon, "push-project", "--project-path", str(daemon.project_path))
    assert code == 0 and "offline" in text and "quick" in text
    assert "offline" in cl(daemon, "list-projects")[1]
    assert cl(daemon, "list-spiders", "--project", "offline")[1].count("|") >= 6  # psql table, 3 rows
    code, text = cl(daemon, "--json", "schedule-job", "--project", "offline", "--spider", "quick",
                    "--payload", '{"tag": "cl"}', "--description", "from cl", "--wait")
    job = json.loads(text)
    assert code == 0 and job["status"] == "SUCCESSFUL" and job["description"] == "from cl"
    code, text = cl(daemon, "get-log", "--job-id", job["identifier"])
    assert code == 0 and '"tag": "cl"' in text
    code, text = cl(daemon, "get-log", "--job-id", job["identifier"], "--log-type", "err")
    assert "Spider closed" in text
    code, text = cl(daemon, "--json", "list-jobs", "--status", "COMPLETED", "--spider", "quick", "--limit", "1")
    assert [j["identifier"] for j in json.loads(text)] == [job["identifier"]]


def test_wait_exits_non_zero_when_the_job_fails(daemon):
    """schedule-job --wait exits 3 when the crawl fails, for CI pipelines."""
    ensure_pushed(daemon)
    code, text = cl(daemon, "schedule-job", "--project", "offline", "--spider", "broken", "--wait")
    assert code == 3 and "FAILED" in text


def test_follow_prints_log_of_running_job_until_it_ends(daemon):
    """get-log --follow keeps printing while the job runs and returns when it ends."""
    ensure_pushed(daemon)
    code, ident = cl(daemon, "--json", "schedule-job", "--project", "offline", "--spider", "slow",
                     "--payload", '{"pages": 10}')
    ident = json.loads(ident)["identifier"]
    daemon.wait_job(ident, {"RUNNING"})
    code, text = cl(daemon, "get-log", "--job-id", ident, "--log-type", "err", "--follow")
    assert code == 0 and "Spider closed (finished)" in text
    assert daemon.job(ident)["status"] == "SUCCESSFUL"


def test_get_log_without_follow_returns_at_once_for_running_job(daemon):
    """get-log without --follow prints the running job's log so far and returns."""
    ensure_pushed(daemon)
    ident = json.loads(cl(daemon, "--json", "schedule-job", "--project", "offline", "--spider", "slow")[1])
    ident = ident["identifier"]
    daemon.wait_job(ident, {"RUNNING"})
    code, text = cl(daemon, "get-log", "--job-id", ident, "--log-type", "err")
    assert code == 0
    assert daemon.job(ident)["status"] == "RUNNING"
    assert cl(daemon, "cancel-job", "--job-id", ident)[0] == 0
    assert daemon.job(ident)["status"] == "CANCELED"


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_print_format(daemon, fmt):
    """Each tabulate format of 0.5.0 prints the project table."""
    ensure_pushed(daemon)
    code, text = cl(daemon, "--print-format", fmt, "list-projects")
    assert code == 0 and "offline" in text


def test_status_and_periodic_cancel_and_remove(daemon):
    """status prints the counters; a periodic job can be canceled and the project removed."""
    ensure_pushed(daemon)
    assert "jobs-run" in cl(daemon, "status")[1]
    ident = json.loads(cl(daemon, "--json", "schedule-job", "--project", "offline", "--spider", "quick",
                          "--when", "every 2 hours")[1])["identifier"]
    assert "SCHEDULED" in cl(daemon, "list-jobs")[1]
    assert cl(daemon, "remove-project", "--name", "offline")[0] == 1  # scheduled job blocks removal
    assert cl(daemon, "cancel-job", "--job-id", ident)[0] == 0
    for job in json.loads(cl(daemon, "--json", "list-jobs", "--status", "ACTIVE")[1]):
        cl(daemon, "cancel-job", "--job-id", job["identifier"])
    assert cl(daemon, "remove-project", "--name", "offline")[0] == 0
    assert "No data" in cl(daemon, "list-projects")[1]


@pytest.mark.parametrize("argv, text", [
    (["list-spiders", "--project", "nope"], "unknown project 'nope'"),
    (["schedule-job", "--project", "offline", "--spider", "quick", "--when", "every 0 minutes"], "0"),
    (["schedule-job", "--project", "offline", "--spider", "quick", "--payload", "{nope"], "not valid JSON"),
    (["list-jobs", "--job-id", "nope"], "not a job identifier"),
    (["push-project", "--project-path", "/nonexistent"], "scrapy.cfg not found"),
])
def test_errors_are_one_line_and_exit_1(daemon, capsys, argv, text):
    """Failures print one `[!]` line with the daemon's message and exit 1, no traceback."""
    ensure_pushed(daemon)
    capsys.readouterr()
    code, _ = cl(daemon, *argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("[!]") and text in err[0]


def test_unreachable_daemon_is_a_clear_error(capsys):
    """A daemon that is not there gives one line naming the URL."""
    code = main(["--url", "http://127.0.0.1:9", "status"], defaults={})
    err = capsys.readouterr().err
    assert code == 1 and "cannot reach http://127.0.0.1:9" in err and "Traceback" not in err


def test_console_script_help_has_examples():
    """`scrapy-do-cl --help` shows an example for each command."""
    proc = subprocess.run([sys.executable, "-m", "scrapy_do.client.cli", "--help"], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0
    for command in ("status", "push-project", "list-jobs", "get-log", "schedule-job", "cancel-job"):
        assert f"scrapy-do-cl {command}" in proc.stdout
