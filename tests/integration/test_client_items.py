"""`scrapy-do-cl get-items`, --fail-on-errors and "succeeded with errors", run as users run them: the real client
as a subprocess (so each call is bounded by a timeout and a follow that never ends fails instead of hanging)
against the real daemon with the offline fixture project pushed."""

import csv
import io
import json
import os
import queue
import shutil
import subprocess
import sys
import threading

import pytest

from tests.helpers import OFFLINE
from tests.integration.daemonproc import DaemonProcess

pytestmark = pytest.mark.integration

#: Seconds any one client call may take (a --wait or a --follow included).
CALL_TIMEOUT = 90
UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = DaemonProcess(tmp_path_factory.mktemp("daemon")).start()
    d.home = tmp_path_factory.mktemp("home")  # no ~/.scrapy-do.cfg of whoever runs the tests
    project = tmp_path_factory.mktemp("src") / "checkout"
    shutil.copytree(OFFLINE, project, ignore=shutil.ignore_patterns("__pycache__"))
    try:
        code, out, err = cl(d, "push-project", "--project-path", str(project))
        assert code == 0, err
        yield d
    finally:
        d.stop()


def client_command(daemon, *argv):
    return [sys.executable, "-m", "scrapy_do.client.cli", "--url", daemon.url, *argv]


def client_env(daemon):
    return {**os.environ, "HOME": str(daemon.home)}


def cl(daemon, *argv, timeout=CALL_TIMEOUT):
    """(exit code, stdout bytes, stderr text) of one bounded client run."""
    proc = subprocess.run(client_command(daemon, *argv), capture_output=True, timeout=timeout,
                          env=client_env(daemon))
    return proc.returncode, proc.stdout, proc.stderr.decode()


def schedule(daemon, spider, payload=None, *flags):
    argv = ["--json", "schedule-job", "--project", "offline", "--spider", spider, *flags]
    if payload is not None:
        argv += ["--payload", json.dumps(payload)]
    code, out, err = cl(daemon, *argv)
    return code, json.loads(out), err


def finished(daemon, spider, payload=None, *flags):
    code, job, err = schedule(daemon, spider, payload, "--wait", *flags)
    assert job["status"] in ("SUCCESSFUL", "FAILED"), (job, err)
    return code, job, err


def json_lines(data):
    assert data.endswith(b"\n"), data[-200:]
    return [json.loads(line) for line in data.decode("utf-8").splitlines()]


def psql_rows(text):
    lines = [ln for ln in text.splitlines() if ln.startswith("|") and not ln.startswith("|-")]
    cells = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in lines]
    assert cells, text
    return [dict(zip(cells[0], row)) for row in cells[1:]]


@pytest.fixture(scope="module")
def mixed(daemon):
    code, job, err = finished(daemon, "mixed", {"count": 25})
    assert code == 0 and job["status"] == "SUCCESSFUL", (job, err)
    return job


def test_get_items_of_a_finished_job_prints_its_json_lines(daemon, mixed):
    code, out, err = cl(daemon, "get-items", "--job-id", mixed["identifier"])
    items = json_lines(out)
    assert code == 0 and err == "", err
    assert len(items) == 25 and [item["n"] for item in items if "n" in item] == \
        [i for i in range(25) if i % 5 != 4], items  # every fifth is a scrapy Item (name, price)
    assert items[1]["text"] == "ünïcødé ✓" and items[3]["price"] == "19.99" and items[4]["name"] == "product 4"


def test_get_items_csv_parses_into_one_row_per_item_and_output_writes_a_file(daemon, mixed, tmp_path):
    code, out, err = cl(daemon, "get-items", "--job-id", mixed["identifier"], "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out.decode("utf-8"), newline="")))
    assert len(rows) == 25 and {"n", "text", "name", "price"} <= set(rows[0]), rows[:2]
    assert rows[1]["text"] == "ünïcødé ✓" and json.loads(rows[1]["nested"])["deep"] == {"x": "y"}
    target = tmp_path / "items.csv"
    code, printed, err = cl(daemon, "get-items", "--job-id", mixed["identifier"], "--format", "csv",
                            "--output", str(target))
    assert code == 0 and printed == b"" and target.read_bytes() == out, err


def test_follow_streams_a_running_job_and_ends_with_it(daemon):
    """--follow started while the job runs prints each item as it comes and returns by itself at the job's end."""
    code, job, err = schedule(daemon, "slow", {"pages": 30})
    assert code == 0, err
    ident = job["identifier"]
    daemon.wait_job(ident, {"RUNNING"}, timeout=60)
    with Client(daemon, "get-items", "--job-id", ident, "--follow") as client:
        first = client.stdout.get(timeout=CALL_TIMEOUT)
        seen_while_running = daemon.job(ident)["status"] == "RUNNING"
        code, out, err = client.wait()
    assert code == 0, err
    assert json_lines(first + out) == [{"body": f"page{i}"} for i in range(30)]
    assert daemon.job(ident)["status"] == "SUCCESSFUL"  # it returned because the job ended
    if not seen_while_running:
        pytest.skip("the job ended before its first item reached the client: streaming not observed")


class Client:
    """The client running in the background; its output read line by line as it comes (bounded waits)."""

    def __init__(self, daemon, *argv):
        self.proc = subprocess.Popen(client_command(daemon, *argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=client_env(daemon))
        self.stdout, self.stderr = queue.Queue(), queue.Queue()
        self.readers = [threading.Thread(target=lambda f=f, q=q: [q.put(line) for line in iter(f.readline, b"")],
                                         daemon=True)
                        for f, q in ((self.proc.stdout, self.stdout), (self.proc.stderr, self.stderr))]
        for reader in self.readers:
            reader.start()

    def wait(self, timeout=CALL_TIMEOUT):
        """(exit code, the stdout not taken yet, the stderr not taken yet)."""
        code = self.proc.wait(timeout)
        for reader in self.readers:
            reader.join(10)
        return code, b"".join(_drain(self.stdout)), b"".join(_drain(self.stderr)).decode()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _drain(q):
    out = []
    while True:
        try:
            out.append(q.get_nowait())
        except queue.Empty:
            return out


def test_erring_succeeds_with_errors_and_says_so(daemon):
    code, job, err = finished(daemon, "erring")
    assert code == 0 and job["status"] == "SUCCESSFUL" and job["errors"] >= 2, job
    assert f"[i] Job {job['identifier']} succeeded with errors ({job['errors']} errors)" in err, err
    code, out, err = cl(daemon, "list-jobs", "--job-id", job["identifier"])
    text = out.decode()
    [row] = psql_rows(text)
    assert code == 0 and row["status"] == "SUCCESSFUL*" and row["errors"] == str(job["errors"]), text
    assert text.rstrip().splitlines()[-1].startswith("* succeeded with errors"), text
    code, out, _ = cl(daemon, "--json", "list-jobs", "--job-id", job["identifier"])
    assert json.loads(out)[0]["status"] == "SUCCESSFUL"  # --json is the daemon's record as it is


def test_fail_on_errors_yes_makes_erring_fail_with_reason_errors(daemon):
    code, job, err = finished(daemon, "erring", None, "--fail-on-errors", "yes")
    assert code == 3 and (job["status"], job["reason"], job["fail-on-errors"]) == ("FAILED", "errors", True), job
    assert f"[!] Job {job['identifier']} failed: errors ({job['errors']} errors); the last lines of its error " \
           "log:" in err, err
    [row] = psql_rows(cl(daemon, "list-jobs", "--job-id", job["identifier"])[1].decode())
    assert (row["status"], row["reason"]) == ("FAILED", "errors"), row
    code, job, err = finished(daemon, "erring", None, "--fail-on-errors", "no")
    assert code == 0 and (job["status"], job["fail-on-errors"]) == ("SUCCESSFUL", False), job


@pytest.mark.parametrize("job_id, text", [(UNKNOWN, "unknown job"), ("nope", "nope")])
@pytest.mark.parametrize("flags", [(), ("--follow",), ("--format", "csv")])
def test_get_items_of_an_unknown_job_is_an_error(daemon, tmp_path, job_id, text, flags):
    target = tmp_path / "kept.jl"
    target.write_text("kept\n")
    code, out, err = cl(daemon, "get-items", "--job-id", job_id, "--output", str(target), *flags)
    assert code == 1 and out == b"" and err.startswith("[!] 4") and text in err and err.count("\n") == 1, err
    assert target.read_text() == "kept\n"


def test_follow_of_a_pending_job_waits_for_its_start(daemon):
    """Both job slots taken: the job waits PENDING, with no items file; --follow waits, then streams it."""
    blockers = [schedule(daemon, "slow", {"pages": 600})[1]["identifier"] for _ in range(2)]
    try:
        for ident in blockers:
            daemon.wait_job(ident, {"RUNNING"}, timeout=60)
        code, job, err = schedule(daemon, "slow", {"pages": 10})
        assert code == 0 and daemon.job(job["identifier"])["status"] == "PENDING", err
        with Client(daemon, "get-items", "--job-id", job["identifier"], "--follow") as client:
            notice = client.stderr.get(timeout=30).decode()
            for ident in blockers:
                assert cl(daemon, "cancel-job", "--job-id", ident)[0] == 0
            code, out, err = client.wait()
    finally:
        for ident in blockers:
            if daemon.job(ident)["status"] in ("PENDING", "RUNNING"):
                cl(daemon, "cancel-job", "--job-id", ident)
    assert notice == f"[i] Job {job['identifier']} is PENDING; waiting for it to start\n"
    assert code == 0, err
    assert json_lines(out) == [{"body": f"page{i}"} for i in range(10)]
    assert daemon.job(job["identifier"])["status"] == "SUCCESSFUL"


def test_fail_on_errors_of_a_periodic_job_is_set_edited_and_put_back_to_the_default(daemon):
    code, job, err = schedule(daemon, "erring", None, "--when", "every 3 hours", "--fail-on-errors", "yes")
    assert code == 0, err
    ident = job["identifier"]
    try:
        assert daemon.job(ident)["fail-on-errors"] is True
        for value, expected in (("no", False), ("default", None)):
            code, out, err = cl(daemon, "--json", "edit-job", "--job-id", ident, "--fail-on-errors", value)
            assert code == 0 and json.loads(out)["fail-on-errors"] is expected, err
    finally:
        assert cl(daemon, "cancel-job", "--job-id", ident)[0] == 0
