"""The Ray backend: each run is one submission to a Ray cluster, through its Jobs REST API (rayjobs.py).

The daemon keeps everything it owns (queue, slots, schedules, logs, stats,
items); the cluster only runs the crawls. A submission carries:

* its id, `scrapy-do-<job id>` (rayjobs.submission_id): a run is submitted
  once, ever. A launch that finds the id taken (the daemon died between
  submitting and recording it) follows that submission instead;
* a runtime_env: the project version's tree as `working_dir`, the daemon's
  own `scrapy_do` package as a `py_modules` entry (so the crawl's wrapper
  and extension match the daemon), the project's requirements.txt as `pip`
  packages, and whatever `ray-runtime-env` adds;
* the crawl's arguments and report address in the environment variable the
  wrapper reads (remote.py), never in the entrypoint.

A run's handle is `ray:<submission id>`: after a restart, or a `kill -9`,
`reattach` follows the same submission, whether it still runs or ended
while no daemon watched. Ray has no way to push a job's end, so each run
asks the head for its state every `poll` seconds, on the injected clock.
The crawl's output comes to the daemon over the report channel
(`take_output`), into the same `.out` / `.err` files as a local crawl's.
"""

import json
import os

from twisted.internet import defer, threads
from twisted.logger import Logger
from zope.interface import implementer

from scrapy_do.interfaces import ILauncher, IRemoteRun
from scrapy_do.launchers import packages
from scrapy_do.launchers.local import LocalLogs, crawl_arguments
from scrapy_do.launchers.logfiles import LogFile
from scrapy_do.launchers.rayjobs import FINAL, RayAnswerError, Unreachable, exit_code, submission_id
from scrapy_do.launchers.remote import JOB_KEY
from scrapy_do.projects.requirements import InvalidRequirements, parse as parse_requirements

log = Logger(namespace="scrapy_do.launchers.ray")

HANDLE_PREFIX = "ray:"
ENTRYPOINT = "python -m scrapy_do.launchers.remote"
#: How often a run asks the head while the head does not answer.
UNREACHABLE_POLL = 5.0


def parse_handle(handle):
    """The submission id of a Ray handle, or None when the handle is not one."""
    if handle and handle.startswith(HANDLE_PREFIX) and len(handle) > len(HANDLE_PREFIX):
        return handle[len(HANDLE_PREFIX):]
    return None


def merge_runtime_env(extra, ours):
    """The runtime_env of a submission: the configured `extra` keys with ours laid over them. Environment
    variables are merged (ours win), py_modules and pip packages added to, everything else ours."""
    env = {key: value for key, value in (extra or {}).items()}
    for key, value in ours.items():
        if key == "env_vars":
            env[key] = {**env.get(key, {}), **value}
        elif key == "py_modules":
            env[key] = [*value, *env.get(key, [])]
        elif key == "pip" and key in env:
            given = env[key]
            if isinstance(given, dict):
                env[key] = {**given, "packages": [*given.get("packages", []), *value["packages"]]}
            else:
                env[key] = {**value, "packages": [*given, *value["packages"]]}
        else:
            env[key] = value
    return env


def pip_options(index_url="", extra_index_urls=(), find_links=()):
    """pip's options for a project's requirements: where the daemon's own builds take packages from."""
    out = ["--disable-pip-version-check", "--no-cache-dir"]
    if index_url:
        out += ["--index-url", index_url]
    for url in extra_index_urls:
        out += ["--extra-index-url", url]
    for link in find_links:
        out += ["--find-links", link]
    return out


@implementer(IRemoteRun)
class RayRun:
    """One submission followed to its end; the crawl's output arrives through `take_output`."""

    detached = True

    def __init__(self, launcher, sid, out_path, err_path):
        self._launcher = launcher
        self.sid = sid
        self.handle = HANDLE_PREFIX + sid
        self.ended = defer.Deferred()
        self._logs = LocalLogs(out_path, err_path)
        self._files = {"out": LogFile(out_path, launcher.log_limit, launcher.hub),
                       "err": LogFile(err_path, launcher.log_limit, launcher.hub)}
        # Bytes of each stream the daemon has: what a restarted daemon finds in the files.
        self.received = {kind: f.written for kind, f in self._files.items()}
        self._next = None
        self._kill = None
        self._said_unreachable = False
        self.done = False

    # -- following ---------------------------------------------------------

    def follow(self, delay=0.0):
        if not self.done:
            self._next = self._launcher.reactor.callLater(delay, self._ask)

    def _ask(self):
        self._next = None
        d = self._launcher.jobs.info(self.sid)
        d.addCallbacks(self._seen, self._not_seen)
        d.addErrback(lambda f: log.failure("following Ray submission {sid} failed", f, sid=self.sid))

    def _seen(self, info):
        if self._said_unreachable:
            log.info("the Ray head answers again about {sid}", sid=self.sid)
            self._said_unreachable = False
        if info is None:
            self.note(f"Ray no longer knows submission {self.sid} (was the head restarted without its job history?); "
                      "the crawl's end is unknown")
            self._end(-1)
        elif info["status"] in FINAL:
            if info["status"] == "FAILED":
                self.note(f"Ray reports submission {self.sid} FAILED: {info.get('message') or 'no message'}")
            self._end(exit_code(info))
        else:
            self.follow(self._launcher.poll)

    def _not_seen(self, failure):
        if failure.check(Unreachable):
            if not self._said_unreachable:
                log.warn("cannot ask about Ray submission {sid}: {e}; asking again every {every:.0f} s",
                         sid=self.sid, e=failure.value.msg, every=UNREACHABLE_POLL)
                self._said_unreachable = True
            self.follow(UNREACHABLE_POLL)
            return
        message = failure.value.msg if failure.check(RayAnswerError) else f"{failure.type.__name__}: {failure.value}"
        self.note(f"{message}; the daemon stops following this crawl and asks Ray to stop it")
        self._launcher.jobs.stop(self.sid).addErrback(lambda _: None)
        self._end(-1)

    def _end(self, code):
        if self.done:
            return
        self.done = True
        self._cancel_calls()
        for f in self._files.values():
            f.close()
        self.ended.callback(code)

    def _cancel_calls(self):
        for call in (self._next, self._kill):
            if call is not None and call.active():
                call.cancel()
        self._next = self._kill = None

    def note(self, message):
        """A line of the daemon's own in the run's .err."""
        self._files["err"].write(f"scrapy-do: {message}\n".encode())

    # -- IRun ---------------------------------------------------------------

    def logs(self):
        return self._logs

    def stop(self, grace):
        """Ray's stop (SIGTERM to the crawl, SIGKILL after the head's own wait), asked again after `grace`."""
        if self.done:
            return self.ended
        self._launcher.jobs.stop(self.sid).addErrback(
            lambda f: log.warn("cannot stop Ray submission {sid}: {e}", sid=self.sid, e=f.getErrorMessage()))
        if self._kill is None:
            self._kill = self._launcher.reactor.callLater(grace, self._stop_again)
        return self.ended

    def _stop_again(self):
        self._kill = None
        if not self.done:
            self._launcher.jobs.stop(self.sid).addErrback(lambda _: None)
            if self._next is None:
                self.follow(0)

    def detach(self):
        """The daemon stops; the crawl goes on, and the next daemon re-attaches to it."""
        self._cancel_calls()
        self.done = True
        for f in self._files.values():
            f.close()

    def take_output(self, kind, offset, data):
        """A piece of the crawl's `kind` output starting at byte `offset`; what is new is appended. Returns the
        bytes of that output the daemon has now."""
        have = self.received[kind]
        end = offset + len(data)
        if end > have:
            self._files[kind].write(data[max(0, have - offset):])
            self.received[kind] = end
        return self.received[kind]


@implementer(ILauncher)
class RayLauncher:
    """Submits each run to the Ray head `jobs` (a rayjobs.RayJobs) speaks to."""

    def __init__(self, reactor, jobs, *, num_cpus=1.0, runtime_env=None, poll=1.0, log_limit=0, hub=None,
                 index_url="", extra_index_urls=(), find_links=(), own_package=None):
        self.reactor = reactor
        self.jobs = jobs
        self.num_cpus = num_cpus
        self.runtime_env = dict(runtime_env or {})
        self.poll = poll
        self.log_limit = log_limit
        self.hub = hub
        self.pip_options = pip_options(index_url, extra_index_urls, find_links)
        self._own_package = own_package  # the folder of scrapy_do (tests may point elsewhere)
        self._uploaded = {}  # (folder, under) -> the uri of its package, uploaded

    def _in_thread(self, fn, *args):
        pool = getattr(self.reactor, "getThreadPool", None)
        if pool is None:
            return defer.maybeDeferred(fn, *args)
        return threads.deferToThreadPool(self.reactor, pool(), fn, *args)

    def check(self):
        """Ask the head who it is, at start-up: a one-line warning when it does not answer, never a crash."""
        d = self.jobs.version()
        d.addCallback(lambda v: log.info("Ray head at {address}: Ray {version}", address=self.jobs.address,
                                         version=v.get("ray_version", "?") if isinstance(v, dict) else "?"))
        d.addErrback(lambda f: log.warn("the Ray head at {address} does not answer yet ({e}); jobs wait until "
                                        "it does", address=self.jobs.address, e=f.getErrorMessage()))
        return d

    @defer.inlineCallbacks
    def _package(self, folder, under=""):
        """The uri of `folder`'s package on the head, uploaded unless it is there. A project version's tree
        never changes, so it is zipped once; but the head deletes a package some minutes after the last job
        that used it ended (and forgets all of them when it restarts), so each launch asks whether it is
        still there."""
        key = (str(folder), under)
        uri = self._uploaded.get(key)
        if uri is not None and (yield self.jobs.has_package(uri)):
            return uri
        uri = yield self._upload(folder, under)
        self._uploaded[key] = uri
        return uri

    @defer.inlineCallbacks
    def _upload(self, folder, under):
        uri, data = yield self._in_thread(packages.package, folder, under)
        if not (yield self.jobs.has_package(uri)):
            yield self.jobs.put_package(uri, data)
            log.info("uploaded {uri} ({size} bytes) to the Ray head", uri=uri, size=len(data))
        return uri

    def _requirements(self, tree):
        path = os.path.join(tree, "requirements.txt")
        if os.path.islink(path) or not os.path.isfile(path):
            return ()
        with open(path, "rb") as f:
            return parse_requirements(f.read())

    @defer.inlineCallbacks
    def _runtime_env(self, spec):
        import scrapy_do

        own = self._own_package or scrapy_do.__path__[0]
        tree_uri = yield self._package(spec.cwd)
        own_uri = yield self._package(own, "scrapy_do")
        try:
            requirements = yield self._in_thread(self._requirements, spec.cwd)
        except (OSError, InvalidRequirements) as e:
            raise RayAnswerError(f"cannot read the project's requirements.txt: {e}") from None
        job = {"spider": spec.options.spider, "args": crawl_arguments(spec.options), "project": spec.project,
               "report": spec.report}
        ours = {"working_dir": tree_uri, "py_modules": [own_uri], "env_vars": {JOB_KEY: json.dumps(job)}}
        if requirements:
            ours["pip"] = {"packages": list(requirements), "pip_check": False,
                           "pip_install_options": self.pip_options}
        return merge_runtime_env(self.runtime_env, ours)

    @defer.inlineCallbacks
    def launch(self, spec):
        sid = submission_id(spec.job_id)
        runtime_env = yield self._runtime_env(spec)
        body = {"entrypoint": ENTRYPOINT, "submission_id": sid, "runtime_env": runtime_env,
                "metadata": {"scrapy-do-job": spec.job_id, "project": spec.project, "spider": spec.options.spider}}
        if self.num_cpus:
            body["entrypoint_num_cpus"] = self.num_cpus
        accepted = yield self.jobs.submit(body)
        if not accepted:
            log.info("Ray submission {sid} exists already (a daemon before this one submitted it); following it",
                     sid=sid)
        run = RayRun(self, sid, spec.out_path, spec.err_path)
        run.follow(self.poll)
        return run

    def reattach(self, handle, logs=None):
        """Follow the submission a previous daemon started: still running, or ended while no daemon watched."""
        sid = parse_handle(handle)
        if sid is None or logs is None:
            return defer.succeed(None)
        run = RayRun(self, sid, *logs)
        run.follow(0)
        return defer.succeed(run)

    def collect_garbage(self, finished):
        """Nothing of a finished submission stays on this machine."""

