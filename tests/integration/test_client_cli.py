"""`scrapy-do-cl` against the real daemon: every command, formats, --json, --wait, errors, job options."""

import io
import json
import re
import shutil
import subprocess
import sys
import time

import pytest

from scrapy_do.client.api import ScrapyDoClient
from scrapy_do.client.cli import FORMATS, main
from tests.helpers import FIXTURES, OFFLINE
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


# -- job options, list-jobs columns and paging, --json anywhere, uptime, --wait's edges ---------------------

ORIGINAL_JOB_HEADERS = ["identifier", "project", "spider", "status", "schedule", "description", "actor",
                        "timestamp", "duration", "payload"]
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A daemon of its own with the `hostile` project pushed (the tests above expect `offline` alone)."""
    d = DaemonProcess(tmp_path_factory.mktemp("hostile-daemon")).start()
    project = tmp_path_factory.mktemp("hostile-src") / "checkout"
    shutil.copytree(FIXTURES / "hostile", project, ignore=shutil.ignore_patterns("__pycache__"))
    assert cl(d, "push-project", "--project-path", str(project))[0] == 0
    yield d
    d.stop()


def psql_table(text):
    """(headers, rows) of a psql table the client printed."""
    lines = [ln for ln in text.splitlines() if ln.startswith("|") and not ln.startswith("|-")]
    cells = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines]
    assert cells, text
    return cells[0], cells[1:]


def printed(text, key):
    """The JSON line holding `key` that a spider printed to its stdout log."""
    for line in text.splitlines():
        if line.startswith("{") and key in line:
            return json.loads(line)
    raise AssertionError(f"no {key} in:\n{text}")


def test_arguments_and_settings_reach_the_spider(hostile):
    """-a/--arg and -s/--set arrive as `scrapy crawl` gives them: strings, the last repetition winning."""
    code, text = cl(hostile, "schedule-job", "--project", "hostile", "--spider", "recorder", "-a", "category=books",
                    "-a", "pages=3", "--arg", "pages=4", "--arg", "query=a=b c", "-s", "MY_SETTING=on",
                    "--set", "DOWNLOAD_DELAY=0.25", "--json", "--wait")
    job = json.loads(text)
    assert code == 0 and job["status"] == "SUCCESSFUL", job
    assert job["args"] == {"category": "books", "pages": "4", "query": "a=b c"}
    assert job["settings"] == {"MY_SETTING": "on", "DOWNLOAD_DELAY": "0.25"}
    seen = printed(cl(hostile, "get-log", "--job-id", job["identifier"])[1], "received")
    assert {k: v for k, v in seen["received"].items() if k != "payload"} == job["args"]
    assert seen["settings"]["MY_SETTING"] == "on" and seen["settings"]["DOWNLOAD_DELAY"] == 0.25


def test_priority_and_timeout_are_sent_and_absent_flags_are_not(hostile):
    """--priority and --timeout reach the job; without the flags the daemon's defaults stand."""
    code, text = cl(hostile, "--json", "schedule-job", "--project", "hostile", "--spider", "snoop",
                    "--priority", "-7", "--timeout", "120", "--wait")
    job = json.loads(text)
    assert code == 0 and (job["priority"], job["timeout"]) == (-7, 120), job
    code, text = cl(hostile, "--json", "schedule-job", "--project", "hostile", "--spider", "snoop", "--wait")
    job = json.loads(text)
    assert code == 0 and (job["args"], job["settings"], job["priority"], job["timeout"]) == ({}, {}, 0, None)


def test_the_daemon_refusing_an_option_is_one_line(hostile, capsys):
    """An option the daemon refuses (a setting it owns, a priority out of range) is its one-line message."""
    for flags, text in ((["-s", "LOG_FILE=/tmp/x"], "settings may not override LOG_FILE"),
                        (["--priority", "1001"], "priority must be a whole number from -1000 to 1000")):
        capsys.readouterr()
        code, _ = cl(hostile, "schedule-job", "--project", "hostile", "--spider", "snoop", *flags)
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1 and len(err) == 1 and err[0].startswith("[!] 400") and text in err[0], err


@pytest.mark.parametrize("flags, names", [(["-a", "category"], "-a/--arg"), (["--set", "DOWNLOAD_DELAY"], "-s/--set"),
                                          (["-a", "=books"], "-a/--arg")])
def test_a_malformed_pair_is_a_usage_error_naming_the_flag(hostile, capsys, flags, names):
    """An -a/-s item without NAME= exits 2 before anything is sent, naming the flag."""
    with pytest.raises(SystemExit) as exited:
        cl(hostile, "schedule-job", "--project", "hostile", "--spider", "snoop", *flags)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and f"argument {names}: expected" in err, err
    assert json.loads(cl(hostile, "--json", "list-jobs", "--status", "active")[1]) == []


def test_list_jobs_shows_priority_next_run_and_reason(daemon):
    """The job table keeps 0.5.0's columns first and in order, then priority, next-run and reason."""
    ensure_pushed(daemon)
    ident = json.loads(cl(daemon, "--json", "schedule-job", "--project", "offline", "--spider", "quick",
                          "--when", "every 3 hours", "--priority", "42")[1])["identifier"]
    try:
        headers, rows = psql_table(cl(daemon, "list-jobs", "--job-id", ident)[1])
        assert headers == [*ORIGINAL_JOB_HEADERS, "priority", "next-run", "reason", "items", "requests", "errors"]
        row = dict(zip(headers, rows[0]))
        assert row["priority"] == "42" and re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d", row["next-run"]), row
    finally:
        assert cl(daemon, "cancel-job", "--job-id", ident)[0] == 0
    assert cl(daemon, "schedule-job", "--project", "offline", "--spider", "broken", "--wait")[0] == 3
    headers, rows = psql_table(cl(daemon, "list-jobs", "--status", "FAILED", "--spider", "broken", "--limit", "1")[1])
    assert dict(zip(headers, rows[0]))["reason"].startswith("exit code"), rows


def test_list_jobs_status_in_any_case_and_offset(daemon):
    """--status takes any case, as the API does; --offset pages through the jobs newest first."""
    ensure_pushed(daemon)
    made = [json.loads(cl(daemon, "--json", "schedule-job", "--project", "offline", "--spider", "quick",
                          "--description", f"page {i}", "--wait")[1])["identifier"] for i in range(3)]
    newest = list(reversed(made))

    def page(status, offset):
        code, text = cl(daemon, "list-jobs", "--status", status, "--spider", "quick", "--limit", "1",
                        "--offset", str(offset), "--json")
        assert code == 0, text
        return [j["identifier"] for j in json.loads(text)]

    assert page("completed", 0) == newest[:1]
    assert page("Completed", 1) == newest[1:2]
    assert page("successful", 2) == newest[2:3]
    code, text = cl(daemon, "list-jobs", "--status", "successful", "--spider", "quick", "--limit", "2")
    assert code == 0 and psql_table(text)[1][0][0] == newest[0]


@pytest.mark.parametrize("argv", [["list-jobs", "--json"], ["--json", "list-jobs"], ["list-projects", "--json"],
                                  ["status", "--json"]])
def test_json_after_the_command_as_well_as_before(daemon, argv):
    """--json works after the command as well as before it."""
    ensure_pushed(daemon)
    code, text = cl(daemon, *argv)
    assert code == 0 and isinstance(json.loads(text), (list, dict)), text


def test_status_shows_uptime_in_words(daemon):
    """status prints the uptime as the daemon words it (1d 12m 24s), not raw seconds; --json keeps both."""
    code, text = cl(daemon, "status")
    rows = dict(psql_table(text)[1])
    assert code == 0 and "uptime-seconds" not in rows, rows
    assert re.fullmatch(r"(\d+[dhm] )*\d+s", rows["uptime"]), rows
    data = json.loads(cl(daemon, "status", "--json")[1])
    assert rows["uptime"] == data["uptime"] or re.fullmatch(r"(\d+[dhm] )*\d+s", data["uptime"])
    assert isinstance(data["uptime-seconds"], (int, float))


def test_wait_on_a_periodic_job_says_it_does_not_wait(daemon, capsys):
    """--wait with a periodic spec prints why it does not wait, the identifier, and exits 0 at once."""
    ensure_pushed(daemon)
    capsys.readouterr()
    started = time.monotonic()
    code, text = cl(daemon, "schedule-job", "--project", "offline", "--spider", "quick", "--when", "every 2 hours",
                    "--wait")
    err = capsys.readouterr().err
    ident = UUID.search(text).group(0)
    try:
        assert code == 0 and time.monotonic() - started < 10
        assert "--wait waits only for jobs run now" in err and "'every 2 hours' is a periodic job" in err, err
        assert daemon.job(ident)["status"] == "SCHEDULED"
    finally:
        cl(daemon, "cancel-job", "--job-id", ident)


def test_wait_prints_the_end_of_the_error_log_of_a_failed_job(daemon, capsys):
    """--wait on a failing crawl prints the last lines of its .err log to stderr, and exits 3."""
    ensure_pushed(daemon)
    capsys.readouterr()
    code, text = cl(daemon, "--json", "schedule-job", "--project", "offline", "--spider", "broken", "--wait")
    err = capsys.readouterr().err
    job = json.loads(text)  # stdout stays the job's JSON alone
    assert code == 3 and job["status"] == "FAILED"
    assert f"[!] Job {job['identifier']} ended FAILED ({job['reason']})" in err, err
    assert "RuntimeError: broken on purpose" in err, err
    assert f"get-log --job-id {job['identifier']} --log-type err" in err


def test_wait_tail_is_bounded_for_a_long_log(daemon, capsys):
    """A job stopped by its --timeout after a long log: about 20 lines of its end, the reason, exit 3."""
    ensure_pushed(daemon)
    capsys.readouterr()
    code, text = cl(daemon, "--json", "schedule-job", "--project", "offline", "--spider", "slow", "--timeout", "2",
                    "--payload", '{"pages": 600}', "--wait")
    err = capsys.readouterr().err.splitlines()
    job = json.loads(text)
    assert code == 3 and (job["status"], job["reason"], job["timeout"]) == ("FAILED", "timeout", 2), job
    assert err[0].startswith(f"[!] Job {job['identifier']} ended FAILED (timeout)"), err
    log = cl(daemon, "get-log", "--job-id", job["identifier"], "--log-type", "err")[1].splitlines()
    tail = err[1:-1]
    assert len(log) > 20 and 0 < len(tail) <= 20 and tail == log[-len(tail):], (len(log), tail)
    # A suffix range shorter than the log: whole lines only, the one it cuts left out.
    short = ScrapyDoClient(daemon.url).log_tail(job["identifier"], "err", lines=1000, size=600).splitlines()
    assert 0 < len(short) < len(log) and len("\n".join(short)) <= 600 and short == log[-len(short):], short


def test_help_of_schedule_job_and_list_jobs_describes_the_new_flags():
    """schedule-job --help shows -a/-s with an example, --priority, --timeout; list-jobs --help --offset."""
    def help_of(command):
        proc = subprocess.run([sys.executable, "-m", "scrapy_do.client.cli", command, "--help"],
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    text = help_of("schedule-job")
    for flag in ("-a KEY=VALUE, --arg KEY=VALUE", "-s NAME=VALUE, --set NAME=VALUE", "--priority N",
                 "--timeout SECONDS", "-a category=books -s DOWNLOAD_DELAY=2", "periodic", "--json"):
        assert flag in text, flag
    text = help_of("list-jobs")
    assert "--offset" in text and "in any case" in text and "priority" in text and "--json" in text


def test_a_periodic_job_is_scheduled_paused_edited_and_resumed_from_the_client(daemon):
    """--timezone, --overlap and --catch-up on schedule-job; pause-job, edit-job and resume-job."""
    ensure_pushed(daemon)
    code, text = cl(daemon, "schedule-job", "--project", "offline", "--spider", "quick", "--when", "0 9 * * mon-fri",
                    "--timezone", "America/New_York", "--overlap", "skip", "--catch-up", "yes")
    assert code == 0, text
    ident = UUID.search(text).group(0)
    try:
        job = daemon.job(ident)
        assert (job["schedule"], job["timezone"], job["overlap"], job["catch-up"]) == \
            ("0 9 * * mon-fri", "America/New_York", "skip", True)
        code, text = cl(daemon, "--json", "pause-job", "--job-id", ident)
        assert code == 0 and json.loads(text)["paused"] is True, text
        code, text = cl(daemon, "edit-job", "--job-id", ident, "--when", "every 3 hours", "-a", "tag=love",
                        "--priority", "4", "--json")
        edited = json.loads(text)
        assert code == 0 and (edited["schedule"], edited["args"], edited["priority"]) == \
            ("every 3 hours", {"tag": "love"}, 4), text
        code, text = cl(daemon, "resume-job", "--job-id", ident)
        assert code == 0 and ident in text
        assert daemon.job(ident)["paused"] is False and daemon.job(ident)["next-run"] is not None
    finally:
        cl(daemon, "cancel-job", "--job-id", ident)


def test_pausing_a_job_that_is_not_periodic_is_a_one_line_error(daemon, capsys):
    ensure_pushed(daemon)
    code, text = cl(daemon, "schedule-job", "--project", "offline", "--spider", "quick", "--wait")
    ident = UUID.search(text).group(0)
    capsys.readouterr()
    code, _ = cl(daemon, "pause-job", "--job-id", ident)
    err = capsys.readouterr().err
    assert code == 1 and "only a SCHEDULED (periodic) job can be paused" in err and err.count("\n") == 1, err


def test_list_jobs_shows_items_requests_and_errors_and_get_stats_prints_the_stats(daemon):
    ensure_pushed(daemon)
    code, text = cl(daemon, "schedule-job", "--project", "offline", "--spider", "quick", "--wait")
    ident = UUID.search(text).group(0)
    code, text = cl(daemon, "--json", "get-stats", "--job-id", ident)
    stats = json.loads(text)
    assert code == 0 and stats["finish-reason"] == "finished" and stats["item_scraped_count"] == 1, stats
    code, text = cl(daemon, "list-jobs", "--job-id", ident)
    header = next(line for line in text.splitlines() if "identifier" in line)
    assert code == 0 and all(name in header for name in ("items", "requests", "errors")), text
