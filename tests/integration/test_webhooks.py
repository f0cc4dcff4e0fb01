"""Webhooks end to end: the real daemon, real crawls, and real receivers on loopback.

A receiver checks each delivery's signature, can fail on purpose (an HTTP status, or hanging without an
answer) and come back; the daemon is killed with SIGKILL while a delivery waits for its retry.
"""

import hashlib
import hmac
import json
import signal
import socket
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.helpers import FIXTURES, zip_tree
from tests.integration.daemonproc import DaemonProcess

pytestmark = pytest.mark.integration

SECRET = "s3cret-for-tests"


class Receiver:
    """Records every POST; answers `self.code`, or hangs while `self.hang` is set."""

    def __init__(self):
        self.seen = []
        self.code = 200
        self.hang = threading.Event()
        self.released = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.seen.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                      "data": json.loads(body)})
                if receiver.hang.is_set():
                    receiver.released.wait(10)
                    return
                self.send_response(receiver.code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()

    def wait(self, predicate, timeout=30, what="a delivery"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [s for s in list(self.seen) if predicate(s)]
            if found:
                return found
            time.sleep(0.05)
        raise AssertionError(f"no {what} arrived; seen: {[s['data'].get('event') for s in self.seen]}")


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def start(workdir, hooks, extra="", first_retry=0.3):
    conf = ("[scrapy-do]\njob-slots = 2\ncancel-grace = 2\n[web]\ninterfaces = 127.0.0.1:0\n"
            f"[webhooks]\nhooks =\n" + "".join(f"    {h}\n" for h in hooks) +
            f"secret = {SECRET}\nfirst-retry = {first_retry}\ntimeout = 1\n{extra}")
    d = DaemonProcess(workdir, conf).start()
    return d


def ended(job_id):
    return lambda s: s["data"].get("job", {}).get("identifier") == job_id


def webhooks(d, **params):
    code, body = d.get("/webhooks.json", **params)
    assert code == 200, body
    return body


def wait_state(d, job_id, state, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = [x for x in webhooks(d)["deliveries"] if x["job"] == job_id]
        if shown and all(x["state"] == state for x in shown):
            return shown
        time.sleep(0.1)
    raise AssertionError(f"deliveries of {job_id} never all {state}: {webhooks(d)}")


def test_a_push_and_a_run_end_are_delivered_signed(tmp_path, receiver):
    d = start(tmp_path, [f"{receiver.url}/all"])
    try:
        d.push("offline.zip", zip_tree(FIXTURES / "offline"))
        pushed = receiver.wait(lambda s: s["data"]["event"] == "project-pushed", what="project-pushed")[0]
        assert pushed["data"]["project"]["name"] == "offline" and "quick" in pushed["data"]["project"]["spiders"]
        job = d.schedule("offline", "quick")
        (delivery,) = receiver.wait(ended(job))
        headers, body = delivery["headers"], delivery["body"]
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Scrapy-Do-Signature"], expected)
        assert headers["Content-Type"] == "application/json" and headers["User-Agent"].startswith("scrapy-do/")
        data = delivery["data"]
        assert data["event"] == "job-ended" == headers["X-Scrapy-Do-Event"]
        assert data["delivery"] == headers["X-Scrapy-Do-Delivery"] and data["timestamp"].endswith("+00:00")
        assert data["job"]["status"] == "SUCCESSFUL" and data["job"] == d.job(job)
        assert delivery["path"] == "/all"
        (shown,) = wait_state(d, job, "delivered")
        assert shown["attempts"] == 1 and shown["url"] == f"{receiver.url}/…" and shown["last-error"] is None
        summary = webhooks(d)
        assert summary["hooks"] == [{"url": f"{receiver.url}/…", "events": [
            "job-ended", "job-failed", "project-pushed", "schedule-skipped"]}]
        assert summary["delivered"] == 2 and summary["pending"] == 0
    finally:
        d.stop()


def test_each_hook_and_a_jobs_notify_url_hear_what_they_asked_for(tmp_path, receiver):
    d = start(tmp_path, [f"{receiver.url}/failures job-failed", f"{receiver.url}/pushes project-pushed"])
    try:
        d.push("offline.zip", zip_tree(FIXTURES / "offline"))
        good = d.schedule("offline", "quick", notify=f"{receiver.url}/mine")
        bad = d.schedule("offline", "broken")
        receiver.wait(ended(bad), what="the failure")
        receiver.wait(ended(good), what="the notify delivery")
        wait_state(d, good, "delivered")
        wait_state(d, bad, "delivered")
        paths = sorted((s["path"], s["data"]["event"], s["data"].get("job", {}).get("identifier"))
                       for s in receiver.seen)
        assert paths == sorted([("/pushes", "project-pushed", None), ("/failures", "job-failed", bad),
                                ("/mine", "job-ended", good)])
    finally:
        d.stop()


def test_a_failing_receiver_gets_the_delivery_again_after_a_kill_and_restart(tmp_path, receiver):
    receiver.code = 500
    d = start(tmp_path, [f"{receiver.url}/hook job-ended"], first_retry=30)
    try:
        d.push("offline.zip", zip_tree(FIXTURES / "offline"))
        job = d.schedule("offline", "quick")
        first = receiver.wait(ended(job))[0]
        (shown,) = wait_state(d, job, "pending")
        deadline = time.monotonic() + 10
        while shown["last-error"] is None and time.monotonic() < deadline:
            time.sleep(0.05)
            (shown,) = [x for x in webhooks(d)["deliveries"] if x["job"] == job]
        assert shown["last-error"] == "HTTP 500" and shown["attempts"] == 1 and shown["next-attempt"]
        d.stop(signal.SIGKILL)
        receiver.code = 200
        d.start()
        # The retry was due 30 s after the failure; a restart keeps that due time, so nudge nothing and
        # check that it is still pending, counted, with its error...
        (kept,) = [x for x in webhooks(d)["deliveries"] if x["job"] == job]
        assert kept["state"] == "pending" and kept["id"] == first["data"]["delivery"] and kept["attempts"] == 1
    finally:
        d.stop()


def test_a_delivery_is_retried_until_acknowledged(tmp_path, receiver):
    receiver.code = 503
    d = start(tmp_path, [f"{receiver.url}/hook job-ended"])
    try:
        d.push("offline.zip", zip_tree(FIXTURES / "offline"))
        job = d.schedule("offline", "quick")
        receiver.wait(lambda s: ended(job)(s) and len([x for x in receiver.seen if ended(job)(x)]) >= 2,
                      what="a second attempt")
        receiver.code = 200
        (shown,) = wait_state(d, job, "delivered")
        attempts = [s for s in receiver.seen if ended(job)(s)]
        assert shown["attempts"] == len(attempts) >= 3 and shown["last-error"] == "HTTP 503"
        # At least once, and only as often as it failed: every attempt carries the same delivery id.
        assert {s["data"]["delivery"] for s in attempts} == {shown["id"]}
        assert {s["body"] for s in attempts} == {attempts[0]["body"]}
    finally:
        d.stop()


def test_a_delivery_pending_at_a_kill_is_sent_after_the_restart(tmp_path, receiver):
    receiver.code = 500
    d = start(tmp_path, [f"{receiver.url}/hook job-ended"], first_retry=2)
    try:
        d.push("offline.zip", zip_tree(FIXTURES / "offline"))
        job = d.schedule("offline", "quick")
        first = receiver.wait(ended(job))[0]
        d.stop(signal.SIGKILL)
        receiver.code = 200
        before = len(receiver.seen)
        d.start()
        receiver.wait(lambda s: ended(job)(s) and receiver.seen.index(s) >= before, what="the retry")
        (shown,) = wait_state(d, job, "delivered")
        assert shown["id"] == first["data"]["delivery"] and shown["attempts"] == 2
    finally:
        d.stop()


def test_a_hanging_receiver_does_not_hold_back_others_or_the_api(tmp_path, receiver):
    healthy = Receiver()
    receiver.hang.set()
    d = start(tmp_path, [f"{receiver.url}/hangs job-ended", f"{healthy.url}/fine job-ended"])
    try:
        d.push("offline.zip", zip_tree(FIXTURES / "offline"))
        jobs = [d.schedule("offline", "quick") for _ in range(3)]
        for job in jobs:
            healthy.wait(ended(job), what="the healthy receiver's delivery")
        started = time.monotonic()
        assert d.get("/status.json")[0] == 200
        assert time.monotonic() - started < 1
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            hung = [x for x in webhooks(d)["deliveries"] if x["url"].startswith(receiver.url)]
            if hung and any(x["last-error"] == "no answer in time" for x in hung):
                break
            time.sleep(0.1)
        else:
            raise AssertionError(f"the hanging receiver's deliveries never timed out: {webhooks(d)}")
        assert all(x["state"] == "pending" for x in hung)
    finally:
        d.stop()
        healthy.close()


def test_a_delivery_is_given_up_after_retry_for(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/gone"  # nobody listens once closed
    d = start(tmp_path, [f"{dead} job-ended"], extra="retry-for = 1\n")
    try:
        d.push("offline.zip", zip_tree(FIXTURES / "offline"))
        job = d.schedule("offline", "quick")
        (shown,) = wait_state(d, job, "failed")
        assert shown["last-error"] == "connection refused" and shown["attempts"] >= 2 and shown["ended"]
        assert webhooks(d, state="failed")["deliveries"][0]["id"] == shown["id"]
        assert webhooks(d)["failed"] == 1
        metrics = urllib.request.urlopen(d.url + "/metrics", timeout=10).read().decode()
        assert 'scrapy_do_webhook_deliveries{state="failed"} 1.0' in metrics
    finally:
        d.stop()


def test_an_https_receiver_gets_its_delivery_from_a_plain_http_daemon(tmp_path):
    """The daemon keeps pyOpenSSL out until it needs it: the first https receiver loads TLS, and the receiver's
    certificate is checked (against SSL_CERT_FILE here, the system's roots otherwise)."""
    import ssl

    from cryptography.hazmat.primitives import serialization

    from tests.integration.test_security import make_ca, make_server_cert

    ca = make_ca()
    (tmp_path / "ca.crt").write_bytes(ca[1].public_bytes(serialization.Encoding.PEM))
    make_server_cert(ca, tmp_path)
    receiver = Receiver()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    receiver.server.socket = context.wrap_socket(receiver.server.socket, server_side=True)
    secure_url = receiver.url.replace("http://", "https://")
    conf = ("[web]\ninterfaces = 127.0.0.1:0\n[webhooks]\n"
            f"hooks = {secure_url}/tls job-ended\nfirst-retry = 0.3\ntimeout = 2\n")
    for name in ("daemon", "untrusted"):
        (tmp_path / name).mkdir()
    untrusted = DaemonProcess(tmp_path / "untrusted", conf, env={"SSL_CERT_FILE": "/nonexistent"})
    try:
        d = DaemonProcess(tmp_path / "daemon", conf, env={"SSL_CERT_FILE": str(tmp_path / "ca.crt")}).start()
        try:
            d.push("offline.zip", zip_tree(FIXTURES / "offline"))
            job = d.schedule("offline", "quick")
            (delivery,) = receiver.wait(ended(job), what="the delivery over TLS")
            assert delivery["path"] == "/tls"
            wait_state(d, job, "delivered")
        finally:
            d.stop()
        # Without the CA the certificate is refused, and the error says so.
        untrusted.start()
        untrusted.push("offline.zip", zip_tree(FIXTURES / "offline"))
        job = untrusted.schedule("offline", "quick")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            shown = [x for x in webhooks(untrusted)["deliveries"] if x["job"] == job and x["last-error"]]
            if shown:
                break
            time.sleep(0.1)
        assert shown and "certificate" in shown[0]["last-error"].lower(), shown
    finally:
        untrusted.stop() if untrusted.proc else None
        receiver.close()
