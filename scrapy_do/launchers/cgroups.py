"""One cgroup (v2) per crawl, where Linux lets the daemon make them: every process a crawl starts
(a `setsid` grandchild too) is in it, and `cgroup.kill` ends them all at once.

Where cgroups cannot be made (no cgroup2 mount, no write access: a daemon
without systemd's `Delegate=yes`), crawls still get their own session and
process group, which covers everything but a process that leaves it on purpose.
"""

import errno
import os

from twisted.logger import Logger

log = Logger(namespace="scrapy_do.cgroups")

PARENT = "scrapy-do-crawls"


def _cgroup2_mount(mounts="/proc/self/mounts"):
    try:
        with open(mounts, encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 2 and parts[2] == "cgroup2":
                    return parts[1]
    except OSError:
        pass
    return None


def _own_cgroup(path="/proc/self/cgroup"):
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("0::"):
                    return line[3:].strip()
    except OSError:
        pass
    return None


class CrawlCgroups:
    """Makes, kills and removes per-crawl cgroups under the daemon's own cgroup, if it can."""

    def __init__(self, root=None):
        self.root = root
        if root is None:
            mount, own = _cgroup2_mount(), _own_cgroup()
            if mount and own is not None:
                self.root = os.path.join(mount, own.lstrip("/"), PARENT)
        self.available = False

    def open(self):
        """Check once, at start-up, that crawl cgroups can be made here; say which way crawls are contained."""
        if self.root is False:
            return self
        if self.root is None:
            log.info("no cgroup2 here: each crawl is contained by its own session and process group")
            return self
        try:
            os.makedirs(self.root, exist_ok=True)
            probe = os.path.join(self.root, f"probe-{os.getpid()}")
            os.mkdir(probe)
            has_kill = os.path.exists(os.path.join(probe, "cgroup.kill"))
            os.rmdir(probe)
            self.available = has_kill
        except OSError as e:
            log.info("cannot make crawl cgroups under {root} ({e}): each crawl is contained by its own "
                     "session and process group", root=self.root, e=e.strerror)
            return self
        if self.available:
            log.info("each crawl runs in its own cgroup under {root}", root=self.root)
        return self

    def path(self, job_id):
        return os.path.join(self.root, job_id) if self.available else None

    def create(self, job_id):
        """Make the cgroup of a crawl; None if cgroups are not in use."""
        path = self.path(job_id)
        if path is None:
            return None
        try:
            os.mkdir(path)
        except FileExistsError:
            pass
        except OSError as e:
            log.warn("cannot make cgroup {path}: {e}", path=path, e=e.strerror)
            return None
        return path

    def owns(self, path):
        return bool(path) and self.available and os.path.dirname(os.path.normpath(path)) == os.path.normpath(self.root)

    def kill(self, path):
        """SIGKILL every process in the cgroup and remove it once empty (best effort, never raises)."""
        if not self.owns(path):
            return
        try:
            with open(os.path.join(path, "cgroup.kill"), "w") as f:
                f.write("1")
        except FileNotFoundError:
            return
        except OSError as e:
            log.warn("cannot kill cgroup {path}: {e}", path=path, e=e.strerror)
        return self.remove(path)

    def remove(self, path):
        """rmdir the cgroup; True once it is gone, False while members remain (EBUSY)."""
        try:
            os.rmdir(path)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.EBUSY):
                log.warn("cannot remove cgroup {path}: {e}", path=path, e=e.strerror)
            return e.errno != errno.EBUSY
        return True

    def children(self):
        """The job ids that have a cgroup here."""
        if not self.available:
            return []
        try:
            return [entry.name for entry in os.scandir(self.root) if entry.is_dir(follow_symlinks=False)]
        except OSError:
            return []

    def members(self, path):
        try:
            with open(os.path.join(path, "cgroup.procs"), encoding="ascii") as f:
                return [int(x) for x in f.read().split()]
        except (OSError, ValueError):
            return []
