"""What the engine tells its subscribers (the SSE stream today; webhooks and metrics later).

Typed values instead of strings, so a subscriber matches on the class and a
new kind of event cannot be confused with an old one.
"""

from dataclasses import dataclass

from scrapy_do.domain.models import Project


@dataclass(frozen=True)
class JobChanged:
    """A run or schedule was created or changed state."""

    job: object


@dataclass(frozen=True)
class JobRemoved:
    """A finished job was purged (completed-cap)."""

    identifier: str


@dataclass(frozen=True)
class ProjectPushed:
    project: Project


@dataclass(frozen=True)
class ProjectRemoved:
    project: Project


@dataclass(frozen=True)
class LaunchProblem:
    """Launches wait out a transient failure (`reason`), or work again (`reason` None): status.json changed."""

    reason: str | None


@dataclass(frozen=True)
class ScheduleSkipped:
    """A schedule's due run was skipped for `overlap = skip` (`schedule` as saved, its count raised)."""

    schedule: object
