"""The dashboard's Webhooks card against the real daemon and a real receiver on loopback: the hooks are listed,
a delivery the receiver refuses shows pending with its last error, and once the receiver answers 2xx it shows
delivered, live, without reloading the page. What a receiver sends (a status line of markup, which the daemon
words into the delivery's error) is shown as text, never as HTML."""

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

from tests.e2e.util import assert_not_reloaded, mark, wait_until
from tests.helpers import offline_zip
from tests.integration.daemonproc import DaemonProcess

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

#: What a hostile receiver answers: a status line of markup, which the daemon words into the delivery's error.
MARKUP = b"<b>x</b><img src=x onerror=window.pwned=1>"


class HostileReceiver:
    """Answers every request with a broken status line holding MARKUP, then hangs up."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    conn.sendall(b"HTTP/1.1 " + MARKUP + b"\r\n\r\n")
                except OSError:
                    pass

    def close(self):
        self.sock.close()


class Receiver:
    """A webhook receiver on 127.0.0.1: answers `code` to every POST (500 until the test says otherwise)."""

    def __init__(self):
        self.code = 500
        self.seen = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                outer.seen.append((self.headers.get("X-Scrapy-Do-Event"), outer.code))
                self.send_response(outer.code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def hostile():
    r = HostileReceiver()
    yield r
    r.close()


@pytest.fixture
def hooked(tmp_path, receiver, hostile):
    """The real daemon with two hooks: the receiver's and the hostile one's; retries from 0.5 s on."""
    d = DaemonProcess(tmp_path, "[scrapy-do]\njob-slots = 2\ncancel-grace = 5\n[web]\ninterfaces = 127.0.0.1:0\n"
                                f"[webhooks]\nhooks = http://127.0.0.1:{receiver.port}/hook\n"
                                f"  http://127.0.0.1:{hostile.port}/odd\n"
                                "first-retry = 0.5\ntimeout = 2\n").start()
    d.odd_origin = f"http://127.0.0.1:{hostile.port}/…"
    yield d
    d.stop()


def delivery(daemon, **match):
    code, body = daemon.get("/webhooks.json", limit=50)
    assert code == 200, body
    for d in body["deliveries"]:
        if all(d.get(k) == v if not callable(v) else v(d.get(k)) for k, v in match.items()):
            return d
    return None


def test_the_dashboard_shows_hooks_and_deliveries_live(page, hooked, receiver):
    page.goto(hooked.url + "/#/dashboard")
    expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "live")
    panel = page.get_by_test_id("webhooks-panel")
    mark(page)

    # The hooks, by origin (the path is the daemon's secret to keep), the odd one as the text it is.
    urls = panel.get_by_test_id("webhook-hook-url")
    expect(urls).to_have_text([f"http://127.0.0.1:{receiver.port}/…", hooked.odd_origin])
    expect(panel.get_by_test_id("webhook-hook").first.get_by_test_id("webhook-hook-event")).to_have_count(4)
    expect(panel.get_by_test_id("webhooks-deliveries-empty")).to_be_visible()

    hooked.push("offline.zip", offline_zip())
    job = hooked.schedule("offline", "quick")
    assert hooked.wait_job(job, {"SUCCESSFUL", "FAILED"}, timeout=20)["status"] == "SUCCESSFUL"
    ours = wait_until(lambda: delivery(hooked, job=job, event="job-ended", attempts=lambda n: n >= 1,
                                       url=f"http://127.0.0.1:{receiver.port}/…"), timeout=10)
    assert ours["state"] == "pending" and ours["last-error"] == "HTTP 500", ours

    # Pending with the receiver's refusal, standing out; its job links to the job's page.
    row = panel.locator(f'tr[data-delivery-id="{ours["id"]}"]')
    expect(row).to_have_attribute("data-state", "pending")
    expect(row.get_by_test_id("delivery-error")).to_have_text("HTTP 500")
    expect(row).to_have_class("wh-retrying")
    expect(row.get_by_test_id("delivery-state")).to_have_text("PENDING")
    expect(row.get_by_test_id("delivery-event")).to_have_text("job-ended")
    expect(row.get_by_test_id("delivery-job")).to_have_attribute("href", f"#/job/{job}")
    expect(row.get_by_test_id("delivery-job")).to_contain_text("quick")
    expect(panel.get_by_test_id("webhooks-pending-value")).not_to_have_text("0")
    # The push made one too, with no job.
    expect(panel.locator('tr[data-event="project-pushed"]').first).to_be_visible()

    # The hostile receiver's markup, worded into an error: the row shows the API's text as text.
    odd = wait_until(lambda: delivery(hooked, url=hooked.odd_origin,
                                      **{"last-error": lambda e: e is not None and "<img" in e}), timeout=10)
    odd_row = panel.locator(f'tr[data-delivery-id="{odd["id"]}"]')
    expect(odd_row.get_by_test_id("delivery-url")).to_have_text(hooked.odd_origin)
    expect(odd_row.get_by_test_id("delivery-error")).to_have_text(odd["last-error"])
    expect(panel.locator("b, i, img, script")).to_have_count(0)
    assert page.evaluate("window.pwned") is None

    # The receiver takes it now: the next attempt (the server's clock, no event) gets a 200; the card follows.
    receiver.code = 200
    expect(row).to_have_attribute("data-state", "delivered", timeout=20_000)
    expect(row.get_by_test_id("delivery-state")).to_have_text("DELIVERED")
    expect(row).not_to_have_class("wh-retrying")
    expect(row.get_by_test_id("delivery-next")).to_have_text("—")
    expect(panel.get_by_test_id("webhooks-delivered-value")).not_to_have_text("0")
    assert ("job-ended", 200) in receiver.seen
    assert_not_reloaded(page)


def test_without_hooks_the_card_says_how_to_configure_them(page, daemon):
    page.goto("/#/dashboard")
    none = page.get_by_test_id("webhooks-panel").get_by_test_id("webhooks-none")
    expect(none).to_contain_text("[webhooks]")
    expect(page.get_by_test_id("webhooks-deliveries")).to_have_count(0)


def test_a_delivery_given_up_stands_out_with_its_error(page, tmp_path):
    """retry-for = 0: the first refusal ends it (a closed port on loopback: connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    d = DaemonProcess(tmp_path, "[scrapy-do]\njob-slots = 1\n[web]\ninterfaces = 127.0.0.1:0\n"
                                f"[webhooks]\nhooks = http://127.0.0.1:{closed}/gone project-pushed\nretry-for = 0\n")
    d.start()
    try:
        page.goto(d.url + "/#/dashboard")
        expect(page.get_by_test_id("connection")).to_have_attribute("data-state", "live")
        panel = page.get_by_test_id("webhooks-panel")
        expect(panel.get_by_test_id("webhook-hook-event")).to_have_text(["project-pushed"])
        d.push("offline.zip", offline_zip())
        row = panel.locator('tr[data-event="project-pushed"]')
        expect(row).to_have_attribute("data-state", "failed")
        expect(row).to_have_class("wh-failed")
        expect(row.get_by_test_id("delivery-state")).to_have_text("GIVEN UP")
        expect(row.get_by_test_id("delivery-error")).to_have_text("connection refused")
        expect(row.get_by_test_id("delivery-job")).to_have_count(0)
        expect(panel.get_by_test_id("webhooks-failed-value")).to_have_text("1")
        expect(panel.get_by_test_id("webhooks-pending-value")).to_have_text("0")
    finally:
        d.stop()
