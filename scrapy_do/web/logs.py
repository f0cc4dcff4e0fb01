"""Serving job logs: whole files, byte ranges, and `tail -f` of a running crawl.

A finished log is a static file (twisted.web.static.File does ranges and
streaming), opened without following a symlink. A running job's log is
followed: what is there is sent, then each write the daemon makes for the
crawl (the LogHub tells; no polling, no inotify) is sent as it comes, and
the response ends when the job ends.
"""

import errno
import os
import re
import stat

from twisted.internet import defer
from twisted.internet.interfaces import IPullProducer
from twisted.logger import Logger
from twisted.web.static import File
from zope.interface import implementer

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
        self._file = open_log_for_reading(self.path)
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


def open_log_for_reading(path):
    """A log opened for reading only if it is a regular file reached without a symlink; else EACCES."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise OSError(errno.EACCES, "a symlink in a log's place", path) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EACCES, "not a regular file", path)
    return os.fdopen(fd, "rb")


class SafeFile(File):
    """File's ranges and streaming over what `opener()` opens (a descriptor checked for what it is), never the
    path as such: `opener` refuses with EACCES, which File answers with `forbidden` (a JSON 404 here)."""

    isLeaf = True  # the file itself, never a folder to look up children in

    def __init__(self, path, opener, **kwargs):
        super().__init__(path, **kwargs)
        self.opener = opener

    def openForReading(self):
        return self.opener()

    def getFileSize(self):
        with self.opener() as f:
            return os.fstat(f.fileno()).st_size


def finished_log(path, **kwargs):
    """A finished log, opened by `open_log_for_reading`."""
    return SafeFile(path, lambda: open_log_for_reading(path), **kwargs)
