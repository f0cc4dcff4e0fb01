"""Entry point of every crawl process: `python -m scrapy_do.launchers.child crawl SPIDER ...`.

It asks Linux to SIGTERM this process when the daemon dies (even by
`kill -9`), so no crawl outlives its daemon, then runs Scrapy's own command
line exactly as `python -m scrapy` would.
"""

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


if __name__ == "__main__":
    arm_parent_death_signal()
    enter_project_tree()
    sys.argv[0] = "scrapy"
    runpy.run_module("scrapy", run_name="__main__", alter_sys=True)
