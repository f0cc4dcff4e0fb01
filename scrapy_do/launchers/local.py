"""The local launcher: crawls as child processes of the daemon, and short commands like `scrapy list`.

The reactor is passed in (IReactorProcess + IReactorTime), so tests can use a
fake one. Crawl output goes straight from the child to its log files (the
daemon holds no pipe and copies no byte), and stopping a process is SIGTERM,
then SIGKILL after a grace period, like twisted.runner.procmon. A run's
handle is `pid:<pid>@<creation time>`: enough to recognise the process after
a restart, and never to mistake another process for it.
"""

import os
import signal
import sys
from dataclasses import dataclass, field

import psutil
from twisted.internet import defer, error, protocol
from twisted.logger import Logger
from zope.interface import implementer

from scrapy_do.domain.options import RunOptions
from scrapy_do.errors import LaunchError
from scrapy_do.interfaces import ILauncher, ILogSource, IRun

log = Logger(namespace="scrapy_do.launchers.local")

#: The module the child runs; it arms a parent-death signal, then runs Scrapy.
CHILD_MODULE = "scrapy_do.launchers.child"


@dataclass(frozen=True)
class LaunchSpec:
    """Everything a launcher needs to start one run."""

    job_id: str
    options: RunOptions
    cwd: str
    out_path: str
    err_path: str
    env: dict = field(default_factory=dict)


def build_crawl_argv(python, options):
    """The command line of a crawl: `python -m scrapy crawl SPIDER -a payload=...` via our child wrapper."""
    return [python, "-m", CHILD_MODULE, "crawl", options.spider, "-a", f"payload={options.payload}"]


def format_handle(pid, created):
    return f"pid:{pid}" + ("" if created is None else f"@{created!r}")


def parse_handle(handle):
    """(pid, creation time or None) of a local handle; None if it is not one."""
    if not handle or not handle.startswith("pid:"):
        return None
    pid, _, created = handle[4:].partition("@")
    try:
        return int(pid), (float(created) if created else None)
    except ValueError:
        return None


@implementer(ILogSource)
class LocalLogs:
    def __init__(self, out_path, err_path):
        self._paths = {"out": out_path, "err": err_path}

    def path(self, kind):
        return self._paths[kind]


def exit_code_of(reason):
    """Exit status from a processEnded reason; a signal N becomes -N, like subprocess."""
    value = reason.value
    if getattr(value, "exitCode", None) is not None:
        return value.exitCode
    if getattr(value, "signal", None) is not None:
        return -value.signal
    return 0 if isinstance(value, error.ProcessDone) else -1


def process_created(pid):
    """Creation time of `pid`, to tell it from a later process reusing the number."""
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


class _Ended(protocol.ProcessProtocol):
    def __init__(self):
        self.ended = defer.Deferred()

    def processEnded(self, reason):
        self.ended.callback(exit_code_of(reason))


@implementer(IRun)
class RunningCrawl:
    def __init__(self, reactor, transport, ended, logs=None):
        self._reactor = reactor
        self._transport = transport
        self.pid = transport.pid
        self.created = process_created(self.pid)
        self.handle = format_handle(self.pid, self.created)
        self.ended = ended
        self._logs = logs
        self._kill_call = None
        self.exited = False
        ended.addBoth(self._on_end)

    def _on_end(self, result):
        self.exited = True
        if self._kill_call is not None and self._kill_call.active():
            self._kill_call.cancel()
        return result

    def signal(self, name):
        try:
            self._transport.signalProcess(name)
        except error.ProcessExitedAlready:
            pass

    def logs(self):
        return self._logs

    def stop(self, grace):
        """SIGTERM now (Scrapy's graceful stop), SIGKILL after `grace` seconds."""
        if self.exited:
            return self.ended
        self.signal("TERM")
        if self._kill_call is None:
            self._kill_call = self._reactor.callLater(grace, self.signal, "KILL")
        return self.ended


@implementer(ILauncher)
class ProcessLauncher:
    """Runs each crawl as a child of the daemon's own interpreter."""

    def __init__(self, reactor, python=sys.executable, environ=None, grace=5.0):
        self._reactor = reactor
        self.grace = grace
        self.python = python
        self.environ = dict(os.environ if environ is None else environ)

    def launch(self, request):
        try:
            return defer.succeed(self._spawn(request))
        except LaunchError:
            return defer.fail()

    def reattach(self, handle):
        """A crawl of a previous daemon cannot be followed: its parent died, so Linux sent it SIGTERM
        (see child.py) and its exit code goes to nobody. Make sure it is gone; the job runs again."""
        parsed = parse_handle(handle)
        if parsed is not None:
            kill_leftover(*parsed, grace=self.grace)
        return defer.succeed(None)

    def _spawn(self, request):
        argv = build_crawl_argv(self.python, request.options)
        # The child changes into the project tree itself: a spawn with a
        # different cwd would make Twisted fork the whole daemon instead of
        # using posix_spawn, which costs milliseconds per crawl.
        env = {**self.environ, **request.env, "SCRAPY_DO_PARENT_PID": str(os.getpid()),
               "SCRAPY_DO_CWD": request.cwd}
        fds = []
        try:
            fds.append(os.open(os.devnull, os.O_RDONLY))
            for path in (request.out_path, request.err_path):
                fds.append(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
            proto = _Ended()
            transport = self._reactor.spawnProcess(
                proto, self.python, argv, env=env, path=None,
                childFDs={0: fds[0], 1: fds[1], 2: fds[2]},
            )
        except OSError as e:
            raise LaunchError(f"cannot start the crawl of {request.options.spider!r}: {e}") from None
        finally:
            for fd in fds:
                os.close(fd)
        return RunningCrawl(self._reactor, transport, proto.ended, LocalLogs(request.out_path, request.err_path))


class _Collect(protocol.ProcessProtocol):
    """Keeps the start of stdout and the tail of stderr of a short command."""

    def __init__(self, limit):
        self.limit = limit
        self.out = bytearray()
        self.err = bytearray()
        self.done = defer.Deferred()

    def outReceived(self, data):
        if len(self.out) < self.limit:
            self.out += data[: self.limit - len(self.out)]

    def errReceived(self, data):
        self.err += data
        if len(self.err) > self.limit:
            del self.err[: len(self.err) - self.limit]

    def processEnded(self, reason):
        self.done.callback(exit_code_of(reason))


@defer.inlineCallbacks
def run_command(reactor, argv, cwd, env, timeout, limit=1 << 20):
    """Run `argv` to completion; fire (exit code, stdout, stderr tail, timed_out)."""
    proto = _Collect(limit)
    try:
        transport = reactor.spawnProcess(proto, argv[0], argv, env=env, path=cwd)
    except OSError as e:
        raise LaunchError(f"cannot run {argv[0]}: {e}") from None
    timed_out = []

    def kill():
        timed_out.append(True)
        try:
            transport.signalProcess("KILL")
        except error.ProcessExitedAlready:
            pass

    timer = reactor.callLater(timeout, kill)
    code = yield proto.done
    if timer.active():
        timer.cancel()
    return code, bytes(proto.out), bytes(proto.err), bool(timed_out)


def kill_leftover(pid, created, grace=5.0):
    """Stop a crawl a dead daemon left behind, if `pid` is provably still that process.

    Without a recorded creation time the pid may belong to a stranger by now:
    it is left alone. Runs at start-up, before any crawl starts.
    """
    if not pid or created is None:
        return False
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - created) > 0.05:
            return False
        proc.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs([proc], timeout=grace)
        for p in alive:
            p.kill()
        psutil.wait_procs(alive, timeout=grace)
    except psutil.Error:
        return False
    log.info("stopped crawl process {pid} left over from a previous run", pid=pid)
    return True
