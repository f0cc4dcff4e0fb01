"""Warm crawl starts (scrapy_do/launchers/warm.py): real warm parents on a copy of the offline project, real
crawls forked from them; no mocks."""

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from scrapy_do.domain.options import RunOptions
from scrapy_do.launchers.local import crawl_arguments, crawl_environment
from scrapy_do.launchers.warm import NotWarm, WarmParent, parent_environment, smaps_rollup
from tests.helpers import offline_copy

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl, /proc and SCM_RIGHTS")]

#: A spider the copies add: prints what a fork could wrongly share (random state, pid) and the crawl's cwd.
EXTRA_SPIDER = '''
import json, os, random
import scrapy


class ForkSpider(scrapy.Spider):
    name = "fork"
    start_urls = ["data:,fork"]

    def parse(self, response):
        print(json.dumps({"random": random.getrandbits(64), "urandom": os.urandom(8).hex(), "pid": os.getpid(),
                          "pgid": os.getpgid(0), "sid": os.getsid(0), "cwd": os.getcwd(),
                          "stdin": os.read(0, 10).decode(), "env": sorted(os.environ)}), flush=True)
        yield {"ok": True}
'''


def project_copy(root, extra=None):
    return offline_copy(root, spiders={"fork": EXTRA_SPIDER, "extra": extra or None})


def start_parent(tree, tmp):
    with open(tmp / "parent.err", "ab") as err:
        return WarmParent.start(parent_environment(os.environ, tree), stderr=err, timeout=30)


@pytest.fixture(scope="module")
def warm(tmp_path_factory):
    root = tmp_path_factory.mktemp("warm")
    tree = project_copy(root)
    parent = start_parent(tree, root)
    yield parent, tree, root
    parent.close()


class Crawl:
    """A crawl requested from `parent`, with its out/err pipes read to the end by `finish`."""

    def __init__(self, parent, tree, job_id, spider, payload="{}", env=None):
        self.parent = parent
        self.out_r, out_w = os.pipe()
        self.err_r, err_w = os.pipe()
        environment = crawl_environment(os.environ, {"SCRAPY_DO_CWD": str(tree), **(env or {})})
        try:
            self.crawl = parent.spawn(job_id, spider, crawl_arguments(RunOptions(spider=spider, payload=payload)),
                                      environment, out_w, err_w)
        finally:
            os.close(out_w)
            os.close(err_w)
        self.job_id = job_id

    def finish(self, timeout=20):
        result = self.parent.wait(self.job_id, timeout)
        assert result.ended, f"{self.job_id} still running after {timeout} s"
        self.out, self.err = (read_all(fd) for fd in (self.out_r, self.err_r))
        return result


def read_all(fd):
    chunks = []
    os.set_blocking(fd, False)
    try:
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


def test_parent_is_warm_single_threaded_without_reactor_and_reports_its_memory(warm):
    parent, _, _ = warm
    ready = parent.ready
    assert ready["pid"] == parent.pid and ready["rss_kib"] > 10_000 and ready["modules"] > 500
    proc = psutil.Process(parent.pid)
    assert proc.num_threads() == 1
    assert os.getsid(parent.pid) == parent.pid  # its own session, apart from the daemon's
    assert smaps_rollup(parent.pid)["Rss"] > 10_000
    assert parent.stats()["running"] == {}


def test_quick_crawl_writes_scrapy_log_and_items_to_the_given_pipes_and_exits_0(warm, tmp_path):
    parent, tree, _ = warm
    data = tmp_path / "data"
    data.mkdir()
    run = Crawl(parent, tree, "q1", "quick", payload='{"a": 1}',
                env={"SPIDER_DATA_DIR": str(data), "SCRAPY_DO_DATA": str(data)})
    result = run.finish()
    assert result.status == 0 and result.pid != parent.pid
    printed = json.loads(run.out.strip().splitlines()[-1])
    assert printed == {"payload": {"a": 1}, "data_dir": str(data), "body": "hello"}
    assert "[scrapy.utils.log] INFO: Scrapy" in run.err and "started (bot: offline)" in run.err
    assert "[scrapy.core.engine] INFO: Spider opened" in run.err
    assert "'item_scraped_count': 1" in run.err and "Spider closed (finished)" in run.err
    assert (data / "scrapy.cfg").read_bytes() == (tree / "scrapy.cfg").read_bytes()  # ran in its data dir
    assert result.cpu is not None and result.cpu < 1.0


def test_a_warm_crawl_logs_the_versions_a_cold_one_does(warm, tmp_path):
    """The versions and platform Scrapy logs at start are asked once in the parent (remember_installed), and
    are what a fresh interpreter finds."""
    parent, tree, _ = warm
    fresh = subprocess.run([sys.executable, "-c", "import json; from scrapy.utils.versions import get_versions; from scrapy.settings."
                            "default_settings import LOG_VERSIONS; print(json.dumps(get_versions(LOG_VERSIONS)))"], cwd=tree, capture_output=True, text=True,
                           check=True)
    run = Crawl(parent, tree, "v1", "quick", env={"SPIDER_DATA_DIR": str(tmp_path), "SCRAPY_DO_DATA": str(tmp_path)})
    assert run.finish().status == 0
    for name, value in json.loads(fresh.stdout):
        assert f"{name!r}: {value!r}" in run.err, name


def test_broken_spider_exits_non_zero_with_its_traceback(warm):
    parent, tree, _ = warm
    run = Crawl(parent, tree, "b1", "broken")
    result = run.finish()
    assert result.status not in (0, None)
    assert "broken on purpose" in run.err


def test_forked_crawls_lead_their_own_session_and_share_no_random_state_nor_the_channel(warm):
    parent, tree, _ = warm
    runs = [Crawl(parent, tree, f"f{i}", "fork", env={"ONLY_THIS": str(i)}) for i in range(2)]
    seen = []
    for run in runs:
        assert run.finish().status == 0
        seen.append(json.loads(run.out.strip().splitlines()[-1]))
    a, b = seen
    assert a["random"] != b["random"] and a["urandom"] != b["urandom"]
    for run, printed in zip(runs, seen):
        assert printed["pid"] == printed["pgid"] == printed["sid"] == run.crawl.pid
        assert printed["cwd"] == str(tree) and printed["stdin"] == ""  # /dev/null, as a cold crawl's
        assert "ONLY_THIS" in printed["env"] and "SCRAPY_DO_CRAWL_USER" not in printed["env"]
    assert parent.stats()["running"] == {}


def test_two_crawls_at_once_from_one_parent(warm):
    parent, tree, _ = warm
    runs = [Crawl(parent, tree, f"s{i}", "slow", payload='{"pages": 5}') for i in range(2)]
    pids = {run.crawl.pid for run in runs}
    assert len(pids) == 2
    running = parent.stats()["running"]
    assert set(running) == {"s0", "s1"} and set(running.values()) == pids  # both forked before either ended
    for run in runs:
        assert run.finish().status == 0
        assert "'item_scraped_count': 5" in run.err


def test_killing_the_parent_ends_its_running_crawl_and_the_client_sees_it_gone(tmp_path):
    tree = project_copy(tmp_path)
    parent = start_parent(tree, tmp_path)
    try:
        run = Crawl(parent, tree, "slow", "slow")  # a minute of pages
        line = b""
        deadline = time.monotonic() + 15
        while b"slow spider started" not in line and time.monotonic() < deadline:
            line += os.read(run.out_r, 1024)
        assert b"slow spider started" in line
        crawl = psutil.Process(run.crawl.pid)
        parent.kill(signal.SIGKILL)
        result = parent.wait("slow", timeout=10)
        assert result.ended and result.status is None and not parent.alive
        gone = psutil.wait_procs([crawl], timeout=15)[0]  # SIGTERM from its parent's death: Scrapy stops
        if not gone:
            assert crawl.status() == psutil.STATUS_ZOMBIE  # ended; only a reaper-less init leaves it
        with pytest.raises(NotWarm):
            Crawl(parent, tree, "late", "quick")
    finally:
        parent.close()


def test_project_starting_a_thread_at_import_is_refused_as_warm(tmp_path):
    tree = project_copy(tmp_path, extra="import threading, time\n"
                                         "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n")
    with pytest.raises(NotWarm, match="threads"):
        start_parent(tree, tmp_path)


def test_project_opening_a_socket_at_import_is_refused_as_warm(tmp_path):
    tree = project_copy(tmp_path, extra="import socket\nCONNECTION = socket.socket()\n")
    with pytest.raises(NotWarm, match="socket"):
        start_parent(tree, tmp_path)


def test_project_that_does_not_load_is_refused_with_the_reason(tmp_path):
    tree = project_copy(tmp_path, extra="raise ImportError('no such thing')\n")
    with pytest.raises(NotWarm, match="no such thing"):
        start_parent(tree, tmp_path)


def test_crawl_whose_interpreter_environment_differs_is_refused_so_it_starts_cold(warm):
    parent, tree, _ = warm
    with pytest.raises(NotWarm, match="PYTHONHASHSEED"):
        Crawl(parent, tree, "h1", "quick", env={"PYTHONHASHSEED": "123"})
    assert parent.alive and parent.stats()["running"] == {}
