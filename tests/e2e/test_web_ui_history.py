"""The completed history in a real browser against the real daemon.

Completed jobs listed last finished first (not in order of submission), dates on
times that are not of today, running jobs' durations counting up live, and "Run
again". The tests share one daemon and run in order; every wait is bounded
(expect() timeouts, wait_until). Changes reach the page through /events: a marker
on `window` shows that no reload happened.
"""

import json
import re
from datetime import datetime, timedelta

import pytest
from playwright.sync_api import expect

from tests.e2e.util import assert_not_reloaded, cancel_scheduled, mark, row, schedule, wait_until

pytestmark = pytest.mark.e2e

OFFSET = re.compile(r"[+-]\d\d:\d\d$")


def submit_job(daemon, **fields):
    code, body = daemon.request("/schedule-job.json", {"project": "offline", **fields})
    assert code == 200, body
    return body["identifier"]


def listed(page, table):
    """The identifiers of the rows of a table, top to bottom."""
    return page.get_by_test_id(table).locator("tr[data-job-id]").evaluate_all(
        "rows => rows.map((r) => r.dataset.jobId)")


def ticker_running(page):
    return page.evaluate("import('/ui/components.js').then((m) => m.tickerRunning())")


def seconds(text):
    m = re.fullmatch(r"(?:(\d+)m )?(\d+)s", text.strip())
    assert m, text
    return int(m.group(1) or 0) * 60 + int(m.group(2))


def test_completed_jobs_are_listed_last_finished_first(page, daemon, project):
    page.goto("/#/dashboard")
    expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "live")
    mark(page)

    slow = schedule(daemon, "slow", payload='{"pages": 30}', description="submitted first, finishes last")
    wait_until(lambda: daemon.job(slow)["status"] == "RUNNING")
    quick = schedule(daemon, "quick", description="submitted last, finishes first")
    expect(row(page, "dashboard-recent", quick).get_by_test_id("job-status")).to_have_text("SUCCESSFUL")
    assert daemon.job(slow)["status"] == "RUNNING", "the slow job ended before the quick one"
    assert listed(page, "dashboard-recent")[0] == quick

    expect(row(page, "dashboard-recent", slow).get_by_test_id("job-status")).to_have_text("SUCCESSFUL", timeout=30_000)
    assert listed(page, "dashboard-recent")[:2] == [slow, quick]
    # The API lists them in order of submission, the other way round.
    api = [j["identifier"] for j in daemon.get("/list-jobs.json", status="COMPLETED")[1]["jobs"]]
    assert api.index(quick) < api.index(slow)
    assert daemon.job(slow)["finished"] > daemon.job(quick)["finished"]

    # Today's times show the time only; the tooltip has the whole time with its offset.
    finished = row(page, "dashboard-recent", slow).locator("time")
    expect(finished).to_have_text(re.compile(r"^\d\d:\d\d:\d\d$"))
    expect(finished).to_have_attribute("title", OFFSET)

    # The jobs view loads the history in the same order, with a Finished column.
    page.get_by_test_id("nav-jobs").click()
    expect(row(page, "completed-jobs", slow)).to_have_count(1)
    assert listed(page, "completed-jobs")[:2] == [slow, quick]
    expect(page.get_by_test_id("completed-order")).to_contain_text("last finished first")
    cell = row(page, "completed-jobs", slow).get_by_test_id("job-finished").locator("time")
    expect(cell).to_have_attribute("title", daemon.job(slow)["finished"][:19] + daemon.job(slow)["finished"][-6:])

    # And keeps it as jobs end, from the event stream.
    slow2 = schedule(daemon, "slow", payload='{"pages": 30}', description="again, finishes last")
    wait_until(lambda: daemon.job(slow2)["status"] == "RUNNING")
    quick2 = schedule(daemon, "quick", description="again, finishes first")
    expect(row(page, "completed-jobs", quick2)).to_have_count(1)
    assert listed(page, "completed-jobs")[:3] == [quick2, slow, quick]
    expect(row(page, "completed-jobs", slow2).get_by_test_id("job-status")).to_have_text("SUCCESSFUL", timeout=30_000)
    assert listed(page, "completed-jobs")[:4] == [slow2, quick2, slow, quick]
    assert_not_reloaded(page)


def test_history_pages_follow_finish_order(page, daemon, project):
    """21 schedules canceled newest first: page 1 holds the 20 canceled last, the oldest submitted on top."""
    created = [submit_job(daemon, spider="broken", when="every 3 hours", description=f"page #{i}") for i in range(21)]
    for identifier in reversed(created):
        assert daemon.request("/cancel-job.json", {"id": identifier})[0] == 200
    page.goto("/#/jobs?status=CANCELED&spider=broken")
    expect(page.get_by_test_id("completed-jobs").locator("tr[data-job-id]")).to_have_count(20)
    assert listed(page, "completed-jobs") == created[:20]
    expect(page.get_by_test_id("completed-pager-info")).to_contain_text("1–20 of 21")
    page.get_by_test_id("completed-pager-next").click()
    expect(page.get_by_test_id("completed-jobs").locator("tr[data-job-id]")).to_have_count(1)
    assert listed(page, "completed-jobs") == [created[20]]
    expect(page).to_have_url(re.compile(r"page=2"))
    expect(page.get_by_test_id("completed-pager-next")).to_be_disabled()
    page.get_by_test_id("completed-pager-prev").click()
    expect(page.get_by_test_id("completed-jobs").locator("tr[data-job-id]")).to_have_count(20)


def test_times_of_other_days_show_the_date(page, daemon, project):
    page.goto("/#/dashboard")
    expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "live")
    now = datetime.fromisoformat(daemon.get("/status.json")[1]["time"])
    offset = now.isoformat()[-6:]
    earlier = now - timedelta(days=1)
    last_year = now.replace(year=now.year - 1, month=11, day=30)
    shown = page.evaluate("""async (times) => {
        const c = await import('/ui/components.js');
        return times.map((t) => { const el = c.timeCell(t); return [el.textContent, el.title]; });
    }""", [f"{now:%Y-%m-%d} 09:05:07.250000{offset}", f"{earlier:%Y-%m-%d} 14:02:05.123456{offset}",
           f"{last_year:%Y-%m-%d} 14:02:05{offset}", None])
    assert shown[0] == ["09:05:07", f"{now:%Y-%m-%d} 09:05:07{offset}"]
    day = f"{earlier:%b} {earlier.day}" + ("" if earlier.year == now.year else f" {earlier.year}")
    assert shown[1] == [f"{day} 14:02", f"{earlier:%Y-%m-%d} 14:02:05{offset}"]
    assert shown[2] == [f"Nov 30 {now.year - 1} 14:02", f"{last_year:%Y-%m-%d} 14:02:05{offset}"]
    assert shown[3] == ["—", ""]


def test_running_duration_counts_up_live(page, daemon, project):
    page.goto("/#/dashboard")
    expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "live")
    expect(page.get_by_test_id("dashboard-active-empty")).to_be_visible()
    assert ticker_running(page) is False, "nothing runs: the ticker must be stopped"
    mark(page)

    slow = schedule(daemon, "slow", payload='{"pages": 300}', description="count my seconds")
    elapsed = row(page, "dashboard-active", slow).get_by_test_id("job-elapsed")
    expect(elapsed).to_have_text(re.compile(r"^\d+s$"))
    assert ticker_running(page) is True

    def rises(locator):
        # It counts on, once a second (the row is also redrawn by the crawl's stats events every 2 s).
        first = seconds(locator.inner_text())
        wait_until(lambda: seconds(locator.inner_text()) >= first + 2, timeout=6)
        job = daemon.job(slow)
        assert job["status"] == "RUNNING"
        started = datetime.fromisoformat(job["started"])
        now = datetime.fromisoformat(daemon.get("/status.json")[1]["time"])
        assert abs(seconds(locator.inner_text()) - (now - started).total_seconds()) <= 2

    rises(elapsed)
    page.get_by_test_id("nav-jobs").click()
    running = row(page, "active-jobs", slow).get_by_test_id("job-elapsed")
    expect(running).to_have_text(re.compile(r"^\d+s$"))
    rises(running)

    assert daemon.request("/cancel-job.json", {"id": slow})[0] == 200
    done = row(page, "completed-jobs", slow)
    expect(done.get_by_test_id("job-status")).to_have_text("CANCELED")
    duration = daemon.job(slow)["duration"]
    expect(done.locator("td.num").first).to_have_text(f"{duration}s")
    wait_until(lambda: ticker_running(page) is False, timeout=5)
    assert_not_reloaded(page)


def test_run_again_a_completed_job(page, daemon, project):
    options = dict(spider="quick", description="run me again", payload='{"pages": 2}',
                   args=json.dumps({"category": "books", "depth": 2}), settings=json.dumps({"DOWNLOAD_DELAY": "0"}),
                   priority="7", timeout="300")
    first = submit_job(daemon, **options)
    original = daemon.wait_job(first, {"SUCCESSFUL", "FAILED"})
    assert original["status"] == "SUCCESSFUL"

    page.goto("/#/dashboard")
    mark(page)
    done = row(page, "dashboard-recent", first)
    done.get_by_role("button", name="Run again").click()
    toast = page.get_by_test_id("toast")
    new_id = toast.get_by_test_id("run-again-id").inner_text()
    assert new_id != first
    expect(toast.get_by_test_id("run-again-log")).to_have_attribute("href", f"#/log/{new_id}/err")
    toast.get_by_role("button", name="Dismiss").click()
    expect(toast).to_have_count(0)
    # The new job, as list-jobs.json lists it: the same options, run now, by the user.
    listed_ids = [j["identifier"] for j in daemon.get("/list-jobs.json", status="COMPLETED")[1]["jobs"] +
                  daemon.get("/list-jobs.json", status="ACTIVE")[1]["jobs"]]
    assert new_id in listed_ids
    again = daemon.job(new_id)
    for key in ("project", "spider", "description", "args", "settings", "priority", "timeout"):
        assert again[key] == original[key], key
    assert json.loads(again["payload"]) == {"pages": 2}
    assert (again["schedule"], again["actor"], again["parent"]) == ("now", "USER", None)
    assert (again["args"], again["settings"], again["priority"], again["timeout"]) == \
        ({"category": "books", "depth": 2}, {"DOWNLOAD_DELAY": "0"}, 7, 300)
    # It runs and lands on top of the recent jobs.
    expect(row(page, "dashboard-recent", new_id).get_by_test_id("job-status")).to_have_text("SUCCESSFUL")
    assert listed(page, "dashboard-recent")[0] == new_id
    assert_not_reloaded(page)

    # A run of a scheduled job, from the jobs view: once more, now, as the user's own job.
    schedule_id = submit_job(daemon, spider="quick", when="every 2 seconds", description="often",
                             args=json.dumps({"category": "travel"}), priority="-3")
    runs = wait_until(lambda: daemon.get("/list-jobs.json", status="COMPLETED", parent=schedule_id)[1]["jobs"],
                      timeout=30)
    cancel_scheduled(daemon)
    page.goto(f"/#/jobs?parent={schedule_id}")
    run = row(page, "completed-jobs", runs[0]["identifier"])
    run.get_by_role("button", name="Run again").click()
    rerun = page.get_by_test_id("toast").get_by_test_id("run-again-id").inner_text()
    job = daemon.job(rerun)
    assert (job["args"], job["priority"], job["description"], job["schedule"], job["actor"], job["parent"]) == \
        ({"category": "travel"}, -3, "often", "now", "USER", None)
    assert daemon.wait_job(rerun, {"SUCCESSFUL", "FAILED"})["status"] == "SUCCESSFUL"


def test_run_again_shows_the_daemons_refusal(page, daemon, project):
    done = daemon.get("/list-jobs.json", status="SUCCESSFUL", spider="quick")[1]["jobs"][0]
    cancel_scheduled(daemon)
    wait_until(lambda: not daemon.get("/list-jobs.json", status="ACTIVE")[1]["jobs"], timeout=30)
    assert daemon.request("/remove-project.json", {"name": "offline"})[0] == 200
    code, body = daemon.request("/schedule-job.json", {"project": "offline", "spider": "quick", "when": "now"})
    assert code == 404

    page.goto("/#/jobs?status=SUCCESSFUL")
    row(page, "completed-jobs", done["identifier"]).get_by_role("button", name="Run again").click()
    expect(page.get_by_role("alert").filter(has_text=body["msg"])).to_be_visible()
    expect(row(page, "completed-jobs", done["identifier"]).get_by_role("button", name="Run again")).to_be_enabled()
