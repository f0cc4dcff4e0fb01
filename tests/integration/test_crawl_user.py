"""Crawls run as an unprivileged crawl user, with the real daemon, real users and real crawls.

A crawl may read its project and write its project's data directory, and
nothing else of the daemon's: not the database, the archives, the logs, its
own or another project's tree. These tests create the users they need
(CI runs as root).
"""

import json
import os
import pwd
import stat
import subprocess
import time

import pytest

from tests.helpers import FIXTURES, offline_zip, zip_tree
from tests.integration.daemonproc import DaemonProcess

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root (CI runs as root)")]

HOSTILE = FIXTURES / "hostile"
CONF = "[scrapy-do]\njob-slots = 2\ncancel-grace = 3\n{extra}[web]\ninterfaces = 127.0.0.1:0\n"
CRAWLER, DAEMON = "sdo-test-crawler", "sdo-test-daemon"
ZERO_CAPABILITIES = "0000000000000000"


def _user(name):
    subprocess.run(["userdel", name], capture_output=True)
    subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    return pwd.getpwnam(name)


@pytest.fixture(scope="module")
def crawler():
    yield _user(CRAWLER)
    subprocess.run(["userdel", CRAWLER], capture_output=True)


@pytest.fixture(scope="module")
def daemon_user():
    yield _user(DAEMON)
    subprocess.run(["userdel", DAEMON], capture_output=True)


def start(workdir, extra="", **kwargs):
    d = DaemonProcess(workdir, CONF.format(extra=extra), **kwargs).start()
    code, body = d.request("/push-project.json", {"archive": ("hostile.zip", zip_tree(HOSTILE))})
    assert code == 200, body
    return d


def run_spider(daemon, spider, payload=None):
    code, body = daemon.request("/schedule-job.json", {"project": "hostile", "spider": spider,
                                                        "payload": json.dumps(payload or {})})
    assert code == 200, body
    job = daemon.wait_job(body["identifier"], {"SUCCESSFUL", "FAILED"}, timeout=60)
    assert job["status"] == "SUCCESSFUL", (daemon.store / "log-dir" / f"{job['identifier']}.err").read_text()
    return job["identifier"]


def report(daemon, identifier):
    for line in (daemon.store / "log-dir" / f"{identifier}.out").read_text().splitlines():
        if line.startswith('{"trespass"'):
            return json.loads(line)
    raise AssertionError(f"job {identifier} printed no report")


@pytest.fixture
def store_of():
    def attach(daemon):
        daemon.store = daemon.workdir / "projects"
        return daemon
    return attach


def test_a_root_daemon_runs_crawls_as_nobody_and_they_reach_only_their_data(tmp_path, store_of):
    d = store_of(start(tmp_path))
    try:
        assert "crawls run as the unprivileged user nobody" in d.log.read_text()
        code, body = d.request("/push-project.json", {"archive": ("offline.zip", offline_zip())})
        assert code == 200, body
        other_tree = next(d.store.glob("trees/offline.*"))
        victim = run_spider(d, "snoop")
        victim_log = d.store / "log-dir" / f"{victim}.out"
        before = victim_log.read_bytes()
        seen = report(d, run_spider(d, "trespasser", {"paths": {"other-tree": str(other_tree / "planted.py"),
                                                                 "other-log": str(victim_log)}}))
        tried = seen["trespass"]
        assert tried.pop("data-dir") == "done"
        assert all(outcome.startswith("refused") for outcome in tried.values()), tried
        nobody = pwd.getpwnam("nobody")
        assert (seen["uid"], seen["gid"], seen["user"]) == (nobody.pw_uid, nobody.pw_gid, "nobody")
        assert seen["capabilities"] == ZERO_CAPABILITIES and seen["no_new_privs"] == "1"
        data = d.store / "spider-data" / "hostile"
        assert seen["home"] == str(data)
        assert (data / "planted.txt").stat().st_uid == nobody.pw_uid
        # Scrapy's project data (.scrapy, here its HTTP cache) lands in the data directory.
        assert (data / ".scrapy" / "httpcache" / "trespasser").is_dir()
        assert victim_log.read_bytes() == before
        assert not (other_tree / "planted.py").exists()
        modes = {p: stat.S_IMODE((d.store / p).stat().st_mode)
                 for p in ("scrapy-do.db", "archives", "log-dir", "trees", ".")}
        assert modes == {"scrapy-do.db": 0o600, "archives": 0o700, "log-dir": 0o700, "trees": 0o711, ".": 0o711}
    finally:
        d.stop()


def test_a_named_crawl_user_runs_the_crawls_and_the_spider_listing(tmp_path, crawler, store_of):
    d = store_of(start(tmp_path, f"crawl-user = {CRAWLER}\n", env={"SCRAPY_DO_TEST_SECRET": "hunter2"}))
    try:
        assert f"crawls run as {CRAWLER} (uid {crawler.pw_uid})" in d.log.read_text()
        seen = report(d, run_spider(d, "trespasser"))
        assert (seen["uid"], seen["gid"], seen["user"]) == (crawler.pw_uid, crawler.pw_gid, CRAWLER)
        assert seen["capabilities"] == ZERO_CAPABILITIES
        # `scrapy list` runs the project's code at push time: as the crawl user too.
        boom = {"hostile/spiders/boom.py": b"import os\nraise RuntimeError(f'listed as uid={os.getuid()} "
                                           b"secret={os.environ.get(\"SCRAPY_DO_TEST_SECRET\")}')\n"}
        code, body = d.request("/push-project.json", {"archive": ("hostile.zip", zip_tree(HOSTILE, stored=boom))})
        assert code == 400 and f"listed as uid={crawler.pw_uid} secret=None" in body["msg"], body
    finally:
        d.stop()


def test_crawls_run_as_root_only_when_crawl_user_says_root(tmp_path, store_of):
    d = store_of(start(tmp_path, "crawl-user = root\n"))
    try:
        assert "crawls run as root (crawl-user = root)" in d.log.read_text()
        seen = report(d, run_spider(d, "trespasser"))
        assert seen["uid"] == 0 and seen["trespass"]["own-tree"] == "done"
    finally:
        d.stop()


def test_a_crawl_user_who_cannot_reach_the_store_stops_start_up_saying_why(tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    d = DaemonProcess(tmp_path, CONF.format(extra=f"project-store = {private}/store\n")).start(wait=False)
    assert d.proc.wait(60) == 1
    said = d.log.read_text() + d.err.read_text()
    assert "crawls cannot run as nobody (crawl-user)" in said and "Permission denied" in said, said


def test_a_daemon_that_is_not_root_switches_with_the_capabilities_of_the_systemd_unit(
        tmp_path, crawler, daemon_user, store_of):
    """The unit's layout: the daemon as its own user holding four capabilities, crawls as another user."""
    home = tmp_path / "daemon"
    home.mkdir()
    os.chown(home, daemon_user.pw_uid, daemon_user.pw_gid)
    caps = "+chown,+kill,+setgid,+setuid"
    setpriv = ["setpriv", f"--reuid={daemon_user.pw_uid}", f"--regid={daemon_user.pw_gid}", "--init-groups",
               f"--inh-caps={caps}", f"--ambient-caps={caps}", "--"]
    d = store_of(start(home, f"crawl-user = {CRAWLER}\n", prefix=setpriv))
    try:
        assert (d.store / "scrapy-do.db").stat().st_uid == daemon_user.pw_uid
        seen = report(d, run_spider(d, "trespasser"))
        assert (seen["uid"], seen["capabilities"]) == (crawler.pw_uid, ZERO_CAPABILITIES)
        assert all(v.startswith("refused") for k, v in seen["trespass"].items() if k != "data-dir")
        # Cancel reaches a crawl of another user (CAP_KILL).
        code, body = d.request("/schedule-job.json", {"project": "hostile", "spider": "forker"})
        assert code == 200
        deadline = time.monotonic() + 30
        while d.job(body["identifier"])["status"] != "RUNNING" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert d.request("/cancel-job.json", {"id": body["identifier"]})[0] == 200
        assert d.wait_job(body["identifier"], {"CANCELED"}, timeout=30)["status"] == "CANCELED"
    finally:
        d.stop()


def test_what_a_crawl_writes_with_relative_paths_lands_in_its_data_directory_and_survives_a_push(
        tmp_path, store_of):
    """FEEDS = {"items/%(name)s.jsonl": ...}: written as the crawl user into spider-data/<project>, kept by a
    re-push (the tree it was pushed in is replaced)."""
    d = store_of(start(tmp_path))
    try:
        run_spider(d, "feeder")
        feed = d.store / "spider-data" / "hostile" / "items" / "feeder.jsonl"
        assert sorted(json.loads(line)["body"] for line in feed.read_text().splitlines()) == ["one", "two"]
        assert feed.stat().st_uid == pwd.getpwnam("nobody").pw_uid
        code, body = d.request("/push-project.json", {"archive": ("hostile.zip", zip_tree(HOSTILE))})
        assert code == 200, body
        assert len(feed.read_text().splitlines()) == 2
    finally:
        d.stop()


def test_data_files_are_listed_and_downloaded_never_through_a_symlink_and_kept_unless_purged(tmp_path, store_of):
    import urllib.error
    import urllib.request

    d = store_of(start(tmp_path))
    try:
        run_spider(d, "feeder")
        data = d.store / "spider-data" / "hostile"
        (data / "page.html").write_text("<script>alert(1)</script>")
        (data / "shadow").symlink_to("/etc/shadow")  # as a crawl could plant it
        (data / "etc").symlink_to("/etc")
        code, body = d.get("/list-data.json", project="hostile")
        assert code == 200, body
        paths = [f["path"] for f in body["files"]]
        assert "items/feeder.jsonl" in paths and "page.html" in paths
        assert not any(p.startswith(("shadow", "etc")) for p in paths) and body["truncated"] is False
        with urllib.request.urlopen(f"{d.url}/get-data/hostile/items/feeder.jsonl", timeout=10) as resp:
            assert resp.headers["content-type"].startswith("text/plain")
            assert resp.headers["content-disposition"].startswith("attachment")
            assert len(resp.read().splitlines()) == 2
        with urllib.request.urlopen(f"{d.url}/get-data/hostile/page.html", timeout=10) as resp:
            assert resp.headers["content-type"] == "application/octet-stream"
            assert resp.headers["content-security-policy"] == "sandbox"
        for path in ("shadow", "etc/passwd", "../../scrapy-do.db", "items/../../hostile/items/feeder.jsonl",
                     "%2e%2e/%2e%2e/scrapy-do.db", "items"):
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"{d.url}/get-data/hostile/{path}", timeout=10)
            assert refused.value.code == 404 and json.loads(refused.value.read())["status"] == "error", path
        assert d.request("/remove-project.json", {"name": "hostile"})[0] == 200
        assert (data / "items" / "feeder.jsonl").exists()  # kept: what the crawls wrote is not lost
        assert d.request("/push-project.json", {"archive": ("hostile.zip", zip_tree(HOSTILE))})[0] == 200
        code, body = d.request("/remove-project.json", {"name": "hostile", "purge": "maybe"})
        assert code == 400 and "purge must be on or off" in body["msg"]
        assert d.request("/remove-project.json", {"name": "hostile", "purge": "on"})[0] == 200
        deadline = time.monotonic() + 10
        while data.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not data.exists()
    finally:
        d.stop()
