"""Per-project environments in a real browser against the real daemon and the real uv (issue 14).

A push through the form of a project with a requirements.txt shows how its environment
was built; the Projects view lists its packages and links to its build log; a push whose
requirements cannot be met shows the installer's whole message, one line under another;
a push through the API redraws the view from its event (no reload, no polling).

The packages come from hand-made wheels in a local folder ([scrapy-do] find-links, no
index): no network. The tests share one daemon and run in order; every wait is bounded
(expect() timeouts, the API's own).
"""

import re
import shutil

import pytest
from playwright.sync_api import expect

from tests.e2e.util import assert_not_reloaded, mark
from tests.helpers import OFFLINE, make_wheel, zip_tree
from tests.integration.daemonproc import DaemonProcess

pytestmark = pytest.mark.e2e

NAME = "envui"
CONF = "[scrapy-do]\njob-slots = 2\nfind-links = wheels\n[web]\ninterfaces = 127.0.0.1:0\n"


def project_zip(tmp_path, name, requirements):
    """The offline fixture as project `name` with this requirements.txt (None: none), zipped."""
    tree = tmp_path / "src" / name
    if tree.exists():
        shutil.rmtree(tree)
    shutil.copytree(OFFLINE, tree, ignore=shutil.ignore_patterns("__pycache__"))
    if requirements is not None:
        (tree / "requirements.txt").write_text(requirements)
    (tree / "scrapy.cfg").write_text((tree / "scrapy.cfg").read_text().replace("project = offline",
                                                                           f"project = {name}"))
    return zip_tree(tree, name)


def archive(tmp_path, name, requirements):
    """The same as a .zip file on disk, for the file picker."""
    path = tmp_path / f"{name}.zip"
    path.write_bytes(project_zip(tmp_path, name, requirements))
    return path


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """The real daemon with find-links = wheels, where acme-helper 1.0 and 2.0 wait."""
    workdir = tmp_path_factory.mktemp("envs-ui")
    make_wheel(workdir / "wheels", "acme-helper", "1.0")
    make_wheel(workdir / "wheels", "acme-helper", "2.0")
    d = DaemonProcess(workdir, CONF).start()
    yield d
    d.stop()


def card(page, name):
    return page.locator(f'[data-testid="project"][data-project="{name}"]')


def push_through_form(page, path):
    page.get_by_test_id("push-file").set_input_files(str(path))
    page.get_by_test_id("push-submit").click()


def test_push_shows_environment_and_projects_list_its_packages(page, daemon, tmp_path):
    page.goto("/#/projects")
    expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "live")
    push_through_form(page, archive(tmp_path, NAME, "acme-helper==1.0\n"))
    success = page.get_by_test_id("push-success")
    expect(success).to_contain_text(NAME, timeout=60_000)   # uv builds the environment first
    summary = success.get_by_test_id("push-environment")
    expect(summary).to_contain_text("1 requirement")
    expect(summary).to_contain_text(re.compile(r"built in \d+(\.\d+)? s|reused"))

    # The Projects view: the requirements, the packages as text, the build time and the log.
    env = card(page, NAME).get_by_test_id("project-environment")
    expect(env.get_by_test_id("env-requirements")).to_have_text("1 requirement")
    expect(env.get_by_test_id("env-package")).to_contain_text(["acme-helper==1.0"])
    expect(env.get_by_test_id("env-build")).to_have_text(re.compile(r"built in \d+(\.\d+)? s|reused"))
    link = env.get_by_test_id("env-log")
    expect(link).to_have_attribute("href", f"/get-log/build/{NAME}.log")
    response = page.request.get(link.get_attribute("href"))
    assert response.status == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "acme-helper" in response.text()

    # What the API says is what the page shows.
    code, body = daemon.get("/project-environment.json", project=NAME)
    assert code == 200, body
    assert {"name": "acme-helper", "version": "1.0"} in body["environment"]["packages"]
    assert body["environment"]["log"] == f"/get-log/build/{NAME}.log"


def test_failed_build_shows_the_whole_message(page, daemon, tmp_path):
    page.goto("/#/projects")
    expect(card(page, NAME).get_by_test_id("env-package")).to_contain_text(["acme-helper==1.0"])
    push_through_form(page, archive(tmp_path, NAME, "acme-helper==9.9\n"))
    error = page.get_by_test_id("push-error")
    expect(error).to_contain_text("9.9", timeout=60_000)
    message = error.locator("pre")
    expect(message).to_be_visible()
    text = message.inner_text()
    assert "9.9" in text and "\n" in text.strip(), text   # the installer's lines, one under another
    assert message.evaluate("el => getComputedStyle(el).whiteSpace") == "pre-wrap"
    lines = message.evaluate("el => el.getBoundingClientRect().height / parseFloat(getComputedStyle(el).lineHeight)")
    assert lines >= 2, lines
    # The daemon's own message, whole: the browser's text is the API's, line for line (but for the
    # build's temporary folder, named afresh each time).
    code, body = daemon.request("/push-project.json",
                                {"archive": (f"{NAME}.zip", project_zip(tmp_path, NAME, "acme-helper==9.9\n"))})
    assert code == 400 and "9.9" in body["msg"], body
    def masked(msg):
        return re.sub(r"[0-9a-f]{6,}-[0-9a-f]{6,}", "<build>", msg.strip()).splitlines()
    assert masked(text) == masked(body["msg"])
    # The old version stays, with its environment.
    expect(card(page, NAME).get_by_test_id("env-package")).to_contain_text(["acme-helper==1.0"])
    assert daemon.get("/project-environment.json", project=NAME)[1]["environment"]["packages"] == [
        {"name": "acme-helper", "version": "1.0"}]


def test_pushes_elsewhere_redraw_the_environment_from_the_event(page, daemon, tmp_path):
    page.goto("/#/projects")
    expect(card(page, NAME).get_by_test_id("env-package")).to_contain_text(["acme-helper==1.0"])
    mark(page)
    polls = []
    page.on("request", lambda r: polls.append(r.url) if "/list-projects.json" in r.url else None)

    # Another client pushes a new version: the card follows from the ProjectPushed event.
    daemon.push(f"{NAME}.zip", project_zip(tmp_path, NAME, "acme-helper==2.0\n"))
    expect(card(page, NAME).get_by_test_id("env-package")).to_contain_text(["acme-helper==2.0"])

    # A project without requirements.txt: nothing but a quiet line.
    daemon.push("plain.zip", project_zip(tmp_path, "plain", None))
    plain = card(page, "plain")
    expect(plain.get_by_test_id("no-environment")).to_be_visible()
    expect(plain.get_by_test_id("project-environment")).to_have_count(0)
    assert daemon.get("/project-environment.json", project="plain")[1]["environment"] is None
    assert_not_reloaded(page)
    assert not polls, f"the page polled the project list: {polls}"
