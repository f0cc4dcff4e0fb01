"""Connection exhaustion against a real `scrapy-do` process: slow headers are cut off, and a flood of
connections is held below the open-file limit while the API and crawls keep working.

Every loop here is bounded; the clients are raw sockets on 127.0.0.1.
"""

import errno
import http.client
import json
import re
import resource
import select
import socket
import time
import urllib.parse

import pytest

from tests.helpers import offline_zip
from tests.integration.daemonproc import DaemonProcess

pytestmark = pytest.mark.integration

CAP_LINE = re.compile(r"serving at most (\d+) connections at once")


def address(daemon):
    host, port = urllib.parse.urlsplit(daemon.url).netloc.split(":")
    return host, int(port)


def timed_status(daemon, timeout=10):
    """(seconds, status code, JSON body, headers) of GET /status.json on a fresh connection."""
    started = time.monotonic()
    conn = http.client.HTTPConnection(*address(daemon), timeout=timeout)
    try:
        conn.request("GET", "/status.json")
        resp = conn.getresponse()
        body = json.loads(resp.read())
        return time.monotonic() - started, resp.status, body, dict(resp.getheaders())
    finally:
        conn.close()


def test_slow_header_clients_are_dropped_while_status_answers(tmp_path):
    """Clients that send their headers a byte at a time get 408 and are closed after header-timeout, and
    status.json keeps answering quickly meanwhile."""
    daemon = DaemonProcess(tmp_path, "[scrapy-do]\njob-slots = 1\n[web]\ninterfaces = 127.0.0.1:0\n"
                                     "header-timeout = 1\n").start()
    try:
        clients, opened = [], time.monotonic()
        for _ in range(100):
            s = socket.create_connection(address(daemon), timeout=5)
            s.sendall(b"GET /status.json HTTP/1.1\r\n")
            clients.append(s)
        closed, answers, latencies = {}, {}, []
        deadline = opened + 8
        while len(closed) < len(clients) and time.monotonic() < deadline:
            for s in clients:  # one more header byte from each slow client still open
                if s not in closed:
                    try:
                        s.send(b"X")
                    except OSError:
                        pass
            readable, _, _ = select.select([s for s in clients if s not in closed], [], [], 0.25)
            for s in readable:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                answers[s] = answers.get(s, b"") + data
                if not data:
                    closed[s] = time.monotonic() - opened
            latencies.append(timed_status(daemon)[0])
        lasted = sorted(closed.values()) or [float("inf")]
        print(f"\n100 slow-header clients: {len(closed)} closed, after {lasted[0]:.2f}..{lasted[-1]:.2f} s; "
              f"status.json latency max {max(latencies) * 1000:.0f} ms over {len(latencies)} requests")
        assert len(closed) == len(clients), f"{len(clients) - len(closed)} slow clients still open after 8 s"
        assert all(answers[s].startswith(b"HTTP/1.1 408 ") for s in clients), answers[clients[0]][:200]
        assert b"header-timeout" in answers[clients[0]]
        assert lasted[-1] < 5
        assert max(latencies) < 2
        for s in clients:
            s.close()
        # A client that sends its request in time is served as before.
        assert timed_status(daemon)[1] == 200
    finally:
        daemon.stop()


def _limit_open_files():
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, min(hard, 256) if hard != resource.RLIM_INFINITY else 256))


def test_connection_flood_stays_below_the_open_file_limit(tmp_path):
    """Under a 256-descriptor limit, 300 idle connections get at most the logged cap served, the rest a quick 503,
    a fresh status.json a fast 503, and a job scheduled over a kept connection still runs."""
    daemon = DaemonProcess(tmp_path, "[scrapy-do]\njob-slots = 1\n[web]\ninterfaces = 127.0.0.1:0\n"
                                     "header-timeout = 30\n", preexec_fn=_limit_open_files).start()
    flood = []
    try:
        cap = int(CAP_LINE.search(daemon.log.read_text()).group(1))
        print(f"\nopen-file limit 256: the daemon serves at most {cap} connections")
        assert 8 <= cap <= 128
        assert daemon.request("/push-project.json", {"archive": ("offline.zip", offline_zip())})[0] == 200
        kept = http.client.HTTPConnection(*address(daemon), timeout=10)
        kept.request("GET", "/status.json")
        assert kept.getresponse().read()

        started = time.monotonic()
        held, refused = [], 0
        for _ in range(300):
            try:
                flood.append(socket.create_connection(address(daemon), timeout=5))
            except ConnectionResetError:
                # A socket with a timeout connects without blocking and reads the outcome afterwards: when the
                # daemon has already refused (and reset) the accepted connection by then, connect says so.
                refused += 1
        time.sleep(1.5)  # let every refused connection get its answer (or its reset)
        for s in flood:
            s.setblocking(False)
            try:
                data = s.recv(65536)
            except BlockingIOError:
                held.append(s)  # served: waiting for our request
                continue
            except OSError as e:
                assert e.errno in (errno.ECONNRESET, errno.EPIPE), e
                data = b""
            assert data == b"" or data.startswith(b"HTTP/1.1 503 "), data[:200]
            refused += 1
            s.close()  # what a client does with a 503
        print(f"300 connections opened in {time.monotonic() - started:.2f} s: {len(held)} held, {refused} "
              "refused")
        assert len(held) <= cap - 1 and refused >= 300 - cap

        # Every slot is taken: a fresh client hears so at once instead of hanging.
        elapsed, code, body, headers = timed_status(daemon)
        print(f"fresh status.json at the cap: {code} in {elapsed * 1000:.0f} ms")
        assert (code, body["status"]) == (503, "error") and "max-connections" in body["msg"]
        assert int(headers["Retry-After"]) > 0 and elapsed < 2

        # The kept connection is served, and a crawl finds the descriptors it needs.
        kept.request("POST", "/schedule-job.json", body=urllib.parse.urlencode(
            {"project": "offline", "spider": "quick", "when": "now"}),
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        resp = kept.getresponse()
        identifier = json.loads(resp.read())["identifier"]
        assert resp.status == 200
        deadline, status = time.monotonic() + 30, None
        while status not in ("SUCCESSFUL", "FAILED") and time.monotonic() < deadline:
            kept.request("GET", f"/list-jobs.json?id={identifier}")
            status = json.loads(kept.getresponse().read())["jobs"][0]["status"]
            time.sleep(0.2)
        assert status == "SUCCESSFUL"

        for s in held:
            s.close()
        flood = []
        deadline = time.monotonic() + 5
        while timed_status(daemon)[1] != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert timed_status(daemon)[1] == 200
        kept.close()
        log = daemon.log.read_text() + daemon.err.read_text()
        assert "Too many open files" not in log and "EMFILE" not in log
    finally:
        for s in flood:
            s.close()
        daemon.stop()
