import dataclasses
import os
import stat
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from twisted.internet.task import Clock

from scrapy_do.config import load
from scrapy_do.domain import zones
from scrapy_do.engine.controller import Controller
from scrapy_do.store import MemoryStore, SqliteStore
from tests.fakes import FakeLauncher, FakeProjects
from tests.helpers import result_of

_opened = {}


def _let_others_pass(path, upto=None):
    """Add the traverse bit for others (not read: no listing) to `path` and its parents (down from `upto`)."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            _opened.setdefault(folder, stat.S_IMODE(mode))
            os.chmod(folder, stat.S_IMODE(mode) | stat.S_IXOTH)
        if folder == upto:
            break


def pytest_configure(config):
    """A root daemon runs its crawls as `nobody`, who must reach this checkout's interpreter and code.

    In a checkout or venv below a private folder (mode 0700) nobody could: for
    the length of the run the folders on the way get the traverse bit (only
    that; they stay unlistable), and get their modes back at the end.
    """
    if os.geteuid() == 0:
        for path in (Path(sys.executable).resolve().parent, Path(__file__).resolve().parent.parent):
            _let_others_pass(path)
        _reachable_temporary_folders()


def _reachable_temporary_folders():
    """pytest makes every tmp_path and mktemp folder 0700; a daemon's store in one must be reachable by
    its crawl user, as a real store is: give them (and pytest's folders above) the traverse bit."""
    from _pytest.tmpdir import TempPathFactory

    make = TempPathFactory.mktemp

    def mktemp(self, basename, numbered=True):
        path = make(self, basename, numbered)
        _let_others_pass(path, upto=self.getbasetemp().parent)
        return path

    TempPathFactory.mktemp = mktemp


def pytest_unconfigure(config):
    for folder, mode in _opened.items():
        if folder.exists() and not str(folder).startswith("/tmp/pytest-of-"):
            os.chmod(folder, mode)


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
