"""`scrapy-do-migrate` on a store made by the REAL Scrapy Do 0.5.0 daemon, into our real daemon.

The 0.5.0 daemon comes from PyPI (`scrapy-do==0.5.0` in `.venv-orig`, built by
`make install-orig`; `make test` does). It runs as its users ran it
(`scrapy-do -n scrapy-do --config FILE`) on 127.0.0.1, takes the offline
fixture project and a few schedules over its REST API, runs a job, and stops.
It runs twice on the same store: first what can all be carried (a copy of the
store is kept then), then what cannot (a spec our daemon refuses, a project
whose archive is then deleted from the store).
"""

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import OFFLINE, multipart, zip_tree
from tests.integration.daemonproc import DaemonProcess

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ORIG_VENV = Path(os.environ.get("SCRAPY_DO_TEST_ORIG_VENV") or ROOT / ".venv-orig")
MIGRATE = Path(sys.executable).parent / "scrapy-do-migrate"
NO_PROXY = {"NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
#: The schedules of the first 0.5.0 session: all of them can be carried.
GOOD = [
    {"spider": "quick", "when": "every 10 minutes", "description": "ten minutes",
     "payload": '{"pages": 2, "label": "ünï"}'},
    {"spider": "slow", "when": "every monday at 12:00"},
]
#: 0.5.0 took it (schedule.every().day.to(3): every 1 to 3 days); ours says 'to' must come before the unit.
REFUSED_SPEC = "every day to 3"


def _unavailable():
    marker = ORIG_VENV / ".unavailable"
    if marker.exists():
        return f"Scrapy Do 0.5.0 could not be installed in {ORIG_VENV}: {marker.read_text().strip()}"
    if not (ORIG_VENV / "bin" / "scrapy-do").exists():
        return f"{ORIG_VENV}/bin/scrapy-do is missing: run `make install-orig` (`make test` does)"
    if shutil.which("unzip") is None:
        return "Scrapy Do 0.5.0 unpacks archives with the unzip command, which is missing (apt-get install unzip)"
    return None


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _call(url, path, fields=None, timeout=30):
    """(status, JSON answer) of one request; multipart POST when `fields` are given."""
    data, headers = None, {}
    if fields is not None:
        data, headers["Content-Type"] = multipart(fields)
    request = urllib.request.Request(url + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


class OldDaemon:
    """The 0.5.0 daemon on a store of its own, started and stopped as its users did."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.store = workdir / "store"
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.conf = workdir / "scrapy-do.conf"
        self.conf.write_text(f"[scrapy-do]\nproject-store = {self.store}\njob-slots = 2\ncompleted-cap = 50\n"
                             f"[web]\ninterfaces = 127.0.0.1:{self.port}\n")
        self.proc = None

    def start(self, timeout=30):
        # Its own venv first on PATH: 0.5.0 runs the `scrapy` it finds there. Nothing of ours on sys.path.
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env.update(NO_PROXY, PATH=f"{ORIG_VENV / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}")
        self.log = open(self.workdir / "orig-daemon.log", "ab")  # noqa: SIM115 -- closed in stop()
        self.proc = subprocess.Popen([str(ORIG_VENV / "bin" / "scrapy-do"), "-n", "scrapy-do", "--config",
                                      str(self.conf)], cwd=self.workdir, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the 0.5.0 daemon exited {self.proc.returncode}: {self._tail()}")
            try:
                if _call(self.url, "/status.json", timeout=2)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the 0.5.0 daemon did not answer within {timeout} s: {self._tail()}")

    def _tail(self):
        self.log.flush()
        return (self.workdir / "orig-daemon.log").read_text(errors="replace")[-3000:]

    def stop(self, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout)
        self.log.close()

    def post(self, path, **fields):
        code, body = _call(self.url, path, fields)
        assert code == 200 and body.get("status") == "ok", (path, fields, code, body, self._tail())
        return body

    def schedule(self, project, spider, when, **fields):
        return self.post("/schedule-job.json", project=project, spider=spider, when=when, **fields)["identifier"]

    def wait_job(self, identifier, statuses, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            code, body = _call(self.url, f"/list-jobs.json?id={identifier}")
            assert code == 200, body
            if body["jobs"][0]["status"] in statuses:
                return body["jobs"][0]
            time.sleep(0.2)
        raise AssertionError(f"0.5.0 job {identifier} did not reach {statuses}: {self._tail()}")


def _renamed(tmp, name):
    """The offline fixture as project `name` (its folder and its [deploy] project)."""
    dest = tmp / name
    shutil.copytree(OFFLINE, dest, ignore=shutil.ignore_patterns("__pycache__"))
    cfg = dest / "scrapy.cfg"
    cfg.write_text(cfg.read_text().replace("project = offline", f"project = {name}"))
    return dest


def _digest(folder):
    """{relative path: sha256} of every file below `folder`: proof that nothing was written there."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def old(tmp_path_factory):
    """Two 0.5.0 sessions on one store; the schedules they made, and `good`, a copy after the first."""
    reason = _unavailable()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("orig-store")
    daemon = OldDaemon(tmp)
    made = {"good_schedules": {}, "bad_schedules": {}}
    try:
        daemon.start()
        daemon.post("/push-project.json", archive=("offline.zip", zip_tree(OFFLINE)))
        for fields in GOOD:
            identifier = daemon.schedule("offline", **fields)
            made["good_schedules"][identifier] = {"description": "", "payload": "{}", **fields}
        run = daemon.schedule("offline", "quick", "now", payload='{"from": "0.5.0"}')
        assert daemon.wait_job(run, {"SUCCESSFUL", "FAILED"})["status"] == "SUCCESSFUL"
        daemon.stop()
        made["good"] = tmp / "good-store"
        shutil.copytree(daemon.store, made["good"])

        daemon.start()  # the same store again: 0.5.0 reloads its schedules
        daemon.post("/push-project.json", archive=("other.zip", zip_tree(_renamed(tmp, "other"))))
        made["bad_schedules"]["refused"] = daemon.schedule("offline", "quick", REFUSED_SPEC)
        made["bad_schedules"]["archive"] = daemon.schedule("other", "quick", "every 2 hours")
    finally:
        daemon.stop()
    (daemon.store / "other.zip").unlink()  # as if removed by hand: the project is listed, its code is gone
    made["full"] = daemon.store
    return made


@pytest.fixture(scope="module")
def new(tmp_path_factory, old):
    daemon = DaemonProcess(tmp_path_factory.mktemp("migrate-daemon")).start()
    yield daemon
    daemon.stop()


def migrate(daemon, *args, timeout=120):
    command = [str(MIGRATE)] if MIGRATE.exists() else [sys.executable, "-m", "scrapy_do.migrate"]
    return subprocess.run([*command, *map(str, args), "--url", daemon.url], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **NO_PROXY})


def schedules(daemon):
    code, body = daemon.get("/list-jobs.json", status="SCHEDULED")
    assert code == 200, body
    return {j["identifier"]: j for j in body["jobs"]}


def projects(daemon):
    code, body = daemon.get("/list-projects.json")
    assert code == 200, body
    return body["projects"]


def test_a_folder_that_is_no_store_exits_2_and_changes_nothing(new, tmp_path):
    """A folder without the 0.5.0 files exits 2 with one line naming what is missing, and the daemon stays empty."""
    (tmp_path / "notes.txt").write_text("not a store")
    proc = migrate(new, tmp_path)
    assert proc.returncode == 2, proc
    assert proc.stderr.count("\n") == 1 and "metadata.pkl" in proc.stderr and str(tmp_path) in proc.stderr, proc
    assert "Traceback" not in proc.stderr
    assert projects(new) == [] and schedules(new) == {}


def test_dry_run_says_what_would_be_carried_and_changes_nothing(new, old):
    """--dry-run lists the project and both schedules as to be carried, exits 0, and the daemon stays empty."""
    proc = migrate(new, old["good"], "--dry-run")
    assert proc.returncode == 0, proc
    assert "project offline: would be pushed" in proc.stdout, proc.stdout
    for identifier in old["good_schedules"]:
        assert f"would be scheduled as v050-{identifier}" in proc.stdout, proc.stdout
    assert projects(new) == [] and schedules(new) == {}


def test_migration_carries_the_project_and_its_schedules(new, old):
    """The project with its spiders and every 0.5.0 schedule (spec, spider, description, payload) arrive; the
    old store is not touched; exit 0."""
    before = _digest(old["good"])
    proc = migrate(new, old["good"])
    assert proc.returncode == 0, proc
    assert "summary: 3 carried, 0 already there, 0 not carried" in proc.stdout, proc.stdout
    assert "1 finished runs" in proc.stdout, proc.stdout  # the history is said to stay behind
    assert _digest(old["good"]) == before
    assert projects(new) == ["offline"]
    code, body = new.get("/list-spiders.json", project="offline")
    assert code == 200 and {"quick", "slow"} <= set(body["spiders"]), body
    carried = {j["name"]: j for j in schedules(new).values()}
    assert set(carried) == {f"v050-{i}" for i in old["good_schedules"]}
    for identifier, fields in old["good_schedules"].items():
        job = carried[f"v050-{identifier}"]
        assert (job["project"], job["spider"], job["schedule"], job["description"]) == \
            ("offline", fields["spider"], fields["when"], fields["description"]), job
        assert job["payload"] == fields["payload"], job  # the text 0.5.0 stored (it normalised it as written)


def test_a_second_migration_changes_nothing(new, old):
    """Run again, it finds the project and both schedules carried before, exits 0 and adds nothing."""
    before = schedules(new)
    proc = migrate(new, old["good"])
    assert proc.returncode == 0, proc
    assert "summary: 0 carried, 3 already there, 0 not carried" in proc.stdout, proc.stdout
    assert proc.stdout.count("carried before, as ") == 2, proc.stdout
    assert schedules(new) == before and projects(new) == ["offline"]


def test_the_migrated_project_runs(new, old):
    """A job of the migrated project, scheduled now, crawls to SUCCESSFUL with its payload."""
    identifier = new.schedule("offline", "quick", payload='{"after": "migration"}')
    job = new.wait_job(identifier, {"SUCCESSFUL", "FAILED", "CANCELED"}, timeout=60)
    assert job["status"] == "SUCCESSFUL", job
    with urllib.request.urlopen(f"{new.url}/get-log/data/{identifier}.out", timeout=30) as answer:
        assert json.loads(answer.read().decode().splitlines()[0])["payload"] == {"after": "migration"}


def test_what_cannot_be_carried_is_reported_and_the_rest_is_carried(new, old):
    """A spec our daemon refuses and a project whose archive is gone are reported as not carried, with why;
    what was carried before stays as it was; exit 1."""
    before = schedules(new)
    proc = migrate(new, old["full"])
    assert proc.returncode == 1, proc
    out = proc.stdout
    failed = out.split("NOT carried:\n", 1)[1].split("\nsummary:", 1)[0]
    assert "project other: its archive" in failed and "other.zip is missing" in failed, out
    refused = f"schedule {old['bad_schedules']['refused']} (offline/quick {REFUSED_SPEC!r}): the daemon refused it: 400"
    assert refused in failed and "'to'" in failed, out
    assert f"schedule {old['bad_schedules']['archive']} (other/quick 'every 2 hours'): its project other was not " \
           "carried" in failed, out
    assert "summary: 0 carried, 3 already there, 3 not carried" in out, out
    assert schedules(new) == before and projects(new) == ["offline"]
