"""Webhook deliveries' cost to the daemon, run by hand: `.venv/bin/python bench/webhooks.py [--seconds 20]`.

Starts a real `scrapy-do` process with `job-slots = 1`, one slow crawl holding the slot for the whole test,
and 10 hooks (`[webhooks] hooks`: one receiver, 10 paths, a secret). Then 10 times a second it schedules a run
`now` (it waits: the slot is taken) and cancels it at once: each canceled run ends CANCELED and makes 10
deliveries, so 100 deliveries a second for 20 API calls a second. The receiver is a separate process (asyncio)
on loopback, so its work is not the daemon's; it answers 200 after 0.2 to 0.5 s, checks each signature and
counts repeats of a delivery id. Phases, one daemon each:
  * no hooks: the same schedule + cancel load with no [webhooks], the floor the deliveries add to;
  * slow receiver, concurrency 64: 64 in flight x ~0.35 s carry ~180/s, more than the 100/s asked;
  * slow receiver, concurrency 4 (the default): ~11/s carried, the rest waits in the database;
  * receiver down (connection refused) and hanging (accepts, never answers), `timeout = 2`;
  * one hook that hangs beside one slow receiver, concurrency 4: what the healthy one still gets.
Measured over the steady state (from 2 s after the load starts to its end): the daemon's CPU (psutil on its
pid: user + system) in % of one core and per delivery (all of it, and over the no-hooks floor), deliveries
acknowledged per second (the receiver's count), the backlog (`pending` in GET /webhooks.json, once a second),
GET /status.json p50/p99 (20 a second, own keep-alive connection) idle and under load, and schedule-job's.
Target (issue 16): none beyond the figures; a slow or dead receiver must not slow the API.
"""

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import http.client
import json
import random
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import offline_zip, reachable_tempdir  # noqa: E402
from tests.integration.daemonproc import DaemonProcess  # noqa: E402

SECRET = "bench-secret"
HOOKS = 10
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
WARM_UP = 2.0


# -- the receiver: a separate process ----------------------------------------

def serve(mode, delay_lo, delay_hi):
    """An HTTP/1.1 receiver on 127.0.0.1 (keep-alive): `slow` answers 200 after a random delay, `hang` reads
    each request and never answers. GET /count answers at once with its counts. Prints its port."""
    counts = {"received": 0, "answered": 0, "bad_signature": 0, "repeats": 0, "open": 0, "max_open": 0}
    seen = set()

    async def handle(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:] if ln)}
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                if method == "GET" and path == "/count":
                    data = json.dumps(counts).encode()
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                                 % len(data) + data)
                    await writer.drain()
                    continue
                counts["received"] += 1
                want = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(want, headers.get("x-scrapy-do-signature", "")):
                    counts["bad_signature"] += 1
                delivery = headers.get("x-scrapy-do-delivery")
                if delivery in seen:
                    counts["repeats"] += 1
                seen.add(delivery)
                counts["open"] += 1
                counts["max_open"] = max(counts["max_open"], counts["open"])
                try:
                    if mode == "hang":
                        await reader.read()  # until the daemon gives up and closes the connection
                        return
                    await asyncio.sleep(random.uniform(delay_lo, delay_hi))
                finally:
                    counts["open"] -= 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                counts["answered"] += 1
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())


class Receiver:
    def __init__(self, mode, delay=(0.2, 0.5)):
        self.proc = subprocess.Popen([sys.executable, __file__, "--serve", mode, str(delay[0]), str(delay[1])],
                                     stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline())
        self.cpu = psutil.Process(self.proc.pid)

    def counts(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", "/count")
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


@contextlib.contextmanager
def receiving(mode):
    receiver = Receiver(mode)
    try:
        yield receiver
    finally:
        receiver.stop()


def closed_port():
    """A loopback port nothing listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the load and the probes -------------------------------------------------

def percentile(values, q):
    if not values:
        return None
    values = sorted(values)
    return round(values[min(len(values) - 1, max(0, int(round(q / 100 * len(values))) - 1))], 2)


def latency(values):
    return {"n": len(values), "p50_ms": percentile(values, 50), "p99_ms": percentile(values, 99),
            "max_ms": round(max(values), 2) if values else None}


class Paced(threading.Thread):
    """Calls `step(conn)` `rate` times a second on its own keep-alive connection until `stop` is set; keeps
    (monotonic time, ms) of each call."""

    def __init__(self, port, rate, step):
        super().__init__(daemon=True)
        self.port, self.rate, self.step = port, rate, step
        self.stop = threading.Event()
        self.times = []
        self.errors = []

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        start, i = time.monotonic(), 0
        while not self.stop.is_set():
            t0 = time.perf_counter()
            try:
                self.step(conn, self)
            except Exception as e:  # noqa: BLE001 - every failure is counted and shown
                self.errors.append(repr(e)[:200])
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.times.append((time.monotonic(), (time.perf_counter() - t0) * 1000))
            i += 1
            self.stop.wait(max(0.0, start + i / self.rate - time.monotonic()))
        conn.close()

    def between(self, t0, t1):
        return [ms for t, ms in self.times if t0 <= t <= t1]


def call(conn, method, path, fields=None):
    body = urllib.parse.urlencode(fields).encode() if fields else None
    conn.request(method, path, body=body, headers=FORM if body else {})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
    return json.loads(data)


def status_probe(conn, _):
    call(conn, "GET", "/status.json")


class Runs:
    """schedule-job now + cancel-job: one CANCELED run (one delivery per hook) a call; times schedule-job."""

    def __init__(self):
        self.schedule_ms = []
        self.ended = 0

    def __call__(self, conn, thread):
        t0 = time.perf_counter()
        job = call(conn, "POST", "/schedule-job.json", {"project": "offline", "spider": "quick", "when": "now"})
        self.schedule_ms.append((time.monotonic(), (time.perf_counter() - t0) * 1000))
        call(conn, "POST", "/cancel-job.json", {"id": job["identifier"]})
        self.ended += 1


class Backlog(threading.Thread):
    """GET /webhooks.json?limit=1 once a second: (monotonic time, pending, delivered, failed)."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop = threading.Event()
        self.samples = []
        self.last = None

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self.stop.wait(1.0):
            body = call(conn, "GET", "/webhooks.json?limit=1")
            self.samples.append((time.monotonic(), body["pending"], body["delivered"], body["failed"]))
            self.last = body
        conn.close()


def cpu_seconds(proc):
    t = proc.cpu_times()
    return t.user + t.system


# -- one phase: one daemon -----------------------------------------------------

def phase(name, seconds, hooks=(), concurrency=4, timeout=None, rate=10.0, drain=0.0, receiver=None):
    """One daemon with `hooks` (URLs), under the schedule + cancel load for `seconds`; its figures."""
    with reachable_tempdir() as tmp:
        tmp = Path(tmp)
        conf = ("[scrapy-do]\njob-slots = 1\ncancel-grace = 1\ncompleted-cap = 1000000\n"
                "[web]\ninterfaces = 127.0.0.1:0\n")
        if hooks:
            lines = "".join(f"    {url} job-ended\n" for url in hooks)
            conf += f"[webhooks]\nhooks =\n{lines}secret = {SECRET}\nconcurrency = {concurrency}\n"
            if timeout is not None:
                conf += f"timeout = {timeout}\n"
        daemon = DaemonProcess(tmp, conf)
        daemon.start()
        try:
            port = int(daemon.url.rsplit(":", 1)[1])
            daemon.push("offline.zip", offline_zip())
            crawl = daemon.schedule("offline", "slow", payload=json.dumps({"pages": int((seconds + drain + 60) * 10)}))
            daemon.wait_job(crawl, {"RUNNING"}, timeout=60)
            time.sleep(1.5)  # past Scrapy's start-up
            proc = psutil.Process(daemon.proc.pid)

            probe = Paced(port, 20, status_probe)
            probe.start()
            time.sleep(3)
            idle_end = time.monotonic()
            idle = latency(probe.between(idle_end - 3, idle_end))

            base = receiver.counts() if receiver else None
            runs = Runs()
            load, backlog = Paced(port, rate, runs), Backlog(port)
            load_start = time.monotonic()
            load.start()
            backlog.start()
            time.sleep(WARM_UP)
            t0, cpu0, rx0, ended0 = time.monotonic(), cpu_seconds(proc), receiver and receiver.counts(), runs.ended
            time.sleep(seconds - WARM_UP)
            t1, cpu1, rx1, ended1 = time.monotonic(), cpu_seconds(proc), receiver and receiver.counts(), runs.ended
            load.stop.set()
            load.join(30)
            window = t1 - t0
            cpu = cpu1 - cpu0
            out = {"phase": name, "steady_s": round(window, 1),
                   "runs_ended_per_s": round((ended1 - ended0) / window, 1),
                   "daemon_cpu_s": round(cpu, 2), "daemon_cpu_pct_of_one_core": round(100 * cpu / window, 1),
                   "status_idle": idle, "status_under_load": latency(probe.between(t0, t1)),
                   "schedule_job_under_load": latency([ms for t, ms in runs.schedule_ms if t0 <= t <= t1]),
                   "api_errors": load.errors[:3] + probe.errors[:3]}
            if hooks:
                out["deliveries_made_per_s"] = round(len(hooks) * (ended1 - ended0) / window, 1)
            if receiver:
                acked = rx1["answered"] - rx0["answered"]
                out["deliveries_acked_per_s"] = round(acked / window, 1)
                out["requests_received_per_s"] = round((rx1["received"] - rx0["received"]) / window, 1)
                out["daemon_cpu_ms_per_acked_delivery"] = round(1000 * cpu / acked, 3) if acked else None
                out["receiver_max_open_requests"] = rx1["max_open"]
            pending = [p for t, p, *_ in backlog.samples if t0 <= t <= t1]
            if hooks:
                out["backlog_pending"] = {"at_start": pending[0] if pending else None, "max": max(pending, default=None),
                                          "at_end": pending[-1] if pending else None}
            if drain:
                t_stop = time.monotonic()
                while time.monotonic() - t_stop < drain and (backlog.last or {}).get("pending", 1):
                    time.sleep(0.2)
                out["drained_s"] = round(time.monotonic() - t_stop, 1) if not backlog.last["pending"] else None
                out["after_drain_status"] = latency(probe.between(t1, time.monotonic()))
            backlog.stop.set()
            probe.stop.set()
            backlog.join(5)
            probe.join(5)
            if receiver:
                rx = receiver.counts()
                out["receiver"] = {k: rx[k] for k in ("received", "answered", "bad_signature", "repeats")}
            out["load_s"] = round(t1 - load_start, 1)
        finally:
            daemon.stop()
        if hooks:
            out["store_after"] = stored(tmp / "projects" / "scrapy-do.db")
        return out


def stored(db):
    """Deliveries by state in the stopped daemon's database, with the attempts made."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT state, COUNT(*), SUM(attempts), MAX(attempts) FROM deliveries "
                            "GROUP BY state").fetchall()
        errors = [e for (e,) in conn.execute("SELECT DISTINCT last_error FROM deliveries WHERE last_error IS NOT NULL")]
    conn.close()
    return {**{state: {"n": n, "attempts": attempts, "max_attempts": most} for state, n, attempts, most in rows},
            "last_errors": errors}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="load of each main phase (default 20)")
    parser.add_argument("--variant-seconds", type=float, default=10.0,
                        help="load of the concurrency-4, down and hanging phases (default 10)")
    parser.add_argument("--serve", nargs=3, metavar=("MODE", "LO", "HI"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve[0], float(args.serve[1]), float(args.serve[2]))
    started = time.monotonic()
    paths = lambda base: [f"{base}/hook{i}" for i in range(HOOKS)]  # noqa: E731
    results = [phase("no hooks (floor)", args.seconds)]
    with receiving("slow") as slow:
        results.append(phase("slow receiver 0.2-0.5 s, concurrency 64", args.seconds, paths(slow.url),
                             concurrency=64, drain=30, receiver=slow))
    with receiving("slow") as slow:
        results.append(phase("slow receiver 0.2-0.5 s, concurrency 4 (default)", args.variant_seconds,
                             paths(slow.url), concurrency=4, receiver=slow))
    results.append(phase("receiver down (connection refused), timeout 2, concurrency 64", args.variant_seconds,
                         paths(f"http://127.0.0.1:{closed_port()}"), concurrency=64, timeout=2))
    with receiving("hang") as hang:
        results.append(phase("receiver hangs (never answers), timeout 2, concurrency 64", args.variant_seconds,
                             paths(hang.url), concurrency=64, timeout=2, receiver=hang))
    with receiving("hang") as hang, receiving("slow") as slow:
        r = phase("one hook hangs, one slow receiver beside it, timeout 2, concurrency 4 (default)",
                  args.variant_seconds, [hang.url + "/hook", slow.url + "/hook"], concurrency=4, timeout=2,
                  receiver=slow)
        r["note"] = "deliveries_acked_per_s: the slow receiver's, of the 10/s made for it"
        results.append(r)
    floor = results[0]["daemon_cpu_s"] / results[0]["steady_s"]
    for r in results[1:]:
        made = r["deliveries_made_per_s"] * r["steady_s"]
        extra = r["daemon_cpu_s"] - floor * r["steady_s"]
        r["daemon_cpu_pct_over_floor"] = round(100 * extra / r["steady_s"], 1)
        if r.get("deliveries_acked_per_s"):
            r["daemon_cpu_ms_per_acked_delivery_over_floor"] = round(
                1000 * extra / (r["deliveries_acked_per_s"] * r["steady_s"]), 3)
        r["deliveries_made_in_steady_state"] = round(made)
    print(json.dumps({"runs_per_s": 10, "cpus": psutil.cpu_count(),
                      "wall_s": round(time.monotonic() - started, 1), "phases": results}, indent=2))


if __name__ == "__main__":
    main()
