"""Server-Sent Events: the controller's changes pushed to browsers as they happen.

Each connection gets `status` (a snapshot) first, then `job`, `job-removed`,
`project` and `status` events; a comment line every `keepalive` seconds keeps
proxies from closing an idle stream. No client ever polls.

A client that stops reading must not make the daemon buffer for it without
end. Each stream is a push producer on its request: the transport pauses it
when the socket's buffer is full and resumes it once that buffer is empty.
What is written while paused is counted, and a stream more than `max_buffer`
bytes behind is dropped (aborted: a clean close would wait for a client that
never reads). The dashboard then reconnects and reloads its lists, which is
cheaper than replaying a backlog of stale events. At most `max_clients`
streams are open at once; more requests get 503 with Retry-After.
"""

import json

from twisted.internet import defer
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from scrapy_do.domain.records import to_record
from scrapy_do.events import JobChanged, JobRemoved, ProjectPushed, ProjectRemoved

log = Logger(namespace="scrapy_do.web.sse")

#: The most streams open at once (the default of `[web] max-event-clients`).
MAX_CLIENTS = 64
#: The most bytes a stream may fall behind once its socket is full (beyond the
#: transport's own 64 KiB buffer and the kernel's socket buffers): thousands of
#: events, more than any burst the engine makes, and at most 64 MiB for 64
#: streams that all stopped reading.
MAX_BUFFER = 1 << 20
#: Seconds an over-cap client is asked to wait (the dashboard retries after 3).
RETRY_AFTER = 5


def sse(event, data):
    """One SSE message; data is JSON on a single line."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode("utf-8")


def _peer(request):
    address = request.getClientAddress()
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    return f"{host}:{port}" if host is not None else str(address)


@implementer(IPushProducer)
class _Stream:
    """One open /events request, registered on it as a push producer to learn when its socket is full.

    `unsent` counts the bytes written since the transport last said its buffer was full; it starts
    over when the transport says it drained (resumeProducing comes only once everything was sent).
    """

    def __init__(self, request, max_buffer):
        self.request = request
        self.max_buffer = max_buffer
        self.paused = False
        self.unsent = 0
        self.on_stop = None

    def send(self, data):
        """Write `data`; False (nothing written) if that would put the client more than max_buffer behind."""
        if self.paused:
            if self.unsent + len(data) > self.max_buffer:
                return False
            self.unsent += len(data)
        self.request.write(data)
        return True

    def abort(self):
        """Drop the connection now, with whatever is still buffered for it."""
        channel = self.request.channel
        if channel is None:  # already gone
            return
        abort = getattr(channel.transport, "abortConnection", None)
        if abort is not None:
            abort()
        else:
            self.request.loseConnection()

    # IPushProducer, called by the HTTP channel on behalf of the transport.

    def pauseProducing(self):
        self.paused = True

    def resumeProducing(self):
        self.paused = False
        self.unsent = 0

    def stopProducing(self):
        # The connection is going away: write nothing more. The request is not finished here (the
        # route's Deferred would make Klein finish it); notifyFinish fires next and does the rest.
        if self.on_stop is not None:
            self.on_stop()


class EventStream:
    """Fans controller events out to every open /events request, at most `max_clients` of them."""

    def __init__(self, controller, clock, status, keepalive=15.0, status_delay=0.25,
                 max_clients=MAX_CLIENTS, max_buffer=MAX_BUFFER):
        self.controller = controller
        self.clock = clock
        self.status = status
        self.keepalive = keepalive
        self.status_delay = status_delay
        self.max_clients = max_clients
        self.max_buffer = max_buffer
        #: request -> its _Stream, for every stream still served.
        self.requests = {}
        self._status_call = None
        self._keepalive_call = None
        controller.subscribe(self._on_event)

    def open(self, request):
        """Serve `request` as an event stream.

        Returns a Deferred that fires when the client goes away, or, when `max_clients` streams are
        already open, the body of a 503 answer (JSON, with Retry-After).
        """
        if len(self.requests) >= self.max_clients:
            # Imported here: the API module imports this one.
            from scrapy_do.web.api import error_body

            request.setHeader(b"retry-after", str(RETRY_AFTER).encode())
            return error_body(request, 503, f"{self.max_clients} event streams are open, the most allowed "
                                            f"(max-event-clients); try again in {RETRY_AFTER} seconds")
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"x-accel-buffering", b"no")
        stream = _Stream(request, self.max_buffer)
        stream.on_stop = lambda: self._close(request)
        done = defer.Deferred()

        def finished(_):
            self._close(request)
            done.callback(None)

        # Registered before the first write, so that a full socket pauses it from the start.
        request.registerProducer(stream, True)
        self.requests[request] = stream
        if self._keepalive_call is None:
            self._keepalive_call = self.clock.callLater(self.keepalive, self._ping)
        request.notifyFinish().addBoth(finished)
        self._write(stream, b"retry: 2000\n\n" + sse("status", self.status()))
        return done

    def _close(self, request):
        if self.requests.pop(request, None) is None:
            return
        if not self.requests and self._keepalive_call is not None and self._keepalive_call.active():
            self._keepalive_call.cancel()
            self._keepalive_call = None

    def _write(self, stream, data):
        try:
            sent = stream.send(data)
        except Exception:
            log.failure("writing to an event stream failed")
            self._close(stream.request)
            return
        if not sent:
            log.info("dropped the event stream of {client}: more than {bound} bytes behind (it stopped reading)",
                     client=_peer(stream.request), bound=self.max_buffer)
            # Forgotten at once, so that it frees its slot and gets nothing more; notifyFinish fires
            # when the transport reports the connection lost, and finds nothing left to clean up.
            self._close(stream.request)
            stream.abort()

    def _send(self, data):
        for stream in list(self.requests.values()):
            self._write(stream, data)

    def _ping(self):
        self._send(b": keepalive\n\n")
        self._keepalive_call = self.clock.callLater(self.keepalive, self._ping) if self.requests else None

    def _on_event(self, event):
        if not self.requests:
            return
        if isinstance(event, JobChanged):
            self._send(sse("job", to_record(event.job, self.controller.zone)))
        elif isinstance(event, JobRemoved):
            self._send(sse("job-removed", {"identifier": event.identifier}))
        elif isinstance(event, (ProjectPushed, ProjectRemoved)):
            action = "pushed" if isinstance(event, ProjectPushed) else "removed"
            project = event.project
            self._send(sse("project", {"name": project.name, "spiders": list(project.spiders), "action": action}))
        # Counters change with every event; coalesce bursts into one status.
        if self._status_call is None or not self._status_call.active():
            self._status_call = self.clock.callLater(self.status_delay, self._send_status)

    def _send_status(self):
        self._send(sse("status", self.status()))
