"""Runs, schedules and projects as plain data, plus the allowed status transitions.

Pure: nothing here touches the clock, the disk or the reactor. A *run* is one
crawl (PENDING → RUNNING → SUCCESSFUL/FAILED/CANCELED); a *schedule* is a
periodic spec that makes runs (SCHEDULED → CANCELED). The API shows both as
"jobs", as Scrapy Do 0.5.0 did; `records.py` says how.
"""

import dataclasses
import enum
import uuid
from dataclasses import dataclass
from datetime import datetime

from scrapy_do.domain.options import RunOptions, normalise_payload  # noqa: F401  (re-exported)
from scrapy_do.errors import Conflict


class JobStatus(enum.Enum):
    SCHEDULED = "SCHEDULED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCESSFUL = "SUCCESSFUL"
    FAILED = "FAILED"
    CANCELED = "CANCELED"

    @property
    def active(self):
        return self in ACTIVE

    @property
    def completed(self):
        return self in COMPLETED


ACTIVE = frozenset({JobStatus.SCHEDULED, JobStatus.PENDING, JobStatus.RUNNING})
COMPLETED = frozenset({JobStatus.SUCCESSFUL, JobStatus.FAILED, JobStatus.CANCELED})
SCHEDULE_STATUSES = frozenset({JobStatus.SCHEDULED, JobStatus.CANCELED})
RUN_STATUSES = frozenset(JobStatus) - {JobStatus.SCHEDULED}


class Actor(enum.Enum):
    USER = "USER"
    SCHEDULER = "SCHEDULER"


# RUNNING -> PENDING is the daemon putting a run back when it shuts down or
# recovers from a crash; every other edge is a user or process event.
TRANSITIONS = {
    JobStatus.SCHEDULED: {JobStatus.CANCELED},
    JobStatus.PENDING: {JobStatus.RUNNING, JobStatus.CANCELED},
    JobStatus.RUNNING: {JobStatus.SUCCESSFUL, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.PENDING},
    JobStatus.SUCCESSFUL: set(),
    JobStatus.FAILED: set(),
    JobStatus.CANCELED: set(),
}


@dataclass(frozen=True)
class _Job:
    """What runs and schedules share: the API shows both as jobs."""

    identifier: str
    status: JobStatus
    actor: Actor
    project: str
    options: RunOptions
    timestamp: datetime

    @property
    def spider(self):
        return self.options.spider

    @property
    def payload(self):
        return self.options.payload

    @property
    def description(self):
        return self.options.description


@dataclass(frozen=True)
class Run(_Job):
    """One crawl. `handle` is the launcher's persisted reference to it while it runs."""

    started: datetime | None = None
    finished: datetime | None = None
    duration: int | None = None
    exit_code: int | None = None
    handle: str | None = None
    schedule_id: str | None = None
    reason: str | None = None  # why it ended as it did: timeout, canceled, exit code N, signal N
    stats: dict | None = None  # while RUNNING a summary the crawl reports; at its end Scrapy's final stats
    errors: int | None = None  # logged errors and callback exceptions, from the crawl's stats
    samples: tuple = ()        # (elapsed s, items, requests) over the crawl's life, for a chart
    report_key: str | None = None  # sha256 of the crawl's report token, and where its items start (engine.insight)

    schedule = "now"

    @property
    def parent(self):
        return self.schedule_id


@dataclass(frozen=True)
class Schedule(_Job):
    """A periodic spec in the daemon's zone; each due time makes a Run pointing back here."""

    spec: str
    finished: datetime | None = None
    next_run: datetime | None = None
    timezone: str | None = None  # the zone its calendar rules and cron read; None: the daemon's
    overlap: str = "allow"       # "skip": no new run while its previous one is PENDING or RUNNING
    catch_up: bool = False       # a run missed while the daemon was down starts once at start-up
    paused: bool = False
    skipped: int = 0             # due runs skipped for overlap
    name: str | None = None      # unique among SCHEDULED schedules: how schedules as code know it

    parent = started = duration = exit_code = reason = stats = errors = report_key = None
    samples = ()

    @property
    def schedule(self):
        return self.spec


def new_run(project, options, now, *, actor=Actor.USER, schedule_id=None):
    """A fresh PENDING run; it starts when a slot is free."""
    return Run(identifier=str(uuid.uuid4()), status=JobStatus.PENDING, actor=actor, project=project,
               options=options, timestamp=now, schedule_id=schedule_id)


def new_schedule(project, options, spec, now, *, actor=Actor.USER, **settings):
    """A fresh SCHEDULED schedule for the normalised `spec` text (`settings`: timezone, overlap, catch_up, name)."""
    return Schedule(identifier=str(uuid.uuid4()), status=JobStatus.SCHEDULED, actor=actor, project=project,
                    options=options, spec=spec, timestamp=now, **settings)


def transition(job, status, **changes):
    """Return `job` (a Run or a Schedule) moved to `status`, or raise Conflict for a forbidden edge."""
    if status not in TRANSITIONS[job.status]:
        if job.status.completed:
            raise Conflict(f"job {job.identifier} already finished ({job.status.value}); nothing to do")
        raise Conflict(f"job {job.identifier} is {job.status.value} and cannot become {status.value}")
    return dataclasses.replace(job, status=status, **changes)


def end_reason(exit_code, *, canceled=False, timed_out=False):
    """Why a run ended as it did, for its record; None when it simply succeeded."""
    if timed_out:
        return "timeout"
    if canceled:
        return "canceled"
    if not exit_code:
        return None
    return f"signal {-exit_code}" if exit_code < 0 else f"exit code {exit_code}"


@dataclass(frozen=True)
class Project:
    name: str
    spiders: tuple
    tree: str
    pushed: datetime
    #: Its requirements.txt's environment: {"key", "requirements", "reused", "seconds"}; None: none.
    environment: dict | None = None
