"""/events back-pressure and cap: real Site and HTTP channels over StringTransports, an injected Clock.

A test pauses a client's transport itself (`transport.producer.pauseProducing()`, what a full socket
makes the reactor do) and resumes it (what a drained socket does).
"""

import json

import pytest
from twisted.internet.error import ConnectionAborted, ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.resource import Resource

from scrapy_do.web.api import WebAPI
from scrapy_do.web.sse import EventStream
from scrapy_do.store import MemoryStore
from tests.helpers import result_of

REQUEST = b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@pytest.fixture
def store():
    """One store is enough here: these tests are about the stream, not about persistence."""
    s = MemoryStore()
    yield s
    s.close()


class Client:
    """One HTTP connection to `site`: its channel, its transport, and the request it sent."""

    def __init__(self, site, request=REQUEST):
        self.transport = StringTransport()
        self.channel = site.buildProtocol(None)
        self.channel.makeConnection(self.transport)
        self.channel.dataReceived(request)

    def head(self):
        return self.transport.value().partition(b"\r\n\r\n")[0]

    def body(self):
        """The response body received so far, chunked framing removed."""
        raw, out = self.transport.value().partition(b"\r\n\r\n")[2], []
        while raw:
            size, _, raw = raw.partition(b"\r\n")
            out.append(raw[: int(size, 16)])
            raw = raw[int(size, 16) + 2:]
        return b"".join(out)

    def events(self):
        """The (event, data) pairs received so far, in order."""
        body = self.body().decode("utf-8")
        found = []
        for line in body.splitlines():
            if line.startswith("event: "):
                found.append([line[7:], None])
            elif line.startswith("data: ") and found and found[-1][1] is None:
                found[-1][1] = json.loads(line[6:])
        return [tuple(e) for e in found]

    def pause(self):
        """The client stops reading: its socket buffer is full, so the transport pauses the channel."""
        self.transport.producer.pauseProducing()

    def resume(self):
        """The socket drained: the transport resumes the channel."""
        self.transport.producer.resumeProducing()

    def lose(self, reason=ConnectionDone):
        """The connection is lost, told the way the reactor tells it: stopProducing, then connectionLost."""
        if self.transport.producer is not None:
            self.transport.producer.stopProducing()
        self.channel.connectionLost(Failure(reason()))


class Events(Resource):
    """A leaf resource that serves /events from `stream`, as WebAPI.events does."""

    isLeaf = True

    def __init__(self, stream):
        super().__init__()
        self.stream = stream
        self.opened = []

    def render_GET(self, request):
        result = self.stream.open(request)
        if isinstance(result, bytes):
            return result
        self.opened.append(result)
        return server.NOT_DONE_YET


def make_site(resource, clock):
    site = server.Site(resource, reactor=clock)
    site.displayTracebacks = False
    return site


@pytest.fixture
def failures():
    """Failures logged while the test runs (through twisted.logger, as twisted.web logs them)."""
    seen = []

    def observe(event):
        if "log_failure" in event:
            seen.append(event["log_failure"])

    globalLogPublisher.addObserver(observe)
    yield seen
    globalLogPublisher.removeObserver(observe)


@pytest.fixture
def stream(controller, clock):
    """An EventStream with a small bound (6 KiB) so a few events overflow it."""
    return EventStream(controller, clock, lambda: {"status": "ok", **controller.status()},
                       max_clients=8, max_buffer=6144)


@pytest.fixture
def events(stream):
    return Events(stream)


@pytest.fixture
def site(events, clock):
    return make_site(events, clock)


def churn(controller, clock, rounds):
    """Schedule and cancel `rounds` schedules (two job events each), then let the status go out."""
    for _ in range(rounds):
        job = controller.schedule_job("proj", "quick", when="every 10 minutes")
        result_of(controller.cancel_job(job.identifier))
    clock.advance(1)


def test_paused_client_past_the_bound_is_dropped_while_others_keep_receiving(controller, clock, stream, site,
                                                                             events):
    """A client whose socket stays full is cut off once more than max_buffer waits for it; readers go on."""
    controller.push("proj", ("quick",))
    slow, fast = Client(site), Client(site)
    assert len(stream.requests) == 2
    slow.pause()
    before = len(slow.body())
    churn(controller, clock, 20)
    assert slow.transport.disconnected, "the paused client was not aborted"
    assert len(stream.requests) == 1
    # Not one byte past the bound was written for it, and nothing after the drop.
    assert 6144 - 1500 < len(slow.body()) - before <= 6144
    written = slow.transport.value()
    churn(controller, clock, 3)
    assert slow.transport.value() == written
    # The reader got every event, the status snapshot first.
    kinds = [k for k, _ in fast.events()]
    assert kinds[0] == "status"
    assert kinds.count("job") == 2 * 23
    assert not fast.transport.disconnected
    # The connection goes away; the stream's cleanup runs once and its Deferred fires once.
    dropped = events.opened[0]
    slow.lose(ConnectionAborted)
    assert result_of(dropped) is None
    assert len(stream.requests) == 1
    slow.channel.connectionLost(Failure(ConnectionAborted()))  # a late duplicate changes nothing
    assert len(stream.requests) == 1


def test_resumed_client_gets_everything(controller, clock, stream, site):
    """A client paused for less than max_buffer of events gets all of them, in order, once it reads again."""
    controller.push("proj", ("quick",))
    paused, reader = Client(site), Client(site)
    # Each paused spell is under 6 KiB (8 job events and a status, about 4.5 KiB), both together are
    # over it: the count starts over when the transport resumes the stream.
    paused.pause()
    churn(controller, clock, 4)
    paused.resume()
    churn(controller, clock, 4)
    paused.pause()
    churn(controller, clock, 4)
    paused.resume()
    assert not paused.transport.disconnected
    assert len(stream.requests) == 2
    assert paused.events() == reader.events()
    assert [k for k, _ in paused.events()].count("job") == 24


def test_readers_get_status_first_then_coalesced_status_and_keepalives(controller, clock, stream, site):
    """A reading client gets status first, one status per burst of events, and a keepalive comment when idle."""
    controller.push("proj", ("quick",))
    client = Client(site)
    assert client.transport.value().startswith(b"HTTP/1.1 200 ")
    assert b"content-type: text/event-stream; charset=utf-8" in client.transport.value().lower()
    churn(controller, clock, 5)
    kinds = [k for k, _ in client.events()]
    assert kinds == ["status"] + ["job"] * 10 + ["status"]
    clock.advance(15)
    assert client.body().endswith(b": keepalive\n\n")


def test_over_cap_client_gets_503_json_and_a_slot_frees_on_disconnect(controller, config, clock, failures):
    """With 64 streams open the 65th request gets 503 JSON with Retry-After; after one leaves, a new one is served."""
    api = WebAPI(controller, config, reactor=clock)
    site = api.site()
    site.reactor = clock
    clients = [Client(site) for _ in range(64)]
    assert all(c.transport.value().startswith(b"HTTP/1.1 200 ") for c in clients)
    refused = Client(site)
    head, body = refused.head(), refused.body()
    assert head.startswith(b"HTTP/1.1 503 ")
    headers = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
    headers = {k.lower(): v for k, v in headers.items()}
    assert headers[b"content-type"] == b"application/json"
    assert int(headers[b"retry-after"]) > 0
    data = json.loads(body)
    assert data["status"] == "error" and "max-event-clients" in data["msg"]
    # Not a stream: a refused client hears nothing more.
    controller.push("proj", ("quick",))
    clock.advance(20)
    assert (refused.head(), refused.body()) == (head, body)
    # A stream that ends is not finished by anyone (no last chunk, no error about its producer).
    clients[10].lose()
    assert not clients[10].transport.value().endswith(b"0\r\n\r\n")
    assert failures == []
    again = Client(site)
    assert again.transport.value().startswith(b"HTTP/1.1 200 ")
    assert Client(site).transport.value().startswith(b"HTTP/1.1 503 ")


def test_a_dropped_client_frees_its_slot_at_once(controller, clock):
    """A stream dropped for being too far behind no longer counts against max_clients."""
    stream = EventStream(controller, clock, lambda: {"status": "ok"}, max_clients=1, max_buffer=1024)
    site = make_site(Events(stream), clock)
    controller.push("proj", ("quick",))
    first = Client(site)
    first.pause()
    assert Client(site).transport.value().startswith(b"HTTP/1.1 503 ")
    churn(controller, clock, 5)
    assert first.transport.disconnected
    assert Client(site).transport.value().startswith(b"HTTP/1.1 200 ")
