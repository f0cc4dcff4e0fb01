"""The API's tail beside its peers, in one run: `make install-peers`, then `.venv/bin/python bench/peers.py`.

All three daemons at once, on this machine and the same offline fixture project, three job slots each:
  * Scrapy Do (this tree, warm starts on, its store pre-filled with `--completed` finished jobs);
  * the original Scrapy Do 0.5.0 (`.venv-orig`, as tests/integration/test_migrate.py runs it);
  * scrapyd (`.venv-peers`, run in a copy of the project, which it serves as project "default").
The peers get their finished jobs the only way they can: `--completed` real runs of the `quick` spider
(scrapyd keeps 100 at most). Then each starts three `slow` crawls (an item each 0.1 s: nine in all, light)
and one client sends to one daemon at a time, in `--rounds` turns that add up to `--seconds` each, a 50/50
mix of the status endpoint (`status.json`; scrapyd's `daemonstatus.json`) and the
finished-jobs list (`list-jobs.json?status=COMPLETED`; scrapyd's `listjobs.json`, which lists every job),
with 5 ms between requests, on one keep-alive connection. Taking turns, they share the same moments of the
machine. It prints JSON: p50/p99/max (ms) per daemon and endpoint.
Goal (issue 17): our p99 of both at or below the best peer's.
"""

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from api import fill  # noqa: E402
from load import Client, percentile  # noqa: E402
from tests.helpers import OFFLINE, offline_zip, reachable_tempdir  # noqa: E402
from tests.integration.daemonproc import DaemonProcess, wait_until  # noqa: E402
from tests.integration.test_migrate import ORIG_VENV, OldDaemon, _call  # noqa: E402

PEERS_VENV = Path(os.environ.get("SCRAPY_DO_PEERS_VENV") or ROOT / ".venv-peers")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def slow_payload(seconds):
    return json.dumps({"pages": int(seconds * 10) + 600})


class Ours:
    name = "scrapy-do"
    status, listing = "/status.json", "/list-jobs.json?status=COMPLETED"

    def __init__(self, tmp, completed):
        (tmp / "projects").mkdir()
        fill(tmp / "projects" / "scrapy-do.db", completed)
        self.daemon = DaemonProcess(tmp, "[scrapy-do]\njob-slots = 3\ncompleted-cap = 1000000\n"
                                         "[web]\ninterfaces = 127.0.0.1:0\n")
        self.crawls = []

    def prepare(self, completed):
        self.daemon.start()
        self.port = int(self.daemon.url.rsplit(":", 1)[1])
        self.daemon.push("offline.zip", offline_zip())

    def crawl(self, seconds):
        self.crawls = [self.daemon.schedule("offline", "slow", payload=slow_payload(seconds)) for _ in range(3)]
        for identifier in self.crawls:
            self.daemon.wait_job(identifier, {"RUNNING"}, timeout=60)

    def stop(self):
        for identifier in self.crawls:
            self.daemon.request("/cancel-job.json", {"id": identifier})
        self.daemon.stop()


class Original:
    name = "scrapy-do 0.5.0"
    status, listing = "/status.json", "/list-jobs.json?status=COMPLETED"

    def __init__(self, tmp, completed):
        self.daemon = OldDaemon(tmp)
        self.daemon.conf.write_text(f"[scrapy-do]\nproject-store = {self.daemon.store}\njob-slots = 3\n"
                                    f"completed-cap = {completed + 50}\n[web]\ninterfaces = 127.0.0.1:"
                                    f"{self.daemon.port}\n")
        self.port = self.daemon.port
        self.crawls = []

    def prepare(self, completed):
        self.daemon.start()
        self.daemon.post("/push-project.json", archive=("offline.zip", offline_zip()))
        quick = [self.daemon.schedule("offline", "quick", "now") for _ in range(completed)]
        for identifier in quick:
            self.daemon.wait_job(identifier, {"SUCCESSFUL", "FAILED"}, timeout=600)

    def crawl(self, seconds):
        self.crawls = [self.daemon.schedule("offline", "slow", "now", payload=slow_payload(seconds))
                       for _ in range(3)]
        for identifier in self.crawls:
            self.daemon.wait_job(identifier, {"RUNNING"}, timeout=60)

    def stop(self):
        for identifier in self.crawls:
            _call(self.daemon.url, "/cancel-job.json", {"id": identifier})
        self.daemon.stop()


class Scrapyd:
    name = "scrapyd"
    status, listing = "/daemonstatus.json", "/listjobs.json?project=default"

    def __init__(self, tmp, completed):
        self.tmp = tmp
        self.project = tmp / "project"
        shutil.copytree(OFFLINE, self.project, ignore=shutil.ignore_patterns("__pycache__"))
        self.port = free_port()
        (self.project / "scrapyd.conf").write_text(
            f"[scrapyd]\nbind_address = 127.0.0.1\nhttp_port = {self.port}\nmax_proc = 3\n"
            f"eggs_dir = {tmp / 'eggs'}\nlogs_dir = {tmp / 'logs'}\nitems_dir =\ndbs_dir = {tmp / 'dbs'}\n"
            f"finished_to_keep = {completed}\npoll_interval = 0.5\n")
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.crawls = []

    def call(self, path, fields=None):
        data = urllib.parse.urlencode(fields).encode() if fields else None
        with urllib.request.urlopen(self.url + path, data=data, timeout=30) as response:
            return json.loads(response.read())

    def jobs(self):
        return self.call("/listjobs.json?project=default")

    def prepare(self, completed):
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PATH"] = f"{PEERS_VENV / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
        self.log = open(self.tmp / "scrapyd.log", "ab")  # noqa: SIM115 -- closed in stop()
        self.proc = subprocess.Popen([str(PEERS_VENV / "bin" / "scrapyd")], cwd=self.project, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_until(lambda: self._answers(), 30, "scrapyd answering")
        for _ in range(completed):
            self.call("/schedule.json", {"project": "default", "spider": "quick"})
        wait_until(lambda: len(self.jobs()["finished"]) >= completed, 600, f"{completed} scrapyd jobs", 1.0)

    def crawl(self, seconds):
        self.crawls = [self.call("/schedule.json", {"project": "default", "spider": "slow",
                                                     "payload": slow_payload(seconds)})["jobid"] for _ in range(3)]
        wait_until(lambda: len(self.jobs()["running"]) == 3, 60, "3 scrapyd crawls running", 0.2)

    def _answers(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"scrapyd exited {self.proc.returncode}: see {self.tmp / 'scrapyd.log'}")
        try:
            return self.call("/daemonstatus.json")["status"] == "ok"
        except OSError:
            return False

    def stop(self):
        if self.proc is None:
            return
        for identifier in self.crawls:
            self.call("/cancel.json", {"project": "default", "job": identifier})
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(30)
        self.log.close()


def measure(daemons, seconds, rounds, tmp):
    """One client, one daemon at a time in `rounds` turns of seconds/rounds each: all share the same
    moments of this machine (its other work, the VM's own stalls), so no daemon gets the quieter minute."""
    latencies = {d.name: {"status": [], "list-jobs": []} for d in daemons}
    errors = {d.name: 0 for d in daemons}
    start = time.monotonic()
    for turn in range(rounds):
        for daemon in daemons[turn % len(daemons):] + daemons[:turn % len(daemons)]:  # each goes first in turn
            kinds = [("status", 50, "GET", daemon.status, None), ("list-jobs", 50, "GET", daemon.listing, None)]
            barrier = threading.Barrier(2)
            client = Client(daemon.port, seconds / rounds, 1, barrier, kinds=kinds, pause=0.005)
            client.start()
            barrier.wait(30)
            client.join(seconds + 60)
            for name in ("status", "list-jobs"):
                latencies[daemon.name][name] += client.latencies[name]
            errors[daemon.name] += sum(client.errors.values())
    end = time.monotonic()
    result = {}
    for daemon in daemons:
        result[daemon.name] = {"errors": errors[daemon.name]}
        for name, values in latencies[daemon.name].items():
            values = sorted(values)
            result[daemon.name][name] = {"requests": len(values), "p50_ms": percentile(values, 50),
                                         "p99_ms": percentile(values, 99),
                                         "max_ms": round(values[-1], 2) if values else None}
    return result, (start, end)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--completed", type=int, default=100, help="finished jobs each daemon lists")
    parser.add_argument("--rounds", type=int, default=10, help="turns the client takes among the daemons")
    parser.add_argument("--only", nargs="+", choices=("scrapy-do", "original", "scrapyd"),
                        default=("scrapy-do", "original", "scrapyd"))
    args = parser.parse_args(argv)
    kinds = {"scrapy-do": Ours, "original": Original, "scrapyd": Scrapyd}
    missing = {"original": ORIG_VENV / "bin" / "scrapy-do", "scrapyd": PEERS_VENV / "bin" / "scrapyd"}
    report = {"seconds_each": args.seconds, "rounds": args.rounds, "completed_jobs": args.completed,
              "daemons": {}}
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(reachable_tempdir()))
        daemons = []
        for key in args.only:
            if key in missing and not missing[key].exists():
                report["daemons"][key] = f"not installed ({missing[key]}): run `make install-peers`"
                continue
            (tmp / key).mkdir()
            daemon = kinds[key](tmp / key, args.completed)
            print(f"{daemon.name}: {args.completed} finished jobs, then 3 crawls", file=sys.stderr, flush=True)
            stack.callback(daemon.stop)
            daemon.prepare(args.completed)
            daemons.append(daemon)
        for daemon in daemons:
            daemon.crawl(args.seconds * len(daemons) + 60)
        time.sleep(5)  # past the crawls' own start (a cold one is a second of CPU): they just run now
        figures, _ = measure(daemons, args.seconds, args.rounds, tmp)
        report["daemons"].update(figures)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
