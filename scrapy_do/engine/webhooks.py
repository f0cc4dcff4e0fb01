"""Webhook deliveries: kept in the database until a receiver acknowledges them (2xx), retried with back-off.

Events drive it: the engine's news is turned into deliveries at once (one
transaction; the same news twice makes no second delivery), and sending
starts when there is something due and a free place among `concurrency`. A
single timer waits for the next due retry; nothing polls. A receiver that
failed rests until its failed delivery is due again: once a dead or hanging
one has failed, it holds at most one place (its retry) while the others'
deliveries go on. Places go round the receivers with something due, so
before its first failure a hanging one takes only what the others leave,
for at most `timeout`. A delivery in flight when
the daemon stops stays pending and is sent again at the next start: receivers
get each at least once and tell repeats by their delivery id.
"""

import sys

from twisted.application.service import Service
from twisted.internet import defer, error as net_error, protocol
from twisted.logger import Logger
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from scrapy_do import __version__
from scrapy_do.domain import deliveries as D
from scrapy_do.domain import zones
from scrapy_do.domain.models import Run
from scrapy_do.domain.records import to_record
from scrapy_do.events import JobChanged, ProjectPushed, ScheduleSkipped
from scrapy_do.httpclient import quiet_client

log = Logger(namespace="scrapy_do.webhooks")

#: Ended deliveries kept for the dashboard and /webhooks.json.
KEEP_ENDED = 500
#: What is read of a receiver's answer at most (the rest is dropped with the connection).
MAX_ANSWER = 64 << 10


class Webhooks(Service):
    name = "webhooks"

    def __init__(self, controller, store, clock, hooks=(), secret="", concurrency=4, retry_for=86400.0,
                 first_retry=D.FIRST_RETRY, post=None, zone=zones.UTC):
        self.controller = controller
        self.store = store
        self.clock = clock
        self.hooks = tuple(hooks)
        self.secret = secret
        self.concurrency = concurrency
        self.retry_for = retry_for
        self.first_retry = first_retry
        self.post = post  # post(url, body, headers) -> Deferred firing with the answer's status code
        self.zone = zone
        self._in_flight = {}   # delivery id -> Deferred
        self._resting = {}     # url -> until when no delivery goes there (after a failure)
        self._timer = None
        self._pumping = self._again = False
        self._ended = 0        # ended since the last purge
        # Subscribed from the start: runs that recovery finds ended must be told of too. Events come only once
        # the controller runs, after the store opened.
        controller.subscribe(self._on_event)

    # -- what to tell whom ------------------------------------------------

    def _on_event(self, event):
        now = self.clock.seconds()
        if isinstance(event, JobChanged) and isinstance(event.job, Run) and event.job.status.completed:
            run = event.job
            if not self.hooks and not run.options.notify:
                return
            self._keep(D.targets(self.hooks, "job-ended", run), f"job-ended {run.identifier}", now, run.identifier,
                       job=self._record(run))
        elif isinstance(event, ScheduleSkipped) and self.hooks:
            schedule = event.schedule
            self._keep(D.targets(self.hooks, "schedule-skipped"),
                       f"schedule-skipped {schedule.identifier} {schedule.skipped}", now, schedule.identifier,
                       job=self._record(schedule))
        elif isinstance(event, ProjectPushed) and self.hooks:
            p = event.project
            self._keep(D.targets(self.hooks, "project-pushed"), f"project-pushed {p.name} {p.pushed.timestamp()}",
                       now, None, project={"name": p.name, "spiders": list(p.spiders),
                                           "pushed": zones.show(p.pushed, self.zone)})

    def _record(self, job):
        """The job record a body carries. Every hook's receiver gets it: the job's own receiver is in it by
        origin, as the API shows hooks (a chat hook's path is its secret)."""
        record = to_record(job, self.zone)
        if record.get("notify"):
            record["notify"] = D.origin(record["notify"])
        return record

    def _keep(self, targets, key, now, about, **subject):
        """Keep a delivery per target of `subject` (the body's keys); `about` is the job it concerns."""
        if not targets:
            return
        made = [D.new_delivery(key, url, event, now, about, **subject) for url, event in targets]
        try:
            added = self.store.add_deliveries(made)
        except Exception:
            log.failure("could not keep {n} webhook deliveries for {key}", n=len(made), key=key)
            return
        if added:
            self._pump()

    # -- sending ------------------------------------------------------------

    def startService(self):
        super().startService()
        self._pump()

    def stopService(self):
        super().stopService()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        # What is in flight stays pending in the database: the next start sends it again.
        flying = list(self._in_flight.values())
        for d in flying:
            d.cancel()
        done = defer.DeferredList(flying, consumeErrors=True)
        close = getattr(self.post, "close", None)
        if close is not None:
            done.addBoth(lambda _: close())
        return done

    def _pump(self):
        """Send what is due into the free places. An answer that comes at once (a refused connection) asks
        for another pump from inside this one: it runs after, so no delivery is sent twice."""
        if not self.running:
            return
        if self._pumping:
            self._again = True
            return
        self._pumping = True
        try:
            self._again = True
            while self._again and self.running:
                self._again = False
                self._fill(self.clock.seconds())
        finally:
            self._pumping = False
        self._arm(self.clock.seconds())

    def _fill(self, now):
        self._resting = {url: until for url, until in self._resting.items() if until > now}
        # Each receiver with something due gets a place before any gets a second: one that hangs cannot
        # take every place from the others while its first attempt has not timed out yet.
        for one_per_url in (True, False):
            free = self.concurrency - len(self._in_flight)
            if free <= 0:
                return
            chosen = self.store.pending_deliveries(free, skip=tuple(self._in_flight),
                                                   skip_urls=tuple(self._resting), due_by=now,
                                                   one_per_url=one_per_url)
            for delivery in chosen:
                if delivery.id not in self._in_flight:
                    self._send(delivery, now)

    def _arm(self, now):
        """One timer for the next due retry (or the end of a receiver's rest), if no place is taken by then."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if len(self._in_flight) >= self.concurrency:
            return  # a place freeing pumps again
        nxt = self.store.next_due(skip=tuple(self._in_flight), skip_urls=tuple(self._resting))
        times = [t for t in (nxt, *self._resting.values()) if t is not None]
        if times:
            self._timer = self.clock.callLater(max(min(times) - now, 0), self._pump)

    def _send(self, delivery, now):
        headers = {"Content-Type": "application/json", "User-Agent": f"scrapy-do/{__version__}",
                   "X-Scrapy-Do-Event": delivery.event, "X-Scrapy-Do-Delivery": delivery.id,
                   "X-Scrapy-Do-Timestamp": str(int(now))}
        signature = D.signature(self.secret, delivery.body)
        if signature:
            headers[D.SIGNATURE_HEADER] = signature
        d = defer.maybeDeferred(self.post, delivery.url, delivery.body, headers)
        self._in_flight[delivery.id] = d
        d.addCallbacks(self._answered, self._failed, callbackArgs=(delivery,), errbackArgs=(delivery,))
        d.addErrback(lambda f: log.failure("webhook delivery {id} went wrong", f, id=delivery.id))

    def _answered(self, code, delivery):
        if 200 <= code < 300:
            self._done(D.after_success(delivery, self.clock.seconds()))
        else:
            error = f"HTTP {code}" + (" (redirects are not followed: configure the final URL)"
                                      if 300 <= code < 400 else "")
            self._retry(delivery, error)

    def _failed(self, failure, delivery):
        if not self.running:
            self._in_flight.pop(delivery.id, None)
            return  # stopping cut it off: it stays pending, as it was, for the next start
        self._retry(delivery, _reason(failure))

    def _retry(self, delivery, error):
        now = self.clock.seconds()
        later = D.after_failure(delivery, now, error, self.retry_for, self.first_retry)
        if later.state == D.FAILED:
            log.warn("webhook delivery {id} ({event}) to {url} given up after {n} attempts: {error}",
                     id=delivery.id, event=delivery.event, url=D.origin(delivery.url), n=later.attempts, error=error)
        else:
            self._resting = D.resting_until(delivery.url, later.due, self._resting)
        self._done(later)

    def _done(self, delivery):
        self._in_flight.pop(delivery.id, None)
        try:
            self.store.update_delivery(delivery)
            if delivery.state != D.PENDING:
                self._ended += 1
                if self._ended >= 100:
                    self._ended = 0
                    self.store.purge_deliveries(KEEP_ENDED)
        except Exception:
            # Still pending in the database (a full disk): it goes again, but only after a rest, not at once.
            log.failure("could not record webhook delivery {id}", id=delivery.id)
            self._resting = D.resting_until(delivery.url, self.clock.seconds() + self.first_retry, self._resting)
        self._pump()

    # -- what the API shows ------------------------------------------------

    def summary(self, limit=50, state=None):
        counts = self.store.count_deliveries()
        return {"hooks": [{"url": D.origin(h.url), "events": sorted(h.events)} for h in self.hooks],
                "pending": counts.get(D.PENDING, 0), "delivered": counts.get(D.DELIVERED, 0),
                "failed": counts.get(D.FAILED, 0),
                "deliveries": [self.shown(d) for d in self.store.list_deliveries(limit, state)]}

    def shown(self, d):
        show = lambda t: None if t is None else zones.show(zones.instant(t), self.zone)  # noqa: E731
        return {"id": d.id, "event": d.event, "url": D.origin(d.url), "job": d.job, "state": d.state,
                "attempts": d.attempts, "created": show(d.created),
                "next-attempt": show(d.due) if d.state == D.PENDING else None,
                "last-error": d.last_error, "ended": show(d.ended)}


def _reason(failure):
    from twisted.web.client import ResponseFailed, ResponseNeverReceived

    if failure.check(ResponseFailed, ResponseNeverReceived) and failure.value.reasons:
        # The agent wraps why the exchange broke off; a cancel among them is our timeout.
        inner = failure.value.reasons
        if any(r.check(defer.CancelledError, defer.TimeoutError) for r in inner):
            return "no answer in time"
        failure = inner[0]
    if failure.check(defer.TimeoutError, defer.CancelledError):
        return "no answer in time"
    from twisted.web._newclient import ParseError

    if failure.check(ParseError) and len(failure.value.args) == 2:
        reason, data = failure.value.args
        return f"the answer is not HTTP ({reason}: {data[:120].decode('latin-1')!r})"
    if failure.check(net_error.ConnectionRefusedError):
        return "connection refused"
    if failure.check(net_error.DNSLookupError):
        return "unknown host"
    text = failure.getErrorMessage() or failure.type.__name__
    return " ".join(text.split())


class _Drain(protocol.Protocol):
    """Reads a little of an answer (it is not needed), then lets the connection go."""

    def __init__(self, done):
        self.done = done
        self.seen = 0

    def dataReceived(self, data):
        self.seen += len(data)
        if self.seen > MAX_ANSWER:
            self.transport.stopProducing()

    def connectionLost(self, reason):
        if not self.done.called:
            self.done.callback(None)


@implementer(IPolicyForHTTPS)
class _TLSOnDemand:
    """TLS for https receivers, loaded at the first one: a plain-HTTP daemon keeps pyOpenSSL out otherwise."""

    def creatorForNetloc(self, hostname, port):
        if sys.modules.get("OpenSSL", 0) is None:
            del sys.modules["OpenSSL"]
            from twisted.internet import endpoints
            from twisted.protocols.tls import TLSMemoryBIOFactory

            # Imported while pyOpenSSL was kept out, endpoints took TLS for missing.
            endpoints.TLSMemoryBIOFactory = TLSMemoryBIOFactory
        from twisted.internet import ssl

        return ssl.optionsForClientTLS(hostname.decode("ascii"))


class HttpPoster:
    """POSTs a delivery with treq, gives its status code; redirects are not followed, `timeout` bounds it all."""

    def __init__(self, reactor, timeout, concurrency):
        self.reactor = reactor
        self.timeout = timeout
        self.client = quiet_client(reactor, connect_timeout=timeout, per_host=concurrency, tls=_TLSOnDemand())

    def __call__(self, url, body, headers):
        d = self.client.post(url, data=body, headers=headers, allow_redirects=False, unbuffered=True)
        d.addCallback(self._drained)
        d.addTimeout(self.timeout, self.reactor)
        return d

    def close(self):
        """Let the kept-alive connections go (at a stop)."""
        return self.client.pool.closeCachedConnections()

    def _drained(self, response):
        done = defer.Deferred(lambda _: transport_stop(drain))
        drain = _Drain(done)
        response.deliverBody(drain)
        return done.addCallback(lambda _: response.code)


def transport_stop(drain):
    if drain.transport is not None:
        drain.transport.stopProducing()
