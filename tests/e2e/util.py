"""Helpers for the browser tests: screenshots and bounded daemon-side actions."""

import os
from pathlib import Path

from tests.integration import daemonproc

#: Where the screenshots of the main pages go: docs/_static (shown by docs/web-ui.rst), or
#: $SCRAPY_DO_SCREENSHOTS if set ("off" takes none).
SCREENSHOTS = os.environ.get("SCRAPY_DO_SCREENSHOTS") or str(Path(__file__).resolve().parents[2] / "docs" / "_static")


def shoot(page, name):
    """Save the page as docs/_static/<name>.png (the viewport, 1280x800)."""
    if SCREENSHOTS == "off":
        return
    folder = Path(SCREENSHOTS)
    folder.mkdir(parents=True, exist_ok=True)
    page.evaluate("document.getElementById('toasts').replaceChildren(); document.activeElement?.blur()")
    page.wait_for_timeout(300)  # let the last event's redraw and fonts settle
    page.screenshot(path=str(folder / f"{name}.png"))


def schedule(daemon, spider, when="now", payload=None, description=""):
    fields = {"project": "offline", "spider": spider, "when": when, "description": description}
    if payload is not None:
        fields["payload"] = payload
    code, body = daemon.request("/schedule-job.json", fields)
    assert code == 200, body
    return body["identifier"]


def active_jobs(daemon):
    code, body = daemon.get("/list-jobs.json", status="ACTIVE")
    assert code == 200, body
    return body["jobs"]


def cancel_scheduled(daemon):
    for job in active_jobs(daemon):
        if job["status"] == "SCHEDULED":
            daemon.request("/cancel-job.json", {"id": job["identifier"]})


def wait_until(predicate, timeout=15, interval=0.05):
    """daemonproc.wait_until with the browser tests' default timeout."""
    return daemonproc.wait_until(predicate, timeout, "the condition", interval)


def mark(page):
    """Set a marker that a reload or navigation away would lose."""
    page.evaluate("window.__noReload = 'still here'")


def assert_not_reloaded(page):
    assert page.evaluate("window.__noReload") == "still here"


def row(page, table, identifier):
    return page.get_by_test_id(table).locator(f'tr[data-job-id="{identifier}"]')
