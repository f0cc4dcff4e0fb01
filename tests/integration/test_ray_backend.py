"""The Ray backend against a real local Ray head (tests/integration/rayhead.py): real daemons with
`[executor] backend = ray` submit real crawls of the offline fixture project through the Jobs REST API.

The head runs from `.venv-ray`, which has Ray and Scrapy but not Scrapy Do: what a crawl needs of the daemon
travels in its runtime_env. Every wait is bounded.
"""

import http.server
import json
import signal
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import make_wheel, offline_zip, reachable_tempdir
from tests.integration.daemonproc import DaemonProcess
from tests.integration.rayhead import ray_head  # noqa: F401  (the fixture)
from tests.integration.test_project_environments import project  # the offline project, a `helped` spider

pytestmark = pytest.mark.integration

ENDED = {"SUCCESSFUL", "FAILED", "CANCELED"}


def conf(head, extra="", slots=2, port=0, section="scrapy-do"):
    """`extra` lines go in [scrapy-do], or at the end of [executor]."""
    daemon, executor = (extra, "") if section == "scrapy-do" else ("", extra)
    return (f"[scrapy-do]\njob-slots = {slots}\ncancel-grace = 5\n{daemon}[web]\ninterfaces = 127.0.0.1:{port}\n"
            f"[executor]\nbackend = ray\nray-address = {head.address}\nray-poll-interval = 0.5\n{executor}")


def free_port():
    """A port for a daemon that restarts on the same address, as a real one does (its crawls report there)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def workdir():
    with reachable_tempdir("sd-ray-") as tmp:
        yield tmp


def start(workdir, head, extra="", slots=2, port=0, section="scrapy-do"):
    return DaemonProcess(Path(workdir), conf(head, extra, slots, port, section)).start()


def log_of(d, job, kind="err"):
    path = d.workdir / "projects" / "log-dir" / f"{job}.{kind}"
    return path.read_text() if path.exists() else ""


def submissions_of(head, job):
    """Ray's submissions for a Scrapy Do job (by the metadata the daemon puts on each)."""
    return [j for j in head.json("GET", "/api/jobs/") if (j.get("metadata") or {}).get("scrapy-do-job") == job]


def test_a_job_runs_on_ray_with_its_arguments_log_stats_and_items(ray_head, workdir):  # noqa: F811
    d = start(workdir, ray_head)
    try:
        assert d.push("offline.zip", offline_zip())["spiders"]
        job = d.schedule("offline", "quick", payload=json.dumps({"color": "blue"}))
        ended = d.wait_job(job, ENDED, timeout=90)
        assert ended["status"] == "SUCCESSFUL", (ended, log_of(d, job))
        assert ended["exit-code"] == 0 and ended["stats"]["item_scraped_count"] == 1
        # The crawl's stdout and Scrapy's log, followed into the usual files and served as usual.
        printed = json.loads(log_of(d, job, "out").splitlines()[0])
        assert printed["payload"] == {"color": "blue"} and printed["body"] == "hello"
        assert printed["data_dir"]  # a data directory on the node, for relative paths
        with urllib.request.urlopen(f"{d.url}/get-log/data/{job}.err", timeout=10) as resp:
            assert b"Spider closed (finished)" in resp.read()
        with urllib.request.urlopen(f"{d.url}/get-items/{job}.jl", timeout=10) as resp:
            assert [json.loads(line) for line in resp.read().splitlines()] == [{"body": "hello"}]
        # One submission, named after the job; its entrypoint holds no argument and no token.
        (info,) = submissions_of(ray_head, job)
        assert info["submission_id"] == f"scrapy-do-{job}" and info["status"] == "SUCCEEDED"
        assert info["entrypoint"] == "python -m scrapy_do.launchers.remote"
        assert info["runtime_env"]["working_dir"].startswith("gcs://_ray_pkg_")
        assert d.get("/status.json")[1]["launch-problem"] is None
    finally:
        d.stop()


def test_a_requirement_of_the_project_reaches_the_crawl_on_ray(ray_head, workdir):  # noqa: F811
    wheels = Path(workdir) / "wheels"
    make_wheel(wheels, "acme-helper", "1.5")
    archive = project(Path(workdir), "helped", b"acme-helper==1.5\n")
    # The same find-links serve the daemon's own build (for `scrapy list`) and Ray's pip on the cluster.
    d = start(workdir, ray_head, f"find-links = {wheels}\n")
    try:
        assert "helped" in d.push("helped.zip", archive)["spiders"]
        job = d.schedule("helped", "helped")
        ended = d.wait_job(job, ENDED, timeout=240)  # Ray makes the job's virtualenv first: tens of seconds
        assert ended["status"] == "SUCCESSFUL", (ended, log_of(d, job))
        assert "acme-helper 1.5" in log_of(d, job, "out")
        (info,) = submissions_of(ray_head, job)
        assert info["runtime_env"]["pip"]["packages"] == ["acme-helper==1.5"]
    finally:
        d.stop()


def test_cancel_stops_a_slow_crawl_on_ray_and_a_time_limit_ends_one(ray_head, workdir):  # noqa: F811
    d = start(workdir, ray_head)
    try:
        d.push("offline.zip", offline_zip())
        canceled = d.schedule("offline", "slow")
        limited = d.schedule("offline", "slow", timeout="4")
        for job in (canceled, limited):
            d.wait_job(job, {"RUNNING"}, timeout=60)
        deadline = time.monotonic() + 60
        while "slow spider started" not in log_of(d, canceled, "out") and time.monotonic() < deadline:
            time.sleep(0.2)
        code, body = d.request("/cancel-job.json", {"job_id": canceled})
        assert code == 200, body
        ended = d.wait_job(canceled, ENDED, timeout=60)
        assert ended["status"] == "CANCELED", (ended, log_of(d, canceled))
        timed = d.wait_job(limited, ENDED, timeout=60)
        assert (timed["status"], timed["reason"]) == ("FAILED", "timeout"), (timed, log_of(d, limited))
        for job in (canceled, limited):
            (info,) = submissions_of(ray_head, job)
            assert info["status"] == "STOPPED"
        # Scrapy's graceful stop ran: the crawl closed its spider (SIGTERM first).
        assert "Closing spider (shutdown)" in log_of(d, canceled)
    finally:
        d.stop()


def test_a_daemon_killed_while_its_crawl_runs_on_ray_reports_that_crawls_end_after_a_restart(ray_head,  # noqa: F811
                                                                                              workdir):
    port = free_port()
    d = start(workdir, ray_head, port=port)
    try:
        d.push("offline.zip", offline_zip())
        job = d.schedule("offline", "slow", payload=json.dumps({"pages": 60}))  # about 6 s
        d.wait_job(job, {"RUNNING"}, timeout=60)
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(timeout=10)
        time.sleep(1)
        assert [i["status"] for i in submissions_of(ray_head, job)] in (["RUNNING"], ["PENDING"])
        d = start(workdir, ray_head, port=port)
        ended = d.wait_job(job, ENDED, timeout=90)
        assert ended["status"] == "SUCCESSFUL", (ended, log_of(d, job))
        assert ended["stats"]["item_scraped_count"] == 60
        assert len(submissions_of(ray_head, job)) == 1  # followed, never submitted again
        assert "Spider closed (finished)" in log_of(d, job)
        items = (d.workdir / "projects" / "log-dir" / f"{job}.jl").read_text().splitlines()
        assert len(items) == 60
    finally:
        d.stop()


def test_a_crawl_that_ended_while_no_daemon_watched_is_recorded_at_the_next_start(ray_head, workdir):  # noqa: F811
    port = free_port()
    # The wrappers wait 1 s, not 30, for a daemon to take their last output.
    d = start(workdir, ray_head, 'ray-runtime-env = {"env_vars": {"SCRAPY_DO_OUTPUT_WAIT": "1"}}\n', port=port,
              section="executor")
    try:
        d.push("offline.zip", offline_zip())
        ok, broken = d.schedule("offline", "slow", payload=json.dumps({"pages": 20})), d.schedule("offline", "broken")
        for job in (ok, broken):
            d.wait_job(job, {"RUNNING"}, timeout=60)
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(timeout=10)
        for job in (ok, broken):
            (info,) = submissions_of(ray_head, job)
            ray_head.wait_job(info["submission_id"], timeout=90)
        d = start(workdir, ray_head, port=port)
        ended = {job: d.wait_job(job, ENDED, timeout=30) for job in (ok, broken)}
        assert (ended[ok]["status"], ended[ok]["exit-code"]) == ("SUCCESSFUL", 0), ended[ok]
        assert (ended[broken]["status"], ended[broken]["exit-code"]) == ("FAILED", 1), ended[broken]
        assert "Ray reports submission" in log_of(d, broken)
        assert all(len(submissions_of(ray_head, job)) == 1 for job in (ok, broken))
    finally:
        d.stop()


def test_a_graceful_restart_leaves_the_crawl_running_on_ray(ray_head, workdir):  # noqa: F811
    port = free_port()
    d = start(workdir, ray_head, port=port)
    try:
        d.push("offline.zip", offline_zip())
        job = d.schedule("offline", "slow", payload=json.dumps({"pages": 40}))
        d.wait_job(job, {"RUNNING"}, timeout=60)
        d.stop()
        assert [i["status"] for i in submissions_of(ray_head, job)] in (["RUNNING"], ["PENDING"])
        d = start(workdir, ray_head, port=port)
        ended = d.wait_job(job, ENDED, timeout=90)
        assert ended["status"] == "SUCCESSFUL" and ended["stats"]["item_scraped_count"] == 40
        assert len(submissions_of(ray_head, job)) == 1
    finally:
        d.stop()


def test_jobs_wait_pending_while_the_head_is_down_and_run_when_it_is_back(ray_head, workdir):  # noqa: F811
    ray_head.stop()
    d = start(workdir, ray_head)  # an address that does not answer: a warning, and the daemon serves
    try:
        deadline = time.monotonic() + 15
        while "does not answer yet" not in d.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        warning = [line for line in d.log.read_text().splitlines() if "does not answer yet" in line]
        assert len(warning) == 1 and ray_head.address in warning[0]
        d.push("offline.zip", offline_zip())
        jobs = [d.schedule("offline", "quick") for _ in range(3)]
        deadline, problem = time.monotonic() + 20, None
        while problem is None and time.monotonic() < deadline:
            problem = d.get("/status.json")[1]["launch-problem"]
            time.sleep(0.2)
        assert problem and "does not answer" in problem and ray_head.address in problem
        assert {d.job(j)["status"] for j in jobs} == {"PENDING"}
        ray_head.start()
        for job in jobs:
            ended = d.wait_job(job, ENDED, timeout=120)
            assert ended["status"] == "SUCCESSFUL", (ended, log_of(d, job))
            assert len(submissions_of(ray_head, job)) == 1
        assert d.get("/status.json")[1]["launch-problem"] is None
    finally:
        d.stop()


def test_a_crawl_ray_reports_failed_ends_failed_with_rays_message(ray_head, workdir):  # noqa: F811
    d = start(workdir, ray_head)
    try:
        d.push("offline.zip", offline_zip())
        job = d.schedule("offline", "broken")
        ended = d.wait_job(job, ENDED, timeout=90)
        assert ended["status"] == "FAILED" and ended["exit-code"] == 1, (ended, log_of(d, job))
        err = log_of(d, job)
        assert "Traceback" in err  # the crawl's own stderr, as for a local crawl
        assert f"scrapy-do: Ray reports submission scrapy-do-{job} FAILED: Job entrypoint command failed" in err
    finally:
        d.stop()


class NotRay(http.server.BaseHTTPRequestHandler):
    """A head that answers what no Ray head would: the version as Ray's, then nonsense to a submission."""

    def _answer(self, code, body):
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self._answer(200, b'{"ray_version": "2.60.0"}' if self.path == "/api/version" else b"{}")

    def do_PUT(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self._answer(200, b"{}")

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(200, b"<html>a proxy's error page</html>")

    def log_message(self, *args):
        pass


def test_an_answer_the_daemon_does_not_understand_fails_that_job_and_the_daemon_goes_on(workdir):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotRay)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    head = type("Head", (), {"address": f"http://127.0.0.1:{server.server_address[1]}"})()
    d = start(workdir, head)
    try:
        d.push("offline.zip", offline_zip())
        job = d.schedule("offline", "quick")
        ended = d.wait_job(job, ENDED, timeout=30)
        assert (ended["status"], ended["reason"]) == ("FAILED", "failed to start")
        assert "something that is not JSON: <html>a proxy's error page</html>" in log_of(d, job)
        assert d.get("/status.json")[0] == 200 and d.get("/status.json")[1]["launch-problem"] is None
    finally:
        d.stop()
        server.shutdown()
