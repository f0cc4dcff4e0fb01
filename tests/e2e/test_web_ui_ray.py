"""The dashboard of a daemon whose crawls run on a Ray cluster (a real local head): when the head does not
answer, the dashboard says why jobs wait, live, and the notice goes once they start."""

import pytest
from playwright.sync_api import expect

from tests.helpers import offline_zip, reachable_tempdir
from tests.integration.daemonproc import DaemonProcess
from tests.integration.rayhead import ray_head  # noqa: F401  (the fixture)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@pytest.fixture
def daemon(ray_head):  # noqa: F811
    from pathlib import Path

    with reachable_tempdir("sd-ray-ui-") as tmp:
        d = DaemonProcess(Path(tmp), "[scrapy-do]\njob-slots = 2\n[web]\ninterfaces = 127.0.0.1:0\n"
                                     f"[executor]\nbackend = ray\nray-address = {ray_head.address}\n"
                                     "ray-poll-interval = 0.5\n").start()
        d.push("offline.zip", offline_zip())
        yield d
        d.stop()


def test_the_dashboard_says_why_jobs_wait_while_the_ray_head_is_down(page, daemon, ray_head):  # noqa: F811
    ray_head.stop()
    page.goto("/#/dashboard")
    expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "live")
    expect(page.get_by_test_id("launch-problem")).to_have_count(0)
    job = daemon.schedule("offline", "quick")
    notice = page.get_by_test_id("launch-problem")
    expect(notice).to_contain_text("does not answer")
    expect(notice).to_contain_text(ray_head.address)
    ray_head.start()
    # The launch is tried again within 30 s (the longest back-off); then the notice goes, live.
    expect(notice).to_have_count(0, timeout=45_000)
    assert daemon.wait_job(job, {"SUCCESSFUL", "FAILED"}, timeout=60)["status"] == "SUCCESSFUL"
