"""The daemon's Scrapy extension: reports a crawl's stats back to the daemon while it runs.

`child.py` adds it to Scrapy's own EXTENSIONS_BASE when the daemon sent a
report address and token (the user's EXTENSIONS stay as they are). Every
`interval` seconds, and once more when the spider closes, it POSTs the
stats to `POST /report/<job-id>.json` with the job's token. Over HTTP, so it
also works from another machine. Stats are cumulative: a report that fails
(the daemon is busy or gone) is simply caught up by the next one, and the
crawl never waits for the daemon longer than a few seconds.
"""

import datetime
import json
import time
from collections import deque
from io import BytesIO

from scrapy import signals
from scrapy.exceptions import NotConfigured

#: Set by child.py from what the daemon sent on stdin: {"url": ..., "token": ..., "interval": seconds}.
CONFIG = None
WINDOW = 60.0
SEND_TIMEOUT = 5.0


def json_safe(value):
    """Stats values as JSON: datetimes in ISO 8601 with their offset, anything else unknown as text."""
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.isoformat()
    if isinstance(value, (datetime.date, datetime.timedelta)):
        return str(value)
    return repr(value)


def error_count(stats):
    return stats.get("log_count/ERROR", 0) + sum(v for k, v in stats.items()
                                                  if k.startswith("spider_exceptions/") and isinstance(v, int))


class Reporter:
    def __init__(self, crawler, config, clock=time.monotonic):
        self.crawler = crawler
        self.url = config["url"].encode()
        self.token = config["token"]
        self.interval = float(config.get("interval", 2))
        self.clock = clock
        self.started = clock()
        self.samples = deque()
        self.loop = None
        self.in_flight = None
        crawler.signals.connect(self.engine_started, signal=signals.engine_started)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

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

        self.loop = task.LoopingCall(self.report)
        self.loop.start(self.interval, now=True)

    def report(self, final=False, reason=None):
        if self.in_flight is not None and not final:
            return None  # the previous report is still on its way; the next one carries its news too
        body = {"summary": self.summary(), "stats": self.crawler.stats.get_stats(), "final": final}
        if final:
            body["finish-reason"] = reason
        d = self._post(json.dumps(body, default=json_safe).encode())
        self.in_flight = d
        d.addBoth(self._sent)
        return d

    def _sent(self, result):
        self.in_flight = None
        return None  # a lost report is not the crawl's problem

    def _post(self, data):
        from twisted.internet import reactor
        from twisted.web.client import Agent, FileBodyProducer, readBody
        from twisted.web.http_headers import Headers

        agent = Agent(reactor, connectTimeout=SEND_TIMEOUT)
        headers = Headers({b"content-type": [b"application/json"],
                           b"authorization": [f"Bearer {self.token}".encode()]})
        d = agent.request(b"POST", self.url, headers, FileBodyProducer(BytesIO(data)))
        d.addCallback(readBody)
        d.addTimeout(SEND_TIMEOUT, reactor)
        return d

    def spider_closed(self, spider, reason):
        """The last report, with Scrapy's final stats; Scrapy waits for it (a few seconds at most)."""
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        return self.report(final=True, reason=reason)
