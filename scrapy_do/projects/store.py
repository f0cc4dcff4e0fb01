"""The project store on disk: unpacked trees, kept archives, spider listing.

Layout under the project store directory::

    archives/<name>.zip      the last pushed archive (written temp + rename)
    trees/<name>.<token>/    the unpacked project; crawls run here
    trees/.incoming-<token>/ a push being checked; removed or renamed

A push unpacks and lists spiders beside the current tree, so a failing push
leaves the old project untouched; switching is one rename and one record.
"""

import os
import shutil
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

from twisted.internet import defer, threads
from twisted.logger import Logger

from scrapy_do.projects import archives
from scrapy_do.errors import BadArchive
from scrapy_do.launchers.local import run_command

log = Logger(namespace="scrapy_do.projects.store")


@dataclass
class Prepared:
    """A pushed project that passed every check but is not live yet."""

    name: str
    spiders: tuple
    data: bytes
    incoming: Path


def error_tail(text, lines=12, chars=2000):
    """The useful end of a traceback: its last lines, trimmed."""
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return "\n".join(kept)[-chars:]


def atomic_write(path, data):
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class ProjectStore:
    def __init__(self, root, reactor, limits, list_timeout=60.0, python=sys.executable, environ=None):
        self.root = Path(root)
        self.trees = self.root / "trees"
        self.archives = self.root / "archives"
        self._reactor = reactor
        self.limits = limits
        self.list_timeout = list_timeout
        self.python = python
        self.environ = dict(os.environ if environ is None else environ)

    def open(self):
        """Create the directories; called from startService, not the constructor."""
        for d in (self.trees, self.archives):
            d.mkdir(parents=True, exist_ok=True)

    @defer.inlineCallbacks
    def prepare(self, data):
        """Unpack `data` off the reactor thread and list its spiders; fire a `Prepared`."""
        incoming = self.trees / f".incoming-{uuid.uuid4().hex}"
        try:
            name = yield threads.deferToThreadPool(self._reactor, self._reactor.getThreadPool(),
                                                   archives.extract, data, str(incoming), self.limits)
            spiders = yield self.list_spiders(incoming, name)
        except BaseException:
            shutil.rmtree(incoming, ignore_errors=True)
            raise
        return Prepared(name=name, spiders=tuple(spiders), data=data, incoming=incoming)

    @defer.inlineCallbacks
    def list_spiders(self, tree, name):
        """Run `python -m scrapy list` in `tree` without blocking the reactor."""
        argv = [self.python, "-m", "scrapy", "list"]
        code, out, err, timed_out = yield run_command(self._reactor, argv, str(tree), self.environ,
                                                      self.list_timeout)
        if timed_out:
            raise BadArchive(f"listing the spiders of {name!r} took longer than {self.list_timeout:g} s "
                             "(spider-list-timeout); does the project do slow work at import time?")
        if code != 0:
            raise BadArchive(f"cannot list the spiders of {name!r} ('scrapy list' exited with {code}); "
                             "fix the project or install what it imports on the server:\n"
                             + error_tail(err.decode("utf-8", "replace")))
        spiders = [line.strip() for line in out.decode("utf-8", "replace").splitlines() if line.strip()]
        if not spiders:
            raise BadArchive(f"project {name!r} has no spiders; 'scrapy list' printed nothing")
        return spiders

    def commit(self, prepared):
        """Make `prepared` the live tree; return the tree path. The caller records it."""
        tree = self.trees / f"{prepared.name}.{uuid.uuid4().hex[:12]}"
        os.replace(prepared.incoming, tree)
        atomic_write(self.archives / f"{prepared.name}.zip", prepared.data)
        return tree

    def discard(self, prepared):
        shutil.rmtree(prepared.incoming, ignore_errors=True)

    def remove_tree(self, tree):
        tree = Path(tree)
        if tree.parent == self.trees:
            shutil.rmtree(tree, ignore_errors=True)

    def remove_archive(self, name):
        try:
            (self.archives / f"{name}.zip").unlink()
        except FileNotFoundError:
            pass

    def collect_garbage(self, live_trees):
        """Remove trees nothing refers to: old versions, interrupted pushes."""
        live = {Path(t).name for t in live_trees}
        for entry in self.trees.iterdir():
            if entry.name not in live:
                log.info("removing unused tree {tree}", tree=str(entry))
                shutil.rmtree(entry, ignore_errors=True)
