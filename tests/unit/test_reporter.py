"""The crawl's reporter (its summary over the last minute, JSON-safe stats) and the controller's side of it."""

import dataclasses
import datetime
import json

import pytest

from scrapy_do.crawl import reporter
from scrapy_do.domain.models import JobStatus
from scrapy_do.errors import BadRequest, Forbidden
from tests.helpers import result_of


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
    assert summary == {"items": 130, "requests": 131, "responses": 0, "errors": 3, "items-per-minute": 15.0,
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
    assert controller.job_stats(a.identifier) == ({"item_scraped_count": 3}, ())
    controller.report(a.identifier, tokens[a.identifier],
                      {**body, "final": True, "finish-reason": "finished"})
    launcher.by_job(a.identifier).finish(0)
    done = controller.get_job(a.identifier)
    assert done.status is JobStatus.SUCCESSFUL and done.stats == {"item_scraped_count": 3, "finish-reason": "finished"}
    with pytest.raises(Forbidden):  # its token dies with the run
        controller.report(a.identifier, tokens[a.identifier], body)


# -- items ------------------------------------------------------------------

def test_awkward_item_values_are_encoded_as_users_read_them_back():
    import decimal

    import scrapy

    class Thing(scrapy.Item):
        name = scrapy.Field()

    when = datetime.datetime(2026, 12, 1, 10, 30, tzinfo=datetime.timezone.utc)
    line = reporter.encode_item({"raw": b"caf\xc3\xa9 \xff", "when": when, "day": datetime.date(2026, 1, 2),
                                 "price": decimal.Decimal("19.99"), "tags": {"b", "a"}, "mixed": {1, "a"},
                                 "thing": Thing(name="x"), "lone": "\ud800"})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    value = json.loads(line)
    assert value["raw"] == "café \\xff" and value["when"] == "2026-12-01T10:30:00+00:00"
    assert value["day"] == "2026-01-02" and value["price"] == "19.99" and value["tags"] == ["a", "b"]
    assert sorted(map(str, value["mixed"])) == ["1", "a"] and value["thing"] == {"name": "x"}
    assert value["lone"] == "\ud800"
    assert json.loads(reporter.encode_item(Thing(name="y"))) == {"name": "y"}
    with pytest.raises(TypeError):
        reporter.encode_item({"x": object()})


class ItemStats(Stats):
    def inc_value(self, key, count=1):
        self.values[key] = self.values.get(key, 0) + count


class Sent:
    """Stands in for the HTTP post: records batches; the test answers them."""

    def __init__(self):
        self.batches = []

    def __call__(self, url, data, content_type=b"application/json"):
        from twisted.internet import defer

        d = defer.Deferred()
        self.batches.append((url, data, d))
        return d


def items_reporter(monkeypatch, batch=100):
    monkeypatch.setattr(reporter, "BATCH", batch)
    crawler = Crawler()
    crawler.stats = ItemStats()
    r = reporter.Reporter(crawler, {"url": "http://127.0.0.1:1/report/x.json", "token": "t",
                                    "items": "http://127.0.0.1:1/report/x/items.jl"})
    r._post = Sent()
    return r


def test_items_go_in_batches_kept_until_acknowledged_and_sent_again_after_a_failure(monkeypatch):
    r = items_reporter(monkeypatch)
    for i in range(10):
        r.capture({"n": i, "pad": "x" * 20})
    url, data, d = r._post.batches[0]
    assert url.endswith(b"?first=0") and data.count(b"\n") == 2  # at most BATCH bytes, whole items
    d.errback(OSError("daemon away"))
    assert r.acked == 0 and r.waiting == 10
    r.send_items()
    url, data, d = r._post.batches[1]
    assert url.endswith(b"?first=0")
    d.callback(json.dumps({"received": 2, "capped": False}).encode())
    assert r.acked == 2 and r.waiting == 8
    url, data, d = r._post.batches[2]  # the backlog was full: sent at once
    assert url.endswith(b"?first=2") and json.loads(data.split(b"\n")[0])["n"] == 2


def test_unencodable_and_huge_items_are_dropped_as_counted_errors(monkeypatch, caplog):
    r = items_reporter(monkeypatch, batch=1 << 30)
    r.capture({"thing": object()})
    r.capture({"blob": "x" * reporter.MAX_ITEM})
    r.capture({"fine": 1})
    assert r.crawler.stats.values[reporter.DROPPED] == 2 and r.waiting == 1
    assert sum(rec.levelname == "ERROR" for rec in caplog.records) == 2


def test_a_capped_job_stops_the_sending(monkeypatch):
    r = items_reporter(monkeypatch, batch=5)
    r.capture({"n": 1})
    r._post.batches[0][2].callback(b'{"received": 0, "capped": true}')
    assert not r.waiting and r.pending_size == 0
    r.capture({"n": 2})
    assert not r.waiting and len(r._post.batches) == 1


def _reporting(controller, launcher, spider="slow", **options):
    controller.push()
    controller.report_url = "http://127.0.0.1:7654"
    job = controller.schedule_job("proj", spider, **options)
    request = launcher.by_job(job.identifier).request
    return job.identifier, request.report["token"], request.report


def _lines(*items):
    return b"".join(json.dumps(i).encode() + b"\n" for i in items)


def test_items_are_appended_once_in_order_and_refused_unless_whole_json_objects(controller, launcher, config):
    ident, token, report = _reporting(controller, launcher)
    assert report["items"] == f"http://127.0.0.1:7654/report/{ident}/items.jl"
    path = controller.items_path(ident)
    assert path.read_bytes() == b""
    assert controller.report_items(ident, token, 0, _lines({"n": 0}, {"n": 1})) == {"received": 2, "capped": False}
    # The same batch again (its answer was lost), then one overlapping it: each item kept once.
    assert controller.report_items(ident, token, 0, _lines({"n": 0}, {"n": 1}))["received"] == 2
    assert controller.report_items(ident, token, 1, _lines({"n": 1}, {"n": 2}))["received"] == 3
    for bad in (b'{"n": 3}', b'{"n": 3}\n[1]\n', b'{"n": 3}\n{"cut": \n', b"\xff\n"):
        with pytest.raises(BadRequest):
            controller.report_items(ident, token, 3, bad)
    with pytest.raises(Forbidden):
        controller.report_items(ident, "not-the-token", 3, _lines({"n": 3}))
    assert [json.loads(line)["n"] for line in path.read_bytes().splitlines()] == [0, 1, 2]


def test_items_past_max_items_size_keep_the_head_and_say_so_in_the_reason(controller, launcher, config,
                                                                          monkeypatch):
    monkeypatch.setattr(controller, "config", dataclasses.replace(config, max_items_size=25))
    ident, token, _ = _reporting(controller, launcher)
    answer = controller.report_items(ident, token, 0, _lines({"n": 0}, {"n": 1}, {"n": 2}))
    assert answer["capped"] is True
    assert controller.items_path(ident).read_bytes() == _lines({"n": 0}, {"n": 1})
    launcher.by_job(ident).finish(0)
    done = controller.get_job(ident)
    assert done.status is JobStatus.SUCCESSFUL
    assert done.reason == "items capped at max-items-size (25 bytes)"


def test_errors_are_counted_and_fail_on_errors_fails_the_run(controller, launcher):
    stats = {"log_count/ERROR": 2, "spider_exceptions/ValueError": 1, "item_scraped_count": 1,
             "elapsed_time_seconds": 3.0}
    controller.push()
    controller.report_url = "http://127.0.0.1:7654"
    outcomes = {}
    for fail in ("", "on", "off"):
        job = controller.schedule_job("proj", "slow", **({"fail-on-errors": fail} if fail else {}))
        token = launcher.by_job(job.identifier).request.report["token"]
        controller.report(job.identifier, token, {"stats": stats, "summary": {"errors": 2, "elapsed": 2.0,
                                                                              "items": 1},
                                                  "final": True, "finish-reason": "finished"})
        assert controller.get_job(job.identifier).errors == 2
        launcher.by_job(job.identifier).finish(0)
        outcomes[fail] = controller.get_job(job.identifier)
    for fail, status, reason in (("", JobStatus.SUCCESSFUL, None), ("on", JobStatus.FAILED, "errors"),
                                 ("off", JobStatus.SUCCESSFUL, None)):
        done = outcomes[fail]
        assert (done.status, done.reason, done.errors, done.exit_code) == (status, reason, 2, 0)
    assert outcomes[""].samples == ((2.0, 1, 0), (3.0, 1, 0))
    assert outcomes["on"].options.fail_on_errors is True


def test_items_files_go_with_the_job_when_completed_cap_purges_it(controller, launcher, config):
    ident, token, _ = _reporting(controller, launcher, spider="quick")
    path = controller.items_path(ident)
    launcher.by_job(ident).finish(0)
    assert path.exists()
    for _ in range(config.completed_cap):
        job = controller.schedule_job("proj", "quick")
        launcher.by_job(job.identifier).finish(0)
    assert not path.exists()


def test_a_batch_the_daemon_refuses_is_dropped_and_counted_not_sent_forever(monkeypatch):
    r = items_reporter(monkeypatch, batch=30)
    for i in range(4):
        r.capture({"n": i})
    url, data, d = r._post.batches[0]
    d.errback(reporter.Refused(400, b'{"status": "error"}'))
    assert r.crawler.stats.values[reporter.DROPPED] == data.count(b"\n") and r.acked == data.count(b"\n")
    assert r.waiting == 4 - r.acked


def test_a_crawl_re_attached_after_a_daemon_restart_goes_on_reporting_with_its_token(config, store, clock,
                                                                                    tmp_path):
    from scrapy_do.engine.controller import Controller
    from tests.fakes import FakeCrawl, FakeLauncher, FakeProjects
    from tests.helpers import result_of

    projects = FakeProjects(tmp_path / "trees")
    first_launcher = FakeLauncher()
    first = Controller(config, store, projects, first_launcher, clock)
    first.startService()
    projects.next = ("proj", ("slow",))
    result_of(first.push_project(b"zip"))
    first.report_url = "http://127.0.0.1:7654"
    job = first.schedule_job("proj", "slow")
    crawl = first_launcher.by_job(job.identifier)
    token = crawl.request.report["token"]
    first.report_items(job.identifier, token, 0, _lines({"n": 0}, {"n": 1}))
    # The daemon dies (no stopService: its crawl goes on); a new one finds the crawl still running.
    assert store.get_job(job.identifier).report_key not in (None, token)
    second_launcher = FakeLauncher()
    crawl = FakeCrawl(crawl.request)  # the same process, as the new daemon's launcher re-attaches to it
    second_launcher.alive[store.get_job(job.identifier).handle] = crawl
    second = Controller(config, store, projects, second_launcher, clock)
    second.startService()
    assert second.report_items(job.identifier, token, 1, _lines({"n": 1}, {"n": 2})) == {"received": 3,
                                                                                        "capped": False}
    with pytest.raises(Forbidden):
        second.report_items(job.identifier, "guess", 3, _lines({"n": 3}))
    second.report(job.identifier, token, {"stats": {"item_scraped_count": 3}, "summary": {"items": 3, "elapsed": 1},
                                          "final": True, "finish-reason": "finished"})
    crawl.finish(0)
    done = second.get_job(job.identifier)
    assert done.status is JobStatus.SUCCESSFUL and done.stats["item_scraped_count"] == 3
    assert done.report_key is None  # the token dies with the run
    assert [json.loads(x)["n"] for x in second.items_path(job.identifier).read_bytes().splitlines()] == [0, 1, 2]
    second.stopService()


def test_a_run_that_starts_again_after_a_shutdown_keeps_the_items_of_each_attempt(controller, launcher):
    ident, token, _ = _reporting(controller, launcher)
    controller.report_items(ident, token, 0, _lines({"attempt": 1, "n": 0}, {"attempt": 1, "n": 1}))
    stopped = controller.stopService()  # its crawl ends with the shutdown: queued again
    launcher.by_job(ident).finish(-15)
    result_of(stopped)
    assert controller.get_job(ident).status is JobStatus.PENDING
    controller.startService()
    [again] = [c for c in launcher.launched if c.request.job_id == ident][1:]
    token = again.request.report["token"]
    assert controller.report_items(ident, token, 0, _lines({"attempt": 2, "n": 0}))["received"] == 1
    assert [(json.loads(x)["attempt"], json.loads(x)["n"]) for x in
            controller.items_path(ident).read_bytes().splitlines()] == [(1, 0), (1, 1), (2, 0)]


def test_a_daemon_out_of_reach_is_tried_again_at_the_next_tick_not_for_every_item(monkeypatch):
    r = items_reporter(monkeypatch, batch=20)
    for i in range(3):
        r.capture({"n": i})
    r._post.batches[0][2].errback(OSError("refused"))
    for i in range(3, 50):
        r.capture({"n": i})
    assert len(r._post.batches) == 1
    r.report = lambda *a, **k: None
    r.tick()
    assert len(r._post.batches) == 2 and r._post.batches[1][0].endswith(b"?first=0")


def test_an_acknowledgement_within_a_batch_keeps_the_rest_of_it_for_the_next(monkeypatch):
    """After a daemon restart it may have kept only the head of a batch: the rest is sent again, from there."""
    r = items_reporter(monkeypatch, batch=1 << 20)
    for i in range(3):
        r.capture({"n": i})
    assert not r._post.batches and r.waiting == 3
    r.send_items()
    url, data, d = r._post.batches[0]
    assert url.endswith(b"?first=0") and data.count(b"\n") == 3
    d.callback(b'{"received": 1, "capped": false}')
    assert (r.acked, r.waiting, r.pending_size) == (1, 2, len(data) - len(b'{"n":0}\n'))
    r.send_items()
    url, data, d = r._post.batches[1]
    assert url.endswith(b"?first=1") and [json.loads(x)["n"] for x in data.splitlines()] == [1, 2]
    d.callback(b'{"received": 3, "capped": false}')
    assert (r.acked, r.waiting, r.pending_size) == (3, 0, 0)
