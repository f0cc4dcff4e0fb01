"""The real engine in-process: real archives, real `scrapy crawl` processes, real SQLite."""

import json

import psutil
import pytest
import pytest_twisted
import treq
from twisted.internet import reactor, task

from scrapy_do.errors import BadArchive, Conflict
from scrapy_do.domain.models import JobStatus
from scrapy_do.launchers.local import parse_handle
from tests.helpers import OFFLINE, offline_zip, zip_tree
from tests.integration.conftest import wait_for_job

pytestmark = pytest.mark.integration


@pytest_twisted.inlineCallbacks
def test_push_lists_spiders_and_keeps_tree_and_archive(daemon):
    """Pushing the fixture project lists its spiders via `scrapy list` and stores it."""
    project = yield daemon.controller.push_project(offline_zip())
    assert (project.name, project.spiders) == ("offline", ("broken", "bulk", "erring", "mixed", "quick", "slow"))
    assert (daemon.config.project_store / "archives" / "offline.zip").is_file()
    assert (daemon.controller.get_project("offline").tree.endswith(".incoming") is False)
    assert daemon.controller.list_projects() == ["offline"]


@pytest_twisted.inlineCallbacks
def test_quick_crawl_succeeds_with_payload_and_logs(daemon):
    """A `now` job runs a real crawl that sees its payload and SPIDER_DATA_DIR; logs are written."""
    c = daemon.controller
    yield c.push_project(offline_zip())
    job = c.schedule_job("offline", "quick", "now", description="first", payload='{"tag": "é"}')
    done = yield wait_for_job(c, job.identifier)
    assert done.status is JobStatus.SUCCESSFUL and done.exit_code == 0
    out = json.loads(c.log_path(job.identifier, "out").read_text().strip().splitlines()[-1])
    assert out == {"payload": {"tag": "é"}, "data_dir": str(daemon.config.spider_data_dir / "offline"), "body": "hello"}
    assert "Spider closed (finished)" in c.log_path(job.identifier, "err").read_text()


@pytest_twisted.inlineCallbacks
def test_broken_spider_fails_with_traceback_in_err_log(daemon):
    """A spider that raises at start ends FAILED with its error in the .err log."""
    c = daemon.controller
    yield c.push_project(offline_zip())
    job = c.schedule_job("offline", "broken")
    done = yield wait_for_job(c, job.identifier)
    assert done.status is JobStatus.FAILED and done.exit_code != 0
    assert "broken on purpose" in c.log_path(job.identifier, "err").read_text()


@pytest_twisted.inlineCallbacks
def test_cancel_running_crawl_stops_the_process(daemon):
    """Canceling a running slow crawl ends its process and marks the job CANCELED."""
    c = daemon.controller
    yield c.push_project(offline_zip())
    job = c.schedule_job("offline", "slow")
    running = yield wait_for_job(c, job.identifier, {JobStatus.RUNNING})
    yield task.deferLater(reactor, 0, lambda: None)  # heard as it is recorded: canceled as an API call would be
    pid, created, _ = parse_handle(running.handle)
    assert psutil.Process(pid).create_time() == pytest.approx(created, abs=0.05)
    canceled = yield c.cancel_job(job.identifier)
    assert canceled.status is JobStatus.CANCELED
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@pytest_twisted.inlineCallbacks
def test_slots_bound_concurrent_crawls(daemon):
    """With two slots, three slow jobs run two at a time; the third waits PENDING."""
    c = daemon.controller
    yield c.push_project(offline_zip())
    jobs = [c.schedule_job("offline", "slow", payload='{"pages": 3}') for _ in range(3)]
    for job in jobs[:2]:  # a warm start answers a moment later
        yield wait_for_job(c, job.identifier, {JobStatus.RUNNING})
    assert [c.get_job(j.identifier).status for j in jobs] == [JobStatus.RUNNING] * 2 + [JobStatus.PENDING]
    for job in jobs:
        done = yield wait_for_job(c, job.identifier)
        assert done.status is JobStatus.SUCCESSFUL


@pytest_twisted.inlineCallbacks
def test_push_with_import_error_reports_the_error_and_changes_nothing(daemon, tmp_path):
    """A project whose spiders fail to import is refused with the error's tail; nothing is stored."""
    broken = tmp_path / "src" / "offline"
    import shutil

    shutil.copytree(OFFLINE, broken, ignore=shutil.ignore_patterns("__pycache__"))
    (broken / "offline" / "spiders" / "bad.py").write_text("import not_installed_module_xyz\n")
    with pytest.raises(BadArchive, match="not_installed_module_xyz"):
        yield daemon.controller.push_project(zip_tree(broken))
    assert daemon.controller.list_projects() == []
    trees = daemon.config.project_store / "trees"
    assert list(trees.iterdir()) == []


@pytest_twisted.inlineCallbacks
def test_repush_replaces_project_and_refuses_dropping_scheduled_spider(daemon, tmp_path):
    """A re-push with fewer spiders is refused while a dropped spider has a schedule."""
    import shutil

    c = daemon.controller
    yield c.push_project(offline_zip())
    c.schedule_job("offline", "slow", "every 5 hours")
    smaller = tmp_path / "src" / "offline"
    shutil.copytree(OFFLINE, smaller, ignore=shutil.ignore_patterns("__pycache__"))
    spiders = smaller / "offline" / "spiders" / "spiders.py"
    spiders.write_text(spiders.read_text().split("class SlowSpider")[0])
    with pytest.raises(Conflict, match="slow"):
        yield c.push_project(zip_tree(smaller))
    assert c.list_spiders("offline") == ["broken", "bulk", "erring", "mixed", "quick", "slow"]


@pytest_twisted.inlineCallbacks
def test_status_json_over_a_real_socket(daemon):
    """The daemon answers status.json on its port with the contract's keys."""
    response = yield treq.get(f"http://127.0.0.1:{daemon.port}/status.json")
    body = yield response.json()
    assert response.code == 200
    for key in ("memory-usage", "cpu-usage", "time", "timezone", "hostname", "uptime", "jobs-run",
                "jobs-successful", "jobs-failed", "jobs-canceled"):
        assert key in body
    assert body["status"] == "ok"
