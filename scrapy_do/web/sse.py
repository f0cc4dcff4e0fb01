"""Server-Sent Events: the controller's changes pushed to browsers as they happen.

Each connection gets `status` (a snapshot) first, then `job`, `job-removed`,
`project` and `status` events; a comment line every `keepalive` seconds keeps
proxies from closing an idle stream. No client ever polls.
"""

import json

from twisted.internet import defer
from twisted.logger import Logger

from scrapy_do.domain.records import to_record
from scrapy_do.events import JobChanged, JobRemoved, ProjectPushed, ProjectRemoved

log = Logger(namespace="scrapy_do.web.sse")


def sse(event, data):
    """One SSE message; data is JSON on a single line."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode("utf-8")


class EventStream:
    """Fans controller events out to every open /events request."""

    def __init__(self, controller, clock, status, keepalive=15.0, status_delay=0.25):
        self.controller = controller
        self.clock = clock
        self.status = status
        self.keepalive = keepalive
        self.status_delay = status_delay
        self.requests = set()
        self._status_call = None
        self._keepalive_call = None
        controller.subscribe(self._on_event)

    def open(self, request):
        """Serve `request` as an event stream; the Deferred fires when the client goes away."""
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"x-accel-buffering", b"no")
        request.write(b"retry: 2000\n\n" + sse("status", self.status()))
        self.requests.add(request)
        if self._keepalive_call is None:
            self._keepalive_call = self.clock.callLater(self.keepalive, self._ping)
        done = defer.Deferred()
        request.notifyFinish().addBoth(lambda _: (self._close(request), done.callback(None)))
        return done

    def _close(self, request):
        self.requests.discard(request)
        if not self.requests and self._keepalive_call is not None and self._keepalive_call.active():
            self._keepalive_call.cancel()
            self._keepalive_call = None

    def _send(self, data):
        for request in list(self.requests):
            try:
                request.write(data)
            except Exception:
                self.requests.discard(request)

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
