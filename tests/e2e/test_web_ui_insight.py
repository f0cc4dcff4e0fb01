"""Items and errors in a real browser against the real daemon (issue 13).

Running jobs' live counts (from /events, no polling), "succeeded with errors", the
job page's stats table, chart and first items with their downloads, and a project's
data files. The tests share one daemon and run in order; every wait is bounded
(expect() timeouts, wait_job's limit).
"""

import csv
import io
import json
import re

import pytest
from playwright.sync_api import expect

from tests.e2e.util import assert_not_reloaded, mark, row, shoot

pytestmark = pytest.mark.e2e

DONE = ["SUCCESSFUL", "FAILED", "CANCELED"]


def submit(daemon, spider, **fields):
    code, body = daemon.request("/schedule-job.json", {"project": "offline", "spider": spider, "when": "now",
                                                       **fields})
    assert code == 200, body
    return body["identifier"]


def finished(daemon, identifier, timeout=30):
    return daemon.wait_job(identifier, DONE, timeout=timeout)


def count(locator):
    return int(locator.inner_text().replace(",", ""))


def cell_value(text, value):
    """What an items table cell must read for `value`: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.loads(text)


def test_running_jobs_show_live_counts(page, daemon, project):
    page.goto("/#/dashboard")
    expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "live")
    mark(page)
    slow = submit(daemon, "slow", payload='{"pages": 100}', description="counts rise")
    items = row(page, "dashboard-active", slow).get_by_test_id("job-items")
    expect(items).to_have_text(re.compile(r"^[1-9][\d,]*$"))
    # From here on the counts change by events only: the page asks for no job list.
    polls = []
    page.on("request", lambda r: polls.append(r.url) if "/list-jobs.json" in r.url else None)
    first = count(items)
    expect(items).not_to_have_text(str(first))
    assert count(items) > first
    progress = row(page, "dashboard-active", slow).get_by_test_id("job-progress")
    expect(progress.get_by_test_id("job-requests")).to_have_text(re.compile(r"^[1-9][\d,]*$"))
    expect(progress.get_by_test_id("job-rate")).to_have_text(re.compile(r"^\d[\d,.]*$"))
    expect(progress.get_by_test_id("job-errors")).to_have_text("0")
    assert not polls, f"the dashboard polled the job list: {polls}"

    # The jobs view shows the same counts; its job page the live summary and a growing chart.
    page.get_by_test_id("nav-jobs").click()
    expect(row(page, "active-jobs", slow).get_by_test_id("job-items")).to_have_text(re.compile(r"^[1-9][\d,]*$"))
    row(page, "active-jobs", slow).get_by_test_id("job-link").click()
    expect(page).to_have_url(re.compile(f"#/job/{slow}$"))
    expect(page.get_by_test_id("stats-kind")).to_contain_text("live")
    live = page.get_by_test_id("stats-table").locator('tr[data-key="items"]').get_by_test_id("stat-value")
    expect(live).to_have_text(re.compile(r"^[1-9][\d,]*$"))
    before = count(live)
    expect(live).not_to_have_text(str(before))
    chart = page.get_by_test_id("stats-chart")
    expect(chart).to_be_visible()
    points = int(chart.get_attribute("data-points"))
    expect(page.get_by_test_id("stats-chart")).not_to_have_attribute("data-points", str(points))
    expect(page.get_by_test_id("items-table").get_by_test_id("item-row").first).to_be_visible()
    shoot(page, "job")
    assert daemon.request("/cancel-job.json", {"id": slow})[0] == 200
    expect(page.get_by_test_id("job-status")).to_have_text("CANCELED")
    assert_not_reloaded(page)


def test_job_page_shows_stats_chart_and_first_items(page, daemon, project):
    mixed = submit(daemon, "mixed", payload='{"count": 25}')
    assert finished(daemon, mixed)["status"] == "SUCCESSFUL"
    page.goto(f"/#/job/{mixed}")
    table = page.get_by_test_id("items-table")
    expect(table.get_by_test_id("item-row")).to_have_count(20)

    # The downloads: every item, as JSON Lines and as CSV.
    jl = page.request.get(page.get_by_test_id("items-jl").get_attribute("href"))
    assert jl.status == 200
    lines = jl.text().splitlines()
    assert len(lines) == 25
    records = [json.loads(line) for line in lines]
    keys = list(dict.fromkeys(k for record in records for k in record))
    sheet = page.request.get(page.get_by_test_id("items-csv").get_attribute("href"))
    assert sheet.status == 200
    rows = list(csv.reader(io.StringIO(sheet.text())))
    assert len(rows) == 26 and rows[0] == keys

    # Columns: the union of the first 20 items' keys; cells: strings as they are, the rest as JSON.
    first = list(dict.fromkeys(k for record in records[:20] for k in record))
    expect(table.locator("thead th")).to_have_text(["#", *first])
    for i in (0, 1, 2, 3, 4):
        cells = table.get_by_test_id("item-row").nth(i).locator("td").all_inner_texts()[1:]
        for key, text in zip(first, cells):
            if key in records[i]:
                assert cell_value(text, records[i][key]) == records[i][key], (i, key, text)
            else:
                assert text == "", (i, key, text)
    nested = table.get_by_test_id("item-row").nth(1).locator("td").nth(1 + first.index("nested"))
    assert json.loads(nested.inner_text()) == {"list": [1, 2.5, None, True], "deep": {"x": "y"}}
    expect(page.get_by_test_id("items-count")).to_contain_text("20 shown")

    # The final stats, whole, and the chart of the job's samples.
    expect(page.get_by_test_id("stats-kind")).to_contain_text("final")
    scraped = page.get_by_test_id("stats-table").locator('tr[data-key="item_scraped_count"]')
    expect(scraped.get_by_test_id("stat-value")).to_have_text("25")
    expect(page.get_by_test_id("stats-chart")).to_be_visible()
    expect(page.get_by_test_id("stats-chart").locator("polyline")).to_have_count(2)


def test_a_successful_job_with_errors_is_marked(page, daemon, project):
    page.goto("/#/dashboard")
    expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "live")
    erring = submit(daemon, "erring")
    quick = submit(daemon, "quick")
    strict = submit(daemon, "erring", **{"fail-on-errors": "on"})
    recent = row(page, "dashboard-recent", erring)
    expect(recent.get_by_test_id("job-status")).to_have_text("SUCCESSFUL")
    job = daemon.job(erring)
    assert job["errors"] and job["errors"] > 0, job
    expect(recent.get_by_test_id("job-with-errors")).to_have_text(
        f"succeeded with {job['errors']} error{'' if job['errors'] == 1 else 's'}")
    expect(recent.get_by_test_id("job-status")).to_have_class(re.compile(r"\bs-with-errors\b"))
    # A clean run is not marked.
    expect(row(page, "dashboard-recent", quick).get_by_test_id("job-status")).to_have_text("SUCCESSFUL")
    expect(row(page, "dashboard-recent", quick).get_by_test_id("job-with-errors")).to_have_count(0)
    expect(row(page, "dashboard-recent", quick).get_by_test_id("job-status")).not_to_have_class(
        re.compile(r"s-with-errors"))

    # With fail-on-errors the same run fails, and says why.
    failed = row(page, "dashboard-recent", strict)
    expect(failed.get_by_test_id("job-status")).to_have_text("FAILED")
    expect(failed.get_by_test_id("job-reason")).to_have_text("errors")
    expect(failed.get_by_test_id("job-with-errors")).to_have_count(0)

    recent.get_by_test_id("job-link").click()
    head = page.get_by_test_id("job-head")
    expect(head.get_by_test_id("job-status")).to_have_class(re.compile(r"\bs-with-errors\b"))
    expect(head.get_by_test_id("job-with-errors")).to_contain_text("succeeded with")
    expect(page.get_by_test_id("job-error-count")).to_have_text(str(job["errors"]))
    expect(page.get_by_test_id("items-table").get_by_test_id("item-row")).to_have_count(1)


def test_project_view_lists_data_files(page, daemon, project):
    page.goto("/#/projects")
    card = page.locator('[data-testid="project"][data-project="offline"]')
    expect(card.get_by_test_id("project-data")).not_to_contain_text("Looking")
    feed = submit(daemon, "quick", settings=json.dumps({"FEEDS": {"out/items.jsonl": {"format": "jsonlines"}}}))
    assert finished(daemon, feed)["status"] == "SUCCESSFUL"
    link = card.get_by_test_id("data-file").filter(has_text="out/items.jsonl")
    expect(link).to_have_attribute("href", "/get-data/offline/out/items.jsonl")
    response = page.request.get(link.get_attribute("href"))
    assert response.status == 200
    assert [json.loads(line) for line in response.text().splitlines()] == [{"body": "hello"}]


def test_data_files_empty_and_hostile_names(page, daemon, project):
    """Rendered from list-data.json answers: no files, and paths that need encoding, as text."""
    page.goto("/#/projects")
    card = page.locator('[data-testid="project"][data-project="offline"]')
    expect(card.get_by_test_id("project-data")).not_to_contain_text("Looking")
    page.route("**/list-data.json*", lambda route: route.fulfill(json={
        "status": "ok", "project": "offline", "truncated": False,
        "files": [{"path": "a dir/<b>x#1?.json", "size": 2048, "modified": "2026-12-01 10:00:00+00:00"}]}))
    page.goto("/#/dashboard")
    page.goto("/#/projects")
    link = card.get_by_test_id("data-file")
    expect(link).to_have_text("a dir/<b>x#1?.json")
    expect(link).to_have_attribute("href", "/get-data/offline/a%20dir/%3Cb%3Ex%231%3F.json")
    page.unroute("**/list-data.json*")
    page.route("**/list-data.json*", lambda route: route.fulfill(json={
        "status": "ok", "project": "offline", "truncated": False, "files": []}))
    page.goto("/#/dashboard")
    page.goto("/#/projects")
    expect(card.get_by_test_id("no-data-files")).to_have_text("No data files yet.")


def test_items_are_text_and_only_whole_lines(page, daemon, project):
    """Crawled items are untrusted: markup in keys and values shows as text; a cut last line is not shown."""
    code, body = daemon.get("/list-jobs.json", status="SUCCESSFUL", spider="mixed", limit=1)
    assert code == 200 and body["jobs"], body
    job = body["jobs"][0]["identifier"]
    hostile = {"<b>key</b>": '<img src=x onerror="window.__xss = 1">', "n": {"a": "<i>x</i>"}}
    text = json.dumps(hostile) + "\n" + '{"cut": "in the mid'
    ranges = []

    def answer(route):
        ranges.append(route.request.headers.get("range"))
        route.fulfill(status=206, body=text.encode(), content_type="application/x-ndjson; charset=utf-8",
                      headers={"content-range": f"bytes 0-{len(text.encode()) - 1}/999999"})

    page.route(f"**/get-items/{job}.jl", answer)
    page.goto(f"/#/job/{job}")
    table = page.get_by_test_id("items-table")
    expect(table.get_by_test_id("item-row")).to_have_count(1)
    expect(table.locator("thead th")).to_have_text(["#", "<b>key</b>", "n"])
    expect(table.get_by_test_id("item-row").locator("td")).to_have_text(
        ["1", hostile["<b>key</b>"], '{"a":"<i>x</i>"}'])
    assert table.locator("img, b, i").count() == 0
    assert page.evaluate("window.__xss") is None
    expect(page.get_by_test_id("items-count")).to_contain_text("more in the downloads")
    assert ranges and ranges[0] == "bytes=0-262143"


def test_fail_on_errors_from_the_form_and_run_again(page, daemon, project):
    page.goto("/#/schedule?project=offline&spider=erring")
    expect(page.get_by_test_id("spider")).to_have_value("erring")
    page.get_by_test_id("fail-on-errors").select_option("on")
    page.get_by_test_id("schedule-submit").click()
    identifier = page.get_by_test_id("new-job-id").inner_text()
    assert daemon.job(identifier)["fail-on-errors"] is True
    page.get_by_test_id("new-job-page").click()
    expect(page.get_by_test_id("job-head").get_by_test_id("job-status")).to_have_text("FAILED")
    expect(page.get_by_test_id("job-head").get_by_test_id("job-reason")).to_have_text("errors")

    # Run again keeps the option.
    page.get_by_test_id("job-head").get_by_test_id("run-again").click()
    again = page.get_by_test_id("toast").get_by_test_id("run-again-id").inner_text()
    assert daemon.job(again)["fail-on-errors"] is True
    assert finished(daemon, again)["status"] == "FAILED"


def test_chart_from_samples(page, daemon, project):
    """The chart's polylines from get-stats samples: from the start (0 s, nothing yet) on, scaled to the largest count."""
    page.goto("/#/dashboard")
    drawn = page.evaluate("""async () => {
        const {chart} = await import('/ui/views/job.js');
        const points = (svg) => svg && ['items', 'requests'].map((k) =>
            svg.querySelector(`[data-testid="chart-${k}"]`).getAttribute('points'));
        return {none: chart([]), one: points(chart([[0, 25, 1]])),
                two: points(chart([[2, 10, 20], [4, 30, 40]])), xss: chart([['<b>', 'x', null]]).outerHTML};
    }""")
    assert drawn["none"] is None
    # One sample at 0 s (a crawl shorter than the sampling): from nothing to it, across the width.
    assert drawn["one"][0].split(" ") == ["44.0,158.0", "890.0,10.0"]
    # Times along the width (0 s to 4 s), counts up to the largest (40 requests at the top).
    assert drawn["two"][0].split(" ") == ["44.0,158.0", "467.0,121.0", "890.0,47.0"]
    assert drawn["two"][1].split(" ") == ["44.0,158.0", "467.0,84.0", "890.0,10.0"]
    assert "<b>" not in drawn["xss"]
