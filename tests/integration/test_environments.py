"""Project environments built with the real uv from wheels in a local folder (no network, no index)."""

import subprocess

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from scrapy_do.projects.environments import BuildFailed, Environments
from scrapy_do.projects.requirements import parse
from tests.helpers import make_wheel

pytestmark = pytest.mark.integration


@pytest.fixture
def wheels(tmp_path):
    folder = tmp_path / "wheels"
    make_wheel(folder, "acme-helper", "1.0")
    make_wheel(folder, "acme-helper", "2.0", requires=["scrapy>=2", "twisted"])
    return folder


@pytest.fixture
def envs(tmp_path, wheels):
    e = Environments(tmp_path / "envs", reactor, find_links=[str(wheels)], timeout=120)
    e.open()
    return e


def run(env, code):
    return subprocess.run([env.python, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout


@pytest_twisted.inlineCallbacks
def test_an_environment_holds_the_requirements_over_the_daemons_packages(envs):
    env = yield envs.ensure(parse(b"acme-helper==2.0\n"))
    assert not env.reused and env.requirements == 1 and env.path.is_dir()
    # Its own package, and the daemon's Scrapy and Scrapy Do, without installing them again.
    printed = run(env, "import acme_helper, scrapy, scrapy_do, sys; print(acme_helper.VERSION, scrapy.__file__)")
    version, scrapy_file = printed.split()
    assert version == "2.0" and not scrapy_file.startswith(str(env.path))
    assert not list(env.path.glob("lib/python*/site-packages/scrapy"))
    again = yield envs.ensure(parse(b"acme_helper == 2.0  # same, spelled otherwise\n"))
    assert again.reused and again.path == env.path and again.seconds == 0


@pytest_twisted.inlineCallbacks
def test_two_versions_side_by_side_and_one_build_for_two_pushes(envs):
    one, same = yield defer.gatherResults([envs.ensure(parse(b"acme-helper==1.0\n")),
                                           envs.ensure(parse(b"acme-helper==1.0\n"))])
    two = yield envs.ensure(parse(b"acme-helper==2.0\n"))
    assert one.path == same.path and not same.reused and one.path != two.path
    assert run(one, "import acme_helper; print(acme_helper.VERSION)").strip() == "1.0"
    assert run(two, "import acme_helper; print(acme_helper.VERSION)").strip() == "2.0"
    assert len([p for p in envs.root.iterdir() if p.is_dir() and not p.name.startswith(".")]) == 2


@pytest_twisted.inlineCallbacks
def test_a_requirement_that_cannot_be_resolved_fails_with_the_resolvers_words_and_leaves_nothing(envs):
    with pytest.raises(BuildFailed) as failed:
        yield envs.ensure(parse(b"acme-helper==3.0\n"))
    assert "acme-helper" in failed.value.msg and "3.0" in failed.value.msg
    assert [p.name for p in envs.root.iterdir() if p.is_dir() and not p.name.startswith(".cache")] == []


def test_a_build_the_daemon_did_not_finish_is_deleted_at_start_up(tmp_path):
    root = tmp_path / "envs"
    (root / ".building-abc-1234" / "lib").mkdir(parents=True)
    Environments(root, reactor).open()
    assert not (root / ".building-abc-1234").exists()


@pytest_twisted.inlineCallbacks
def test_environments_no_version_uses_are_deleted(envs):
    one = yield envs.ensure(parse(b"acme-helper==1.0\n"))
    two = yield envs.ensure(parse(b"acme-helper==2.0\n"))
    envs.collect({two.key})
    assert not one.path.exists() and two.path.exists()


@pytest_twisted.inlineCallbacks
def test_an_environment_a_push_in_progress_holds_is_not_collected(envs):
    env = yield envs.ensure(parse(b"acme-helper==1.0\n"), project="p")
    envs.collect(set())  # a crawl ended meanwhile: nothing recorded uses the environment yet
    assert env.path.is_dir()
    envs.release(env.key)  # the push is recorded (or failed)
    envs.collect(set())
    assert not env.path.exists()
