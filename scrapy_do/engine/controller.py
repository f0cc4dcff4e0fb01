"""The engine: projects, jobs, job slots and schedules, wired to a store and a launcher.

Work is driven by events, never by polling: scheduling a `now` job, a crawl
ending and a schedule coming due each call `_pump`, which fills free slots
with the oldest PENDING jobs at once.
"""

import os
import re
import socket
import time
from datetime import datetime
from pathlib import Path

from twisted.application.service import Service
from twisted.internet import defer
from twisted.logger import Logger

from scrapy_do import __version__
from scrapy_do.domain import spec as specs
from scrapy_do.errors import BadRequest, Conflict, LaunchError, NotFound, StartupError
from scrapy_do.launchers.local import LaunchRequest, kill_leftover
from scrapy_do.domain.models import (
    ACTIVE, COMPLETED, Actor, JobStatus, Project, new_job, normalise_payload, transition,
)
from scrapy_do.engine.scheduler import SpecScheduler

log = Logger(namespace="scrapy_do.engine.controller")

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
LOG_KINDS = ("out", "err")

STATUS_GROUPS = {"ACTIVE": ACTIVE, "COMPLETED": COMPLETED}


def parse_statuses(text):
    """'ACTIVE', 'COMPLETED' or one status name -> a set of JobStatus."""
    name = (text or "").strip().upper()
    if name in STATUS_GROUPS:
        return set(STATUS_GROUPS[name])
    try:
        return {JobStatus(name)}
    except ValueError:
        choices = ", ".join([s.value for s in JobStatus] + list(STATUS_GROUPS))
        raise BadRequest(f"unknown status {text!r}; use one of {choices}") from None


def check_job_id(identifier):
    ident = (identifier or "").strip().lower()
    if not UUID.match(ident):
        raise BadRequest(f"job id {identifier!r} is not a job identifier (a UUID like "
                         "5b30c8a2-42e5-4ad5-b143-4cb0420955a5)")
    return ident


class Controller(Service):
    name = "controller"

    def __init__(self, config, store, projects, launcher, clock, rng=None, log_cap=None):
        self.config = config
        self.store = store
        self.projects = projects
        self.launcher = launcher
        self.clock = clock
        self.scheduler = SpecScheduler(clock, self._spawn_scheduled, rng)
        self.crawls = {}  # job id -> (IRunningCrawl, tree)
        self.log_cap = log_cap
        self._uncap = {}
        self._canceling = set()
        self._stopping = False
        self._listeners = []
        self.started_at = None

    # -- life cycle -------------------------------------------------------

    def startService(self):
        for d in (self.config.log_dir, self.config.spider_data_dir):
            try:
                Path(d).mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise StartupError(f"cannot create {d}: {e.strerror}") from None
        self.projects.open()
        self._recover()
        self.projects.collect_garbage(p.tree for p in self.store.list_projects())
        self._purge()
        self.started_at = self.clock.seconds()
        self._stopping = False
        self.scheduler.start()
        super().startService()
        self._pump()

    def _recover(self):
        """Re-arm schedules; put crawls a dead daemon left as RUNNING back in the queue."""
        for job in self.store.list_jobs([JobStatus.RUNNING], oldest_first=True):
            kill_leftover(job.pid, job.pid_created, self.config.cancel_grace)
            log.info("job {job} was running when the daemon stopped; queued again", job=job.identifier)
            self.store.update_job(transition(job, JobStatus.PENDING, pid=None, pid_created=None, started=None))
        for job in self.store.list_jobs([JobStatus.SCHEDULED], oldest_first=True):
            try:
                self.scheduler.add(job.identifier, specs.parse(job.schedule))
            except specs.InvalidSpec as e:
                log.error("cannot re-arm job {job}: {e}", job=job.identifier, e=e)

    def stopService(self):
        """Stop every crawl (TERM, then KILL after the grace); their jobs go back to PENDING."""
        self._stopping = True
        self.scheduler.stop()
        super().stopService()
        ended = [crawl.stop(self.config.cancel_grace) for crawl, _ in self.crawls.values()]
        return defer.DeferredList(ended, consumeErrors=True)

    # -- events -----------------------------------------------------------

    def subscribe(self, listener):
        """`listener(kind, data)` is called for each change; returns an unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _emit(self, kind, data):
        for listener in list(self._listeners):
            try:
                listener(kind, data)
            except Exception:
                log.failure("event listener failed on {kind}", kind=kind)

    def now(self):
        """The daemon's local time, from its clock."""
        return datetime.fromtimestamp(self.clock.seconds())


    def _save(self, job):
        self.store.update_job(job)
        self._emit("job", job)
        return job

    # -- projects ---------------------------------------------------------

    @defer.inlineCallbacks
    def push_project(self, data):
        """Check, unpack and list `data`; replace the same-named project atomically."""
        prepared = yield self.projects.prepare(data)
        existing = self.store.get_project(prepared.name)
        if existing is not None:
            scheduled = self.store.list_jobs([JobStatus.SCHEDULED], project=prepared.name)
            dropped = sorted({j.spider for j in scheduled} - set(prepared.spiders))
            if dropped:
                self.projects.discard(prepared)
                raise Conflict(f"the new archive of {prepared.name!r} drops spider(s) {', '.join(dropped)} "
                               "that still have scheduled jobs; cancel those jobs first")
        tree = self.projects.commit(prepared)
        project = Project(name=prepared.name, spiders=prepared.spiders, tree=str(tree), pushed=self.now())
        self.store.save_project(project)
        if existing is not None:
            self._release_tree(existing.tree)
        log.info("pushed project {name} with spiders {spiders}", name=project.name, spiders=list(project.spiders))
        self._emit("project-pushed", project)
        return project

    def _release_tree(self, tree):
        """Delete a tree that is no longer live, unless a crawl still runs in it."""
        live = {p.tree for p in self.store.list_projects()}
        if tree not in live and all(t != tree for _, t in self.crawls.values()):
            self.projects.remove_tree(tree)

    def get_project(self, name):
        project = self.store.get_project(name or "")
        if project is None:
            raise NotFound(f"unknown project {name!r}; push it first or check list-projects")
        return project

    def list_projects(self):
        return [p.name for p in self.store.list_projects()]

    def list_spiders(self, name):
        return list(self.get_project(name).spiders)

    def remove_project(self, name):
        project = self.get_project(name)
        scheduled = self.store.count_jobs([JobStatus.SCHEDULED], project=name)
        if scheduled:
            raise Conflict(f"project {name!r} has {scheduled} scheduled job(s); cancel them before removing it")
        self.store.remove_project(name)
        self.projects.remove_archive(name)
        self._release_tree(project.tree)
        log.info("removed project {name}", name=name)
        self._emit("project-removed", project)

    # -- jobs -------------------------------------------------------------

    def schedule_job(self, project, spider, when="now", description="", payload=None, actor=Actor.USER):
        """Record a job: PENDING for `now` (it starts when a slot is free), else SCHEDULED."""
        proj = self.get_project(project)
        if spider not in proj.spiders:
            raise NotFound(f"project {project!r} has no spider {spider!r}; it has: {', '.join(proj.spiders)}")
        parsed = specs.parse(when if when is not None else "now")
        job = new_job(proj.name, spider, "now" if parsed is None else parsed.text, self.now(),
                      actor=actor, description=description or "", payload=normalise_payload(payload))
        self.store.add_job(job)
        log.info("scheduled job {job} ({spider}, {when})", job=job.identifier, spider=spider, when=job.schedule)
        self._emit("job", job)
        if parsed is not None:
            self.scheduler.add(job.identifier, parsed)
        else:
            self._pump()
        return job

    def _spawn_scheduled(self, identifier):
        parent = self.store.get_job(identifier)
        if parent is None or parent.status is not JobStatus.SCHEDULED:
            self.scheduler.remove(identifier)
            return
        job = new_job(parent.project, parent.spider, "now", self.now(), actor=Actor.SCHEDULER,
                      description=parent.description, payload=parent.payload, parent=parent.identifier)
        self.store.add_job(job)
        self._emit("job", job)
        self._pump()

    def get_job(self, identifier):
        job = self.store.get_job(check_job_id(identifier))
        if job is None:
            raise NotFound(f"unknown job {identifier!r}; it may have been purged (completed-cap)")
        return job

    def list_jobs(self, status=None, project=None, spider=None, limit=None, offset=0):
        statuses = None if status is None else parse_statuses(status)
        return self.store.list_jobs(statuses, project=project, spider=spider, limit=limit, offset=offset)

    def list_jobs_json(self, status, project=None, spider=None, limit=None, offset=0):
        """list_jobs for the API: each job already as JSON text."""
        return self.store.list_jobs_json(parse_statuses(status), project=project, spider=spider,
                                         limit=limit, offset=offset)

    def count_jobs(self, status=None, project=None, spider=None):
        statuses = None if status is None else parse_statuses(status)
        return self.store.count_jobs(statuses, project=project, spider=spider)

    def cancel_job(self, identifier):
        """Cancel a job; the Deferred fires with the CANCELED job (after the crawl ended, if running)."""
        job = self.get_job(identifier)
        if job.status is JobStatus.RUNNING and job.identifier in self.crawls:
            self._canceling.add(job.identifier)
            crawl, _ = self.crawls[job.identifier]
            log.info("canceling running job {job}", job=job.identifier)
            d = crawl.stop(self.config.cancel_grace)
            d.addCallback(lambda _: self.store.get_job(job.identifier))
            return d
        job = transition(job, JobStatus.CANCELED, finished=self.now())
        if job.schedule != "now":
            self.scheduler.remove(job.identifier)
        self.store.bump("canceled")
        self._save(job)
        self._purge()
        log.info("canceled job {job}", job=job.identifier)
        return defer.succeed(job)

    def log_path(self, identifier, kind):
        """Path of a job's `.out` or `.err` log; NotFound if the job or file is unknown."""
        if kind not in LOG_KINDS:
            raise NotFound(f"unknown log type {kind!r}; use out or err")
        job = self.get_job(identifier)
        path = Path(self.config.log_dir) / f"{job.identifier}.{kind}"
        if not path.is_file():
            raise NotFound(f"job {job.identifier} has no {kind} log yet; it is {job.status.value}")
        return path

    def _log_paths(self, identifier):
        return [str(Path(self.config.log_dir) / f"{identifier}.{kind}") for kind in LOG_KINDS]

    # -- running ----------------------------------------------------------

    def _pump(self):
        """Fill every free slot with the oldest PENDING jobs."""
        if self._stopping or not self.running:
            return
        free = self.config.job_slots - len(self.crawls)
        if free <= 0:
            return
        for job in self.store.list_jobs([JobStatus.PENDING], oldest_first=True, limit=free):
            self._start(job)

    def _start(self, job):
        out_path, err_path = self._log_paths(job.identifier)
        project = self.store.get_project(job.project)
        try:
            if project is None or job.spider not in project.spiders:
                raise LaunchError(f"project {job.project!r} or its spider {job.spider!r} was removed "
                                  "before the job could start")
            crawl = self.launcher.launch(LaunchRequest(
                job_id=job.identifier, spider=job.spider, payload=job.payload, cwd=project.tree,
                out_path=out_path, err_path=err_path,
                env={"SPIDER_DATA_DIR": str(self.config.spider_data_dir)},
            ))
        except LaunchError as e:
            log.error("job {job} failed to start: {e}", job=job.identifier, e=e.msg)
            with open(err_path, "a", encoding="utf-8") as f:
                f.write(f"scrapy-do: {e.msg}\n")
            now = self.now()
            self.store.bump("run")
            self.store.bump("failed")
            self._save(transition(transition(job, JobStatus.RUNNING, started=now), JobStatus.FAILED,
                                  finished=now, duration=0))
            self._purge()
            return
        self.crawls[job.identifier] = (crawl, project.tree)
        if self.log_cap is not None:
            self._uncap[job.identifier] = [self.log_cap.watch(p) for p in (out_path, err_path)]
        self._save(transition(job, JobStatus.RUNNING, started=self.now(), pid=crawl.pid,
                              pid_created=crawl.created))
        log.info("job {job} started: {spider} pid {pid}", job=job.identifier, spider=job.spider, pid=crawl.pid)
        crawl.ended.addCallback(self._ended, job.identifier)

    def _ended(self, code, identifier):
        _, tree = self.crawls.pop(identifier)
        for stop in self._uncap.pop(identifier, ()):
            stop()
        job = self.store.get_job(identifier)
        now = self.now()
        if identifier in self._canceling:
            self._canceling.discard(identifier)
            status, counter = JobStatus.CANCELED, "canceled"
        elif self._stopping:
            # The daemon is shutting down: run this job again at the next start.
            self._save(transition(job, JobStatus.PENDING, started=None, pid=None, pid_created=None))
            log.info("job {job} interrupted by shutdown; queued again", job=identifier)
            return code
        else:
            status, counter = (JobStatus.SUCCESSFUL, "successful") if code == 0 else (JobStatus.FAILED, "failed")
        duration = round((now - job.started).total_seconds()) if job.started else None
        self.store.bump("run")
        self.store.bump(counter)
        self._save(transition(job, status, finished=now, duration=duration, exit_code=code))
        log.info("job {job} ended: {status} (exit {code})", job=identifier, status=status.value, code=code)
        self._release_tree(tree)
        self._purge()
        self._pump()
        return code

    def _purge(self):
        for identifier in self.store.purge_completed(self.config.completed_cap):
            for path in self._log_paths(identifier):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            self._emit("job-removed", identifier)

    # -- status -----------------------------------------------------------

    def status(self):
        counters = self.store.counters()
        projects = self.store.list_projects()
        uptime = self.clock.seconds() - self.started_at if self.started_at is not None else 0
        return {
            "daemon-version": __version__,
            "hostname": socket.gethostname(),
            "time": str(self.now()),
            "timezone": "; ".join(dict.fromkeys(time.tzname)),
            "uptime-seconds": uptime,
            "jobs-run": counters["run"],
            "jobs-successful": counters["successful"],
            "jobs-failed": counters["failed"],
            "jobs-canceled": counters["canceled"],
            "jobs-scheduled": self.store.count_jobs([JobStatus.SCHEDULED]),
            "jobs-pending": self.store.count_jobs([JobStatus.PENDING]),
            "jobs-running": len(self.crawls),
            "job-slots": self.config.job_slots,
            "projects": len(projects),
            "spiders": sum(len(p.spiders) for p in projects),
        }
