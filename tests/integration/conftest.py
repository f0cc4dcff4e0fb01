import dataclasses

import pytest
import pytest_twisted
from twisted.internet import defer, reactor

from scrapy_do.config import load
from scrapy_do.domain.models import COMPLETED
from scrapy_do.service import make_service
from tests.integration.daemonproc import WARM_START


@pytest.fixture
def daemon(tmp_path):
    """The real daemon (SQLite, real crawls, a real socket on a free port), started in-process."""
    config = dataclasses.replace(load(cwd=tmp_path), job_slots=2, cancel_grace=5.0,
                                 interfaces=(("127.0.0.1", 0),), warm_start=WARM_START)
    service = make_service(config, reactor)
    service.startService()
    assert service.failed is None, service.failed
    pytest_twisted.blockon(service.controller.recovered)
    service.config = config
    service.port = service.getServiceNamed("web").ports[0].getHost().port
    yield service
    pytest_twisted.blockon(service.stopService())


def wait_for_job(controller, identifier, statuses=COMPLETED, timeout=60):
    """A Deferred firing with the job once it reaches one of `statuses` (bounded by `timeout`)."""
    d = defer.Deferred()

    def check(event=None):
        job = controller.store.get_job(identifier)
        if job is not None and job.status in statuses and not d.called:
            unsubscribe()
            d.callback(job)

    unsubscribe = controller.subscribe(check)
    check()
    d.addTimeout(timeout, reactor)
    return d
