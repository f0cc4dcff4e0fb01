"""The project store on disk: unpacked trees, kept archives, spider listing.

Layout under the project store directory::

    archives/<name>.zip      the last pushed archive (written temp + rename)
    trees/<name>.<token>/    the unpacked project; crawls run here
    trees/.incoming-<token>/ a push being checked; removed or renamed

    archives/.incoming-<token>.zip  a push's archive, kept once its checks pass

A push unpacks and lists spiders beside the current tree, so a failing push
leaves the old project untouched; switching is two renames and one record.

An archive comes as bytes or as a file (the API keeps a big upload in a
temporary file): it is read, unpacked and copied in a thread, never on the
reactor, and never held in memory whole when it is a file.
"""

import io
import os
import re
import shutil
import sys
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path

from twisted.internet import defer, threads
from twisted.logger import Logger

from scrapy_do.projects import archives, data as project_data
from scrapy_do.errors import BadArchive
from scrapy_do.launchers.local import list_spiders_command, run_command
from scrapy_do.projects.environments import python_in
from scrapy_do.projects.requirements import parse as parse_requirements

log = Logger(namespace="scrapy_do.projects.store")

_CHUNK = 1 << 16


@dataclass
class Prepared:
    """A pushed project that passed every check but is not live yet.

    `data` is where its archive waits to be kept: the staged file (archives/.incoming-*.zip) that `commit`
    renames into place, or bytes (stand-ins in tests), which `commit` writes.
    """

    name: str
    spiders: tuple
    data: object
    incoming: Path
    environment: dict | None = None  # projects.environments.Environment.summary() plus its key


_CAUSE = re.compile(r"^(?:[\w.]+\.)?(\w*(?:Error|Exception|Exit)\w*)(?::\s*(.*))?$")
_WHERE = re.compile(r'^\s*File "([^"]+)", line (\d+)')
_MISSING = re.compile(r"No module named '([^']+)'")


def error_cause(text, tree=None):
    """What a failed `scrapy list` says first: the exception, where it was raised (in the project if it was), and
    for a missing module that it belongs in requirements.txt; None when the output holds no traceback."""
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    cause = next((m for m in map(_CAUSE.match, reversed(lines)) if m), None)
    if cause is None:
        return None
    said = cause.group(0).strip()
    places = [(m.group(1), m.group(2)) for m in map(_WHERE.match, lines) if m]
    if tree is not None:
        own = [(f, n) for f, n in places if f.startswith(str(tree))]
        places = [(os.path.relpath(f, tree), n) for f, n in own] or places
    if places:
        said += f" ({places[-1][0]}, line {places[-1][1]})"
    missing = _MISSING.search(said)
    if missing:
        top = missing.group(1).split(".")[0]
        said += (f"; if {top!r} is a package from an index, list it in requirements.txt next to scrapy.cfg "
                 "and push again")
    return said


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


def _open_zip(source):
    """A ZipFile over the file object `source`, or BadArchive (the messages of archives.open_archive)."""
    source.seek(0, os.SEEK_END)
    if not source.tell():
        raise BadArchive("the archive is empty; send a zip of your project folder in the 'archive' field")
    source.seek(0)
    try:
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, NotImplementedError) as e:
        raise BadArchive(f"the archive is not a valid zip file ({e}); create it with e.g. "
                         "'zip -r proj.zip proj'") from None


def extract(source, dest, limits):
    """Unpack the project folder of the zip in the file object `source` into the new directory `dest`.

    archives.extract for a file instead of bytes, with the same checks (archives.inspect first, then
    each member's real path and the real number of bytes written) and the same errors. Returns the
    project name; on error `dest` may hold a partial tree, which the caller removes.
    """
    with _open_zip(source) as zf:
        return archives.extract_zip(zf, dest, limits)


def _stage(source, path):
    """Copy the file object `source` to `path` and flush it to disk (in a thread)."""
    source.seek(0)
    with open(path, "xb") as out:
        shutil.copyfileobj(source, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())


def _source(data):
    """A file object of its own over the archive `data` (bytes, or a file object whose descriptor is shared)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return io.BytesIO(data)
    try:
        fd = data.fileno()
    except (AttributeError, OSError):  # an in-memory file object
        data.seek(0)
        return io.BytesIO(data.read())
    data.flush()
    # A descriptor of our own: the request may close its file object while the thread still reads.
    return os.fdopen(os.dup(fd), "rb")


class ProjectStore:
    def __init__(self, root, reactor, limits, list_timeout=60.0, python=sys.executable, environ=None,
                 data_root=None, user=None, environments=None):
        self.root = Path(root)
        self.trees = self.root / "trees"
        self.archives = self.root / "archives"
        self.data_root = Path(data_root) if data_root is not None else self.root / "spider-data"
        #: The crawluser.CrawlUser that runs `scrapy list` and owns the data directories; None: ourselves.
        self.user = user
        self._reactor = reactor
        self.limits = limits
        self.list_timeout = list_timeout
        self.python = python
        self.environ = dict(os.environ if environ is None else environ)
        #: Builds the environments of projects with a requirements.txt (projects.environments); None: none.
        self.environments = environments

    def open(self):
        """Create the directories; called from startService, not the constructor.

        The crawl user may pass through `trees` and `spider-data` (not list
        them) and read a tree; archives are the daemon's alone.
        """
        for d, mode in ((self.trees, 0o711), (self.archives, 0o700), (self.data_root, 0o711)):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, mode)
        if self.environments is not None:
            self.environments.open()

    def data_dir(self, name):
        """The project's data directory (SPIDER_DATA_DIR, and `.scrapy` in its tree): the only place its
        crawls may write; made on first use, owned by the crawl user."""
        path = self.data_root / name
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            return path
        if self.user is not None:
            os.chown(path, self.user.uid, self.user.gid)
        return path
    def _in_thread(self, fn, *args):
        return threads.deferToThreadPool(self._reactor, self._reactor.getThreadPool(), fn, *args)

    @defer.inlineCallbacks
    def prepare(self, data):
        """Unpack the archive `data` (bytes or a file object) off the reactor thread, list its spiders and
        stage the archive; fire a `Prepared`."""
        token = uuid.uuid4().hex
        incoming = self.trees / f".incoming-{token}"
        staged = self.archives / f".incoming-{token}.zip"
        source = _source(data)
        environment = None
        try:
            name = yield self._in_thread(extract, source, str(incoming), self.limits)
            environment = yield self._environment(incoming, name)
            spiders = yield self.list_spiders(incoming, name, self.python_of(environment))
            yield self._in_thread(_stage, source, staged)
        except BaseException:
            self.release_environment(environment)
            yield self._in_thread(shutil.rmtree, incoming, True)
            _unlink(staged)
            raise
        finally:
            source.close()
        return Prepared(name=name, spiders=tuple(spiders), data=staged, incoming=incoming, environment=environment)

    @defer.inlineCallbacks
    def _environment(self, tree, name):
        """The environment of the tree's requirements.txt (built if need be), or None when it has none."""
        path = Path(tree) / "requirements.txt"
        if self.environments is None or path.is_symlink() or not path.is_file():
            return None
        data = yield self._in_thread(path.read_bytes)
        requirements = parse_requirements(data)
        if not requirements:
            return None
        env = yield self.environments.ensure(requirements, project=name)
        return {"key": env.key, **env.summary()}

    def python_of(self, environment):
        """The interpreter a project version with `environment` (a Project's or Prepared's) runs in."""
        if environment is None or self.environments is None:
            return self.python
        return python_in(self.environments.path(environment["key"]))

    def release_environment(self, environment):
        """The push that prepared `environment` (a Prepared's) is recorded or dropped."""
        if environment is not None and self.environments is not None:
            self.environments.release(environment["key"])

    def collect_environments(self, live):
        """Delete the environments that no key in `live` names."""
        if self.environments is not None:
            self.environments.collect(set(live))

    @defer.inlineCallbacks
    def list_spiders(self, tree, name, python=None):
        """Run `python -m scrapy list` in `tree` without blocking the reactor."""
        argv, env, stdin = list_spiders_command(python or self.python, self.user, self.environ, tree)
        code, out, err, timed_out = yield run_command(self._reactor, argv, str(tree), env, self.list_timeout,
                                                      stdin=stdin)
        if timed_out:
            raise BadArchive(f"listing the spiders of {name!r} took longer than {self.list_timeout:g} s "
                             "(spider-list-timeout); does the project do slow work at import time?")
        if code != 0:
            text = err.decode("utf-8", "replace")
            cause = error_cause(text, tree)
            raise BadArchive(f"cannot list the spiders of {name!r}: "
                             + (cause or f"'scrapy list' exited with {code}") + "\n\n" + error_tail(text, 40, 6000))
        spiders = [line.strip() for line in out.decode("utf-8", "replace").splitlines() if line.strip()]
        if not spiders:
            raise BadArchive(f"project {name!r} has no spiders; 'scrapy list' printed nothing")
        return spiders

    def commit(self, prepared):
        """Make `prepared` the live tree; return the tree path. The caller records it."""
        tree = self.trees / f"{prepared.name}.{uuid.uuid4().hex[:12]}"
        os.replace(prepared.incoming, tree)
        kept = self.archives / f"{prepared.name}.zip"
        if isinstance(prepared.data, Path):
            os.replace(prepared.data, kept)  # staged and flushed in `prepare`
        else:
            atomic_write(kept, prepared.data)
        return tree

    def discard(self, prepared):
        if isinstance(prepared.data, Path):
            _unlink(prepared.data)
        return self._in_thread(shutil.rmtree, prepared.incoming, True)

    def remove_tree(self, tree):
        """Delete an unpacked tree in a thread (up to max-unpacked-size of files); fires when it is gone."""
        tree = Path(tree)
        if tree.parent != self.trees:
            return defer.succeed(None)
        return self._in_thread(shutil.rmtree, tree, True)

    def list_data(self, name):
        """The files the project's crawls wrote (in a thread: a cache may hold thousands): (files, truncated)."""
        root = self.data_root / name
        if not root.is_dir():
            return defer.succeed(([], False))
        return self._in_thread(project_data.list_files, str(root))

    def open_data(self, name, relative):
        """A file of the project's data directory, opened without following any symlink (see data.py)."""
        return project_data.open_beneath(str(self.data_root / name), relative)

    def purge_data(self, name):
        return self._in_thread(shutil.rmtree, self.data_root / name, True)

    def remove_archive(self, name):
        try:
            (self.archives / f"{name}.zip").unlink()
        except FileNotFoundError:
            pass

    def collect_garbage(self, live_trees):
        """Remove trees nothing refers to: old versions, interrupted pushes (and their staged archives)."""
        live = {Path(t).name for t in live_trees}
        removed = []
        for entry in self.trees.iterdir():
            if entry.name not in live:
                log.info("removing unused tree {tree}", tree=str(entry))
                removed.append(self._in_thread(shutil.rmtree, entry, True))
        for entry in self.archives.glob(".incoming-*.zip"):
            _unlink(entry)
        return defer.DeferredList(removed)


def _unlink(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
