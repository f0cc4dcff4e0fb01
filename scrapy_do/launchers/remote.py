"""Entry point of a crawl on a cluster: `python -m scrapy_do.launchers.remote` (the Ray backend's entrypoint).

On a cluster the daemon is not the crawl's parent, so nothing reads its
pipes: this wrapper runs the crawl exactly as the local launcher does
(`child.py`, with the payload and report address on its stdin) and sends
what the crawl prints to the daemon, as it comes, over the same
authenticated channel as its stats and items (`POST <logs>.out|.err?offset=N`
with the run's token). Every chunk says its byte offset, so one sent twice
is written once, and what the daemon could not take waits (up to MAX_BACKLOG
per stream) and goes with the next try. It also copies the output to its own
stdout and stderr, which is the cluster's log of the job (`ray job logs`).

What the crawl needs comes in the environment variable SCRAPY_DO_JOB (a
JSON object {"spider", "args", "report", "project"}), never on the command
line; it is removed before the crawl starts. The crawl stays in this
process's group, so the cluster's stop (SIGTERM to the group, then SIGKILL)
reaches it; this wrapper ignores SIGTERM itself and keeps sending output
until the crawl has ended. Only the standard library: the cluster's
environment needs Scrapy, nothing of the daemon's.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

JOB_KEY = "SCRAPY_DO_JOB"
#: How often output goes to the daemon (and at once when this much waits).
INTERVAL, CHUNK = 0.5, 256 << 10
#: What waits per stream when the daemon cannot be reached; later output is dropped, said once.
MAX_BACKLOG = 16 << 20
#: How long the last output may take to reach the daemon once the crawl ended (a daemon that restarts);
#: `ray-runtime-env = {"env_vars": {"SCRAPY_DO_OUTPUT_WAIT": "S"}}` sets it.
CLOSE_SECONDS = 30.0
SEND_TIMEOUT = 10.0


class Stream:
    """One of the crawl's outputs: what the daemon has (`acked`, a byte offset) and what waits for it."""

    def __init__(self, kind, url, token, copy_to):
        self.kind = kind
        self.url = url
        self.token = token
        self.copy_to = copy_to
        self.waiting = bytearray()
        self.acked = 0
        self.dropped = 0
        self.lock = threading.Lock()

    def add(self, data):
        self.copy_to.write(data)
        self.copy_to.flush()
        with self.lock:
            if len(self.waiting) + len(data) > MAX_BACKLOG:
                if not self.dropped:
                    self.copy_to.write(b"[scrapy-do] the daemon cannot be reached; further output is only here\n")
                self.dropped += len(data)
                return
            self.waiting += data

    def send(self):
        """Send what waits (at most CHUNK); True when the daemon took it (or there was nothing)."""
        with self.lock:
            data = bytes(self.waiting[:CHUNK])
            offset = self.acked
        if not data or self.url is None:
            return True
        request = urllib.request.Request(f"{self.url}.{self.kind}?offset={offset}", data=data, method="POST",
                                         headers={"Authorization": f"Bearer {self.token}",
                                                  "Content-Type": "application/octet-stream"})
        try:
            with urllib.request.urlopen(request, timeout=SEND_TIMEOUT) as answer:
                received = int(json.loads(answer.read())["received"])
        except urllib.error.HTTPError as e:
            if e.code in (400, 403, 413):
                # Refused as such (the job is over, or the chunk is bad): sending it again changes nothing.
                with self.lock:
                    del self.waiting[: len(data)]
                    self.acked += len(data)
                return True
            return False
        except (OSError, ValueError, KeyError, TypeError):
            return False
        with self.lock:
            taken = max(0, min(received - self.acked, len(self.waiting)))
            del self.waiting[:taken]
            self.acked += taken
        return True

    @property
    def pending(self):
        with self.lock:
            return len(self.waiting)


def pump(pipe, stream):
    for data in iter(lambda: os.read(pipe.fileno(), 65536), b""):
        stream.add(data)


def sender(streams, done):
    """Send each stream's output every INTERVAL until `done` and all is sent (main() bounds the wait for a
    daemon that does not answer once the crawl ended)."""
    while True:
        finished = done.wait(INTERVAL)
        ok = all([stream.send() for stream in streams])
        while ok and any(stream.pending >= CHUNK for stream in streams):  # a chatty crawl: keep up with it
            ok = all([stream.send() for stream in streams])
        if finished and not any(stream.pending for stream in streams):
            return
        if finished and not ok:
            time.sleep(INTERVAL)  # the daemon is away (restarting?): try again


def node_data_dir(project):
    """Where the crawl's relative paths land on this node: kept between crawls of the project on it."""
    base = os.environ.get("SCRAPY_DO_NODE_DATA") or os.path.join(os.path.expanduser("~"), ".scrapy-do", "data")
    path = os.path.join(base, project or "project")
    try:
        os.makedirs(path, exist_ok=True)
        return path
    except OSError:
        return None


def main():
    try:
        job = json.loads(os.environ.pop(JOB_KEY))
        spider, args, report = job["spider"], list(job["args"]), job.get("report")
    except (KeyError, ValueError, TypeError) as e:
        print(f"scrapy-do: this entrypoint runs a crawl the daemon sent in {JOB_KEY}; it is missing or bad ({e})",
              file=sys.stderr)
        return 2
    env = dict(os.environ, SCRAPY_DO_CWD=os.getcwd(), SCRAPY_DO_PARENT_PID=str(os.getpid()),
               SCRAPY_DO_KEEP_GROUP="1")
    data = node_data_dir(job.get("project"))
    if data:
        env["SCRAPY_DO_DATA"] = env["SPIDER_DATA_DIR"] = data
    logs = (report or {}).get("logs")
    token = (report or {}).get("token")
    streams = [Stream("out", logs, token, sys.stdout.buffer), Stream("err", logs, token, sys.stderr.buffer)]
    crawl = subprocess.Popen([sys.executable, "-m", "scrapy_do.launchers.child", "crawl", spider],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the crawl (same group) stops; its last output still goes
    crawl.stdin.write(json.dumps({"args": args, "report": report}).encode())
    crawl.stdin.close()
    readers = [threading.Thread(target=pump, args=(pipe, stream), daemon=True)
               for pipe, stream in zip((crawl.stdout, crawl.stderr), streams)]
    done = threading.Event()
    sending = threading.Thread(target=sender, args=(streams, done), daemon=True)
    for thread in (*readers, sending):
        thread.start()
    code = crawl.wait()
    for reader in readers:
        reader.join(timeout=5)
    done.set()
    try:
        wait = float(os.environ.get("SCRAPY_DO_OUTPUT_WAIT", CLOSE_SECONDS))
    except ValueError:
        wait = CLOSE_SECONDS
    sending.join(timeout=wait)
    left = sum(stream.pending for stream in streams)
    if left:
        print(f"[scrapy-do] {left} bytes of output could not be sent to the daemon", file=sys.stderr)
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
