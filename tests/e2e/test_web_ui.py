"""The web dashboard in a real browser against the real daemon.

The tests of this module share one daemon and run in order, as a user would:
push the project, schedule, watch jobs, read logs, cancel, remove the project.
Each still sets up what it needs (the `project` fixture pushes when needed).
Nothing reloads the page: what changes on the daemon reaches the page through
the /events stream; a marker set on `window` proves that no reload happened.
"""

import json
import re
from datetime import datetime

import pytest
from playwright.sync_api import expect

from tests.e2e.util import active_jobs, assert_not_reloaded, cancel_scheduled, mark, row, schedule, shoot, wait_until

pytestmark = pytest.mark.e2e



def counter(page, name):
    return page.get_by_test_id(f"stat-{name}-value")


def test_push_project_through_the_form(page, daemon, archive, tmp_path):
    page.goto("/#/projects")
    expect(page.get_by_test_id("no-projects")).to_be_visible()

    # A broken archive: the daemon's message, verbatim.
    bad = tmp_path / "notes.zip"
    bad.write_bytes(b"this is not a zip")
    page.get_by_test_id("push-file").set_input_files(str(bad))
    page.get_by_test_id("push-submit").click()
    code, body = daemon.request("/push-project.json", {"archive": ("notes.zip", bad.read_bytes())})
    assert code == 400
    expect(page.get_by_test_id("push-error")).to_contain_text(body["msg"])

    page.get_by_test_id("push-file").set_input_files(str(archive))
    page.get_by_test_id("push-submit").click()
    expect(page.get_by_test_id("push-success")).to_contain_text("offline")
    card = page.locator('[data-testid="project"][data-project="offline"]')
    expect(card.get_by_test_id("spider")).to_have_text(["broken", "bulk", "erring", "mixed", "quick", "slow"])
    assert daemon.get("/list-projects.json")[1]["projects"] == ["offline"]
    shoot(page, "projects")


def test_schedule_form_checks_spec_and_payload(page, daemon, project):
    before = {j["identifier"] for j in active_jobs(daemon)}
    page.goto("/#/schedule?project=offline&spider=quick")
    expect(page.get_by_test_id("spider")).to_have_value("quick")
    expect(page.get_by_test_id("when-ok")).to_contain_text("Runs once")

    # A bad spec: the preview shows the daemon's error, and submitting schedules nothing.
    when = page.get_by_test_id("when")
    when.fill("every blue moon")
    msg = daemon.get("/preview-schedule.json", when="every blue moon")[1]["msg"]
    expect(page.get_by_test_id("when-error")).to_have_text(msg)
    expect(when).to_have_attribute("aria-invalid", "true")
    page.get_by_test_id("schedule-submit").click()
    expect(page.get_by_test_id("schedule-error")).to_contain_text(msg)

    # A payload that is not a JSON object is refused in the page, before sending.
    when.fill("every 2 hours")
    expect(page.get_by_test_id("next-runs").locator("li")).to_have_count(5)
    page.get_by_test_id("payload").fill("[1, 2]")
    page.get_by_test_id("schedule-submit").click()
    expect(page.get_by_test_id("payload-error")).to_contain_text("JSON object")
    page.get_by_test_id("payload").fill('{"pages": "x"')
    page.get_by_test_id("payload").blur()
    expect(page.get_by_test_id("payload-error")).to_contain_text("Not valid JSON")
    assert {j["identifier"] for j in active_jobs(daemon)} == before

    # A good one.
    page.get_by_test_id("payload").fill('{"pages": 3}')
    expect(page.get_by_test_id("payload-error")).to_have_count(0)
    page.get_by_test_id("description").fill("every two hours")
    page.evaluate("window.scrollTo(0, 0)")  # the form is taller than the screenshot: show its top, with the preview
    shoot(page, "schedule")
    page.get_by_test_id("schedule-submit").click()
    identifier = page.get_by_test_id("new-job-id").inner_text()
    job = daemon.job(identifier)
    assert (job["status"], job["schedule"], job["spider"], json.loads(job["payload"]), job["description"]) == \
        ("SCHEDULED", "every 2 hours", "quick", {"pages": 3}, "every two hours")
    page.get_by_test_id("new-job-link").click()
    expect(row(page, "active-jobs", identifier).get_by_test_id("job-status")).to_have_text("SCHEDULED")
    # The schedule's next due time, as the daemon's wall clock (its offset in the tooltip).
    next_run = job["next-run"]
    shown = row(page, "active-jobs", identifier).get_by_test_id("job-next-run")
    due = datetime.fromisoformat(next_run)
    expect(shown).to_contain_text(next_run[11:19] if next_run[:10] == daemon.get("/status.json")[1]["time"][:10]
                                  else f"{due:%b} {due.day} {due:%H:%M}")  # another day: with its date
    expect(shown).to_have_attribute("title", re.compile(r"^next run .*[+-]\d\d:\d\d$"))
    cancel_scheduled(daemon)
    expect(row(page, "active-jobs", identifier)).to_have_count(0)


def test_dashboard_counters_and_jobs_update_live(page, daemon, project):
    status = daemon.get("/status.json")[1]
    page.goto("/#/dashboard")
    expect(counter(page, "jobs-successful")).to_have_text(str(status["jobs-successful"]))
    expect(page.get_by_test_id("stat-version-value")).to_have_text(status["daemon-version"])
    expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "live")
    mark(page)

    identifier = schedule(daemon, "quick", description="live on the dashboard")
    active = row(page, "dashboard-active", identifier)
    expect(active).to_have_attribute("data-status", re.compile("PENDING|RUNNING"))
    expect(active.get_by_test_id("job-description")).to_have_text("live on the dashboard")
    expect(counter(page, "jobs-run")).to_have_text(str(status["jobs-run"] + 1))
    expect(counter(page, "jobs-successful")).to_have_text(str(status["jobs-successful"] + 1))
    expect(active).to_have_count(0)
    expect(row(page, "dashboard-recent", identifier).get_by_test_id("job-status")).to_have_text("SUCCESSFUL")
    expect(page.get_by_test_id("stat-slots-value")).to_have_text("0 / 2")
    warm = daemon.get("/status.json")[1]
    if warm["warm-start"] == "off":  # SCRAPY_DO_TEST_WARM_START=off
        assert warm["warm-parents"] == 0
        expect(page.get_by_test_id("stat-warm-value")).to_have_text("off")
    else:
        assert warm["warm-parents"] >= 1  # the quick crawl forked from one
        expect(page.get_by_test_id("stat-warm-value")).to_have_text(str(warm["warm-parents"]))
        expect(page.get_by_test_id("stat-warm")).to_contain_text(re.compile(r"[1-9][0-9.]* MiB"))
    assert_not_reloaded(page)


def test_job_goes_running_to_successful_on_the_jobs_page(page, daemon, project):
    page.goto("/#/jobs")
    expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "live")
    mark(page)
    identifier = schedule(daemon, "slow", payload='{"pages": 15}', description="watch me")
    running = row(page, "active-jobs", identifier)
    expect(running.get_by_test_id("job-status")).to_have_text("RUNNING")
    expect(running.get_by_test_id("job-elapsed")).to_have_text(re.compile(r"^\d+s$"))
    expect(running).to_have_count(0)
    done = row(page, "completed-jobs", identifier)
    expect(done.get_by_test_id("job-status")).to_have_text("SUCCESSFUL")
    expect(done.get_by_test_id("job-description")).to_have_text("watch me")
    assert_not_reloaded(page)

    # Filters: by spider and status, reflected in the address.
    page.get_by_test_id("filter-spider").select_option("quick")
    expect(done).to_have_count(0)
    expect(page).to_have_url(re.compile(r"#/jobs\?spider=quick$"))
    page.get_by_test_id("filter-spider").select_option("slow")
    page.get_by_test_id("filter-status").select_option("SUCCESSFUL")
    expect(done).to_have_count(1)
    expect(page.get_by_test_id("active-section")).to_be_hidden()


def test_live_log_of_a_running_job(page, daemon, project):
    identifier = schedule(daemon, "slow", payload='{"pages": 40}', description="a live log")
    wait_until(lambda: daemon.job(identifier)["status"] == "RUNNING")
    page.goto(f"/#/log/{identifier}/err")
    mark(page)
    log = page.get_by_test_id("log-text")
    expect(page.get_by_test_id("log-live")).to_be_visible()
    expect(log).to_contain_text("Spider opened")
    assert daemon.job(identifier)["status"] == "RUNNING", "the crawl ended before the page showed its log"
    shoot(page, "log")
    head = page.get_by_test_id("log-job")
    # Written at the very end: it can only have come through the live stream.
    expect(log).to_contain_text("Spider closed (finished)")
    expect(head.get_by_test_id("job-status")).to_have_text("SUCCESSFUL")
    expect(page.get_by_test_id("log-live")).to_be_hidden()
    assert_not_reloaded(page)

    page.get_by_test_id("tab-out").click()
    expect(page.get_by_test_id("log-text")).to_contain_text("slow spider started")


def test_a_huge_log_loads_its_tail_and_earlier_chunks(page, daemon, project):
    """A 50 MB log: only the last 64 KiB at first, 64 KiB more per click, the page stays small."""
    identifier = schedule(daemon, "quick")
    wait_until(lambda: daemon.job(identifier)["status"] == "SUCCESSFUL", timeout=30)
    path = next(daemon.workdir.rglob(f"{identifier}.err"))
    lines = 50 * 1024 * 1024 // 20
    path.write_bytes(b"".join(b"line %014d\n" % i for i in range(lines)))  # 20 bytes a line
    size = path.stat().st_size

    page.goto(f"/#/log/{identifier}/err")
    log = page.get_by_test_id("log-text")
    expect(log).to_contain_text("line %014d" % (lines - 1))
    shown = lambda: len(log.inner_text())  # noqa: E731
    assert shown() <= 64 * 1024
    assert "line %014d" % (lines - 64 * 1024 // 20 - 2) not in log.inner_text()
    expect(page.get_by_test_id("log-info")).to_contain_text(f"{size:,}")

    page.get_by_test_id("log-earlier").click()
    expect(log).to_contain_text("line %014d" % (lines - 64 * 1024 // 20 - 2))
    assert 64 * 1024 < shown() <= 128 * 1024
    text = log.inner_text()
    numbers = [int(n) for n in re.findall(r"line (\d+)", text)]
    assert numbers == list(range(numbers[0], lines)), "chunks must join without gaps or repeats"

    # The page keeps at most 1 MiB of log text, whatever comes in.
    result = page.evaluate("""async () => {
        const m = await import('/ui/views/log.js');
        const pre = document.createElement('pre'), scroller = document.createElement('div');
        const t = new m.LogText(pre, scroller, () => {});
        t.reset(1000);
        for (let i = 0; i < 40; i++) t.append('x'.repeat(65535) + '\\n', 65536);
        return {size: t.size, start: t.start, end: t.end, chars: pre.textContent.length, cap: m.CAP};
    }""")
    assert result["size"] <= result["cap"] and result["chars"] == result["size"]
    assert result["end"] == 1000 + 40 * 65536 and result["start"] == result["end"] - result["size"]


def test_cancel_a_running_job_with_one_click(page, daemon, project):
    identifier = schedule(daemon, "slow", payload='{"pages": 600}', description="too slow, cancel it")
    wait_until(lambda: daemon.job(identifier)["status"] == "RUNNING")
    page.goto("/#/dashboard")
    expect(row(page, "dashboard-active", identifier).get_by_test_id("job-status")).to_have_text("RUNNING")
    expect(page.get_by_test_id("stat-slots-value")).to_have_text("1 / 2")
    shoot(page, "dashboard")

    page.get_by_test_id("nav-jobs").click()
    mark(page)
    running = row(page, "active-jobs", identifier)
    expect(running.get_by_test_id("job-status")).to_have_text("RUNNING")
    shoot(page, "jobs")
    running.get_by_test_id("cancel-job").click()
    done = row(page, "completed-jobs", identifier)
    expect(done.get_by_test_id("job-status")).to_have_text("CANCELED")
    expect(running).to_have_count(0)
    assert daemon.job(identifier)["status"] == "CANCELED"
    assert_not_reloaded(page)


def test_completed_history_pages_twenty_at_a_time(page, daemon, project):
    created = []
    for i in range(23):
        created.append(schedule(daemon, "quick", when="every 3 hours", description=f"history #{i}"))
    cancel_scheduled(daemon)
    total = len(daemon.get("/list-jobs.json", status="CANCELED", spider="quick")[1]["jobs"])
    assert 20 < total <= 40
    page.goto("/#/jobs?status=CANCELED&spider=quick")
    table = page.get_by_test_id("completed-jobs")
    expect(table.locator("tr[data-job-id]")).to_have_count(20)
    # Last finished first: cancel_scheduled ends the newest-submitted first, so the oldest ended last.
    expect(row(page, "completed-jobs", created[0])).to_have_count(1)
    page.get_by_test_id("completed-pager-next").click()
    expect(row(page, "completed-jobs", created[-1])).to_have_count(1)
    expect(table.locator("tr[data-job-id]")).to_have_count(total - 20)
    expect(page.get_by_test_id("completed-pager-info")).to_contain_text(f"21–{total}")
    expect(page).to_have_url(re.compile(r"page=2"))
    expect(page.get_by_test_id("completed-pager-next")).to_be_disabled()
    page.get_by_test_id("completed-pager-prev").click()
    expect(table.locator("tr[data-job-id]")).to_have_count(20)


def test_remove_project_refused_while_scheduled_then_removed(page, daemon, project):
    identifier = schedule(daemon, "quick", when="every day at 10:30", description="blocks removal")
    page.goto("/#/projects")
    card = page.locator('[data-testid="project"][data-project="offline"]')
    card.get_by_test_id("remove-project").click()
    dialog = page.get_by_test_id("remove-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_test_id("remove-confirm").click()
    code, body = daemon.request("/remove-project.json", {"name": "offline"})
    assert code == 409
    expect(dialog.get_by_test_id("remove-error")).to_contain_text(body["msg"])

    # The refusal links to the scheduled jobs; cancel them there.
    dialog.get_by_role("link", name="Show its scheduled jobs").click()
    scheduled = row(page, "active-jobs", identifier)
    expect(scheduled.get_by_test_id("job-status")).to_have_text("SCHEDULED")
    scheduled.get_by_test_id("cancel-job").click()
    expect(scheduled).to_have_count(0)

    page.get_by_test_id("nav-projects").click()
    card.get_by_test_id("remove-project").click()
    dialog.get_by_test_id("remove-confirm").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_test_id("remove-success")).to_contain_text("offline")
    expect(card).to_have_count(0)
    expect(page.get_by_test_id("no-projects")).to_be_visible()
    assert daemon.get("/list-projects.json")[1]["projects"] == []
