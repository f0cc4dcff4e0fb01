"""The engine: projects, runs, schedules and job slots, wired to a store and a launcher.

Work is driven by events, never by polling: a new PENDING run, a crawl
ending and a schedule coming due each call `_pump`, which asks
`dispatch.next_to_start` what fills the free slots and starts it at once.
"""

import dataclasses
import errno
import os
import re
import secrets
import socket
from pathlib import Path

from twisted.application.service import Service
from twisted.internet import defer, threads
from twisted.logger import Logger

from scrapy_do import __version__
from scrapy_do.domain import dispatch, zones
from scrapy_do.domain import stats as job_stats
from scrapy_do.domain import spec as specs
from scrapy_do.domain.models import (
    ACTIVE, COMPLETED, Actor, JobStatus, Project, Run, RunOptions, Schedule, end_reason, new_run, new_schedule,
    transition,
)
from scrapy_do.errors import BadRequest, Conflict, Forbidden, LaunchError, NotFound, StartupError, StorageFull
from scrapy_do.events import JobChanged, JobRemoved, LaunchProblem, ProjectPushed, ProjectRemoved, ScheduleSkipped
from scrapy_do.engine.insight import Insight, ItemsFile, token_key
from scrapy_do.engine.scheduler import SpecScheduler
from scrapy_do.interfaces import IRemoteRun
from scrapy_do.launchers.local import LaunchSpec

log = Logger(namespace="scrapy_do.controller")

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
LOG_KINDS = ("out", "err")

STATUS_GROUPS = {"ACTIVE": ACTIVE, "COMPLETED": COMPLETED}
ACTIVE_RUNS = {JobStatus.PENDING, JobStatus.RUNNING}
#: How often a crawl reports its stats, in seconds.
REPORT_INTERVAL = 2


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


#: Delays between retries of what a full disk or a lack of descriptors held up (seconds).
RETRY_FIRST, RETRY_MAX = 1.0, 30.0


class _Slot:
    """A run that holds a job slot: launching (`run` is None) or running."""

    def __init__(self, tree, key=None):
        self.tree = tree
        self.key = key  # (project, spider), for max-per-spider
        self.run = None
        self.deadline = None  # the call that ends the crawl at its time limit
        self.insight = None   # its reports (stats, samples, items), when it makes them
        self.environment = None  # the key of its project version's environment, kept while it runs

    def release(self):
        if self.insight is not None:
            self.insight.close()


class Controller(Service):
    name = "controller"

    def __init__(self, config, store, projects, launcher, clock, rng=None, hub=None):
        self.config = config
        self.hub = hub  # tells followers of a job's items of each batch written
        self.store = store
        self.projects = projects
        self.launcher = launcher
        self.clock = clock
        self.zone = config.zone
        self.scheduler = SpecScheduler(clock, self._fire_schedule, rng, zone=self.zone)
        self.slots = {}  # run id -> _Slot
        self._canceling = set()
        self._timed_out = set()
        #: Where crawls report their stats (the web interface, set once it listens); None: no reports.
        self.report_url = None
        self._quarantined = set()
        self._stopping = False
        self._pumping = False
        self._pump_again = False
        self._backoff = None  # a pending call while launches wait out a transient failure
        #: Why jobs wait PENDING although slots are free (the last transient launch failure), or None.
        self.launch_problem = None
        self._backoff_delay = RETRY_FIRST
        self._listeners = []
        self.started_at = None
        self._status_cache = None  # (store generation, what status() read from the store then)

    # -- life cycle -------------------------------------------------------

    def startService(self):
        try:
            # The daemon writes and serves the logs; crawls (another user, see crawluser.py) cannot reach them.
            Path(self.config.log_dir).mkdir(parents=True, exist_ok=True)
            os.chmod(self.config.log_dir, 0o700)
            self.projects.open()
        except OSError as e:
            raise StartupError(f"cannot prepare the project store {self.config.project_store}: {e}") from None
        self._stopping = False
        # Recovery may wait for leftover crawls to die (in threads); only then is the daemon running,
        # schedules fire and jobs start. `recovered` fires then, or fails (the daemon stops).
        self.recovered = self._recover()
        self.recovered.addCallback(self._begin)

    def _begin(self, _):
        if self._stopping:
            return
        self.projects.collect_garbage(p.tree for p in self.store.list_projects())
        self._collect_environments()
        self.launcher.collect_garbage(self._finished)
        self._purge()
        self.started_at = self.clock.seconds()
        self.scheduler.start()
        super().startService()
        log.info("recovered; {slots} job slots ready", slots=self.config.job_slots)
        self._pump()

    def _finished(self, identifier):
        job = self.store.get_job(identifier) if UUID.match(identifier) else None
        return job is not None and job.status in COMPLETED

    @defer.inlineCallbacks
    def _recover(self):
        """Re-attach to runs a previous daemon left RUNNING (or queue them again); re-arm schedules."""
        running = self.store.list_jobs([JobStatus.RUNNING], oldest_first=True)
        # Each leftover may take twice the grace to stop: all at once, not one after another.
        attached = yield defer.gatherResults(
            [defer.maybeDeferred(self.launcher.reattach, run.handle, self._log_paths(run.identifier))
             if run.handle else defer.succeed(None) for run in running], consumeErrors=True)
        requeued = []
        for run, crawl in zip(running, attached):
            project = self.store.get_project(run.project)
            if crawl is not None and project is not None:
                log.info("job {job} still runs; re-attached", job=run.identifier)
                slot = _Slot(project.tree, (run.project, run.spider))
                if run.report_key:
                    key, start = Insight.parse_stored(run.report_key)
                    slot.insight = self._insight(run.identifier, key, run.samples, start)
                self._track(run.identifier, slot, crawl)
                self._arm_deadline(run, slot, run.started or self.now())
                continue
            log.info("job {job} was running when the daemon stopped; queued again", job=run.identifier)
            requeued.append(transition(run, JobStatus.PENDING, handle=None, started=None))
        armed, missed = [], []
        now = self.now()
        for schedule in self.store.list_jobs([JobStatus.SCHEDULED], oldest_first=True):
            if schedule.paused:
                continue
            if schedule.catch_up and schedule.next_run is not None and schedule.next_run <= now:
                missed.append(schedule)
            try:
                armed.append(self._next_run(schedule, specs.parse(schedule.spec)))
            except (specs.InvalidSpec, ValueError) as e:  # ValueError: a zone the tz database lost
                log.error("cannot re-arm job {job}: {e}", job=schedule.identifier, e=e)
        self.store.update_jobs(requeued + armed)
        rearmed = {s.identifier: s for s in armed}
        for schedule in missed:
            # However many due times passed while the daemon was down, they make one run (catch-up = on).
            if schedule.identifier in rearmed:
                log.info("job {job} missed its run at {due} while the daemon was down; catching up",
                         job=schedule.identifier, due=self.show(schedule.next_run))
                self._spawn(rearmed[schedule.identifier])

    @property
    def ready(self):
        """Recovered and running: the daemon serves as usual."""
        return bool(self.running)

    def stopService(self):
        """Stop every crawl (TERM, then KILL after the grace); their runs go back to PENDING. Crawls on a
        cluster (`detached`) go on: their runs stay RUNNING and the next daemon re-attaches to them."""
        self._stopping = True
        self.scheduler.stop()
        super().stopService()
        ended = []
        for slot in self.slots.values():
            if slot.run is not None and slot.run.detached:
                slot.run.detach()
            elif slot.run is not None:
                ended.append(slot.run.stop(self.config.cancel_grace))
        return defer.DeferredList(ended, consumeErrors=True)

    # -- events -----------------------------------------------------------

    def subscribe(self, listener):
        """`listener(event)` is called with each event (scrapy_do.events); returns an unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _emit(self, event):
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.failure("event listener failed on {event}", event=type(event).__name__)

    def now(self):
        """The clock's instant, aware UTC."""
        return zones.instant(self.clock.seconds())

    def show(self, moment):
        """An instant as the API shows it: the daemon's zone, with the offset."""
        return zones.show(moment, self.zone)

    def _save(self, job):
        self.store.update_job(job)
        self._emit(JobChanged(job))
        return job

    def _add(self, job):
        self.store.add_job(job)
        self._emit(JobChanged(job))
        return job

    # -- projects ---------------------------------------------------------

    @defer.inlineCallbacks
    def push_project(self, data):
        """Check, unpack and list `data`; replace the same-named project atomically."""
        prepared = yield self.projects.prepare(data)
        try:
            project, existing = self._record_push(prepared)
        finally:
            self.projects.release_environment(prepared.environment)
        if existing is not None:
            self._release_tree(existing.tree)
        else:
            self._collect_environments()
        log.info("pushed project {name} with spiders {spiders}", name=project.name, spiders=list(project.spiders))
        self._emit(ProjectPushed(project))
        return project

    def _record_push(self, prepared):
        """Make `prepared` the project's live version: (project, the version it replaced or None)."""
        existing = self.store.get_project(prepared.name)
        if existing is not None:
            scheduled = self.store.list_jobs([JobStatus.SCHEDULED], project=prepared.name)
            dropped = sorted({j.spider for j in scheduled} - set(prepared.spiders))
            if dropped:
                self.projects.discard(prepared)
                raise Conflict(f"the new archive of {prepared.name!r} drops spider(s) {', '.join(dropped)} "
                               "that still have scheduled jobs; cancel those jobs first")
        tree = self.projects.commit(prepared)
        project = Project(name=prepared.name, spiders=prepared.spiders, tree=str(tree), pushed=self.now(),
                          environment=prepared.environment)
        self.store.save_project(project)
        return project, existing

    def _release_tree(self, tree):
        """Delete a tree that is no longer live, unless a crawl still runs in it; the same for environments."""
        projects = self.store.list_projects()
        live = {p.tree for p in projects}
        if tree not in live and all(slot.tree != tree for slot in self.slots.values()):
            self.projects.remove_tree(tree)
        self._collect_environments(projects)

    def _collect_environments(self, projects=None):
        projects = self.store.list_projects() if projects is None else projects
        keys = {p.environment["key"] for p in projects if p.environment}
        keys |= {slot.environment for slot in self.slots.values() if slot.environment}
        self.projects.collect_environments(keys)

    def get_project(self, name):
        project = self.store.get_project(name or "")
        if project is None:
            raise NotFound(f"unknown project {name!r}; push it first or check list-projects")
        return project

    def list_projects(self):
        return [p.name for p in self.store.list_projects()]

    def list_spiders(self, name):
        return list(self.get_project(name).spiders)

    def remove_project(self, name, purge=False):
        """Remove a project; its data directory (what its crawls wrote) stays unless `purge`."""
        project = self.get_project(name)
        scheduled = self.store.count_jobs([JobStatus.SCHEDULED], project=name)
        if scheduled:
            raise Conflict(f"project {name!r} has {scheduled} scheduled job(s); cancel them before removing it")
        self.store.remove_project(name)
        self.projects.remove_archive(name)
        self._release_tree(project.tree)
        if purge:
            self.projects.purge_data(name)
        log.info("removed project {name}{purged}", name=name, purged=" and its data" if purge else "")
        self._emit(ProjectRemoved(project))

    def project_environment(self, name):
        """A Deferred of the project's environment: its summary and packages, or None without one."""
        project = self.get_project(name)
        environments = self.projects.environments
        if not project.environment or environments is None:
            return defer.succeed(None)
        summary = {k: v for k, v in project.environment.items() if k != "key"}
        d = threads.deferToThread(environments.packages, project.environment["key"])
        d.addCallback(lambda packages: {**summary, "packages": packages})
        return d

    def live_build(self, name):
        """(log path, Deferred fired at its end) of the environment build a push of `name` waits for, or None."""
        environments = self.projects.environments
        return environments.building(name) if environments is not None else None

    def build_log_path(self, name):
        """The output of the build of the project's environment; NotFound without one."""
        project = self.get_project(name)
        environments = self.projects.environments
        if not project.environment or environments is None:
            raise NotFound(f"project {project.name!r} has no environment: it was pushed without a requirements.txt")
        path = environments.log_path(project.environment["key"])
        if not path.is_file():
            raise NotFound(f"the build log of {project.name!r} is gone")
        return path

    def list_data(self, name):
        """What the project's crawls wrote: a Deferred of (files, truncated)."""
        return self.projects.list_data(self.get_project(name).name)

    def data_path(self, name, relative):
        return self.projects.data_root / self.get_project(name).name / relative

    def open_data(self, name, relative):
        project = self.get_project(name)
        try:
            return self.projects.open_data(project.name, relative)
        except (OSError, ValueError):
            raise NotFound(f"project {project.name!r} has no data file {relative[:200]!r}; see "
                           "list-data.json") from None

    # -- jobs -------------------------------------------------------------

    def schedule_job(self, project, options, when="now", actor=Actor.USER, settings=None, **values):
        """Record a run (`now`: it starts when a slot is free) or a schedule; return it.

        `options` is a RunOptions, or a spider name with option `values` as the API would send them;
        `settings` (timezone, overlap, catch_up) say how a schedule runs.
        """
        if isinstance(options, str):
            given = {"spider": options, **values}
            options = RunOptions.from_params(given.get)
        settings = settings or {}
        proj = self.get_project(project)
        if options.spider not in proj.spiders:
            raise NotFound(f"project {project!r} has no spider {options.spider!r}; "
                           f"it has: {', '.join(proj.spiders)}")
        parsed = specs.parse(when if when is not None else "now")
        if parsed is None:
            given = sorted(k.replace("_", "-") for k, v in settings.items() if v is not None)
            if given:
                raise BadRequest(f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} only to "
                                 "periodic jobs; this one runs now (when=now)")
            job = self._add(new_run(proj.name, options, self.now(), actor=actor))
            log.info("scheduled job {job} ({spider}, now)", job=job.identifier, spider=options.spider)
            self._pump()
            return job
        self._check_name(settings.get("name"))
        job = new_schedule(proj.name, options, parsed.text, self.now(), actor=actor,
                           **{k: v for k, v in settings.items() if v is not None})
        self.store.add_job(job)
        job = self._arm(job, parsed)
        self._emit(JobChanged(job))
        log.info("scheduled job {job} ({spider}, {when})", job=job.identifier, spider=options.spider,
                 when=job.spec)
        return job

    def _check_name(self, name, identifier=None):
        """Names are unique among SCHEDULED schedules: a name in use is a Conflict."""
        if name is None:
            return
        other = self.store.schedule_named(name)
        if other is not None and other.identifier != identifier:
            raise Conflict(f"name {name!r} is taken by schedule {other.identifier}; choose another name, or edit "
                           "or cancel that schedule")

    def zone_of(self, schedule):
        """The zone a schedule's calendar rules and cron read: its own, else the daemon's."""
        return zones.resolve_zone(schedule.timezone)[0] if schedule.timezone else self.zone

    def _arm(self, schedule, parsed):
        """Put a schedule on the timer and record its next due time."""
        schedule = self._next_run(schedule, parsed)
        self.store.update_job(schedule)
        return schedule

    def _next_run(self, schedule, parsed):
        """Put a schedule on the timer; the schedule with its next due time, not yet stored."""
        due = self.scheduler.add(schedule.identifier, parsed, zone=self.zone_of(schedule))
        return dataclasses.replace(schedule, next_run=zones.instant(due))

    def _fire_schedule(self, identifier):
        schedule = self.store.get_job(identifier)
        if not isinstance(schedule, Schedule) or schedule.status is not JobStatus.SCHEDULED or schedule.paused:
            self.scheduler.remove(identifier)
            return
        due = self.scheduler.next_due(identifier)
        if due is not None:
            schedule = dataclasses.replace(schedule, next_run=zones.instant(due))
        self._spawn(schedule)

    def _spawn(self, schedule):
        """A due time of `schedule`: a new run, unless its overlap rule or a still waiting run says no."""
        identifier = schedule.identifier
        if schedule.overlap == "skip" and self.store.count_jobs(ACTIVE_RUNS, parent=identifier):
            log.info("job {job} is due while its previous run is still active; skipped (overlap = skip)",
                     job=identifier)
            self._emit(ScheduleSkipped(self._save(dataclasses.replace(schedule, skipped=schedule.skipped + 1))))
            return
        self._save(schedule)
        if self.store.has_pending(identifier):
            # Its last run still waits for a slot: this due time merges into it.
            log.info("job {job} is due while its previous run still waits; not queued twice", job=identifier)
            return
        self._add(new_run(schedule.project, schedule.options, self.now(), actor=Actor.SCHEDULER,
                          schedule_id=identifier))
        self._pump()

    def _scheduled(self, identifier, action):
        job = self.get_job(identifier)
        if not isinstance(job, Schedule) or job.status is not JobStatus.SCHEDULED:
            raise Conflict(f"job {job.identifier} is {job.status.value}; only a SCHEDULED (periodic) job can be "
                           f"{action}")
        return job

    def pause_job(self, identifier):
        """A paused schedule spawns nothing until it is resumed."""
        job = self._scheduled(identifier, "paused")
        if job.paused:
            return job
        self.scheduler.remove(job.identifier)
        log.info("paused job {job}", job=job.identifier)
        return self._save(dataclasses.replace(job, paused=True, next_run=None))

    def resume_job(self, identifier):
        """Resuming computes the next run from now: what was due while paused is not made up."""
        job = self._scheduled(identifier, "resumed")
        if not job.paused:
            return job
        log.info("resumed job {job}", job=job.identifier)
        return self._save(self._next_run(dataclasses.replace(job, paused=False), specs.parse(job.spec)))

    def edit_job(self, identifier, when=None, settings=None, options=None):
        """Change a SCHEDULED job in place (same identifier, next run recomputed), or a PENDING run's priority.

        `options` holds parsed RunOptions fields, `settings` parsed schedule settings.
        """
        job = self.get_job(identifier)
        settings, options = settings or {}, options or {}
        if isinstance(job, Run) and job.status is JobStatus.PENDING:
            other = sorted({*settings, *options, *(["when"] if when is not None else [])} - {"priority"})
            if other:
                raise Conflict(f"job {job.identifier} is PENDING: only its priority can change (not "
                               f"{', '.join(o.replace('_', '-') for o in other)}); cancel it and schedule it anew")
            return self._save(dataclasses.replace(job, options=dataclasses.replace(job.options, **options)))
        job = self._scheduled(identifier, "edited")
        self._check_name(settings.get("name"), job.identifier)
        parsed = specs.parse(when if when is not None else job.spec)
        if parsed is None:
            raise BadRequest("when: a periodic job stays periodic; to run it now, schedule a run with when=now")
        edited = dataclasses.replace(job, spec=parsed.text, options=dataclasses.replace(job.options, **options),
                                     **settings)
        if not edited.paused:
            self.scheduler.remove(job.identifier)
            edited = self._next_run(edited, parsed)
        log.info("edited job {job}", job=job.identifier)
        return self._save(edited)

    def get_job(self, identifier):
        job = self.store.get_job(check_job_id(identifier))
        if job is None:
            raise NotFound(f"unknown job {identifier!r}; it may have been purged (completed-cap)")
        return job

    def list_jobs(self, status=None, project=None, spider=None, limit=None, offset=0):
        statuses = None if status is None else parse_statuses(status)
        return self.store.list_jobs(statuses, project=project, spider=spider, limit=limit, offset=offset)

    def list_jobs_json(self, status, project=None, spider=None, limit=None, offset=0, parent=None):
        """list_jobs for the API: each job already as JSON text, and how many match in all."""
        statuses = parse_statuses(status)
        jobs = self.store.list_jobs_json(statuses, project=project, spider=spider, limit=limit, offset=offset,
                                         parent=parent)
        if limit is None and not offset:
            return jobs, len(jobs)
        return jobs, self.store.count_jobs(statuses, project=project, spider=spider, parent=parent)

    def count_jobs(self, status=None, project=None, spider=None, parent=None):
        statuses = None if status is None else parse_statuses(status)
        return self.store.count_jobs(statuses, project=project, spider=spider, parent=parent)

    def cancel_job(self, identifier):
        """Cancel a job; the Deferred fires with the CANCELED job (after the crawl ended, if running)."""
        job = self.get_job(identifier)
        slot = self.slots.get(job.identifier)
        if slot is not None and slot.run is not None:
            self._canceling.add(job.identifier)
            log.info("canceling running job {job}", job=job.identifier)
            d = slot.run.stop(self.config.cancel_grace)
            d.addCallback(lambda _: self.store.get_job(job.identifier))
            return d
        if slot is not None:
            # Still launching: it is canceled as soon as the launcher answers.
            self._canceling.add(job.identifier)
        job = transition(job, JobStatus.CANCELED, finished=self.now(),
                         **({"reason": "canceled"} if isinstance(job, Run) else {}))
        if isinstance(job, Schedule):
            self.scheduler.remove(job.identifier)
            job = dataclasses.replace(job, next_run=None)
        self.store.record(job, "canceled")
        self._emit(JobChanged(job))
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

    def files_of(self, identifier):
        """Where a job's out and err logs and its items are (or would be), whether or not they exist."""
        out, err = self._log_paths(identifier)
        return {"out": out, "err": err, "items": self._items_path(identifier)}

    def _log_paths(self, identifier):
        return [str(Path(self.config.log_dir) / f"{identifier}.{kind}") for kind in LOG_KINDS]

    def _items_path(self, identifier):
        return str(Path(self.config.log_dir) / f"{identifier}.jl")

    def items_path(self, identifier):
        """Path of a job's items (JSON Lines); NotFound if the job is unknown or kept none."""
        job = self.get_job(identifier)
        path = Path(self._items_path(job.identifier))
        if not path.is_file():
            if isinstance(job, Run) and job.status.completed:
                raise NotFound(f"job {job.identifier} has no items: it ended before it could report any, or "
                               "items are not kept (keep-items = off)")
            raise NotFound(f"job {job.identifier} has no items yet; it is {job.status.value}")
        return path

    # -- running ----------------------------------------------------------

    def _pump(self):
        """Start what `dispatch` says fills the free slots; safe to call from within itself."""
        if self._stopping or not self.running:
            return
        if self._backoff is not None and self._backoff.active():
            return
        if self._pumping:
            self._pump_again = True
            return
        self._pumping = True
        try:
            while True:
                self._pump_again = False
                free = self.config.job_slots - len(self.slots)
                if free <= 0:
                    break
                running = [slot.key for slot in self.slots.values()]
                cap = self.config.max_per_spider
                # Runs of spiders at their cap, runs launching and quarantined ones stay in the store; the
                # store hands over no more than fit the free slots, in queue order.
                pending = self.store.pending_queue(free, exclude=dispatch.saturated(running, cap),
                                                   skip={*self.slots, *self._quarantined})
                for run in dispatch.next_to_start(pending, set(self.slots), self.config.job_slots, cap, running):
                    self._start(run)
                if not self._pump_again:
                    break
        finally:
            self._pumping = False

    def _start(self, run):
        """Reserve a slot and launch; `_launched` or `_launch_failed` settles it."""
        out_path, err_path = self._log_paths(run.identifier)
        project = self.store.get_project(run.project)
        if project is None or run.spider not in project.spiders:
            self._fail_start(run, f"project {run.project!r} or its spider {run.spider!r} was removed "
                                  "before the job could start")
            return
        slot = self.slots[run.identifier] = _Slot(project.tree, (run.project, run.spider))
        slot.environment = project.environment["key"] if project.environment else None
        python = self.projects.python_of(project.environment) if project.environment else None

        def launch():
            try:
                data = self.projects.data_dir(run.project)
            except OSError as e:
                raise LaunchError(f"cannot prepare the data directory of {run.project!r}: {e}",
                                  transient=e.errno == errno.ENOSPC) from None
            report = None
            if self.report_url:
                token = secrets.token_urlsafe(24)
                slot.insight = self._insight(run.identifier, token_key(token))
                report = {"url": f"{self.report_url}/report/{run.identifier}.json", "token": token,
                          "interval": REPORT_INTERVAL, "logs": f"{self.report_url}/report/{run.identifier}/log"}
                if slot.insight.items is not None:
                    report["items"] = f"{self.report_url}/report/{run.identifier}/items.jl"
            return self.launcher.launch(LaunchSpec(job_id=run.identifier, options=run.options, cwd=project.tree,
                                                   out_path=out_path, err_path=err_path,
                                                   env={"SPIDER_DATA_DIR": str(data)}, report=report,
                                                   python=python, project=run.project))

        d = defer.maybeDeferred(launch)
        d.addCallbacks(self._launched, self._launch_failed, callbackArgs=(run.identifier, slot),
                       errbackArgs=(run.identifier,))
        d.addErrback(lambda f: log.failure("settling the launch of job {job} failed", f, job=run.identifier))

    def _launched(self, crawl, identifier, slot):
        """The crawl runs: record it, or stop it again, so that nothing runs untracked."""
        try:
            run = self.store.get_job(identifier)
            if self._stopping and crawl.detached and run.status is JobStatus.PENDING:
                # It runs on a cluster and goes on: the next daemon re-attaches to it.
                self._save(transition(run, JobStatus.RUNNING, started=self.now(), handle=crawl.handle,
                                      report_key=slot.insight.stored if slot.insight else None))
                crawl.detach()
                return
            if identifier in self._canceling or self._stopping or run.status is not JobStatus.PENDING:
                self._track(identifier, slot, crawl)
                crawl.stop(self.config.cancel_grace)
                return
            self._save(transition(run, JobStatus.RUNNING, started=self.now(), handle=crawl.handle,
                                  report_key=slot.insight.stored if slot.insight else None))
        except Exception as e:
            log.failure("recording the start of job {job} failed; stopping its crawl", job=identifier)
            self._abandon(identifier, slot, crawl, f"the daemon could not record the start of the crawl ({e})")
            return
        self._backoff_delay = RETRY_FIRST
        self._launch_problem(None)
        self._track(identifier, slot, crawl)
        if identifier in self._canceling:
            # A listener canceled it on hearing it runs, before it was tracked (as if still launching).
            crawl.stop(self.config.cancel_grace)
            return
        self._arm_deadline(run, slot, self.now())
        log.info("job {job} started: {spider} ({handle})", job=identifier, spider=run.spider, handle=crawl.handle)

    def _arm_deadline(self, run, slot, started):
        """Stop the crawl at its time limit, counted from when it started (also for one re-attached)."""
        limit = run.options.timeout or self.config.job_timeout
        if limit:
            left = max(0.0, limit - (self.now() - started).total_seconds())
            slot.deadline = self.clock.callLater(left, self._time_out, run.identifier, limit)

    def _insight(self, identifier, key, samples=(), start=None):
        """What takes a run's reports; its items file is opened (made) now, so a crawl's items always have
        somewhere to go."""
        items = None
        if self.config.keep_items:
            try:
                items = ItemsFile(self._items_path(identifier), self.config.max_items_size, hub=self.hub,
                                  start=start)
            except OSError as e:
                log.warn("job {job} keeps no items: {e}", job=identifier, e=e)
        return Insight(key, items=items, samples=samples)

    def _reporting(self, identifier, token):
        slot = self.slots.get(check_job_id(identifier))
        if slot is None or slot.insight is None:
            raise Forbidden(f"no running job {identifier} takes reports with this token")
        slot.insight.check(identifier, token)
        return slot.insight

    def report(self, identifier, token, body):
        """A running crawl's report (scrapy_do.crawl.reporter): refused, changing nothing, unless its token is
        the one this run was given; a summary goes into the job's record (and to /events)."""
        insight = self._reporting(identifier, token)
        summary = insight.take_report(body)
        run = self.store.get_job(identifier)
        if run is not None and run.status is JobStatus.RUNNING:
            errors = summary.get("errors")
            self._save(dataclasses.replace(run, stats=summary, samples=insight.samples,
                                           errors=errors if isinstance(errors, int) else run.errors))

    def report_output(self, identifier, token, kind, offset, body):
        """A piece of a remote crawl's stdout or stderr (scrapy_do.launchers.remote): how many bytes of that
        output the daemon has now."""
        self._reporting(identifier, token)
        run = self.slots[identifier].run
        if run is None:
            raise Conflict(f"job {identifier} is still being launched; send its output again in a moment")
        if not IRemoteRun.providedBy(run):
            raise Forbidden(f"job {identifier} runs on this machine: the daemon reads its output itself")
        return {"received": run.take_output(kind, offset, body)}

    def report_items(self, identifier, token, first, body):
        """A batch of a running crawl's items: {"received": how many it has, "capped": no more wanted}."""
        return self._reporting(identifier, token).take_items(first, body)

    def job_stats(self, identifier):
        """The whole Scrapy stats of a job and its samples: the latest report of a running one, the final
        ones of a finished one."""
        job = self.get_job(identifier)
        slot = self.slots.get(job.identifier)
        if slot is not None and slot.insight is not None and slot.insight.stats is not None:
            return slot.insight.stats, slot.insight.samples
        if isinstance(job, Run) and job.status.completed and job.stats is not None:
            return job.stats, job.samples
        raise NotFound(f"job {job.identifier} has no stats yet; it is {job.status.value}")

    def _time_out(self, identifier, limit):
        """The crawl reached its time limit: SIGTERM (Scrapy's graceful stop), SIGKILL after cancel-grace."""
        slot = self.slots.get(identifier)
        if slot is None or slot.run is None:
            return
        slot.deadline = None
        self._timed_out.add(identifier)
        log.info("job {job} reached its time limit of {limit} s; stopping it", job=identifier, limit=limit)
        slot.run.stop(self.config.cancel_grace)

    def _track(self, identifier, slot, crawl):
        slot.run = crawl
        self.slots[identifier] = slot
        crawl.ended.addCallback(self._ended, identifier)

    def _abandon(self, identifier, slot, crawl, reason):
        """Kill a crawl we cannot keep track of; its job fails once it is gone."""
        def gone(_):
            slot.release()
            self.slots.pop(identifier, None)
            run = self.store.get_job(identifier)
            try:
                if run is not None and run.status is JobStatus.PENDING:
                    self._fail_start(run, reason)
            except Exception:
                log.failure("job {job} cannot be recorded as failed; left aside until restart", job=identifier)
                self._quarantined.add(identifier)
            self._pump()

        crawl.ended.addBoth(gone)
        crawl.stop(0)

    def _launch_failed(self, failure, identifier):
        slot = self.slots.pop(identifier, None)
        if slot is not None:
            slot.release()
        if failure.check(LaunchError) and failure.value.transient and identifier not in self._canceling:
            # Out of descriptors or processes: the job keeps its place and launches wait a little.
            delay, self._backoff_delay = self._backoff_delay, min(self._backoff_delay * 2, RETRY_MAX)
            log.warn("job {job} could not start ({e}); trying again in {delay:.0f} s", job=identifier,
                     e=failure.value.msg, delay=delay)
            self._launch_problem(failure.value.msg)
            self._backoff = self.clock.callLater(delay, self._pump)
            return
        message = failure.value.msg if failure.check(LaunchError) else f"{failure.type.__name__}: {failure.value}"
        if not failure.check(LaunchError):
            log.failure("launching job {job} failed", failure, job=identifier)
        run = self.store.get_job(identifier)
        if identifier in self._canceling:
            self._canceling.discard(identifier)
        elif run is not None and run.status is JobStatus.PENDING:
            self._fail_start(run, message)
        self._pump()

    def _launch_problem(self, reason):
        if reason != self.launch_problem:
            self.launch_problem = reason
            self._emit(LaunchProblem(reason))

    def _fail_start(self, run, message):
        """A run that could not start is FAILED at once, with the reason in its .err log."""
        log.error("job {job} failed to start: {e}", job=run.identifier, e=message)
        _, err_path = self._log_paths(run.identifier)
        try:
            with open(err_path, "a", encoding="utf-8") as f:
                f.write(f"scrapy-do: {message}\n")
        except OSError as e:
            log.warn("cannot write {path}: {e}", path=err_path, e=e)
        now = self.now()
        failed = transition(transition(run, JobStatus.RUNNING, started=now), JobStatus.FAILED, finished=now,
                            duration=0, reason="failed to start")
        self.store.record(failed, "run", "failed")
        self._emit(JobChanged(failed))
        self._purge()

    def _ended(self, code, identifier):
        slot = self.slots.pop(identifier)
        slot.release()
        if slot.deadline is not None and slot.deadline.active():
            slot.deadline.cancel()
        timed_out = identifier in self._timed_out
        self._timed_out.discard(identifier)
        self._release_tree(slot.tree)
        job = self.store.get_job(identifier)
        now = self.now()
        if job is None or job.status is not JobStatus.RUNNING:
            # Stopped before it was recorded as running: canceled while launching, or shutdown.
            self._canceling.discard(identifier)
            self._pump()
            return code
        canceled = identifier in self._canceling and not timed_out
        self._canceling.discard(identifier)
        if timed_out:
            status, counter = JobStatus.FAILED, "failed"
        elif canceled:
            status, counter = JobStatus.CANCELED, "canceled"
        elif self._stopping:
            # The daemon is shutting down: run this job again at the next start.
            self._save(transition(job, JobStatus.PENDING, started=None, handle=None))
            log.info("job {job} interrupted by shutdown; queued again", job=identifier)
            return code
        else:
            status, counter = (JobStatus.SUCCESSFUL, "successful") if code == 0 else (JobStatus.FAILED, "failed")
        duration = round((now - job.started).total_seconds()) if job.started else None
        reason = end_reason(code, canceled=canceled, timed_out=timed_out)
        stats, errors, samples = job.stats, job.errors, job.samples
        insight = slot.insight
        if insight is not None and insight.final is not None:
            stats, errors = insight.final, insight.errors
            elapsed = stats.get("elapsed_time_seconds")
            samples = job_stats.add_sample(insight.samples, elapsed if isinstance(elapsed, (int, float))
                                           else (duration or 0), stats)
        fail_on_errors = job.options.fail_on_errors
        if fail_on_errors is None:
            fail_on_errors = self.config.fail_on_errors
        if status is JobStatus.SUCCESSFUL and errors and fail_on_errors:
            status, counter, reason = JobStatus.FAILED, "failed", "errors"
        if insight is not None and insight.items is not None and insight.items.capped:
            capped = f"items capped at max-items-size ({self.config.max_items_size} bytes)"
            reason = f"{reason}; {capped}" if reason else capped
        final = transition(job, status, finished=now, duration=duration, exit_code=code, handle=None,
                           reason=reason, stats=stats, errors=errors, samples=samples, report_key=None)
        log.info("job {job} ended: {status} (exit {code})", job=identifier, status=status.value, code=code)
        self._record_end(final, counter, RETRY_FIRST, announce=True)
        self._pump()
        return code

    def _record_end(self, final, counter, delay, announce=False):
        """Write a run's end; on a full disk, try again later, never drop it.

        Subscribers hear of the end at once either way (followers of its log
        stop, the dashboard shows it), after the write when it succeeds.
        """
        try:
            self.store.record(final, "run", counter)
        except StorageFull as e:
            log.error("cannot record the end of job {job} ({e}); trying again in {delay:.0f} s",
                      job=final.identifier, e=e.msg, delay=delay)
            self.clock.callLater(delay, self._record_end, final, counter, min(delay * 2, RETRY_MAX))
            if announce:
                self._emit(JobChanged(final))
            return
        if announce:
            self._emit(JobChanged(final))
        self._purge()

    def _purge(self):
        for identifier in self.store.purge_completed(self.config.completed_cap):
            for path in [*self._log_paths(identifier), self._items_path(identifier)]:
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
            self._emit(JobRemoved(identifier))

    # -- status -----------------------------------------------------------

    def _stored_status(self):
        """What status() reads from the store, read again only after a write: it is asked for often (dashboards,
        monitors) and changes seldom."""
        generation = self.store.generation
        if generation is None or self._status_cache is None or self._status_cache[0] != generation:
            counters = self.store.counters()
            projects = self.store.list_projects()
            stored = {
                "jobs-run": counters["run"],
                "jobs-successful": counters["successful"],
                "jobs-failed": counters["failed"],
                "jobs-canceled": counters["canceled"],
                "jobs-scheduled": self.store.count_jobs([JobStatus.SCHEDULED]),
                "jobs-pending": self.store.count_jobs([JobStatus.PENDING]),
                "projects": len(projects),
                "spiders": sum(len(p.spiders) for p in projects),
            }
            self._status_cache = (generation, stored)
        return self._status_cache[1]

    def status(self):
        stored = self._stored_status()
        uptime = self.clock.seconds() - self.started_at if self.started_at is not None else 0
        return {
            "daemon-version": __version__,
            "hostname": socket.gethostname(),
            "time": self.show(self.now()),
            "timezone": self.config.timezone,
            "uptime-seconds": uptime,
            "jobs-run": stored["jobs-run"],
            "jobs-successful": stored["jobs-successful"],
            "jobs-failed": stored["jobs-failed"],
            "jobs-canceled": stored["jobs-canceled"],
            "jobs-scheduled": stored["jobs-scheduled"],
            "jobs-pending": stored["jobs-pending"],
            "jobs-running": sum(1 for slot in self.slots.values() if slot.run is not None),
            "job-slots": self.config.job_slots,
            "launch-problem": self.launch_problem,
            "projects": stored["projects"],
            "spiders": stored["spiders"],
        }
