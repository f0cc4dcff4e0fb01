"""Entry point of every crawl process: `python -m scrapy_do.launchers.child crawl SPIDER`.

It leads a new session and process group (so the daemon can signal all it
starts), becomes the crawl user when the daemon names one (crawluser.py),
asks Linux to SIGTERM it when the daemon dies (even by `kill -9`),
reads the rest of its command line (the payload) from stdin, where `ps`
cannot see it, and runs Scrapy's own command line exactly as `python -m
scrapy` would.
"""

import json
import os
import runpy
import signal
import sys

PR_SET_PDEATHSIG = 1
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
CRAWL_USER_KEY = "SCRAPY_DO_CRAWL_USER"  # crawluser.ENV_KEY, not imported: this module stays light


def arm_parent_death_signal():
    """Best effort: only Linux has prctl; elsewhere start-up recovery stops leftovers."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    expected = os.environ.get("SCRAPY_DO_PARENT_PID")
    if expected and os.getppid() != int(expected):
        # The daemon died between fork and prctl: nobody will collect us.
        sys.exit(75)


def _libc():
    import ctypes

    return ctypes, ctypes.CDLL(None, use_errno=True)


def _capabilities(field):
    with open("/proc/self/status", "rb") as f:  # binary: no codec to import after a switch
        for line in f:
            if line.startswith(field.encode() + b":"):
                return int(line.split()[1], 16)
    return 0


def drop_capabilities():
    """A daemon with CAP_SETUID (but not root) keeps its capabilities across setuid: clear them all."""
    if not (_capabilities("CapPrm") or _capabilities("CapAmb")):
        return
    ctypes, libc = _libc()
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    header = (ctypes.c_uint32 * 2)(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()  # two empty {effective, permitted, inheritable}
    if libc.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def become_crawl_user():
    """Switch to the crawl user the daemon named, or exit: a crawl never runs with more than was asked.

    Groups, then gid, then uid (after setuid no other change is allowed);
    then no capability is left and none can be gained (no_new_privs: setuid
    programs such as sudo do not elevate).
    """
    ids = os.environ.pop(CRAWL_USER_KEY, None)
    if not ids:
        return
    _, libc = _libc()  # imported before the switch, while the interpreter's files are surely readable
    try:
        uid, gid, groups = ids.split(":")
        uid, gid = int(uid), int(gid)
        os.setgroups([int(g) for g in groups.split(",") if g])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        drop_capabilities()
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        if os.getuid() != uid or os.geteuid() != uid or _capabilities("CapEff") or _capabilities("CapPrm"):
            raise OSError("the switch did not take")
    except Exception as e:
        print(f"scrapy-do: cannot become the crawl user ({ids}): {e}; the crawl does not run", file=sys.stderr)
        sys.exit(1)


def probe():
    """What a crawl needs before its first line runs (see crawluser.probe); exit 1 naming what is missing."""
    stdlib = os.path.dirname(os.__file__)
    try:
        os.listdir(stdlib)
        import importlib.util
    except Exception as e:
        sys.exit(f"cannot read the standard library at {stdlib} ({getattr(e, 'strerror', None) or e})")
    checks = []
    for name in ("scrapy", "twisted"):
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            sys.exit(f"Python package {name!r} is not importable")
        checks.append((f"the package {name}", spec.origin))
    for what, path in checks:
        try:
            os.listdir(path) if os.path.isdir(path) else open(path, "rb").close()
        except OSError as e:
            sys.exit(f"cannot read {what} at {path} ({e.strerror})")
    tree = os.environ.get("SCRAPY_DO_CWD")
    if tree:
        try:
            os.chdir(tree)
        except OSError as e:
            sys.exit(f"cannot enter the project store's {tree} ({e.strerror})")


def enter_project_tree():
    """Import the project from its tree, and run in its data directory when the daemon names one.

    The tree is read-only to the crawl and replaced by the next push, so
    what a crawl writes with relative paths (FEEDS, JOBDIR, Scrapy's
    `.scrapy` with HTTPCACHE_DIR) goes to the project's data directory,
    which survives pushes. A copy of the project's scrapy.cfg there lets
    Scrapy find the project's settings and put its `.scrapy` beside it. The
    crawl writes it itself, as the crawl user, in its own directory. (The
    daemon does not chdir for us, to spawn cheaply.)
    """
    tree = os.environ.pop("SCRAPY_DO_CWD", None)
    data = os.environ.pop("SCRAPY_DO_DATA", None)
    if not tree:
        return
    sys.path[0] = tree
    os.chdir(tree)
    if not data:
        return
    try:
        with open("scrapy.cfg", "rb") as f:
            config = f.read()
        target = os.path.join(data, "scrapy.cfg")
        current = None
        if os.path.isfile(target) and not os.path.islink(target):
            with open(target, "rb") as f:
                current = f.read()
        if current != config:
            temporary = os.path.join(data, f".scrapy.cfg.{os.getpid()}")
            with open(temporary, "wb") as f:
                f.write(config)
            os.replace(temporary, target)
        os.chdir(data)
    except OSError as e:
        print(f"scrapy-do: cannot run in the data directory {data} ({e}); running in the project's tree, where "
              "relative paths cannot be written", file=sys.stderr)


def read_arguments(stream=None):
    """What the daemon sends on stdin (a JSON object, then EOF): (arguments, report address or None);
    exit if it sends nothing."""
    data = (stream or sys.stdin.buffer).read()
    try:
        sent = json.loads(data)
        return list(sent["args"]), sent.get("report")
    except (ValueError, KeyError, TypeError, AttributeError):
        # The daemon went away before it sent them: nothing to run.
        sys.exit(75)


def add_reporter(report):
    """Let the daemon's extension report this crawl's stats, and its pipeline hand over the items (Scrapy's
    own lists: the project's EXTENSIONS and ITEM_PIPELINES stay as they are)."""
    if not report:
        return
    from scrapy.settings import default_settings

    from scrapy_do.crawl import reporter

    reporter.CONFIG = report
    default_settings.EXTENSIONS_BASE = {**default_settings.EXTENSIONS_BASE,
                                        "scrapy_do.crawl.reporter.Reporter": 1000}
    if report.get("items"):
        # Scrapy's item processor, which hands over what passed the project's pipelines; a project with an
        # ITEM_PROCESSOR of its own keeps it, and then the last pipeline (after every one of the project's,
        # whose orders are small numbers, usually 100 to 1000) hands them over.
        default_settings.ITEM_PROCESSOR = reporter.PROCESSOR
        default_settings.ITEM_PIPELINES_BASE = {**default_settings.ITEM_PIPELINES_BASE,
                                                "scrapy_do.crawl.reporter.ItemCapture": reporter.PIPELINE_ORDER}


def enter_cgroup():
    """Move into the crawl's own cgroup (the daemon made it) before anything else can start a process."""
    path = os.environ.pop("SCRAPY_DO_CGROUP", None)
    if path:
        try:
            with open(os.path.join(path, "cgroup.procs"), "w") as f:
                f.write("0")
        except OSError as e:
            print(f"scrapy-do: cannot enter cgroup {path}: {e}; the process group still contains this crawl",
                  file=sys.stderr)


def lead_own_group():
    """Lead a process group the daemon can signal whole; on a cluster (remote.py) the crawl stays in its
    wrapper's group instead, which the cluster signals."""
    if os.environ.pop("SCRAPY_DO_KEEP_GROUP", None):
        return
    try:
        os.setsid()
    except OSError:  # already a group leader (started by hand)
        pass


if __name__ == "__main__":
    if sys.argv[1:] == ["--probe"]:
        become_crawl_user()
        probe()
        sys.exit(0)
    enter_cgroup()
    lead_own_group()
    become_crawl_user()  # before the parent-death signal: a change of user clears it
    arm_parent_death_signal()
    arguments, report = read_arguments()
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    enter_project_tree()
    add_reporter(report)
    sys.argv = ["scrapy", *sys.argv[1:], *arguments]
    runpy.run_module("scrapy", run_name="__main__", alter_sys=True)
