"""What the daemon learns of a running crawl from its reporter: stats, samples and scraped items.

One `Insight` per running job checks the job's token, keeps its latest
stats and appends its items to `<log-dir>/<job-id>.jl`. The items file
holds whole lines only, each a JSON object: batches are checked before a
byte is written and go in with one write, so a crawl killed at any moment
(or a lying one) leaves nothing half written, and a line cut by the daemon's
own crash is trimmed when the file is opened again.
"""

import hashlib
import hmac
import json
import os

import orjson

from scrapy_do.domain import stats as job_stats
from scrapy_do.errors import BadRequest, Forbidden
from scrapy_do.launchers.logfiles import FollowedFile

#: The longest item line the daemon takes (the reporter keeps to it too).
MAX_ITEM = 1 << 20
#: The largest batch of items one request may carry.
MAX_BATCH = 8 << 20
_TAIL = 1 << 16


def token_key(token):
    """What the store keeps of a run's report token: its hash (the token itself travels only to the crawl)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


_BAD = object()


def _refuse_constant(name):
    raise ValueError(f"{name} is not JSON")


def _parse(line):
    """orjson for speed; the standard library for what orjson refuses but JSON allows (lone surrogate
    escapes, integers past 64 bits). NaN and Infinity are not JSON: refused by both."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(line, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        return _BAD


def check_batch(body):
    """The number of lines in a batch of JSON Lines; BadRequest unless every line is a whole JSON object."""
    if not body:
        return 0
    if not body.endswith(b"\n"):
        raise BadRequest("a batch of items is whole lines: it ends with a newline")
    count = 0
    for line in body.split(b"\n")[:-1]:
        if len(line) >= MAX_ITEM:
            raise BadRequest(f"an item line is longer than {MAX_ITEM} bytes")
        value = _parse(line)
        if value is _BAD:
            raise BadRequest(f"item {count} of the batch is not JSON")
        if not isinstance(value, dict):
            raise BadRequest(f"item {count} of the batch is not a JSON object")
        count += 1
    return count


class ItemsFile(FollowedFile):
    """A job's items: whole JSON lines appended up to `limit` bytes; what is past it is dropped (`capped`).

    A run that a shutdown interrupted runs again from its first item, and the items of each attempt follow
    one another in its file (as its logs do): `start` is the byte where this attempt's lines begin, `lines`
    how many it has. A new attempt starts at the end (nothing is read); a crawl re-attached after a restart
    goes on from the `start` its run kept, and only its own lines are counted.
    """

    def __init__(self, path, limit, hub=None, start=None):
        super().__init__(path, hub, readable=True)
        self.limit = limit
        self.written = self._trim()
        self.start = self.written if start is None else min(start, self.written)
        self.lines = self._count(self.start)
        self.capped = False

    def _trim(self):
        """Cut a last line the daemon's crash left without its newline; the size of what stays."""
        size = os.fstat(self.fd).st_size
        if size == 0:
            return 0
        start = max(0, size - _TAIL)
        tail = os.pread(self.fd, size - start, start)
        end = tail.rfind(b"\n")
        keep = start + end + 1 if end >= 0 else (0 if start == 0 else size)
        if keep != size:
            os.ftruncate(self.fd, keep)
        return keep

    def _count(self, offset):
        count = 0
        while offset < self.written:
            chunk = os.pread(self.fd, 1 << 20, offset)
            if not chunk:
                break
            count += chunk.count(b"\n")
            offset += len(chunk)
        return count

    def append(self, body, count):
        """Write the whole lines of `body` that fit; the number written."""
        if self.capped or not body:
            return 0
        if self.written + len(body) > self.limit:
            room = body.rfind(b"\n", 0, self.limit - self.written) + 1
            self.capped = True
            count = body.count(b"\n", 0, room)
            body = body[:room]
        if body:
            os.write(self.fd, body)
            self.written += len(body)
            self.lines += count
            self.notify()
        return count


class Insight:
    """A running job's reports: refused unless they carry its token; kept stats, samples and items."""

    def __init__(self, key, items=None, samples=()):
        self.key = key
        self.items = items   # an ItemsFile, or None when items are not kept
        self.samples = tuple(samples)
        self.stats = None    # the whole Scrapy stats of the latest report
        self.final = None    # the final ones (with finish-reason), once sent
        # The index (in this attempt) the next item must have: a batch sent again is kept once.
        self.received = items.lines if items is not None else 0

    @property
    def stored(self):
        """What the run's record keeps, so a crawl re-attached after a restart goes on where it was: the
        token's hash and the byte where this attempt's items begin."""
        return f"{self.key}:{self.items.start if self.items is not None else 0}"

    @staticmethod
    def parse_stored(text):
        """(key, start) from `stored`."""
        key, _, start = (text or "").partition(":")
        return key or None, int(start) if start.isdigit() else 0

    def check(self, identifier, token):
        if self.key is None or not hmac.compare_digest(self.key, token_key(token or "")):
            raise Forbidden(f"no running job {identifier} takes reports with this token")

    def take_report(self, body):
        """A stats report; the summary a record shows while the job runs."""
        stats, summary = body.get("stats"), body.get("summary")
        if not isinstance(stats, dict) or not isinstance(summary, dict):
            raise BadRequest("a report holds a 'stats' object and a 'summary' object")
        self.stats = stats
        if body.get("final"):
            self.final = {**stats, "finish-reason": body.get("finish-reason")}
        elapsed = summary.get("elapsed")
        if isinstance(elapsed, (int, float)):
            self.samples = job_stats.add_sample(self.samples, elapsed, summary)
        return summary

    def take_items(self, first, body):
        """A batch of items whose first has index `first`: {"received": next index, "capped": bool}."""
        if self.items is None:
            return {"received": first, "capped": True}
        count = check_batch(body)
        if first < self.received:
            # Sent again: keep only what is new.
            skip = min(self.received - first, count)
            cut = 0
            for _ in range(skip):
                cut = body.index(b"\n", cut) + 1
            body, count, first = body[cut:], count - skip, first + skip
        self.items.append(body, count)
        self.received = max(self.received, first + count)
        return {"received": self.received, "capped": self.items.capped}

    @property
    def errors(self):
        stats = self.final or self.stats
        return job_stats.error_count(stats) if stats is not None else None

    def close(self):
        if self.items is not None:
            self.items.close()
