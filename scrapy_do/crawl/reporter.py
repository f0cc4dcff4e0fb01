"""The daemon's Scrapy extension: reports a crawl's stats and scraped items back to the daemon while it runs.

`child.py` adds it to Scrapy's own EXTENSIONS_BASE when the daemon sent a
report address and token (the user's EXTENSIONS stay as they are). Every
`interval` seconds, and once more when the spider closes, it POSTs the
stats to `POST /report/<job-id>.json` with the job's token; scraped items go
as JSON Lines in batches to `POST /report/<job-id>/items.jl?first=N`. Over
HTTP, so it also works from another machine.

Stats are cumulative: a report that fails (the daemon is busy or gone) is
simply caught up by the next one. Items wait in the crawl until the daemon
acknowledged them (up to MAX_BACKLOG), and each batch says the index of its
first item, so a batch sent twice is kept once. The crawl never waits for
the daemon, except for a few seconds at its close.
"""

import dataclasses
import datetime
import decimal
import enum
import json
import logging
import time
import uuid
from collections import deque
from io import BytesIO
from pathlib import PurePath

try:
    import orjson
except ImportError:  # a cluster's environment without it: the standard library, slower
    orjson = None
from scrapy import signals
from scrapy.exceptions import NotConfigured

from scrapy_do.domain.stats import error_count

log = logging.getLogger(__name__)

#: Set by child.py from what the daemon sent on stdin: {"url", "token", "interval", "items": url or absent}.
CONFIG = None
WINDOW = 60.0
SEND_TIMEOUT = 5.0
#: An item whose JSON is larger than this is not kept (the daemon refuses longer lines as well).
MAX_ITEM = 1 << 20
#: Items go to the daemon in batches of at most this size (one batch is checked in a few ms)...
BATCH = 128 << 10
#: ...and at most this much waits for a daemon that cannot be reached; later items are dropped, and counted.
MAX_BACKLOG = 64 << 20
#: Tries to hand over what is left when the spider closes, a second apart.
CLOSE_TRIES = 3
DROPPED = "scrapy-do/items_dropped"
#: ItemCapture's place among the item pipelines: the last.
PIPELINE_ORDER = 1 << 30
_ORJSON = orjson and (orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)
_dumps = orjson and orjson.dumps


class Refused(OSError):
    """The daemon answered, and not with 200."""

    def __init__(self, code, body):
        super().__init__(f"the daemon answered {code}: {body[:200]!r}")
        self.code = code


def json_safe(value):
    """Stats values as JSON: datetimes in ISO 8601 with their offset, anything else unknown as text."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.isoformat()
    if isinstance(value, (datetime.date, datetime.timedelta)):
        return str(value)
    return repr(value)


def item_value(value):
    """What JSON cannot hold, as users would expect to read it back; TypeError for anything else."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (set, frozenset)):
        try:
            return sorted(value)
        except TypeError:
            return list(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (uuid.UUID, PurePath)):
        return str(value)
    from itemadapter import ItemAdapter, is_item

    if is_item(value):
        return ItemAdapter(value).asdict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def encode_item(item):
    """One JSON Lines line (bytes, with its newline) for a scraped item.

    orjson keeps the cost per item far below Scrapy's own (bench/items.py); what it refuses (a lone
    surrogate, an integer past 64 bits) goes through the standard library, as ASCII.
    """
    if type(item) is not dict:
        from itemadapter import ItemAdapter

        item = ItemAdapter(item).asdict()
    if orjson is not None:
        try:
            return orjson.dumps(item, default=item_value, option=_ORJSON)
        except orjson.JSONEncodeError as e:
            if isinstance(e.__cause__, TypeError) or "not JSON serializable" in str(e):
                raise TypeError(str(e)) from None
    return json.dumps(item, default=item_value, allow_nan=False, separators=(",", ":")).encode() + b"\n"


PROCESSOR = "scrapy_do.crawl.reporter.ItemProcessor"


def _capturing_processor():
    """Scrapy's own item processor (ITEM_PROCESSOR), which also hands each item that passed every pipeline
    of the project to the Reporter.

    The item processor, not a pipeline of ours: each pipeline costs Scrapy's chain about 1.5 µs per item
    (a coroutine for each call), which alone was +4 % on a fast crawl (bench/items.py); an item_scraped
    receiver costs about 10 µs. A project with an ITEM_PROCESSOR of its own keeps it, and gets ItemCapture.
    """
    from scrapy.pipelines import ItemPipelineManager

    class ItemProcessor(ItemPipelineManager):
        @classmethod
        def from_crawler(cls, crawler):
            manager = super().from_crawler(crawler)
            reporter = getattr(crawler, "scrapy_do_reporter", None)
            manager.capture = reporter.capture if reporter is not None and reporter.items_url else None
            return manager

        if hasattr(ItemPipelineManager, "process_item_async"):  # Scrapy 2.14 and later
            async def process_item_async(self, item):
                item = await super().process_item_async(item)
                if self.capture is not None:
                    self.capture(item)
                return item
        else:
            def process_item(self, item, spider):
                def captured(item):
                    if self.capture is not None:
                        self.capture(item)
                    return item
                return super().process_item(item, spider).addCallback(captured)

    ItemProcessor.__module__, ItemProcessor.__qualname__ = __name__, "ItemProcessor"
    return ItemProcessor


def __getattr__(name):
    """ItemProcessor is made on first use (Scrapy's load_object), so importing this module imports no more
    of Scrapy than the extension needs."""
    if name == "ItemProcessor":
        globals()[name] = _capturing_processor()
        return globals()[name]
    raise AttributeError(name)


class ItemCapture:
    """The last item pipeline, for a project whose own ITEM_PROCESSOR replaced ours: hands each item that
    passed the project's pipelines to the Reporter."""

    def __init__(self, reporter):
        self.reporter = reporter

    @classmethod
    def from_crawler(cls, crawler):
        reporter = getattr(crawler, "scrapy_do_reporter", None)
        if reporter is None or not reporter.items_url:
            raise NotConfigured("no items to hand over")
        if crawler.settings.get("ITEM_PROCESSOR") == PROCESSOR:
            raise NotConfigured  # the item processor hands them over (no message: Scrapy would log a warning)
        return cls(reporter)

    def process_item(self, item, spider=None):
        self.reporter.capture(item)
        return item


class Reporter:
    def __init__(self, crawler, config, clock=time.monotonic):
        self.crawler = crawler
        self.url = config["url"].encode()
        self.token = config["token"]
        self.interval = float(config.get("interval", 2))
        self.items_url = config.get("items")
        self.clock = clock
        self.started = clock()
        self.samples = deque()
        self.loop = None
        self.in_flight = None
        # Items not yet acknowledged by the daemon, as batches [JSON Lines, count] and then the batch being
        # filled; the first item of `pending[0]` has index `acked`. Lines go into one buffer as they are
        # encoded: keeping each line as its own bytes object cost 3 µs per item in page faults, a
        # buffer 0.2 µs (bench/items.py).
        self.pending = deque()
        self.filling = bytearray()
        self.filling_count = 0
        self.pending_size = 0
        self.acked = 0
        self.items_in_flight = None
        self.items_failed = False  # the last batch got no answer: the next try waits for the next tick
        self.dropping = False
        self.capturing = bool(self.items_url)
        crawler.signals.connect(self.engine_started, signal=signals.engine_started)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)
        crawler.scrapy_do_reporter = self  # what ItemCapture hands the items to

    @classmethod
    def from_crawler(cls, crawler):
        if CONFIG is None:
            raise NotConfigured("no daemon to report to")
        return cls(crawler, CONFIG)

    def summary(self):
        """What job records show while the crawl runs."""
        stats = self.crawler.stats.get_stats()
        now = self.clock()
        items = stats.get("item_scraped_count", 0)
        pages = stats.get("response_received_count", 0)
        self.samples.append((now, items, pages))
        while len(self.samples) > 1 and now - self.samples[0][0] > WINDOW:
            self.samples.popleft()
        first_at, first_items, first_pages = self.samples[0]
        span = now - first_at
        per_minute = (lambda a, b: round((a - b) * 60.0 / span, 1)) if span > 0 else (lambda a, b: 0.0)
        return {"items": items, "requests": stats.get("downloader/request_count", 0),
                "responses": stats.get("downloader/response_count", 0), "errors": error_count(stats),
                "items-per-minute": per_minute(items, first_items), "pages-per-minute": per_minute(pages, first_pages),
                "elapsed": round(now - self.started, 1)}

    def engine_started(self):
        from twisted.internet import task

        self.loop = task.LoopingCall(self.tick)
        self.loop.start(self.interval, now=True)

    def tick(self):
        self.items_failed = False
        self.send_items()
        self.report()

    def report(self, final=False, reason=None):
        if self.in_flight is not None and not final:
            return None  # the previous report is still on its way; the next one carries its news too
        body = {"summary": self.summary(), "stats": self.crawler.stats.get_stats(), "final": final}
        if final:
            body["finish-reason"] = reason
        d = self._post(self.url, json.dumps(body, default=json_safe).encode())
        self.in_flight = d
        d.addBoth(self._sent)
        return d

    def _sent(self, result):
        self.in_flight = None
        return None  # a lost report is not the crawl's problem

    # -- items ------------------------------------------------------------

    def capture(self, item):
        """Keep an item for the daemon. It runs for every item, so its common path is a few lines: a plain dict
        orjson takes, that fits (bench/items.py)."""
        if not self.capturing:
            return
        line = None
        if _dumps is not None and type(item) is dict:
            try:
                line = _dumps(item, default=item_value, option=_ORJSON)
            except Exception:
                pass  # encode_item says why, or manages with the standard library
        if line is None:
            try:
                line = encode_item(item)
            except (TypeError, ValueError, RecursionError) as e:
                return self._drop(f"it cannot be written as JSON ({e})")
        size = len(line)
        if size > MAX_ITEM:
            return self._drop(f"its JSON takes {size} bytes, more than {MAX_ITEM}")
        if self.pending_size + size > MAX_BACKLOG:
            if not self.dropping:
                log.error("scrapy-do: %d bytes of items wait for the daemon; further items are dropped until "
                          "it takes them", self.pending_size)
            self.dropping = True
            self.crawler.stats.inc_value(DROPPED)
            return
        filling = self.filling
        if self.filling_count and len(filling) + size > BATCH:
            self._full()
            filling = self.filling
        filling += line
        self.filling_count += 1
        self.pending_size += size
        if len(filling) >= BATCH:
            self._full()

    def _drop(self, why):
        self.crawler.stats.inc_value(DROPPED)
        log.error("scrapy-do: an item was not kept: %s", why)

    def _full(self):
        self._seal()
        if not self.items_failed:
            self.send_items()

    @property
    def waiting(self):
        """How many items wait for the daemon's acknowledgement."""
        return sum(count for _, count in self.pending) + self.filling_count

    def _seal(self):
        """The batch being filled is complete: it joins the ones to send."""
        if self.filling_count:
            self.pending.append([bytes(self.filling), self.filling_count])
            self.filling, self.filling_count = bytearray(), 0

    def _clear(self):
        self.pending.clear()
        self.filling, self.filling_count, self.pending_size = bytearray(), 0, 0

    def send_items(self):
        """Send the next batch (at most BATCH bytes, or one larger item), unless one is on its way; returns its
        Deferred (None: nothing sent)."""
        if self.items_in_flight is not None:
            return None
        if not self.pending:
            self._seal()
            if not self.pending:
                return None
        data, count = self.pending[0]
        url = self.items_url.encode() + b"?first=%d" % self.acked
        d = self._post(url, data, b"application/x-ndjson")
        d.addCallbacks(self._items_taken, self._items_refused)
        self.items_in_flight = d
        d.addBoth(self._items_sent)
        return d

    def _forget(self, count):
        """The first `count` waiting items are the daemon's now (or dropped)."""
        while count > 0 and (self.pending or self.filling_count):
            if not self.pending:
                self._seal()
            batch = self.pending[0]
            data, held = batch
            if count >= held:
                self.pending.popleft()
                self.pending_size -= len(data)
                self.acked += held
                count -= held
                continue
            cut = 0
            for _ in range(count):  # an acknowledgement within a batch: only after a daemon restart
                cut = data.index(b"\n", cut) + 1
            batch[:] = [data[cut:], held - count]
            self.pending_size -= cut
            self.acked += count
            return

    def _items_taken(self, body):
        answer = json.loads(body)
        if answer.get("capped"):
            # The daemon keeps no more of this job's items (max-items-size): stop sending them.
            self.capturing = False
            self._clear()
            return True
        self._forget(int(answer["received"]) - self.acked)
        self.dropping = self.dropping and self.pending_size > MAX_BACKLOG // 2
        return True

    def _items_refused(self, failure):
        """A batch the daemon refuses as such (400, 413) would be refused again: drop it, counted."""
        if failure.check(Refused) and failure.value.code in (400, 413):
            count = self.pending[0][1]
            log.error("scrapy-do: the daemon refused %d items: %s", count, failure.value)
            self.crawler.stats.inc_value(DROPPED, count)
            self._forget(count)
            return True
        return failure

    def _items_sent(self, result):
        self.items_in_flight = None
        self.items_failed = result is not True
        if result is True and self.pending:
            self.send_items()  # a fast crawl: the next batch is already full
        return result is True

    def _drain(self, tries=CLOSE_TRIES):
        """Hand over every item left (the final report follows), trying again a few times if the daemon is away."""
        from twisted.internet import defer, reactor, task

        if not self.waiting or tries <= 0:
            if self.waiting:
                log.error("scrapy-do: %d scraped items could not be handed to the daemon", self.waiting)
            return defer.succeed(None)
        d = self.send_items() if self.items_in_flight is None else self.items_in_flight

        def next_step(ok):
            if ok:
                return self._drain(tries)
            return task.deferLater(reactor, 1.0, self._drain, tries - 1)
        return d.addCallback(next_step)

    # -- sending ----------------------------------------------------------

    def _post(self, url, data, content_type=b"application/json"):
        from twisted.internet import reactor
        from twisted.web.client import Agent, FileBodyProducer
        from twisted.web.http_headers import Headers

        agent = Agent(reactor, connectTimeout=SEND_TIMEOUT)
        headers = Headers({b"content-type": [content_type],
                           b"authorization": [f"Bearer {self.token}".encode()]})
        d = agent.request(b"POST", url, headers, FileBodyProducer(BytesIO(data)))
        d.addCallback(self._check_answer)
        d.addTimeout(SEND_TIMEOUT, reactor)
        return d

    @staticmethod
    def _check_answer(response):
        """The answer's body; a refusal (403 once the job is over, 400, 413) is a failure to send."""
        from twisted.web.client import readBody

        def refused(body):
            raise Refused(response.code, body)

        d = readBody(response)
        if response.code != 200:
            d.addCallback(refused)
        return d

    async def spider_closed(self, spider, reason):
        """Hand over the last items, then the last report with Scrapy's final stats; Scrapy waits for both
        (seconds at most)."""
        from scrapy.utils.defer import maybe_deferred_to_future

        if self.loop is not None and self.loop.running:
            self.loop.stop()
        d = self._drain()
        d.addCallback(lambda _: self.report(final=True, reason=reason))
        await maybe_deferred_to_future(d)
