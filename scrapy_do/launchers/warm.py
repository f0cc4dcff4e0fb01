"""Warm crawl starts (issue 17), the daemon's side: a warm parent per project version, forked per crawl.

A cold crawl is a fresh interpreter that imports Twisted, Scrapy, lxml and the
project's spiders before its first request (1.1-1.5 s of CPU here). A warm
parent (warmparent.py, which runs inside it) is started like a crawl and
imports all that once, without installing a reactor; each crawl is then a
fork of it that becomes exactly what child.py would have become.

Process tree:

    daemon ──(socketpair, SOCK_SEQPACKET)── warm parent  [own session; crawl user; PDEATHSIG→daemon]
                                               ├── crawl  [own session/group; PDEATHSIG→warm parent]
                                               └── crawl

`kill -9` of the daemon SIGTERMs the warm parents, whose death SIGTERMs
their crawls, as a cold crawl gets SIGTERM when the daemon dies. The daemon
keeps the read ends of each crawl's stdout/stderr pipes and sends the write
ends with the start request (SCM_RIGHTS); it learns the crawl's pid at once
and its exit status (with its CPU time) when the warm parent reaps it. It
signals the crawl's group itself (os.killpg: the crawl leads its own).

`WarmParent` is a synchronous client: `start()` blocks until the parent
is ready (about a cold start's time, once), `spawn()` until it reports the
pid (under a millisecond). Every other event is read by `read_events()`,
which never blocks once `fileno()` is readable: a Twisted IReadDescriptor
whose doRead calls it is all the daemon needs (warmpool.py). `NotWarm`
means: start this crawl cold.
"""

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

PARENT_MODULE = "scrapy_do.launchers.warmparent"
MAX_MESSAGE = 1 << 20


class NotWarm(Exception):
    """No warm start: the project refused (threads, sockets... at import), or the parent is gone."""


@dataclass
class WarmCrawl:
    """One crawl forked from a warm parent, as its events describe it."""

    id: str
    pid: int | None = None
    #: Exit code, or -N for signal N; None while it runs (or when its parent died before reaping it).
    status: int | None = None
    utime: float | None = None
    stime: float | None = None
    maxrss_kib: int | None = None
    ended: bool = False
    refused: str | None = None

    @property
    def cpu(self):
        return None if self.utime is None else self.utime + self.stime


@dataclass
class WarmParent:
    process: subprocess.Popen
    control: socket.socket
    ready: dict = field(default_factory=dict)
    crawls: dict = field(default_factory=dict)
    alive: bool = True
    #: Called with each event dict as it is read (the daemon's hook).
    on_event: object = None
    _stats: list = field(default_factory=list)

    @classmethod
    def start(cls, env, python=sys.executable, timeout=60.0, stderr=None):
        """Start a warm parent with the crawl environment `env` (as local.py builds it: SCRAPY_DO_CWD = the
        tree, SCRAPY_DO_PARENT_PID = this process, the crawl user's ids...) and wait until it is ready.

        Raises NotWarm with the parent's reason if the project cannot be warm. `stderr`: where the parent's
        own messages go (a file, or None for /dev/null); crawls write to the pipes of their requests."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            process = subprocess.Popen([python, "-m", PARENT_MODULE, str(theirs.fileno())], env=env,
                                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=stderr if stderr is not None else subprocess.DEVNULL,
                                       pass_fds=[theirs.fileno()], close_fds=True)
        except OSError as e:
            ours.close()
            raise NotWarm(f"cannot start a warm parent: {e}") from None
        finally:
            theirs.close()
        parent = cls(process, ours)
        deadline = time.monotonic() + timeout
        while not parent.ready:
            left = deadline - time.monotonic()
            if left <= 0 or not parent.alive:
                parent.kill()
                raise NotWarm("the warm parent did not get ready" if parent.alive else
                              f"the warm parent exited ({process.poll()}) before it was ready")
            for event in parent.read_events(left):
                if event["event"] == "cold":
                    parent.close()
                    raise NotWarm(event["reason"])
        return parent

    @property
    def pid(self):
        return self.process.pid

    def fileno(self):
        return self.control.fileno()

    def _send(self, message, fds=()):
        if not self.alive:
            raise NotWarm("the warm parent is gone")
        try:
            socket.send_fds(self.control, [json.dumps(message).encode()], list(fds))
        except OSError as e:
            self._gone()
            raise NotWarm(f"the warm parent is gone ({e})") from None

    def request(self, job_id, spider, args, env, out_fd, err_fd, report=None, in_fd=None, gate_fd=None):
        """Ask for a crawl; the pid comes in a `started` event. `env` is the crawl's whole environment (what
        local.py passes a cold crawl); the descriptors are the write ends of its stdout/stderr pipes (close
        them after the call: the parent has its own copies now). `gate_fd`: the read end of a pipe the crawl waits on
        until a byte comes (see warmparent.py). Never blocks on a live parent (a full channel raises NotWarm)."""
        crawl = self.crawls[job_id] = WarmCrawl(job_id)
        fds = [out_fd, err_fd] if in_fd is None else [in_fd, out_fd, err_fd]
        if gate_fd is not None:
            fds.append(gate_fd)
        self._send({"op": "start", "id": job_id, "spider": spider, "args": list(args), "report": report,
                    "env": dict(env), "gate": gate_fd is not None}, fds)
        return crawl

    def spawn(self, job_id, spider, args, env, out_fd, err_fd, report=None, in_fd=None, timeout=10.0):
        """request(), then wait for the crawl's pid (NotWarm if the parent refused or died: start it cold)."""
        crawl = self.request(job_id, spider, args, env, out_fd, err_fd, report, in_fd)
        self._until(lambda: crawl.pid is not None or crawl.refused, timeout)
        if crawl.pid is None:
            raise NotWarm(crawl.refused or "the warm parent did not answer")
        return crawl

    def wait(self, job_id, timeout=60.0):
        """Block until the crawl ended (or the parent died: then status stays None); its WarmCrawl."""
        crawl = self.crawls[job_id]
        self._until(lambda: crawl.ended, timeout)
        return crawl

    def stats(self, timeout=5.0):
        """The parent's own figures: {"pid", "rss_kib", "running": {job id: pid}}."""
        self._stats.clear()
        self._send({"op": "stats"})
        self._until(lambda: self._stats, timeout)
        return self._stats[0] if self._stats else None

    def _until(self, done, timeout):
        deadline = time.monotonic() + timeout
        while not done() and self.alive:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.read_events(left)
        return done()

    def read_events(self, timeout=0.0):
        """Read what the parent sent (waiting up to `timeout` for the first message); apply and return the
        events. End of file marks the parent gone, and its unfinished crawls ended with status None."""
        events = []
        wait = timeout
        while self.alive:
            readable, _, _ = select.select([self.control], [], [], wait)
            if not readable:
                break
            wait = 0
            try:
                data = self.control.recv(MAX_MESSAGE, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                self._gone()
                break
            event = json.loads(data)
            self._apply(event)
            events.append(event)
            if self.on_event is not None:
                self.on_event(event)
        return events

    def _apply(self, event):
        kind = event.get("event")
        crawl = self.crawls.get(event.get("id"))
        if kind == "ready":
            self.ready = event
        elif kind == "started" and crawl is not None:
            crawl.pid = event["pid"]
        elif kind == "refused" and crawl is not None:
            crawl.refused = event["reason"]
            crawl.ended = True
        elif kind == "exit" and crawl is not None:
            crawl.status, crawl.utime, crawl.stime = event["status"], event["utime"], event["stime"]
            crawl.maxrss_kib = event["maxrss_kib"]
            crawl.ended = True
        elif kind == "stats":
            self._stats.append(event)

    def _gone(self):
        self.alive = False
        for crawl in self.crawls.values():
            crawl.ended = True  # status None: nobody will tell it (the crawl got SIGTERM from its parent's death)

    def retire(self):
        """Start nothing more; the parent exits when its last crawl ended."""
        self._send({"op": "retire"})

    def kill(self, sig=signal.SIGKILL):
        try:
            self.process.send_signal(sig)
        except ProcessLookupError:
            pass

    def close(self, timeout=5.0):
        """Close the channel (the parent exits at once, its crawls get SIGTERM) and reap it."""
        if self.control.fileno() >= 0:
            self.control.close()
        self.alive = False
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            self.process.wait()
        return self.process.returncode


def smaps_rollup(pid):
    """{"Rss", "Pss", "Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty", ...} in KiB."""
    figures = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3 and parts[2] == "kB":
                    figures[parts[0].rstrip(":")] = int(parts[1])
    except OSError:
        pass
    return figures


def parent_environment(environ, tree, user=None, env=None):
    """A warm parent's environment: the one local.py gives a crawl of this project version (the daemon's
    `environ` filtered by local.crawl_environment, the tree, the project's `env` such as SPIDER_DATA_DIR, the
    crawl user's ids and HOME), so that what the project's modules read at import time is what a cold crawl
    would read."""
    from scrapy_do.launchers.local import crawl_environment

    env = dict(env or {})
    extra = {"SCRAPY_DO_PARENT_PID": str(os.getpid()), "SCRAPY_DO_CWD": str(tree)}
    if "SPIDER_DATA_DIR" in env:
        extra["SCRAPY_DO_DATA"] = env["SPIDER_DATA_DIR"]
    if user is not None:
        extra.update(user.environment(), HOME=env.get("SPIDER_DATA_DIR", "/nonexistent"))
    return crawl_environment(environ, {**env, **extra})
