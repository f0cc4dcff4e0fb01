"""The dashboard's job options in a real browser against the real daemon.

Spider arguments and settings as rows, priority, timeout, time zones and cron
in the schedule form; pausing, resuming and editing SCHEDULED jobs from the jobs
view; why a job ended. Every wait is bounded (expect() timeouts, wait_until).
Changes reach the page through /events: a marker on `window` shows that no
reload happened.
"""

import json
import re

import pytest
from playwright.sync_api import expect

from tests.e2e.util import assert_not_reloaded, cancel_scheduled, mark, row, schedule, wait_until

pytestmark = pytest.mark.e2e

ZONE = "Asia/Kathmandu"  # +05:45: no daemon's zone has that offset by chance



def submit_job(daemon, **fields):
    code, body = daemon.request("/schedule-job.json", {"project": "offline", **fields})
    assert code == 200, body
    return body["identifier"]


def test_schedule_with_argument_and_setting_rows(page, daemon, project):
    page.goto("/#/schedule?project=offline&spider=quick")
    expect(page.get_by_test_id("when-ok")).to_contain_text("Runs once")
    # With when=now there is no time zone, overlap or catch-up to set.
    expect(page.get_by_label("Time zone")).to_be_hidden()
    expect(page.get_by_label("Catch up")).to_be_hidden()

    page.get_by_label("Argument 1 name").fill("category")
    page.get_by_label("Argument 1 value").fill("books")
    page.get_by_role("button", name="+ Add argument").click()
    # A name the daemon would refuse is caught in the page: nothing is sent.
    page.get_by_label("Argument 2 name").fill("max-pages")
    page.get_by_label("Argument 2 value").fill("5")
    page.get_by_role("button", name="+ Add argument").click()  # a third row, left empty: ignored
    page.get_by_label("Setting 1 name").fill("download_delay")
    page.get_by_label("Setting 1 value").fill("0")
    page.get_by_test_id("schedule-submit").click()
    expect(page.get_by_test_id("args-error")).to_contain_text("'max-pages' is not a spider argument name")
    expect(page.get_by_label("Argument 2 name")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_test_id("schedule-result")).to_have_count(0)

    page.get_by_label("Argument 2 name").fill("max_pages")
    page.get_by_test_id("schedule-submit").click()
    expect(page.get_by_test_id("args-error")).to_have_count(0)
    expect(page.get_by_test_id("settings-error")).to_contain_text("not a Scrapy setting name")
    page.get_by_label("Setting 1 name").fill("DOWNLOAD_DELAY")
    page.get_by_role("button", name="+ Add setting").click()
    page.get_by_label("Setting 2 name").fill("LOG_FILE")
    page.get_by_label("Setting 2 value").fill("/tmp/x.log")
    page.get_by_test_id("schedule-submit").click()
    expect(page.get_by_test_id("settings-error")).to_contain_text("LOG_FILE cannot be overridden")
    page.get_by_role("button", name="Remove setting 2").click()

    page.get_by_label("Priority").fill("2000")
    page.get_by_test_id("schedule-submit").click()
    expect(page.get_by_test_id("priority-error")).to_contain_text("from -1000 to 1000")
    page.get_by_label("Priority").fill("5")
    page.get_by_label("Timeout").fill("120")
    expect(page.get_by_test_id("timeout-error-hint")).to_contain_text("2m 00s")
    page.get_by_label("Description").fill("with options")
    page.get_by_test_id("schedule-submit").click()
    identifier = page.get_by_test_id("new-job-id").inner_text()

    job = daemon.job(identifier)
    assert job["args"] == {"category": "books", "max_pages": "5"}
    assert job["settings"] == {"DOWNLOAD_DELAY": "0"}
    assert (job["priority"], job["timeout"], job["description"], job["schedule"]) == (5, 120, "with options", "now")
    assert daemon.wait_job(identifier, {"SUCCESSFUL", "FAILED"})["status"] == "SUCCESSFUL"

    # The job's page shows what it was given.
    page.get_by_test_id("new-job-log").click()
    head = page.get_by_test_id("log-job")
    expect(head).to_contain_text('{"category":"books","max_pages":"5"}')
    expect(head).to_contain_text('{"DOWNLOAD_DELAY":"0"}')


def test_cron_job_in_a_time_zone_previews_in_that_zone(page, daemon, project):
    page.goto("/#/schedule?project=offline&spider=quick")
    expect(page.get_by_test_id("when-ok")).to_contain_text("Runs once")
    spec = "*/15 9-17 * * MON-FRI"
    page.get_by_label("When").fill(spec)
    zone = page.get_by_label("Time zone")
    expect(zone).to_be_visible()
    expect(page.get_by_test_id("preview-zone")).to_contain_text("the daemon")

    # An unknown zone: the preview shows the daemon's message, and so does a submission.
    zone.fill("Mars/Olympus_Mons")
    msg = daemon.get("/preview-schedule.json", when=spec, timezone="Mars/Olympus_Mons")[1]["msg"]
    expect(page.get_by_test_id("when-error")).to_have_text(msg)
    expect(zone).to_have_attribute("aria-invalid", "true")
    page.get_by_test_id("schedule-submit").click()
    expect(page.get_by_test_id("schedule-error")).to_contain_text(msg)

    zone.fill(ZONE)
    expect(page.get_by_test_id("preview-zone")).to_have_text(ZONE)
    runs = page.get_by_test_id("next-runs").locator("li")
    expect(runs).to_have_count(5)
    expect(page.get_by_test_id("when-ok")).to_contain_text("*/15 9-17 * * mon-fri")
    shown = runs.all_inner_texts()
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d (09|1[0-7]):(00|15|30|45):00\+05:45", t) for t in shown), shown
    api = daemon.get("/preview-schedule.json", when=spec, timezone=ZONE)[1]["next"]
    assert shown == api or shown[1:] == api[:-1], (shown, api)  # a quarter may have turned in between

    page.get_by_label("Overlapping runs").select_option("skip")
    page.get_by_label("Catch up").check()
    page.get_by_test_id("schedule-submit").click()
    identifier = page.get_by_test_id("new-job-id").inner_text()
    job = daemon.job(identifier)
    assert (job["status"], job["schedule"], job["timezone"], job["overlap"], job["catch-up"], job["paused"]) == \
        ("SCHEDULED", "*/15 9-17 * * mon-fri", ZONE, "skip", True, False)

    page.get_by_test_id("new-job-link").click()
    scheduled = row(page, "active-jobs", identifier)
    expect(scheduled.get_by_test_id("job-schedule")).to_have_text("*/15 9-17 * * mon-fri")
    expect(scheduled.get_by_test_id("job-timezone")).to_contain_text(ZONE)
    expect(scheduled.get_by_test_id("job-skipped")).to_have_text("skipped 0")
    expect(scheduled.get_by_test_id("job-catch-up")).to_be_visible()

    # Back to now: the periodic options go away and are not sent.
    page.goto("/#/schedule?project=offline&spider=quick")
    page.get_by_label("When").fill("every day at 10:30")
    page.get_by_label("Time zone").fill(ZONE)
    page.get_by_label("When").fill("now")
    expect(page.get_by_label("Time zone")).to_be_hidden()
    page.get_by_test_id("schedule-submit").click()
    expect(page.get_by_test_id("new-job-id")).to_be_visible()
    cancel_scheduled(daemon)


def test_pause_resume_and_edit_a_schedule_from_the_jobs_view(page, daemon, project):
    identifier = submit_job(daemon, spider="quick", when="every 2 hours", description="nightly books",
                            args=json.dumps({"category": "books", "depth": 2}), priority="3", timeout="600")
    page.goto("/#/jobs?spider=quick&status=SCHEDULED")
    mark(page)
    scheduled = row(page, "active-jobs", identifier)
    expect(scheduled.get_by_test_id("job-priority")).to_have_text("priority 3")
    expect(scheduled.get_by_test_id("job-next-run")).to_contain_text("next")
    expect(scheduled.get_by_test_id("job-paused")).to_have_count(0)

    scheduled.get_by_role("button", name="Pause").click()
    expect(scheduled.get_by_test_id("job-paused")).to_have_text("PAUSED")
    expect(scheduled.get_by_test_id("job-next-run")).to_have_text("paused")
    job = daemon.job(identifier)
    assert (job["paused"], job["next-run"]) == (True, None)

    scheduled.get_by_role("button", name="Resume").click()
    expect(scheduled.get_by_test_id("job-paused")).to_have_count(0)
    expect(scheduled.get_by_test_id("job-next-run")).to_contain_text("next")
    assert daemon.job(identifier)["paused"] is False

    # Paused elsewhere (through the API): the row follows the event stream.
    assert daemon.request("/pause-job.json", {"job_id": identifier})[0] == 200
    expect(scheduled.get_by_test_id("job-paused")).to_be_visible()
    assert_not_reloaded(page)

    # Edit: the schedule form, prefilled with the job.
    scheduled.get_by_role("link", name="Edit").click()
    expect(page.get_by_role("heading", name="Edit a scheduled job")).to_be_visible()
    expect(page.get_by_label("When")).to_have_value("every 2 hours")
    expect(page.get_by_label("Argument 1 name")).to_have_value("category")
    expect(page.get_by_label("Argument 1 value")).to_have_value("books")
    expect(page.get_by_label("Argument 2 name")).to_have_value("depth")
    expect(page.get_by_label("Argument 2 value")).to_have_value("2")
    expect(page.get_by_label("Priority")).to_have_value("3")
    expect(page.get_by_label("Timeout")).to_have_value("600")
    expect(page.get_by_label("Description")).to_have_value("nightly books")
    expect(page.get_by_label("Time zone")).to_have_value("")
    expect(page.get_by_label("Overlapping runs")).to_have_value("allow")
    expect(page.get_by_label("Catch up")).not_to_be_checked()
    expect(page.get_by_test_id("edit-job-head").get_by_test_id("job-paused")).to_be_visible()

    page.get_by_test_id("schedule-submit").click()
    expect(page.get_by_test_id("edit-unchanged")).to_be_visible()

    # Changed elsewhere meanwhile: the form says so, and can load the new values.
    assert daemon.request("/edit-job.json", {"job_id": identifier, "description": "renamed elsewhere"})[0] == 200
    expect(page.get_by_test_id("edit-notice")).to_contain_text("changed elsewhere")
    page.get_by_test_id("edit-reload").click()
    expect(page.get_by_label("Description")).to_have_value("renamed elsewhere")

    spec = "30 5 * * mon-fri"
    page.get_by_label("When").fill(spec)
    page.get_by_label("Time zone").fill("America/New_York")
    expect(page.get_by_test_id("preview-zone")).to_have_text("America/New_York")
    page.get_by_role("button", name="Remove argument 2").click()
    page.get_by_label("Argument 1 value").fill("travel")
    page.get_by_label("Setting 1 name").fill("CLOSESPIDER_ITEMCOUNT")
    page.get_by_label("Setting 1 value").fill("10")
    page.get_by_label("Priority").fill("-7")
    page.get_by_label("Timeout").fill("900")
    page.get_by_label("Overlapping runs").select_option("skip")
    page.get_by_label("Catch up").check()
    page.get_by_label("Description").fill("weekday mornings")
    page.get_by_test_id("schedule-submit").click()
    expect(page.get_by_test_id("edit-spec")).to_have_text(spec)
    expect(page.get_by_test_id("edit-result")).to_contain_text("paused")

    job = daemon.job(identifier)
    assert (job["status"], job["schedule"], job["timezone"], job["overlap"], job["catch-up"], job["paused"]) == \
        ("SCHEDULED", spec, "America/New_York", "skip", True, True)
    assert (job["args"], job["settings"]) == ({"category": "travel"}, {"CLOSESPIDER_ITEMCOUNT": "10"})
    assert (job["priority"], job["timeout"], job["description"]) == (-7, 900, "weekday mornings")

    page.get_by_test_id("edit-back").click()
    edited = row(page, "active-jobs", identifier)
    expect(edited.get_by_test_id("job-schedule")).to_have_text(spec)
    expect(edited.get_by_test_id("job-timezone")).to_contain_text("America/New_York")
    expect(edited.get_by_test_id("job-priority")).to_have_text("priority -7")
    expect(edited.get_by_test_id("job-description")).to_have_text("weekday mornings")
    edited.get_by_role("button", name="Resume").click()
    expect(edited.get_by_test_id("job-paused")).to_have_count(0)
    assert daemon.job(identifier)["next-run"] is not None

    # Back to the daemon's zone and its job-timeout: an empty time zone and timeout are sent, and clear them;
    # emptying the last row removes the settings.
    edited.get_by_role("link", name="Edit").click()
    expect(page.get_by_label("Time zone")).to_have_value("America/New_York")
    page.get_by_label("Time zone").fill("")
    page.get_by_label("Timeout").fill("")
    expect(page.get_by_test_id("timeout-error-hint")).to_contain_text("job-timeout applies")
    page.get_by_role("button", name="Remove setting 1").click()
    expect(page.get_by_label("Setting 1 name")).to_have_value("")
    page.get_by_test_id("schedule-submit").click()
    expect(page.get_by_test_id("edit-result")).to_be_visible()
    job = daemon.job(identifier)
    assert (job["timezone"], job["timeout"], job["settings"], job["args"]) == (None, None, {}, {"category": "travel"})
    assert_not_reloaded(page)

    # Canceled while the form is open: it says so and cannot save.
    assert daemon.request("/cancel-job.json", {"id": identifier})[0] == 200
    expect(page.get_by_test_id("edit-notice")).to_contain_text("CANCELED")
    expect(page.get_by_test_id("schedule-submit")).to_be_disabled()


def test_runs_of_a_schedule(page, daemon, project):
    identifier = submit_job(daemon, spider="quick", when="every 2 seconds", description="often")
    runs = wait_until(lambda: daemon.get("/list-jobs.json", status="COMPLETED", parent=identifier)[1]["jobs"],
                      timeout=30)
    page.goto("/#/jobs")
    row(page, "active-jobs", identifier).get_by_role("link", name="runs").click()
    expect(page).to_have_url(re.compile(rf"#/jobs\?parent={identifier}$"))
    expect(page.get_by_test_id("filter-parent")).to_contain_text(identifier[:8])
    expect(page.get_by_test_id("filter-parent")).to_contain_text("every 2 seconds")
    expect(row(page, "completed-jobs", runs[0]["identifier"])).to_have_count(1)
    cancel_scheduled(daemon)
    expect(page.get_by_test_id("completed-jobs").locator("tr[data-job-id]").first).to_be_visible()
    assert all(job["parent"] == identifier for job in
               daemon.get("/list-jobs.json", status="COMPLETED", parent=identifier)[1]["jobs"])
    page.get_by_test_id("filter-clear").click()
    expect(page.get_by_test_id("filter-parent")).to_have_count(0)


def test_why_jobs_ended(page, daemon, project):
    page.goto("/#/jobs")
    expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "live")
    mark(page)

    # Canceled while running.
    slow = schedule(daemon, "slow", payload='{"pages": 600}', description="cancel me")
    running = row(page, "active-jobs", slow)
    expect(running.get_by_test_id("job-status")).to_have_text("RUNNING")
    running.get_by_test_id("cancel-job").click()
    done = row(page, "completed-jobs", slow)
    expect(done.get_by_test_id("job-status")).to_have_text("CANCELED")
    expect(done.get_by_test_id("job-reason")).to_have_text("canceled")
    assert daemon.job(slow)["reason"] == "canceled"

    # A crawl that fails: its exit code.
    broken = schedule(daemon, "broken", description="fails")
    failed = daemon.wait_job(broken, {"SUCCESSFUL", "FAILED"})
    assert failed["status"] == "FAILED" and failed["reason"], failed
    expect(row(page, "completed-jobs", broken).get_by_test_id("job-reason")).to_have_text(failed["reason"])

    # A time limit from the form: FAILED with reason timeout.
    page.get_by_test_id("nav-schedule").click()
    page.get_by_test_id("spider").select_option("slow")
    page.get_by_label("Payload").fill('{"pages": 600}')
    page.get_by_label("Timeout").fill("1")
    page.get_by_test_id("schedule-submit").click()
    limited = page.get_by_test_id("new-job-id").inner_text()
    page.get_by_test_id("new-job-link").click()
    ended = row(page, "completed-jobs", limited)
    expect(ended.get_by_test_id("job-reason")).to_have_text("timeout")
    expect(ended.get_by_test_id("job-status")).to_have_text("FAILED")
    assert daemon.job(limited)["reason"] == "timeout"
    assert_not_reloaded(page)

    # The dashboard's recent jobs and the job's own page say it too.
    page.get_by_test_id("nav-dashboard").click()
    expect(row(page, "dashboard-recent", limited).get_by_test_id("job-reason")).to_have_text("timeout")
    page.goto(f"/#/log/{slow}/err")
    expect(page.get_by_test_id("log-job").get_by_test_id("job-reason")).to_have_text("canceled")
