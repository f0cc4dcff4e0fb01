"""The real daemon under a fake systemd (a datagram socket as NOTIFY_SOCKET): READY=1 after recovery, the
watchdog, STOPPING=1, failed starts, crawls kept away from the socket, and `log-format = json`."""

import json
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import psutil
import pytest

from tests.helpers import offline_zip
from tests.integration.daemonproc import RECOVERED, DaemonProcess, wait_gone

pytestmark = pytest.mark.integration

CONF = "[scrapy-do]\njob-slots = 2\ncancel-grace = 1.5\n[web]\ninterfaces = 127.0.0.1:0\n"


class FakeSystemd:
    """The NOTIFY_SOCKET end: a datagram socket in a short temporary path; remembers when each message came."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []  # (monotonic time, text)

    def receive(self, timeout):
        """The next message within `timeout` seconds, or None."""
        self.sock.settimeout(max(timeout, 0.001))
        try:
            text = self.sock.recv(4096).decode()
        except TimeoutError:
            return None
        self.messages.append((time.monotonic(), text))
        return text

    def wait_for(self, line, timeout=20):
        """Receive until a message has the line `line`; the message (fails after `timeout`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.receive(deadline - time.monotonic())
            if text is not None and line in text.split("\n"):
                return text
        raise AssertionError(f"no {line} within {timeout} s; got {[m for _, m in self.messages]}")

    def lines(self):
        return [line for _, text in self.messages for line in text.split("\n")]


@pytest.fixture
def systemd(tmp_path_factory):
    fake = FakeSystemd(tmp_path_factory.mktemp("sd") / "notify")  # unix socket paths: at most 108 bytes
    yield fake
    fake.sock.close()


def job_handle(workdir, job_id):
    with sqlite3.connect(workdir / "projects" / "scrapy-do.db") as db:
        return db.execute("SELECT handle FROM runs WHERE identifier = ?", (job_id,)).fetchone()[0]


def crawl_pid(workdir, job_id):
    return int(job_handle(workdir, job_id)[4:].partition("@")[0])


def test_ready_only_once_the_port_listens_and_recovery_is_over(tmp_path, systemd):
    """A recovery held up by a leftover crawl keeps READY=1 back while status.json says 503; READY=1 then
    comes with status.json answering 200, and SIGTERM sends STOPPING=1."""
    first = DaemonProcess(tmp_path, CONF).start()
    first.push("offline.zip", offline_zip())
    job_id = first.schedule("offline", "slow")
    first.wait_job(job_id, {"RUNNING"})
    old = crawl_pid(tmp_path, job_id)
    first.stop(signal.SIGKILL)
    assert wait_gone(old)
    # A "crawl" the next start must stop first: it ignores SIGTERM, so recovery lasts cancel-grace seconds.
    leftover = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, "
                                 "signal.SIG_IGN); print('up', flush=True); time.sleep(60)"],
                                stdout=subprocess.PIPE)
    threading.Thread(target=leftover.wait, daemon=True).start()  # reaped at once when killed
    try:
        assert leftover.stdout.readline() == b"up\n"
        created = psutil.Process(leftover.pid).create_time()
        with sqlite3.connect(tmp_path / "projects" / "scrapy-do.db") as db:
            db.execute("UPDATE runs SET handle = ? WHERE identifier = ?", (f"pid:{leftover.pid}@{created!r}", job_id))

        daemon = DaemonProcess(tmp_path, CONF, env={"NOTIFY_SOCKET": systemd.path})
        daemon.runs = first.runs
        daemon.start(wait=False)
        deadline = time.monotonic() + 20
        while daemon.port_if_listening() is None:
            assert time.monotonic() < deadline and daemon.proc.poll() is None, daemon.err.read_text()
            assert systemd.receive(0.05) is None, "notified before the port listened"
        daemon.url = f"http://127.0.0.1:{daemon.port_if_listening()}"
        assert daemon.get("/status.json")[0] == 503  # still recovering: the leftover holds it up
        assert systemd.receive(0.5) is None, "READY=1 while recovering"
        ready = systemd.wait_for("READY=1")
        assert daemon.get("/status.json")[0] == 200
        assert RECOVERED.search(daemon.log.read_text())
        assert "STATUS=serving on 127.0.0.1:" in ready and "2 job slots" in ready
        assert not psutil.pid_exists(leftover.pid) or leftover.poll() is not None
        daemon.proc.send_signal(signal.SIGTERM)
        systemd.wait_for("STOPPING=1")
        assert daemon.proc.wait(30) == 0
        assert systemd.lines().count("READY=1") == 1
    finally:
        if leftover.poll() is None:
            leftover.kill()


def test_watchdog_is_fed_crawls_cannot_notify_and_sigterm_says_stopping(tmp_path, systemd):
    """With WATCHDOG_USEC=1 s WATCHDOG=1 comes every ~0.5 s, a crawl's environment has no NOTIFY_SOCKET or
    WATCHDOG_*, and SIGTERM sends STOPPING=1 before the daemon exits 0."""
    daemon = DaemonProcess(tmp_path, CONF, env={"NOTIFY_SOCKET": systemd.path, "WATCHDOG_USEC": "1000000"})
    daemon.start()
    systemd.wait_for("READY=1")
    daemon.push("offline.zip", offline_zip())
    job_id = daemon.schedule("offline", "slow")
    daemon.wait_job(job_id, {"RUNNING"})
    with open(f"/proc/{crawl_pid(tmp_path, job_id)}/environ", "rb") as f:
        crawl_env = dict(item.partition(b"=")[::2] for item in f.read().split(b"\0") if item)
    # The right process: the launcher gave it the daemon's pid. And nothing of systemd's.
    assert crawl_env[b"SCRAPY_DO_PARENT_PID"] == str(daemon.proc.pid).encode()
    assert not [name for name in crawl_env if name.startswith((b"NOTIFY_", b"WATCHDOG_"))], crawl_env.keys()

    start = time.monotonic()
    while time.monotonic() < start + 2.0:
        systemd.receive(start + 2.0 - time.monotonic())
    # The reactor keeps feeding it, on LoopingCall's half-second grid (4 in these 2 s when idle). How late a
    # busy machine may make one is a matter for timing, not for this test: it asks for most of them.
    fed = [t for t, text in systemd.messages if text == "WATCHDOG=1" and t >= start]
    assert len(fed) >= 3, fed
    gaps = [b - a for a, b in zip(fed, fed[1:])]
    assert 0.3 < sum(gaps) / len(gaps) < 0.9, gaps

    daemon.proc.send_signal(signal.SIGTERM)
    systemd.wait_for("STOPPING=1")
    assert daemon.proc.wait(30) == 0


@pytest.mark.parametrize("conf, reason", [
    ("[scrapy-do]\njob-slots = 0\n", "STATUS=cannot start: [scrapy-do] job-slots"),
    ("[web]\ninterfaces = 127.0.0.1:{busy}\n", "STATUS=cannot start: cannot listen on 127.0.0.1:"),
], ids=["bad-config", "busy-port"])
def test_failed_start_sends_its_reason_and_no_ready(tmp_path, systemd, conf, reason):
    """A bad configuration or a busy port sends STATUS=cannot start: <why>, never READY=1, and exits non-zero."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        daemon = DaemonProcess(tmp_path, conf.format(busy=busy.getsockname()[1]), env={"NOTIFY_SOCKET": systemd.path})
        daemon.start(wait=False)
        assert daemon.proc.wait(30) != 0
    while systemd.receive(0.2) is not None:
        pass
    lines = systemd.lines()
    assert "READY=1" not in lines and any(line.startswith(reason) for line in lines), lines


def test_twistd_form_notifies_too_and_logs_json(tmp_path, systemd):
    """`scrapy-do -n scrapy-do --config F` says READY=1 and STOPPING=1 too, and honours log-format = json."""
    daemon = DaemonProcess(tmp_path, CONF.replace("[web]", "log-format = json\n[web]"),
                           env={"NOTIFY_SOCKET": systemd.path})
    daemon.argv = ["-n", "--pidfile=", "scrapy-do", "--config", str(daemon.conf)]
    daemon.start()
    systemd.wait_for("READY=1")
    assert daemon.get("/status.json")[0] == 200
    daemon.proc.send_signal(signal.SIGTERM)
    systemd.wait_for("STOPPING=1")
    assert daemon.proc.wait(30) in (0, -signal.SIGTERM)  # plain twistd re-raises the signal it stopped on
    lines = daemon.log.read_text().splitlines()
    assert lines and all(json.loads(line)["message"] is not None for line in lines)


def test_json_log_format_writes_one_object_per_line(tmp_path):
    """With log-format = json every stdout line of the daemon, a warning too, is an object with time, level,
    namespace and message; the start-up lines tests look for still read as text inside it."""
    conf = "[scrapy-do]\nlog-format = json\nmax-log-size = 1000000G\n[web]\ninterfaces = 127.0.0.1:0\n"
    daemon = DaemonProcess(tmp_path, conf).start()  # waits for "available at http://127.0.0.1:PORT/"
    assert daemon.get("/status.json")[0] == 200
    assert daemon.stop() == 0
    lines = daemon.log.read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert all(set(r) >= {"time", "level", "namespace", "message"} for r in records), records
    assert all(r["time"].endswith("Z") for r in records)
    warning = [r for r in records if r["level"] == "warn" and "max-log-size" in r["message"]]
    assert warning and warning[0]["namespace"] == "scrapy_do.service", records
    ready = [r for r in records if "available at http://127.0.0.1:" in r["message"]]
    assert ready and ready[0]["fields"]["port"] == int(daemon.url.rsplit(":", 1)[1])
