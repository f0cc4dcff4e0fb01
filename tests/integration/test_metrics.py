"""GET /metrics of a real daemon, read back with prometheus_client's own parser, against jobs that really ran:
one that succeeded, one that failed, one canceled while it waited, and runs of a schedule."""

import json
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from requests.auth import HTTPDigestAuth

from tests.helpers import offline_zip
from tests.integration.daemonproc import DaemonProcess

pytestmark = pytest.mark.integration

CONF = "[scrapy-do]\njob-slots = 1\ncancel-grace = 2\n[web]\ninterfaces = 127.0.0.1:0\n"


def scrape(url, **kwargs):
    """{(name, labels as a sorted tuple): value} of every sample /metrics answers."""
    r = requests.get(url + "/metrics", timeout=10, **kwargs)
    assert r.status_code == 200, r.text[:300]
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(r.text) for s in family.samples}


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_what_the_daemon_did(tmp_path):
    d = DaemonProcess(tmp_path, CONF).start()
    try:
        idle = scrape(d.url)
        assert value(idle, "scrapy_do_job_slots") == 1 and value(idle, "scrapy_do_job_slots_busy") == 0
        d.push("offline.zip", offline_zip())
        ok = d.schedule("offline", "quick")
        assert d.wait_job(ok, {"SUCCESSFUL"}, timeout=60)
        slow = d.schedule("offline", "slow", payload=json.dumps({"pages": 100}))
        d.wait_job(slow, {"RUNNING"}, timeout=60)
        waiting = d.schedule("offline", "quick")  # no free slot: it waits
        during = scrape(d.url)
        assert value(during, "scrapy_do_job_slots_busy") == 1 and value(during, "scrapy_do_pending_jobs") == 1
        assert value(during, "scrapy_do_jobs", status="PENDING") == 1
        assert value(during, "scrapy_do_jobs", status="RUNNING") == 1
        assert d.request("/cancel-job.json", {"job_id": waiting})[0] == 200
        assert d.request("/cancel-job.json", {"job_id": slow})[0] == 200
        d.wait_job(slow, {"CANCELED"}, timeout=30)
        broken = d.schedule("offline", "broken")
        assert d.wait_job(broken, {"FAILED"}, timeout=60)
        code, body = d.request("/schedule-job.json", {"project": "offline", "spider": "quick",
                                                      "when": "every 2 seconds"})
        assert code == 200, body
        deadline, runs = time.monotonic() + 30, []
        while len(runs) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
            runs = [j for j in d.get("/list-jobs.json", status="COMPLETED")[1]["jobs"]
                    if j.get("parent") == body["identifier"]]
        assert len(runs) >= 2
        d.get("/list-jobs.json", status="bogus")  # a 400
        d.get("/no-such-endpoint")  # a 404

        after = scrape(d.url)
        successful = value(after, "scrapy_do_runs_ended_total", project="offline", spider="quick",
                           outcome="successful")
        assert successful == 1 + len([j for j in d.get("/list-jobs.json", status="COMPLETED")[1]["jobs"]
                                      if j.get("parent") and j["status"] == "SUCCESSFUL"])
        assert value(after, "scrapy_do_runs_ended_total", project="offline", spider="broken", outcome="failed") == 1
        assert value(after, "scrapy_do_runs_ended_total", project="offline", spider="slow", outcome="canceled") == 1
        assert value(after, "scrapy_do_runs_ended_total", project="offline", spider="quick", outcome="canceled") == 1
        # Items and requests of the runs that ended, as their stats say; bytes as their files hold.
        ended = [j for j in d.get("/list-jobs.json", status="COMPLETED")[1]["jobs"]]
        items = sum((j.get("stats") or {}).get("item_scraped_count", 0) for j in ended if j["spider"] == "quick")
        assert value(after, "scrapy_do_items_scraped_total", project="offline", spider="quick") == items >= 3
        log_dir = d.workdir / "projects" / "log-dir"
        assert value(after, "scrapy_do_bytes_written_total", kind="err") == sum(
            p.stat().st_size for p in log_dir.glob("*.err"))
        assert value(after, "scrapy_do_crawl_duration_seconds_count", project="offline") == len(
            [j for j in ended if j.get("started")])
        assert value(after, "scrapy_do_schedule_lag_seconds_count") >= 2
        assert value(after, "scrapy_do_api_requests_total", endpoint="/list-jobs.json", code="400") == 1
        assert value(after, "scrapy_do_api_requests_total", endpoint="unmatched", code="404") == 1
        # Counted once answered: this scrape is not in its own figures yet.
        assert value(after, "scrapy_do_api_requests_total", endpoint="/metrics", code="200") == 2
        assert value(after, "scrapy_do_launches_failing") == 0
        assert ("scrapy_do_webhook_deliveries", (("state", "pending"),)) in after
        assert not any(name.endswith("_created") for name, _ in after)
        # No job identifier in any label: the series stay bounded.
        assert not any(ok in json.dumps(labels) for _, labels in after)
    finally:
        d.stop()


def test_metrics_ask_for_credentials_unless_metrics_auth_is_off(tmp_path):
    (tmp_path / "auth.db").write_text("alice:s3cret\n")
    for switch, open_metrics in (("on", False), ("off", True)):
        d = DaemonProcess(tmp_path, CONF + f"auth = on\nauth-db = auth.db\nmetrics-auth = {switch}\n").start()
        try:
            assert requests.get(d.url + "/metrics", timeout=10).status_code == (200 if open_metrics else 401)
            assert requests.get(d.url + "/status.json", timeout=10).status_code == 401
            assert value(scrape(d.url, auth=HTTPDigestAuth("alice", "s3cret")), "scrapy_do_job_slots") == 1
        finally:
            d.stop()
