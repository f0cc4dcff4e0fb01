"""The engine's behaviour over fake launchers and an injected clock: no process, no sleep."""

import pytest

from scrapy_do.errors import BadRequest, Conflict, InvalidPayload, InvalidSpec, NotFound
from scrapy_do.domain.models import Actor, JobStatus
from scrapy_do.events import JobChanged, ProjectPushed
from tests.helpers import result_of


def statuses(controller):
    return {j.identifier: j.status for j in controller.list_jobs()}


def test_now_job_starts_at_once_without_advancing_the_clock(controller, launcher):
    """A `now` job is spawned in the same call that schedules it, while a slot is free."""
    controller.push()
    job = controller.schedule_job("proj", "quick", "now", payload='{"a": 1}')
    assert [c.request.job_id for c in launcher.launched] == [job.identifier]
    assert launcher.launched[0].request.options.payload == '{"a": 1}'
    assert controller.get_job(job.identifier).status is JobStatus.RUNNING


def test_slots_limit_running_crawls_and_free_slot_starts_next_in_order(controller, launcher):
    """With two slots, the third and fourth jobs wait and start in submission order as crawls end."""
    controller.push()
    jobs = [controller.schedule_job("proj", "quick", "now", description=str(i)) for i in range(4)]
    assert len(launcher.launched) == 2
    assert controller.get_job(jobs[2].identifier).status is JobStatus.PENDING
    launcher.by_job(jobs[1].identifier).finish(0)
    assert [c.request.job_id for c in launcher.launched] == [j.identifier for j in jobs[:3]]
    launcher.by_job(jobs[0].identifier).finish(1)
    assert len(launcher.launched) == 4
    assert controller.get_job(jobs[1].identifier).status is JobStatus.SUCCESSFUL
    assert controller.get_job(jobs[0].identifier).status is JobStatus.FAILED
    assert controller.get_job(jobs[0].identifier).exit_code == 1


def test_duration_and_counters_follow_the_clock(controller, launcher, clock):
    """A finished job's duration is the clock time it ran; lifetime counters count outcomes."""
    controller.push()
    job = controller.schedule_job("proj", "quick")
    clock.advance(42)
    launcher.by_job(job.identifier).finish(0)
    assert controller.get_job(job.identifier).duration == 42
    status = controller.status()
    assert (status["jobs-run"], status["jobs-successful"], status["jobs-failed"]) == (1, 1, 0)


def test_periodic_job_spawns_pending_children_at_each_due_time(controller, launcher, clock):
    """`every 10 minutes` from 10:00 spawns a SCHEDULER job at 10:10, 10:20 and 10:30."""
    controller.push()
    parent = controller.schedule_job("proj", "slow", "every 10 minutes", description="d", payload='{"x": 2}')
    assert controller.get_job(parent.identifier).status is JobStatus.SCHEDULED
    fired = []
    for _ in range(31 * 60):
        clock.advance(1)
        if len(launcher.launched) > len(fired):
            fired.append(int(clock.seconds() - clock.seconds() // 3600 * 3600) // 60)
            launcher.launched[-1].finish(0)
    assert fired == [10, 20, 30]
    children = controller.list_jobs("COMPLETED")
    assert {(j.actor, j.schedule, j.parent, j.description, j.payload) for j in children} == {
        (Actor.SCHEDULER, "now", parent.identifier, "d", '{"x": 2}')}


def test_many_idle_schedules_arm_a_single_timer(controller, clock):
    """10,000 schedules cost one pending reactor call, not one each."""
    controller.push()
    for _ in range(10000):
        controller.schedule_job("proj", "slow", "every 5 hours")
    assert len(clock.getDelayedCalls()) == 1


def test_cancel_scheduled_job_stops_spawning(controller, launcher, clock):
    """A canceled SCHEDULED job spawns nothing more and its timer is gone."""
    controller.push()
    parent = controller.schedule_job("proj", "slow", "every minute")
    result_of(controller.cancel_job(parent.identifier))
    clock.advance(600)
    assert launcher.launched == []
    assert controller.get_job(parent.identifier).status is JobStatus.CANCELED
    assert clock.getDelayedCalls() == []


def test_cancel_pending_job_never_runs(controller, launcher):
    """A PENDING job canceled before a slot frees is CANCELED and never spawned."""
    controller.push()
    jobs = [controller.schedule_job("proj", "quick") for _ in range(3)]
    result_of(controller.cancel_job(jobs[2].identifier))
    launcher.launched[0].finish(0)
    assert len(launcher.launched) == 2
    assert controller.get_job(jobs[2].identifier).status is JobStatus.CANCELED


def test_cancel_running_job_terms_and_waits_for_the_end(controller, launcher, config):
    """Canceling a RUNNING job sends TERM with the grace; the job is CANCELED once the crawl ends."""
    controller.push()
    job = controller.schedule_job("proj", "slow")
    d = controller.cancel_job(job.identifier)
    crawl = launcher.by_job(job.identifier)
    assert crawl.signals == [("TERM", config.cancel_grace)]
    assert not d.called
    crawl.finish(-15)
    assert result_of(d).status is JobStatus.CANCELED
    assert controller.status()["jobs-canceled"] == 1


def test_cancel_finished_job_is_a_conflict(controller, launcher):
    """Canceling a finished job raises Conflict and changes nothing."""
    controller.push()
    job = controller.schedule_job("proj", "quick")
    launcher.launched[0].finish(0)
    with pytest.raises(Conflict, match="already finished"):
        controller.cancel_job(job.identifier)
    assert controller.get_job(job.identifier).status is JobStatus.SUCCESSFUL


@pytest.mark.parametrize("args, error, text", [
    (("nope", "quick", "now"), NotFound, "unknown project"),
    (("proj", "nope", "now"), NotFound, "no spider 'nope'"),
    (("proj", "quick", "every 0 minutes"), InvalidSpec, "0"),
    (("proj", "quick", "tomorrow"), InvalidSpec, "tomorrow"),
])
def test_schedule_rejects_bad_input_and_stores_nothing(controller, args, error, text):
    """Unknown project/spider or a bad spec raise a clear error and record no job."""
    controller.push()
    with pytest.raises(error, match=text):
        controller.schedule_job(*args)
    assert controller.list_jobs() == []


def test_schedule_rejects_invalid_payload(controller):
    """A payload that is not a JSON object is refused before anything is stored."""
    controller.push()
    with pytest.raises(InvalidPayload):
        controller.schedule_job("proj", "quick", payload="{nope")
    assert controller.list_jobs() == []


@pytest.mark.parametrize("bad", ["", "123", "../../etc/passwd", "5b30c8a2-42e5-4ad5-b143-4cb0420955a5x"])
def test_malformed_job_ids_are_bad_requests(controller, bad):
    """Anything that is not a UUID is refused as a bad request, not looked up."""
    with pytest.raises(BadRequest, match="not a job identifier"):
        controller.get_job(bad)


def test_list_jobs_by_status_groups(controller, launcher):
    """ACTIVE and COMPLETED select the related statuses; unknown names are refused."""
    controller.push()
    periodic = controller.schedule_job("proj", "slow", "every hour")
    done = controller.schedule_job("proj", "quick")
    running = controller.schedule_job("proj", "quick")
    launcher.by_job(done.identifier).finish(0)
    assert [j.identifier for j in controller.list_jobs("ACTIVE")] == [running.identifier, periodic.identifier]
    assert [j.identifier for j in controller.list_jobs("COMPLETED")] == [done.identifier]
    with pytest.raises(BadRequest, match="unknown status"):
        controller.list_jobs("DONE")


def test_completed_cap_purges_oldest_finished_jobs_and_logs(controller, launcher, config):
    """Only `completed-cap` finished jobs are kept; older ones and their log files go at once."""
    controller.push()
    config.log_dir.mkdir(parents=True, exist_ok=True)
    ids = []
    for _ in range(config.completed_cap + 2):
        job = controller.schedule_job("proj", "quick")
        for kind in ("out", "err"):
            (config.log_dir / f"{job.identifier}.{kind}").write_text("x")
        launcher.by_job(job.identifier).finish(0)
        ids.append(job.identifier)
    kept = [j.identifier for j in controller.list_jobs("COMPLETED")]
    assert kept == list(reversed(ids))[: config.completed_cap]
    assert not (config.log_dir / f"{ids[0]}.out").exists()
    assert (config.log_dir / f"{ids[-1]}.out").exists()


def test_shutdown_stops_crawls_and_requeues_their_jobs(controller, launcher, clock):
    """stopService TERMs every crawl; their jobs return to PENDING and scheduling stops."""
    controller.push()
    controller.schedule_job("proj", "slow", "every minute")
    jobs = [controller.schedule_job("proj", "slow") for _ in range(2)]
    d = controller.stopService()
    assert all(c.signals for c in launcher.launched)
    for crawl in launcher.launched:
        crawl.finish(-15)
    result_of(d)
    assert [controller.get_job(j.identifier).status for j in jobs] == [JobStatus.PENDING] * 2
    clock.advance(3600)
    assert len(launcher.launched) == 2


def test_restart_rearms_schedules_and_reruns_pending(config, store, launcher, clock, tmp_path):
    """A new controller over the same store re-arms SCHEDULED jobs and starts PENDING ones."""
    from scrapy_do.engine.controller import Controller
    from tests.fakes import FakeProjects

    projects = FakeProjects(tmp_path)
    first = Controller(config, store, projects, launcher, clock)
    first.startService()
    projects.next = ("proj", ("slow",))
    result_of(first.push_project(b""))
    periodic = first.schedule_job("proj", "slow", "every 5 minutes")
    queued = [first.schedule_job("proj", "slow") for _ in range(3)]
    d = first.stopService()
    for crawl in launcher.launched:
        crawl.finish(-15)
    result_of(d)

    second_launcher = type(launcher)()
    second = Controller(config, store, projects, second_launcher, clock)
    second.startService()
    assert [c.request.job_id for c in second_launcher.launched] == [j.identifier for j in queued[:2]]
    clock.advance(5 * 60)
    assert second.get_job(periodic.identifier).status is JobStatus.SCHEDULED
    assert len(second.list_jobs("PENDING")) == 2  # one left over + one spawned
    second.stopService()


def test_recovery_after_crash_requeues_running_jobs(config, store, launcher, clock, tmp_path):
    """RUNNING jobs found at start (the daemon died) become PENDING and run again."""
    from scrapy_do.engine.controller import Controller
    from tests.fakes import FakeProjects

    projects = FakeProjects(tmp_path)
    first = Controller(config, store, projects, launcher, clock)
    first.startService()
    projects.next = ("proj", ("slow",))
    result_of(first.push_project(b""))
    job = first.schedule_job("proj", "slow")
    # No stopService: the daemon "crashed"; the fake pid is not a live process.
    second_launcher = type(launcher)()
    Controller(config, store, projects, second_launcher, clock).startService()
    assert [c.request.job_id for c in second_launcher.launched] == [job.identifier]


def test_launch_failure_marks_job_failed_with_reason_in_err_log(controller, launcher, config):
    """When the crawl cannot be spawned the job FAILS and its .err log says why."""
    from scrapy_do.errors import LaunchError

    controller.push()
    config.log_dir.mkdir(parents=True, exist_ok=True)
    launcher.fail_with = LaunchError("no python here")
    job = controller.schedule_job("proj", "quick")
    assert controller.get_job(job.identifier).status is JobStatus.FAILED
    assert "no python here" in controller.log_path(job.identifier, "err").read_text()


def test_push_refuses_dropping_spider_with_scheduled_jobs(controller):
    """Re-pushing without a spider that has SCHEDULED jobs is a conflict; the old project stays."""
    controller.push(spiders=("quick", "slow"))
    controller.schedule_job("proj", "slow", "every hour")
    with pytest.raises(Conflict, match="slow"):
        controller.push(spiders=("quick",))
    assert controller.list_spiders("proj") == ["quick", "slow"]


def test_push_replaces_tree_and_removes_the_old_one(controller):
    """A re-push switches to the new tree and deletes the old one when no crawl uses it."""
    old = controller.push().tree
    new = controller.push(spiders=("quick",)).tree
    assert controller.get_project("proj").tree == new != old
    assert controller.fake_projects.removed_trees == [old]


def test_old_tree_is_kept_while_a_crawl_runs_in_it(controller, launcher):
    """The previous tree survives a re-push until the crawl using it ends."""
    old = controller.push().tree
    controller.schedule_job("proj", "slow")
    controller.push()
    assert old not in controller.fake_projects.removed_trees
    launcher.launched[0].finish(0)
    assert old in controller.fake_projects.removed_trees


def test_remove_project_refused_with_scheduled_jobs(controller):
    """A project with SCHEDULED jobs cannot be removed; without them it can."""
    controller.push()
    job = controller.schedule_job("proj", "slow", "every hour")
    with pytest.raises(Conflict, match="1 scheduled job"):
        controller.remove_project("proj")
    result_of(controller.cancel_job(job.identifier))
    controller.remove_project("proj")
    assert controller.list_projects() == []


def test_pending_job_of_removed_project_fails_at_start(controller, launcher, config):
    """A queued job whose project was removed meanwhile FAILS with the reason in its log."""
    controller.push()
    config.log_dir.mkdir(parents=True, exist_ok=True)
    jobs = [controller.schedule_job("proj", "slow") for _ in range(3)]
    controller.remove_project("proj")
    launcher.launched[0].finish(0)
    assert controller.get_job(jobs[2].identifier).status is JobStatus.FAILED
    assert "removed" in controller.log_path(jobs[2].identifier, "err").read_text()


def test_events_are_emitted_for_job_changes(controller, launcher):
    """Subscribers see each job state change as it happens."""
    seen = []
    controller.subscribe(seen.append)
    controller.push()
    job = controller.schedule_job("proj", "quick")
    launcher.by_job(job.identifier).finish(0)
    job_events = [e.job.status.value for e in seen if isinstance(e, JobChanged)]
    assert job_events == ["PENDING", "RUNNING", "SUCCESSFUL"]
    assert isinstance(seen[0], ProjectPushed)


# --------------------------------------------------------------------------- defects of the review


def test_a_failed_launch_does_not_stall_the_queue(controller, launcher):
    """When a freed slot's first PENDING job fails to launch, the next PENDING job starts at once."""
    from twisted.internet import defer

    from scrapy_do.errors import LaunchError

    controller.push()
    busy = [controller.schedule_job("proj", "slow") for _ in range(2)]
    doomed = controller.schedule_job("proj", "quick", description="doomed")
    waiting = controller.schedule_job("proj", "quick", description="waiting")
    real_launch = launcher.launch

    def launch(spec):
        if spec.job_id == doomed.identifier:
            return defer.fail(LaunchError("no such interpreter"))
        return real_launch(spec)

    launcher.launch = launch
    launcher.by_job(busy[0].identifier).finish(0)
    assert controller.get_job(doomed.identifier).status is JobStatus.FAILED
    assert controller.get_job(waiting.identifier).status is JobStatus.RUNNING
    assert "no such interpreter" in controller.log_path(doomed.identifier, "err").read_text()


class StoreWrapper:
    """Delegates to a real store; subclasses make one call fail like a full disk."""

    def __init__(self, store):
        self._store = store

    def __getattr__(self, name):
        return getattr(self._store, name)


class FailingStart(StoreWrapper):
    """A store whose first write of a RUNNING job fails, like a disk that filled up."""

    failed = False

    def update_job(self, job):
        if job.status is JobStatus.RUNNING and not self.failed:
            self.failed = True
            raise OSError(28, "No space left on device")
        return self._store.update_job(job)


def test_a_failure_after_spawn_stops_the_crawl_and_frees_the_slot(config, store, launcher, clock, tmp_path):
    """If recording a spawned crawl fails, the crawl is killed, its job FAILED, and the next job starts."""
    from scrapy_do.engine.controller import Controller
    from tests.fakes import FakeProjects

    projects = FakeProjects(tmp_path / "trees")
    projects.next = ("proj", ("quick",))
    c = Controller(config, FailingStart(store), projects, launcher, clock)
    c.startService()
    result_of(c.push_project(b"zip"))
    first = c.schedule_job("proj", "quick")
    crawl = launcher.by_job(first.identifier)
    assert crawl.signals == [("TERM", 0)]
    assert c.get_job(first.identifier).status is JobStatus.PENDING  # not RUNNING untracked
    assert c.status()["jobs-running"] == 0
    crawl.finish(-9)
    job = c.get_job(first.identifier)
    assert job.status is JobStatus.FAILED
    assert "could not record the start" in c.log_path(first.identifier, "err").read_text()
    second = c.schedule_job("proj", "quick")
    assert c.get_job(second.identifier).status is JobStatus.RUNNING
    assert len(launcher.launched) == 2  # the failed job was not launched twice
    c.stopService()


def test_a_schedule_never_has_more_than_one_pending_run(controller, launcher, clock):
    """`every second` with crawls that never end: fires while a run waits merge into it."""
    controller.push()
    schedule = controller.schedule_job("proj", "slow", "every second")
    for _ in range(600):
        clock.advance(1)
    assert controller.count_jobs("PENDING") == 1
    assert controller.count_jobs("RUNNING") == 2  # both slots busy
    assert len(controller.list_jobs()) == 4  # the schedule, two running runs, one pending run
    assert all(j.parent == schedule.identifier for j in controller.list_jobs("ACTIVE") if j is not None
               and j.identifier != schedule.identifier)


def test_canceling_a_job_while_it_launches_stops_the_crawl(controller, launcher):
    """A job canceled before the launcher answered ends CANCELED and its crawl is stopped when it comes up."""
    from twisted.internet import defer

    controller.push()
    pending_launch = defer.Deferred()
    real_launch = launcher.launch
    launcher.launch = lambda spec: pending_launch
    job = controller.schedule_job("proj", "quick")
    assert controller.status()["jobs-running"] == 0
    result_of(controller.cancel_job(job.identifier))
    assert controller.get_job(job.identifier).status is JobStatus.CANCELED
    crawl = result_of(real_launch(launcher_spec(controller, job)))
    pending_launch.callback(crawl)
    assert crawl.signals and crawl.signals[0][0] == "TERM"
    crawl.finish(-15)
    assert controller.get_job(job.identifier).status is JobStatus.CANCELED
    assert controller.slots == {}


def launcher_spec(controller, job):
    from scrapy_do.launchers.local import LaunchSpec

    out, err = controller._log_paths(job.identifier)
    return LaunchSpec(job_id=job.identifier, options=job.options, cwd="/", out_path=out, err_path=err)


def test_recovery_asks_the_launcher_to_reattach_and_requeues_what_it_cannot(config, store, launcher, clock,
                                                                            tmp_path):
    """A RUNNING job found at start-up is re-attached if the launcher can, else queued again as PENDING."""
    import dataclasses

    from scrapy_do.domain.models import RunOptions, new_run
    from scrapy_do.domain import zones
    from scrapy_do.engine.controller import Controller
    from tests.fakes import FakeCrawl, FakeProjects

    projects = FakeProjects(tmp_path / "trees")
    projects.next = ("proj", ("quick",))
    first = Controller(config, store, projects, launcher, clock)
    first.startService()
    result_of(first.push_project(b"zip"))
    first.stopService()
    now = zones.instant(clock.seconds())
    alive = dataclasses.replace(new_run("proj", RunOptions("quick"), now), status=JobStatus.RUNNING,
                                started=now, handle="fake:alive")
    gone = dataclasses.replace(new_run("proj", RunOptions("quick"), now), status=JobStatus.RUNNING,
                               started=now, handle="fake:gone")
    store.add_job(alive)
    store.add_job(gone)
    survivor = FakeCrawl(launcher_spec(first, alive))
    launcher.alive["fake:alive"] = survivor
    second = Controller(dataclasses.replace(config, job_slots=1), store, projects, launcher, clock)
    second.startService()
    assert sorted(launcher.reattached) == ["fake:alive", "fake:gone"]
    assert second.get_job(alive.identifier).status is JobStatus.RUNNING
    assert second.get_job(gone.identifier).status is JobStatus.PENDING  # the one slot is taken by the survivor
    survivor.finish(0)
    assert second.get_job(alive.identifier).status is JobStatus.SUCCESSFUL
    assert second.get_job(gone.identifier).status is JobStatus.RUNNING
    second.stopService()


def test_a_launch_short_of_descriptors_waits_and_is_tried_again(controller, launcher, clock):
    """EMFILE at launch keeps the job PENDING in its place; it starts once a retry succeeds."""
    from scrapy_do.errors import LaunchError

    controller.push()
    launcher.fail_with = LaunchError("cannot start the crawl of 'quick': [Errno 24] Too many open files", True)
    job = controller.schedule_job("proj", "quick")
    assert controller.get_job(job.identifier).status is JobStatus.PENDING
    clock.advance(0.5)
    assert controller.get_job(job.identifier).status is JobStatus.PENDING
    launcher.fail_with = None
    clock.advance(0.5)
    assert controller.get_job(job.identifier).status is JobStatus.RUNNING
    assert controller.status()["jobs-failed"] == 0


class FullDisk(StoreWrapper):
    """A store whose record() fails like a full disk while `full` is set."""

    full = False

    def record(self, job, *counters):
        from scrapy_do.errors import StorageFull

        if self.full:
            raise StorageFull("the disk holding the store is full")
        return self._store.record(job, *counters)


def test_a_crawl_ending_on_a_full_disk_is_recorded_once_space_returns(config, store, launcher, clock, tmp_path):
    """The end of a run is announced at once, written when the disk has room again, and counted once."""
    from scrapy_do.engine.controller import Controller
    from scrapy_do.events import JobChanged
    from tests.fakes import FakeProjects

    projects = FakeProjects(tmp_path / "trees")
    projects.next = ("proj", ("quick",))
    disk = FullDisk(store)
    c = Controller(config, disk, projects, launcher, clock)
    c.startService()
    result_of(c.push_project(b"zip"))
    job = c.schedule_job("proj", "quick")
    seen = []
    c.subscribe(lambda e: seen.append(e.job.status) if isinstance(e, JobChanged) else None)
    disk.full = True
    launcher.by_job(job.identifier).finish(0)
    assert seen == [JobStatus.SUCCESSFUL]
    assert store.get_job(job.identifier).status is JobStatus.RUNNING
    clock.advance(10)
    assert store.get_job(job.identifier).status is JobStatus.RUNNING
    disk.full = False
    clock.advance(30)
    assert store.get_job(job.identifier).status is JobStatus.SUCCESSFUL
    assert (store.counters()["run"], store.counters()["successful"]) == (1, 1)
    c.stopService()


def test_sqlite_full_disk_is_a_storage_full_error(tmp_path, monkeypatch):
    """SQLite's 'database or disk is full' reaches callers as StorageFull, which says what to do."""
    import sqlite3

    from scrapy_do.errors import StorageFull
    from scrapy_do.store import SqliteStore

    s = SqliteStore(tmp_path / "db").open()

    class Full:
        in_transaction = False

        def execute(self, *a):
            raise sqlite3.OperationalError("database or disk is full")

    s._db = Full()
    with pytest.raises(StorageFull, match="is full; nothing was changed"):
        s.bump("run")


def test_recovery_waits_for_every_leftover_at_once_and_only_then_starts_work(config, store, clock, tmp_path):
    """Leftovers are stopped together (reattach asked for all before any answered); until they are, the
    daemon is not ready: no job starts and no schedule fires. Then both happen."""
    import dataclasses

    from twisted.internet import defer

    from scrapy_do.domain import zones
    from scrapy_do.domain.models import RunOptions, new_run
    from scrapy_do.engine.controller import Controller
    from tests.fakes import FakeLauncher, FakeProjects

    class SlowLauncher(FakeLauncher):
        def __init__(self):
            super().__init__()
            self.waiting = {}

        def reattach(self, handle, logs=None):
            self.reattached.append(handle)
            self.waiting[handle] = defer.Deferred()
            return self.waiting[handle]

    projects = FakeProjects(tmp_path / "trees")
    projects.next = ("proj", ("quick",))
    launcher = SlowLauncher()
    first = Controller(config, store, projects, FakeLauncher(), clock)
    first.startService()
    result_of(first.push_project(b"zip"))
    first.stopService()
    now = zones.instant(clock.seconds())
    for handle in ("fake:a", "fake:b"):
        store.add_job(dataclasses.replace(new_run("proj", RunOptions("quick"), now), status=JobStatus.RUNNING,
                                          started=now, handle=handle))
    c = Controller(config, store, projects, launcher, clock)
    c.startService()
    assert sorted(launcher.reattached) == ["fake:a", "fake:b"]  # both asked before either answered
    assert not c.ready and not c.recovered.called
    queued = c.schedule_job("proj", "quick")
    clock.advance(60)
    assert launcher.launched == [] and store.get_job(queued.identifier).status is JobStatus.PENDING
    launcher.waiting["fake:a"].callback(None)
    assert not c.ready
    launcher.waiting["fake:b"].callback(None)
    assert c.ready and c.recovered.called
    assert len(launcher.launched) == 2  # the two requeued runs fill both slots; the new one waits its turn
    c.stopService()
