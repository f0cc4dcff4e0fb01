"""The local launcher's warm parents (issue 17): one per project version, forked per crawl.

warm.py is the protocol's client and warmparent.py the parent's side; this
module keeps the parents in the reactor: spawned with Twisted, the control
socket and each crawl's stdout/stderr pipes read as the reactor's
descriptors, nothing blocking. A crawl is presented to the launcher exactly
as a spawned process would be (a CrawlProtocol hears its output, its exit
and its end), so local.py runs warm and cold crawls through the same
RunningCrawl.

What a user relies on:

- At most `limit` parents are kept, least recently used retired first; a
  parent idle for `idle` seconds is retired; pushing a version retires the
  project's older parents. A retired parent exits once its last crawl ended.
- A parent that says its project cannot be warm (threads, sockets... at
  import) is remembered: that version's crawls start cold, saying why.
- A parent that dies (kill -9) is replaced at once, unless it keeps dying
  (MAX_DEATHS): then its version starts cold. Jobs waiting for it start cold;
  its running crawls got SIGTERM from their parent-death signal and are
  killed after the grace period if they do not end.
"""

import collections
import os
import signal
import socket

from twisted.internet import abstract, defer, error, fdesc, protocol
from twisted.internet.interfaces import IReadDescriptor
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from scrapy_do.launchers.warm import PARENT_MODULE, NotWarm, WarmParent
from scrapy_do.launchers.warmparent import interpreter_environment, rss_kib

log = Logger(namespace="scrapy_do.launchers.warm")

#: How long a parent may take to import the project (a hung import must not hold jobs for ever).
READY_TIMEOUT = 120.0
#: How long a ready parent may take to answer a start with the crawl's pid (it forks at once).
STARTED_TIMEOUT = 10.0
#: A version whose parent died this often is started cold (something kills it, or it crashes).
MAX_DEATHS = 3
#: The child's descriptor of the control socket.
CONTROL_FD = 3


class PipeReader(abstract.FileDescriptor):
    """The daemon's end of a warm crawl's stdout or stderr pipe (as Twisted reads a spawned process's)."""

    def __init__(self, reactor, fd, received, closed):
        abstract.FileDescriptor.__init__(self, reactor)
        fdesc.setNonBlocking(fd)
        self.fd = fd
        self._received = received
        self._closed = closed
        self.startReading()

    def fileno(self):
        return self.fd

    def doRead(self):
        return fdesc.readFromFD(self.fd, self._received)

    def connectionLost(self, reason):
        abstract.FileDescriptor.connectionLost(self, reason)
        self.close()
        self._closed()

    def close(self):
        """Stop reading and close the pipe, telling nobody (a start that did not happen)."""
        self.stopReading()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _reason(status):
    """A process end as Twisted reports it, from an exit code (or -N for signal N)."""
    if status == 0:
        return Failure(error.ProcessDone(0))
    if status < 0:
        return Failure(error.ProcessTerminated(signal=-status))
    return Failure(error.ProcessTerminated(exitCode=status))


class WarmOutput:
    """One forked crawl seen as a process: its two pipes feed `proto` (a CrawlProtocol); it has ended when
    both pipes closed and its exit status came (or its parent died without telling it)."""

    def __init__(self, reactor, proto, out_fd, err_fd):
        self.proto = proto
        self.pid = None
        self.status = None
        self.orphaned = False
        self._open = 2
        self._done = False
        self._readers = [PipeReader(reactor, out_fd, proto.outReceived, self._pipe_closed),
                         PipeReader(reactor, err_fd, proto.errReceived, self._pipe_closed)]

    def exited(self, status):
        self.status = status
        self.proto.processExited(_reason(status))
        self._maybe_end()

    def lost_parent(self):
        """Its parent died before reaping it: the crawl got SIGTERM (parent-death signal); its status is unknown."""
        if self._done or self.status is not None:
            return
        self.orphaned = True
        self.status = -15
        self.proto.err.write(b"\nscrapy-do: the warm parent of this crawl died, which sent the crawl SIGTERM; "
                             b"its exit status is unknown\n")
        self._maybe_end()

    @property
    def done(self):
        """Whether it has ended (its protocol heard processEnded); read-only, for WarmPool.orphaned's late kill."""
        return self._done

    def abort(self):
        for reader in self._readers:
            reader.close()

    def _pipe_closed(self):
        self._open -= 1
        self._maybe_end()

    def _maybe_end(self):
        if not self._done and self._open == 0 and self.status is not None:
            self._done = True
            self.proto.processEnded(_reason(self.status))


class _ParentOutput(protocol.ProcessProtocol):
    """The warm parent process itself: its own output goes to the daemon's log; its end is the pool's news."""

    def __init__(self, warm):
        self.warm = warm
        self._said = 0

    def outReceived(self, data):
        self.errReceived(data)

    def errReceived(self, data):
        if self._said > 64 << 10:  # a parent that talks this much has said what matters
            return
        self._said += len(data)
        for line in data.decode("utf-8", "replace").splitlines():
            if line.strip():
                log.info("warm parent {pid} of {project}: {line}", pid=self.warm.pid, project=self.warm.project,
                         line=line)

    def processEnded(self, reason):
        self.warm.ended(reason)


@implementer(IReadDescriptor)
class _Channel:
    """The control socket as a reactor reader: each readable turn applies the parent's messages."""

    def __init__(self, warm):
        self.warm = warm

    def fileno(self):
        return self.warm.client.control.fileno()

    def doRead(self):
        self.warm.client.read_events(0)
        if not self.warm.client.alive:
            return error.ConnectionDone()
        return None

    def connectionLost(self, reason):
        self.warm.channel_lost()

    def logPrefix(self):
        return "warm-parent"


class _Process:
    """What WarmParent needs of its process (pid, signals), over a Twisted process transport."""

    def __init__(self, transport):
        self.transport = transport

    @property
    def pid(self):
        return self.transport.pid

    def send_signal(self, sig):
        if self.transport.pid is None:
            raise ProcessLookupError
        os.kill(self.transport.pid, sig)


class Warm:
    """One warm parent as the pool keeps it: starting, ready, retiring or gone."""

    def __init__(self, pool, key, python, env, project):
        self.pool = pool
        self.key = key
        self.python = python
        self.env = env
        self.project = project
        self.state = "starting"
        self.reason = None
        self.ready_info = {}
        self.outputs = {}  # job id -> WarmOutput of its running crawls
        self._waiting = []  # Deferreds of starts waiting for readiness
        self._pending = {}  # job id -> Deferred of its pid
        self._timers = {}
        self._idle = None
        self._closing = False
        #: Fires when the parent process has ended.
        self.finished = defer.Deferred()
        reactor = pool.reactor
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.transport = reactor.spawnProcess(
                _ParentOutput(self), python, [python, "-m", PARENT_MODULE, str(CONTROL_FD), project or "-", env.get("SCRAPY_DO_CWD") or "-"], env=env, path=None,
                childFDs={0: "w", 1: "r", 2: "r", CONTROL_FD: theirs.fileno()})
        except OSError as e:
            ours.close()
            raise NotWarm(f"cannot start a warm parent: {e}") from None
        finally:
            theirs.close()
        self.transport.closeStdin()
        ours.setblocking(False)
        self.pid = self.transport.pid
        self.client = WarmParent(_Process(self.transport), ours, on_event=self._event)
        self._channel = _Channel(self)
        reactor.addReader(self._channel)
        self._timers["ready"] = reactor.callLater(READY_TIMEOUT, self._misbehaved,
                                                  f"it did not get ready within {READY_TIMEOUT:g} s")

    @property
    def live(self):
        return self.state in ("starting", "ready")

    def when_ready(self):
        if self.state == "ready":
            return defer.succeed(self)
        if self.state != "starting":
            return defer.fail(NotWarm(self.reason or "the warm parent is retiring"))
        d = defer.Deferred()
        self._waiting.append(d)
        return d

    def start(self, job_id, spider, args, env, report, proto, gate_fd=None):
        """Ask for a crawl whose output `proto` hears; a Deferred of (its pid, its WarmOutput), or NotWarm."""
        if self.state != "ready":
            return defer.fail(NotWarm(self.reason or "the warm parent is retiring"))
        try:
            out_r, out_w = os.pipe()
        except OSError as e:
            return defer.fail(NotWarm(f"cannot make its pipes: {e}"))
        try:
            err_r, err_w = os.pipe()
        except OSError as e:
            os.close(out_r)
            os.close(out_w)
            return defer.fail(NotWarm(f"cannot make its pipes: {e}"))
        try:
            self.client.request(job_id, spider, args, env, out_w, err_w, report=report, gate_fd=gate_fd)
        except NotWarm as e:
            for fd in (out_r, err_r):
                os.close(fd)
            self._misbehaved(str(e))
            return defer.fail(e)
        finally:
            os.close(out_w)  # the parent has its copies; the crawl's end closes the last write ends
            os.close(err_w)
        self._cancel_idle()
        output = self.outputs[job_id] = WarmOutput(self.pool.reactor, proto, out_r, err_r)
        d = self._pending[job_id] = defer.Deferred()
        self._timers[job_id] = self.pool.reactor.callLater(STARTED_TIMEOUT, self._misbehaved,
                                                           f"it did not fork a crawl within {STARTED_TIMEOUT:g} s")
        return d.addCallback(lambda pid: (pid, output))

    def _event(self, event):
        kind = event.get("event")
        if kind == "ready":
            self._stop_timer("ready")
            self.state = "ready"
            self.ready_info = event
            log.info("warm parent {pid} of {project} is ready ({modules} modules, {rss} MiB, {s} s)", pid=self.pid,
                     project=self.project, modules=event.get("modules"), rss=round((event.get("rss_kib") or 0) / 1024),
                     s=event.get("warmup_s"))
            waiting, self._waiting = self._waiting, []
            for d in waiting:
                d.callback(self)
            self._arm_idle()
        elif kind == "cold":
            self.reason = f"the project cannot be warm: {event.get('reason')}"
            self.pool.refuse(self.key, self.reason)
            log.info("project {project} starts its crawls cold: {reason}", project=self.project,
                     reason=event.get("reason"))
            self.close()
        elif kind in ("started", "refused"):
            ident = event.get("id")
            self._stop_timer(ident)
            d = self._pending.pop(ident, None)
            if kind == "started":
                output = self.outputs.get(ident)
                if output is not None:
                    output.pid = event["pid"]
                if d is not None:
                    d.callback(event["pid"])
            else:
                output = self.outputs.pop(ident, None)
                if output is not None:
                    output.abort()
                if d is not None:
                    d.errback(NotWarm(f"the warm parent refused it: {event.get('reason')}"))
                self._arm_idle()
        elif kind == "exit":
            output = self.outputs.pop(event.get("id"), None)
            if output is not None:
                output.exited(event["status"])
            self._arm_idle()

    def _stop_timer(self, name):
        timer = self._timers.pop(name, None)
        if timer is not None and timer.active():
            timer.cancel()

    def _misbehaved(self, why):
        self._timers.clear()
        log.warn("warm parent {pid} of {project} is killed: {why}", pid=self.pid, project=self.project, why=why)
        self.reason = f"the warm parent misbehaved ({why})"
        self.client.kill()

    def _arm_idle(self):
        if self.state == "ready" and not self.outputs and not self._pending:
            self._cancel_idle()
            self._idle = self.pool.reactor.callLater(self.pool.idle, self.retire, "idle")
        elif self.state == "retiring" and not self.outputs and not self._pending:
            self.close()

    def _cancel_idle(self):
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None

    def retire(self, why):
        """Start nothing more; exit once the last crawl ended."""
        if not self.live:
            return
        log.info("warm parent {pid} of {project} retires ({why})", pid=self.pid, project=self.project, why=why)
        self._cancel_idle()
        self.state = "retiring"
        self.reason = f"the warm parent retired ({why})"
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.errback(NotWarm(self.reason))
        self.pool.retired(self)
        if self.outputs or self._pending:
            try:
                self.client.retire()
            except NotWarm:
                pass
        else:
            self.close()

    def close(self):
        """Close the channel: the parent exits at once (crawls still running get SIGTERM from it)."""
        self._closing = True
        if self.state in ("starting", "ready"):
            self.state = "retiring"
        self._shut()

    def _shut(self):
        self._cancel_idle()
        if self.client.control.fileno() >= 0:
            self.pool.reactor.removeReader(self._channel)
            self.client.control.close()
        self.client.alive = False

    def channel_lost(self):
        """The parent closed its end (it died, most likely): its process's end says the rest."""
        self._shut()

    def ended(self, reason):
        """The parent process ended: whatever waited on it starts cold; its crawls are orphans now."""
        expected = self._closing or self.state == "retiring"
        self._shut()
        self.state = "gone"
        self._cancel_idle()
        for name in list(self._timers):
            self._stop_timer(name)
        why = self.reason or f"the warm parent died ({reason.getErrorMessage()})"
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.errback(NotWarm(why))
        pending, self._pending = self._pending, {}
        for ident, d in pending.items():
            output = self.outputs.pop(ident, None)
            if output is not None:
                output.abort()
            d.errback(NotWarm(why))
        outputs, self.outputs = self.outputs, {}
        for output in outputs.values():
            output.lost_parent()
            if output.orphaned and output.pid:
                self.pool.orphaned(output)
        self.pool.gone(self, expected)
        self.finished.callback(None)

    def describe(self):
        rss = rss_kib(self.pid) if self.state != "gone" else None
        return {"project": self.project, "pid": self.pid, "state": self.state, "crawls": len(self.outputs),
                "rss": (rss or 0) * 1024}


class WarmPool:
    """The warm parents of a ProcessLauncher; `parent()` gives the ready one of a project version."""

    def __init__(self, reactor, limit=4, idle=900.0, grace=10.0):
        self.reactor = reactor
        self.limit = limit
        self.idle = idle
        self.grace = grace
        self.parents = collections.OrderedDict()  # key -> live Warm, least recently used first
        self.leaving = set()  # retiring parents, until they are gone
        self.cold = {}  # key -> why that version starts cold
        self.deaths = collections.Counter()
        self._closed = False

    @staticmethod
    def key_of(python, env):
        """What a warm parent is made for: the interpreter, the tree, the data directory, the crawl user and the
        interpreter's own settings (read once, at its start)."""
        return (python, env.get("SCRAPY_DO_CWD"), env.get("SCRAPY_DO_DATA"), env.get("SCRAPY_DO_CRAWL_USER"),
                tuple(sorted(interpreter_environment(env).items())))

    def parent(self, python, env, project):
        """A Deferred of the ready warm parent for this project version (started if need be), or NotWarm."""
        if self._closed:
            return defer.fail(NotWarm("the daemon is stopping"))
        key = self.key_of(python, env)
        if key in self.cold:
            return defer.fail(NotWarm(self.cold[key]))
        for other in [w for k, w in self.parents.items() if w.project == project and k != key]:
            other.retire("a newer version of the project runs")
        warm = self.parents.get(key)
        if warm is None:
            if self.limit <= 0:
                return defer.fail(NotWarm("warm-parents = 0"))
            while len(self.parents) >= self.limit:
                next(iter(self.parents.values())).retire("warm-parents are all taken")
            try:
                warm = self.parents[key] = Warm(self, key, python, env, project)
            except NotWarm as e:
                return defer.fail(e)
        self.parents.move_to_end(key)
        return warm.when_ready()

    def refuse(self, key, reason):
        self.cold[key] = reason

    def retired(self, warm):
        if self.parents.get(warm.key) is warm:
            del self.parents[warm.key]
        self.leaving.add(warm)

    def gone(self, warm, expected):
        self.leaving.discard(warm)
        if self.parents.get(warm.key) is warm:
            del self.parents[warm.key]
        if expected or self._closed or warm.key in self.cold:
            return
        self.deaths[warm.key] += 1
        if self.deaths[warm.key] >= MAX_DEATHS:
            self.refuse(warm.key, f"its warm parent died {MAX_DEATHS} times")
            log.warn("project {project} starts its crawls cold: its warm parent died {n} times",
                     project=warm.project, n=MAX_DEATHS)
            return
        log.warn("warm parent {pid} of {project} died; starting another", pid=warm.pid, project=warm.project)
        if warm.key not in self.parents and len(self.parents) < self.limit:
            try:
                self.parents[warm.key] = Warm(self, warm.key, warm.python, warm.env, warm.project)
            except NotWarm as e:
                log.warn("{e}", e=e)

    def orphaned(self, output):
        """A crawl whose parent died got SIGTERM; it is killed if it has not ended after the grace period."""
        from scrapy_do.launchers.local import kill_group  # local.py imports this module

        pid = output.pid
        self.reactor.callLater(self.grace, lambda: None if output.done else kill_group(pid, signal.SIGKILL))

    def count(self):
        return len(self.parents) + len(self.leaving)

    def describe(self):
        """What status.json shows: each parent with its state, running crawls and resident memory (bytes)."""
        return [w.describe() for w in [*self.parents.values(), *self.leaving]]

    def close(self, timeout=None):
        """Stop every parent: those without crawls at once, the others when their crawls ended (the controller
        stops those); a Deferred firing once all are gone or `timeout` passed."""
        self._closed = True
        everyone = [*self.parents.values(), *self.leaving]
        if not everyone:
            return defer.succeed(None)
        finished = defer.DeferredList([w.finished for w in everyone])
        for warm in everyone:
            warm.retire("the daemon stops")
        timeout = self.grace + 5.0 if timeout is None else timeout  # the controller's SIGKILL comes after grace
        timer = self.reactor.callLater(timeout, lambda: [w.client.kill() for w in everyone if w.state != "gone"])
        return finished.addBoth(lambda _: timer.cancel() if timer.active() else None)
