"""The timer shell around specs: one re-armed callLater, time-lapse tested with a Clock."""

from datetime import datetime

from twisted.internet.task import Clock

from scrapy_do.engine.scheduler import SpecScheduler
from scrapy_do.domain.spec import parse

T0 = datetime(2026, 11, 23, 10, 0, 0).timestamp()


def lapse(seconds, specs):
    clock = Clock()
    clock.advance(T0)
    events = []
    sched = SpecScheduler(clock, lambda key: events.append(f"{key}@{int(clock.seconds() - T0)}"))
    for key, text in specs.items():
        sched.add(key, parse(text))
    sched.start()
    for _ in range(seconds):
        clock.advance(1)
    return events, sched, clock


def test_time_lapse_fires_each_schedule_at_its_due_times():
    """Two schedules fire interleaved at exactly their periods."""
    events, _, _ = lapse(40, {"A": "every 13 seconds", "B": "every 20 seconds"})
    assert events == ["A@13", "B@20", "A@26", "A@39", "B@40"]


def test_at_time_fires_at_that_minute():
    """`every hour at :15` fires at 10:15 and 11:15."""
    events, _, _ = lapse(2 * 3600, {"H": "every hour at :15"})
    assert events == ["H@900", "H@4500"]


def test_removed_schedule_never_fires_and_timer_is_released():
    """After remove, nothing fires and no reactor call stays armed."""
    clock = Clock()
    fired = []
    sched = SpecScheduler(clock, fired.append)
    sched.add("A", parse("every 10 seconds"))
    sched.start()
    sched.remove("A")
    clock.advance(100)
    assert fired == []
    assert clock.getDelayedCalls() == []


def test_stop_cancels_the_timer():
    """A stopped scheduler leaves no pending call and fires nothing."""
    clock = Clock()
    sched = SpecScheduler(clock, lambda key: None)
    sched.add("A", parse("every 10 seconds"))
    sched.start()
    sched.stop()
    assert clock.getDelayedCalls() == []


def test_one_timer_for_many_schedules():
    """Thousands of schedules keep exactly one delayed call."""
    clock = Clock()
    sched = SpecScheduler(clock, lambda key: None)
    sched.start()
    for i in range(5000):
        sched.add(i, parse(f"every {i % 50 + 1} minutes"))
    assert len(clock.getDelayedCalls()) == 1
    assert len(sched) == 5000


def test_failing_callback_does_not_stop_other_schedules():
    """An exception in one firing is logged and the next ones still fire."""
    clock = Clock()
    fired = []

    def fire(key):
        fired.append(key)
        raise RuntimeError("boom")

    sched = SpecScheduler(clock, fire)
    sched.add("A", parse("every 10 seconds"))
    sched.start()
    for _ in range(30):
        clock.advance(1)
    assert fired == ["A", "A", "A"]
