"""The cluster-side wrapper's output sending (scrapy_do.launchers.remote) against a receiver on loopback that
plays the daemon: offsets, a daemon that is away for a while, a refusal, and a chatty crawl."""

import http.server
import io
import json
import threading

import pytest

from scrapy_do.launchers import remote


class Daemon(http.server.BaseHTTPRequestHandler):
    """Keeps what it is sent by stream and offset; answers 503 while `away`, 403 when `refusing`."""

    state = None

    def do_POST(self):
        state = self.state
        body = self.rfile.read(int(self.headers["Content-Length"]))
        kind = self.path.split("?")[0].rsplit(".", 1)[1]
        offset = int(self.path.rsplit("offset=", 1)[1])
        state["calls"].append((kind, offset, len(body), self.headers["Authorization"]))
        if state["away"]:
            return self._answer(503, b'{"status": "error"}')
        if state["refusing"]:
            return self._answer(403, b'{"status": "error", "msg": "the job is over"}')
        have = state["streams"].setdefault(kind, bytearray())
        if offset + len(body) > len(have):
            have += body[len(have) - offset:]
        self._answer(200, json.dumps({"status": "ok", "received": len(have)}).encode())

    def _answer(self, code, body):
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def daemon():
    state = {"calls": [], "streams": {}, "away": False, "refusing": False}
    handler = type("Handler", (Daemon,), {"state": state})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/report/x/log"
    yield state
    server.shutdown()


def test_output_goes_with_its_offset_and_waits_while_the_daemon_is_away(daemon):
    copy = io.BytesIO()
    stream = remote.Stream("err", daemon["url"], "tok", copy)
    stream.add(b"first line\n")
    daemon["away"] = True
    assert stream.send() is False and stream.pending == 11  # kept for the next try
    stream.add(b"second\n")
    daemon["away"] = False
    assert stream.send() is True and stream.pending == 0 and stream.acked == 18
    assert bytes(daemon["streams"]["err"]) == b"first line\nsecond\n" == copy.getvalue()
    assert [c[:2] for c in daemon["calls"]] == [("err", 0), ("err", 0)]
    assert daemon["calls"][0][3] == "Bearer tok"


def test_a_refused_piece_is_not_sent_again(daemon):
    stream = remote.Stream("out", daemon["url"], "tok", io.BytesIO())
    stream.add(b"late output\n")
    daemon["refusing"] = True
    assert stream.send() is True and stream.pending == 0
    assert stream.send() is True and len(daemon["calls"]) == 1


def test_a_chatty_crawl_is_kept_up_with_and_the_last_output_goes_once_it_ended(daemon, monkeypatch):
    monkeypatch.setattr(remote, "INTERVAL", 0.05)
    streams = [remote.Stream(kind, daemon["url"], "tok", io.BytesIO()) for kind in ("out", "err")]
    done = threading.Event()
    sending = threading.Thread(target=remote.sender, args=(streams, done))
    sending.start()
    data = b"x" * (remote.CHUNK * 3 + 5)
    streams[1].add(data)  # more than one tick sends
    streams[0].add(b"bye\n")
    done.set()
    sending.join(timeout=10)
    assert not sending.is_alive()
    assert bytes(daemon["streams"]["err"]) == data and bytes(daemon["streams"]["out"]) == b"bye\n"
    offsets = [offset for kind, offset, _, _ in daemon["calls"] if kind == "err"]
    assert offsets == [0, remote.CHUNK, 2 * remote.CHUNK, 3 * remote.CHUNK]


def test_the_job_comes_in_the_environment_and_a_missing_one_is_said(monkeypatch, capsys):
    monkeypatch.delenv(remote.JOB_KEY, raising=False)
    assert remote.main() == 2
    assert "SCRAPY_DO_JOB" in capsys.readouterr().err
