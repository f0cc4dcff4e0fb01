"""Job and project records: SQLite for the daemon, memory for tests.

SQLite runs in WAL mode with `synchronous=NORMAL`: a commit survives a crash
of the daemon (the case we care about), each write costs well under a
millisecond, and readers never wait for the writer.
"""

import json
import shutil
import sqlite3
from datetime import datetime

from zope.interface import implementer

from scrapy_do.errors import StartupError
from scrapy_do.interfaces import IJobStore
from scrapy_do.domain.models import COMPLETED, Actor, Job, JobStatus, Project

COUNTERS = ("run", "successful", "failed", "canceled")

# Each entry moves the schema from version i to i + 1; never edit a shipped one.
MIGRATIONS = [
    """
    CREATE TABLE jobs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        identifier TEXT NOT NULL UNIQUE,
        status TEXT NOT NULL,
        actor TEXT NOT NULL,
        schedule TEXT NOT NULL,
        project TEXT NOT NULL,
        spider TEXT NOT NULL,
        description TEXT NOT NULL DEFAULT '',
        payload TEXT NOT NULL DEFAULT '{}',
        timestamp TEXT NOT NULL,
        duration INTEGER,
        started TEXT,
        finished TEXT,
        exit_code INTEGER,
        pid INTEGER,
        pid_created REAL,
        parent TEXT
    );
    CREATE INDEX jobs_status ON jobs (status, seq);
    CREATE INDEX jobs_project ON jobs (project, spider, seq);
    CREATE TABLE projects (
        name TEXT PRIMARY KEY,
        spiders TEXT NOT NULL,
        tree TEXT NOT NULL,
        pushed TEXT NOT NULL
    );
    CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    INSERT INTO counters VALUES ('run', 0), ('successful', 0), ('failed', 0), ('canceled', 0);
    """,
]

_JOB_COLUMNS = (
    "identifier", "status", "actor", "schedule", "project", "spider", "description", "payload",
    "timestamp", "duration", "started", "finished", "exit_code", "pid", "pid_created", "parent",
)


# The public form of a job (models.Job.to_dict), built by SQLite's JSON1 in C:
# listing 1,000 jobs costs a few milliseconds instead of tens.
_JOB_JSON = "json_object(" + ", ".join(f"'{key}', {column}" for key, column in (
    ("identifier", "identifier"), ("status", "status"), ("actor", "actor"), ("schedule", "schedule"),
    ("project", "project"), ("spider", "spider"), ("description", "description"), ("timestamp", "timestamp"),
    ("duration", "duration"), ("payload", "payload"), ("started", "started"), ("finished", "finished"),
    ("exit-code", "exit_code"), ("parent", "parent"))) + ")"


def _ts(value):
    return None if value is None else value.isoformat(sep=" ")


def _parse_ts(text):
    return None if text is None else datetime.fromisoformat(text)


def _job_row(job):
    return (
        job.identifier, job.status.value, job.actor.value, job.schedule, job.project, job.spider,
        job.description, job.payload, _ts(job.timestamp), job.duration, _ts(job.started),
        _ts(job.finished), job.exit_code, job.pid, job.pid_created, job.parent,
    )


def _row_job(row):
    d = dict(zip(_JOB_COLUMNS, row))
    d["status"] = JobStatus(d["status"])
    d["actor"] = Actor(d["actor"])
    for key in ("timestamp", "started", "finished"):
        d[key] = _parse_ts(d[key])
    return Job(**d)


@implementer(IJobStore)
class SqliteStore:
    """The embedded default store; `path` may be ':memory:'."""

    def __init__(self, path):
        self.path = str(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as e:
            raise StartupError(f"cannot open the database {self.path}: {e}; "
                               "restore it from the .bak copy next to it or move it away") from None

    def _migrate(self):
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StartupError(f"the database {self.path} has schema version {version}, newer than this "
                               f"Scrapy Do knows ({len(MIGRATIONS)}); upgrade Scrapy Do")
        if version == len(MIGRATIONS):
            return
        if version > 0 and self.path != ":memory:":
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            shutil.copy2(self.path, f"{self.path}.v{version}.bak")
        for number in range(version, len(MIGRATIONS)):
            # executescript would commit on its own; one explicit transaction
            # per step keeps a failed migration from leaving half a schema.
            self._db.execute("BEGIN")
            try:
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={number + 1}")
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def close(self):
        self._db.close()

    def add_job(self, job):
        marks = ", ".join("?" * len(_JOB_COLUMNS))
        self._db.execute(f"INSERT INTO jobs ({', '.join(_JOB_COLUMNS)}) VALUES ({marks})", _job_row(job))

    def update_job(self, job):
        sets = ", ".join(f"{c} = ?" for c in _JOB_COLUMNS[1:])
        row = _job_row(job)
        self._db.execute(f"UPDATE jobs SET {sets} WHERE identifier = ?", row[1:] + row[:1])

    def get_job(self, identifier):
        row = self._db.execute(f"SELECT {', '.join(_JOB_COLUMNS)} FROM jobs WHERE identifier = ?",
                               (identifier,)).fetchone()
        return None if row is None else _row_job(row)

    @staticmethod
    def _where(statuses, project, spider):
        clauses, args = [], []
        if statuses is not None:
            statuses = list(statuses)
            clauses.append(f"status IN ({', '.join('?' * len(statuses))})")
            args += [s.value for s in statuses]
        if project is not None:
            clauses.append("project = ?")
            args.append(project)
        if spider is not None:
            clauses.append("spider = ?")
            args.append(spider)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), args

    def _select(self, columns, statuses, project, spider, limit, offset, oldest_first):
        order = "ASC" if oldest_first else "DESC"
        statuses = None if statuses is None else list(statuses)
        if statuses is not None and len(statuses) > 1 and limit is not None:
            # One indexed, ordered, limited scan per status, merged: SQLite
            # would otherwise sort every matching row to return a page.
            parts, args = [], []
            for status in statuses:
                where, part_args = self._where([status], project, spider)
                parts.append(f"SELECT * FROM (SELECT seq, {columns} FROM jobs{where} "
                             f"ORDER BY seq {order} LIMIT ?)")
                args += [*part_args, limit + offset]
            sql = " UNION ALL ".join(parts) + f" ORDER BY seq {order} LIMIT ? OFFSET ?"
            return [r[1:] for r in self._db.execute(sql, [*args, limit, offset])]
        where, args = self._where(statuses, project, spider)
        sql = f"SELECT {columns} FROM jobs{where} ORDER BY seq {order} LIMIT ? OFFSET ?"
        return self._db.execute(sql, [*args, -1 if limit is None else limit, offset]).fetchall()

    def list_jobs(self, statuses=None, project=None, spider=None, limit=None, offset=0, oldest_first=False):
        rows = self._select(", ".join(_JOB_COLUMNS), statuses, project, spider, limit, offset, oldest_first)
        return [_row_job(r) for r in rows]

    def list_jobs_json(self, statuses=None, project=None, spider=None, limit=None, offset=0):
        rows = self._select(_JOB_JSON, statuses, project, spider, limit, offset, False)
        return [r[0] for r in rows]

    def count_jobs(self, statuses=None, project=None, spider=None):
        where, args = self._where(statuses, project, spider)
        return self._db.execute(f"SELECT COUNT(*) FROM jobs{where}", args).fetchone()[0]

    def purge_completed(self, keep):
        where, args = self._where(COMPLETED, None, None)
        rows = self._db.execute(f"SELECT identifier FROM jobs{where} ORDER BY seq DESC LIMIT -1 OFFSET ?",
                                [*args, keep]).fetchall()
        ids = [r[0] for r in rows]
        if ids:
            self._db.executemany("DELETE FROM jobs WHERE identifier = ?", [(i,) for i in ids])
        return ids

    def save_project(self, project):
        self._db.execute("INSERT OR REPLACE INTO projects (name, spiders, tree, pushed) VALUES (?, ?, ?, ?)",
                         (project.name, json.dumps(list(project.spiders)), project.tree, _ts(project.pushed)))

    def _project(self, row):
        return Project(name=row[0], spiders=tuple(json.loads(row[1])), tree=row[2], pushed=_parse_ts(row[3]))

    def get_project(self, name):
        row = self._db.execute("SELECT name, spiders, tree, pushed FROM projects WHERE name = ?", (name,)).fetchone()
        return None if row is None else self._project(row)

    def list_projects(self):
        rows = self._db.execute("SELECT name, spiders, tree, pushed FROM projects ORDER BY name").fetchall()
        return [self._project(r) for r in rows]

    def remove_project(self, name):
        self._db.execute("DELETE FROM projects WHERE name = ?", (name,))

    def counters(self):
        return dict(self._db.execute("SELECT name, value FROM counters").fetchall())

    def bump(self, counter):
        self._db.execute("UPDATE counters SET value = value + 1 WHERE name = ?", (counter,))


@implementer(IJobStore)
class MemoryStore:
    """Same behaviour as SqliteStore, in dicts; for tests and throwaway daemons."""

    def __init__(self):
        self._jobs = {}
        self._seq = {}
        self._projects = {}
        self._counters = dict.fromkeys(COUNTERS, 0)

    def close(self):
        pass

    def add_job(self, job):
        if job.identifier in self._jobs:
            raise ValueError(f"duplicate job {job.identifier}")
        self._seq[job.identifier] = len(self._seq)
        self._jobs[job.identifier] = job

    def update_job(self, job):
        if job.identifier in self._jobs:
            self._jobs[job.identifier] = job

    def get_job(self, identifier):
        return self._jobs.get(identifier)

    def _match(self, statuses, project, spider):
        statuses = None if statuses is None else set(statuses)
        jobs = [j for j in self._jobs.values()
                if (statuses is None or j.status in statuses)
                and (project is None or j.project == project)
                and (spider is None or j.spider == spider)]
        return sorted(jobs, key=lambda j: self._seq[j.identifier])

    def list_jobs(self, statuses=None, project=None, spider=None, limit=None, offset=0, oldest_first=False):
        jobs = self._match(statuses, project, spider)
        if not oldest_first:
            jobs.reverse()
        return jobs[offset:None if limit is None else offset + limit]

    def count_jobs(self, statuses=None, project=None, spider=None):
        return len(self._match(statuses, project, spider))

    def list_jobs_json(self, statuses=None, project=None, spider=None, limit=None, offset=0):
        return [json.dumps(j.to_dict(), ensure_ascii=False)
                for j in self.list_jobs(statuses, project, spider, limit, offset)]

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
