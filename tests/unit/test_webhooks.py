"""Webhook deliveries on a test clock: who gets what, signatures, back-off, rests, bounds, durability.

The receiver is the one true boundary here (`post`); the store is the real SQLite one, in memory.
"""

import hashlib
import hmac
import json
from datetime import datetime, timezone

import pytest
from twisted.internet import defer, task

from scrapy_do.config import Hook, WEBHOOK_EVENTS
from scrapy_do.domain import deliveries as D
from scrapy_do.domain.models import Actor, JobStatus, Project, Run, RunOptions, Schedule
from scrapy_do.engine.webhooks import Webhooks
from scrapy_do.events import JobChanged, ProjectPushed, ScheduleSkipped
from scrapy_do.store import SqliteStore

T0 = 1_800_000_000.0
ALL = frozenset(WEBHOOK_EVENTS)


class Engine:
    def __init__(self):
        self.listeners = []

    def subscribe(self, listener):
        self.listeners.append(listener)
        return lambda: self.listeners.remove(listener)

    def emit(self, event):
        for listener in self.listeners:
            listener(event)


class Receiver:
    """Each POST waits on a Deferred the test fires with a status code or fails."""

    def __init__(self):
        self.calls = []

    def __call__(self, url, body, headers):
        d = defer.Deferred()
        self.calls.append((url, body, headers, d))
        return d

    def answer(self, code=200, index=0):
        url, body, headers, d = self.calls.pop(index)
        d.callback(code)
        return url, body, headers


def run(status=JobStatus.SUCCESSFUL, ident="run-1", notify=""):
    return Run(identifier=ident, status=status, actor=Actor.USER, project="p",
               options=RunOptions(spider="s", notify=notify), timestamp=datetime(2027, 1, 1, tzinfo=timezone.utc))


@pytest.fixture
def world():
    clock = task.Clock()
    clock.advance(T0)
    store = SqliteStore(":memory:").open()
    engine = Engine()
    receiver = Receiver()

    def make(hooks=(("http://a/hook", ALL),), **kwargs):
        hooks = tuple(Hook(url, frozenset(events)) for url, events in hooks)
        webhooks = Webhooks(engine, store, clock, hooks=hooks, post=receiver, **kwargs)
        webhooks.startService()
        return webhooks

    yield clock, store, engine, receiver, make
    store.close()


def test_a_run_end_is_posted_signed_with_its_record(world):
    clock, store, engine, receiver, make = world
    make(secret="s3cret")
    engine.emit(JobChanged(run()))
    url, body, headers, _ = receiver.calls[0]
    assert url == "http://a/hook"
    expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Scrapy-Do-Signature"] == expected
    data = json.loads(body)
    assert data["event"] == "job-ended" and data["job"]["identifier"] == "run-1"
    assert data["job"]["status"] == "SUCCESSFUL" and data["delivery"] == headers["X-Scrapy-Do-Delivery"]
    assert data["timestamp"].startswith("2027-01-15") and headers["X-Scrapy-Do-Event"] == "job-ended"
    receiver.answer(204)
    assert store.count_deliveries() == {"delivered": 1}


def test_no_secret_no_signature(world):
    clock, store, engine, receiver, make = world
    make()
    engine.emit(JobChanged(run()))
    assert "X-Scrapy-Do-Signature" not in receiver.calls[0][2]


def test_active_runs_and_repeated_news_make_no_delivery(world):
    clock, store, engine, receiver, make = world
    make()
    engine.emit(JobChanged(run(JobStatus.RUNNING)))
    engine.emit(JobChanged(run(JobStatus.PENDING)))
    assert receiver.calls == []
    engine.emit(JobChanged(run()))
    engine.emit(JobChanged(run()))  # the same end told twice
    assert len(receiver.calls) == 1 and store.count_deliveries() == {"pending": 1}


def test_each_hook_hears_only_what_it_asked_for(world):
    clock, store, engine, receiver, make = world
    make(hooks=(("http://ended/", {"job-ended"}), ("http://failed/", {"job-failed"}),
                ("http://pushed/", {"project-pushed"}), ("http://skipped/", {"schedule-skipped"})),
         concurrency=10)
    engine.emit(JobChanged(run(JobStatus.SUCCESSFUL, "ok")))
    engine.emit(JobChanged(run(JobStatus.FAILED, "bad")))
    schedule = Schedule(identifier="sch", status=JobStatus.SCHEDULED, actor=Actor.USER, project="p",
                        options=RunOptions(spider="s"), timestamp=datetime(2027, 1, 1, tzinfo=timezone.utc),
                        spec="every 10 minutes", skipped=1)
    engine.emit(ScheduleSkipped(schedule))
    engine.emit(ProjectPushed(Project("p", ("s",), "tree", datetime(2027, 1, 1, tzinfo=timezone.utc))))
    seen = sorted((url, json.loads(body)["event"], (json.loads(body).get("job") or {}).get("identifier"))
                  for url, body, _, _ in receiver.calls)
    assert seen == [("http://ended/", "job-ended", "bad"), ("http://ended/", "job-ended", "ok"),
                    ("http://failed/", "job-failed", "bad"), ("http://pushed/", "project-pushed", None),
                    ("http://skipped/", "schedule-skipped", "sch")]


def test_a_runs_notify_url_hears_its_end_without_any_hook(world):
    clock, store, engine, receiver, make = world
    make(hooks=())
    engine.emit(JobChanged(run(notify="http://mine/x?key=secret")))
    assert [c[0] for c in receiver.calls] == ["http://mine/x?key=secret"]
    # The record in the body shows the job's own receiver by origin, as hooks are shown.
    assert json.loads(receiver.calls[0][1])["job"]["notify"] == "http://mine/…"


def test_a_skipped_schedules_record_shows_its_notify_url_by_origin(world):
    clock, store, engine, receiver, make = world
    make(hooks=(("http://skips/", {"schedule-skipped"}),))
    schedule = Schedule(identifier="sch", status=JobStatus.SCHEDULED, actor=Actor.USER, project="p",
                        options=RunOptions(spider="s", notify="https://hooks.slack.com/services/T/B/SECRET"),
                        timestamp=datetime(2027, 1, 1, tzinfo=timezone.utc), spec="every 10 minutes", skipped=1)
    engine.emit(ScheduleSkipped(schedule))
    assert b"SECRET" not in receiver.calls[0][1]
    assert json.loads(receiver.calls[0][1])["job"]["notify"] == "https://hooks.slack.com/…"


def test_an_attempt_cut_off_by_a_stop_is_not_counted_whatever_the_error(world):
    clock, store, engine, receiver, make = world
    from twisted.internet.defer import TimeoutError

    # Like treq under addTimeout, this receiver words a cancel as a time-out.
    posted = []
    webhooks = Webhooks(engine, store, clock, hooks=(Hook("http://a/", ALL),),
                        post=lambda *a: posted.append(defer.Deferred(lambda d: d.errback(TimeoutError())))
                        or posted[-1])
    webhooks.startService()
    engine.emit(JobChanged(run()))
    assert len(posted) == 1
    assert webhooks.stopService().called
    (delivery,) = store.list_deliveries(10)
    assert delivery.attempts == 0 and delivery.last_error is None and delivery.due == T0


def test_a_failed_attempt_is_retried_with_doubling_waits_until_acknowledged(world):
    clock, store, engine, receiver, make = world
    make(first_retry=10)
    engine.emit(JobChanged(run()))
    receiver.answer(500)
    for wait in (10, 20, 40):
        clock.advance(wait - 0.01)
        assert receiver.calls == []
        clock.advance(0.01)
        assert len(receiver.calls) == 1
        if wait < 40:
            receiver.answer(503)
    receiver.answer(200)
    (delivery,) = store.list_deliveries(10)
    assert delivery.state == "delivered" and delivery.attempts == 4 and delivery.last_error == "HTTP 503"


def test_a_connection_error_is_named_and_retried(world):
    clock, store, engine, receiver, make = world
    make(first_retry=1)
    engine.emit(JobChanged(run()))
    from twisted.internet.error import ConnectionRefusedError

    receiver.calls.pop()[3].errback(ConnectionRefusedError())
    (delivery,) = store.list_deliveries(10)
    assert delivery.state == "pending" and delivery.last_error == "connection refused"
    clock.advance(1)
    assert len(receiver.calls) == 1


def test_a_delivery_is_given_up_after_retry_for(world):
    clock, store, engine, receiver, make = world
    make(first_retry=10, retry_for=60)
    engine.emit(JobChanged(run()))
    receiver.answer(500)      # next at +10
    clock.advance(10)
    receiver.answer(500)      # next at +30
    clock.advance(20)
    receiver.answer(500)      # +70 would pass 60: given up
    (delivery,) = store.list_deliveries(10)
    assert delivery.state == "failed" and delivery.attempts == 3 and delivery.ended == T0 + 30
    clock.advance(3600)
    assert receiver.calls == []


def test_concurrency_bounds_deliveries_in_flight(world):
    clock, store, engine, receiver, make = world
    make(concurrency=2)
    for n in range(5):
        engine.emit(JobChanged(run(ident=f"r{n}")))
    assert len(receiver.calls) == 2
    receiver.answer(200)
    assert len(receiver.calls) == 2
    while receiver.calls:
        receiver.answer(200)
    assert store.count_deliveries() == {"delivered": 5}


def test_a_failing_receiver_rests_and_does_not_hold_back_the_others(world):
    clock, store, engine, receiver, make = world
    make(hooks=(("http://dead/", {"job-failed"}), ("http://alive/", {"project-pushed"})), concurrency=2,
         first_retry=10)
    for n in range(3):
        engine.emit(JobChanged(run(JobStatus.FAILED, f"r{n}")))
    assert [c[0] for c in receiver.calls] == ["http://dead/", "http://dead/"]
    receiver.answer(500)
    # The dead receiver rests: its third delivery waits though a place is free...
    assert [c[0] for c in receiver.calls] == ["http://dead/"]
    # ...which the same engine gives to another receiver at once.
    engine.emit(ProjectPushed(Project("p", ("s",), "tree", datetime(2027, 1, 1, tzinfo=timezone.utc))))
    assert sorted(c[0] for c in receiver.calls) == ["http://alive/", "http://dead/"]
    receiver.answer(200, index=[c[0] for c in receiver.calls].index("http://alive/"))
    assert [c[0] for c in receiver.calls] == ["http://dead/"]
    clock.advance(10)  # its rest is over: the failed one goes again (and the waiting one beside it)
    assert [c[0] for c in receiver.calls] == ["http://dead/", "http://dead/"]


def test_a_delivery_that_cannot_be_recorded_goes_again_only_after_a_rest(world):
    clock, store, engine, receiver, make = world
    make(first_retry=10)
    engine.emit(JobChanged(run()))
    failing = store.update_delivery

    def full(delivery):
        from scrapy_do.errors import StorageFull

        raise StorageFull("the disk is full")

    store.update_delivery = full
    receiver.answer(200)
    assert receiver.calls == []  # not at once, in a loop
    store.update_delivery = failing
    clock.advance(10)
    assert len(receiver.calls) == 1  # at least once: it goes again, later
    receiver.answer(200)
    assert store.count_deliveries() == {"delivered": 1}


def test_stopping_leaves_what_is_in_flight_pending_for_the_next_start(world):
    clock, store, engine, receiver, make = world
    webhooks = make()
    engine.emit(JobChanged(run()))
    d = webhooks.stopService()
    assert d.called
    assert store.count_deliveries() == {"pending": 1}
    (delivery,) = store.list_deliveries(10)
    assert delivery.attempts == 0
    receiver.calls.clear()
    make()
    assert len(receiver.calls) == 1 and json.loads(receiver.calls[0][1])["delivery"] == delivery.id


def test_the_summary_shows_origins_not_secret_paths(world):
    clock, store, engine, receiver, make = world
    webhooks = make(hooks=(("https://hooks.slack.com/services/T000/B000/XXXX", ALL),))
    engine.emit(JobChanged(run()))
    receiver.answer(500)
    summary = webhooks.summary()
    assert summary["hooks"] == [{"url": "https://hooks.slack.com/…", "events": sorted(ALL)}]
    (shown,) = summary["deliveries"]
    assert shown["url"] == "https://hooks.slack.com/…" and shown["last-error"] == "HTTP 500"
    assert shown["state"] == "pending" and shown["next-attempt"] is not None and "XXXX" not in json.dumps(summary)


@pytest.mark.parametrize("attempts, wait", [(1, 10), (2, 20), (3, 40), (9, 2560), (10, 3600), (500, 3600)])
def test_retry_delay_doubles_up_to_an_hour(attempts, wait):
    assert D.retry_delay(attempts) == wait


@pytest.mark.parametrize("url, shown", [("http://127.0.0.1:8080/x?y", "http://127.0.0.1:8080/…"),
                                        ("https://a.example", "https://a.example/"),
                                        ("http://[::1]:9/", "http://[::1]:9/")])
def test_origin(url, shown):
    assert D.origin(url) == shown


def test_places_go_round_the_receivers_so_a_hanging_one_cannot_take_them_all(world):
    clock, store, engine, receiver, make = world
    hooks = (Hook("http://hangs/", frozenset({"job-failed"})), Hook("http://fine/", frozenset({"project-pushed"})))
    webhooks = Webhooks(engine, store, clock, hooks=hooks, post=receiver, concurrency=2)
    # Kept while the daemon starts (not yet sending): four for one receiver, then one for the other.
    for n in range(4):
        engine.emit(JobChanged(run(JobStatus.FAILED, f"bad{n}")))
    engine.emit(ProjectPushed(Project("p", ("s",), "tree", datetime(2027, 1, 1, tzinfo=timezone.utc))))
    assert receiver.calls == []
    webhooks.startService()
    assert sorted(c[0] for c in receiver.calls) == ["http://fine/", "http://hangs/"]


def test_answers_that_come_at_once_never_send_a_delivery_twice(world):
    clock, store, engine, receiver, make = world
    from twisted.internet.error import ConnectionRefusedError

    sent = []

    def refuse(url, body, headers):
        sent.append(headers["X-Scrapy-Do-Delivery"])
        return defer.fail(ConnectionRefusedError())

    webhooks = Webhooks(engine, store, clock, hooks=tuple(Hook(f"http://h{n}/", ALL) for n in range(3)),
                        post=refuse, concurrency=2, first_retry=5)
    webhooks.startService()
    engine.emit(JobChanged(run()))
    assert sorted(sent) == sorted(set(sent)) and len(sent) == 3
    assert {d.attempts for d in store.list_deliveries(10)} == {1}
    clock.advance(5)
    assert len(sent) == 6 and {d.attempts for d in store.list_deliveries(10)} == {2}


def test_the_store_finds_the_oldest_due_delivery_of_each_receiver():
    store = SqliteStore(":memory:").open()
    made = [D.new_delivery(f"k{n}", f"http://h{n % 3}/", "job-ended", 100.0 + n, None) for n in range(9)]
    store.add_deliveries(made)
    store.update_delivery(D.after_failure(made[1], 200.0, "HTTP 500", 86400))  # h1's oldest: due again later
    oldest = store.pending_deliveries(10, skip=(made[2].id,), skip_urls=("http://h0/",), due_by=150.0,
                                      one_per_url=True)
    # h0 rests; h1's oldest is not due, so its next is; h2's oldest is in flight, so its next is.
    assert [d.id for d in oldest] == [made[4].id, made[5].id]
    assert len(store.pending_deliveries(1, due_by=150.0, one_per_url=True)) == 1
    store.close()
