import dataclasses
from datetime import datetime, timezone

import pytest
from twisted.internet.task import Clock

from scrapy_do.config import load
from scrapy_do.domain import zones
from scrapy_do.engine.controller import Controller
from scrapy_do.store import MemoryStore, SqliteStore
from tests.fakes import FakeLauncher, FakeProjects
from tests.helpers import result_of

# 2026-11-23 10:00:00 UTC, a Monday: tests start the clock here (the config zone is UTC).
START = datetime(2026, 11, 23, 10, 0, 0, tzinfo=timezone.utc).timestamp()


@pytest.fixture
def config(tmp_path):
    return dataclasses.replace(load(cwd=tmp_path), job_slots=2, completed_cap=5, interfaces=(("127.0.0.1", 0),),
                               timezone="UTC", zone=zones.UTC)


@pytest.fixture
def clock():
    c = Clock()
    c.advance(START)
    return c


@pytest.fixture(params=["memory", "sqlite"])
def store(request, tmp_path):
    s = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "jobs.db").open()
    yield s
    s.close()


@pytest.fixture
def launcher():
    return FakeLauncher()


@pytest.fixture
def controller(config, store, launcher, clock, tmp_path):
    """A started controller over fakes: pushes via `push(name, spiders)`, crawls end via the launcher."""
    projects = FakeProjects(tmp_path / "trees")
    c = Controller(config, store, projects, launcher, clock)

    def push(name="proj", spiders=("quick", "slow")):
        projects.next = (name, spiders)
        return result_of(c.push_project(b"zip"))

    c.push = push
    c.fake_projects = projects
    c.startService()
    yield c
    if c.running:
        c.stopService()
