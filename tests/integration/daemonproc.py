"""Run `scrapy-do` as a real subprocess and talk to it over HTTP (sync, bounded waits)."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from tests.helpers import multipart

READY = re.compile(r"available at http://127\.0\.0\.1:(\d+)/")
READY_HTTPS = re.compile(r"available at https://127\.0\.0\.1:(\d+)/")
#: Logged once recovery is over: status.json answers 200 from then on (503 before).
RECOVERED = re.compile(r"recovered; \d+ job slots ready")


#: `SCRAPY_DO_TEST_WARM_START=off` runs the tests' daemons with every crawl started cold (`make test` runs the
#: crawl tests once that way too); a test's own warm-start setting wins.
WARM_START = os.environ.get("SCRAPY_DO_TEST_WARM_START", "").strip().lower() != "off"


def cold_if_asked(conf_text):
    if WARM_START or "warm-start" in conf_text:
        return conf_text
    if "[scrapy-do]" in conf_text:
        return conf_text.replace("[scrapy-do]\n", "[scrapy-do]\nwarm-start = off\n", 1)
    return "[scrapy-do]\nwarm-start = off\n" + conf_text


class DaemonProcess:
    def __init__(self, workdir, conf_text="", argv=None, env=None, preexec_fn=None, prefix=()):
        """`env` (optional) holds variables added to the inherited environment of each start;
        `preexec_fn` (optional) runs in the child before the daemon starts (e.g. to set an rlimit);
        `prefix` (optional) is a command the daemon runs under (e.g. setpriv)."""
        self.workdir = workdir
        self.conf = workdir / "scrapy-do.conf"
        self.conf.write_text(cold_if_asked(conf_text or "[scrapy-do]\njob-slots = 2\ncancel-grace = 5\n"
                                                         "[web]\ninterfaces = 127.0.0.1:0\n"))
        self.argv = argv or ["--config", str(self.conf)]
        self.proc = None
        self.url = None
        self.runs = 0
        self.env = env
        self.preexec_fn = preexec_fn
        self.prefix = list(prefix)

    def start(self, wait=True):
        self.runs += 1
        self.log = self.workdir / f"daemon-{self.runs}.log"
        self.err = self.workdir / f"daemon-{self.runs}.err"
        with open(self.log, "wb") as out, open(self.err, "wb") as err:
            env = None if self.env is None else {**os.environ, **self.env}
            self.proc = subprocess.Popen([*self.prefix, sys.executable, "-m", "scrapy_do", *self.argv], cwd=self.workdir,
                                         stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env,
                                         preexec_fn=self.preexec_fn)
        if wait:
            self.url = f"http://127.0.0.1:{self.wait_ready()}"
        return self

    def port_if_listening(self):
        """The port once the daemon listens (it may still be recovering), else None."""
        m = READY.search(self.log.read_text()) if self.log.exists() else None
        return int(m.group(1)) if m else None

    def wait_ready_https(self, timeout=30):
        return self.wait_ready(timeout, READY_HTTPS)

    def wait_ready(self, timeout=30, pattern=READY):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log.read_text()
            m = pattern.search(text)
            if m and RECOVERED.search(text):
                return int(m.group(1))
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}: {self.err.read_text()}"
                                     f"{self.log.read_text()[-2000:]}")
            time.sleep(0.05)
        raise AssertionError("daemon did not start listening in time")

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout)
        return self.proc.returncode

    def request(self, path, fields=None, method=None):
        data, headers = None, {}
        if fields is not None:
            data, ctype = multipart(fields)
            headers["Content-Type"] = ctype
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def get(self, path, **params):
        query = ("?" + urllib.parse.urlencode(params)) if params else ""
        return self.request(path + query)

    def push(self, archive_name, data):
        code, body = self.request("/push-project.json", {"archive": (archive_name, data)})
        assert code == 200, body
        return body

    def schedule(self, project, spider, **fields):
        """Schedule a job (fields as schedule-job.json takes them); its identifier."""
        code, body = self.request("/schedule-job.json", {"project": project, "spider": spider, **fields})
        assert code == 200, body
        return body["identifier"]

    def job(self, identifier):
        code, body = self.get("/list-jobs.json", id=identifier)
        assert code == 200, body
        return body["jobs"][0]

    def wait_job(self, identifier, statuses, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(identifier)
            if job["status"] in statuses:
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {identifier} never reached {statuses}: {job}")


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone between the signal and the read (ESRCH)
        return False


def wait_until(predicate, timeout=20, what="the condition", interval=0.05):
    """`predicate()`'s first true value, looked at every `interval` s; AssertionError naming `what` after
    `timeout` s, so a test that waits on the daemon fails instead of hanging."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} ({timeout} s)")


def wait_gone(pid, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False
