"""Browser tests of the web dashboard against the real daemon (a subprocess) and Debian's Chromium.

Every wait is bounded: Playwright's expect() gives up after EXPECT_TIMEOUT and
each daemon-side wait has its own limit. Screenshots of the main pages go to
docs/_static/ (1280x800), where docs/web-ui.rst shows them.
"""

import os

import pytest

from tests.helpers import offline_zip
from tests.integration.daemonproc import DaemonProcess

CHROMIUM = os.environ.get("SCRAPY_DO_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
EXPECT_TIMEOUT = 15_000  # ms
VIEWPORT = {"width": 1280, "height": 800}


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: drives the web dashboard in a real browser against the real daemon")


@pytest.fixture(scope="session")
def playwright_sync():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium (make browser) to run the browser tests")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.skip("the Python package playwright is not installed (pip install -e .[test])")
    expect.set_options(timeout=EXPECT_TIMEOUT)
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright_sync):
    browser = playwright_sync.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=30_000)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """The real daemon, one per module: 2 job slots, 5 s cancel grace, a free port."""
    d = DaemonProcess(tmp_path_factory.mktemp("daemon")).start()
    yield d
    d.stop()


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """The offline test project as a .zip file on disk, for the file picker."""
    path = tmp_path_factory.mktemp("archive") / "offline.zip"
    path.write_bytes(offline_zip())
    return path


@pytest.fixture
def project(daemon, archive):
    """The offline project is on the daemon (pushed through the API unless a test already did)."""
    if "offline" not in daemon.get("/list-projects.json")[1]["projects"]:
        code, body = daemon.request("/push-project.json", {"archive": ("offline.zip", archive.read_bytes())})
        assert code == 200, body
    return "offline"


@pytest.fixture
def page(browser, daemon):
    context = browser.new_context(viewport=VIEWPORT, base_url=daemon.url, color_scheme="light")
    context.set_default_timeout(EXPECT_TIMEOUT)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
