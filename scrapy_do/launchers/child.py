"""Entry point of every crawl process: `python -m scrapy_do.launchers.child crawl SPIDER`.

It leads a new session and process group (so the daemon can signal all it
starts), asks Linux to SIGTERM it when the daemon dies (even by `kill -9`),
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


def enter_project_tree():
    """Run where the daemon said (it does not chdir for us, to spawn cheaply)."""
    tree = os.environ.pop("SCRAPY_DO_CWD", None)
    if tree:
        os.chdir(tree)
        sys.path[0] = tree


def read_arguments(stream=None):
    """The arguments the daemon sends on stdin (a JSON object, then EOF); exit if it sends nothing."""
    data = (stream or sys.stdin.buffer).read()
    try:
        return list(json.loads(data)["args"])
    except (ValueError, KeyError, TypeError):
        # The daemon went away before it sent them: nothing to run.
        sys.exit(75)


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
    try:
        os.setsid()
    except OSError:  # already a group leader (started by hand)
        pass


if __name__ == "__main__":
    enter_cgroup()
    lead_own_group()
    arm_parent_death_signal()
    arguments = read_arguments()
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    enter_project_tree()
    sys.argv = ["scrapy", *sys.argv[1:], *arguments]
    runpy.run_module("scrapy", run_name="__main__", alter_sys=True)
