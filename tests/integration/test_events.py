"""The /events stream over a real socket: a status snapshot first, then job changes as they happen."""

import json

import pytest
import pytest_twisted
import treq
from twisted.internet import defer, reactor

from tests.helpers import offline_zip

pytestmark = pytest.mark.integration


def parse(buffer):
    events = []
    for block in buffer.split("\n\n")[:-1]:
        kind = data = None
        for line in block.splitlines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        if kind:
            events.append((kind, data))
    return events


@pytest_twisted.inlineCallbacks
def test_events_stream_pushes_job_changes(daemon):
    """A subscriber gets status first, then PENDING → RUNNING → SUCCESSFUL of a job without asking."""
    yield daemon.controller.push_project(offline_zip())
    response = yield treq.get(f"http://127.0.0.1:{daemon.port}/events", unbuffered=True)
    assert response.headers.getRawHeaders("content-type")[0].startswith("text/event-stream")
    received = []
    done = defer.Deferred()

    def collect(data):
        received.append(data.decode())
        statuses = [d["status"] for k, d in parse("".join(received)) if k == "job"]
        if "SUCCESSFUL" in statuses and not done.called:
            done.callback(statuses)

    d = treq.collect(response, collect)
    job = daemon.controller.schedule_job("offline", "quick")
    statuses = yield done.addTimeout(30, reactor)
    # RUNNING comes again with each stats report of the crawl.
    assert [s for i, s in enumerate(statuses) if i == 0 or statuses[i - 1] != s] == ["PENDING", "RUNNING",
                                                                                      "SUCCESSFUL"]
    events = parse("".join(received))
    assert events[0][0] == "status" and "jobs-run" in events[0][1]
    assert all(d["identifier"] == job.identifier for k, d in events if k == "job")
    response.original.transport.stopProducing() if hasattr(response.original, "transport") else None
    d.cancel()
    d.addErrback(lambda f: None)
