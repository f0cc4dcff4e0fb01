"""Test doubles at the true boundaries: process launching and the on-disk project store."""

import itertools

from twisted.internet import defer
from zope.interface import implementer

from scrapy_do.interfaces import ILauncher, IRun
from scrapy_do.launchers.local import LocalLogs
from scrapy_do.projects.store import Prepared

_pids = itertools.count(40000)


@implementer(IRun)
class FakeCrawl:
    def __init__(self, request):
        self.request = request
        self.pid = next(_pids)
        self.handle = f"fake:{self.pid}"
        self.ended = defer.Deferred()
        self.signals = []
        self.detached = False
        self.detached_by = None

    def detach(self):
        self.detached_by = "daemon stop"

    def stop(self, grace):
        self.signals.append(("TERM", grace))
        return self.ended

    def logs(self):
        return LocalLogs(self.request.out_path, self.request.err_path)

    def finish(self, code=0):
        self.ended.callback(code)


@implementer(ILauncher)
class FakeLauncher:
    """Records each launch; tests end crawls with `finish`."""

    def __init__(self):
        self.launched = []
        self.fail_with = None
        self.reattached = []
        self.alive = {}  # handle -> FakeCrawl that reattach finds

    def launch(self, request):
        if self.fail_with is not None:
            return defer.fail(self.fail_with)
        crawl = FakeCrawl(request)
        self.launched.append(crawl)
        return defer.succeed(crawl)

    def reattach(self, handle, logs=None):
        self.reattached.append(handle)
        return defer.succeed(self.alive.get(handle))

    def collect_garbage(self, finished):
        self.collected = finished

    def by_job(self, job_id):
        return next(c for c in self.launched if c.request.job_id == job_id)

    @property
    def spiders(self):
        return [c.request.options.spider for c in self.launched]


class FakeProjects:
    """Stands in for ProjectStore: `push(name, spiders)` prepares without unpacking anything."""

    def __init__(self, root):
        self.root = root
        self.removed_trees = []
        self.next = None
        self._count = itertools.count()

    def open(self):
        pass

    def collect_garbage(self, live):
        self.live = list(live)

    def prepare(self, data):
        name, spiders = self.next
        return defer.succeed(Prepared(name=name, spiders=tuple(spiders), data=data,
                                      incoming=self.root / f".incoming-{name}"))

    def commit(self, prepared):
        return self.root / f"{prepared.name}.{next(self._count)}"

    def discard(self, prepared):
        pass

    def remove_tree(self, tree):
        self.removed_trees.append(str(tree))

    def remove_archive(self, name):
        pass

    def data_dir(self, name):
        return self.root / "spider-data" / name

    #: No requirements.txt environments: the controller's environment calls have nothing to do.
    environments = None

    def python_of(self, environment):
        return None

    def release_environment(self, environment):
        pass

    def collect_environments(self, live):
        pass

    def purge_data(self, name):
        self.purged = getattr(self, "purged", []) + [name]
        return defer.succeed(None)
