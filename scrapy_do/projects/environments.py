"""Per-project environments: a project's requirements installed over the daemon's own packages, with uv.

An environment is a virtualenv whose site-packages hold the requirements; a
`.pth` file adds the daemon's site directories after them, so Scrapy and
Scrapy Do are not installed again and what the project pins wins. uv does
not look past a virtualenv's own site-packages, so the daemon's packages
are excluded from its resolution (unless the project names them: then they
are installed in the environment, and win).

Environments are named by `requirements.environment_key` and shared by every
project version with the same requirements. One is built in a folder of
its own and renamed into place when it is complete, so a build that fails,
times out or dies with the daemon leaves nothing that could be used; such
leftovers are deleted at start-up. Builds run as subprocesses and never
block the reactor; pushes that need the same environment wait for one build.
"""

import collections
import contextlib
import os
import stat
import secrets
import shutil
import site
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from twisted.internet import defer, threads
from twisted.logger import Logger
from twisted.python.failure import Failure

from scrapy_do.errors import BadRequest
from scrapy_do.launchers.local import run_command
from scrapy_do.launchers.logfiles import LogFile
from scrapy_do.projects.requirements import environment_key

log = Logger(namespace="scrapy_do.environments")

#: What a build keeps of the daemon's environment: paths, locale, proxies and certificates for the index.
_KEPT = ("PATH", "HOME", "LANG", "LC_ALL", "SSL_CERT_FILE", "SSL_CERT_DIR", "http_proxy", "https_proxy",
         "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")
#: The last lines of a failed build's output that its error shows.
TAIL = 25


class BuildFailed(BadRequest):
    """An environment could not be built; the message ends with the installer's last lines."""


def find_uv():
    """The uv binary of the `uv` package (PyPI), else one on PATH."""
    try:
        import uv

        return uv.find_uv_bin()
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if not found:
            raise BuildFailed("this server cannot build project environments: uv is not installed "
                              "(pip install uv)") from None
        return found


def base_packages():
    """The daemon's own distributions as 'name==version' lines, sorted: what environments are laid over."""
    seen = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name")
        if name:
            seen.setdefault(canonicalize_name(name), dist.version)
    return "\n".join(f"{name}=={version}" for name, version in sorted(seen.items()))


def site_dirs():
    """Where the daemon's packages are (its site directories, in order)."""
    dirs = [*site.getsitepackages()]
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]


def python_in(folder):
    """The interpreter of the environment in `folder`."""
    return str(Path(folder) / "bin" / "python")


@dataclass(frozen=True)
class Environment:
    key: str
    path: Path
    requirements: int
    reused: bool
    seconds: float

    @property
    def python(self):
        return python_in(self.path)

    def summary(self):
        """What a push answers about it."""
        return {"requirements": self.requirements, "reused": self.reused, "seconds": round(self.seconds, 2)}


class Environments:
    def __init__(self, root, reactor, *, index_url="", extra_index_urls=(), find_links=(), timeout=600.0,
                 python=sys.executable, environ=None, uv=None, clock=time.monotonic, hub=None):
        self.root = Path(root)
        self._reactor = reactor
        self.index_url = index_url
        self.extra_index_urls = tuple(extra_index_urls)
        self.find_links = tuple(find_links)
        self.timeout = timeout
        self.python = python
        self.environ = dict(os.environ if environ is None else environ)
        self._uv = uv
        self._clock = clock
        self._building = {}  # key -> list of Deferreds waiting for its build
        self._projects = {}  # project name -> key of the build its push waits for
        self._held = collections.Counter()  # keys pushes in progress use: kept until they are recorded
        self._base = None
        self.hub = hub  # tells followers of a build log of each piece written
        #: The crawluser.CrawlUser builds run as (set with ProjectStore.user at start-up); None: ourselves.
        self.user = None

    def open(self):
        """Create the folder (the crawl user reads environments: 0755) and delete unfinished builds."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        for leftover in self.root.glob(".building-*"):
            shutil.rmtree(leftover, ignore_errors=True)

    @property
    def base(self):
        if self._base is None:
            self._base = base_packages()
        return self._base

    def key(self, requirements):
        return environment_key(requirements, "%d.%d.%d" % sys.version_info[:3], self.base)

    def path(self, key):
        return self.root / key

    def log_path(self, key):
        return self.root / f"{key}.log"

    def building(self, project):
        """(log path, Deferred fired when it ends) of the build a push of `project` waits for, or None."""
        key = self._projects.get(project)
        if key is None or key not in self._building:
            return None
        ended = defer.Deferred()
        self._building[key].append(ended)
        return self.log_path(key), ended

    def ensure(self, requirements, project=None):
        """The environment for `requirements` (normalised specifier lines): at once if it exists, else when
        it is built (one build for every push that asks for it meanwhile); BuildFailed if it cannot be.
        `project` names the push waiting for it (whose build log is then followed live)."""
        key = self.key(requirements)
        path = self.path(key)
        if project is not None:
            self._held[key] += 1  # until `release`: no collect may delete it under the push
        if path.is_dir():
            return defer.succeed(Environment(key, path, len(requirements), True, 0.0))
        waiting = defer.Deferred()
        if project is not None:
            self._projects[project] = key
            waiting.addBoth(self._done_for, project, key)
        if key in self._building:
            self._building[key].append(waiting)
            return waiting
        self._building[key] = [waiting]
        started = self._clock()
        d = self._build(key, requirements)

        def settle(result):
            waiters = self._building.pop(key, [])
            if self.hub is not None:
                self.hub.notify(str(self.log_path(key)))  # followers of the live log: it ended
            for each in waiters:
                if isinstance(result, Failure):
                    each.errback(result)
                else:
                    each.callback(Environment(key, path, len(requirements), False, self._clock() - started))
        d.addBoth(settle)
        return waiting

    def release(self, key):
        """A push that held `key` is recorded (or failed): collect may delete it again if nothing uses it."""
        self._held[key] -= 1
        if self._held[key] <= 0:
            del self._held[key]

    def _done_for(self, result, project, key):
        if self._projects.get(project) == key:
            del self._projects[project]
        return result

    @defer.inlineCallbacks
    def _build(self, key, requirements):
        # The build runs what the project's packages bring (a source distribution's build code) as the crawl
        # user, in a folder of that user's (`env`) inside one of the daemon's (`scratch`, with the inputs the
        # daemon writes: it never writes where the crawl user can). Complete, it becomes the daemon's.
        scratch = self.root / f".building-{key}-{secrets.token_hex(4)}"
        building = scratch / "env"
        cache = self.root / (".cache" if self.user is None else f".cache-{self.user.uid}")
        log_path = self.log_path(key)
        uv = self._uv or find_uv()
        env = {k: v for k, v in self.environ.items() if k in _KEPT}
        env.update(UV_CACHE_DIR=str(cache), HOME=str(scratch), SCRAPY_DO_PARENT_PID=str(os.getpid()))
        if self.user is not None:
            env.update(self.user.environment())
        yield threads.deferToThread(self._make_scratch, scratch, building, cache, requirements)
        try:
            os.unlink(log_path)  # an earlier failed build's: this one is written from the start
        except FileNotFoundError:
            pass
        output = LogFile(log_path, 1 << 20, self.hub)
        try:
            yield self._run(output, [uv, "venv", "--no-config", "--quiet", "--allow-existing", "--python",
                                     self.python, str(building)], env)
            # The daemon's site directories after the environment's own, written by the crawl user too.
            lines = "".join(f"import site; site.addsitedir({d!r})\n" for d in site_dirs())
            yield self._run(output, [python_in(building), "-c", _WRITE_PTH, lines], env, quiet=True)
            install = [uv, "pip", "install", "--no-config", "--python", python_in(building),
                       "-r", str(scratch / "requirements.txt"), "--excludes", str(scratch / "excludes.txt")]
            if self.index_url:
                install += ["--index-url", self.index_url]
            for url in self.extra_index_urls:
                install += ["--extra-index-url", url]
            for link in self.find_links:
                install += ["--find-links", link]
            if not self.index_url and not self.extra_index_urls and self.find_links:
                install.append("--no-index")  # only what find-links offers: nothing from the network
            yield self._run(output, install, env)
            yield threads.deferToThread(_own, building)
            os.replace(building, self.path(key))
            shutil.rmtree(scratch, ignore_errors=True)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        finally:
            output.close()
        log.info("built environment {key} ({n} requirements)", key=key, n=len(requirements))

    def _make_scratch(self, scratch, building, cache, requirements):
        """The daemon's scratch folder with the build's inputs, and in it the crawl user's `env` (and the crawl
        user's cache, which lives on between builds)."""
        scratch.mkdir(mode=0o755)
        named = {canonicalize_name(Requirement(r.split(" --hash")[0]).name) for r in requirements}
        excluded = [line.split("==")[0] for line in self.base.splitlines() if line.split("==")[0] not in named]
        (scratch / "excludes.txt").write_text("".join(f"{n}\n" for n in excluded))
        (scratch / "requirements.txt").write_text("".join(f"{r}\n" for r in requirements))
        for name in ("excludes.txt", "requirements.txt"):
            os.chmod(scratch / name, 0o644)
        building.mkdir(mode=0o700)
        cache.mkdir(mode=0o700, exist_ok=True)
        if self.user is not None:
            for folder in (building, cache):
                os.chown(folder, self.user.uid, self.user.gid)

    @defer.inlineCallbacks
    def _run(self, output, argv, env, quiet=False):
        if not quiet:
            output.write(("$ uv " + " ".join(argv[1:3]) + "\n").encode())
        # Through buildrunner: the step and what it starts die with the daemon, or at the timeout.
        argv = [self.python, "-m", "scrapy_do.projects.buildrunner", *argv]
        code, out, err, timed_out = yield run_command(self._reactor, argv, str(self.root), env, self.timeout,
                                                      on_output=output.write, group=True)
        if timed_out:
            output.write(f"scrapy-do: stopped after {self.timeout:g} s (environment-build-timeout)\n".encode())
            raise BuildFailed(f"building the project's environment took longer than {self.timeout:g} s "
                              "(environment-build-timeout)")
        if code != 0:
            text = (out + err).decode("utf-8", "replace").strip().splitlines()
            raise BuildFailed("cannot install the project's requirements.txt:\n" + "\n".join(text[-TAIL:]))

    def packages(self, key):
        """[{"name", "version"}] of what the environment holds itself (not the daemon's packages under it)."""
        found = {}
        for folder in self.path(key).glob("lib/python*/site-packages"):
            for dist in metadata.distributions(path=[str(folder)]):
                name = dist.metadata.get("Name")
                if name:
                    found[canonicalize_name(name)] = dist.version
        return [{"name": name, "version": version} for name, version in sorted(found.items())]

    def collect(self, live):
        """Delete the environments no key in `live` names (a project version that still runs keeps its own),
        nor a push in progress holds."""
        live = set(live) | set(self._held) | set(self._building)
        for path in self.root.iterdir():
            if path.name.startswith("."):
                continue
            if path.suffix == ".log":
                if path.stem not in live and not self.path(path.stem).is_dir() and path.stem not in self._building:
                    path.unlink(missing_ok=True)  # a failed build's
                continue
            if path.name not in live and path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
                try:
                    os.unlink(self.log_path(path.name))
                except FileNotFoundError:
                    pass


def _own(folder):
    """The finished environment becomes the daemon's: crawls may read it, not change it.

    The crawl user built it and may still hold descriptors into it, so
    nothing here follows a path: every change is made through a descriptor
    opened without following a symlink (os.fwalk gives the folders').
    """
    uid, gid = os.geteuid(), os.getegid()
    for _, dirnames, filenames, dirfd in os.fwalk(folder, follow_symlinks=False):
        try:
            os.fchown(dirfd, uid, gid)
        except PermissionError:
            return  # a daemon that cannot change owners built it as itself
        os.fchmod(dirfd, 0o755)
        for name in filenames + dirnames:
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dirfd)
            except OSError:  # a symlink (ELOOP), or gone: the link itself becomes the daemon's
                with contextlib.suppress(OSError):
                    os.chown(name, uid, gid, dir_fd=dirfd, follow_symlinks=False)
                continue
            try:
                info = os.fstat(fd)
                if stat.S_ISREG(info.st_mode):
                    os.fchown(fd, uid, gid)
                    os.fchmod(fd, (stat.S_IMODE(info.st_mode) | 0o444) & ~0o7022)
            finally:
                os.close(fd)


#: Run by the environment's own Python as the crawl user: the .pth that lays the daemon's packages under it.
_WRITE_PTH = ("import site, sys; open(site.getsitepackages()[0] + '/_scrapy_do_base.pth', 'w')"
              ".write(sys.argv[1])")
