"""`scrapy-do`: run the daemon in the foreground, logging to stdout (systemd-friendly).

Two forms are accepted:

* ``scrapy-do [--config FILE]`` (ours), and
* ``scrapy-do [twistd options] scrapy-do --config FILE`` (the original 0.5.0
  form, e.g. ``scrapy-do -n scrapy-do --config FILE``), handed to twistd.
"""

import argparse
import os
import sys

from scrapy_do import __version__
from scrapy_do.errors import ScrapyDoError

TAPNAME = "scrapy-do"

EPILOG = """\
examples:
  scrapy-do                          start with the embedded defaults
                                     (store in ./projects, http://127.0.0.1:7654/)
  scrapy-do --config /etc/scrapy-do/scrapy-do.conf
  scrapy-do -n scrapy-do --config FILE    the original 0.5.0 (twistd) form

See scrapy-do.conf.example for every configuration key.
"""


def _parser():
    parser = argparse.ArgumentParser(
        prog="scrapy-do", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run Scrapy spiders now or on a schedule, behind a REST API. Runs in the foreground "
                    "and logs to stdout; stop it with SIGTERM or Ctrl-C (running local crawls are stopped "
                    "and queued again for the next start; crawls on a Ray cluster go on, and the next start "
                    "follows them).")
    parser.add_argument("-c", "--config", metavar="FILE", help="configuration file (INI); defaults are "
                        "used for anything it leaves out")
    parser.add_argument("--version", action="version", version=f"scrapy-do {__version__}")
    return parser


def run_twistd(argv):
    """The original form: let twistd parse its own options and load our plugin."""
    from twisted.application import app
    from twisted.scripts.twistd import ServerOptions, _SomeApplicationRunner

    from scrapy_do import plugin

    class Options(ServerOptions):
        @property
        def subCommands(self):
            maker = plugin.ServiceMaker()
            self.loadedPlugins = {maker.tapname: maker}
            yield (maker.tapname, None, maker.options, maker.description)

    def run(config):
        if not config.get("logger") and not config.get("logfile") and _log_format(config.subOptions) == "json":
            from scrapy_do.logformat import jsonLineObserver

            config["logger"] = jsonLineObserver
        _SomeApplicationRunner(config).run()

    sys.argv = ["scrapy-do", *argv]
    app.run(run, Options)
    return 1 if plugin.FAILED else 0


def _log_format(options):
    """`[scrapy-do] log-format` of the twistd form's configuration; a bad one is makeService's to report."""
    from scrapy_do.config import load

    try:
        return load((options or {}).get("config")).log_format
    except ScrapyDoError:
        return "text"


def _load_first_use_modules():
    """What the daemon would import at the first schedule, cron spec, POST with a body or zip archive
    (spec.py's lazy imports, email's header policy, zip's name codec): ~8 ms that would stall the reactor
    in the middle of serving (bench/lag.py saw it). Loaded at start instead, for ~1.6 MiB of RSS."""
    import email.policy  # noqa: F401
    import encodings.cp437  # noqa: F401
    import schedule  # noqa: F401

    from scrapy_do.domain import cron  # noqa: F401


def _cannot_start(message, status, readiness):
    print(f"scrapy-do: cannot start: {message}", file=sys.stderr)
    if readiness is not None:
        readiness.cannot_start(message)
    return status


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if TAPNAME in argv:
        return run_twistd(argv)
    args = _parser().parse_args(argv)

    from scrapy_do import systemd
    from scrapy_do.config import load

    # Before anything copies the environment: nothing the daemon starts may notify systemd in its name.
    notify = systemd.take(os.environ)
    try:
        config = load(args.config)
    except ScrapyDoError as e:
        return _cannot_start(e.msg, 2, systemd.from_variables(notify))
    if not config.https:
        # Twisted loads pyOpenSSL for TLS support if it can (about 12 MiB of
        # RSS); a plain-HTTP daemon never uses it, so keep it out.
        sys.modules.setdefault("OpenSSL", None)

    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner

    from scrapy_do.logformat import observer_for
    from scrapy_do.service import make_service

    readiness = systemd.from_variables(notify, reactor)
    try:
        service = make_service(config, reactor)
    except ScrapyDoError as e:
        return _cannot_start(e.msg, 2, readiness)
    globalLogBeginner.beginLoggingTo([observer_for(config.log_format)], redirectStandardIO=False)
    reactor.callWhenRunning(service.startService)
    if readiness is not None:
        readiness.attach(reactor, service)  # READY=1 after recovery, STOPPING=1 before stopService
    # Everything loaded so far lives as long as the daemon: keep it out of the
    # garbage collector's full passes, which otherwise cost milliseconds.
    from scrapy_do import heap

    reactor.callWhenRunning(_load_first_use_modules)
    reactor.callWhenRunning(heap.settle)
    service.controller.subscribe(heap.SettleAfterPush(reactor))  # and so after each push
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()
    if service.failed:
        print(f"scrapy-do: cannot start: {service.failed}", file=sys.stderr)
        return service.exit_status
    return 0
