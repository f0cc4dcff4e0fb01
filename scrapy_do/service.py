"""The composition root: the only place that builds and wires the daemon's parts."""

import ipaddress
import os
import shutil

from twisted.application.service import MultiService, Service
from twisted.internet import defer
from twisted.logger import Logger

from scrapy_do import lagprobe
from scrapy_do.projects.archives import Limits
from scrapy_do.web.auth import AuthWrapper, check_auth_db
from scrapy_do.web.guard import CrossSiteGuard, ServedHosts
from scrapy_do.engine.controller import Controller
from scrapy_do.engine.webhooks import HttpPoster, Webhooks
from scrapy_do.errors import ScrapyDoError, StartupError, UnusableStore
from scrapy_do.launchers import crawluser
from scrapy_do.launchers.cgroups import CrawlCgroups
from scrapy_do.launchers.local import CHILD_MODULE, ProcessLauncher
from scrapy_do.launchers.logfiles import LogHub
from scrapy_do.launchers.warmpool import WarmPool
from scrapy_do.metrics import Metrics
from scrapy_do.projects.environments import Environments
from scrapy_do.projects.store import ProjectStore
from scrapy_do.store import SqliteStore
from scrapy_do.web.tls import ReloadingContextFactory
from scrapy_do.web.api import WebAPI

log = Logger(namespace="scrapy_do.service")


class WebServer(Service):
    """Listens on each configured interface; a busy port stops start-up."""

    name = "web"

    def __init__(self, reactor, site, interfaces, tls=None, on_bound=None, report_site=None):
        self._reactor = reactor
        self.site = site
        self.report_site = report_site  # what an HTTPS daemon's crawls report to, on loopback
        self.interfaces = interfaces
        self.tls = tls
        self.on_bound = on_bound  # called with the daemon's own URL once the first port listens
        self.ports = []

    def startService(self):
        scheme = "https" if self.tls else "http"
        for host, port in self.interfaces:
            try:
                if self.tls:
                    self.ports.append(self._reactor.listenSSL(port, self.site, self.tls, interface=host))
                else:
                    self.ports.append(self._reactor.listenTCP(port, self.site, interface=host))
            except Exception as e:
                raise StartupError(f"cannot listen on {host}:{port}: {e}") from None
            shown = f"[{host}]" if ":" in host else host
            log.info("Scrapy Do web interface is available at {scheme}://{addr}:{port}/",
                     scheme=scheme, addr=shown, port=self.ports[-1].getHost().port)
        if self.on_bound is not None and self.ports and self.tls and self.report_site is not None:
            # Crawls would need to trust the daemon's certificate (and it changes at renewals): an HTTPS
            # daemon takes its crawls' reports, and only those, over plain HTTP on loopback.
            try:
                port = self._reactor.listenTCP(0, self.report_site, interface="127.0.0.1")
            except Exception as e:
                raise StartupError(f"cannot listen on 127.0.0.1 for the crawls' reports: {e}") from None
            self.ports.append(port)
            log.info("crawls report over loopback port {port} (report endpoints only)", port=port.getHost().port)
            self.on_bound(f"http://127.0.0.1:{port.getHost().port}")
        elif self.on_bound is not None and self.ports and not self.tls:
            # Crawls report to the first interface (a wildcard address: its loopback).
            host, _ = self.interfaces[0]
            host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
            self.on_bound(f"http://{f'[{host}]' if ':' in host else host}:{self.ports[0].getHost().port}")
        super().startService()

    def stopService(self):
        super().stopService()
        ports, self.ports = self.ports, []
        return defer.DeferredList([defer.maybeDeferred(p.stopListening) for p in ports])


class StoreService(Service):
    """Creates the project store and opens the database, once the ports are bound.

    So a start that fails early (a busy port) leaves no fresh database behind.
    """

    name = "store"

    def __init__(self, config, store):
        self.config = config
        self.store = store

    def startService(self):
        try:
            self.config.project_store.mkdir(parents=True, exist_ok=True)
            # Crawls of another user pass through it to their project (no listing); the rest stays ours.
            os.chmod(self.config.project_store, 0o711)
        except OSError as e:
            raise UnusableStore(f"cannot create the project store {self.config.project_store}: "
                               f"{e.strerror}") from None
        warn_if_logs_may_fill_the_disk(self.config)
        self.store.open()
        super().startService()


def _mib(size):
    return f"{size / (1 << 20):.1f} MiB"


def warn_if_logs_may_fill_the_disk(config):
    """Running crawls may log up to max-log-size each to .out and .err: say so if the disk cannot take it."""
    if not config.max_log_size:
        return
    try:
        free = shutil.disk_usage(config.project_store).free
    except OSError:
        return
    worst = 2 * config.job_slots * config.max_log_size
    if worst > free:
        log.warn("the disk of the project store {store} has {free} free, but the logs of {slots} running crawls "
                 "may reach {worst} (2 x job-slots x max-log-size {cap}): when the disk is full, logs lose output "
                 "and new jobs are refused (507); lower max-log-size or free some space",
                 store=str(config.project_store), free=_mib(free), slots=config.job_slots, worst=_mib(worst),
                 cap=_mib(config.max_log_size))


class CrawlAccount(Service):
    """Finds the user crawls run as and checks that a crawl can start as that user, before any does."""

    name = "crawl-user"

    def __init__(self, config, launcher, projects):
        self.config = config
        self.launcher = launcher
        self.projects = projects

    def startService(self):
        user = crawluser.resolve(self.config.crawl_user)
        crawluser.probe(self.launcher.python, user, self.config.project_store, CHILD_MODULE, self.launcher.environ)
        self.launcher.user = self.projects.user = user
        if getattr(self.projects, "environments", None) is not None:
            self.projects.environments.user = user
        super().startService()


class WarmStarts(Service):
    """The warm parents crawls fork from (launchers/warmpool.py): stopped with the daemon, after its crawls."""

    name = "warm-starts"

    def __init__(self, pool):
        self.pool = pool

    def stopService(self):
        super().stopService()
        return self.pool.close()


class BackendCheck(Service):
    """At start-up, say whether the cluster crawls go to answers: a warning when it does not, never a stop."""

    def __init__(self, launcher):
        self.launcher = launcher

    def startService(self):
        super().startService()
        self.launcher.check()


def cluster_launcher(config, reactor, watcher):
    """The launcher of `[executor] backend`, when it is not the local one (imported only then)."""
    from scrapy_do.launchers.ray import RayLauncher
    from scrapy_do.launchers.rayjobs import RayJobs

    return RayLauncher(reactor, RayJobs(reactor, config.ray_address), num_cpus=config.ray_entrypoint_num_cpus,
                       runtime_env=config.ray_runtime_env, poll=config.ray_poll_interval,
                       log_limit=config.max_log_size, hub=watcher, index_url=config.index_url,
                       extra_index_urls=config.extra_index_urls, find_links=config.find_links)


class ScrapyDoService(MultiService):
    """Binds the web ports, then starts the controller; if either fails the daemon stops."""

    def __init__(self, reactor, store):
        super().__init__()
        self._reactor = reactor
        self.store = store
        self.failed = None
        self.exit_status = 0

    def startService(self):
        try:
            super().startService()
        except ScrapyDoError as e:
            self._fail(e.msg, getattr(e, "exit_status", 1))
            return
        except Exception as e:  # a bug, but the daemon must not linger half-started
            log.failure("start-up failed")
            self._fail(f"{type(e).__name__}: {e}")
            return
        controller = getattr(self, "controller", None)
        if controller is not None:
            controller.recovered.addErrback(self._recovery_failed)

    def _recovery_failed(self, failure):
        if failure.check(ScrapyDoError):
            self._fail(failure.value.msg, getattr(failure.value, "exit_status", 1))
        else:
            log.failure("recovery failed", failure)
            self._fail(f"recovery failed: {failure.type.__name__}: {failure.value}")

    def _fail(self, message, exit_status=1):
        self.failed = message
        self.exit_status = exit_status
        log.critical("scrapy-do cannot start: {message}", message=message)
        self._reactor.callLater(0, self._reactor.stop)

    @defer.inlineCallbacks
    def stopService(self):
        yield super().stopService()
        self.store.close()


def _loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def make_service(config, reactor):
    """Build the daemon for `config` on `reactor`; nothing is touched until it starts."""
    tls = ReloadingContextFactory(config.key, config.cert, config.chain) if config.https else None
    auth = None
    if config.auth:
        tokens = check_auth_db(config.auth_db, config.tokens_db)
        auth = lambda resource: AuthWrapper(resource, config.auth_db, basic=config.https,  # noqa: E731
                                            open_metrics=not config.metrics_auth, tokens=tokens,
                                            trusted_proxies=config.trusted_proxies)
    elif config.tokens_db is not None:
        raise StartupError("[web] tokens-db is set but [web] auth is off, so no token would be checked and "
                           "anyone could call the API: set [web] auth = on (with an auth-db), or empty tokens-db")
    elif any(not _loopback(host) for host, _ in config.interfaces):
        log.warn("the web interface listens beyond this machine with auth off: anyone who can reach it can "
                 "run code here; set [web] auth = on")

    served = ServedHosts(config.interfaces, config.allowed_hosts)
    # Outermost: a rebinding or cross-site request is refused before credentials are even checked.
    wrap = lambda resource: CrossSiteGuard(auth(resource) if auth else resource, served)  # noqa: E731
    store = SqliteStore(config.database, config.zone)
    # Crawl logs (and build logs) are written by the daemon; followers of a live log hear of each write
    # from the hub.
    watcher = LogHub()
    environments = Environments(config.environments, reactor, index_url=config.index_url,
                                extra_index_urls=config.extra_index_urls, find_links=config.find_links,
                                timeout=config.environment_build_timeout, hub=watcher)
    projects = ProjectStore(config.project_store, reactor,
                            Limits(config.max_unpacked_size, config.max_archive_files),
                            list_timeout=config.spider_list_timeout, data_root=config.spider_data_dir,
                            environments=environments)
    warm = (WarmPool(reactor, limit=config.warm_parents, idle=config.warm_idle, grace=config.cancel_grace)
            if config.warm_start and config.warm_parents > 0 and config.backend == "local" else None)
    launcher = ProcessLauncher(reactor, grace=config.cancel_grace, log_limit=config.max_log_size, hub=watcher,
                               cgroups=CrawlCgroups(), warm=warm)
    crawls = launcher if config.backend == "local" else cluster_launcher(config, reactor, watcher)
    controller = Controller(config, store, projects, crawls, reactor, hub=watcher)
    top = ScrapyDoService(reactor, store)
    webhooks = Webhooks(controller, store, reactor, hooks=config.webhooks, secret=config.webhook_secret,
                        concurrency=config.webhook_concurrency, retry_for=config.webhook_retry_for,
                        first_retry=config.webhook_first_retry,
                        post=HttpPoster(reactor, config.webhook_timeout, config.webhook_concurrency),
                        zone=config.zone)
    api = WebAPI(controller, config, reactor, watcher=watcher, metrics=Metrics(controller), webhooks=webhooks,
                 warm=warm)
    # The ports are bound first: a busy port stops start-up before any crawl starts.
    WebServer(reactor, api.site(wrap), config.interfaces, tls,
              on_bound=lambda url: setattr(controller, "report_url", config.ray_report_url or url
                                           if crawls is not launcher else url),
              report_site=api.site(wrap, reports_only=True) if tls else None).setServiceParent(top)
    StoreService(config, store).setServiceParent(top)
    CrawlAccount(config, launcher, projects).setServiceParent(top)
    if warm is not None:
        WarmStarts(warm).setServiceParent(top)
    if crawls is not launcher:
        BackendCheck(crawls).setServiceParent(top)
    controller.setServiceParent(top)
    webhooks.setServiceParent(top)
    probe = lagprobe.from_environment(reactor)  # opt-in monitoring for bench/lag.py; None unless asked for
    if probe is not None:
        probe.setServiceParent(top)
    top.controller = controller
    top.webhooks = webhooks
    top.api = api
    return top
