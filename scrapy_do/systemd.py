"""Telling systemd how the daemon is doing (sd_notify), without libsystemd.

Under `Type=notify` systemd waits for READY=1 before it calls the service
started, so units ordered after it start once the API answers, not once the
process exists. STOPPING=1 says a shutdown has begun. With `WatchdogSec=`
systemd restarts a daemon that stops sending WATCHDOG=1: the reactor sends it,
so a hung reactor stops feeding the watchdog. The protocol is one datagram of
`KEY=VALUE` lines to the unix socket named in $NOTIFY_SOCKET (a path, or a name
in Linux's abstract namespace written with a leading '@').
"""

import os
import socket

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

log = Logger(namespace="scrapy_do.systemd")

#: What systemd hands the service alone: taken out of the environment, so that nothing the daemon
#: starts (crawls, `scrapy list`, environment builds) can speak to systemd in its name.
VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def take(environ):
    """Remove systemd's variables from `environ` (the process's own, usually); what they were."""
    return {name: environ.pop(name) for name in VARIABLES if name in environ}


def socket_address(name):
    """The address to send to for $NOTIFY_SOCKET: a path, or '@name' in the abstract namespace; None
    when there is none or it is of a kind this daemon does not speak (vsock)."""
    if not name:
        return None
    if name.startswith("@"):
        return "\0" + name[1:]
    if name.startswith("/"):
        return name
    return None


def watchdog_interval(variables, pid):
    """Seconds between two WATCHDOG=1: half of $WATCHDOG_USEC, as sd_watchdog_enabled advises; None when
    there is no watchdog or it watches another process ($WATCHDOG_PID)."""
    try:
        usec = int(variables.get("WATCHDOG_USEC", ""))
        owner = int(variables.get("WATCHDOG_PID") or pid)
    except ValueError:
        return None
    if usec <= 0 or owner != pid:
        return None
    return usec / 2e6


class Notifier:
    """Sends notifications to one datagram socket; never blocks the reactor and never raises: systemd not
    listening is no reason to stop serving (the first failure is logged, the rest are not)."""

    def __init__(self, address):
        self.address = address
        # Python's sockets are not inherited by children (PEP 446): crawls do not get this one either.
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.setblocking(False)
        self._warned = False

    def send(self, *lines):
        """Send the `KEY=VALUE` lines in one datagram; whether it went."""
        try:
            self._sock.sendto("\n".join(lines).encode(), self.address)
            return True
        except OSError as e:
            if not self._warned:
                self._warned = True
                log.warn("cannot notify systemd at {address!r}: {error}", address=self.address, error=e.strerror)
            return False

    def close(self):
        self._sock.close()


def ready_status(service):
    """A STATUS= line for `systemctl status` once the daemon serves: where, and how many job slots."""
    parts = []
    try:
        for port in service.getServiceNamed("web").ports:
            host = port.getHost()
            parts.append(f"{host.host}:{host.port}")
    except (AttributeError, KeyError):
        pass
    slots = getattr(getattr(getattr(service, "controller", None), "config", None), "job_slots", None)
    where = f" on {', '.join(parts)}" if parts else ""
    return f"serving{where}" + (f", {slots} job slots" if slots is not None else "")


class Readiness:
    """Follows a ScrapyDoService through its life and tells systemd: READY=1 once its ports are bound and
    recovery is over, STOPPING=1 when shutdown begins, why start-up failed if it did, and WATCHDOG=1 every
    `interval` seconds on `clock` meanwhile (from the reactor: a hung reactor stops feeding it)."""

    def __init__(self, notifier, clock, interval=None):
        self.notifier = notifier
        self.interval = interval
        self._watchdog = None
        if interval:
            self._watchdog = LoopingCall(notifier.send, "WATCHDOG=1")
            self._watchdog.clock = clock
        self.service = None
        self.stopping = False

    def attach(self, reactor, service):
        """Follow `service` on `reactor`. Call it after `service.startService` is queued or done (so `follow`
        runs after it) and before its `stopService` trigger is added (so STOPPING=1 goes out first)."""
        reactor.callWhenRunning(self.follow, service)
        reactor.addSystemEventTrigger("before", "shutdown", self.stopped)
        reactor.addSystemEventTrigger("after", "shutdown", self.close)

    def follow(self, service):
        """The service has started, or failed to: start the watchdog, and wait for the end of recovery."""
        self.service = service
        if self._watchdog is not None and not self._watchdog.running:
            self._watchdog.start(self.interval, now=True)
        if service.failed:
            return  # it stops the reactor: stopped() says why
        recovered = getattr(getattr(service, "controller", None), "recovered", None)
        if recovered is None:
            self._ready(None)
        else:
            recovered.addBoth(self._ready)

    def _ready(self, result):
        # ScrapyDoService's own errback ran first: a failed recovery shows in `failed`.
        if not self.stopping and not self.service.failed:
            self.notifier.send("READY=1", f"STATUS={ready_status(self.service)}")
        return result

    def stopped(self):
        """Shutdown begins: STOPPING=1, or why start-up failed (systemd shows it in `systemctl status`)."""
        if self.stopping:
            return
        self.stopping = True
        failed = self.service is not None and self.service.failed
        if failed:
            self.cannot_start(failed)
        else:
            self.notifier.send("STOPPING=1", "STATUS=stopping")

    def cannot_start(self, reason):
        self.notifier.send(f"STATUS=cannot start: {' '.join(str(reason).split())}")

    def close(self):
        """The reactor has stopped: no more watchdog, and the socket goes."""
        if self._watchdog is not None and self._watchdog.running:
            self._watchdog.stop()
        self.notifier.close()


def from_variables(variables, clock=None, pid=None):
    """A Readiness if systemd asked for notifications (`variables` as `take` returned them), else None:
    then nothing is set up at all. Without a `clock` there is no watchdog (a start that fails early)."""
    address = socket_address(variables.get("NOTIFY_SOCKET"))
    if address is None:
        return None
    interval = watchdog_interval(variables, os.getpid() if pid is None else pid) if clock is not None else None
    return Readiness(Notifier(address), clock, interval)
