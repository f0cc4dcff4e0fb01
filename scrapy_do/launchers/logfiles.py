"""Crawl logs written by the daemon from the crawl's pipes.

A crawl never opens its own log: its stdout and stderr are pipes the daemon
reads, so a crawl cannot truncate, replace or symlink another job's log, the
cap is exact (counted as bytes are written, no watcher involved), and
deleting a log file by hand affects nothing but that file. Followers of a
live log are told of each write by a `LogHub`, in process.
"""

import os
import stat

from twisted.logger import Logger

log = Logger(namespace="scrapy_do.logfiles")

#: Logs hold what crawls print, which may include scraped data: owner and group only.
LOG_MODE = 0o640


def marker(limit):
    return (f"\n[scrapy-do] log truncated at {limit} bytes (max-log-size); "
            "the crawl goes on, its further output is dropped\n").encode()


class LogHub:
    """Calls back followers of a log file when the daemon wrote to it; the same `watch` as a file watcher."""

    def __init__(self):
        self._callbacks = {}

    def watch(self, path, callback):
        path = str(path)
        self._callbacks.setdefault(path, []).append(callback)

        def unwatch():
            callbacks = self._callbacks.get(path, [])
            if callback in callbacks:
                callbacks.remove(callback)
            if not callbacks:
                self._callbacks.pop(path, None)
        return unwatch

    def notify(self, path):
        for callback in list(self._callbacks.get(path, ())):
            callback()


def open_log(path, readable=False):
    """Open (create) a log for appending without following a symlink; refuse anything but a regular file."""
    # O_NONBLOCK: a FIFO put in a log's place fails at once instead of hanging the reactor.
    flags = (os.O_RDWR if readable else os.O_WRONLY) | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
    fd = os.open(path, flags, LOG_MODE)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise OSError(f"{path} is not a regular file")
    if stat.S_IMODE(info.st_mode) & ~LOG_MODE:
        os.fchmod(fd, LOG_MODE)
    return fd


class FollowedFile:
    """A file the daemon appends to for a job (a log, its items), whose followers the hub tells of each write."""

    def __init__(self, path, hub=None, readable=False):
        self.path = str(path)
        self.hub = hub
        self.fd = open_log(self.path, readable)

    def notify(self):
        if self.hub is not None:
            self.hub.notify(self.path)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
            self.notify()


class LogFile(FollowedFile):
    """One crawl log: appends what the crawl prints, up to `limit` bytes (0: no limit) and a marker."""

    def __init__(self, path, limit=0, hub=None):
        super().__init__(path, hub)
        self.limit = limit
        self.written = os.fstat(self.fd).st_size
        self.capped = bool(limit) and self.written >= limit
        self._failed = False

    def write(self, data):
        if self.fd is None or not data:
            return
        if self.capped:
            return
        if self.limit and self.written + len(data) > self.limit:
            data = data[: self.limit - self.written] + marker(self.limit)
            self.capped = True
        try:
            os.write(self.fd, data)
            self.written += len(data)
        except OSError as e:
            if not self._failed:
                log.warn("cannot write {path}: {e}; output is dropped until it can", path=self.path, e=e)
            self._failed = True
            return
        self._failed = False
        self.notify()
