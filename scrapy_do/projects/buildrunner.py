"""Runs one step of an environment build so that nothing of it outlives the daemon.

`python -m scrapy_do.projects.buildrunner ARGV...` leads a process group of
its own, becomes the crawl user (as child.py does), asks for SIGTERM when the daemon dies (the parent-death signal) and
then kills the whole group: uv and the build backends it started. The
daemon stops a build past its timeout by killing the group too.
"""

import os
import signal
import subprocess
import sys

from scrapy_do.launchers.child import arm_parent_death_signal, become_crawl_user


def main(argv):
    try:
        os.setsid()
    except OSError:  # already a group leader
        pass
    signal.signal(signal.SIGTERM, lambda *_: os.killpg(0, signal.SIGKILL))
    become_crawl_user()  # what a package's build runs is the project's code: not the daemon's to run
    arm_parent_death_signal()  # after the switch, which clears it
    step = subprocess.Popen(argv)
    code = step.wait()
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
