"""HeaderDeadlineChannel and GuardedSite, fed raw bytes over in-memory transports on a Clock."""

import json

import pytest
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.python.failure import Failure
from twisted.web import resource
from zope.interface import implementer

from scrapy_do.web import channel as channels
from scrapy_do.web.channel import GuardedSite, connection_cap

TIMEOUT = 10
GET = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"


class Hello(resource.Resource):
    isLeaf = True

    def render(self, request):
        request.content.read()
        return b"hello"


class Transport(StringTransport):
    """A StringTransport that records a half-close."""

    write_closed = False

    def __init__(self):
        super().__init__(lenient=True)

    def loseWriteConnection(self):
        self.write_closed = True


@implementer(ISSLTransport)
class TLSTransport(Transport):
    def setTcpNoDelay(self, enabled):
        pass


@pytest.fixture
def clock():
    return Clock()


def make_site(clock, max_connections=100, header_timeout=TIMEOUT):
    site = GuardedSite(Hello(), max_connections, header_timeout, reactor=clock)
    site.log = lambda request: None
    return site


class Conn:
    """One connection to `site`."""

    def __init__(self, site, transport_class=Transport):
        self.transport = transport_class()
        self.protocol = site.buildProtocol(None)
        self.protocol.makeConnection(self.transport)

    def send(self, data):
        self.protocol.dataReceived(data)

    def value(self):
        return self.transport.value()

    @property
    def closing(self):
        return self.transport.disconnecting

    def lose(self):
        self.protocol.connectionLost(Failure(ConnectionDone()))


def responses(data):
    return data.count(b"HTTP/1.1 ")


def test_silent_connection_gets_408_at_the_deadline_and_not_before(clock):
    """A connection that sends nothing is answered 408 and closed header_timeout seconds after it opened."""
    conn = Conn(make_site(clock))
    clock.advance(TIMEOUT - 0.1)
    assert not conn.closing and conn.value() == b""
    clock.advance(0.2)
    assert conn.closing
    head, _, body = conn.value().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 Request Timeout")
    assert b"Content-Type: application/json" in head and b"Connection: close" in head
    assert "header-timeout" in json.loads(body)["msg"]


def test_trickled_headers_are_cut_off_at_the_deadline(clock):
    """Headers sent a byte a second (each byte resetting the idle timeout) are cut off at header_timeout."""
    conn = Conn(make_site(clock))
    for byte in b"GET / HTTP/1.1\r\nHost: test\r\nX-Slow: " + b"a" * 20:
        if conn.closing:
            break
        conn.send(bytes([byte]))
        clock.advance(1)
    assert conn.closing and conn.value().startswith(b"HTTP/1.1 408 ")
    assert 9 <= clock.seconds() <= 11


def test_stalled_connection_is_aborted_if_its_close_does_not_finish(clock):
    """After the 408, a connection that does not go away (a client that reads nothing) is aborted."""
    conn = Conn(make_site(clock))
    clock.advance(TIMEOUT)
    assert conn.closing and not conn.transport.disconnected
    clock.advance(channels.ABORT_AFTER)
    assert conn.transport.disconnected


def test_headers_in_time_are_served_and_the_deadline_is_cancelled(clock):
    """A request whose headers arrive in time is served; its connection outlives the deadline."""
    conn = Conn(make_site(clock))
    clock.advance(TIMEOUT - 1)
    conn.send(GET)
    assert responses(conn.value()) == 1 and conn.value().endswith(b"hello")
    clock.advance(TIMEOUT * 3)
    assert not conn.closing and b"408" not in conn.value()


def test_a_slow_body_is_not_cut_by_the_header_deadline(clock):
    """Once the headers are in, the body may take longer than header_timeout (the idle timeout still applies)."""
    conn = Conn(make_site(clock))
    conn.send(b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 30\r\n\r\n")
    for _ in range(30):
        clock.advance(1)
        conn.send(b"x")
    assert not conn.closing and responses(conn.value()) == 1 and conn.value().endswith(b"hello")


def test_keep_alive_idle_is_left_to_the_idle_timeout_and_the_next_request_gets_its_own_deadline(clock):
    """Between requests a keep-alive connection may idle past header_timeout; the next request's deadline starts
    at its first byte."""
    site = make_site(clock)
    conn = Conn(site)
    conn.send(GET)
    clock.advance(TIMEOUT * 3)  # idle, under the 60 s idle timeout
    assert not conn.closing
    conn.send(b"GET / HT")
    clock.advance(TIMEOUT - 0.5)
    assert not conn.closing
    clock.advance(1)
    assert conn.closing and conn.value().split(b"hello", 1)[1].startswith(b"HTTP/1.1 408 ")


def test_keep_alive_requests_in_time_are_all_served(clock):
    """Each request on a keep-alive connection that completes its headers in time is served."""
    conn = Conn(make_site(clock))
    for _ in range(5):
        conn.send(b"GET / HTTP/1.1\r\n")
        clock.advance(TIMEOUT - 1)
        conn.send(b"Host: test\r\n\r\n")
        clock.advance(TIMEOUT * 2)
    assert responses(conn.value()) == 5 and not conn.closing


def test_pipelined_requests_are_served_without_a_timeout(clock):
    """Requests pipelined in one write are all served, and no deadline is left behind."""
    conn = Conn(make_site(clock))
    conn.send(GET * 3)
    assert responses(conn.value()) == 3
    clock.advance(TIMEOUT * 2)
    assert not conn.closing and b"408" not in conn.value()


def test_the_empty_line_after_a_post_does_not_start_a_deadline(clock):
    """The CRLF some clients send after a POST body does not count as the start of a next request."""
    conn = Conn(make_site(clock))
    conn.send(b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 2\r\n\r\nab")
    conn.send(b"\r\n")
    clock.advance(TIMEOUT * 3)
    assert not conn.closing and responses(conn.value()) == 1


def test_pipelined_partial_request_gets_a_deadline(clock):
    """A complete request followed by the start of another in the same write: the second still has a deadline."""
    conn = Conn(make_site(clock))
    conn.send(GET + b"GET / HTTP/1.1\r\n")
    assert responses(conn.value()) == 1
    clock.advance(TIMEOUT + 0.1)
    assert conn.closing and b"HTTP/1.1 408 " in conn.value()


def test_no_header_timeout_means_no_deadline(clock):
    """header_timeout None leaves a silent connection to the idle timeout alone."""
    site = make_site(clock, header_timeout=None)
    site.timeOut = None
    conn = Conn(site)
    clock.advance(3600)
    assert not conn.closing and clock.getDelayedCalls() == []


def test_connections_over_the_cap_get_a_quick_503_and_a_slot_frees_on_close(clock):
    """With max_connections open, the next connection gets 503 JSON with Retry-After at once; a closed one frees
    a slot."""
    site = make_site(clock, max_connections=3)
    served = [Conn(site) for _ in range(3)]
    assert site.open_connections == 3
    refused = Conn(site)
    head, _, body = refused.value().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 Service Unavailable")
    assert b"Retry-After: 1" in head and b"Content-Type: application/json" in head
    assert "max-connections" in json.loads(body)["msg"]
    assert refused.transport.write_closed and not refused.transport.disconnected
    refused.send(GET)  # what the client sent meanwhile is read and ignored
    assert refused.value().count(b"HTTP/1.1 ") == 1
    clock.advance(1)
    assert refused.transport.disconnected  # aborted if the client does not close
    refused.lose()
    served[0].lose()
    assert site.open_connections == 2
    again = Conn(site)
    again.send(GET)
    assert again.value().startswith(b"HTTP/1.1 200 ")


def test_refused_connection_that_closes_first_cancels_its_abort(clock):
    """A refused client that closes after reading its 503 leaves no timer behind."""
    site = make_site(clock, max_connections=1, header_timeout=None)
    site.timeOut = None
    Conn(site)
    refused = Conn(site)
    refused.lose()
    assert clock.getDelayedCalls() == [] and site.refusing == 0


def test_too_many_refusals_at_once_are_dropped(clock):
    """While MAX_REFUSING connections wait for their 503 to leave, further ones are aborted without an answer."""
    site = make_site(clock, max_connections=1)
    Conn(site)
    refusing = [Conn(site) for _ in range(channels.MAX_REFUSING)]
    assert all(r.value().startswith(b"HTTP/1.1 503 ") for r in refusing)
    dropped = Conn(site)
    assert dropped.value() == b"" and dropped.transport.disconnected
    for r in refusing:
        r.lose()
    assert site.refusing == 0 and Conn(site).value().startswith(b"HTTP/1.1 503 ")


def test_over_the_cap_on_tls_is_aborted_at_once(clock):
    """Over TLS a connection over the cap is aborted at once (answering would first cost a handshake)."""
    site = make_site(clock, max_connections=1)
    Conn(site, TLSTransport)
    refused = Conn(site, TLSTransport)
    assert refused.value() == b"" and refused.transport.disconnected


def test_every_way_a_connection_ends_frees_its_slot(clock):
    """Served, timed-out and lost connections all stop counting against the cap once closed."""
    site = make_site(clock, max_connections=10)
    conns = [Conn(site) for _ in range(6)]
    conns[0].send(GET)
    conns[1].send(b"GET / HTTP/1.1\r\n")
    clock.advance(TIMEOUT + 0.1)  # all but conns[0] time out
    assert [c.closing for c in conns] == [False] + [True] * 5
    for c in conns:
        c.lose()
        c.lose()  # a second connectionLost must not count twice
    assert site.open_connections == 0
    assert clock.getDelayedCalls() == []


@pytest.mark.parametrize("limit, slots, uploads, wanted", [
    (256, 1, 2, (256 - (32 + 8 + 16 + 16)) // 2),
    (1024, 3, 2, (1024 - (32 + 24 + 16 + 16)) // 2),
    (4096, 3, 2, 512),
    (64, 3, 2, 8),
])
def test_connection_cap_fits_the_open_file_limit(limit, slots, uploads, wanted):
    """The cap is max_connections lowered to half of what the open-file limit leaves beyond the reserve, at least 8."""
    cap, shown, reserve = connection_cap(512, slots, uploads, limit=limit)
    assert cap == wanted and shown == limit
    assert reserve == 32 + 8 * slots + 8 * uploads + channels.MAX_REFUSING


def test_connection_cap_reads_the_process_limit(monkeypatch):
    """Without an explicit limit, the cap uses the soft RLIMIT_NOFILE of the process (unlimited: none)."""
    monkeypatch.setattr(channels.resource, "getrlimit", lambda which: (300, 4096))
    assert connection_cap(512, 1, 1)[:2] == ((300 - 64) // 2, 300)
    monkeypatch.setattr(channels.resource, "getrlimit",
                        lambda which: (channels.resource.RLIM_INFINITY, channels.resource.RLIM_INFINITY))
    assert connection_cap(512, 1, 1)[:2] == (512, None)


def test_the_cap_is_logged_when_the_site_starts(clock):
    """Starting the site logs the effective cap, the open-file limit and the reserve."""
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        site = GuardedSite(Hello(), 92, 10, limit=256, reserve=72, reactor=clock)
        site.doStart()
        site.doStop()
    finally:
        globalLogPublisher.removeObserver(events.append)
    lines = [e for e in events if e.get("log_namespace") == "scrapy_do.web.channel"]
    assert [(e["cap"], e["limit"], e["reserve"]) for e in lines] == [(92, 256, 72)]


def test_refusals_and_timeouts_are_logged_at_most_once_a_minute(clock, monkeypatch):
    """Refused and timed-out connections are counted and summed up in one warning per REPORT_EVERY seconds."""
    now = [1000.0]
    monkeypatch.setattr(channels.time, "monotonic", lambda: now[0])
    events = []
    globalLogPublisher.addObserver(events.append)
    try:
        site = make_site(clock, max_connections=1)
        Conn(site)
        for _ in range(5):
            Conn(site).lose()
        now[0] += channels.REPORT_EVERY
        Conn(site).lose()
    finally:
        globalLogPublisher.removeObserver(events.append)
    warnings = [e for e in events if e.get("log_namespace") == "scrapy_do.web.channel" and "refused" in e]
    assert [w["refused"] for w in warnings] == [1, 5]
