"""Connections: a deadline for each request's headers, and a cap on how many are open at once.

Twisted's idle timeout (60 s without a byte) does not stop a client that sends its headers one byte at a
time, and nothing bounds the number of connections: a few hundred slow clients used to hold every
descriptor the process may open, and then crawls, logs and SQLite failed with "Too many open files".

`HeaderDeadlineChannel` gives a client `header_timeout` seconds to send a request's line and headers,
counted from the connection's start for its first request and from the request's first byte for the next
ones on a keep-alive connection (an idle keep-alive connection is left to the idle timeout). A client
that misses the deadline gets `408` and the connection is closed. The deadline runs on the channel's
`clock` (an IReactorTime), which the site sets from its reactor, so tests drive it with a Clock. Once a
request's headers are complete, and before any byte of its body is read, the channel offers them to the
request (`headers_received(method, target, version, length)`, see web.request): a request may answer
right then (a 401, a 503 for too many uploads), and then gets no `100 Continue`, its body is dropped as it
comes and the connection closes once it is in.

`GuardedSite` counts its open connections and does not serve more than `max_connections`: a connection
over the cap gets a quick `503` (plain HTTP) or is dropped at once (TLS, where answering would first
cost a handshake), and its descriptor is released within a second either way. `connection_cap` lowers the
configured cap to what the open-file limit allows, keeping descriptors in reserve for the daemon itself.
"""

import json
import resource
import time

from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.web import http, server

log = Logger(namespace="scrapy_do.web.channel")

#: Descriptors the daemon needs whatever the load: stdio, the reactor's epoll and waker pipes, the
#: listening sockets, SQLite's database, WAL and shared-memory files, the threads' transient opens
#: (psutil's /proc reads, certificate reloads, imports). An idle daemon holds 13.
BASE_RESERVE = 32
#: Per job slot: a running crawl holds 4 (stdout and stderr pipes, the .out and .err logs); starting
#: one briefly takes a few more (the payload pipe, the exec-error pipe).
PER_JOB_SLOT = 8
#: Per upload in flight: the request body's temporary file, the archive's temporary file, the zip
#: opened for unpacking, the member being written and the three pipes of `scrapy list`.
PER_UPLOAD = 8
#: Connections refused at the cap that may wait at once for their 503 to leave; more are dropped.
MAX_REFUSING = 16
#: Each served connection may hold a second descriptor beside its socket: the log or static file it
#: streams, or its request body's temporary file.
FDS_PER_CONNECTION = 2
#: The cap never goes below this (config.max_connections has the same minimum).
MIN_CONNECTIONS = 8
#: Seconds a closed connection may take to send its last bytes before it is aborted.
ABORT_AFTER = 2.0
#: Seconds between two log lines about refused or timed-out connections.
REPORT_EVERY = 60.0


def open_file_limit():
    """The soft RLIMIT_NOFILE of this process, or None when it is unlimited."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def reserve_for(job_slots, max_uploads):
    """Descriptors kept for everything but client connections (see the constants above)."""
    return BASE_RESERVE + PER_JOB_SLOT * job_slots + PER_UPLOAD * max_uploads + MAX_REFUSING


def connection_cap(max_connections, job_slots, max_uploads, limit=None):
    """The connections served at once: `max_connections`, lowered to fit the open-file `limit`.

    Returns (cap, limit, reserve); `limit` defaults to this process's soft limit (None: unlimited).
    """
    if limit is None:
        limit = open_file_limit()
    reserve = reserve_for(job_slots, max_uploads)
    if limit is None:
        return max_connections, None, reserve
    fitting = (limit - reserve) // FDS_PER_CONNECTION
    return max(MIN_CONNECTIONS, min(max_connections, fitting)), limit, reserve


def json_response(code, reason, msg, extra=()):
    """A whole HTTP/1.1 response with a JSON error body and `Connection: close`, as bytes."""
    body = json.dumps({"status": "error", "msg": msg}).encode()
    head = [f"HTTP/1.1 {code} {reason}", "Content-Type: application/json", f"Content-Length: {len(body)}",
            "Connection: close", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class HeaderDeadlineChannel(http.HTTPChannel):
    """An HTTPChannel that closes a connection whose request headers are not complete within `header_timeout`.

    `clock` and `header_timeout` are set by the site before the connection is made; `header_timeout`
    None turns the deadline off. `on_open`/`on_close` (optional) hear of the connection's start and end.
    """

    header_timeout = None
    clock = None
    on_open = None
    on_close = None
    on_timeout = None
    _deadline = None
    _abort = None
    _between_requests = False   # a keep-alive connection waiting for the first byte of its next request
    _awaiting_line = True       # the next non-empty line is a request line
    _request_line = None
    _counted = False

    def connectionMade(self):
        super().connectionMade()
        self._counted = True
        if self.on_open is not None:
            self.on_open(self)
        self._arm()

    def dataReceived(self, data):
        # The next request starts with its first byte; the empty line some clients send after a
        # POST body is not one (Twisted skips one such line).
        if self._between_requests and data.lstrip(b"\r\n"):
            self._next_request()
        super().dataReceived(data)

    def lineReceived(self, line):
        # A request that came in the same piece of data as the end of the one before it.
        if self._between_requests and line:
            self._next_request()
        if self._awaiting_line and line:
            # Twisted checks it (and answers 400 to a bad one) before any header is read.
            self._awaiting_line = False
            self._request_line = line
        super().lineReceived(line)

    def _next_request(self):
        self._between_requests = False
        self._arm()

    def allHeadersReceived(self):
        self._disarm()
        request = self.requests[-1]
        check = getattr(request, "headers_received", None)
        answer = None
        if check is not None and self._request_line is not None:
            method, target, version = self._request_line.split(b" ")
            answer = check(method, target, version, self.length)
        if answer is None:
            super().allHeadersReceived()
            return
        # Answered from the headers (see web.request): no `100 Continue`, the body is read and dropped,
        # and the connection closes once it is in.
        request.requestHeaders.removeHeader(b"expect")
        super().allHeadersReceived()
        self.persistent = False
        self.transport.write(answer)

    def requestDone(self, request):
        # Set before Twisted replays what a pipelining client sent meanwhile (through dataReceived).
        self._between_requests = True
        self._awaiting_line = True
        self._request_line = None
        super().requestDone(request)

    def connectionLost(self, reason):
        self._between_requests = False
        self._disarm()
        if self._abort is not None and self._abort.active():
            self._abort.cancel()
        self._abort = None
        super().connectionLost(reason)
        if self._counted:
            self._counted = False
            if self.on_close is not None:
                self.on_close(self)

    def _arm(self):
        self._disarm()
        if self.header_timeout is not None and self.clock is not None:
            self._deadline = self.clock.callLater(self.header_timeout, self._headers_too_slow)

    def _disarm(self):
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _headers_too_slow(self):
        self._deadline = None
        if self.on_timeout is not None:
            self.on_timeout(self)
        transport = self.transport
        if transport is None:
            return
        # No response has started: the headers of this request are not complete, and any earlier
        # request on the connection was answered before this deadline was armed.
        transport.write(json_response(408, "Request Timeout", f"the request headers took longer than "
                                      f"{self.header_timeout:g} s (header-timeout)"))
        transport.loseConnection()
        self._abort = self.clock.callLater(ABORT_AFTER, self._force_abort)

    def _force_abort(self):
        self._abort = None
        if self.transport is not None:
            self.transport.abortConnection()


class _Refused(Protocol):
    """A connection over the cap: a 503 on plain HTTP, nothing on TLS; closed either way."""

    def __init__(self, site):
        self.site = site
        self._abort = None

    def connectionMade(self):
        self.site.refusing += 1
        if ISSLTransport.providedBy(self.transport):
            self.transport.abortConnection()
            return
        self.transport.write(json_response(503, "Service Unavailable",
                                           f"the daemon serves {self.site.max_connections} connections at "
                                           "once (max-connections) and all are taken; try again shortly",
                                           ("Retry-After: 1",)))
        # Half-close and keep reading for a moment, so that the request the client is sending does not
        # turn the close into a reset that could destroy the 503 before the client reads it.
        self.transport.loseWriteConnection()
        self._abort = self.site.reactor.callLater(1.0, self.transport.abortConnection)

    def dataReceived(self, data):
        pass

    def connectionLost(self, reason):
        self.site.refusing -= 1
        if self._abort is not None and self._abort.active():
            self._abort.cancel()
        self._abort = None


class GuardedSite(server.Site):
    """A Site that gives request headers a deadline and serves at most `max_connections` at once.

    `reactor` (as for any Site) is the clock of the deadlines; it is read when a connection is made, so
    tests may replace it after construction.
    """

    protocol = HeaderDeadlineChannel

    def __init__(self, resource, max_connections, header_timeout, *, limit=None, reserve=None, **kwargs):
        super().__init__(resource, **kwargs)
        self.max_connections = max_connections
        self.header_timeout = header_timeout
        self.limit = limit
        self.reserve = reserve
        self.open_connections = 0
        self.refusing = 0
        self._unreported = {"refused": 0, "dropped": 0, "slow": 0}
        self._reported = float("-inf")

    def startFactory(self):
        super().startFactory()
        if self.limit is None:
            log.info("serving at most {cap} connections at once (max-connections)", cap=self.max_connections)
        else:
            log.info("serving at most {cap} connections at once (max-connections, fitted to the open-file "
                     "limit of {limit} with {reserve} descriptors kept for crawls, logs and the database)",
                     cap=self.max_connections, limit=self.limit, reserve=self.reserve)

    def buildProtocol(self, addr):
        if self.open_connections >= self.max_connections:
            if self.refusing >= MAX_REFUSING:
                self._report("dropped")
                return _Dropped()
            self._report("refused")
            return _Refused(self)
        channel = super().buildProtocol(addr)
        channel.clock = self.reactor
        channel.header_timeout = self.header_timeout
        channel.on_open = self._opened
        channel.on_close = self._closed
        channel.on_timeout = lambda _channel: self._report("slow")
        return channel

    def _opened(self, channel):
        self.open_connections += 1

    def _closed(self, channel):
        self.open_connections -= 1

    def _report(self, kind):
        """Count a refused or timed-out connection; log a summary at most once a REPORT_EVERY."""
        self._unreported[kind] += 1
        now = time.monotonic()
        if now - self._reported < REPORT_EVERY:
            return
        self._reported = now
        counts, self._unreported = self._unreported, dict.fromkeys(self._unreported, 0)
        log.warn("connections: {refused} refused with 503 and {dropped} dropped at the cap of {cap} "
                 "(max-connections), {slow} closed for sending their headers too slowly (header-timeout "
                 "= {timeout:g} s); these counts are logged at most once a minute", cap=self.max_connections,
                 timeout=self.header_timeout or 0, **counts)


class _Dropped(Protocol):
    """A connection over the cap while too many are being refused already: closed at once."""

    def connectionMade(self):
        self.transport.abortConnection()
