"""Big pushes against a real `scrapy-do` process: the reactor stays responsive, memory stays bounded, at most
max-uploads bodies are received at once, and with auth on an unauthenticated body is refused from its headers.

Each test pushes an archive of about 60 MiB: the offline fixture plus one large stored file. Figures are printed
(run with -s); the assertions use generous bounds, since they check behaviour, not speed.
"""

import functools
import json
import os
import select
import socket
import threading
import time
import urllib.parse

import psutil
import pytest
import requests
from requests.auth import HTTPDigestAuth

from tests.helpers import OFFLINE, multipart, zip_tree
from tests.integration.daemonproc import DaemonProcess

pytestmark = pytest.mark.integration

BIG = 60 << 20
CONF = "[scrapy-do]\njob-slots = 1\n[web]\ninterfaces = 127.0.0.1:0\n"


@functools.cache
def big_archive():
    """A valid push of about 60 MiB: the offline project plus a stored (uncompressed) random file."""
    return zip_tree(OFFLINE, stored={"data/big.bin": os.urandom(BIG)})


@functools.cache
def big_body():
    return multipart({"archive": ("offline.zip", big_archive())})


def address(daemon):
    host, port = urllib.parse.urlsplit(daemon.url).netloc.split(":")
    return host, int(port)


def head(daemon, length, ctype, extra=""):
    host, port = address(daemon)
    return (f"POST /push-project.json HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {length}\r\n{extra}\r\n").encode()


def read_response(sock, timeout=60):
    """(status, headers dict, JSON body) of one response read from `sock` (Content-Length framed)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a response: {data[:200]!r}")
        data += chunk
    top, _, rest = data.partition(b"\r\n\r\n")
    lines = top.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", 0))
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        rest += chunk
    return int(lines[0].split()[1]), headers, json.loads(rest[:length] or b"null")


class Sampler:
    """Samples status.json latency (from its own connections) and the daemon's RSS in a thread."""

    def __init__(self, daemon, period=0.02):
        self.daemon, self.period = daemon, period
        self.latencies, self.rss = [], []
        self._stop = threading.Event()
        self._proc = psutil.Process(daemon.proc.pid)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(30)

    def _run(self):
        while not self._stop.is_set():
            self.rss.append(self._proc.memory_info().rss)
            started = time.monotonic()
            try:
                with requests.get(self.daemon.url + "/status.json", timeout=30) as r:
                    assert r.status_code in (200, 401)
            except requests.RequestException:
                pass
            self.latencies.append(time.monotonic() - started)
            self._stop.wait(self.period)


def mib(n):
    return n / (1 << 20)


@pytest.fixture
def daemon(tmp_path):
    d = DaemonProcess(tmp_path, CONF).start()
    yield d
    d.stop()


def test_a_60_mib_push_leaves_status_responsive(daemon):
    """While a 60 MiB archive is received, parsed, unpacked and kept, status.json keeps answering quickly and the
    daemon's RSS grows by less than 40 MiB."""
    body, ctype = big_body()
    # Warm up (imports, the first push) with the small fixture.
    assert daemon.request("/push-project.json", {"archive": ("offline.zip", zip_small())})[0] == 200
    time.sleep(1.5)  # let the RSS sample of status.json settle
    with Sampler(daemon) as sampler:
        baseline = sampler._proc.memory_info().rss
        started = time.monotonic()
        r = requests.post(daemon.url + "/push-project.json", data=body, headers={"Content-Type": ctype}, timeout=120)
        took = time.monotonic() - started
        time.sleep(0.2)
    assert r.status_code == 200, r.text[:300]
    assert r.json()["spiders"] == ["broken", "bulk", "erring", "mixed", "quick", "slow"]
    worst = max(sampler.latencies)
    peak = max(sampler.rss)
    print(f"\n60 MiB push took {took:.2f} s; status.json latency max {worst * 1000:.0f} ms, "
          f"median {sorted(sampler.latencies)[len(sampler.latencies) // 2] * 1000:.0f} ms "
          f"over {len(sampler.latencies)} requests; RSS {mib(baseline):.0f} MiB, peak {mib(peak):.0f} MiB")
    assert worst < 2.0
    assert peak - baseline < 40 << 20
    kept = daemon.workdir / "projects" / "archives" / "offline.zip"
    assert kept.stat().st_size == len(big_archive())


@functools.cache
def zip_small():
    from tests.helpers import offline_zip
    return offline_zip()


def test_parallel_pushes_are_bounded_in_number_and_memory(daemon):
    """Of four 60 MiB pushes whose headers arrive together, max-uploads (2) are received and the others get 503
    with Retry-After before sending their bodies; the daemon's RSS grows by less than 80 MiB."""
    body, ctype = big_body()
    assert daemon.request("/push-project.json", {"archive": ("offline.zip", zip_small())})[0] == 200
    time.sleep(1.5)  # let the RSS sample of status.json settle
    socks = [socket.create_connection(address(daemon), timeout=30) for _ in range(4)]
    results = {}
    with Sampler(daemon, period=0.05) as sampler:
        baseline = sampler._proc.memory_info().rss
        for s in socks:
            s.sendall(head(daemon, len(body), ctype))
        # Two are refused as soon as their headers are in; the others wait for their bodies.
        refused = []
        deadline = time.monotonic() + 10
        while len(refused) < 2 and time.monotonic() < deadline:
            readable, _, _ = select.select([s for s in socks if s not in refused], [], [], 0.1)
            refused += readable
        accepted = [s for s in socks if s not in refused]
        for s in refused:
            results[s] = read_response(s)

        def send(sock):
            try:
                sock.sendall(body)
                results[sock] = read_response(sock, timeout=120)
            except OSError as e:  # reported by the assertion below
                results[sock] = (repr(e), {}, None)

        threads = [threading.Thread(target=send, args=(s,)) for s in accepted]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    for s in socks:
        s.close()
    peak = max(sampler.rss)
    print(f"\n4 parallel 60 MiB pushes: RSS {mib(baseline):.0f} MiB before, peak {mib(peak):.0f} MiB "
          f"(+{mib(peak - baseline):.0f}); status.json latency max {max(sampler.latencies) * 1000:.0f} ms")
    assert len(refused) == 2 and len(accepted) == 2
    for s in refused:
        code, headers, answer = results[s]
        assert code == 503 and int(headers["retry-after"]) > 0, (code, headers)
        assert answer["status"] == "error" and "max-uploads" in answer["msg"]
    for s in accepted:
        assert results[s][0] == 200, results[s]
    assert peak - baseline < 80 << 20
    assert daemon.get("/status.json")[0] == 200


@pytest.fixture
def auth_daemon(tmp_path):
    (tmp_path / "auth.db").write_text("alice:s3cret\n")
    d = DaemonProcess(tmp_path, CONF + "auth = on\nauth-db = auth.db\n").start()
    yield d
    d.stop()


def test_unauthenticated_push_gets_401_before_its_body_is_sent(auth_daemon):
    """With auth on, a 60 MiB push without credentials gets its 401 (with the Digest challenge) right after its
    headers, while the client is still sending; the body is discarded, not buffered."""
    body, ctype = big_body()
    proc = psutil.Process(auth_daemon.proc.pid)
    baseline = proc.memory_info().rss
    s = socket.create_connection(address(auth_daemon), timeout=30)
    started = time.monotonic()
    s.sendall(head(auth_daemon, len(body), ctype))
    sent, answered_at, got = 0, None, b""
    s.setblocking(False)
    view = memoryview(body)
    while sent < len(body):
        _, writable, _ = select.select([], [s], [], 5)
        if writable:
            try:
                sent += s.send(view[sent:sent + (256 << 10)])
            except BlockingIOError:
                pass
        if answered_at is None and select.select([s], [], [], 0)[0]:
            got += s.recv(65536)
            answered_at = sent
        time.sleep(0.001)  # a client slower than the loopback
    s.setblocking(True)
    code, headers, answer = read_response(FakeSock(got, s))
    took = time.monotonic() - started
    rss = proc.memory_info().rss
    s.close()
    print(f"\nunauthenticated 60 MiB push: 401 after {answered_at} of {len(body)} body bytes sent; whole send "
          f"{took:.2f} s; RSS {mib(baseline):.0f} -> {mib(rss):.0f} MiB")
    assert answered_at is not None and answered_at < len(body) // 4
    assert code == 401 and headers["www-authenticate"].startswith("Digest ")
    assert answer == {"status": "error", "msg": "authentication required"}
    assert rss - baseline < 40 << 20


def test_unauthenticated_push_with_expect_continue_is_refused_without_100(auth_daemon):
    """With Expect: 100-continue, an unauthenticated push gets 401 instead of 100 Continue and sends no body."""
    body, ctype = big_body()
    s = socket.create_connection(address(auth_daemon), timeout=10)
    s.sendall(head(auth_daemon, len(body), ctype, "Expect: 100-continue\r\n"))
    code, headers, answer = read_response(s, timeout=10)
    s.close()
    assert code == 401 and "www-authenticate" in headers and headers["connection"] == "close"


def test_digest_push_with_a_body_still_works(auth_daemon):
    """A Digest client that first sends its body unauthenticated (as requests does) is challenged and then pushes."""
    r = requests.post(auth_daemon.url + "/push-project.json", files={"archive": ("offline.zip", zip_small())},
                      auth=HTTPDigestAuth("alice", "s3cret"), timeout=60)
    assert r.status_code == 200, r.text[:300]
    assert r.json()["name"] == "offline"
    r = requests.post(auth_daemon.url + "/push-project.json", files={"archive": ("offline.zip", zip_small())},
                      auth=HTTPDigestAuth("alice", "wrong"), timeout=60)
    assert r.status_code == 401


class FakeSock:
    """Bytes already received, then the rest of a real socket."""

    def __init__(self, data, sock):
        self.data, self.sock = data, sock

    def settimeout(self, t):
        self.sock.settimeout(t)

    def recv(self, n):
        if self.data:
            data, self.data = self.data, b""
            return data
        return self.sock.recv(n)
