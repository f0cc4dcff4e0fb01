"""Cross-site and DNS-rebinding requests against the real daemon (a subprocess on a free port, default config)."""

import shutil
import subprocess

import pytest
import requests

from tests.helpers import OFFLINE, offline_zip, zip_tree
from tests.integration.daemonproc import DaemonProcess

pytestmark = pytest.mark.integration

TIMEOUT = 60


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """The daemon with the defaults: loopback, no auth, no allowed-hosts."""
    d = DaemonProcess(tmp_path_factory.mktemp("cross-site")).start()
    yield d
    d.stop()


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """The offline test project, zipped."""
    path = tmp_path_factory.mktemp("archive") / "offline.zip"
    path.write_bytes(offline_zip())
    return path


@pytest.fixture(scope="module")
def evil_archive(tmp_path_factory):
    """The same project named 'evilproj', which only the refused pushes try to add."""
    tree = tmp_path_factory.mktemp("evil") / "evilproj"
    shutil.copytree(OFFLINE, tree, ignore=shutil.ignore_patterns("__pycache__"))
    cfg = tree / "scrapy.cfg"
    cfg.write_text(cfg.read_text().replace("project = offline", "project = evilproj"))
    path = tree.parent / "evilproj.zip"
    path.write_bytes(zip_tree(tree))
    return path


def projects(daemon):
    code, body = daemon.get("/list-projects.json")
    assert code == 200, body
    return body["projects"]


def push(daemon, archive, headers=None):
    with open(archive, "rb") as f:
        return requests.post(daemon.url + "/push-project.json", files={"archive": ("offline.zip", f)},
                             headers=headers or {}, timeout=TIMEOUT)


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:1"])
def test_foreign_origin_push_is_refused_and_adds_no_project(daemon, evil_archive, origin):
    """A page elsewhere that posts a zip to push-project.json gets a JSON 403 and no project appears."""
    response = push(daemon, evil_archive, {"Origin": origin})
    assert response.status_code == 403
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["status"] == "error" and body["msg"].startswith(f"Origin {origin!r} ")
    assert "evilproj" not in projects(daemon)


def test_foreign_referer_form_post_is_refused(daemon, archive):
    """A simple form post that only carries a foreign Referer cannot schedule anything."""
    assert push(daemon, archive).status_code == 200  # no Origin, no Referer: accepted
    response = requests.post(daemon.url + "/schedule-job.json", data={"project": "offline", "spider": "quick"},
                             headers={"Referer": "http://evil.example/attack.html"}, timeout=TIMEOUT)
    assert response.status_code == 403 and response.json()["msg"].startswith("Referer ")
    assert daemon.get("/list-jobs.json", status="ACTIVE")[1]["jobs"] == []


@pytest.mark.parametrize("path", ["/status.json", "/", "/ui/app.js", "/events", "/list-jobs.json?status=ACTIVE"])
def test_rebound_host_is_refused_on_every_path(daemon, path):
    """A request naming another host (DNS rebinding) is refused with a JSON 421 on every path."""
    # Streamed: were /events answered, its body would never end.
    with requests.get(daemon.url + path, headers={"Host": "rebind.example"}, timeout=TIMEOUT, stream=True) as response:
        assert response.status_code == 421
        assert response.headers["Content-Type"] == "application/json"
        assert response.json() == {"status": "error", "msg": "Host 'rebind.example' is not one this daemon serves; "
                                                             "add it to [web] allowed-hosts if it is yours"}


def test_rebound_host_cannot_push_with_its_own_origin(daemon, evil_archive):
    """A rebinding page is same-origin with itself, so its push is stopped by the Host check alone."""
    port = daemon.url.rsplit(":", 1)[1]
    response = push(daemon, evil_archive, {"Host": f"rebind.example:{port}",
                                           "Origin": f"http://rebind.example:{port}"})
    assert response.status_code == 421 and "evilproj" not in projects(daemon)


@pytest.mark.skipif(shutil.which("curl") is None, reason="no curl")
def test_curl_push_and_dashboard_origin_schedule_work(daemon, archive):
    """curl (no Origin) pushes a project, and a POST from the daemon's own dashboard origin schedules a job."""
    out = subprocess.run(["curl", "-s", "-w", "\\n%{http_code}", f"{daemon.url}/push-project.json",
                          "-F", f"archive=@{archive}"], capture_output=True, text=True, timeout=TIMEOUT)
    assert out.stdout.rstrip().endswith("200"), out.stdout
    assert "offline" in projects(daemon)
    response = requests.post(daemon.url + "/schedule-job.json",
                             data={"project": "offline", "spider": "quick", "when": "every 1 hour"},
                             headers={"Origin": daemon.url, "Referer": daemon.url + "/"}, timeout=TIMEOUT)
    assert response.status_code == 200, response.text
    assert daemon.job(response.json()["identifier"])["status"] == "SCHEDULED"


def test_dashboard_is_served_to_its_own_host_with_anti_framing_headers(daemon):
    """GET / with Host 127.0.0.1:port serves the dashboard and its script, with nosniff and DENY."""
    port = daemon.url.rsplit(":", 1)[1]
    for path in ("/", "/ui/app.js"):
        response = requests.get(daemon.url + path, headers={"Host": f"127.0.0.1:{port}"}, timeout=TIMEOUT)
        assert response.status_code == 200 and response.content
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert requests.get(daemon.url + "/", headers={"Host": f"localhost:{port}"}, timeout=TIMEOUT).status_code == 200


def test_allowed_hosts_admit_a_reverse_proxy_site(tmp_path):
    """A name in [web] allowed-hosts is served, and posts from its https origin (a proxy's) are accepted."""
    daemon = DaemonProcess(tmp_path, "[web]\ninterfaces = 127.0.0.1:0\nallowed-hosts = Scrapy-Do.Example.com\n")
    daemon.start()
    try:
        url = daemon.url + "/schedule-job.json"
        fields = {"project": "nope", "spider": "quick"}
        named = requests.get(daemon.url + "/status.json", headers={"Host": "scrapy-do.example.com"}, timeout=TIMEOUT)
        assert named.status_code == 200
        # Past the guard: the API itself answers (the project does not exist).
        proxied = requests.post(url, data=fields, headers={"Origin": "https://scrapy-do.example.com"},
                                timeout=TIMEOUT)
        assert proxied.status_code == 404 and "nope" in proxied.json()["msg"]
        other = requests.post(url, data=fields, headers={"Origin": "https://other.example.com"}, timeout=TIMEOUT)
        assert other.status_code == 403
    finally:
        daemon.stop()
