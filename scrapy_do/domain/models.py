"""Jobs and projects as plain data, plus the allowed status transitions.

Pure: nothing here touches the clock, the disk or the reactor.
"""

import dataclasses
import enum
import json
import uuid
from dataclasses import dataclass
from datetime import datetime

from scrapy_do.errors import Conflict, InvalidPayload


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


class Actor(enum.Enum):
    USER = "USER"
    SCHEDULER = "SCHEDULER"


# RUNNING -> PENDING is the daemon putting a job back when it shuts down or
# recovers from a crash; every other edge is a user or process event.
TRANSITIONS = {
    JobStatus.SCHEDULED: {JobStatus.CANCELED},
    JobStatus.PENDING: {JobStatus.RUNNING, JobStatus.CANCELED},
    JobStatus.RUNNING: {JobStatus.SUCCESSFUL, JobStatus.FAILED, JobStatus.CANCELED, JobStatus.PENDING},
    JobStatus.SUCCESSFUL: set(),
    JobStatus.FAILED: set(),
    JobStatus.CANCELED: set(),
}


def _fmt(ts):
    return None if ts is None else str(ts)


@dataclass(frozen=True)
class Job:
    identifier: str
    status: JobStatus
    actor: Actor
    schedule: str
    project: str
    spider: str
    timestamp: datetime
    description: str = ""
    payload: str = "{}"
    duration: int | None = None
    started: datetime | None = None
    finished: datetime | None = None
    exit_code: int | None = None
    pid: int | None = None
    pid_created: float | None = None
    parent: str | None = None

    def to_dict(self):
        """The contract's keys first, then the extras our clients may use."""
        return {
            "identifier": self.identifier,
            "status": self.status.value,
            "actor": self.actor.value,
            "schedule": self.schedule,
            "project": self.project,
            "spider": self.spider,
            "description": self.description,
            "timestamp": _fmt(self.timestamp),
            "duration": self.duration,
            "payload": self.payload,
            "started": _fmt(self.started),
            "finished": _fmt(self.finished),
            "exit-code": self.exit_code,
            "parent": self.parent,
        }


def new_job(project, spider, schedule, now, *, actor=Actor.USER, description="", payload="{}", parent=None):
    """A fresh job: PENDING for `now`, SCHEDULED for a periodic spec."""
    status = JobStatus.PENDING if schedule == "now" else JobStatus.SCHEDULED
    return Job(
        identifier=str(uuid.uuid4()),
        status=status,
        actor=actor,
        schedule=schedule,
        project=project,
        spider=spider,
        timestamp=now,
        description=description,
        payload=payload,
        parent=parent,
    )


def transition(job, status, **changes):
    """Return `job` moved to `status`, or raise Conflict for a forbidden edge."""
    if status not in TRANSITIONS[job.status]:
        if job.status.completed:
            raise Conflict(f"job {job.identifier} already finished ({job.status.value}); nothing to do")
        raise Conflict(f"job {job.identifier} is {job.status.value} and cannot become {status.value}")
    return dataclasses.replace(job, status=status, **changes)


def normalise_payload(text):
    """Validate a payload as a JSON object and return its canonical text."""
    if text is None or str(text).strip() == "":
        return "{}"
    try:
        value = json.loads(text)
    except ValueError as e:
        raise InvalidPayload(f"payload is not valid JSON ({e}); send a JSON object such as {{\"key\": 1}}") from None
    except RecursionError:
        raise InvalidPayload("payload is nested too deeply; flatten it") from None
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")
        raise InvalidPayload(f"payload must be a JSON object such as {{\"key\": 1}}, not {kind}")
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPayload("payload holds an unpaired surrogate escape (like \\ud800); send valid Unicode") \
            from None
    return text


@dataclass(frozen=True)
class Project:
    name: str
    spiders: tuple
    tree: str
    pushed: datetime
