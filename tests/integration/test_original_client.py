"""The ORIGINAL Scrapy Do 0.5.0 command-line client (`scrapy-do-cl`), unmodified, against our real daemon.

The client comes from PyPI (`scrapy-do==0.5.0`), installed once into
`.venv/orig-client-0.5.0`. Only the client subprocess sees it on PYTHONPATH,
so its old `scrapy_do` package never shadows ours in the daemon. The client
sends urlencoded POST bodies (the archive too), reads a body as JSON only when
Content-Type is exactly `application/json`, prints tables with tabulate and,
on a non-200 answer, prints `[!] Server responded with an error: <msg>` and
exits 1 (0 otherwise).
"""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import OFFLINE
from tests.integration.daemonproc import DaemonProcess

pytestmark = pytest.mark.integration

CLIENT_DIR = Path(__file__).parents[2] / ".venv" / "orig-client-0.5.0"
CLIENT_PACKAGES = ["scrapy-do==0.5.0", "tabulate", "pem"]
PIP_TIMEOUT = 300
ERROR = "[!] Server responded with an error: "
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: The keys the 0.5.0 server answered status.json with (the client prints them all).
ORIGINAL_STATUS_KEYS = {"status", "memory-usage", "cpu-usage", "time", "timezone", "hostname", "uptime",
                        "jobs-run", "jobs-successful", "jobs-failed", "jobs-canceled", "jobs-scheduled",
                        "projects", "spiders", "daemon-version"}
JOB_HEADERS = ["identifier", "project", "spider", "status", "schedule", "description", "actor", "timestamp",
               "duration", "payload"]


# -- the client -----------------------------------------------------------------


def _client_complete(path):
    return (path / "bin" / "scrapy-do-cl").is_file() and (path / "scrapy_do" / "client" / "commands.py").is_file()


@pytest.fixture(scope="session")
def client_dir():
    """The 0.5.0 client installed (once, cached under .venv) with pip --no-deps --target."""
    if not _client_complete(CLIENT_DIR):
        staging = CLIENT_DIR.with_name(f"{CLIENT_DIR.name}.tmp-{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check", "--no-input",
               "--timeout", "30", "--retries", "2", "--target", str(staging), *CLIENT_PACKAGES]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT)
        except subprocess.TimeoutExpired:
            shutil.rmtree(staging, ignore_errors=True)
            pytest.skip(f"pip could not install {' '.join(CLIENT_PACKAGES)} within {PIP_TIMEOUT} s "
                        "(is PyPI reachable?)")
        if proc.returncode != 0 or not _client_complete(staging):
            shutil.rmtree(staging, ignore_errors=True)
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
            pytest.skip(f"pip could not install {' '.join(CLIENT_PACKAGES)} from PyPI: {tail}")
        try:
            staging.rename(CLIENT_DIR)
        except OSError:  # another session installed it meanwhile
            shutil.rmtree(staging, ignore_errors=True)
    assert _client_complete(CLIENT_DIR), f"{CLIENT_DIR} is incomplete; delete it to reinstall the client"
    return CLIENT_DIR


class Client:
    """Runs `scrapy-do-cl --url <daemon> ...` as users do, isolated from ~/.scrapy-do.cfg."""

    def __init__(self, client_dir, url, home):
        self.script = client_dir / "bin" / "scrapy-do-cl"
        self.url = url
        home.mkdir(parents=True, exist_ok=True)
        self.home = home
        self.env = {**os.environ, "PYTHONPATH": str(client_dir), "HOME": str(home),
                    "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}

    def __call__(self, *args, cwd=None, timeout=60, check=True):
        proc = subprocess.run([sys.executable, str(self.script), "--url", self.url, *args],
                              cwd=cwd or self.home, env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        assert "Traceback" not in proc.stderr, f"scrapy-do-cl {args} crashed:\n{proc.stdout}\n{proc.stderr}"
        if check:
            assert proc.returncode == 0, f"scrapy-do-cl {args} exited {proc.returncode}:\n{proc.stdout}"
            assert not proc.stdout.startswith("[!]"), proc.stdout
        return proc

    def error(self, *args, one_line=True):
        """Run a command the server must refuse: its msg after the client's error prefix, exit status 1."""
        proc = self(*args, check=False)
        lines = proc.stdout.strip().splitlines()
        assert proc.returncode == 1, f"scrapy-do-cl {args} exited {proc.returncode}:\n{proc.stdout}"
        assert lines and lines[0].startswith(ERROR), proc.stdout
        msg = proc.stdout.strip()[len(ERROR):]
        assert msg and not msg.lstrip().startswith(("{", "<")), msg
        if one_line:
            assert len(lines) == 1 and "Traceback" not in msg, proc.stdout
        return msg


def table(out):
    """(headers, rows) of a psql-format table printed by the client."""
    lines = [ln for ln in out.splitlines() if ln.startswith("|") and not ln.startswith("|-")]
    assert lines, f"no table in:\n{out}"
    cells = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines]
    return cells[0], cells[1:]


def jobs(out):
    headers, rows = table(out)
    assert headers == JOB_HEADERS, headers
    assert "Cannot parse the JSON payload" not in out, out
    return [dict(zip(headers, row)) for row in rows]


def identifier_of(out):
    headers, rows = table(out)
    assert headers == ["identifier"] and len(rows) == 1 and UUID_RE.fullmatch(rows[0][0]), out
    return rows[0][0]


def project_copy(dest, name="offline", extra=None):
    """A copy of the offline fixture project, as a folder a user would push (optionally renamed)."""
    shutil.copytree(OFFLINE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    if name != "offline":
        cfg = dest / "scrapy.cfg"
        cfg.write_text(cfg.read_text().replace("project = offline", f"project = {name}"))
    for rel, text in (extra or {}).items():
        (dest / rel).write_text(text)
    return dest


# -- daemons ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One real daemon subprocess for the module."""
    daemon = DaemonProcess(tmp_path_factory.mktemp("orig-client-daemon")).start()
    yield daemon
    daemon.stop()


@pytest.fixture(scope="module")
def cl(client_dir, server, tmp_path_factory):
    return Client(client_dir, server.url, tmp_path_factory.mktemp("orig-client-home"))


@pytest.fixture(scope="module")
def pushed(cl, tmp_path_factory):
    """`offline` pushed with the client; returns the push output."""
    proj = project_copy(tmp_path_factory.mktemp("push") / "offline")
    return cl("push-project", "--project-path", str(proj)).stdout


@pytest.fixture(scope="module")
def finished(cl, server, pushed):
    """A quick job scheduled now by the client with a payload and a description, run to its end."""
    out = cl("schedule-job", "--project", "offline", "--spider", "quick", "--payload", '{"tag": 1}',
             "--description", "from the 0.5.0 client").stdout
    identifier = identifier_of(out)
    server.wait_job(identifier, {"SUCCESSFUL", "FAILED", "CANCELED"}, timeout=60)
    return {"schedule_out": out, "id": identifier}


# -- every command -------------------------------------------------------------------


def test_status_prints_the_original_keys(cl):
    """`status` prints a key/value table with every key the 0.5.0 server had, jobs-run among them."""
    headers, rows = table(cl("status").stdout)
    assert headers == ["key", "value"]
    status = dict(rows)
    assert ORIGINAL_STATUS_KEYS <= status.keys(), ORIGINAL_STATUS_KEYS - status.keys()
    assert status["status"] == "ok"
    for key in ("jobs-run", "jobs-successful", "jobs-failed", "jobs-canceled", "jobs-scheduled", "projects",
                "spiders"):
        assert int(status[key]) >= 0, (key, status[key])
    assert float(status["memory-usage"]) > 0
    assert re.fullmatch(r"(\d+d )?(\d+h )?(\d+m )?\d+s", status["uptime"]), status["uptime"]


def test_push_project_with_project_path_lists_the_spiders(pushed):
    """`push-project --project-path DIR` uploads the client-built archive and prints the project's spiders."""
    assert table(pushed) == (["offline"], [["broken"], ["bulk"], ["erring"], ["mixed"], ["quick"], ["slow"]])


def test_push_project_from_the_current_directory(cl, pushed, tmp_path):
    """`push-project` with no path pushes the current directory (the client's default '.')."""
    proj = project_copy(tmp_path / "offline")
    assert table(cl("push-project", cwd=proj).stdout) == (["offline"], [["broken"], ["bulk"], ["erring"], ["mixed"], ["quick"], ["slow"]])


def test_list_projects_shows_offline(cl, pushed):
    """`list-projects` prints a `name` table holding the pushed project."""
    headers, rows = table(cl("list-projects").stdout)
    assert headers == ["name"] and ["offline"] in rows


def test_list_spiders_shows_the_spiders(cl, pushed):
    """`list-spiders --project offline` prints the three fixture spiders."""
    assert table(cl("list-spiders", "--project", "offline").stdout) == (["name"], [["broken"], ["bulk"], ["erring"], ["mixed"], ["quick"], ["slow"]])


def test_schedule_job_now_prints_an_identifier_and_list_jobs_shows_it_successful(cl, finished):
    """`schedule-job` prints one identifier and `list-jobs --job-id` then shows the job SUCCESSFUL."""
    assert identifier_of(finished["schedule_out"]) == finished["id"]
    [row] = jobs(cl("list-jobs", "--job-id", finished["id"]).stdout)
    assert row["identifier"] == finished["id"] and row["status"] == "SUCCESSFUL", row
    assert row["project"] == "offline" and row["spider"] == "quick" and row["schedule"] == "now"
    assert row["description"] == "from the 0.5.0 client" and row["actor"] == "USER"
    assert json.loads(row["payload"]) == {"tag": 1}
    assert int(row["duration"]) >= 0 and row["timestamp"]


def test_list_jobs_completed_includes_the_finished_job(cl, finished):
    """`list-jobs --status COMPLETED` lists the finished job, and the default (ACTIVE) does not."""
    completed = {r["identifier"]: r for r in jobs(cl("list-jobs", "--status", "COMPLETED").stdout)}
    assert completed[finished["id"]]["status"] == "SUCCESSFUL"
    assert finished["id"] not in cl("list-jobs").stdout


def test_get_log_out_shows_the_payload(cl, finished):
    """`get-log --log-type out` prints the quick spider's stdout, with the payload it was given."""
    out = cl("get-log", "--job-id", finished["id"], "--log-type", "out").stdout
    printed = json.loads(out.strip().splitlines()[0])
    assert printed["payload"] == {"tag": 1} and printed["body"] == "hello"


def test_get_log_err_shows_the_scrapy_log(cl, finished):
    """`get-log --log-type err` prints Scrapy's log of the crawl."""
    err = cl("get-log", "--job-id", finished["id"], "--log-type", "err").stdout
    assert "[scrapy" in err and "Spider closed (finished)" in err, err[-2000:]


def test_get_log_of_a_running_job_returns(cl, server, pushed):
    """`get-log` on a RUNNING job returns (at the latest when the crawl ends, as 0.5.0 did) with the log so far."""
    code, body = server.request("/schedule-job.json", {"project": "offline", "spider": "slow",
                                                       "payload": '{"pages": 10}'})
    assert code == 200, body
    identifier = body["identifier"]
    server.wait_job(identifier, {"RUNNING"}, timeout=30)
    during = cl("get-log", "--job-id", identifier, "--log-type", "out", timeout=45).stdout
    assert server.wait_job(identifier, {"SUCCESSFUL", "FAILED"}, timeout=60)["status"] == "SUCCESSFUL"
    final = cl("get-log", "--job-id", identifier, "--log-type", "out").stdout
    assert "slow spider started" in final, final
    assert final.startswith(during.rstrip("\n")), (during, final)


def test_scheduled_job_cancel_then_remove_project(client_dir, tmp_path):
    """Every 10 minutes shows as SCHEDULED; remove-project refuses until cancel-job; then it removes."""
    (tmp_path / "daemon").mkdir()
    daemon = DaemonProcess(tmp_path / "daemon").start()
    try:
        cl = Client(client_dir, daemon.url, tmp_path / "home")
        cl("push-project", "--project-path", str(project_copy(tmp_path / "offline")))
        # Non-ASCII text goes urlencoded as UTF-8 and must come back intact.
        identifier = identifier_of(cl("schedule-job", "--project", "offline", "--spider", "quick",
                                      "--when", "every 10 minutes", "--description", "zażółć gęślą jaźń ✓",
                                      "--payload", '{"city": "Kraków", "n": 2}').stdout)
        [row] = jobs(cl("list-jobs").stdout)
        assert row["identifier"] == identifier and row["status"] == "SCHEDULED", row
        assert row["schedule"] == "every 10 minutes" and row["description"] == "zażółć gęślą jaźń ✓"
        assert json.loads(row["payload"]) == {"city": "Kraków", "n": 2} and "Kraków" in row["payload"]

        assert identifier in cl.error("get-log", "--job-id", identifier)  # no log before it runs
        msg = cl.error("remove-project", "--name", "offline")
        assert "offline" in msg and "scheduled" in msg.lower(), msg

        assert cl("cancel-job", "--job-id", identifier).stdout.strip() == "Canceled."
        [row] = jobs(cl("list-jobs", "--status", "CANCELED").stdout)
        assert row["identifier"] == identifier

        assert cl("remove-project", "--name", "offline").stdout.strip() == "Removed."
        assert cl("list-projects").stdout.strip() == "[i] No data to show."
        status = dict(table(cl("status").stdout)[1])
        assert (status["projects"], status["jobs-canceled"], status["jobs-scheduled"]) == ("0", "1", "0")
    finally:
        daemon.stop()


# -- error paths ------------------------------------------------------------------------


@pytest.mark.parametrize("args, words", [
    (["list-spiders", "--project", "nope"], ["nope"]),
    (["schedule-job", "--project", "offline", "--spider", "quick", "--when", "every blue moon"], ["blue"]),
    (["schedule-job", "--project", "offline", "--spider", "nosuch"], ["nosuch"]),
    (["list-jobs", "--job-id", "00000000-0000-4000-8000-000000000000"], ["00000000-0000-4000-8000-000000000000"]),
    (["get-log", "--job-id", "not-a-uuid", "--log-type", "out"], ["not-a-uuid"]),
    (["remove-project", "--name", "nope"], ["nope"]),
], ids=["unknown-project", "bad-spec", "unknown-spider", "unknown-job", "log-of-bad-job-id",
        "remove-unknown-project"])
def test_refusals_come_back_as_one_clean_error_line(cl, pushed, args, words):
    """The client prints the server's msg as its one `[!] Server responded with an error:` line and exits 1."""
    msg = cl.error(*args)
    for word in words:
        assert word in msg, msg


def test_cancel_of_a_finished_job_is_a_clean_error(cl, finished):
    """`cancel-job` of a finished job prints the server's refusal and exits 1."""
    msg = cl.error("cancel-job", "--job-id", finished["id"])
    assert finished["id"] in msg and "finished" in msg, msg


def test_push_of_a_project_whose_spiders_do_not_load_is_a_clean_error(cl, server, tmp_path):
    """A pushed project whose spiders fail to import is refused with the server's msg (and the cause), exit 1."""
    proj = project_copy(tmp_path / "shaky", name="shaky",
                        extra={"offline/spiders/oops.py": "raise ImportError('oops on purpose')\n"})
    msg = cl.error("push-project", "--project-path", str(proj), one_line=False)
    assert msg.startswith("cannot list the spiders of 'shaky'") and "oops on purpose" in msg, msg
    assert "shaky" not in server.get("/list-projects.json")[1]["projects"]


# -- print formats ----------------------------------------------------------------------


def test_print_formats_other_than_psql(cl, pushed):
    """`--print-format grid` and `html` render the same data the client got from the server."""
    grid = cl("--print-format", "grid", "list-spiders", "--project", "offline").stdout
    assert "+========+" in grid and "| quick  |" in grid
    html = cl("--print-format", "html", "list-projects").stdout
    assert "<table>" in html and "<td>offline</td>" in html
