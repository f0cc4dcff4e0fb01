"""The store in dicts: same behaviour as SqliteStore, for tests and throwaway daemons."""

import json

from zope.interface import implementer

from scrapy_do.domain import zones
from scrapy_do.domain.models import COMPLETED, JobStatus, Run
from scrapy_do.domain.records import to_record
from scrapy_do.interfaces import IJobStore

COUNTERS = ("run", "successful", "failed", "canceled")


@implementer(IJobStore)
class MemoryStore:
    generation = None  # a store for tests: nothing read from it is kept

    def __init__(self, zone=zones.UTC):
        self.zone = zone
        self._jobs = {}
        self._seq = {}
        self._projects = {}
        self._counters = dict.fromkeys(COUNTERS, 0)

    def open(self):
        return self

    def close(self):
        pass

    def add_job(self, job):
        if job.identifier in self._jobs:
            raise ValueError(f"duplicate job {job.identifier}")
        self._seq[job.identifier] = len(self._seq)
        self._jobs[job.identifier] = job

    def add_jobs(self, jobs):
        for job in jobs:
            self.add_job(job)

    def update_job(self, job):
        if job.identifier in self._jobs:
            self._jobs[job.identifier] = job

    def update_jobs(self, jobs):
        for job in jobs:
            self.update_job(job)

    def get_job(self, identifier):
        return self._jobs.get(identifier)

    def record(self, job, *counters):
        self.update_job(job)
        for counter in counters:
            self.bump(counter)

    def schedule_named(self, name):
        return next((j for j in self._jobs.values() if getattr(j, "name", None) == name
                     and j.status is JobStatus.SCHEDULED), None)

    def has_pending(self, schedule_id):
        return any(isinstance(j, Run) and j.schedule_id == schedule_id and j.status is JobStatus.PENDING
                   for j in self._jobs.values())

    def _match(self, statuses, project, spider, parent=None):
        statuses = None if statuses is None else set(statuses)
        jobs = [j for j in self._jobs.values()
                if (statuses is None or j.status in statuses)
                and (parent is None or j.parent == parent)
                and (project is None or j.project == project)
                and (spider is None or j.options.spider == spider)]
        return sorted(jobs, key=lambda j: self._seq[j.identifier])

    def list_jobs(self, statuses=None, project=None, spider=None, limit=None, offset=0, oldest_first=False,
                  parent=None):
        jobs = self._match(statuses, project, spider, parent)
        if not oldest_first:
            jobs.reverse()
        return jobs[offset:None if limit is None else offset + limit]

    def pending_queue(self, limit, exclude=(), skip=()):
        pending = [j for j in self._jobs.values() if j.status is JobStatus.PENDING
                   and (j.project, j.options.spider) not in exclude and j.identifier not in skip]
        pending.sort(key=lambda j: (-j.options.priority, self._seq[j.identifier]))
        return pending[:limit]

    def count_jobs(self, statuses=None, project=None, spider=None, parent=None):
        return len(self._match(statuses, project, spider, parent))

    def list_jobs_json(self, statuses=None, project=None, spider=None, limit=None, offset=0, parent=None):
        return [json.dumps(to_record(j, self.zone), ensure_ascii=False)
                for j in self.list_jobs(statuses, project, spider, limit, offset, parent=parent)]

    def purge_completed(self, keep):
        doomed = [j.identifier for j in self.list_jobs(COMPLETED)[keep:]]
        for identifier in doomed:
            del self._jobs[identifier]
        return doomed

    def save_project(self, project):
        self._projects[project.name] = project

    def get_project(self, name):
        return self._projects.get(name)

    def list_projects(self):
        return [self._projects[n] for n in sorted(self._projects)]

    def remove_project(self, name):
        self._projects.pop(name, None)

    def counters(self):
        return dict(self._counters)

    def bump(self, counter):
        self._counters[counter] += 1
