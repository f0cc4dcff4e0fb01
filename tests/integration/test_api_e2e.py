"""The REST API over a real socket with real crawls: logs, limits, responsiveness."""

import json
import time

import pytest
import pytest_twisted
import treq
from twisted.internet import defer, reactor, task

from scrapy_do.domain.models import JobStatus
from tests.helpers import multipart, offline_zip
from tests.integration.conftest import wait_for_job

pytestmark = pytest.mark.integration


def url(daemon, path):
    return f"http://127.0.0.1:{daemon.port}{path}"


@defer.inlineCallbacks
def post(daemon, path, fields):
    body, ctype = multipart(fields)
    response = yield treq.post(url(daemon, path), data=body, headers={"Content-Type": ctype})
    return response.code, (yield response.json())


@pytest_twisted.inlineCallbacks
def test_push_schedule_and_read_logs_over_http(daemon):
    """curl's workflow: push a zip, schedule now, read .out and .err of the finished job."""
    code, body = yield post(daemon, "/push-project.json", {"archive": ("offline.zip", offline_zip())})
    assert (code, body["name"], body["spiders"]) == (200, "offline", ["broken", "bulk", "erring", "mixed", "quick", "slow"])
    code, body = yield post(daemon, "/schedule-job.json", {"project": "offline", "spider": "quick",
                                                            "payload": '{"n": 1}'})
    job = yield wait_for_job(daemon.controller, body["identifier"])
    assert job.status is JobStatus.SUCCESSFUL
    response = yield treq.get(url(daemon, f"/get-log/data/{job.identifier}.out"))
    text = yield response.text()
    assert response.code == 200 and '"n": 1' in text
    assert response.headers.getRawHeaders("content-type")[0].startswith("text/plain")
    response = yield treq.get(url(daemon, f"/get-log/data/{job.identifier}.err"),
                              headers={"Range": "bytes=-200"})
    tail = yield response.content()
    assert response.code == 206 and len(tail) == 200
    whole = daemon.controller.log_path(job.identifier, "err").read_bytes()
    response = yield treq.get(url(daemon, f"/get-log/data/{job.identifier}.err"),
                              headers={"Range": f"bytes=-{len(whole) + 1000}"})
    assert response.code == 206 and (yield response.content()) == whole
    log_url = url(daemon, f"/get-log/data/{job.identifier}.err")
    for ranges, code in ((f"bytes=0-1,-{len(whole) + 5}", 200), (f"bytes={len(whole) + 5}-", 416),
                         ("bytes=", 200), ("bytes=5-2", 200), ("bytes=-0", 416)):
        response = yield treq.get(log_url, headers={"Range": ranges}).addTimeout(10, reactor)
        body = yield response.content()
        assert response.code == code, ranges
        if code == 416:
            assert json.loads(body)["status"] == "error"
        else:
            assert body == whole, ranges


@pytest_twisted.inlineCallbacks
def test_following_a_running_log_streams_until_the_job_ends(daemon):
    """A running job's log streams as it grows and the response ends when the job ends."""
    c = daemon.controller
    yield c.push_project(offline_zip())
    job = c.schedule_job("offline", "slow", payload='{"pages": 15}')
    yield wait_for_job(c, job.identifier, {JobStatus.RUNNING})
    chunks = []
    response = yield treq.get(url(daemon, f"/get-log/data/{job.identifier}.err"), unbuffered=True)
    assert response.headers.getRawHeaders("x-scrapy-do-following") == ["yes"]
    yield treq.collect(response, lambda data: chunks.append((time.monotonic(), data)))
    text = b"".join(d for _, d in chunks).decode()
    assert "Spider closed (finished)" in text
    assert len(chunks) > 2 and chunks[-1][0] - chunks[0][0] > 0.5  # arrived over time, not at once
    assert c.get_job(job.identifier).status is JobStatus.SUCCESSFUL


@pytest_twisted.inlineCallbacks
def test_range_on_running_log_returns_only_new_bytes(daemon):
    """`Range: bytes=N-` on a running log sends from offset N on, as 206."""
    c = daemon.controller
    yield c.push_project(offline_zip())
    job = c.schedule_job("offline", "slow", payload='{"pages": 10}')
    yield wait_for_job(c, job.identifier, {JobStatus.RUNNING})
    path = c.log_path(job.identifier, "err")
    while path.stat().st_size < 100:
        yield task.deferLater(reactor, 0.05, lambda: None)
    response = yield treq.get(url(daemon, f"/get-log/data/{job.identifier}.err"),
                              headers={"Range": "bytes=100-"})
    body = yield response.content()
    assert response.code == 206
    assert body == path.read_bytes()[100:]


@pytest_twisted.inlineCallbacks
def test_oversized_upload_is_refused_with_413_and_daemon_keeps_serving(daemon):
    """An upload over max-archive-size is a 413 JSON error, and status.json still answers."""
    limit = daemon.config.max_archive_size
    body = b"x" * (limit + (2 << 20))
    response = yield treq.post(url(daemon, "/push-project.json"), data=body,
                               headers={"Content-Type": "application/zip"})
    data = yield response.json()
    assert response.code == 413 and "max-archive-size" in data["msg"]
    response = yield treq.get(url(daemon, "/status.json"))
    assert response.code == 200
    assert list((daemon.config.project_store / "trees").iterdir()) == []


@pytest_twisted.inlineCallbacks
def test_status_stays_fast_while_pushing_and_crawling(daemon):
    """status.json answers in well under 50 ms while crawls run and a project is being pushed."""
    c = daemon.controller
    yield c.push_project(offline_zip())
    for _ in range(2):
        c.schedule_job("offline", "slow", payload='{"pages": 30}')
    push = post(daemon, "/push-project.json", {"archive": ("offline.zip", offline_zip())})
    times = []
    while not push.called:
        t0 = time.perf_counter()
        response = yield treq.get(url(daemon, "/status.json"))
        yield response.content()
        times.append(time.perf_counter() - t0)
    code, _ = yield push
    assert code == 200 and len(times) >= 5
    times.sort()
    assert times[len(times) // 2] < 0.05, times


@pytest_twisted.inlineCallbacks
def test_concurrent_schedule_requests_get_distinct_jobs(daemon):
    """64 concurrent schedule requests give 64 distinct ids and 64 stored jobs."""
    c = daemon.controller
    yield c.push_project(offline_zip())
    results = yield defer.gatherResults([
        post(daemon, "/schedule-job.json", {"project": "offline", "spider": "slow", "when": "every 2 hours"})
        for _ in range(64)])
    ids = {body["identifier"] for code, body in results if code == 200}
    assert len(ids) == 64
    assert c.count_jobs("SCHEDULED") == 64


@pytest_twisted.inlineCallbacks
def test_dashboard_and_its_files_are_served_but_nothing_else(daemon):
    """`/` is the dashboard's HTML; /ui/ serves its files and refuses paths outside it."""
    response = yield treq.get(url(daemon, "/"))
    body = yield response.content()
    assert response.code == 200 and b"<title>" in body.lower()
    for path in ("/ui/../webapi.py", "/ui/%2e%2e/webapi.py", "/ui/..%2Fwebapi.py", "/ui/nope.js"):
        response = yield treq.get(url(daemon, path))
        body = yield response.content()
        assert response.code == 404 and b"Klein" not in body, path


@pytest_twisted.inlineCallbacks
def test_unparsable_multipart_body_is_a_json_400(daemon):
    """A multipart body with no parts is a JSON 400 naming the problem, not Twisted's bare 400."""
    response = yield treq.post(url(daemon, "/schedule-job.json"), data=b"--b--\r\n",
                               headers={"Content-Type": "multipart/form-data; boundary=b"})
    body = yield response.json()
    assert response.code == 400 and "multipart" in body["msg"]
