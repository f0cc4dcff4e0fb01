"""A job's items as CSV, made from its JSON Lines file while it is sent.

The columns are every key the items have, in the order they first appear,
so the file is read twice: once for the columns, once for the rows. Both
passes run as a cooperative task, a slice at a time, so a big file neither
blocks the reactor nor sits in memory, and a slow client pauses the task.
"""

import csv
import io
import json

from twisted.internet import task
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from scrapy_do.web.logs import open_log_for_reading

#: Lines handled per slice of the cooperative task.
SLICE = 500


def cell(value):
    """A CSV cell: text as it is, nested values as JSON, missing ones empty."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _items(f, end):
    """(line number, item) for each object line of the file up to byte `end`; other lines are skipped."""
    f.seek(0)
    read = 0
    for line in f:
        read += len(line)
        if read > end:
            return
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if isinstance(item, dict):
            yield item


def csv_rows(f, end):
    """The CSV text of the file's items, in pieces: yields None between slices (cooperative steps)."""
    columns = {}
    for n, item in enumerate(_items(f, end), 1):
        for key in item:
            columns.setdefault(key, None)
        if n % SLICE == 0:
            yield None
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    header = list(columns)
    writer.writerow(header)
    for n, item in enumerate(_items(f, end), 1):
        writer.writerow([cell(item.get(key)) for key in header])
        if n % SLICE == 0:
            yield out.getvalue().encode("utf-8")
            out.seek(0)
            out.truncate()
    yield out.getvalue().encode("utf-8")


@implementer(IPushProducer)
class CsvProducer:
    """Streams `csv_rows` of one items file to one request."""

    def __init__(self, request, path, cooperator=None):
        self.request = request
        self.path = path
        self.cooperator = cooperator or task.cooperate
        self._task = None
        self._paused = False

    def start(self):
        f = open_log_for_reading(self.path)
        end = f.seek(0, 2)  # a running job's items: those there are now

        def steps():
            try:
                for piece in csv_rows(f, end):
                    if piece:
                        self.request.write(piece)
                    yield None
            finally:
                f.close()

        self.request.registerProducer(self, True)
        self._task = self.cooperator(steps())
        d = self._task.whenDone()
        d.addCallback(lambda _: self.request.unregisterProducer())
        d.addErrback(lambda failure: failure.trap(task.TaskStopped))
        d.addCallback(lambda _: b"")
        self.request.notifyFinish().addErrback(lambda _: self.stopProducing())
        return d

    def pauseProducing(self):
        if not self._paused:
            self._paused = True
            self._task.pause()

    def resumeProducing(self):
        if self._paused:
            self._paused = False
            self._task.resume()

    def stopProducing(self):
        try:
            self._task.stop()
        except (task.TaskDone, task.TaskStopped, task.TaskFailed):
            pass
