"""Schedule names and `notify` URLs through the real daemon's API: what schedules as code stand on."""

import pytest

from tests.helpers import FIXTURES, zip_tree
from tests.integration.daemonproc import DaemonProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = DaemonProcess(tmp_path_factory.mktemp("names")).start()
    d.push("offline.zip", zip_tree(FIXTURES / "offline"))
    yield d
    d.stop()


def schedule(d, **fields):
    return d.request("/schedule-job.json", {"project": "offline", "spider": "quick", "when": "every 10 minutes",
                                            **fields})


def test_a_name_is_kept_shown_and_unique_among_scheduled_schedules(daemon):
    code, body = schedule(daemon, name="nightly-quick")
    assert code == 200, body
    first = body["identifier"]
    record = daemon.job(first)
    assert record["name"] == "nightly-quick" and record["notify"] == ""
    code, body = schedule(daemon, name="nightly-quick")
    assert code == 409 and body["status"] == "error" and first in body["msg"] and "name" in body["msg"]
    # Once that schedule is canceled its name is free again.
    assert daemon.request("/cancel-job.json", {"job_id": first})[0] == 200
    code, body = schedule(daemon, name="nightly-quick")
    assert code == 200, body
    assert daemon.job(first)["name"] == "nightly-quick"  # the canceled one keeps its name in history


def test_edit_job_renames_and_refuses_a_taken_name(daemon):
    a = schedule(daemon, name="edit-a")[1]["identifier"]
    b = schedule(daemon)[1]["identifier"]
    assert daemon.job(b)["name"] is None
    code, body = daemon.request("/edit-job.json", {"job_id": b, "name": "edit-a"})
    assert code == 409, body
    code, body = daemon.request("/edit-job.json", {"job_id": b, "name": "edit-b"})
    assert code == 200 and body["job"]["name"] == "edit-b"
    code, body = daemon.request("/edit-job.json", {"job_id": a, "name": "edit-a", "priority": "3"})
    assert code == 200 and body["job"]["priority"] == 3  # its own name is not "taken"


def test_an_empty_name_in_edit_job_unnames_a_schedule(daemon):
    a = schedule(daemon, name="unname-me")[1]["identifier"]
    code, body = daemon.request("/edit-job.json", {"job_id": a, "name": ""})
    assert code == 200 and body["job"]["name"] is None
    assert schedule(daemon, name="unname-me")[0] == 200  # the name is free


@pytest.mark.parametrize("name", ["-lead", "a b", "x" * 101, "ü", "a/b", "a\x00"])
def test_a_bad_name_is_refused_naming_the_field(daemon, name):
    code, body = schedule(daemon, name=name)
    assert code == 400 and body["msg"].startswith("name must be"), body


def test_a_name_applies_only_to_periodic_jobs(daemon):
    code, body = schedule(daemon, name="now-job", when="now")
    assert code == 400 and "name" in body["msg"] and "periodic" in body["msg"]


def test_notify_is_a_run_option_copied_to_each_run(daemon):
    code, body = schedule(daemon, notify="http://127.0.0.1:9/hook", when="now")
    assert code == 200, body
    assert daemon.job(body["identifier"])["notify"] == "http://127.0.0.1:9/hook"
    sched = schedule(daemon, notify="https://hooks.example.com/a?b=c")[1]["identifier"]
    code, body = daemon.request("/edit-job.json", {"job_id": sched, "notify": ""})
    assert code == 200 and body["job"]["notify"] == ""


@pytest.mark.parametrize("url", ["ftp://example.com/x", "example.com", "http://", "http://a b/",
                                 "javascript:alert(1)", "http://x/" + "a" * 2000, "http://x/\x01",
                                 "http://ho_st:80x/", "http://[::1]:9/", "http://%zz/", "https://user:pw@host/x",
                                 "http://<b>odd<i>host:1/x", "HTTP://A/"])
def test_a_bad_notify_url_is_refused(daemon, url):
    code, body = schedule(daemon, notify=url, when="now")
    assert code == 400 and body["msg"].startswith("notify must be"), body
