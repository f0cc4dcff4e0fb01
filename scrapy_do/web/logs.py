"""Serving job logs: whole files, byte ranges, and `tail -f` of a running crawl.

A finished log is a static file (twisted.web.static.File does ranges and
streaming). A running job's log is followed: what is there is sent, then each
write the crawl makes (an inotify event, no polling where Linux has inotify)
is sent as it comes, and the response ends when the job ends.
"""

import os
import re

from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.filepath import FilePath
from zope.interface import implementer
from twisted.internet.interfaces import IPullProducer

log = Logger(namespace="scrapy_do.web.logs")

_RANGE = re.compile(r"^\s*bytes\s*=\s*([0-9]*)\s*-\s*([0-9]*)\s*$")
CHUNK = 64 << 10
#: Larger than any file: what a Range number of more digits than that stands for.
HUGE = 10 ** 18


def bounded_int(digits, cap=HUGE):
    """The ASCII decimal `digits` as an int, or `cap` when the number is at least that large.

    int() alone raises past 4300 digits (Python's int-string limit); leading zeros are not digits
    that count, and a number with more significant digits than `cap` is at least `cap` anyway.
    """
    significant = digits.lstrip("0")
    if len(significant) > len(str(cap)):
        return cap
    return min(int(significant or "0"), cap)


def parse_open_range(header, size):
    """Start offset for `bytes=N-` or `bytes=-N` on a file of `size` bytes.

    Returns None when the header asks for something else (a closed range or
    several ranges: served statically), raises ValueError when unsatisfiable.
    """
    m = _RANGE.match(header or "")
    if not m:
        return None
    first, last = m.groups()
    if first and not last:
        start = bounded_int(first)
        if start > size:
            raise ValueError(start)
        return start
    if last and not first:
        return max(0, size - bounded_int(last))
    return None


class LogWatcher:
    """Calls back when files grow: one inotify watch per file, shared by its followers."""

    def __init__(self, reactor):
        self._reactor = reactor
        self._callbacks = {}
        self._notifier = None
        self._poll = None
        try:
            from twisted.internet import inotify

            self._inotify = inotify
            self._notifier = inotify.INotify(reactor)
            self._notifier.startReading()
        except Exception:  # not Linux, or no inotify: fall back to a slow poll while someone follows
            self._notifier = None

    def watch(self, path, callback):
        path = str(path)
        first = path not in self._callbacks
        self._callbacks.setdefault(path, []).append(callback)
        if first:
            if self._notifier is not None:
                self._notifier.watch(FilePath(path), mask=self._inotify.IN_MODIFY,
                                     callbacks=[lambda _w, _p, _m, path=path: self._fire(path)])
            elif self._poll is None:
                self._poll = task.LoopingCall(self._fire_all)
                self._poll.clock = self._reactor
                self._poll.start(0.5, now=False)

        def unwatch():
            callbacks = self._callbacks.get(path, [])
            if callback in callbacks:
                callbacks.remove(callback)
            if not callbacks and path in self._callbacks:
                del self._callbacks[path]
                if self._notifier is not None:
                    self._notifier.ignore(FilePath(path))
                elif not self._callbacks and self._poll is not None:
                    self._poll.stop()
                    self._poll = None
        return unwatch

    def _fire(self, path):
        for callback in list(self._callbacks.get(path, [])):
            callback()

    def _fire_all(self):
        for path in list(self._callbacks):
            self._fire(path)

    def close(self):
        if self._notifier is not None:
            self._notifier.loseConnection()


@implementer(IPullProducer)
class LogFollower:
    """Streams one growing log file to one request until `job_ended` is set."""

    def __init__(self, request, path, offset, watcher):
        self.request = request
        self.path = path
        self.offset = offset
        self.watcher = watcher
        self.job_ended = False
        self.done = defer.Deferred()
        self._wanted = False
        self._file = None
        self._cleanups = []

    def start(self):
        self._file = open(self.path, "rb")
        self._file.seek(self.offset)
        self._cleanups.append(self.watcher.watch(self.path, self.deliver))
        self.request.notifyFinish().addBoth(lambda _: self._close())
        self.request.registerProducer(self, False)
        return self.done

    def on_cleanup(self, fn):
        self._cleanups.append(fn)

    def end(self):
        """The job ended: send what is left, then finish."""
        self.job_ended = True
        self.deliver()

    def resumeProducing(self):
        self._wanted = True
        self.deliver()

    def stopProducing(self):
        self._close()

    def deliver(self):
        if not self._wanted or self._file is None:
            return
        chunk = self._file.read(CHUNK)
        if chunk:
            self._wanted = False
            self.request.write(chunk)
        elif self.job_ended:
            self.request.unregisterProducer()
            self._close()
            if not self.done.called:
                self.done.callback(b"")

    def _close(self):
        if self._file is not None:
            self._file.close()
            self._file = None
        while self._cleanups:
            self._cleanups.pop()()
        if not self.done.called:
            self.done.callback(b"")


class LogCap:
    """Keeps crawl logs under `limit` bytes so a runaway crawl cannot fill the disk.

    A log that grows past the limit keeps its first `limit` bytes and ends
    with a marker line; the crawl goes on, and whatever it writes later is cut
    off at each write (inotify tells when).
    """

    def __init__(self, watcher, limit):
        self.watcher = watcher
        self.limit = limit

    def marker(self):
        return (f"\n[scrapy-do] log truncated at {self.limit} bytes (max-log-size); "
                "the crawl goes on, its further output is dropped\n").encode()

    def watch(self, path):
        """Start enforcing the limit on `path`; returns a function that stops (and enforces once more)."""
        path = str(path)
        unwatch = self.watcher.watch(path, lambda: self.enforce(path))

        def stop():
            unwatch()
            self.enforce(path)
        return stop

    def enforce(self, path):
        try:
            size = os.stat(path).st_size
            marker = self.marker()
            if size <= self.limit + len(marker):
                if size <= self.limit:
                    return
                with open(path, "rb") as f:
                    f.seek(self.limit)
                    if f.read(len(marker)) == marker[: size - self.limit]:
                        return
            fd = os.open(path, os.O_WRONLY)
            try:
                os.pwrite(fd, marker, self.limit)
                os.ftruncate(fd, self.limit + len(marker))
            finally:
                os.close(fd)
        except OSError as e:
            log.warn("cannot cap log {path}: {e}", path=path, e=e)
