"""/metrics latency, run by hand: `.venv/bin/python bench/metrics.py`.

Starts a real `scrapy-do` process over a store holding 10,000 finished jobs (and, with --jobs, any other
number) and measures 500 sequential GET /metrics over one keep-alive connection from this process (median,
p99, the answer's size), beside GET /status.json for comparison. What /metrics reads at each scrape (jobs by
status, busy slots) comes from indexed counts in the database; its counters are kept as jobs end.
Target (issue 16): none given beyond the figure; the API's own is status p99 <= 0.7 ms.
"""

import argparse
import http.client
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api import fill, measure  # noqa: E402  (bench/api.py)

from tests.helpers import reachable_tempdir  # noqa: E402
from tests.integration.daemonproc import DaemonProcess  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000, help="finished jobs in the store (default 10,000)")
    parser.add_argument("--requests", type=int, default=500, help="requests of each kind (default 500)")
    args = parser.parse_args()
    with reachable_tempdir() as tmp:
        tmp = Path(tmp)
        (tmp / "projects").mkdir()
        fill(tmp / "projects" / "scrapy-do.db", args.jobs)
        daemon = DaemonProcess(tmp, "[scrapy-do]\ncompleted-cap = 1000000\n[web]\ninterfaces = 127.0.0.1:0\n")
        daemon.start()
        conn = http.client.HTTPConnection("127.0.0.1", int(daemon.url.rsplit(":", 1)[1]))
        try:
            results = {}
            for name, path in (("metrics", "/metrics"), ("status.json", "/status.json")):
                measure(conn, path, 50)  # warm up
                results[name] = measure(conn, path, args.requests)
            print(json.dumps({f"{args.jobs:,} finished jobs": results}, indent=2))
        finally:
            conn.close()
            daemon.stop()


if __name__ == "__main__":
    main()
