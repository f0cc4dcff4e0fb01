"""Process launching with a fake process reactor: TERM, then KILL after the grace."""

import os
import sys

from twisted.internet import error
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from scrapy_do.domain.options import RunOptions
from scrapy_do.launchers.local import (
    LaunchSpec, ProcessLauncher, build_crawl_argv, crawl_arguments, crawl_environment, exit_code_of, format_handle,
    parse_handle,
)
from tests.helpers import result_of


class FakeTransport:
    def __init__(self, proto, pid=4242):
        self.proto = proto
        self.pid = pid
        self.signals = []
        self.stdin = b""
        self.stdin_closed = False

    def write(self, data):
        self.stdin += data

    def closeStdin(self):
        self.stdin_closed = True

    def signalProcess(self, name):
        if self.proto is None:
            raise error.ProcessExitedAlready()
        self.signals.append(name)

    def end(self, code=None, signal=None):
        proto, self.proto = self.proto, None
        reason = error.ProcessDone(0) if code == 0 else error.ProcessTerminated(code, signal)
        proto.processEnded(Failure(reason))


class ProcessClock(Clock):
    """A Clock that also records spawnProcess calls, like procmon's DummyProcessReactor."""

    def __init__(self):
        super().__init__()
        self.spawned = []
        self.pids = iter(range(2 ** 22 + 100, 2 ** 22 + 200))  # above pid_max: no real process is signalled

    def spawnProcess(self, proto, executable, args, env=None, path=None, childFDs=None, **kw):
        assert childFDs == {0: "w", 1: "r", 2: "r"}  # pipes the daemon holds; the crawl opens no log
        transport = FakeTransport(proto, pid=next(self.pids))
        self.spawned.append((executable, args, env, path, transport))
        return transport


def request(tmp_path):
    return LaunchSpec(job_id="j", options=RunOptions(spider="quick", payload='{"a": 1}'), cwd=str(tmp_path),
                         out_path=str(tmp_path / "j.out"), err_path=str(tmp_path / "j.err"),
                         env={"SPIDER_DATA_DIR": "/data"})


def test_crawl_argv_shows_the_spider_but_not_the_payload():
    """The visible command line names the spider; the payload goes on stdin, out of `ps`."""
    options = RunOptions(spider="s", payload='{"token": "secret"}')
    assert build_crawl_argv("/py", options) == ["/py", "-m", "scrapy_do.launchers.child", "crawl", "s"]
    assert crawl_arguments(options) == ["-a", 'payload={"token": "secret"}']


def test_launch_sends_the_payload_on_stdin_and_closes_it(tmp_path):
    """The crawl's remaining arguments are written to its stdin as JSON, which is then closed."""
    import json

    reactor = ProcessClock()
    ProcessLauncher(reactor, python="/py").launch(request(tmp_path))
    transport = reactor.spawned[0][-1]
    assert json.loads(transport.stdin) == {"args": ["-a", 'payload={"a": 1}']}
    assert transport.stdin_closed
    assert "payload" not in " ".join(reactor.spawned[0][1])


def test_crawl_environment_keeps_what_a_crawl_needs_and_drops_secrets():
    """Locale, PATH, proxies and Python settings pass; tokens and cloud keys of the daemon do not."""
    daemon_env = {"PATH": "/bin", "LANG": "C.UTF-8", "LC_ALL": "C", "https_proxy": "http://p:3128",
                  "PYTHONPATH": "/src", "AWS_SECRET_ACCESS_KEY": "k", "GITHUB_TOKEN": "t",
                  "SCRAPY_DO_AUTH": "x", "DATABASE_URL": "postgres://u:p@h/db"}
    env = crawl_environment(daemon_env, {"SPIDER_DATA_DIR": "/data"})
    assert env == {"PATH": "/bin", "LANG": "C.UTF-8", "LC_ALL": "C", "https_proxy": "http://p:3128",
                   "PYTHONPATH": "/src", "SPIDER_DATA_DIR": "/data"}


def test_launch_spawns_in_tree_with_env_and_creates_logs(tmp_path):
    """The crawl is told its project tree (it changes there itself) and SPIDER_DATA_DIR; logs exist up front."""
    reactor = ProcessClock()
    ProcessLauncher(reactor, python="/py", environ={"PATH": "/bin"}).launch(request(tmp_path))
    executable, args, env, path, _ = reactor.spawned[0]
    assert (executable, path, env["SCRAPY_DO_CWD"]) == ("/py", None, str(tmp_path))
    assert env["SPIDER_DATA_DIR"] == "/data" and env["PATH"] == "/bin"
    assert env["SCRAPY_DO_PARENT_PID"] == str(os.getpid())
    for name in ("j.out", "j.err"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o640


def test_stop_sends_term_then_kill_after_grace(tmp_path):
    """A crawl ignoring SIGTERM gets SIGKILL exactly when the grace period ends."""
    reactor = ProcessClock()
    crawl = result_of(ProcessLauncher(reactor, python=sys.executable).launch(request(tmp_path)))
    transport = reactor.spawned[0][-1]
    crawl.stop(10)
    assert transport.signals == ["TERM"]
    reactor.advance(9.9)
    assert transport.signals == ["TERM"]
    reactor.advance(0.1)
    assert transport.signals == ["TERM", "KILL"]
    transport.end(signal=9)
    assert crawl.ended.result == -9


def test_no_kill_when_crawl_ends_within_grace(tmp_path):
    """A crawl that stops on SIGTERM is not killed later, and no timer is left behind."""
    reactor = ProcessClock()
    crawl = result_of(ProcessLauncher(reactor, python=sys.executable).launch(request(tmp_path)))
    transport = reactor.spawned[0][-1]
    crawl.stop(10)
    transport.end(code=0)
    reactor.advance(20)
    assert transport.signals == ["TERM"]
    assert reactor.getDelayedCalls() == []
    assert crawl.ended.result == 0


def test_exit_codes_from_process_reasons():
    """Exit status N is N; death by signal N is -N."""
    assert exit_code_of(Failure(error.ProcessDone(0))) == 0
    assert exit_code_of(Failure(error.ProcessTerminated(3))) == 3
    assert exit_code_of(Failure(error.ProcessTerminated(None, 15))) == -15


def test_launch_error_is_a_failed_deferred_and_leaves_no_log_descriptor(tmp_path):
    """A crawl that cannot be spawned fails the launch's Deferred with LaunchError naming the spider."""
    from scrapy_do.errors import LaunchError

    class Refusing(ProcessClock):
        def spawnProcess(self, *a, **kw):
            raise OSError(24, "Too many open files")

    before = len(os.listdir("/proc/self/fd"))
    d = ProcessLauncher(Refusing(), python="/py").launch(request(tmp_path))
    failures = []
    d.addErrback(failures.append)
    assert failures and failures[0].check(LaunchError) and "'quick'" in failures[0].value.msg
    assert len(os.listdir("/proc/self/fd")) == before


def test_run_handle_round_trips_pid_and_creation_time():
    """A local run's handle names its pid and creation time, and parses back to both."""
    assert parse_handle(format_handle(4242, 1767322446.25)) == (4242, 1767322446.25, None)
    assert parse_handle(format_handle(7, 1.5, "/sys/fs/cgroup/x/j")) == (7, 1.5, "/sys/fs/cgroup/x/j")
    assert parse_handle("pid:7") == (7, None, None)
    assert parse_handle("ray:raysubmit_1") is None
    assert parse_handle("pid:x@y") is None


def test_reattach_never_signals_a_process_without_its_creation_time(tmp_path):
    """Re-attaching a handle without a creation time leaves the pid alone (it may be a stranger now)."""
    import subprocess

    stranger = subprocess.Popen(["sleep", "30"])
    try:
        d = ProcessLauncher(ProcessClock(), grace=0.1).reattach(f"pid:{stranger.pid}")
        assert result_of(d) is None
        assert stranger.poll() is None
        d = ProcessLauncher(ProcessClock(), grace=0.1).reattach(format_handle(stranger.pid, 12345.0))
        assert result_of(d) is None
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_reattach_stops_the_leftover_crawl_it_recognises(tmp_path):
    """A leftover whose pid and creation time match its handle is stopped; the job is run again."""
    import subprocess

    import psutil

    from scrapy_do.launchers.local import process_created

    leftover = subprocess.Popen(["sleep", "30"])
    try:
        handle = format_handle(leftover.pid, process_created(leftover.pid))
        assert result_of(ProcessLauncher(ProcessClock(), grace=2).reattach(handle)) is None
        assert not psutil.pid_exists(leftover.pid) or psutil.Process(leftover.pid).status() == "zombie"
    finally:
        if leftover.poll() is None:
            leftover.kill()
