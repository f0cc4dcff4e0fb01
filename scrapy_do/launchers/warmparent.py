"""Runs inside a warm parent: `python -m scrapy_do.launchers.warmparent FD` (see warm.py for the daemon's side).

A warm parent is started like a crawl (the project's interpreter, a clean
environment, SCRAPY_DO_CWD naming the project version's tree, the crawl user's
ids in SCRAPY_DO_CRAWL_USER) and gets one end of a SOCK_SEQPACKET unix socket
pair as descriptor FD. It leads its own session, becomes the crawl user, asks
Linux to SIGTERM it when the daemon dies, enters the tree and imports what a
crawl would import: Scrapy, Twisted (no reactor installed), the project's
settings and spider modules, Scrapy's commands and every component the
settings name. Then it checks it is safe to fork (one thread, no reactor, no
event loop, no socket or pipe opened at import time), freezes the garbage
collector's generations (fewer copy-on-write pages in the children) and
reports `ready`, or `cold` with the reason and exits.

Then it waits, single-threaded, on the control socket and on SIGCHLD (through
signal.set_wakeup_fd). Each message is one JSON object; descriptors travel
with it as SCM_RIGHTS.

daemon -> parent:
  {"op": "start", "id": ID, "spider": NAME, "args": [...], "report": {...}|null, "env": {...}, "gate": bool}
      with descriptors [out, err] or [in, out, err], then the gate's read end if "gate": fork a crawl; a gated
      crawl waits until the daemon writes a byte to its gate (it moved the crawl into its cgroup, which the crawl
      user may not do itself), and exits 75 if the gate closes without one
  {"op": "stats"}: answer {"event": "stats", ...}
  {"op": "retire"}: start nothing more; exit once the last crawl ended (at once if none runs)
  end of file (the daemon closed its end or died): exit at once; the crawls get SIGTERM (parent-death signal)
parent -> daemon:
  {"event": "ready", "pid", "rss_kib", "modules", "warmup_s", "files"}  or  {"event": "cold", "reason"}
  {"event": "started", "id", "pid"}   at once after the fork
  {"event": "refused", "id", "reason"}  a start that could not fork (bad request, EAGAIN...)
  {"event": "exit", "id", "pid", "status", "utime", "stime", "maxrss_kib"}   status: exit code, or -N for signal N
  {"event": "stats", "pid", "rss_kib", "running": {id: pid}}

The forked child returns out of the loop to this module's top level, so that
the crawl ends through the interpreter's normal exit (SystemExit's code, an
uncaught exception's traceback and status 1, threads joined, atexit handlers,
streams flushed), exactly as the cold `python -m scrapy_do.launchers.child`.
"""

import contextlib
import functools
import gc
import json
import os
import select
import signal
import socket
import sys
import threading
import time
import warnings

from scrapy_do.launchers import child

MAX_MESSAGE = 1 << 20
MAX_FDS = 4
#: Settings whose values name a class to load: their modules are imported while warming up.
_CLASS_SUFFIXES = ("_CLASS", "_FACTORY", "SCHEDULER", "DOWNLOADER", "_RESOLVER", "_QUEUE", "_FORMATTER",
                   "ITEM_PROCESSOR")


#: What the interpreter (or a preloaded library) reads once, at its start: a crawl whose environment differs
#: here from the warm parent's would not get what it asks for, so it is refused (it starts cold).
INTERPRETER_ENV = ("PYTHON", "LD_", "FAKETIME", "LANG", "LC_")


def interpreter_environment(env):
    return {k: v for k, v in env.items() if k.startswith(INTERPRETER_ENV)}


class NotWarm(Exception):
    """This project cannot be warm: its crawls start cold."""


class Job:
    """A start request, as the forked child sees it."""

    def __init__(self, message, fds, parent, user, warned):
        self.id = message["id"]
        self.spider = message["spider"]
        self.args = [str(a) for a in message.get("args", [])]
        self.report = message.get("report")
        self.env = {str(k): str(v) for k, v in message.get("env", {}).items()}
        self.gate = fds[-1] if message.get("gate") else None
        self.fds = fds[:-1] if self.gate is not None else fds
        self.parent = parent
        self.user = user
        self.warned = warned


def rss_kib(pid="self"):
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _thread_count():
    try:
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Threads:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return threading.active_count()


def _open_descriptors(keep):
    """{fd: target} of what is open beyond stdio and `keep` (what the project opened at import time)."""
    found = {}
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return found
    for name in names:
        fd = int(name)
        if fd <= 2 or fd in keep:
            continue
        try:
            found[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            pass  # the listing's own descriptor, closed by now
    return found


def _component_paths(settings):
    """Import paths the settings name: component dicts (*_BASE and the project's) and class settings."""
    for name in settings:
        value = settings[name]
        if hasattr(value, "copy_to_dict"):
            value = value.copy_to_dict()
        if isinstance(value, dict):
            candidates = [k for k in value if isinstance(k, str)] + [v for v in value.values() if isinstance(v, str)]
        elif isinstance(value, str) and name.endswith(_CLASS_SUFFIXES):
            candidates = [value]
        else:
            continue
        for path in candidates:
            if "." in path and " " not in path and "/" not in path and path[:1].isalpha():
                yield path


def warm_up():
    """Import what a crawl of this project imports, without starting anything; raise NotWarm if the result
    cannot be forked safely. Returns the warnings the imports emitted (each crawl shows them again)."""
    with warnings.catch_warnings(record=True) as warned:
        # Recorded under the filters in force, so exactly what a cold crawl would print.
        try:
            import scrapy.cmdline
            from scrapy.spiderloader import get_spider_loader
            from scrapy.utils.misc import load_object
            from scrapy.utils.project import get_project_settings

            settings = get_project_settings()
            get_spider_loader(settings)  # imports every spider module (SPIDER_MODULES)
            scrapy.cmdline._get_commands_dict(settings, True)  # what `scrapy` imports to find `crawl`
        except Exception as e:
            raise NotWarm(f"the project does not load: {type(e).__name__}: {e}") from None
        # What the crawl would load later from its settings (middlewares, extensions, handlers, ...):
        # a component that fails to import here fails the crawl itself, which says so in its log.
        for path in _component_paths(settings):
            try:
                load_object(path)
            except Exception:
                pass
            if "twisted.internet.reactor" in sys.modules:
                raise NotWarm(f"importing {path} installs a Twisted reactor")
        remember_installed()
        for module in ("scrapy_do.crawl.reporter", "setproctitle", "scrapy.utils.reactor",
                       "twisted.internet.asyncioreactor",
                       "twisted.internet.epollreactor", "twisted.internet.selectreactor"):
            try:
                __import__(module)
            except ImportError:
                pass
    return list(warned)


def remember_installed():
    """What each crawl's start asks of the installed packages, asked once here: the versions Scrapy logs
    (package metadata parsed by `email`, and `uname -p` run as a subprocess for "Platform") and the
    entry points `scrapy` scans for commands: ~10 ms of every warm start. They are facts of this parent's
    interpreter, whose modules are already imported: a changed environment gets a new parent anyway. A
    Scrapy without these names is left as it is."""
    import scrapy.cmdline
    import scrapy.utils.versions

    if callable(getattr(scrapy.utils.versions, "_version", None)):
        scrapy.utils.versions._version = functools.lru_cache(maxsize=None)(scrapy.utils.versions._version)
        with contextlib.suppress(Exception):
            scrapy.utils.versions.get_versions()
    scan = getattr(scrapy.cmdline, "entry_points", None)
    if callable(scan):
        scrapy.cmdline.entry_points = functools.lru_cache(maxsize=None)(lambda **kwargs: scan(**kwargs))
        with contextlib.suppress(Exception):
            scrapy.cmdline.entry_points(group="scrapy.commands")


def check_forkable(keep):
    if "twisted.internet.reactor" in sys.modules:
        raise NotWarm("a Twisted reactor is installed at import time")
    threads = max(threading.active_count(), _thread_count())
    if threads > 1:
        raise NotWarm(f"{threads} threads run after the project's imports (a fork keeps only one)")
    import asyncio.events

    policy = asyncio.events._event_loop_policy  # None until something asked for a loop
    if asyncio.events._get_running_loop() is not None or (
            policy is not None and getattr(getattr(policy, "_local", None), "_loop", None) is not None):
        raise NotWarm("an asyncio event loop is created at import time")
    files = {}
    for fd, target in _open_descriptors(keep).items():
        if target.startswith(("socket:", "pipe:", "anon_inode:")):
            raise NotWarm(f"descriptor {fd} ({target}) is open after the project's imports: crawls forked "
                          "from one process would share it")
        files[fd] = target
    return files


class Parent:
    def __init__(self, control):
        self.control = control
        self.running = {}  # pid -> job id
        self.retiring = False
        self.pid = os.getpid()
        self.user = None
        self.warned = []
        self.interpreter_env = interpreter_environment(os.environ)

    def send(self, **message):
        try:
            self.control.send(json.dumps(message).encode())
        except OSError:
            pass  # the daemon is gone: end of file comes next

    def serve(self):
        """Serve start requests until told to stop; return the Job to run in a forked child, or None."""
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # Python runs no handler without one; the fd wakes us
        poller = select.poll()
        poller.register(self.control.fileno(), select.POLLIN)
        poller.register(wake_r, select.POLLIN)
        self.wake = (wake_r, wake_w)
        while True:
            self.reap()
            if self.retiring and not self.running:
                return None
            try:
                events = poller.poll()
            except InterruptedError:  # pragma: no cover (PEP 475 retries)
                continue
            for fd, _ in events:
                if fd == wake_r:
                    try:
                        while os.read(wake_r, 512):
                            pass
                    except BlockingIOError:
                        pass
                    continue
                try:
                    data, fds, _flags, _ = socket.recv_fds(self.control, MAX_MESSAGE, MAX_FDS)
                except InterruptedError:  # pragma: no cover
                    continue
                except OSError:
                    data, fds = b"", []
                if not data:
                    for fd_ in fds:
                        os.close(fd_)
                    return None  # the daemon is gone: the crawls get their parent-death signal
                job = self.handle(data, fds)
                if job is not None:
                    return job

    def handle(self, data, fds):
        try:
            message = json.loads(data)
            op = message["op"]
        except (ValueError, KeyError, TypeError):
            for fd in fds:
                os.close(fd)
            self.send(event="refused", id=None, reason="unreadable request")
            return None
        if op == "stats":
            self.send(event="stats", pid=self.pid, rss_kib=rss_kib(),
                      running={job: pid for pid, job in self.running.items()})
        elif op == "retire":
            self.retiring = True
        elif op == "start":
            return self.start(message, fds)
        else:
            self.send(event="refused", id=message.get("id"), reason=f"unknown op {op!r}")
        for fd in fds:
            os.close(fd)
        return None

    def start(self, message, fds):
        ident = message.get("id")
        try:
            if self.retiring:
                raise ValueError("this warm parent is retiring")
            expected = (3, 4) if message.get("gate") else (2, 3)
            if len(fds) not in expected:
                raise ValueError(f"{len(fds)} descriptors sent, {expected[0]} ([in,] out, err"
                                 f"{', gate' if message.get('gate') else ''}) or {expected[1]} expected")
            job = Job(message, fds, self.pid, self.user, self.warned)
            if interpreter_environment(job.env) != self.interpreter_env:
                differ = sorted(set(interpreter_environment(job.env).items()) ^ set(self.interpreter_env.items()))
                raise ValueError("the crawl's interpreter environment differs from the warm parent's: "
                                 + ", ".join(sorted({k for k, _ in differ})))
        except (ValueError, KeyError, TypeError) as e:
            for fd in fds:
                os.close(fd)
            self.send(event="refused", id=ident, reason=str(e))
            return None
        sys.stdout.flush()  # or what waits in the buffers is written again by the child
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as e:
            for fd in fds:
                os.close(fd)
            self.send(event="refused", id=ident, reason=f"fork: {e}")
            return None
        if pid == 0:
            self.detach_child()
            return job
        for fd in fds:
            os.close(fd)
        self.running[pid] = job.id
        self.send(event="started", id=job.id, pid=pid)
        return None

    def detach_child(self):
        """In the forked child: drop what belongs to the warm parent (its channel, its SIGCHLD wake-up)."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in self.wake:
            os.close(fd)
        self.control.close()

    def reap(self):
        while self.running:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                self.running.clear()
                return
            if pid == 0:
                return
            ident = self.running.pop(pid, None)
            self.send(event="exit", id=ident, pid=pid, status=os.waitstatus_to_exitcode(status),
                      utime=usage.ru_utime, stime=usage.ru_stime, maxrss_kib=usage.ru_maxrss)


def prepare_command():
    """setproctitle finds the argv memory it rewrites through the environment, which a crawl replaces: it looks
    now, in the parent. SPT_NOENV: it rewrites argv's memory only, so /proc/PID/environ stays readable (the
    parent's environment: where the daemon's pid is, see local.kill_leftover's users); the daemon gives the
    parent arguments long enough for a crawl's command line."""
    try:
        import setproctitle
    except ImportError:
        return
    os.environ["SPT_NOENV"] = "1"
    setproctitle.getproctitle()
    del os.environ["SPT_NOENV"]


def show_command(spider):
    """What `ps` shows of a warm crawl: a cold crawl's command line (local.build_crawl_argv), not the warm
    parent's it was forked with; its arguments stay out of it as they do of a cold one's."""
    try:
        import setproctitle
    except ImportError:  # an interpreter without it: the warm parent's command line shows
        return
    setproctitle.setproctitle(" ".join([sys.executable, "-m", "scrapy_do.launchers.child", "crawl", spider]))


def run_job(job):
    """In the forked child: become the crawl the request describes, then run Scrapy as child.py does."""
    if job.gate is not None:
        released = os.read(job.gate, 1)  # the daemon moved us into the crawl's cgroup (or could not)
        os.close(job.gate)
        if not released:
            sys.exit(75)  # the daemon went away first: nothing to run
    out_fds = job.fds
    stdin = os.open(os.devnull, os.O_RDONLY) if len(out_fds) == 2 else out_fds[0]
    for target, fd in zip((0, 1, 2), [stdin, *out_fds[-2:]]):
        os.dup2(fd, target)  # dup2 clears close-on-exec: programs the crawl runs inherit them, as in a cold start
    for fd in {stdin, *out_fds}:
        if fd > 2:
            os.close(fd)
    os.environ.clear()
    os.environ.update(job.env)
    time.tzset()  # TZ as the crawl's environment says (its interpreter settings are the parent's: see start)
    asked = os.environ.pop(child.CRAWL_USER_KEY, None)
    if asked and asked != job.user:
        print(f"scrapy-do: this warm parent runs as {job.user or 'the daemon user'}, not {asked}; the crawl "
              "does not run", file=sys.stderr)
        sys.exit(1)
    child.enter_cgroup()  # as the crawl user: only a cgroup it may write (see warm.py)
    child.lead_own_group()
    os.environ["SCRAPY_DO_PARENT_PID"] = str(job.parent)
    child.arm_parent_death_signal()  # relative to the warm parent, which has its own towards the daemon
    import random

    random.seed()  # os.register_at_fork reseeds it already; said here so no one removes it by accident
    gc.enable()
    for w in job.warned:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno, line=w.line)
    child.enter_project_tree()
    child.add_reporter(job.report)
    import runpy

    show_command(job.spider)
    sys.argv = ["scrapy", "crawl", job.spider, *job.args]
    runpy.run_module("scrapy", run_name="__main__", alter_sys=True)


def main(fd):
    """Warm up and serve; return a Job in a forked child, None in the parent when it should exit."""
    control = socket.socket(fileno=fd)
    control.set_inheritable(False)
    child.lead_own_group()
    user = os.environ.get(child.CRAWL_USER_KEY)
    child.become_crawl_user()  # before the parent-death signal: a change of user clears it
    child.arm_parent_death_signal()
    parent = Parent(control)
    parent.user = user
    started = time.perf_counter()
    try:
        child.enter_project_tree()
        parent.warned = warm_up()
        gc.collect()
        files = check_forkable({fd})
    except NotWarm as e:
        parent.send(event="cold", reason=str(e))
        return None
    prepare_command()
    gc.freeze()  # what was imported stays out of the children's collections: fewer pages copied
    parent.send(event="ready", pid=os.getpid(), rss_kib=rss_kib(), modules=len(sys.modules),
                warmup_s=round(time.perf_counter() - started, 3), files=sorted(files.values()))
    return parent.serve()


if __name__ == "__main__":
    # PROJECT and TREE only say in `ps` what the parent is for (and make room for a crawl's command line).
    if len(sys.argv) not in (2, 4) or not sys.argv[1].isdigit():
        sys.exit("usage: python -m scrapy_do.launchers.warmparent FD [PROJECT TREE]")
    _job = main(int(sys.argv[1]))
    if _job is None:
        sys.exit(0)
    run_job(_job)
