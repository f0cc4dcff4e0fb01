"""The crawl's reporter (its summary over the last minute, JSON-safe stats) and the controller's side of it."""

import datetime
import json

import pytest

from scrapy_do.crawl import reporter
from scrapy_do.domain.models import JobStatus
from scrapy_do.errors import BadRequest, Forbidden


class Stats:
    def __init__(self):
        self.values = {}

    def get_stats(self):
        return dict(self.values)


class Signals:
    def connect(self, *args, **kwargs):
        pass


class Crawler:
    def __init__(self):
        self.stats = Stats()
        self.signals = Signals()


def test_the_summary_counts_and_rates_over_the_last_minute():
    now = [100.0]
    crawler = Crawler()
    r = reporter.Reporter(crawler, {"url": "http://127.0.0.1:1/report/x.json", "token": "t"}, clock=lambda: now[0])
    assert r.summary()["items"] == 0
    for t, items in ((130.0, 60), (160.0, 120), (200.0, 130)):
        now[0] = t
        crawler.stats.values.update({"item_scraped_count": items, "response_received_count": items,
                                     "downloader/request_count": items + 1, "log_count/ERROR": 2,
                                     "spider_exceptions/ValueError": 3})
        summary = r.summary()
    # At 200 s the window holds 160..200: 10 items in 40 s.
    assert summary == {"items": 130, "requests": 131, "responses": 0, "errors": 5, "items-per-minute": 15.0,
                       "pages-per-minute": 15.0, "elapsed": 100.0}


def test_stats_values_become_json_with_offsets():
    naive = datetime.datetime(2026, 12, 1, 12, 0, 0)
    text = json.dumps({"start_time": naive, "other": {1, 2}}, default=reporter.json_safe)
    assert json.loads(text)["start_time"] == "2026-12-01T12:00:00+00:00"


def test_without_a_daemon_to_report_to_the_extension_stays_out():
    from scrapy.exceptions import NotConfigured

    reporter.CONFIG = None
    with pytest.raises(NotConfigured):
        reporter.Reporter.from_crawler(Crawler())


def test_a_report_needs_the_runs_own_token_and_changes_nothing_otherwise(controller, launcher):
    controller.push()
    controller.report_url = "http://127.0.0.1:7654"
    a, b = controller.schedule_job("proj", "slow"), controller.schedule_job("proj", "slow")
    tokens = {c.request.job_id: c.request.report["token"] for c in launcher.launched}
    assert tokens[a.identifier] != tokens[b.identifier]
    assert launcher.launched[0].request.report["url"] == f"http://127.0.0.1:7654/report/{a.identifier}.json"
    body = {"stats": {"item_scraped_count": 3}, "summary": {"items": 3}}
    with pytest.raises(Forbidden):
        controller.report(a.identifier, tokens[b.identifier], body)
    assert controller.get_job(a.identifier).stats is None
    with pytest.raises(BadRequest):
        controller.report(a.identifier, tokens[a.identifier], {"stats": []})
    controller.report(a.identifier, tokens[a.identifier], body)
    assert controller.get_job(a.identifier).stats == {"items": 3}
    assert controller.job_stats(a.identifier) == {"item_scraped_count": 3}
    controller.report(a.identifier, tokens[a.identifier],
                      {**body, "final": True, "finish-reason": "finished"})
    launcher.by_job(a.identifier).finish(0)
    done = controller.get_job(a.identifier)
    assert done.status is JobStatus.SUCCESSFUL and done.stats == {"item_scraped_count": 3, "finish-reason": "finished"}
    with pytest.raises(Forbidden):  # its token dies with the run
        controller.report(a.identifier, tokens[a.identifier], body)
