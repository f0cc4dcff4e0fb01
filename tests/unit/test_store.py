"""Unit tests for scrapy_do.store: MemoryStore and SqliteStore behave the same; SQLite persists."""

import dataclasses
import json
import random
import sqlite3
from contextlib import closing
from datetime import datetime, timedelta, timezone

import pytest
from zope.interface.verify import verifyObject

from scrapy_do.store import migrations as store_module
from scrapy_do.errors import StartupError
from scrapy_do.interfaces import IJobStore
from scrapy_do.domain.models import ACTIVE, COMPLETED, Actor, JobStatus, Project, Run, RunOptions, Schedule
from scrapy_do.domain.records import to_record
from scrapy_do.store import COUNTERS, MIGRATIONS, MemoryStore, SqliteStore

S = JobStatus
UTC = timezone.utc
T0 = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)


@pytest.fixture(params=["memory", "sqlite"], ids=["memory", "sqlite"])
def store(request, tmp_path):
    """Each behaviour test runs against both stores."""
    s = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "db.sqlite").open()
    yield s
    s.close()


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "db.sqlite"


def make_job(n, status=S.PENDING, project="a", spider="x", schedule=False, **changes):
    """Job number `n`: identifier 'job-n', timestamp n minutes after T0; a Schedule if SCHEDULED or asked for."""
    common = dict(identifier=f"job-{n}", status=status, actor=Actor.USER, project=project,
                  options=RunOptions(spider=spider, description=f"#{n}"), timestamp=T0 + timedelta(minutes=n))
    if schedule or status is S.SCHEDULED:
        job = Schedule(**common, spec="every minute")
    else:
        job = Run(**common)
    return dataclasses.replace(job, **changes)


def full_job():
    """A run with every optional field set, to check nothing is lost on the way to storage."""
    return Run(identifier="full", status=S.FAILED, actor=Actor.SCHEDULER, project="proj",
               options=RunOptions(spider="quotes", description="Zoë's nightly run",
                                  payload='{"city": "東京", "n": 1}'),
               timestamp=datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC), duration=75,
               started=datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC), finished=datetime(2026, 1, 2, 3, 5, 21, tzinfo=UTC),
               exit_code=-15, handle="pid:4242@1767322446.25", schedule_id="parent-id")


def full_schedule():
    """A canceled schedule with every field set."""
    return Schedule(identifier="sched", status=S.CANCELED, actor=Actor.USER, project="proj",
                    options=RunOptions(spider="quotes", payload='{"a": [1, 2]}'), spec="every day at 10:30",
                    timestamp=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
                    finished=datetime(2026, 1, 3, 3, 4, 5, tzinfo=UTC),
                    next_run=datetime(2026, 1, 3, 10, 30, tzinfo=UTC))


def ids(jobs):
    return [j.identifier for j in jobs]


def make_project(name, spiders=("one", "two"), tree=None, pushed=T0):
    return Project(name=name, spiders=tuple(spiders), tree=tree or f"/trees/{name}.abc", pushed=pushed)


# --------------------------------------------------------------------------- interface


def test_provides_interface(store):
    """Both stores fully implement IJobStore."""
    assert verifyObject(IJobStore, store)


# --------------------------------------------------------------------------- jobs


def test_add_and_get_round_trip(store):
    """A stored run and a stored schedule come back equal, every field included."""
    for job in (full_job(), full_schedule()):
        store.add_job(job)
        assert store.get_job(job.identifier) == job


def test_runs_and_schedules_share_one_listing_order(store):
    """Runs and schedules are listed together in the order they were added, across both kinds."""
    store.add_job(make_job(0, S.CANCELED, schedule=True))
    store.add_job(make_job(1, S.SUCCESSFUL))
    store.add_job(make_job(2, S.CANCELED))
    store.add_job(make_job(3, S.CANCELED, schedule=True))
    assert ids(store.list_jobs(COMPLETED)) == ["job-3", "job-2", "job-1", "job-0"]
    assert ids(store.list_jobs({S.CANCELED}, limit=2, offset=1)) == ["job-2", "job-0"]
    assert [type(j) for j in store.list_jobs({S.CANCELED})] == [Schedule, Run, Schedule]


def test_has_pending_sees_only_a_waiting_run_of_that_schedule(store):
    """has_pending is true while a PENDING run points at the schedule, not for running or other runs."""
    store.add_job(make_job(0, S.SCHEDULED))
    store.add_job(make_job(1, S.RUNNING, schedule_id="job-0"))
    store.add_job(make_job(2, S.PENDING, schedule_id="other"))
    assert not store.has_pending("job-0")
    store.add_job(make_job(3, S.PENDING, schedule_id="job-0"))
    assert store.has_pending("job-0")


def test_get_unknown_job(store):
    """Asking for an unknown identifier gives None."""
    assert store.get_job("nope") is None


def test_add_duplicate_identifier_refused(store):
    """Adding a second job with an existing identifier fails and keeps the first one."""
    store.add_job(make_job(1))
    with pytest.raises((ValueError, sqlite3.IntegrityError)):
        store.add_job(make_job(1, status=S.RUNNING, project="other"))
    assert store.get_job("job-1") == make_job(1)
    assert store.count_jobs() == 1


def test_update_job(store):
    """update_job replaces the stored job with the same identifier."""
    store.add_job(make_job(1))
    running = make_job(1, status=S.RUNNING, handle="pid:7@1.5", started=T0)
    store.update_job(running)
    assert store.get_job("job-1") == running


def test_update_keeps_listing_position(store):
    """Updating a job does not make it newer in listings."""
    for n in range(3):
        store.add_job(make_job(n))
    store.update_job(make_job(0, status=S.RUNNING))
    assert ids(store.list_jobs()) == ["job-2", "job-1", "job-0"]


def test_update_unknown_job_is_a_no_op(store):
    """Updating a job that was never added does not create it."""
    store.update_job(make_job(9))
    assert store.get_job("job-9") is None
    assert store.count_jobs() == 0


# Six jobs, added in this order: number, status, project, spider.
DATASET = [
    (0, S.SUCCESSFUL, "a", "x"),
    (1, S.PENDING, "a", "y"),
    (2, S.RUNNING, "b", "x"),
    (3, S.FAILED, "a", "x"),
    (4, S.SCHEDULED, "b", "y"),
    (5, S.CANCELED, "a", "x"),
]


@pytest.fixture
def filled(store):
    for n, status, project, spider in DATASET:
        store.add_job(make_job(n, status, project, spider))
    return store


LISTINGS = [
    # list_jobs keyword arguments, expected job numbers in order
    ({}, [5, 4, 3, 2, 1, 0]),
    ({"oldest_first": True}, [0, 1, 2, 3, 4, 5]),
    ({"statuses": ACTIVE}, [4, 2, 1]),
    ({"statuses": COMPLETED}, [5, 3, 0]),
    ({"statuses": {S.RUNNING}}, [2]),
    ({"statuses": [S.PENDING, S.SCHEDULED]}, [4, 1]),
    ({"statuses": ()}, []),
    ({"project": "a"}, [5, 3, 1, 0]),
    ({"project": "b"}, [4, 2]),
    ({"project": "zzz"}, []),
    ({"spider": "y"}, [4, 1]),
    ({"project": "a", "spider": "x"}, [5, 3, 0]),
    ({"statuses": ACTIVE, "project": "a"}, [1]),
    ({"statuses": COMPLETED, "project": "b"}, []),
    ({"limit": 2}, [5, 4]),
    ({"limit": 2, "offset": 1}, [4, 3]),
    ({"offset": 4}, [1, 0]),
    ({"offset": 10}, []),
    ({"limit": 0}, []),
    ({"limit": 100}, [5, 4, 3, 2, 1, 0]),
    ({"limit": 2, "oldest_first": True}, [0, 1]),
    ({"limit": 2, "offset": 2, "oldest_first": True}, [2, 3]),
    ({"statuses": ACTIVE, "oldest_first": True, "limit": 2}, [1, 2]),
    ({"project": "a", "limit": 2, "offset": 1}, [3, 1]),
]


@pytest.mark.parametrize("kwargs,expected", LISTINGS)
def test_list_jobs(filled, kwargs, expected):
    """list_jobs filters by statuses, project and spider, newest first unless asked, then pages."""
    assert ids(filled.list_jobs(**kwargs)) == [f"job-{n}" for n in expected]


@pytest.mark.parametrize("kwargs,expected", [
    (k, len(v)) for k, v in LISTINGS if not {"limit", "offset", "oldest_first"} & set(k)
])
def test_count_jobs(filled, kwargs, expected):
    """count_jobs counts what list_jobs with the same filters would return."""
    assert filled.count_jobs(**kwargs) == expected


def test_count_empty_store(store):
    """An empty store counts zero jobs and lists none."""
    assert (store.count_jobs(), store.list_jobs()) == (0, [])


def test_newest_is_by_insertion_not_timestamp(store):
    """'Newest' means most recently added, even if an older job has a later timestamp."""
    store.add_job(make_job(1, timestamp=T0 + timedelta(days=1)))
    store.add_job(make_job(2, timestamp=T0))
    assert ids(store.list_jobs()) == ["job-2", "job-1"]


# --------------------------------------------------------------------------- purging

# Statuses in insertion order; completed ones are 0, 2, 3, 5, 7.
PURGE_SET = [S.SUCCESSFUL, S.RUNNING, S.FAILED, S.CANCELED, S.PENDING, S.SUCCESSFUL, S.SCHEDULED, S.FAILED]


@pytest.mark.parametrize("keep,removed", [
    (0, [7, 5, 3, 2, 0]),
    (1, [5, 3, 2, 0]),
    (2, [3, 2, 0]),
    (4, [0]),
    (5, []),
    (50, []),
])
def test_purge_completed(store, keep, removed):
    """purge_completed keeps the `keep` newest finished jobs, returns the removed ids, and leaves active jobs alone."""
    for n, status in enumerate(PURGE_SET):
        store.add_job(make_job(n, status))
    assert sorted(store.purge_completed(keep)) == sorted(f"job-{n}" for n in removed)
    remaining = [n for n in range(len(PURGE_SET)) if n not in removed]
    assert ids(store.list_jobs(oldest_first=True)) == [f"job-{n}" for n in remaining]
    assert ids(store.list_jobs(ACTIVE, oldest_first=True)) == ["job-1", "job-4", "job-6"]
    for n in removed:
        assert store.get_job(f"job-{n}") is None


def test_purge_with_only_active_jobs(store):
    """With no finished jobs there is nothing to purge."""
    for n, status in enumerate([S.PENDING, S.RUNNING, S.SCHEDULED]):
        store.add_job(make_job(n, status))
    assert store.purge_completed(0) == []
    assert store.count_jobs() == 3


def test_purge_twice_is_stable(store):
    """A second purge with the same cap removes nothing more."""
    for n in range(4):
        store.add_job(make_job(n, S.SUCCESSFUL))
    assert len(store.purge_completed(2)) == 2
    assert store.purge_completed(2) == []
    assert ids(store.list_jobs()) == ["job-3", "job-2"]


# --------------------------------------------------------------------------- projects


def test_save_and_get_project(store):
    """A saved project comes back equal, spiders as a tuple."""
    project = make_project("proj", spiders=["b", "a"], pushed=datetime(2026, 5, 6, 7, 8, 9, 123, tzinfo=UTC))
    store.save_project(project)
    got = store.get_project("proj")
    assert got == dataclasses.replace(project, spiders=("b", "a"))
    assert isinstance(got.spiders, tuple)


def test_get_unknown_project(store):
    """Asking for an unknown project gives None."""
    assert store.get_project("nope") is None


def test_list_projects_sorted(store):
    """list_projects returns every project sorted by name."""
    for name in ["zeta", "alpha", "Mid", "beta_2", "beta-1"]:
        store.save_project(make_project(name))
    assert [p.name for p in store.list_projects()] == ["Mid", "alpha", "beta-1", "beta_2", "zeta"]


def test_save_project_replaces(store):
    """Saving a project with an existing name replaces the record instead of adding one."""
    store.save_project(make_project("proj", spiders=["old"], tree="/trees/proj.1"))
    newer = make_project("proj", spiders=["new", "newer"], tree="/trees/proj.2", pushed=T0 + timedelta(hours=1))
    store.save_project(newer)
    assert store.get_project("proj") == newer
    assert store.list_projects() == [newer]


def test_remove_project(store):
    """remove_project deletes only the named project; removing an unknown one is harmless."""
    store.save_project(make_project("keep"))
    store.save_project(make_project("drop"))
    store.remove_project("drop")
    store.remove_project("never-there")
    assert store.get_project("drop") is None
    assert [p.name for p in store.list_projects()] == ["keep"]


def test_projects_and_jobs_are_independent(store):
    """Removing a project record does not delete its jobs."""
    store.save_project(make_project("a"))
    store.add_job(make_job(1, project="a"))
    store.remove_project("a")
    assert store.count_jobs(project="a") == 1


# --------------------------------------------------------------------------- counters


def test_counters_start_at_zero(store):
    """A new store has the four lifetime counters, all zero."""
    assert store.counters() == {"run": 0, "successful": 0, "failed": 0, "canceled": 0}
    assert set(COUNTERS) == {"run", "successful", "failed", "canceled"}


@pytest.mark.parametrize("bumps,expected", [
    (["run"], {"run": 1, "successful": 0, "failed": 0, "canceled": 0}),
    (["run", "run", "successful"], {"run": 2, "successful": 1, "failed": 0, "canceled": 0}),
    (["run", "failed", "run", "canceled", "run"], {"run": 3, "successful": 0, "failed": 1, "canceled": 1}),
])
def test_bump(store, bumps, expected):
    """bump adds one to the named counter only."""
    for name in bumps:
        store.bump(name)
    assert store.counters() == expected


def test_counters_returns_a_copy(store):
    """Changing the dict counters() returned does not change the store."""
    store.counters()["run"] = 99
    assert store.counters()["run"] == 0


# --------------------------------------------------------------------------- SQLite only


def test_sqlite_survives_reopen(db_path):
    """Jobs, projects and counters written before close() are there after reopening the file."""
    s = SqliteStore(db_path).open()
    s.add_job(full_job())
    s.add_job(make_job(1))
    s.save_project(make_project("proj"))
    s.bump("run")
    s.bump("failed")
    s.close()
    s = SqliteStore(db_path).open()
    try:
        assert s.get_job("full") == full_job()
        assert ids(s.list_jobs()) == ["job-1", "full"]
        assert s.get_project("proj") == make_project("proj")
        assert s.counters() == {"run": 1, "successful": 0, "failed": 1, "canceled": 0}
    finally:
        s.close()


def test_sqlite_listing_order_survives_reopen(db_path):
    """Jobs added after reopening are newer than those added before."""
    s = SqliteStore(db_path).open()
    s.add_job(make_job(1))
    s.close()
    s = SqliteStore(db_path).open()
    try:
        s.add_job(make_job(0))
        assert ids(s.list_jobs()) == ["job-0", "job-1"]
    finally:
        s.close()


def test_sqlite_schema_version(db_path):
    """A new database is migrated to the latest schema: user_version equals len(MIGRATIONS)."""
    SqliteStore(db_path).open().close()
    with closing(sqlite3.connect(db_path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_sqlite_uses_wal(db_path):
    """The database runs in WAL mode, with synchronous=NORMAL on the store's connection."""
    s = SqliteStore(db_path).open()
    try:
        assert s._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        with closing(sqlite3.connect(db_path)) as other:
            assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        s.close()


def _checkpointed_runs(db_path):
    """How many runs the database file itself holds, leaving out what is only in the WAL (a new database's
    schema may be there too)."""
    with closing(sqlite3.connect(f"file:{db_path}?immutable=1", uri=True)) as db:
        if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'runs'").fetchone() is None:
            return 0
        return db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]


def test_sqlite_commits_never_checkpoint(db_path):
    """Commits leave the WAL to the checkpointer (no automatic checkpoint on the store's connection), even
    past SQLite's own 1,000-page mark; asked to, the checkpointer copies it all into the database."""
    s = SqliteStore(db_path, checkpoint_every=10 ** 9).open()
    try:
        assert s._db.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        for n in range(3000):
            s.add_job(make_job(n, options=RunOptions(spider="x", description="x" * 200)))
        assert (db_path.parent / (db_path.name + "-wal")).stat().st_size > 1000 * 4096
        assert _checkpointed_runs(db_path) == 0
        s.checkpointer.request()
        assert s.checkpointer.wait(30)
        assert _checkpointed_runs(db_path) == 3000
        assert s.checkpointer.last_error is None
    finally:
        s.close()


def test_sqlite_checkpoints_every_few_writes(db_path):
    """Every `checkpoint_every` committed writes the checkpointer thread copies the WAL into the database."""
    s = SqliteStore(db_path, checkpoint_every=5).open()
    try:
        for n in range(4):
            s.add_job(make_job(n))
        assert s.checkpointer.wait(30)
        assert s.checkpointer.runs == 0 and _checkpointed_runs(db_path) == 0
        s.add_job(make_job(4))
        assert s.checkpointer.wait(30)
        assert s.checkpointer.runs == 1 and _checkpointed_runs(db_path) == 5
        s.add_jobs([make_job(n) for n in range(5, 9)])  # one transaction: one write
        assert s.checkpointer.wait(30)
        assert s.checkpointer.runs == 1 and s.get_job("job-8") is not None
    finally:
        s.close()


def test_sqlite_checkpointer_starts_the_wal_again(db_path):
    """After a complete checkpoint the checkpointer itself starts the WAL again (one frame of its own), so
    the store's next write does not have to (that write would fsync the WAL's new header)."""
    s = SqliteStore(db_path, checkpoint_every=10).open()
    try:
        for n in range(10):
            s.add_job(make_job(n))
        assert s.checkpointer.wait(30)
        with closing(sqlite3.connect(db_path)) as other:
            assert other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone() == (0, 1, 1)
        assert s.count_jobs() == 10 and _checkpointed_runs(db_path) == 10
    finally:
        s.close()


def test_sqlite_close_stops_the_checkpointer(db_path):
    """Closing the store ends its checkpointer thread, and what was written is in the database file."""
    s = SqliteStore(db_path).open()
    thread = s.checkpointer._thread
    s.add_job(make_job(1))
    s.close()
    assert not thread.is_alive()
    assert _checkpointed_runs(db_path) == 1


def test_sqlite_in_memory():
    """':memory:' gives a working, migrated store without touching the disk."""
    s = SqliteStore(":memory:").open()
    try:
        s.add_job(make_job(1))
        assert ids(s.list_jobs()) == ["job-1"]
        assert s._db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    finally:
        s.close()


@pytest.mark.parametrize("content", [
    random.Random(1234).randbytes(8192),
    b"this is not a database, just text\n" * 200,
    b"SQLite format 3\x00" + random.Random(5).randbytes(4080),
], ids=["random", "text", "bad-header"])
def test_sqlite_corrupt_file(db_path, content):
    """A file that is not a usable SQLite database raises StartupError naming it and how to recover."""
    db_path.write_bytes(content)
    with pytest.raises(StartupError) as info:
        SqliteStore(db_path).open()
    message = str(info.value)
    assert message.startswith(f"cannot open the database {db_path}: ")
    assert "restore it from the .bak copy" in message


def test_sqlite_newer_schema(db_path):
    """A database written by a newer Scrapy Do is refused with advice to upgrade."""
    with closing(sqlite3.connect(db_path)) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    with pytest.raises(StartupError) as info:
        SqliteStore(db_path).open()
    assert str(info.value) == (f"the database {db_path} has schema version {len(MIGRATIONS) + 5}, newer than "
                               f"this Scrapy Do knows ({len(MIGRATIONS)}); upgrade Scrapy Do")


def test_sqlite_migration_backs_up_and_upgrades(db_path, monkeypatch):
    """Opening an older database runs the new migration and leaves a .v<N>.bak copy of the old one."""
    s = SqliteStore(db_path).open()
    s.add_job(make_job(1))
    s.close()
    old = len(MIGRATIONS)
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS + ["CREATE TABLE extra (x INTEGER)"])
    s = SqliteStore(db_path).open()
    try:
        assert s._db.execute("PRAGMA user_version").fetchone()[0] == old + 1
        assert s._db.execute("SELECT COUNT(*) FROM extra").fetchone()[0] == 0
        assert s.get_job("job-1") == make_job(1)
    finally:
        s.close()
    backup = db_path.with_name(f"{db_path.name}.v{old}.bak")
    with closing(sqlite3.connect(backup)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == old
        assert db.execute("SELECT identifier FROM runs").fetchall() == [("job-1",)]


def test_sqlite_failed_migration_rolls_back(db_path, monkeypatch):
    """A migration that fails half-way leaves neither half a schema nor a bumped version."""
    SqliteStore(db_path).open().close()
    old = len(MIGRATIONS)
    broken = "CREATE TABLE half (x INTEGER); INSERT INTO no_such_table VALUES (1)"
    monkeypatch.setattr(store_module, "MIGRATIONS", MIGRATIONS + [broken])
    with pytest.raises(StartupError) as info:
        SqliteStore(db_path).open()
    assert "no such table: no_such_table" in str(info.value)
    with closing(sqlite3.connect(db_path)) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == old
        assert db.execute("SELECT name FROM sqlite_master WHERE name = 'half'").fetchall() == []


@pytest.mark.parametrize("statuses, limit, offset", [
    (None, None, 0), ([JobStatus.SUCCESSFUL], 2, 1), (COMPLETED, 3, 0), (COMPLETED, 2, 2), (ACTIVE, 10, 0)])
def test_list_jobs_json_matches_to_dict_pages(filled, statuses, limit, offset):
    """The JSON listing is exactly the jobs' records, in the same order and pages as list_jobs."""
    store = filled
    store.add_job(dataclasses.replace(full_job(), identifier="full-2", status=S.SUCCESSFUL))
    store.add_job(full_schedule())
    expected = [to_record(j) for j in store.list_jobs(statuses, limit=limit, offset=offset)]
    assert [json.loads(t) for t in store.list_jobs_json(statuses, limit=limit, offset=offset)] == expected
    assert expected  # the case is not vacuous


def test_sqlite_migrates_a_v1_database_in_place(db_path):
    """A 0.x-era v1 database (one jobs table, naive local times) becomes runs + schedules with offsets."""
    from dateutil import tz

    berlin = tz.gettz("Europe/Berlin")
    with closing(sqlite3.connect(db_path)) as db:
        store_module.run_script(db, store_module.V1)
        db.execute("PRAGMA user_version = 1")
        rows = [
            (1, "sched-1", "SCHEDULED", "USER", "every day at 02:30", "proj", "x", "d", '{"a": 1}',
             "2026-10-25 02:10:00.500000", None, None, None, None, None, None, None),
            (2, "run-1", "SUCCESSFUL", "SCHEDULER", "now", "proj", "x", "d", '{"a": 1}', "2026-07-01 12:00:00",
             60, "2026-07-01 12:00:01", "2026-07-01 12:01:01", 0, None, None, "sched-1"),
            (3, "run-2", "RUNNING", "USER", "now", "proj", "y", "", "{}", "2026-12-01 09:00:00", None,
             "2026-12-01 09:00:00", None, None, 4242, 1767322446.25, None),
        ]
        db.executemany("INSERT INTO jobs (seq, identifier, status, actor, schedule, project, spider, description, "
                       "payload, timestamp, duration, started, finished, exit_code, pid, pid_created, parent) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        db.execute("INSERT INTO projects VALUES ('proj', '[\"x\", \"y\"]', '/t', '2026-07-01 11:00:00')")
        db.commit()
    s = SqliteStore(db_path, berlin).open()
    try:
        schedule, run, running = (s.get_job(i) for i in ("sched-1", "run-1", "run-2"))
        assert isinstance(schedule, Schedule) and schedule.spec == "every day at 02:30"
        # An ambiguous wall time (the repeated hour) is taken as its first occurrence.
        assert schedule.timestamp == datetime(2026, 10, 25, 0, 10, 0, 500000, tzinfo=UTC)
        assert (run.schedule_id, run.duration, run.options) == ("sched-1", 60, RunOptions("x", "d", '{"a": 1}'))
        assert run.started == datetime(2026, 7, 1, 10, 0, 1, tzinfo=UTC)
        assert running.handle == "pid:4242@1767322446.25"
        assert s.get_project("proj").pushed == datetime(2026, 7, 1, 9, 0, tzinfo=UTC)
        assert ids(s.list_jobs()) == ["run-2", "run-1", "sched-1"]
        assert json.loads(s.list_jobs_json({S.SUCCESSFUL})[0])["started"] == "2026-07-01 12:00:01+02:00"
        assert [json.loads(t)["warm"] for t in s.list_jobs_json()] == [True, True, True]
        s.add_job(make_job(9))
        assert ids(s.list_jobs(limit=1)) == ["job-9"]
    finally:
        s.close()
    assert db_path.with_name(f"{db_path.name}.v1.bak").exists()


def test_runs_filter_by_parent_schedule_and_are_counted(store):
    """parent= keeps the runs one schedule made; count_jobs gives the total a page of them belongs to."""
    from scrapy_do.domain.models import RunOptions, new_run, new_schedule
    from scrapy_do.domain import zones

    now = zones.instant(1_790_000_000)
    schedule = new_schedule("p", RunOptions("s"), "every 1 hours", now)
    store.add_job(schedule)
    made = [new_run("p", RunOptions("s"), now, schedule_id=schedule.identifier) for _ in range(3)]
    for run in [*made, new_run("p", RunOptions("s"), now)]:
        store.add_job(run)
    listed = store.list_jobs(parent=schedule.identifier, limit=2)
    assert [r.identifier for r in listed] == [made[2].identifier, made[1].identifier]
    assert store.count_jobs(parent=schedule.identifier) == 3
    assert store.count_jobs() == 5
    assert store.count_jobs({JobStatus.SCHEDULED}, parent=schedule.identifier) == 0
    assert len(store.list_jobs_json(parent=schedule.identifier)) == 3


def test_the_pending_queue_is_priority_first_then_age(store):
    import dataclasses

    from scrapy_do.domain.models import RunOptions, new_run
    from scrapy_do.domain import zones

    now = zones.instant(1_790_000_000)
    runs = [new_run("p", dataclasses.replace(RunOptions("s"), priority=p), now) for p in (0, 5, -1, 5, 0)]
    for run in runs:
        store.add_job(run)
    order = [runs[1], runs[3], runs[0], runs[4], runs[2]]
    assert [r.identifier for r in store.pending_queue(10)] == [r.identifier for r in order]
    assert [r.identifier for r in store.pending_queue(2)] == [r.identifier for r in order[:2]]
    assert store.get_job(runs[1].identifier).options.priority == 5


def test_status_counts_kept_by_triggers_match_the_rows(tmp_path):
    """count_jobs by status alone reads counts the schema keeps; they equal counting the rows."""
    import dataclasses

    from scrapy_do.domain import zones
    from scrapy_do.domain.models import RunOptions, new_run, new_schedule, transition
    from scrapy_do.store import SqliteStore

    s = SqliteStore(tmp_path / "c.db").open()
    now = zones.instant(1_790_000_000)
    runs = [new_run("p", RunOptions("s"), now) for _ in range(5)]
    s.add_jobs([*runs, new_schedule("p", RunOptions("s"), "every 1 hours", now)])
    s.update_job(transition(runs[0], S.RUNNING, started=now))
    s.update_job(transition(runs[1], S.CANCELED, finished=now))
    s.update_job(dataclasses.replace(runs[2], options=RunOptions("s", description="same status")))
    s.purge_completed(0)
    for statuses in ({S.PENDING}, {S.RUNNING}, {S.CANCELED}, {S.SCHEDULED}, {S.PENDING, S.RUNNING}, None):
        assert s.count_jobs(statuses) == len(s.list_jobs(statuses)), statuses
    assert s.count_jobs({S.PENDING}) == 3 and s.count_jobs() == 5
    s.close()


def test_warm_lists_as_the_record_shows_it_also_for_rows_without_it(store):
    """`warm` is stored only when off; the JSON listing says false for it, and true (the default) otherwise,
    rows of earlier versions (no `warm` in their options) included."""
    store.add_job(dataclasses.replace(make_job(1), options=RunOptions(spider="x", warm=False)))
    store.add_job(make_job(2))
    store.add_job(make_job(3, S.SCHEDULED))
    listed = {r["identifier"]: r["warm"] for r in map(json.loads, store.list_jobs_json())}
    assert listed == {"job-1": False, "job-2": True, "job-3": True}
    assert [to_record(j)["warm"] for j in store.list_jobs()] == [True, True, False]
    assert store.get_job("job-1").options.warm is False and store.get_job("job-2").options.warm is True
