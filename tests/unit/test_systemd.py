"""sd_notify without libsystemd: addresses, the watchdog on a Clock, readiness after recovery, and JSON logs."""

import io
import json
import os
import socket
import uuid

import pytest
from twisted.internet import defer
from twisted.internet.task import Clock
from twisted.logger import LogLevel, Logger, LogPublisher
from twisted.python.failure import Failure

from scrapy_do import logformat, systemd


@pytest.fixture
def listener(tmp_path_factory):
    """A datagram socket standing in for systemd's (a short path: unix socket paths are limited to 108 bytes)."""
    path = tmp_path_factory.mktemp("sd") / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    yield sock
    sock.close()


def received(sock):
    """Every datagram waiting on `sock`, decoded."""
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


class FakeService:
    """What Readiness reads of a ScrapyDoService: failed, controller.recovered, the web ports."""

    def __init__(self, failed=None):
        self.failed = failed
        self.controller = type("C", (), {})()
        self.controller.recovered = defer.Deferred()
        self.controller.config = type("Cfg", (), {"job_slots": 3})()

    def getServiceNamed(self, name):  # noqa: N802 - Twisted's name
        raise KeyError(name)


def test_take_removes_systemds_variables_from_the_environment():
    """take() hands over NOTIFY_SOCKET and WATCHDOG_* and leaves nothing of them for children to inherit."""
    env = {"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7", "PATH": "/bin"}
    assert systemd.take(env) == {"NOTIFY_SOCKET": "/run/n", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}
    assert env == {"PATH": "/bin"}


@pytest.mark.parametrize("name, address", [
    ("/run/systemd/notify", "/run/systemd/notify"),
    ("@sd-notify", "\0sd-notify"),
    ("", None),
    (None, None),
    ("vsock:2:1234", None),
])
def test_socket_address_of_notify_socket(name, address):
    """A path is used as it is, '@' means the abstract namespace, and anything else means no notifications."""
    assert systemd.socket_address(name) == address


@pytest.mark.parametrize("variables, interval", [
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "42"}, 0.5),
    ({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "43"}, None),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "soon"}, None),
    ({}, None),
])
def test_watchdog_interval_is_half_the_timeout_and_only_for_our_pid(variables, interval):
    """WATCHDOG=1 goes every half WATCHDOG_USEC, and not at all when WATCHDOG_PID names another process."""
    assert systemd.watchdog_interval(variables, pid=42) == interval


def test_no_notify_socket_sets_nothing_up():
    """Without NOTIFY_SOCKET there is no Readiness, no socket and no timer."""
    clock = Clock()
    assert systemd.from_variables({"WATCHDOG_USEC": "1000000"}, clock) is None
    assert clock.getDelayedCalls() == []


def test_watchdog_feeds_every_half_interval_on_the_clock(listener):
    """WATCHDOG=1 goes out at once and then every 0.5 s of a 1 s watchdog, driven by the reactor's clock."""
    clock = Clock()
    variables = {"NOTIFY_SOCKET": listener.getsockname(), "WATCHDOG_USEC": "1000000"}
    readiness = systemd.from_variables(variables, clock, pid=1)
    readiness.follow(FakeService())
    times = []
    for _ in range(8):
        times += [clock.seconds() for message in received(listener) if message == "WATCHDOG=1"]
        clock.advance(0.25)
    assert times == [0.0, 0.5, 1.0, 1.5]
    readiness.close()
    assert clock.getDelayedCalls() == []


def test_watchdog_of_another_pid_is_not_fed(listener):
    """A WATCHDOG_PID that is not ours (a child inheriting the variables) starts no watchdog."""
    clock = Clock()
    readiness = systemd.from_variables({"NOTIFY_SOCKET": listener.getsockname(), "WATCHDOG_USEC": "1000000",
                                        "WATCHDOG_PID": str(os.getpid() + 1)}, clock)
    readiness.follow(FakeService())
    clock.advance(5)
    assert received(listener) == []
    assert clock.getDelayedCalls() == []


def test_ready_only_once_recovery_is_over(listener):
    """READY=1 (with a STATUS=) goes out when `recovered` fires, not when the service starts."""
    service = FakeService()
    readiness = systemd.from_variables({"NOTIFY_SOCKET": listener.getsockname()}, Clock())
    readiness.follow(service)
    assert received(listener) == []
    service.controller.recovered.callback(None)
    assert received(listener) == ["READY=1\nSTATUS=serving, 3 job slots"]


def test_failed_recovery_sends_the_reason_and_no_ready(listener):
    """A recovery that fails (ScrapyDoService sets `failed`) gives no READY=1, and the shutdown says why."""
    service = FakeService()
    readiness = systemd.from_variables({"NOTIFY_SOCKET": listener.getsockname()}, Clock())
    readiness.follow(service)
    service.failed = "cannot open the database\nprojects/scrapy-do.db"
    service.controller.recovered.callback(None)
    readiness.stopped()
    assert received(listener) == ["STATUS=cannot start: cannot open the database projects/scrapy-do.db"]


def test_failed_start_sends_no_ready(listener):
    """A start-up that failed before following (a busy port) never says READY=1."""
    service = FakeService(failed="cannot listen on 127.0.0.1:7654")
    readiness = systemd.from_variables({"NOTIFY_SOCKET": listener.getsockname()}, Clock())
    readiness.follow(service)
    service.controller.recovered.callback(None)
    readiness.stopped()
    assert received(listener) == ["STATUS=cannot start: cannot listen on 127.0.0.1:7654"]


def test_stopping_before_recovery_ends_sends_no_ready(listener):
    """SIGTERM during recovery: STOPPING=1, and no READY=1 when recovery then ends."""
    service = FakeService()
    readiness = systemd.from_variables({"NOTIFY_SOCKET": listener.getsockname()}, Clock())
    readiness.follow(service)
    readiness.stopped()
    readiness.stopped()
    service.controller.recovered.callback(None)
    assert received(listener) == ["STOPPING=1\nSTATUS=stopping"]


def test_attach_orders_follow_after_start_and_stopping_first():
    """attach() queues follow for when the reactor runs and STOPPING=1 before shutdown, the socket closed after."""

    class Reactor(Clock):
        def __init__(self):
            super().__init__()
            self.running_calls, self.triggers = [], []

        def callWhenRunning(self, f, *args):  # noqa: N802
            self.running_calls.append((f, args))

        def addSystemEventTrigger(self, phase, event, f):  # noqa: N802
            self.triggers.append((phase, event, f))

    reactor = Reactor()
    readiness = systemd.Readiness(notifier=None, clock=reactor)
    service = FakeService()
    readiness.attach(reactor, service)
    assert reactor.running_calls == [(readiness.follow, (service,))]
    assert reactor.triggers == [("before", "shutdown", readiness.stopped), ("after", "shutdown", readiness.close)]


def test_abstract_socket_name_is_reached():
    """NOTIFY_SOCKET=@name reaches a socket bound in the abstract namespace."""
    name = f"scrapy-do-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        notifier = systemd.Notifier(systemd.socket_address("@" + name))
        assert notifier.send("READY=1")
        assert sock.recv(100) == b"READY=1"
        notifier.close()


def test_unreachable_socket_is_logged_once_and_never_raises(tmp_path_factory):
    """A NOTIFY_SOCKET nobody listens on costs one warning; sends just report False."""
    from twisted.logger import capturedLogs

    notifier = systemd.Notifier(str(tmp_path_factory.mktemp("sd") / "gone"))
    with capturedLogs() as events:
        assert notifier.send("WATCHDOG=1") is False
        assert notifier.send("WATCHDOG=1") is False
    assert [e["log_level"] for e in events] == [LogLevel.warn]
    notifier.close()


# -- log-format = json ------------------------------------------------------


def json_lines(emit):
    out = io.StringIO()
    publisher = LogPublisher(logformat.jsonLineObserver(out))
    emit(Logger(namespace="scrapy_do.test", observer=publisher))
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_json_line_has_time_level_namespace_message_and_fields():
    """An event becomes one object: UTC time with Z, level, namespace, the formatted text, its named values."""
    (line,) = json_lines(lambda log: log.warn("Scrapy Do web interface is available at http://{addr}:{port}/",
                                              addr="127.0.0.1", port=7654))
    assert line["level"] == "warn" and line["namespace"] == "scrapy_do.test"
    assert line["message"] == "Scrapy Do web interface is available at http://127.0.0.1:7654/"
    assert line["time"].endswith("Z") and line["time"][10] == "T"
    assert line["fields"] == {"addr": "127.0.0.1", "port": 7654}
    assert "traceback" not in line


def test_json_line_of_a_failure_has_its_traceback():
    """log.failure() puts the traceback in `traceback` and keeps the message one line."""
    try:
        1 / 0  # noqa: B018
    except ZeroDivisionError:
        failure = Failure()
    (line,) = json_lines(lambda log: log.failure("start-up failed", failure))
    assert line["level"] == "critical" and line["message"] == "start-up failed"
    assert "ZeroDivisionError" in line["traceback"]


def test_json_survives_odd_values():
    """Unserialisable values are repr'd, NaN is not written as bare NaN, and a newline stays in one line."""

    class Broken:
        def __repr__(self):
            raise RuntimeError("no repr")

    out = io.StringIO()
    publisher = LogPublisher(logformat.jsonLineObserver(out))
    log = Logger(namespace="odd", observer=publisher)
    log.info("{thing} {ratio} {broken!s} {text}", thing=object(), ratio=float("nan"), broken=Broken(),
             text="two\nlines \udcff")
    (text,) = out.getvalue().splitlines()
    line = json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))
    assert line["fields"]["thing"].startswith("<object object")
    assert line["fields"]["ratio"] == "nan"
    assert line["fields"]["broken"] == "<unrepresentable Broken>"
    assert line["fields"]["text"] == "two\nlines \udcff"
    text.encode("ascii")  # surrogates and non-ASCII are escaped: any stdout encoding takes it


def test_text_format_is_the_default_observer():
    """log-format = text keeps Twisted's text lines."""
    out = io.StringIO()
    Logger(namespace="t", observer=LogPublisher(logformat.observer_for("text", out))).info("hello {x}", x=1)
    assert out.getvalue().rstrip().endswith("hello 1") and not out.getvalue().startswith("{")
