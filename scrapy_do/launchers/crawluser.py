"""Who crawls run as: the `crawl-user`, found once at start-up and checked before any crawl runs.

A daemon that may switch users (root, or one holding CAP_SETUID, CAP_SETGID,
CAP_KILL and CAP_CHOWN, as the systemd unit grants) runs every crawl and
`scrapy list` as an unprivileged user, so pushed code can read its project
and write only its project's data directory. With no `crawl-user` set such a
daemon takes `nobody` (or creates `scrapy-do-crawl` where there is none);
`crawl-user = root` is the only way to crawl as root. A daemon that may not
switch runs crawls as itself.

The switch itself happens in the crawl (child.py): the daemon passes the ids
in the environment, so spawning stays a cheap posix_spawn.
"""

import grp
import os
import pwd
import subprocess
from dataclasses import dataclass

from twisted.logger import Logger

from scrapy_do.errors import ConfigError, StartupError

log = Logger(namespace="scrapy_do.launchers.crawluser")

#: The environment variable that tells child.py whom to become.
ENV_KEY = "SCRAPY_DO_CRAWL_USER"
DEFAULT_USER = "nobody"
CREATED_USER = "scrapy-do-crawl"
#: CAP_CHOWN (data directories), CAP_KILL (stopping crawls), CAP_SETGID, CAP_SETUID.
NEEDED_CAPABILITIES = (0, 5, 6, 7)


@dataclass(frozen=True)
class CrawlUser:
    """The account crawls switch to; `None` in its place means "the daemon's own user"."""

    name: str
    uid: int
    gid: int
    groups: tuple = ()

    def environment(self):
        """What child.py needs to become this user, plus the names a crawl expects to see."""
        groups = ",".join(str(g) for g in self.groups)
        return {ENV_KEY: f"{self.uid}:{self.gid}:{groups}", "USER": self.name, "LOGNAME": self.name}


def parse_ids(text):
    """'65534:65534:1,2' -> (65534, 65534, (1, 2)); ValueError if malformed."""
    uid, gid, groups = text.split(":")
    return int(uid), int(gid), tuple(int(g) for g in groups.split(",") if g)


def effective_capabilities(status="/proc/self/status"):
    """The set of capability numbers in effect, from /proc (empty where there is none)."""
    try:
        with open(status, encoding="ascii") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    bits = int(line.split()[1], 16)
                    return {n for n in range(64) if bits >> n & 1}
    except (OSError, ValueError):
        pass
    return set()


def can_switch_users(euid=None, capabilities=None):
    if (os.geteuid() if euid is None else euid) == 0:
        return True
    held = effective_capabilities() if capabilities is None else capabilities
    return all(c in held for c in NEEDED_CAPABILITIES)


def _account(name):
    entry = pwd.getpwnam(name)
    groups = tuple(sorted({entry.pw_gid, *(g.gr_gid for g in grp.getgrall() if name in g.gr_mem)}))
    return CrawlUser(name=name, uid=entry.pw_uid, gid=entry.pw_gid, groups=groups)


def _create_account(name):
    """A system account with no home and no login shell (Debian's `useradd --system`)."""
    try:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", name], check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        raise StartupError(f"no user {DEFAULT_USER!r} to run crawls as, and creating {name!r} failed ({e}); "
                           "create an unprivileged user and set [scrapy-do] crawl-user to it") from None
    log.info("created the system user {name} to run crawls as", name=name)
    return _account(name)


def resolve(setting, euid=None, capabilities=None, lookup=_account, create=_create_account):
    """The user crawls run as for the `crawl-user` value `setting`, or None for the daemon's own user."""
    euid = os.geteuid() if euid is None else euid
    own = pwd.getpwuid(euid).pw_name if _known_uid(euid) else str(euid)
    switch = can_switch_users(euid, capabilities)
    setting = setting.strip()
    if not setting:
        if not switch:
            log.info("crawls run as the daemon's own user {user}: they can read and write everything it can, "
                     "the store included (see 'Running untrusted projects' in the docs)", user=own)
            return None
        try:
            user = lookup(DEFAULT_USER)
        except KeyError:
            try:
                user = lookup(CREATED_USER)
            except KeyError:
                user = create(CREATED_USER)
        log.info("crawls run as the unprivileged user {user} (uid {uid}); set [scrapy-do] crawl-user to choose "
                 "another", user=user.name, uid=user.uid)
        return user
    try:
        user = lookup(setting)
    except KeyError:
        raise ConfigError("scrapy-do", "crawl-user", f"{setting!r} is no user on this machine; create it "
                          "(useradd --system NAME) or name an existing one") from None
    if user.uid == euid:
        if euid == 0:
            log.warn("crawls run as root (crawl-user = root): pushed projects can do anything on this machine")
        return None
    if not switch:
        raise ConfigError("scrapy-do", "crawl-user", f"{setting!r} needs a daemon that may switch users (root, "
                          f"or CAP_SETUID, CAP_SETGID, CAP_KILL and CAP_CHOWN); this one runs as {own}: leave "
                          "crawl-user empty to run crawls as the daemon's user")
    if user.uid == 0:
        log.warn("crawls run as uid 0 ({name}): pushed projects can do anything on this machine", name=user.name)
    else:
        log.info("crawls run as {user} (uid {uid})", user=user.name, uid=user.uid)
    return user


def _known_uid(uid):
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        return False


def probe(python, user, tree_root, child_module, environ=None, timeout=60.0):
    """Check, as `user`, that a crawl can start: run the interpreter's imports and enter the store's trees.

    A root daemon whose interpreter or store sits under a private home
    (pyenv's in /root, mode 0700) would otherwise fail every crawl; it stops
    start-up instead, saying what the user cannot reach.
    """
    if user is None:
        return
    env = {"PATH": os.defpath, **{k: v for k, v in (environ or os.environ).items() if k.startswith("LC_")},
           **user.environment(), "SCRAPY_DO_CWD": str(tree_root)}
    try:
        done = subprocess.run([python, "-m", child_module, "--probe"], env=env, capture_output=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as e:
        raise StartupError(f"cannot check that crawls can run as {user.name}: {e}") from None
    if done.returncode != 0:
        reason = (done.stderr.decode("utf-8", "replace").strip().splitlines() or ["no reason given"])[-1]
        raise StartupError(
            f"crawls cannot run as {user.name} (crawl-user): {reason}. The crawl user needs to read the "
            f"interpreter and packages ({python}) and to enter the project store; install Scrapy Do where "
            "other users can read it (e.g. a venv made with /usr/bin/python3, outside /root), set [scrapy-do] "
            "crawl-user to a user who can, or set crawl-user = root knowingly")
