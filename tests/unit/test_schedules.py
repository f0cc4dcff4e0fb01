"""Schedules with an injected clock: per-schedule zones, overlap, catch-up, pause/resume, edits, priority."""

import dataclasses
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from scrapy_do.domain import zones
from scrapy_do.domain.models import JobStatus
from scrapy_do.engine.controller import Controller
from scrapy_do.errors import BadRequest, Conflict
from tests.fakes import FakeLauncher, FakeProjects
from tests.helpers import result_of


@pytest.fixture
def controller(controller):
    controller.push("proj", ("quick", "slow"))
    return controller


def at(text):
    return datetime.fromisoformat(text).astimezone(timezone.utc).timestamp()


def runs_of(controller, schedule):
    return controller.store.list_jobs(parent=schedule.identifier, oldest_first=True)


def test_a_schedule_reads_at_in_its_own_zone(controller, clock):
    """'every day at 09:00' with timezone America/New_York: 09:00 in New York, whatever the daemon's zone."""
    job = controller.schedule_job("proj", "slow", "every day at 09:00", settings={"timezone": "America/New_York"})
    assert job.next_run.timestamp() == at("2026-11-23T09:00:00-05:00")  # the clock starts 10:00 UTC
    assert job.timezone == "America/New_York"


def test_at_follows_the_schedules_zone_across_its_dst_change(config, store, clock, tmp_path):
    """New York's clocks fall back on 2026-11-01: 09:00 local stays 09:00 local, the UTC time moves."""
    clock.advance(at("2026-10-31T12:00:00+00:00") - clock.seconds())
    c = started(config, store, clock, tmp_path)
    job = c.schedule_job("proj", "slow", "every day at 09:00", settings={"timezone": "America/New_York"})
    fires = []
    for _ in range(3):
        due = c.store.get_job(job.identifier).next_run
        fires.append(due.astimezone(ZoneInfo("America/New_York")).isoformat())
        clock.advance(due.timestamp() - clock.seconds())
    # 13:00 UTC, then 14:00 UTC: 09:00 on New York's wall clock on both sides of the change.
    assert fires == ["2026-10-31T09:00:00-04:00", "2026-11-01T09:00:00-05:00", "2026-11-02T09:00:00-05:00"]
    c.stopService()


def started(config, store, clock, tmp_path, launcher=None, spiders=("quick", "slow")):
    projects = FakeProjects(tmp_path / "trees")
    projects.next = ("proj", spiders)
    c = Controller(config, store, projects, launcher or FakeLauncher(), clock)
    c.startService()
    result_of(c.push_project(b"zip"))
    return c


def test_overlap_skip_skips_while_the_previous_run_is_active_and_counts(controller, launcher, clock):
    job = controller.schedule_job("proj", "slow", "every 10 minutes", settings={"overlap": "skip"})
    clock.advance(600)
    assert len(runs_of(controller, job)) == 1 and launcher.launched  # the first run is RUNNING
    clock.advance(600)
    clock.advance(600)
    assert len(runs_of(controller, job)) == 1
    assert controller.get_job(job.identifier).skipped == 2
    launcher.launched[0].finish(0)
    clock.advance(600)
    assert len(runs_of(controller, job)) == 2


def test_overlap_allow_queues_while_the_previous_run_is_running(controller, launcher, clock):
    job = controller.schedule_job("proj", "slow", "every 10 minutes")
    clock.advance(600)
    clock.advance(600)
    assert len(runs_of(controller, job)) == 2 and controller.get_job(job.identifier).skipped == 0


def test_pause_spawns_nothing_and_resume_counts_from_now(controller, clock):
    job = controller.schedule_job("proj", "slow", "every 10 minutes")
    paused = controller.pause_job(job.identifier)
    assert paused.paused and paused.next_run is None
    clock.advance(3600)
    assert runs_of(controller, job) == []
    resumed = controller.resume_job(job.identifier)
    assert not resumed.paused and resumed.next_run.timestamp() == clock.seconds() + 600
    clock.advance(600)
    assert len(runs_of(controller, job)) == 1


def test_a_paused_schedule_stays_paused_across_a_restart(config, store, clock, tmp_path):
    first = started(config, store, clock, tmp_path)
    job = first.schedule_job("proj", "slow", "every 10 minutes")
    first.pause_job(job.identifier)
    result_of(first.stopService())
    second = Controller(config, store, first.projects, FakeLauncher(), clock)
    second.startService()
    clock.advance(3600)
    assert runs_of(second, job) == [] and second.get_job(job.identifier).paused
    second.stopService()


def test_only_scheduled_jobs_pause_resume_or_edit(controller, launcher):
    run = controller.schedule_job("proj", "quick")
    for action in (controller.pause_job, controller.resume_job):
        with pytest.raises(Conflict, match="only a SCHEDULED"):
            action(run.identifier)
    launcher.launched[0].finish(0)
    with pytest.raises(Conflict, match="only a SCHEDULED"):
        controller.edit_job(run.identifier, options={"priority": 5})


def test_edit_changes_a_schedule_in_place_and_recomputes_its_next_run(controller, clock):
    job = controller.schedule_job("proj", "slow", "every 10 minutes")
    edited = controller.edit_job(job.identifier, when="every 2 hours", settings={"overlap": "skip"},
                                 options={"args": {"category": "books"}, "priority": 7})
    assert edited.identifier == job.identifier and edited.spec == "every 2 hours" and edited.overlap == "skip"
    assert edited.next_run.timestamp() == clock.seconds() + 7200
    clock.advance(600)
    assert runs_of(controller, job) == []
    clock.advance(7200 - 600)
    [run] = runs_of(controller, job)
    assert run.options.args == {"category": "books"} and run.options.priority == 7


def test_edit_of_a_pending_run_changes_only_its_priority(controller, launcher):
    blockers = [controller.schedule_job("proj", "slow") for _ in range(2)]  # both slots taken
    waiting = controller.schedule_job("proj", "quick")
    assert controller.edit_job(waiting.identifier, options={"priority": 9}).options.priority == 9
    with pytest.raises(Conflict, match="only its priority"):
        controller.edit_job(waiting.identifier, options={"description": "x"})
    assert len(blockers) == 2


def test_edit_refuses_to_make_a_schedule_run_now(controller):
    job = controller.schedule_job("proj", "slow", "every 10 minutes")
    with pytest.raises(BadRequest, match="stays periodic"):
        controller.edit_job(job.identifier, when="now")


def test_schedule_settings_on_a_run_now_are_refused(controller):
    with pytest.raises(BadRequest, match="overlap applies only to periodic jobs"):
        controller.schedule_job("proj", "quick", "now", settings={"overlap": "skip"})
    assert controller.list_jobs("ACTIVE") == []


@pytest.mark.parametrize("catch_up, expected", [(True, 1), (False, 0)])
def test_catch_up_runs_once_for_all_runs_missed_while_down(config, store, clock, tmp_path, catch_up, expected):
    first = started(config, store, clock, tmp_path)
    job = first.schedule_job("proj", "slow", "every 10 minutes", settings={"catch_up": catch_up})
    result_of(first.stopService())
    clock.advance(3 * 3600)  # eighteen due times pass while the daemon is down
    second = Controller(config, store, first.projects, FakeLauncher(), clock)
    second.startService()
    assert len(runs_of(second, job)) == expected
    assert second.get_job(job.identifier).next_run.timestamp() == clock.seconds() + 600
    second.stopService()


def test_priority_orders_the_queue_across_projects_and_fifo_within(config, store, clock, tmp_path):
    launcher = FakeLauncher()
    c = started(dataclasses.replace(config, job_slots=1), store, clock, tmp_path, launcher)
    c.fake_projects = c.projects
    c.projects.next = ("other", ("quick",))
    result_of(c.push_project(b"zip"))
    blocker = c.schedule_job("proj", "slow")
    low = c.schedule_job("other", "quick", priority="-1")
    a = c.schedule_job("proj", "quick")
    high = c.schedule_job("other", "quick", priority="1000")
    b = c.schedule_job("proj", "quick")
    order = []
    for _ in range(5):
        crawl = launcher.launched[-1]
        order.append(crawl.request.job_id)
        crawl.finish(0)
    assert order == [j.identifier for j in (blocker, high, a, b, low)]
    c.stopService()


def test_times_of_a_schedules_zone_are_shown_with_their_offset(controller):
    job = controller.schedule_job("proj", "slow", "every day at 09:00", settings={"timezone": "Asia/Kolkata"})
    shown = zones.show(job.next_run, controller.zone_of(job))
    assert shown.endswith("+05:30") and " 09:00:00" in shown


def test_max_per_spider_holds_a_spider_back_without_blocking_others(config, store, clock, tmp_path):
    launcher = FakeLauncher()
    c = started(dataclasses.replace(config, job_slots=3, max_per_spider=1), store, clock, tmp_path, launcher)
    slow = [c.schedule_job("proj", "slow") for _ in range(3)]
    quick = c.schedule_job("proj", "quick")
    started_ids = [crawl.request.job_id for crawl in launcher.launched]
    assert started_ids == [slow[0].identifier, quick.identifier]  # one slot stays free: slow is at its cap
    launcher.launched[0].finish(0)
    assert launcher.launched[-1].request.job_id == slow[1].identifier
    c.stopService()


def test_dispatch_passes_over_spiders_at_their_cap_in_queue_order():
    from types import SimpleNamespace

    from scrapy_do.domain import dispatch

    def run(ident, spider):
        return SimpleNamespace(identifier=ident, project="p", spider=spider)

    pending = [run("1", "a"), run("2", "a"), run("3", "b"), run("4", "c")]
    chosen = dispatch.next_to_start(pending, {"x"}, 4, per_spider=1, running=[("p", "c")])
    assert [r.identifier for r in chosen] == ["1", "3"]
    assert dispatch.saturated([("p", "c"), ("p", "a"), ("p", "a")], 2) == {("p", "a")}
    assert dispatch.next_to_start(pending, set(), 2) == pending[:2]


@pytest.mark.parametrize("zone, spring, fall", [
    ("Europe/Berlin", "2026-03-29", "2026-10-25"),
    ("America/New_York", "2026-03-08", "2026-11-01"),
])
@pytest.mark.parametrize("text", ["every day at 02:30", "30 2 * * *"])
def test_a_0230_run_happens_once_on_both_dst_days_in_the_schedules_zone(zone, spring, fall, text):
    """The spring-forward day has no 02:30: it runs once, shifted past the gap; the fall-back day has two: once."""
    from scrapy_do.domain import spec as specs

    tz = ZoneInfo(zone)
    parsed = specs.parse(text)
    for day, expected in ((spring, "03:30"), (fall, "02:30")):
        start = datetime.fromisoformat(f"{day}T00:00:00").replace(tzinfo=tz)
        fires = specs.next_fires(parsed, start, 3, tz)
        local = [f.astimezone(tz) for f in fires]
        on_the_day = [t for t in local if t.date().isoformat() == day]
        assert [t.strftime("%H:%M") for t in on_the_day] == [expected], local
        assert [t.strftime("%H:%M") for t in local[1:]] == ["02:30", "02:30"]  # the days after: 02:30 again
        assert all(b > a for a, b in zip(fires, fires[1:]))
