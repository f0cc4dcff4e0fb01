"""Daylight saving with an injected clock: calendar rules follow the zone, intervals are elapsed time.

Europe/Berlin in 2026: clocks go forward on 29 March at 01:00 UTC (02:00 CET
becomes 03:00 CEST) and back on 25 October at 01:00 UTC (03:00 CEST becomes
02:00 CET, so 02:00-03:00 happens twice).
"""

import dataclasses
from datetime import datetime, timedelta

import pytest
from dateutil import tz
from twisted.internet.task import Clock

from scrapy_do.domain import zones
from scrapy_do.domain.models import JobStatus
from scrapy_do.domain.spec import next_fires, parse
from scrapy_do.engine.controller import Controller
from scrapy_do.engine.scheduler import SpecScheduler
from scrapy_do.store import MemoryStore
from tests.fakes import FakeLauncher, FakeProjects
from tests.helpers import result_of

BERLIN = tz.gettz("Europe/Berlin")
UTC = zones.UTC
FALL_BACK = datetime(2026, 10, 25, 1, 0, tzinfo=UTC)
SPRING_FORWARD = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


def shown(moments):
    return [zones.show(m, BERLIN) for m in moments]


@pytest.mark.parametrize("edge", [FALL_BACK, SPRING_FORWARD], ids=["fall-back", "spring-forward"])
@pytest.mark.parametrize("text,seconds", [("every 10 minutes", 600), ("every minute", 60), ("every 2 hours", 7200)])
def test_intervals_are_elapsed_time_across_a_change(edge, text, seconds):
    """Around a clock change every interval run comes exactly its period after the one before."""
    spec = parse(text)
    for offset in range(-7200, 7200, 37):
        after = edge + timedelta(seconds=offset)
        assert spec.next_fire(after, BERLIN) - after == timedelta(seconds=seconds)


def test_repeated_hour_second_pass_is_in_the_future():
    """At 02:10 CET (the second 02:10 of the night), `every 10 minutes` is due at 02:20 CET, not in the past."""
    after = datetime(2026, 10, 25, 1, 10, tzinfo=UTC)
    assert shown(next_fires(parse("every 10 minutes"), after, 3, BERLIN)) == [
        "2026-10-25 02:20:00+01:00", "2026-10-25 02:30:00+01:00", "2026-10-25 02:40:00+01:00"]


def test_daily_time_in_the_repeated_hour_runs_once_at_its_first_occurrence():
    """`every day at 02:30` runs at 02:30 CEST on the fall-back night, and not again at 02:30 CET."""
    after = datetime(2026, 10, 24, 12, 0, tzinfo=UTC)
    assert shown(next_fires(parse("every day at 02:30"), after, 3, BERLIN)) == [
        "2026-10-25 02:30:00+02:00", "2026-10-26 02:30:00+01:00", "2026-10-27 02:30:00+01:00"]


def test_daily_time_in_the_skipped_hour_moves_forward_by_the_gap():
    """`every day at 02:30` runs at 03:30 CEST on the spring-forward morning (02:30 does not exist)."""
    after = datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    assert shown(next_fires(parse("every day at 02:30"), after, 2, BERLIN)) == [
        "2026-03-29 03:30:00+02:00", "2026-03-30 02:30:00+02:00"]


def test_calendar_rules_keep_the_wall_clock_time():
    """`every day at 10:00` and `every sunday at 10:00` stay at 10:00 local while the offset changes."""
    after = datetime(2026, 10, 23, 12, 0, tzinfo=UTC)
    assert shown(next_fires(parse("every day at 10:00"), after, 3, BERLIN)) == [
        "2026-10-24 10:00:00+02:00", "2026-10-25 10:00:00+01:00", "2026-10-26 10:00:00+01:00"]
    assert shown(next_fires(parse("every sunday at 10:00"), after, 1, BERLIN)) == ["2026-10-25 10:00:00+01:00"]


def test_hourly_at_minute_is_hourly_through_the_repeated_hour():
    """`every hour at :15` runs at 02:15 CEST, 02:15 CET and 03:15 CET: once an hour, never twice."""
    after = datetime(2026, 10, 24, 23, 50, tzinfo=UTC)
    assert shown(next_fires(parse("every hour at :15"), after, 3, BERLIN)) == [
        "2026-10-25 02:15:00+02:00", "2026-10-25 02:15:00+01:00", "2026-10-25 03:15:00+01:00"]


def test_scheduler_in_the_repeated_hour_fires_once_per_due_time():
    """The reported runaway: at 02:10 CET, `every 10 minutes` fires nothing at once and then once per 600 s."""
    clock = Clock()
    clock.advance(datetime(2026, 10, 25, 1, 10, tzinfo=UTC).timestamp())
    fired = []
    scheduler = SpecScheduler(clock, lambda key: fired.append(clock.seconds()), zone=BERLIN)
    scheduler.start()
    scheduler.add("s", parse("every 10 minutes"))
    clock.advance(0)
    assert fired == []
    for _ in range(3 * 3600):
        clock.advance(1)
    assert len(fired) == 18
    assert {b - a for a, b in zip(fired, fired[1:])} == {600}


def test_scheduler_never_fires_a_due_time_twice_when_the_clock_jumps_back():
    """After the clock jumps back an hour, the next due time stays ahead of the last one fired."""
    clock = Clock()
    clock.advance(datetime(2026, 11, 23, 10, 0, tzinfo=UTC).timestamp())
    dues = []
    scheduler = SpecScheduler(clock, lambda key: dues.append(scheduler.next_due(key)), zone=BERLIN)
    scheduler.start()
    scheduler.add("s", parse("every minute"))
    clock.advance(60)
    clock.advance(-3600)
    for _ in range(3600 + 180):
        clock.advance(1)
    assert len(dues) == 4
    assert all(b > a for a, b in zip(dues, dues[1:]))


@pytest.fixture
def berlin_controller(config, tmp_path):
    clock = Clock()
    launcher = FakeLauncher()
    store = MemoryStore(BERLIN)
    projects = FakeProjects(tmp_path / "trees")
    c = Controller(dataclasses.replace(config, zone=BERLIN, timezone="Europe/Berlin"), store, projects, launcher,
                   clock)
    projects.next = ("proj", ("quick", "slow"))
    c.clock, c.launcher = clock, launcher
    yield c, clock, launcher, projects
    if c.running:
        c.stopService()


def test_duration_of_a_run_across_the_fall_back_is_elapsed_time(berlin_controller):
    """A run from 02:59:30 CEST to 02:00:30 CET lasted 60 s, and its times show both offsets."""
    c, clock, launcher, _ = berlin_controller
    clock.advance(datetime(2026, 10, 25, 0, 59, 30, tzinfo=UTC).timestamp())
    c.startService()
    result_of(c.push_project(b"zip"))
    job = c.schedule_job("proj", "quick")
    clock.advance(60)
    launcher.by_job(job.identifier).finish(0)
    record = result_of_record(c, job.identifier)
    assert (record["duration"], record["started"], record["finished"]) == (
        60, "2026-10-25 02:59:30+02:00", "2026-10-25 02:00:30+01:00")
    assert c.status()["time"] == "2026-10-25 02:00:30+01:00"


def result_of_record(controller, identifier):
    from scrapy_do.domain.records import to_record

    return to_record(controller.get_job(identifier), controller.zone)


def test_controller_at_the_repeated_hour_queues_no_runaway_of_runs(berlin_controller):
    """Started at 02:10 CET with `every 10 minutes`, the daemon queues one run per due time, not hundreds."""
    c, clock, launcher, _ = berlin_controller
    clock.advance(datetime(2026, 10, 25, 1, 10, tzinfo=UTC).timestamp())
    c.startService()
    result_of(c.push_project(b"zip"))
    schedule = c.schedule_job("proj", "quick", "every 10 minutes")
    clock.advance(0)
    assert launcher.launched == []
    assert result_of_record(c, schedule.identifier)["next-run"] == "2026-10-25 02:20:00+01:00"
    for _ in range(1800):
        clock.advance(1)
        for crawl in launcher.launched:
            if not crawl.ended.called:
                crawl.finish(0)
    assert len(launcher.launched) == 3
    assert c.count_jobs("PENDING") == 0 and c.count_jobs("SUCCESSFUL") == 3
    assert c.get_job(schedule.identifier).status is JobStatus.SCHEDULED
