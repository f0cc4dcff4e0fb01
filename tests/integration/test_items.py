"""Scraped items and errors with the real daemon and real crawls of the offline fixture project.

`mixed` yields items of every awkward type (see `mixed_items` in the
fixture), `erring` raises in one callback and logs an error in another,
`slow` yields an item every 0.1 s.
"""

import csv
import io
import json
import os
import signal
import time
import urllib.error
import urllib.request

import pytest

from tests.helpers import FIXTURES, offline_zip
from tests.integration.daemonproc import DaemonProcess

pytestmark = pytest.mark.integration

CONF = "[scrapy-do]\njob-slots = 2\ncancel-grace = 2\n{extra}[web]\ninterfaces = 127.0.0.1:0\n"


def start(workdir, extra=""):
    workdir.mkdir(exist_ok=True)
    d = DaemonProcess(workdir, CONF.format(extra=extra)).start()
    d.push("offline.zip", offline_zip())
    return d


def schedule(d, spider, **fields):
    return d.schedule("offline", spider, **fields)


def fetch(d, path, headers=None, timeout=60):
    request = urllib.request.Request(d.url + path, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def expected(count):
    """What the `mixed` spider's items read back as, by the encoding rules of the reporter."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("fixture_spiders",
                                                  FIXTURES / "offline" / "offline" / "spiders" / "spiders.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("fixture_spiders", module)
    spec.loader.exec_module(module)
    from scrapy_do.crawl.reporter import encode_item

    return [json.loads(encode_item(item)) for item in module.mixed_items(count)]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    d = start(tmp_path_factory.mktemp("items"))
    yield d
    d.stop()


def test_every_item_is_kept_as_json_lines_and_csv(daemon):
    job = schedule(daemon, "mixed", payload='{"count": 25}')
    ended = daemon.wait_job(job, {"SUCCESSFUL", "FAILED"}, timeout=60)
    assert ended["status"] == "SUCCESSFUL" and ended["errors"] == 0, ended
    assert ended["stats"]["item_scraped_count"] == 25
    code, headers, body = fetch(daemon, f"/get-items/{job}.jl")
    assert code == 200 and headers["Content-Type"].startswith("application/x-ndjson")
    lines = body.decode("utf-8").splitlines()
    assert [json.loads(line) for line in lines] == expected(25)
    assert json.loads(lines[2])["raw"] == "bytes é" and json.loads(lines[3])["price"] == "19.99"
    # A range of the finished file, as for logs.
    code, headers, tail = fetch(daemon, f"/get-items/{job}.jl", {"Range": "bytes=-100"})
    assert code == 206 and body.endswith(tail) and len(tail) == 100
    code, _, refused = fetch(daemon, f"/get-items/{job}.jl", {"Range": f"bytes={len(body) + 10}-"})
    assert code == 416 and json.loads(refused)["status"] == "error"
    code, headers, text = fetch(daemon, f"/get-items/{job}.csv")
    assert code == 200 and headers["Content-Type"].startswith("text/csv")
    assert "attachment" in headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(text.decode("utf-8"))))
    assert len(rows) == 25 and list(rows[0]) == ["n", "text", "nested", "raw", "when", "price", "tags", "day",
                                                  "name"]
    assert json.loads(rows[1]["nested"]) == {"list": [1, 2.5, None, True], "deep": {"x": "y"}}
    assert rows[4]["name"] == "product 4" and rows[4]["n"] == "" and rows[3]["tags"] == '["a", "b"]'
    code, body = daemon.get(f"/get-stats/{job}.json")
    assert code == 200 and body["samples"] and body["samples"][-1][1] == 25


def test_a_project_with_an_item_processor_of_its_own_keeps_it_and_its_items_are_kept_too(daemon):
    """The daemon hands items over in Scrapy's item processor; one the project sets stays, and the daemon's
    last pipeline takes over. Either way only items that passed the project's pipelines are kept."""
    kept = {}
    for processor in ("", "scrapy.pipelines.ItemPipelineManager"):
        job = schedule(daemon, "mixed", payload='{"count": 12}',
                       **({"settings": json.dumps({"ITEM_PROCESSOR": processor})} if processor else {}))
        ended = daemon.wait_job(job, {"SUCCESSFUL", "FAILED"}, timeout=60)
        assert ended["status"] == "SUCCESSFUL", ended
        log = (daemon.workdir / "projects" / "log-dir" / f"{job}.err").read_text()
        assert ("scrapy_do.crawl.reporter.ItemCapture" in log) == bool(processor) and "WARNING" not in log
        kept[processor] = fetch(daemon, f"/get-items/{job}.jl")[2]
    assert kept[""] == kept["scrapy.pipelines.ItemPipelineManager"]
    assert [json.loads(line) for line in kept[""].splitlines()] == expected(12)


def test_items_that_cannot_be_kept_are_counted_errors_and_the_crawl_goes_on(daemon):
    job = schedule(daemon, "mixed", payload='{"count": 10, "bad": true}')
    ended = daemon.wait_job(job, {"SUCCESSFUL", "FAILED"}, timeout=60)
    assert ended["status"] == "SUCCESSFUL" and ended["errors"] == 2, ended
    assert ended["stats"]["scrapy-do/items_dropped"] == 2 and ended["stats"]["item_dropped_count"] == 1
    _, _, body = fetch(daemon, f"/get-items/{job}.jl")
    assert [json.loads(line) for line in body.splitlines()] == expected(10)


def test_errors_show_and_fail_on_errors_fails_the_run(daemon):
    job = schedule(daemon, "erring")
    strict = schedule(daemon, "erring", **{"fail-on-errors": "on"})
    ended = daemon.wait_job(job, {"SUCCESSFUL", "FAILED"}, timeout=60)
    assert (ended["status"], ended["exit-code"], ended["errors"], ended["reason"]) == ("SUCCESSFUL", 0, 2, None)
    assert ended["stats"]["spider_exceptions/ValueError"] == 1
    ended = daemon.wait_job(strict, {"SUCCESSFUL", "FAILED"}, timeout=60)
    assert (ended["status"], ended["exit-code"], ended["reason"], ended["fail-on-errors"]) == (
        "FAILED", 0, "errors", True)


def test_following_a_running_jobs_items_ends_with_the_job(daemon):
    job = schedule(daemon, "slow", payload='{"pages": 30}')
    daemon.wait_job(job, {"RUNNING"}, timeout=30)
    started = time.monotonic()
    code, headers, body = fetch(daemon, f"/get-items/{job}.jl", timeout=60)
    assert code == 200 and headers.get("x-scrapy-do-following") == "yes"
    assert time.monotonic() - started > 1  # it waited for the items as they came
    assert [json.loads(line)["body"] for line in body.splitlines()] == [f"page{i}" for i in range(30)]
    assert daemon.job(job)["status"] == "SUCCESSFUL"


def test_unknown_jobs_and_names_are_json_404s(daemon):
    for path in ("/get-items/6c3e0a5e-0000-4000-8000-000000000000.jl",
                 "/get-items/6c3e0a5e-0000-4000-8000-000000000000.csv", "/get-items/nope.jl",
                 "/get-items/../etc/passwd.jl"):
        code, headers, body = fetch(daemon, path)
        assert code == 404 and json.loads(body)["status"] == "error", path


def test_forged_and_late_item_batches_are_refused_and_change_nothing(daemon):
    job = schedule(daemon, "quick")
    daemon.wait_job(job, {"SUCCESSFUL"}, timeout=60)
    _, _, before = fetch(daemon, f"/get-items/{job}.jl")
    forged = urllib.request.Request(f"{daemon.url}/report/{job}/items.jl?first=1", method="POST",
                                    data=b'{"forged": true}\n',
                                    headers={"Content-Type": "application/x-ndjson", "Authorization": "Bearer x"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(forged, timeout=10)
    assert refused.value.code == 403
    assert fetch(daemon, f"/get-items/{job}.jl")[2] == before == b'{"body":"hello"}\n'


def _whole_lines(path):
    data = path.read_bytes()
    assert data and data.endswith(b"\n")
    assert all(isinstance(json.loads(line), dict) for line in data.splitlines())
    return data.count(b"\n")


def _crawl_pid(d, spider):
    import psutil

    for child in psutil.Process(d.proc.pid).children(recursive=True):
        if spider in " ".join(child.cmdline()).split():  # a warm crawl shows one string (setproctitle)
            return child.pid
    raise AssertionError(f"no {spider} crawl among the daemon's children")


def test_a_crawl_killed_mid_write_or_at_its_time_limit_leaves_whole_lines(daemon):
    log_dir = daemon.workdir / "projects" / "log-dir"
    killed = schedule(daemon, "bulk", payload='{"count": 1000000}')
    limited = schedule(daemon, "bulk", payload='{"count": 1000000}', timeout="4")
    daemon.wait_job(killed, {"RUNNING"}, timeout=30)
    path = log_dir / f"{killed}.jl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and path.stat().st_size < 1 << 20:
        time.sleep(0.1)
    os.kill(_crawl_pid(daemon, "bulk"), signal.SIGKILL)
    ended = daemon.wait_job(killed, {"FAILED"}, timeout=30)
    assert ended["reason"] == "signal 9"
    assert _whole_lines(path) > 1000
    ended = daemon.wait_job(limited, {"FAILED", "SUCCESSFUL"}, timeout=60)
    assert ended["reason"] == "timeout"
    assert _whole_lines(log_dir / f"{limited}.jl") > 1000


def test_a_daemon_that_stops_for_a_while_misses_no_item(daemon):
    """The daemon frozen (SIGSTOP) for 7 s while a crawl runs, longer than the reporter waits for an answer:
    the crawl goes on, sends again what got no answer, and each item is kept once."""
    job = schedule(daemon, "slow", payload='{"pages": 40}')
    daemon.wait_job(job, {"RUNNING"}, timeout=30)
    time.sleep(1)
    daemon.proc.send_signal(signal.SIGSTOP)
    try:
        time.sleep(7)
    finally:
        daemon.proc.send_signal(signal.SIGCONT)
    ended = daemon.wait_job(job, {"SUCCESSFUL", "FAILED"}, timeout=60)
    assert ended["status"] == "SUCCESSFUL" and ended["stats"]["item_scraped_count"] == 40, ended
    _, _, body = fetch(daemon, f"/get-items/{job}.jl")
    assert [json.loads(line)["body"] for line in body.splitlines()] == [f"page{i}" for i in range(40)]


def test_max_items_size_keeps_the_head_and_keep_items_off_keeps_none(tmp_path):
    capped = start(tmp_path / "capped", "max-items-size = 1K\n")
    try:
        job = schedule(capped, "mixed", payload='{"count": 100}')
        ended = capped.wait_job(job, {"SUCCESSFUL", "FAILED"}, timeout=60)
        assert ended["status"] == "SUCCESSFUL" and ended["stats"]["item_scraped_count"] == 100, ended
        assert ended["reason"] == "items capped at max-items-size (1024 bytes)"
        _, _, body = fetch(capped, f"/get-items/{job}.jl")
        assert 0 < len(body) <= 1024 and body.endswith(b"\n")
        assert [json.loads(line) for line in body.splitlines()] == expected(100)[:body.count(b"\n")]
    finally:
        capped.stop()
    off = start(tmp_path / "off", "keep-items = off\n")
    try:
        job = schedule(off, "mixed", payload='{"count": 5}')
        ended = off.wait_job(job, {"SUCCESSFUL", "FAILED"}, timeout=60)
        assert ended["stats"]["item_scraped_count"] == 5 and ended["reason"] is None, ended
        code, _, body = fetch(off, f"/get-items/{job}.jl")
        assert code == 404 and "keep-items = off" in json.loads(body)["msg"]
        assert not (off.workdir / "projects" / "log-dir" / f"{job}.jl").exists()
    finally:
        off.stop()
