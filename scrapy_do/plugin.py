"""The twistd plugin: `twistd -n scrapy-do --config FILE`."""

import os

from twisted.application.service import IServiceMaker
from twisted.plugin import IPlugin
from twisted.python import usage
from zope.interface import implementer

from scrapy_do.errors import ScrapyDoError

#: Set when start-up failed, so the `scrapy-do` script can exit non-zero.
FAILED = None


class Options(usage.Options):
    optParameters = [["config", "c", None, "A configuration file to load"]]


@implementer(IServiceMaker, IPlugin)
class ServiceMaker:
    tapname = "scrapy-do"
    description = "A service running Scrapy spiders now or on a schedule."
    options = Options

    def makeService(self, options):
        from twisted.internet import reactor

        from scrapy_do import systemd
        from scrapy_do.config import load
        from scrapy_do.service import make_service

        # Before anything copies the environment: nothing the daemon starts may notify systemd in its name.
        readiness = systemd.from_variables(systemd.take(os.environ), reactor)
        try:
            service = make_service(load(options["config"]), reactor)
        except ScrapyDoError as e:
            if readiness is not None:
                readiness.cannot_start(e.msg)
            raise SystemExit(f"scrapy-do: cannot start: {e.msg}") from None
        if readiness is not None:
            # twistd starts the service before the reactor runs and adds its stopService trigger after this.
            readiness.attach(reactor, service)

        def note_failure():
            global FAILED
            FAILED = service.failed

        reactor.addSystemEventTrigger("after", "shutdown", note_failure)
        return service
