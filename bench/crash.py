"""`kill -9` endurance, by hand: `.venv/bin/python bench/crash.py [--cycles 50]`.

The loop of tests/integration/test_crash_cycles.py, many more times: each cycle adds slow and quick
jobs to a daemon subprocess (job slots 2) with one periodic job, waits until every slot runs a crawl,
`kill -9`s the daemon, waits for its crawls to go and restarts it. One JSON line per cycle:
  orphans        crawl processes of the dead daemon still alive 15 s after the kill
  gone_s         seconds from the kill until no crawl of the dead daemon was left
  ready_s        seconds from the restart until status.json answered
  refill_s       seconds from then until every slot ran a crawl again
  recover_s      ready_s + refill_s: kill-to-working, less the orphan wait
  stray          jobs in the store nobody created (not ours, not children of the periodic job)
  periodic       the periodic job's status after the restart (must stay SCHEDULED)
At the end the slow jobs are canceled, the quick ones run, and a total line reports jobs lost (created,
not in the store or never terminal), duplicated (stray jobs, quick jobs that did not run exactly once,
terminal counters out of step with terminal jobs) and orphans, with recovery-time figures.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import reachable_tempdir  # noqa: E402
from tests.integration.test_crash_cycles import CrashHarness  # noqa: E402


def figures(values):
    values = sorted(values)
    if not values:
        return {}
    return {"mean": round(statistics.fmean(values), 2), "p50": round(values[len(values) // 2], 2),
            "max": round(values[-1], 2)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--slow-per-cycle", type=int, default=2)
    parser.add_argument("--quick-per-cycle", type=int, default=1)
    parser.add_argument("--workdir", type=Path, help="keep the daemon's files here (default: a temp dir)")
    args = parser.parse_args(argv)

    with reachable_tempdir() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        harness = CrashHarness(workdir, slots=args.slots, slow_per_cycle=args.slow_per_cycle,
                               quick_per_cycle=args.quick_per_cycle, wait=60.0)
        rows = []
        t0 = time.monotonic()
        result = None
        try:
            harness.start()
            for cycle in range(1, args.cycles + 1):
                load_s = harness.load()
                orphans, gone_s, seen = harness.crash()
                ready_s = harness.start()
                periodic = harness.periodic_status()
                stray = len(harness.stray_jobs())
                refill_s = harness.recovered()
                row = {"cycle": cycle, "crawls_killed": seen, "orphans": len(orphans), "gone_s": round(gone_s, 2),
                       "ready_s": round(ready_s, 2), "refill_s": round(refill_s, 2),
                       "recover_s": round(ready_s + refill_s, 2), "stray": stray, "periodic": periodic,
                       "load_s": round(load_s, 2)}
                rows.append(row)
                print(json.dumps(row), flush=True)
            result = harness.finish()
        finally:
            leftovers = harness.stop()
        duplicated = (len(result["stray"]) + len(result["quick_run_count_wrong"])
                      + abs(result["terminal_counters"] - result["terminal_jobs"]))
        total = {
            "cycles": len(rows),
            "jobs_created": len(harness.slow) + len(harness.quick),
            "jobs_lost": len(result["lost"]) + len(result["not_terminal"]),
            "jobs_duplicated": duplicated,
            "quick_not_successful": len(result["quick_not_successful"]),
            "orphans": sum(r["orphans"] for r in rows) + len(leftovers),
            "periodic_not_scheduled_after_restart": sum(r["periodic"] != "SCHEDULED" for r in rows),
            "periodic_children": result["children"],
            "gone_s": figures([r["gone_s"] for r in rows]),
            "ready_s": figures([r["ready_s"] for r in rows]),
            "refill_s": figures([r["refill_s"] for r in rows]),
            "recover_s": figures([r["recover_s"] for r in rows]),
            "wall_s": round(time.monotonic() - t0, 1),
        }
        print(json.dumps({"total": total}, indent=2))
        bad = (total["jobs_lost"] or total["jobs_duplicated"] or total["orphans"]
               or total["periodic_not_scheduled_after_restart"])
        return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
