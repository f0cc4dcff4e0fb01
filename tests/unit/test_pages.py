"""Unit tests for scrapy_do.store.pages and the SQLite store's use of it: a kept page of list-jobs is
never one a write since has changed."""

import random

import pytest

from scrapy_do.domain.models import ACTIVE, COMPLETED, TRANSITIONS, JobStatus, transition
from scrapy_do.store import SqliteStore
from scrapy_do.store.pages import PageCache
from tests.unit.test_store import make_job

S = JobStatus


def test_a_page_is_kept_until_a_write_touches_its_statuses():
    pages = PageCache()
    pages.put("done", COMPLETED, ["a"])
    pages.put("active", ACTIVE, ["b"])
    pages.touched([S.RUNNING])  # a stats report on a running job
    assert pages.get("done", COMPLETED) == ["a"]
    assert pages.get("active", ACTIVE) is None
    pages.touched([S.SUCCESSFUL])  # a job finished: it left an ACTIVE status too
    assert pages.get("done", COMPLETED) is None


def test_a_write_that_cannot_say_what_it_touched_drops_every_page():
    pages = PageCache()
    pages.put("done", COMPLETED, ["a"])
    pages.put("all", None, ["a", "b"])
    pages.touched([])  # a project saved, a counter bumped: no job changed
    assert pages.get("done", COMPLETED) == ["a"]
    assert pages.get("all", None) is None  # every status includes the ACTIVE ones
    pages.touched(None)
    assert pages.get("done", COMPLETED) is None


def test_the_cache_holds_at_most_its_size():
    pages = PageCache(size=2)
    for key in "abc":
        pages.put(key, COMPLETED, [key])
    assert len(pages._pages) <= 2 and pages.get("c", COMPLETED) == ["c"]


QUERIES = [dict(statuses=COMPLETED), dict(statuses=ACTIVE), dict(statuses=None),
           dict(statuses={S.FAILED}), dict(statuses=COMPLETED, limit=3), dict(statuses=COMPLETED, offset=2, limit=2),
           dict(statuses=ACTIVE, project="b"), dict(statuses=COMPLETED, spider="y")]


@pytest.mark.parametrize("seed", range(5))
def test_kept_pages_always_equal_a_fresh_query(tmp_path, seed):
    """Random writes of every kind the store has, each followed by every query: the answer with pages kept is
    the answer of the SQL itself."""
    rng = random.Random(seed)
    store = SqliteStore(tmp_path / "db.sqlite").open()
    jobs, n = {}, 0
    try:
        for _ in range(150):
            action = rng.random()
            live = [j for j in jobs.values() if TRANSITIONS[j.status]]
            if action < 0.35 or not live:
                n += 1
                job = make_job(n, rng.choice([S.PENDING, S.SCHEDULED, S.CANCELED, S.SUCCESSFUL]),
                               project=rng.choice("ab"), spider=rng.choice("xy"))
                store.add_job(job)
            elif action < 0.85:
                job = rng.choice(live)
                job = transition(job, rng.choice(sorted(TRANSITIONS[job.status], key=lambda s: s.value)))
                store.update_jobs([job]) if rng.random() < 0.5 else store.update_job(job)
            elif action < 0.95:
                job = rng.choice(live)
                store.record(transition(job, rng.choice(sorted(TRANSITIONS[job.status], key=lambda s: s.value))),
                             "run")
                job = store.get_job(job.identifier)
            else:
                for identifier in store.purge_completed(rng.randint(0, 5)):
                    jobs.pop(identifier, None)
                continue
            jobs[job.identifier] = job
            for query in QUERIES:
                assert store.list_jobs_json(**query) == \
                    [r[0] for r in store._select("json", query.get("statuses"), query.get("project"),
                                                 query.get("spider"), query.get("limit"), query.get("offset", 0),
                                                 False)], query
        assert store.pages.hits > 0  # the test exercised kept pages, not only fresh ones
    finally:
        store.close()


def test_every_kind_of_write_moves_the_generation(tmp_path):
    """What the controller keeps of status() is read again after any write: each writing method moves
    `generation` (a method that did not would leave status.json stale)."""
    from tests.unit.test_store import make_project

    store = SqliteStore(tmp_path / "db.sqlite").open()
    try:
        job = make_job(1, S.PENDING)
        writes = [lambda: store.add_job(job), lambda: store.update_job(transition(job, S.RUNNING)),
                  lambda: store.record(transition(transition(job, S.RUNNING), S.SUCCESSFUL), "run"),
                  lambda: store.add_jobs([make_job(2)]), lambda: store.update_jobs([make_job(2)]),
                  lambda: store.bump("canceled"), lambda: store.save_project(make_project("p")),
                  lambda: store.remove_project("p"), lambda: store.purge_completed(0),
                  lambda: store.purge_deliveries(0)]
        for write in writes:
            before = store.generation
            write()
            assert store.generation != before, write
        writing = {name for name, attr in vars(SqliteStore).items()
                   if hasattr(attr, "__wrapped__") and getattr(attr, "__code__", None) is not None
                   and attr.__code__.co_name == "write"}  # the wrapper _writes puts around a method
        assert writing == {"add_job", "update_job", "record", "add_jobs", "update_jobs", "bump", "save_project",
                           "remove_project", "purge_completed", "purge_deliveries", "add_deliveries",
                           "update_delivery"}, "a new writing method: add it above"
    finally:
        store.close()
