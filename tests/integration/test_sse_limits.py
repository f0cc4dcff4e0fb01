"""/events against the real daemon: clients that never read cannot grow it without bound, and past the cap get 503.

The clients are raw sockets with a small receive buffer that send `GET /events` and then never read
(they only peek at the status line), while the test schedules and cancels jobs as fast as the API
answers; each of those is a `job` event for every stream (and a coalesced `status`). The jobs carry a
16 KB description, so that the kernel's socket buffers fill within a second or two and what follows
has to be buffered (or dropped) by the daemon itself.
"""

import http.client
import json
import selectors
import socket
import time
import urllib.parse

import psutil
import pytest

from tests.helpers import offline_zip
from tests.integration.daemonproc import DaemonProcess

pytestmark = pytest.mark.integration

CLIENTS = 200
CAP = 64  # the default of [web] max-event-clients
MIB = 1 << 20
RSS_LIMIT = 150 * MIB
CHURN_SECONDS = 10
DESCRIPTION = "x" * 16000


def open_stream(port):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small window: the daemon's side fills up after a few KiB instead of a few MiB of kernel buffers.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
    return sock


def status_lines(socks, timeout=15):
    """{socket: its status line} once every socket has one, peeked (a stream's data stays unread)."""
    lines = {}
    selector = selectors.DefaultSelector()
    for sock in socks:
        selector.register(sock, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    while len(lines) < len(socks) and time.monotonic() < deadline:
        for key, _ in selector.select(0.5):
            sock = key.fileobj
            head = sock.recv(64, socket.MSG_PEEK)
            if b"\r\n" in head or not head:
                lines[sock] = head.split(b"\r\n", 1)[0]
                selector.unregister(sock)
    selector.close()
    assert len(lines) == len(socks), f"only {len(lines)} of {len(socks)} requests were answered"
    return lines


def read_refusal(sock):
    """Headers (lower-case names) and the JSON body of a non-streaming answer (chunked or not)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, rest = data.partition(b"\r\n\r\n")
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if headers.get(b"transfer-encoding") == b"chunked":
        while not rest.endswith(b"0\r\n\r\n"):
            rest += sock.recv(4096)
        body, raw = b"", rest
        while True:
            size, _, raw = raw.partition(b"\r\n")
            if int(size, 16) == 0:
                break
            body, raw = body + raw[: int(size, 16)], raw[int(size, 16) + 2:]
    else:
        length = int(headers[b"content-length"])
        while len(rest) < length:
            rest += sock.recv(4096)
        body = rest[:length]
    return headers, json.loads(body)


def daemon_connections(pid, port):
    """How many established connections the daemon has on its API port."""
    return sum(1 for c in psutil.Process(pid).net_connections("tcp")
               if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port)


class Api:
    """One keep-alive connection to the daemon for the schedule/cancel loop."""

    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def post(self, path, **fields):
        self.conn.request("POST", path, urllib.parse.urlencode(fields),
                          {"Content-Type": "application/x-www-form-urlencoded"})
        response = self.conn.getresponse()
        return response.status, json.loads(response.read())

    def get(self, path):
        self.conn.request("GET", path)
        response = self.conn.getresponse()
        return response.status, json.loads(response.read())


def test_never_reading_event_clients_leave_the_daemon_bounded(tmp_path):
    """With 200 /events clients that never read, those past 64 get 503 JSON with Retry-After, and schedule/cancel
    events get the 64 dropped while the daemon stays under 150 MiB and status.json answers."""
    daemon = DaemonProcess(tmp_path).start()
    socks = []
    try:
        code, body = daemon.request("/push-project.json", {"archive": ("offline.zip", offline_zip())})
        assert code == 200, body
        port = int(daemon.url.rsplit(":", 1)[1])
        rss = psutil.Process(daemon.proc.pid).memory_info
        baseline = rss().rss

        socks = [open_stream(port) for _ in range(CLIENTS)]
        lines = status_lines(socks)
        streams = [s for s in socks if lines[s].startswith(b"HTTP/1.1 200")]
        refused = [s for s in socks if lines[s].startswith(b"HTTP/1.1 503")]
        assert (len(streams), len(refused)) == (CAP, CLIENTS - CAP), set(lines.values())
        for sock in refused:
            headers, answer = read_refusal(sock)
            assert headers[b"content-type"] == b"application/json"
            assert int(headers[b"retry-after"]) > 0
            assert answer["status"] == "error" and answer["msg"]
            sock.close()

        api = Api(port)
        peak, cycles = baseline, 0
        deadline = time.monotonic() + CHURN_SECONDS
        while time.monotonic() < deadline and peak < RSS_LIMIT:
            code, body = api.post("/schedule-job.json", project="offline", spider="quick",
                                  when="every 10 minutes", description=DESCRIPTION)
            assert code == 200, body
            code, body = api.post("/cancel-job.json", id=body["identifier"])
            assert code == 200, body
            cycles += 1
            if cycles % 5 == 0:
                peak = max(peak, rss().rss)
        peak = max(peak, rss().rss)
        started = time.monotonic()
        code, body = api.get("/status.json")
        answered = time.monotonic() - started
        print(f"\n{cycles} schedule/cancel cycles; RSS {baseline / MIB:.0f} MiB before the clients, "
              f"peak {peak / MIB:.0f} MiB; status.json in {answered * 1000:.0f} ms")
        assert peak < RSS_LIMIT, f"the daemon grew to {peak / MIB:.0f} MiB after {cycles} cycles"
        assert cycles > 200, "the API answered too slowly to make events"
        assert (code, body["status"]) == (200, "ok") and answered < 5

        # The streams that fell behind were cut off (only the API's own connection is left), and
        # their slots are free again.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and daemon_connections(daemon.proc.pid, port) > 1:
            time.sleep(0.1)
        assert daemon_connections(daemon.proc.pid, port) == 1
        fresh = open_stream(port)
        socks.append(fresh)
        assert status_lines([fresh])[fresh].startswith(b"HTTP/1.1 200")
        assert "Traceback" not in daemon.log.read_text()
    finally:
        for sock in socks:
            sock.close()
        daemon.stop()
