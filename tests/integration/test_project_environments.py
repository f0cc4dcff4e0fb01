"""Projects with a requirements.txt, with the real daemon, the real uv and real crawls (as the crawl user).

The packages come from hand-made wheels in a local folder ([scrapy-do]
find-links with no index): no network. A project named `helped` has a
spider that imports `acme_helper` and prints its version.
"""

import json
import os
import shutil
import time

import pytest

from tests.helpers import OFFLINE, make_slow_sdist, make_wheel, zip_tree
from tests.integration.daemonproc import DaemonProcess

pytestmark = pytest.mark.integration

SPIDER = '''
import acme_helper
import scrapy


class HelpedSpider(scrapy.Spider):
    name = "helped"
    start_urls = ["data:,hi"]

    def parse(self, response):
        print("acme-helper", acme_helper.VERSION, flush=True)
        yield {"version": acme_helper.VERSION}
'''


def project(tmp_path, name, requirements):
    """The offline fixture as project `name`, with the `helped` spider and this requirements.txt."""
    tree = tmp_path / "src" / name
    shutil.copytree(OFFLINE, tree, ignore=shutil.ignore_patterns("__pycache__"))
    (tree / "offline" / "spiders" / "helped.py").write_text(SPIDER)
    (tree / "requirements.txt").write_bytes(requirements)
    (tree / "scrapy.cfg").write_text((tree / "scrapy.cfg").read_text().replace("project = offline",
                                                                           f"project = {name}"))
    return zip_tree(tree, name)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("envs")
    make_wheel(workdir / "wheels", "acme-helper", "1.0")
    make_wheel(workdir / "wheels", "acme-helper", "2.0", requires=["scrapy>=2"])
    d = DaemonProcess(workdir, "[scrapy-do]\njob-slots = 2\nfind-links = wheels\n"
                               "[web]\ninterfaces = 127.0.0.1:0\n").start()
    yield d
    d.stop()


def fetch(d, path):
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(d.url + path, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def crawled_version(d, name):
    job = d.schedule(name, "helped")
    ended = d.wait_job(job, {"SUCCESSFUL", "FAILED"}, timeout=60)
    assert ended["status"] == "SUCCESSFUL", (ended, (d.workdir / "projects" / "log-dir" / f"{job}.err").read_text())
    code, body = d.get(f"/get-stats/{job}.json")
    lines = (d.workdir / "projects" / "log-dir" / f"{job}.out").read_text().splitlines()
    return next(line.split()[1] for line in lines if line.startswith("acme-helper"))


def test_a_projects_requirements_run_in_its_own_environment_side_by_side_with_another(daemon, tmp_path):
    pushed = daemon.push("one.zip", project(tmp_path, "one", b"acme-helper==1.0\n"))
    assert "helped" in pushed["spiders"]
    assert pushed["environment"]["requirements"] == 1 and pushed["environment"]["reused"] is False
    other = daemon.push("two.zip", project(tmp_path, "two", b"acme-helper==2.0\n"))
    assert other["environment"]["reused"] is False
    assert crawled_version(daemon, "one") == "1.0" and crawled_version(daemon, "two") == "2.0"
    # Another project with the same requirements, and a re-push: the environment is there already.
    same = daemon.push("three.zip", project(tmp_path, "three", b"acme_helper == 1.0  # the same\n"))
    assert same["environment"]["reused"] is True and same["environment"]["seconds"] == 0
    assert crawled_version(daemon, "three") == "1.0"
    code, headers, log = fetch(daemon, "/get-log/build/one.log")
    assert code == 200 and b"acme-helper==1.0" in log, log
    code, body = daemon.get("/project-environment.json", project="two")
    assert code == 200 and body["environment"]["packages"] == [{"name": "acme-helper", "version": "2.0"}]
    assert body["environment"]["log"] == "/get-log/build/two.log" and body["environment"]["requirements"] == 1
    code, _, body = fetch(daemon, "/get-log/build/offline-none.log")
    assert code == 404 and json.loads(body)["status"] == "error"


def test_a_requirement_that_cannot_be_installed_refuses_the_push_and_the_old_version_stays(daemon, tmp_path):
    daemon.push("keep.zip", project(tmp_path, "keep", b"acme-helper==1.0\n"))
    code, body = daemon.request("/push-project.json",
                                {"archive": ("keep.zip", project(tmp_path / "b", "keep", b"acme-helper==9.9\n"))})
    assert code == 400 and "acme-helper" in body["msg"] and "9.9" in body["msg"], body
    assert crawled_version(daemon, "keep") == "1.0"


@pytest.mark.parametrize("requirements, says", [
    (b"-i https://evil.example/simple\nacme-helper\n", "line 1"),
    (b"acme-helper\n--find-links /tmp\n", "line 2"),
    (b"./acme\n", "a local path"),
    (b"acme @ file:///tmp/acme.whl\n", "a direct URL"),
    (b"\xff\xfe\n", "not UTF-8"),
])
def test_requirements_that_say_where_packages_come_from_are_refused_naming_the_line(daemon, tmp_path, requirements,
                                                                                    says):
    code, body = daemon.request("/push-project.json",
                                {"archive": ("bad.zip", project(tmp_path, "bad", requirements))})
    assert code == 400 and says in body["msg"], body
    assert "bad" not in daemon.get("/list-projects.json")[1]["projects"]


def test_the_build_of_a_push_is_followed_live_and_its_log_kept(daemon, tmp_path):
    """While a push builds, GET /get-log/build/<project>.log streams that build's output until it ends."""
    import threading

    make_slow_sdist(daemon.workdir / "wheels", "acme-slow", "1.0", seconds=3)
    archive = project(tmp_path, "live", b"acme-slow==1.0\nacme-helper==1.0\n")
    answer = {}
    pushing = threading.Thread(target=lambda: answer.update(zip(("code", "body"), daemon.request(
        "/push-project.json", {"archive": ("live.zip", archive)}))))
    pushing.start()
    followed = None
    while pushing.is_alive() and not list((daemon.workdir / "projects" / "envs").glob(".building-*")):
        time.sleep(0.05)
    asked = time.monotonic()  # the build runs (3 s): the API answers meanwhile
    assert daemon.get("/status.json")[0] == 200 and time.monotonic() - asked < 1 and pushing.is_alive()
    while pushing.is_alive():
        code, headers, body = fetch(daemon, "/get-log/build/live.log")
        if code == 200 and headers.get("x-scrapy-do-following") == "yes":
            followed = body
            break
        time.sleep(0.1)
    pushing.join(60)
    assert answer["code"] == 200 and answer["body"]["environment"]["seconds"] >= 3, answer
    code, headers, kept = fetch(daemon, "/get-log/build/live.log")
    assert code == 200 and headers.get("x-scrapy-do-following") is None and b"acme-slow==1.0" in kept
    assert followed == kept  # the whole build, as it came


def _processes_in(folder):
    """The build processes whose command line names `folder` (uv and its build backend)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        line = " ".join(proc.info["cmdline"] or ())
        if str(folder) in line and "uv" in line:
            found.append((proc.pid, line[:200]))
    return found


def test_a_daemon_killed_during_a_build_leaves_no_half_built_environment(tmp_path):
    import signal
    import threading

    make_slow_sdist(tmp_path / "wheels", "acme-slow", "1.0", seconds=30)
    make_wheel(tmp_path / "wheels", "acme-helper", "1.0")
    d = DaemonProcess(tmp_path, "[scrapy-do]\nfind-links = wheels\n[web]\ninterfaces = 127.0.0.1:0\n").start()
    try:
        d.push("kept.zip", project(tmp_path / "a", "kept", b"acme-helper==1.0\n"))
        archive = project(tmp_path / "b", "kept", b"acme-slow==1.0\nacme-helper==1.0\n")
        def push():
            try:
                d.request("/push-project.json", {"archive": ("kept.zip", archive)})
            except OSError:  # the daemon dies under it
                pass

        threading.Thread(target=push, daemon=True).start()
        envs = tmp_path / "projects" / "envs"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not list(envs.glob(".building-*")):
            time.sleep(0.1)
        assert list(envs.glob(".building-*")), "the build never started"
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(30)
        d.start()
        assert not list(envs.glob(".building-*"))
        deadline = time.monotonic() + 10  # the build's processes die with the daemon (parent-death signal)
        while time.monotonic() < deadline and _processes_in(tmp_path):
            time.sleep(0.1)
        assert not _processes_in(tmp_path)
        assert crawled_version(d, "kept") == "1.0"  # the version pushed before, in its own environment
        assert d.get("/project-environment.json", project="kept")[1]["environment"]["packages"] == [
            {"name": "acme-helper", "version": "1.0"}]
    finally:
        d.stop()


def test_scrapy_do_cl_push_project_shows_the_builds_progress(daemon, tmp_path):
    """The real client, as a subprocess: the build's output on stderr while it runs, then what was built."""
    import subprocess
    import sys

    make_slow_sdist(daemon.workdir / "wheels", "acme-slower", "1.0", seconds=2)
    tree = tmp_path / "src" / "shown"
    zip_bytes = project(tmp_path, "shown", b"acme-slower==1.0\nacme-helper==1.0\n")
    assert zip_bytes  # project() also left the tree on disk
    done = subprocess.run([sys.executable, "-m", "scrapy_do.client.cli", "--url", daemon.url, "push-project",
                           "--project-path", str(tree)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "helped" in done.stdout
    assert "$ uv pip install" in done.stderr and "acme-slower==1.0" in done.stderr, done.stderr
    assert "[i] 2 requirements from requirements.txt: environment built in" in done.stderr, done.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to the crawl user")
def test_a_build_runs_as_the_crawl_user_and_its_environment_is_read_only_to_crawls(daemon, tmp_path):
    """A source distribution's build code is the project's: it runs as the crawl user (nobody), and what is
    built becomes the daemon's, which crawls may read but not change."""
    import pwd

    make_slow_sdist(daemon.workdir / "wheels", "acme-whoami", "1.0", seconds=0)
    daemon.push("who.zip", project(tmp_path, "who", b"acme-whoami==1.0\nacme-helper==1.0\n"))
    key = daemon.get("/project-environment.json", project="who")[1]["environment"]["log"]
    assert key == "/get-log/build/who.log"
    [module] = (daemon.workdir / "projects" / "envs").glob("*/lib/python*/site-packages/acme_whoami/__init__.py")
    assert f"BUILT_BY = {pwd.getpwnam('nobody').pw_uid}" in module.read_text()
    for path in (module, module.parent, module.parents[3]):
        info = path.stat()
        assert info.st_uid == 0 and not info.st_mode & 0o022, (path, oct(info.st_mode), info.st_uid)


def test_a_build_past_its_timeout_is_refused_and_leaves_nothing(tmp_path):
    make_slow_sdist(tmp_path / "wheels", "acme-slow", "1.0", seconds=60)
    d = DaemonProcess(tmp_path, "[scrapy-do]\nfind-links = wheels\nenvironment-build-timeout = 2\n"
                                "[web]\ninterfaces = 127.0.0.1:0\n").start()
    try:
        started = time.monotonic()
        code, body = d.request("/push-project.json",
                               {"archive": ("late.zip", project(tmp_path, "late", b"acme-slow==1.0\n"))})
        assert code == 400 and "environment-build-timeout" in body["msg"], body
        assert time.monotonic() - started < 30
        envs = tmp_path / "projects" / "envs"
        assert not list(envs.glob(".building-*"))
        assert [p.name for p in envs.iterdir() if p.is_dir() and not p.name.startswith(".cache")] == []
        assert "late" not in d.get("/list-projects.json")[1]["projects"]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _processes_in(tmp_path):
            time.sleep(0.1)
        assert not _processes_in(tmp_path)
    finally:
        d.stop()


def test_a_crawl_of_the_previous_version_keeps_its_environment_until_it_ends(daemon, tmp_path):
    make_wheel(daemon.workdir / "wheels", "acme-first", "1.0")
    make_wheel(daemon.workdir / "wheels", "acme-second", "1.0")
    slow = SPIDER.replace('name = "helped"', 'name = "helped_slowly"').replace(
        'start_urls = ["data:,hi"]', 'custom_settings = {"DOWNLOAD_DELAY": 0.1}\n    start_urls = '
                                     '[f"data:,{i}" for i in range(40)]').replace(
        "class HelpedSpider", "class HelpedSlowlySpider")
    first = tmp_path / "first"
    project(first, "versions", b"acme-helper==1.0\nacme-first==1.0\n")
    (first / "src" / "versions" / "offline" / "spiders" / "slowly.py").write_text(slow)
    assert "helped_slowly" in daemon.push("versions.zip", zip_tree(first / "src" / "versions", "versions"))["spiders"]
    envs = daemon.workdir / "projects" / "envs"
    [old] = [p.parents[3] for p in envs.glob("*/lib/python*/site-packages/acme_first")]
    job = daemon.schedule("versions", "helped_slowly")
    daemon.wait_job(job, {"RUNNING"}, timeout=30)
    daemon.push("versions.zip", project(tmp_path / "second", "versions", b"acme-helper==1.0\nacme-second==1.0\n"))
    assert list(envs.glob("*/lib/python*/site-packages/acme_second"))
    assert old.is_dir()  # the running crawl's environment is kept
    ended = daemon.wait_job(job, {"SUCCESSFUL", "FAILED"}, timeout=60)
    assert ended["status"] == "SUCCESSFUL" and ended["stats"]["item_scraped_count"] == 40, ended
    assert not old.exists()  # no version uses it any more
