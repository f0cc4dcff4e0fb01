"""Job options with the real daemon and real crawls: arguments, settings, time limits, priority.

The `hostile` fixture's spiders fetch data: URLs: `recorder` prints what it
received, `stubborn` ignores SIGTERM (so only the time limit's SIGKILL stops
it), `snoop` ends at once.
"""

import json
import time

import pytest

from tests.helpers import FIXTURES, zip_tree
from tests.integration.daemonproc import DaemonProcess, pid_alive

pytestmark = pytest.mark.integration

GRACE = 2
CONF = "[scrapy-do]\njob-slots = {slots}\ncancel-grace = " + str(GRACE) + "\n{extra}[web]\ninterfaces = 127.0.0.1:0\n"


def start(workdir, slots=2, extra=""):
    d = DaemonProcess(workdir, CONF.format(slots=slots, extra=extra)).start()
    d.push("hostile.zip", zip_tree(FIXTURES / "hostile"))
    return d


def schedule(d, spider, **fields):
    return d.schedule("hostile", spider, **fields)


def printed(d, job, key):
    for line in (d.workdir / "projects" / "log-dir" / f"{job}.out").read_text().splitlines():
        if line.startswith("{") and key in line:
            return json.loads(line)
    raise AssertionError(f"job {job} printed no {key}")


@pytest.fixture
def daemon(tmp_path):
    d = start(tmp_path)
    yield d
    d.stop()


def test_arguments_and_settings_reach_the_spider(daemon):
    args = {"category": "books", "pages": 3, "strict": True, "tags": ["a", "b"], "note": "ünïcode = yes"}
    settings = {"MY_SETTING": "on", "DOWNLOAD_DELAY": 0.25}
    job = schedule(daemon, "recorder", payload='{"k": 1}', args=json.dumps(args), settings=json.dumps(settings))
    record = daemon.wait_job(job, {"SUCCESSFUL", "FAILED"})
    assert record["status"] == "SUCCESSFUL"
    seen = printed(daemon, job, "received")
    assert seen["received"] == {"payload": '{"k": 1}', "category": "books", "pages": "3", "strict": "true",
                                "tags": '["a", "b"]', "note": "ünïcode = yes"}
    assert seen["settings"]["MY_SETTING"] == "on" and seen["settings"]["DOWNLOAD_DELAY"] == 0.25
    assert record["args"] == args and record["settings"] == settings
    assert record["priority"] == 0 and record["timeout"] is None and record["reason"] is None


def test_a_time_limit_stops_a_crawl_that_ignores_sigterm(daemon):
    asked = time.monotonic()
    job = schedule(daemon, "stubborn", timeout="2")
    pid = printed_eventually(daemon, job, "stubborn")["stubborn"]
    record = daemon.wait_job(job, {"SUCCESSFUL", "FAILED", "CANCELED"}, timeout=2 + GRACE + 10)
    took = time.monotonic() - asked
    assert (record["status"], record["reason"], record["timeout"]) == ("FAILED", "timeout", 2), record
    assert took <= 2 + GRACE + 1 + 2, took  # + start-up of the crawl itself
    assert not pid_alive(pid)


def printed_eventually(d, job, key, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return printed(d, job, key)
        except (AssertionError, FileNotFoundError):
            time.sleep(0.1)
    raise AssertionError(f"job {job} never printed {key}")


def test_job_timeout_applies_when_a_job_sets_none(tmp_path):
    d = start(tmp_path, extra="job-timeout = 1\n")
    try:
        job = schedule(d, "stubborn")
        record = d.wait_job(job, {"SUCCESSFUL", "FAILED", "CANCELED"}, timeout=1 + GRACE + 10)
        assert (record["status"], record["reason"]) == ("FAILED", "timeout")
        quick = schedule(d, "snoop", timeout="60")  # its own limit wins, and it ends well before
        assert d.wait_job(quick, {"SUCCESSFUL", "FAILED"})["reason"] is None
    finally:
        d.stop()


def test_with_one_slot_pending_jobs_start_by_priority_then_age(tmp_path):
    d = start(tmp_path, slots=1)
    try:
        blocker = schedule(d, "stubborn", timeout="3")
        d.wait_job(blocker, {"RUNNING"}, timeout=30)
        low = schedule(d, "snoop", priority="-5")
        first_normal = schedule(d, "snoop")
        high = schedule(d, "snoop", priority="1000")
        second_normal = schedule(d, "snoop")
        order = [high, first_normal, second_normal, low]
        for job in order:
            d.wait_job(job, {"SUCCESSFUL", "FAILED"}, timeout=60)
        started = [d.job(job)["started"] for job in order]
        assert started == sorted(started), list(zip(order, started))
        assert d.job(high)["priority"] == 1000 and d.job(low)["priority"] == -5
    finally:
        d.stop()


def test_a_canceled_job_says_why(daemon):
    job = schedule(daemon, "stubborn")
    daemon.wait_job(job, {"RUNNING"}, timeout=30)
    assert daemon.request("/cancel-job.json", {"id": job})[0] == 200
    assert daemon.wait_job(job, {"CANCELED"}, timeout=30)["reason"] == "canceled"


@pytest.mark.parametrize("fields, names", [
    ({"args": "[1]"}, "args must be a JSON object"),
    ({"args": '{"payload": "x"}'}, "args may not hold 'payload'"),
    ({"args": '{"not a name": 1}'}, "is not a spider argument name"),
    ({"settings": '{"LOG_FILE": "/tmp/x"}'}, "settings may not override LOG_FILE"),
    ({"settings": '{"download_delay": 1}'}, "is not a Scrapy setting name"),
    ({"priority": "1001"}, "priority must be a whole number from -1000 to 1000"),
    ({"priority": "1.5"}, "priority must be a whole number"),
    ({"timeout": "0"}, "timeout must be a whole number from 1 to 604800 seconds"),
    ({"category": "travel"}, "unknown parameter 'category'"),
])
def test_bad_options_are_refused_and_nothing_is_stored(daemon, fields, names):
    code, body = daemon.request("/schedule-job.json", {"project": "hostile", "spider": "snoop", **fields})
    assert code == 400 and body["status"] == "error" and names in body["msg"], body
    assert daemon.get("/list-jobs.json", status="ACTIVE")[1]["jobs"] == []


def test_remove_project_takes_project_as_well_as_name(daemon):
    code, body = daemon.request("/remove-project.json", {"project": "hostile"})
    assert code == 200, body
    assert daemon.get("/list-projects.json")[1]["projects"] == []


def test_a_schedule_is_paused_edited_and_resumed_over_http(daemon):
    code, body = daemon.request("/schedule-job.json", {"project": "hostile", "spider": "snoop", "when": "every 2 hours",
                                                        "timezone": "Asia/Kolkata", "overlap": "skip"})
    assert code == 200, body
    job = body["identifier"]
    record = daemon.job(job)
    assert (record["timezone"], record["overlap"], record["catch-up"], record["paused"], record["skipped"]) == \
        ("Asia/Kolkata", "skip", False, False, 0)
    code, body = daemon.request("/pause-job.json", {"job_id": job})
    assert code == 200 and body["job"]["paused"] is True and body["job"]["next-run"] is None, body
    code, body = daemon.request("/edit-job.json", {"job_id": job, "when": "every 3 hours", "priority": "5",
                                                    "args": '{"category": "books"}'})
    assert code == 200, body
    assert (body["job"]["schedule"], body["job"]["priority"], body["job"]["args"]) == \
        ("every 3 hours", 5, {"category": "books"})
    code, body = daemon.request("/resume-job.json", {"job_id": job})
    assert code == 200 and body["job"]["paused"] is False and body["job"]["next-run"] is not None
    code, body = daemon.request("/pause-job.json", {"job_id": "not-a-job"})
    assert code == 400, body
    code, listed = daemon.get("/list-jobs.json", status="SCHEDULED", limit="1")
    assert code == 200 and listed["total"] == 1 and len(listed["jobs"]) == 1
    code, runs = daemon.get("/list-jobs.json", status="ACTIVE", parent=job)
    assert code == 200 and runs["total"] == 0


def test_cron_with_a_time_zone_previews_in_that_zone(daemon):
    # 12:30 exists on every day of the year (02:30 would not on a spring-forward day).
    code, body = daemon.get("/preview-schedule.json", when="30 12 * * *", timezone="Europe/Berlin", count="3")
    assert code == 200, body
    assert all(" 12:30:00" in t and (t.endswith("+01:00") or t.endswith("+02:00")) for t in body["next"]), body


def test_an_empty_timeout_in_an_edit_falls_back_to_the_default(daemon):
    code, body = daemon.request("/schedule-job.json", {"project": "hostile", "spider": "snoop",
                                                        "when": "every 2 hours", "timeout": "30"})
    assert code == 200, body
    code, body = daemon.request("/edit-job.json", {"job_id": body["identifier"], "timeout": ""})
    assert code == 200 and body["job"]["timeout"] is None, body


def test_wait_job_answers_within_a_second_of_the_end_or_at_its_timeout(daemon):
    import urllib.request

    job = schedule(daemon, "stubborn", timeout="3")
    asked = time.monotonic()
    code, body = daemon.get("/wait-job.json", job_id=job, timeout="1")
    assert code == 200 and body["done"] is False and body["job"]["status"] in ("PENDING", "RUNNING"), body
    assert 0.9 <= time.monotonic() - asked < 3
    from datetime import datetime, timezone

    with urllib.request.urlopen(f"{daemon.url}/wait-job.json?job_id={job}&timeout=120", timeout=60) as resp:
        body = json.loads(resp.read())
    answered = datetime.now(timezone.utc)
    ended = daemon.job(job)
    assert body["done"] is True and body["job"]["status"] == "FAILED" and body["job"]["reason"] == "timeout"
    assert body["job"]["finished"] == ended["finished"]
    assert (answered - datetime.fromisoformat(ended["finished"])).total_seconds() < 1.0
    code, body = daemon.get("/wait-job.json", job_id=job)  # already over: at once
    assert code == 200 and body["done"] is True
    for params, status in (({"job_id": job, "timeout": "3601"}, 400), ({"job_id": "nope"}, 400),
                           ({"job_id": "6c3e0a5e-0000-4000-8000-000000000000"}, 404), ({}, 400)):
        assert daemon.get("/wait-job.json", **params)[0] == status, params


def test_a_running_crawl_reports_live_stats_and_its_final_ones(daemon):
    import urllib.error
    import urllib.request

    job = schedule(daemon, "forker", payload='{"pages": 50}')  # 10 pages a second, for 5 s
    deadline = time.monotonic() + 30
    seen = []
    while time.monotonic() < deadline:
        record = daemon.job(job)
        if record["status"] != "RUNNING" and seen:
            break
        if record["status"] == "RUNNING" and record["stats"]:
            seen.append(record["stats"])
        time.sleep(0.5)
    assert len(seen) >= 3, seen
    assert set(seen[-1]) == {"items", "requests", "responses", "errors", "items-per-minute", "pages-per-minute",
                             "elapsed"}
    assert seen[-1]["items"] > seen[0]["items"] and seen[-1]["items-per-minute"] > 0
    live = daemon.get(f"/get-stats/{job}.json")
    ended = daemon.wait_job(job, {"FAILED", "SUCCESSFUL"}, timeout=30)
    assert live[0] in (200, 404)
    stats = ended["stats"]
    assert stats["finish-reason"] == "finished" and stats["item_scraped_count"] == 50, stats
    assert stats["start_time"].endswith("+00:00")
    code, body = daemon.get(f"/get-stats/{job}.json")
    assert code == 200 and body["stats"] == stats
    # Someone else's report: refused, nothing changes.
    other = schedule(daemon, "stubborn", timeout="3")
    daemon.wait_job(other, {"RUNNING"}, timeout=30)
    forged = urllib.request.Request(f"{daemon.url}/report/{other}.json", method="POST",
                                    data=json.dumps({"stats": {"x": 1}, "summary": {"items": 10 ** 9}}).encode(),
                                    headers={"Content-Type": "application/json", "Authorization": "Bearer guess"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(forged, timeout=10)
    assert refused.value.code == 403
    assert (daemon.job(other)["stats"] or {}).get("items") != 10 ** 9
