"""A real, local, single-node Ray head for the Ray backend's integration tests.

The head runs from its own virtualenv, `.venv-ray` (`make install-ray`; `make test` builds it), as a
real cluster has its own Python: the daemon's venv never has ray. Tests talk to it the way the Ray
backend does, through the Ray Jobs REST API at `RayHead.address` (http://127.0.0.1:PORT/api/jobs/).

Use the `ray_head` fixture (import it into the test module: `from tests.integration.rayhead import
ray_head`). It skips the test, saying why, when `.venv-ray` has no ray, when `.venv-ray/.unavailable`
says the install failed, or when the head does not come up in time. One head serves the whole
session; each test gets it up (a test that stopped it, or a head that died, is started again before
the next test) and it is stopped at the end of the session, whatever the tests did.

Timing (2 cores, Ray 2.60.0): a start, from `ray start` until the dashboard answers /api/version
and /api/jobs/, takes about 3 s (2.6-4.8 s measured); a stop about 3 s; a trivial job about 1 s from
submission to SUCCEEDED. Every wait here is bounded (start 60 s, stop 20 s, jobs 60 s by default).

Everything listens on 127.0.0.1 only (with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, else Ray swaps
`--node-ip-address 127.0.0.1` for the machine's outward address), on ports picked free in one block
below the kernel's ephemeral range (so no outgoing connection takes one of them between a stop and a
start, which reuses the same ports): GCS, dashboard, dashboard agent (HTTP and gRPC), runtime-env
agent, node manager, object manager, Ray client server, metrics export, the autoscaler's and the
dashboard's metrics (fixed 44217 and 44227 otherwise, which two heads at once would share) and the
worker port range. Ray's own defaults (GCS on 6379, workers from 10002 up) are never used: they
clashed before. Two test sessions can each run a head at the same time.

Stopping kills exactly this head's processes, never another Ray of the machine (`ray stop` would
kill every Ray process of the machine, so it is not used): the head runs as `ray start --head
--block` in a session of its own, and every process it starts (GCS, raylet, dashboard, workers, job
drivers, whose sessions are their own) inherits the environment variable `SCRAPY_DO_TEST_RAY_HEAD`
set to this head's temp dir. `stop()` sends SIGTERM to `ray start --block`, which stops its
processes itself at once (RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0: no 30 s node drain first;
running jobs die with the head), waits, then SIGKILLs whatever still carries the marker or is in
the session. `ray start` also gets SIGTERM when the test process dies, even by SIGKILL
(PR_SET_PDEATHSIG: so start the head from the main thread), so a killed run leaves no head behind.
"""

import atexit
import ctypes
import hashlib
import io
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The cluster's virtualenv (`make install-ray`); SCRAPY_DO_TEST_RAY_VENV names another one.
RAY_VENV = Path(os.environ.get("SCRAPY_DO_TEST_RAY_VENV") or ROOT / ".venv-ray")
#: Set in the head's environment, so in that of every process of this head (the value: its temp dir).
MARKER = "SCRAPY_DO_TEST_RAY_HEAD"
#: Variables of ours that would change the head's behaviour: the job stop wait and signal stay Ray's
#: defaults (SIGTERM, then SIGKILL after 3 s), and no address or interpreter of the test run leaks in.
SCRUBBED = ("RAY_JOB_STOP_WAIT_TIME_S", "RAY_JOB_STOP_SIGNAL", "RAY_ADDRESS", "PYTHONPATH",
            "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")
PORT_NAMES = ("dashboard", "gcs", "node_manager", "object_manager", "ray_client_server",
              "dashboard_agent_listen", "dashboard_agent_grpc", "runtime_env_agent", "metrics_export",
              # Fixed by Ray (44217, 44227) unless these variables say otherwise.
              "AUTOSCALER_METRIC_PORT", "DASHBOARD_METRIC_PORT")
WORKER_PORTS = 100
#: A job's statuses after which it changes no more.
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


class RayHeadError(Exception):
    """The head did not come up (the message says why)."""


def unavailable(venv=RAY_VENV):
    """Why no head can run from `venv`, or None when it can."""
    marker = Path(venv) / ".unavailable"
    if marker.exists():
        reason = marker.read_text().strip() or "(no reason recorded)"
        return f"Ray could not be installed in {venv}: {reason}"
    if not (Path(venv) / "bin" / "ray").exists():
        return f"{venv}/bin/ray is missing: run `make install-ray` (`make test` does)"
    return None


def _free(port):
    """Whether `port` can be bound, on 127.0.0.1 and on the wildcard address."""
    for host in ("127.0.0.1", "0.0.0.0"):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                return False
    return True


def pick_ports(count, tries=200):
    """`count` consecutive free ports, in a random block below the ephemeral range."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    top = low - count if low - count > 12000 else 65535 - count
    bottom = 10000 if top == low - count else 61000
    for _ in range(tries):
        first = random.randrange(bottom, top)
        if all(_free(p) for p in range(first, first + count)):
            return list(range(first, first + count))
    raise RayHeadError(f"found no block of {count} free ports")


def _die_with_parent():
    """In the child: SIGTERM it when its parent (this test process) dies, even by SIGKILL, so that
    no head outlives a killed test run (the head's own processes die with `ray start --block`)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _pids_of(marker_value, session):
    """Processes carrying our marker in their environment or living in the head's session."""
    needle = f"{MARKER}={marker_value}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        pid = int(entry)
        try:
            if session is not None and os.getsid(pid) == session:
                found.append(pid)
                continue
            with open(f"/proc/{pid}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    found.append(pid)
        except (OSError, ProcessLookupError):
            pass
    return found


class RayHead:
    """A local Ray head from `.venv-ray`, with its dashboard (the Jobs API) on 127.0.0.1.

    `address` ("http://127.0.0.1:PORT", the dashboard: /api/jobs/, /api/packages/...), `python`
    (the cluster's interpreter, .venv-ray/bin/python: also the `python` on a job's PATH),
    `start()`, `stop()`, `restart()`, `ensure_up()`, `is_up()`, `close()`; for the tests'
    requests `request()`, `json()`, `wait_job()`, `logs()`, `upload_package()`; `ports`,
    `worker_ports`, `temp_dir` (the head's --temp-dir; a job without working_dir runs there),
    `start_seconds` (how long the last start took). The ports and the temp dir are chosen once:
    a start after a stop reuses them (same `address`).
    """

    def __init__(self, venv=RAY_VENV, num_cpus=2, start_timeout=60.0, stop_timeout=20.0):
        self.venv = Path(venv)
        self.ray = self.venv / "bin" / "ray"
        self.python = str(self.venv / "bin" / "python")
        self.num_cpus = num_cpus
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        block = pick_ports(len(PORT_NAMES) + WORKER_PORTS)
        self.ports = dict(zip(PORT_NAMES, block))
        self.worker_ports = (block[len(PORT_NAMES)], block[-1])
        self.address = f"http://127.0.0.1:{self.ports['dashboard']}"
        # Short: Ray's unix sockets live under it (a socket path has at most 107 bytes).
        self.temp_dir = tempfile.mkdtemp(prefix="rayh-", dir="/tmp")
        self.proc = None
        self.starts = 0
        self.start_seconds = None
        self._out = None

    def command(self):
        p = self.ports
        return [str(self.ray), "start", "--head", "--block", "--num-cpus", str(self.num_cpus),
                "--node-ip-address", "127.0.0.1",
                "--dashboard-host", "127.0.0.1", "--dashboard-port", str(p["dashboard"]),
                "--port", str(p["gcs"]),
                "--min-worker-port", str(self.worker_ports[0]),
                "--max-worker-port", str(self.worker_ports[1]),
                "--node-manager-port", str(p["node_manager"]),
                "--object-manager-port", str(p["object_manager"]),
                "--ray-client-server-port", str(p["ray_client_server"]),
                "--dashboard-agent-listen-port", str(p["dashboard_agent_listen"]),
                "--dashboard-agent-grpc-port", str(p["dashboard_agent_grpc"]),
                "--runtime-env-agent-port", str(p["runtime_env_agent"]),
                "--metrics-export-port", str(p["metrics_export"]),
                # 100 MB: the tests move no objects, and CI's memory is shared.
                "--object-store-memory", str(100 * 1024 * 1024),
                "--disable-usage-stats", "--temp-dir", self.temp_dir]

    def environment(self):
        env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
        # The cluster's `python` is its own (a job's entrypoint says `python ...`).
        path = [d for d in env.get("PATH", "").split(os.pathsep)
                if d and Path(d).resolve() != (ROOT / ".venv" / "bin").resolve()]
        env["PATH"] = os.pathsep.join([str(self.venv / "bin"), *path])
        env[MARKER] = self.temp_dir
        env["RAY_USAGE_STATS_ENABLED"] = "0"
        # A single-node "cluster" on the loopback: without it Ray replaces `--node-ip-address
        # 127.0.0.1` by the machine's outward address and its processes talk over that.
        env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        env["AUTOSCALER_METRIC_PORT"] = str(self.ports["AUTOSCALER_METRIC_PORT"])
        env["DASHBOARD_METRIC_PORT"] = str(self.ports["DASHBOARD_METRIC_PORT"])
        # On SIGTERM, `ray start --block` would first drain the node for up to 30 s (until no
        # worker is leased): a stop here tears the head down at once (its processes get SIGTERM,
        # SIGKILL 1 s later; running jobs die with it).
        env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] = "0"
        return env

    def start(self, timeout=None):
        """Start the head and wait (bounded) until the Jobs API answers; the seconds it took.

        Raises RayHeadError (the head stopped again) when it does not come up in time."""
        if self.proc is not None and self.proc.poll() is None:
            raise RayHeadError("the head is already running")
        reason = unavailable(self.venv)
        if reason:
            raise RayHeadError(reason)
        timeout = self.start_timeout if timeout is None else timeout
        self.starts += 1
        self.output = Path(self.temp_dir) / f"ray-start-{self.starts}.log"
        began = time.monotonic()
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen(self.command(), stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=self.environment(),
                                         cwd=self.temp_dir, start_new_session=True,
                                         preexec_fn=_die_with_parent)
        deadline = began + timeout
        problem = "no answer yet"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                problem = f"`ray start` exited {self.proc.returncode}"
                break
            problem = self._not_ready()
            if problem is None:
                self.start_seconds = time.monotonic() - began
                return self.start_seconds
            time.sleep(0.25)
        else:
            problem = f"not up after {timeout:.0f} s ({problem})"
        tail = self.output.read_text(errors="replace")[-1500:]
        self.stop()
        raise RayHeadError(f"the Ray head did not come up: {problem}; ray start said: ...{tail}")

    def _not_ready(self):
        """None once /api/version answers 200 and /api/jobs/ answers 200, else what is missing."""
        for path in ("/api/version", "/api/jobs/"):
            try:
                status, _ = self.request("GET", path, timeout=5)
            except OSError as e:
                return f"GET {path}: {e}"
            if status != 200:
                return f"GET {path} answered {status}"
        return None

    def is_up(self):
        return self.proc is not None and self.proc.poll() is None and self._not_ready() is None

    def ensure_up(self):
        """Start the head unless it is up (after a test stopped it, or after it died)."""
        if not self.is_up():
            if self.proc is not None:
                self.stop()
            self.start()

    def restart(self):
        self.stop()
        return self.start()

    def stop(self, timeout=None):
        """Stop exactly this head's processes (bounded): SIGTERM to `ray start --block`, which stops
        the head's processes, then SIGKILL to all that is left of it (see the module's docstring)."""
        timeout = self.stop_timeout if timeout is None else timeout
        proc, self.proc = self.proc, None
        session = None
        if proc is not None:
            session = proc.pid
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    pass
        # Whatever outlived the graceful stop, or was never reached by it.
        deadline = time.monotonic() + timeout
        while True:
            left = _pids_of(self.temp_dir, session)
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if proc is not None and proc.poll() is None:
                try:
                    proc.wait(1)
                except subprocess.TimeoutExpired:
                    pass
            if time.monotonic() > deadline:
                raise RayHeadError(f"processes of the Ray head outlived SIGKILL: {left}")
            time.sleep(0.1)

    def close(self):
        """Stop the head and remove its temp dir (idempotent)."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def request(self, method, path, body=None, timeout=10, headers=None):
        """(status, body bytes) of one request to the dashboard; `body` a dict (sent as JSON) or bytes."""
        headers = dict(headers or {})
        if isinstance(body, dict):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.address + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def json(self, method, path, body=None, timeout=10):
        """The decoded JSON answer; AssertionError unless the status is 200."""
        status, data = self.request(method, path, body, timeout)
        assert status == 200, f"{method} {path} answered {status}: {data[:2000]!r}"
        return json.loads(data)

    def wait_job(self, submission_id, statuses=TERMINAL, timeout=60.0):
        """The job's info (GET /api/jobs/ID) once its status is one of `statuses` (bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.json("GET", f"/api/jobs/{submission_id}")
            if info["status"] in statuses:
                return info
            if time.monotonic() > deadline:
                raise AssertionError(f"job {submission_id} not {'/'.join(statuses)} after "
                                     f"{timeout:.0f} s: {info}")
            time.sleep(0.2)

    def logs(self, submission_id):
        """The job's log so far (GET /api/jobs/ID/logs)."""
        return self.json("GET", f"/api/jobs/{submission_id}/logs")["logs"]

    def upload_package(self, files):
        """Zip {name in the zip: text or bytes}, upload it by PUT /api/packages/gcs/NAME and return
        its URI, gcs://_ray_pkg_<hash>.zip (what a runtime_env's working_dir or py_modules names).

        Ray unpacks a gcs:// zip as it is (its top level is the directory's top level)."""
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
            for name, content in sorted(files.items()):
                z.writestr(name, content)
        data = buffer.getvalue()
        name = f"_ray_pkg_{hashlib.sha256(data).hexdigest()[:32]}.zip"
        status, body = self.request("PUT", f"/api/packages/gcs/{name}", data,
                                    headers={"Content-Type": "application/octet-stream"}, timeout=30)
        assert status == 200, f"PUT /api/packages/gcs/{name} answered {status}: {body[:2000]!r}"
        return f"gcs://{name}"


_KEY = pytest.StashKey()


@pytest.fixture
def ray_head(request):
    """A `RayHead` that is up, shared by the session (started on first use, stopped at its end).

    Skips, saying why, when Ray is not installed or the head does not come up."""
    stash = request.config.stash
    if _KEY not in stash:
        reason = unavailable()
        head = None
        if reason is None:
            head = RayHead()
            request.config.add_cleanup(head.close)
            atexit.register(head.close)  # also on an interrupted session
        stash[_KEY] = (head, reason)
    head, reason = stash[_KEY]
    if reason is not None:
        pytest.skip(reason)
    try:
        head.ensure_up()
    except RayHeadError as e:
        # Once is enough: the next tests skip at once instead of waiting for the head again.
        stash[_KEY] = (head, f"earlier in this session, {e}")
        pytest.skip(str(e))
    return head
