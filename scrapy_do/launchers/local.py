"""The local launcher: crawls as child processes of the daemon, and short commands like `scrapy list`.

The reactor is passed in (IReactorProcess + IReactorTime), so tests can use a
fake one. A crawl's stdout and stderr are pipes: the daemon writes its logs
(see logfiles.py). Its arguments beyond the spider name (the payload) travel
on its stdin, not its command line, so `ps` does not show them; and it gets a
clean environment. Each crawl leads its own session and process group (and
sits in its own cgroup where the daemon can make one), so stopping it, which
is SIGTERM and then SIGKILL after a grace period as in twisted.runner.procmon,
reaches every process it started. A run's handle is
`pid:<pid>@<creation time>` (plus ` cgroup:<path>`): enough to recognise the
crawl after a restart, and never to mistake another process for it.
"""

import errno
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field

import psutil
from twisted.internet import defer, error, protocol, threads
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from scrapy_do.domain.options import RunOptions, command_value
from scrapy_do.errors import LaunchError
from scrapy_do.interfaces import ILauncher, ILogSource, IRun
from scrapy_do.launchers.cgroups import CrawlCgroups
from scrapy_do.launchers.logfiles import LogFile
from scrapy_do.launchers.warm import NotWarm, parent_environment

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
    #: Where and with what token the crawl reports its stats ({"url", "token", "interval"}), or None.
    report: dict | None = None
    #: The interpreter of the project's environment (its requirements.txt); None: the daemon's.
    python: str | None = None
    #: The project's name (a cluster keeps each project's data files in a folder of that name).
    project: str = ""


def build_crawl_argv(python, options):
    """The visible command line of a crawl: `python -m <child> crawl SPIDER` (what `ps` shows)."""
    return [python, "-m", CHILD_MODULE, "crawl", options.spider]


def list_spiders_command(python, user, environ, tree):
    """`scrapy list` runs the project's code too: (argv, env, stdin) to run it as a crawl would be run."""
    extra = {"SCRAPY_DO_CWD": str(tree)}
    if user is not None:
        extra.update(user.environment(), HOME="/nonexistent")
    return [python, "-m", CHILD_MODULE, "list"], crawl_environment(environ, extra), b'{"args": []}'


def crawl_arguments(options):
    """The rest of Scrapy's command line, sent to the child on its stdin (not visible in `ps`):
    `-a payload=...`, then `-a KEY=VALUE` per spider argument and `-s NAME=VALUE` per setting."""
    argv = ["-a", f"payload={options.payload}"]
    for key, value in options.args.items():
        argv += ["-a", f"{key}={command_value(value)}"]
    for name, value in options.settings.items():
        argv += ["-s", f"{name}={command_value(value)}"]
    return argv


#: What a crawl keeps of the daemon's environment: locale, paths, proxies and
#: certificates a spider needs, the interpreter's own settings, and preloads
#: (libfaketime in tests). Everything else (tokens, passwords, cloud keys) stays out.
ENV_NAMES = frozenset({
    "PATH", "HOME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "USER", "LOGNAME", "VIRTUAL_ENV",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
    "LD_PRELOAD", "LD_LIBRARY_PATH",
})
ENV_PREFIXES = ("LC_", "PYTHON", "FAKETIME")


def crawl_environment(environ, extra):
    env = {k: v for k, v in environ.items() if k in ENV_NAMES or k.startswith(ENV_PREFIXES)}
    env.setdefault("PATH", os.defpath)
    env.update(extra)
    return env


def format_handle(pid, created, cgroup=None):
    return f"pid:{pid}" + ("" if created is None else f"@{created!r}") + (f" cgroup:{cgroup}" if cgroup else "")


def parse_handle(handle):
    """(pid, creation time or None, cgroup or None) of a local handle; None if it is not one."""
    if not handle or not handle.startswith("pid:"):
        return None
    head, _, cgroup = handle[4:].partition(" cgroup:")
    pid, _, created = head.partition("@")
    try:
        return int(pid), (float(created) if created else None), (cgroup or None)
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


class CrawlProtocol(protocol.ProcessProtocol):
    """Copies the crawl's stdout and stderr into its log files; `ended` fires with its exit code.

    Processes the crawl started may hold its pipes open after it exited, and
    Twisted ends a process only once its pipes close: so when the crawl itself
    exits, `on_exit` kills what is left of it, which closes them.
    """

    def __init__(self, out, err):
        self.out = out
        self.err = err
        self.ended = defer.Deferred()
        self.on_exit = None

    def processExited(self, reason):
        if self.on_exit is not None:
            self.on_exit()

    def outReceived(self, data):
        self.out.write(data)

    def errReceived(self, data):
        self.err.write(data)

    def processEnded(self, reason):
        self.out.close()
        self.err.close()
        self.ended.callback(exit_code_of(reason))


def kill_group(pgid, sig):
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


@implementer(IRun)
class RunningCrawl:
    detached = False  # a child of the daemon: it stops with it (and would die with it anyway, see child.py)
    def __init__(self, reactor, transport, ended, logs=None, cgroups=None, cgroup=None):
        self._reactor = reactor
        self._transport = transport
        self.pid = transport.pid
        self.created = process_created(self.pid)
        self.cgroups = cgroups
        self.cgroup = cgroup
        self.handle = format_handle(self.pid, self.created, cgroup)
        self.ended = ended
        self._logs = logs
        self._kill_call = None
        self.exited = False
        ended.addBoth(self._on_end)

    def sweep(self):
        """What the crawl started dies with it: the rest of its process group and cgroup."""
        kill_group(self.pid, signal.SIGKILL)
        if self.cgroup is not None:
            self.cgroups.kill(self.cgroup)

    def _on_end(self, result):
        self.exited = True
        if self._kill_call is not None and self._kill_call.active():
            self._kill_call.cancel()
        self.sweep()
        if self.cgroup is not None:
            self._remove_cgroup([0.1, 0.5, 2.0, 10.0, 60.0])
        return result

    def _remove_cgroup(self, delays):
        """The cgroup can go once its killed members are gone; retry a few times, then leave it."""
        if not os.path.isdir(self.cgroup) or self.cgroups.remove(self.cgroup):
            return
        if delays:
            self.cgroups.kill(self.cgroup)
            self._reactor.callLater(delays[0], self._remove_cgroup, delays[1:])

    def signal(self, name):
        """Signal the crawl's whole process group (and, for KILL, its cgroup)."""
        if name == "KILL" and self.cgroup is not None:
            self.cgroups.kill(self.cgroup)
        if kill_group(self.pid, getattr(signal, f"SIG{name}")):
            return
        try:  # not its own group leader yet (it calls setsid first thing)
            self._transport.signalProcess(name)
        except error.ProcessExitedAlready:
            pass

    def logs(self):
        return self._logs

    def detach(self):
        """Never asked: a local crawl is not detached."""

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

    def __init__(self, reactor, python=sys.executable, environ=None, grace=5.0, log_limit=0, hub=None,
                 cgroups=None, user=None, warm=None):
        self._reactor = reactor
        #: The warmpool.WarmPool crawls fork from; None: every crawl starts cold.
        self.warm = warm
        #: The crawluser.CrawlUser crawls run as; None: the daemon's own user.
        self.user = user
        self.grace = grace
        self.python = python
        self.environ = dict(os.environ if environ is None else environ)
        self.log_limit = log_limit
        self.hub = hub
        self.cgroups = cgroups if cgroups is not None else CrawlCgroups(root=False)
        self._checked = False

    def _ready(self):
        if not self._checked:
            self._checked = True
            self.cgroups.open()

    def launch(self, request):
        if self.warm is not None and getattr(request.options, "warm", True):
            return self._launch_warm(request)
        try:
            return defer.succeed(self._spawn(request))
        except LaunchError:
            return defer.fail()

    def _in_thread(self, fn, *args):
        """Blocking work off the reactor thread (inline on a test clock, which has no threads)."""
        pool = getattr(self._reactor, "getThreadPool", None)
        if pool is None:
            return defer.maybeDeferred(fn, *args)
        return threads.deferToThreadPool(self._reactor, pool(), fn, *args)

    def reattach(self, handle, logs=None):
        """A crawl of a previous daemon cannot be followed: its parent died, so Linux sent it SIGTERM
        (see child.py) and its exit code goes to nobody. Make sure it is gone (in a thread: that may
        take twice the grace); the job runs again."""
        self._ready()
        parsed = parse_handle(handle)
        if parsed is None:
            return defer.succeed(None)
        return self._in_thread(self._stop_leftover, *parsed).addCallback(lambda _: None)

    def _stop_leftover(self, pid, created, cgroup):
        if kill_leftover(pid, created, grace=self.grace):
            kill_group(pid, signal.SIGKILL)
        if self.cgroups.owns(cgroup):
            self.cgroups.kill(cgroup)
            deadline = time.monotonic() + 2.0  # killed members take a moment to leave
            while not self.cgroups.remove(cgroup) and time.monotonic() < deadline:
                time.sleep(0.05)

    def collect_garbage(self, finished):
        """Remove the empty cgroups of crawls that ended just as a previous daemon stopped."""
        self._ready()
        for job_id in self.cgroups.children():
            if finished(job_id):
                self.cgroups.remove(self.cgroups.path(job_id))

    def _environment(self, request, cgroup):
        """The crawl's whole environment: the daemon's, filtered, plus what child.py is told."""
        own = {"SCRAPY_DO_PARENT_PID": str(os.getpid()), "SCRAPY_DO_CWD": request.cwd}
        if "SPIDER_DATA_DIR" in request.env:
            own["SCRAPY_DO_DATA"] = request.env["SPIDER_DATA_DIR"]  # where it runs (see child.py)
        if cgroup is not None:
            own["SCRAPY_DO_CGROUP"] = cgroup
        if self.user is not None:
            # A home of its own: the project's data directory, the one place the crawl may write.
            own.update(self.user.environment(), HOME=request.env.get("SPIDER_DATA_DIR", "/nonexistent"))
        return crawl_environment(self.environ, {**request.env, **own})

    def _open_logs(self, request, cgroup):
        logs = []
        try:
            for path in (request.out_path, request.err_path):
                logs.append(LogFile(path, self.log_limit, self.hub))
        except OSError as e:
            self._unwind(logs, cgroup)
            raise _launch_error(request, e) from None
        return logs

    def _unwind(self, logs, cgroup):
        for log_file in logs:
            log_file.close()
        if cgroup is not None:
            self.cgroups.remove(cgroup)

    def _spawn(self, request, logs=None, cgroup=None):
        """Start the crawl cold: a fresh interpreter running child.py."""
        self._ready()
        python = request.python or self.python
        argv = build_crawl_argv(python, request.options)
        # The child changes into the project tree itself: a spawn with a
        # different cwd would make Twisted fork the whole daemon instead of
        # using posix_spawn, which costs milliseconds per crawl.
        if logs is None:
            cgroup = self.cgroups.create(request.job_id)
            logs = self._open_logs(request, cgroup)
        env = self._environment(request, cgroup)
        try:
            proto = CrawlProtocol(*logs)
            transport = self._reactor.spawnProcess(proto, python, argv, env=env, path=None,
                                                   childFDs={0: "w", 1: "r", 2: "r"})
        except OSError as e:
            self._unwind(logs, cgroup)
            raise _launch_error(request, e) from None
        # The child enters its cgroup itself, first thing (moving a process
        # costs the mover ~10 ms of kernel locking: not on the reactor).
        sent = {"args": crawl_arguments(request.options)}
        if request.report:
            sent["report"] = request.report  # on stdin: the token is in no environment other crawls could read
        transport.write(json.dumps(sent).encode())
        transport.closeStdin()
        crawl = RunningCrawl(self._reactor, transport, proto.ended, LocalLogs(request.out_path, request.err_path),
                             self.cgroups, cgroup)
        proto.on_exit = crawl.sweep
        return crawl

    @defer.inlineCallbacks
    def _launch_warm(self, request):
        """Fork the crawl from its project version's warm parent (warmpool.py); start it cold, saying why in its
        .err, when that cannot be done."""
        self._ready()
        python = request.python or self.python
        try:
            warm = yield self.warm.parent(python, parent_environment(self.environ, request.cwd, self.user,
                                                                     request.env), request.project)
        except NotWarm as e:
            warm, why = None, e
        cgroup = self.cgroups.create(request.job_id)
        logs = self._open_logs(request, cgroup)
        if warm is not None:
            # A crawl user may not move itself out of its parent's cgroup: the daemon moves it, and it waits.
            gated = cgroup is not None and self.user is not None
            gate = os.pipe() if gated else None
            proto = CrawlProtocol(*logs)
            try:
                pid, _ = yield warm.start(request.job_id, request.options.spider, crawl_arguments(request.options),
                                          self._environment(request, None if gated else cgroup), request.report,
                                          proto, gate_fd=gate[0] if gate else None)
            except NotWarm as e:
                why = e
            else:
                crawl = RunningCrawl(self._reactor, _Forked(pid), proto.ended,
                                     LocalLogs(request.out_path, request.err_path), self.cgroups, cgroup)
                proto.on_exit = crawl.sweep
                if gate:
                    self._release(gate[1], cgroup, pid, logs[1])
                return crawl
            finally:
                if gate:
                    os.close(gate[0])
            if gate:
                os.close(gate[1])
        logs[1].write(f"scrapy-do: this crawl starts cold: {why}\n".encode())
        return self._spawn(request, logs, cgroup)

    def _release(self, gate, cgroup, pid, err):
        """Move a gated warm crawl into its cgroup, then let it go on: both in a thread (the move holds its
        writer ~7 ms in the kernel; the byte goes at once, not after a hop back to the reactor)."""
        def move():
            try:
                with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                    f.write(str(pid))
                return None
            except OSError as e:
                return e
            finally:
                try:
                    os.write(gate, b"1")
                except OSError:
                    pass  # it is gone already
                os.close(gate)

        def moved(problem):
            if problem is not None:
                err.write(f"scrapy-do: cannot move the crawl into cgroup {cgroup}: {problem}; its process group "
                          "still contains it\n".encode())

        self._in_thread(move).addCallback(moved)


def _launch_error(request, e):
    transient = e.errno in (errno.EMFILE, errno.ENFILE, errno.EAGAIN, errno.ENOMEM, errno.ENOSPC)
    return LaunchError(f"cannot start the crawl of {request.options.spider!r}: {e}", transient)


class _Forked:
    """What RunningCrawl needs of a warm crawl's process (forked by its warm parent, not by the daemon)."""

    def __init__(self, pid):
        self.pid = pid

    def signalProcess(self, name):
        try:
            os.kill(self.pid, getattr(signal, f"SIG{name}"))
        except ProcessLookupError:
            raise error.ProcessExitedAlready() from None


class _Collect(protocol.ProcessProtocol):
    """Keeps the start of stdout and the tail of stderr of a short command."""

    def __init__(self, limit, on_output=None):
        self.limit = limit
        self.out = bytearray()
        self.err = bytearray()
        self.done = defer.Deferred()
        self.on_output = on_output

    def outReceived(self, data):
        if self.on_output is not None:
            self.on_output(data)
        if len(self.out) < self.limit:
            self.out += data[: self.limit - len(self.out)]

    def errReceived(self, data):
        if self.on_output is not None:
            self.on_output(data)
        self.err += data
        if len(self.err) > self.limit:
            del self.err[: len(self.err) - self.limit]

    def processEnded(self, reason):
        self.done.callback(exit_code_of(reason))


@defer.inlineCallbacks
def run_command(reactor, argv, cwd, env, timeout, limit=1 << 20, stdin=b"", on_output=None, group=False):
    """Run `argv` with `stdin` to completion; fire (exit code, stdout, stderr tail, timed_out).

    `on_output(bytes)` hears each piece of its output as it comes (a build log written live); `group`: the
    command leads a process group, which a timeout kills whole."""
    proto = _Collect(limit, on_output)
    try:
        transport = reactor.spawnProcess(proto, argv[0], argv, env=env, path=cwd)
    except OSError as e:
        raise LaunchError(f"cannot run {argv[0]}: {e}") from None
    if stdin:
        transport.write(stdin)
    transport.closeStdin()
    timed_out = []

    def kill():
        timed_out.append(True)
        try:
            if group and transport.pid:
                os.killpg(transport.pid, signal.SIGKILL)
            else:
                transport.signalProcess("KILL")
        except (error.ProcessExitedAlready, ProcessLookupError):
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
