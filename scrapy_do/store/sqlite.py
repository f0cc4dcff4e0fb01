"""The embedded default store: SQLite.

WAL mode with `synchronous=NORMAL`: a commit survives a crash of the daemon
(the case we care about), each write costs well under a millisecond, and
readers never wait for the writer. SQLite's automatic checkpoint is off on
the store's connection: a thread of its own copies the WAL back into the
database (see Checkpointer). Runs and schedules live in their own
tables and share one `seq` order, so listings merge them as the API shows
them. Times are written as text in the daemon's zone with their offset
(`zones.show`): an exact instant that JSON listings built by SQLite return
as they are.
"""

import errno
import functools
import json
import os
import sqlite3
import threading
from contextlib import contextmanager

from zope.interface import implementer

from scrapy_do.domain import zones
from scrapy_do.domain.models import (
    COMPLETED, RUN_STATUSES, SCHEDULE_STATUSES, Actor, JobStatus, Project, Run, RunOptions, Schedule,
)
from scrapy_do.domain.deliveries import Delivery
from scrapy_do.domain.options import OPTION_DEFAULTS, OPTION_FIELDS
from scrapy_do.domain.records import JOB_FIELDS
from scrapy_do.errors import StorageFull, UnusableStore
from scrapy_do.interfaces import IDeliveryStore, IJobStore
from scrapy_do.store.migrations import Context, migrate
from scrapy_do.store.pages import PageCache

COUNTERS = ("run", "successful", "failed", "canceled")

_RUN_COLUMNS = ("identifier", "status", "actor", "project", "spider", "priority", "options", "timestamp", "started",
                "finished", "duration", "exit_code", "handle", "schedule_id", "reason", "stats", "errors", "samples",
                "report_key")
_SCHEDULE_COLUMNS = ("identifier", "status", "actor", "project", "spider", "priority", "options", "spec",
                     "timestamp", "finished", "next_run", "timezone", "overlap", "catch_up", "paused", "skipped", "name")
# Both tables read into one row shape: kind, then the union of their columns.
_SHAPE = ("identifier", "status", "actor", "project", "spider", "priority", "options", "timestamp", "started",
          "finished", "duration", "exit_code", "handle", "schedule_id", "reason", "stats", "errors", "samples",
          "report_key", "spec", "next_run",
          "timezone",
          "overlap", "catch_up", "paused", "skipped", "name")
_OVERRIDES = {"runs": {"schedule": "'now'", "parent": "schedule_id"},
              "schedules": {"schedule": "spec"}}
_TABLE_COLUMNS = {"runs": _RUN_COLUMNS, "schedules": _SCHEDULE_COLUMNS}


def _sql_literal(value):
    """An option's default as SQL: what a record shows when the stored options leave it out."""
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, (dict, list)):
        return "json('" + json.dumps(value).replace("'", "''") + "')"
    return str(int(value))


def _row_select(table):
    cols = _TABLE_COLUMNS[table]
    return ", ".join([f"'{table}'"] + [c if c in cols else "NULL" for c in _SHAPE])


def _types(schema):
    kind = schema.get("type", ())
    return (kind,) if isinstance(kind, str) else tuple(kind)


def _json_select(table):
    """The API's form of a record (records.JOB_FIELDS), built by SQLite's JSON1 in C."""
    cols, overrides = _TABLE_COLUMNS[table], _OVERRIDES[table]
    parts = []
    for f in JOB_FIELDS:
        if f.option and f.attr not in cols and "boolean" in _types(f.schema):
            # json_extract gives 1/0 for booleans; left out, the option's default (null, true or false).
            expr = (f"json(CASE json_type(options, '$.{f.attr}') WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' "
                    f"ELSE '{json.dumps(OPTION_DEFAULTS[f.attr])}' END)")
        elif f.option and f.attr not in cols:
            expr = f"coalesce(json_extract(options, '$.{f.attr}'), {_sql_literal(OPTION_DEFAULTS[f.attr])})"
        elif f.attr in overrides:
            expr = overrides[f.attr]
        elif f.attr in cols and f.kind == "json":
            expr = f"json({f.attr})"
        elif f.attr in cols and f.kind == "bool":
            expr = f"json(CASE WHEN {f.attr} THEN 'true' ELSE 'false' END)"
        elif f.attr in cols:
            expr = f.attr
        else:
            expr = "NULL"
        parts.append(f"'{f.key}', {expr}")
    return "json_object(" + ", ".join(parts) + ")"


_SELECT = {"rows": {t: _row_select(t) for t in _TABLE_COLUMNS},
           "json": {t: _json_select(t) for t in _TABLE_COLUMNS}}
_COLUMN_OPTIONS = [f.name for f in OPTION_FIELDS if f.metadata["column"]]


def _options(job):
    return job.options.stored()


def _record(row):
    d = dict(zip(_SHAPE, row[1:]))
    columns = {name: d[name] for name in _COLUMN_OPTIONS}
    options = RunOptions.from_stored(d["options"], **columns)
    common = dict(identifier=d["identifier"], status=JobStatus(d["status"]), actor=Actor(d["actor"]),
                  project=d["project"], options=options, timestamp=zones.parse_shown(d["timestamp"]),
                  finished=zones.parse_shown(d["finished"]))
    if row[0] == "runs":
        return Run(**common, started=zones.parse_shown(d["started"]), duration=d["duration"],
                   exit_code=d["exit_code"], handle=d["handle"], schedule_id=d["schedule_id"], reason=d["reason"],
                   stats=json.loads(d["stats"]) if d["stats"] else None, errors=d["errors"],
                   samples=tuple(map(tuple, json.loads(d["samples"]))) if d["samples"] else (),
                   report_key=d["report_key"])
    return Schedule(**common, spec=d["spec"], next_run=zones.parse_shown(d["next_run"]), timezone=d["timezone"],
                    overlap=d["overlap"], catch_up=bool(d["catch_up"]), paused=bool(d["paused"]),
                    skipped=d["skipped"], name=d["name"])


def _tables(statuses, parent=None):
    """(table, statuses or None) pairs a status filter needs (runs only when filtering by parent schedule)."""
    if parent is not None:
        return [("runs", None if statuses is None else set(statuses) & RUN_STATUSES)] \
            if statuses is None or set(statuses) & RUN_STATUSES else []
    if statuses is None:
        return [("runs", None), ("schedules", None)]
    statuses = set(statuses)
    return [(t, s) for t, s in (("runs", statuses & RUN_STATUSES), ("schedules", statuses & SCHEDULE_STATUSES))
            if s]


#: Writes (committed transactions) between two checkpoints: a few pages each, so the WAL stays at a few
#: hundred pages, under SQLite's own 1,000-page mark for its automatic checkpoint.
CHECKPOINT_EVERY = 100


class Checkpointer:
    """Copies the WAL back into the database (a PASSIVE checkpoint) on its own thread and connection.

    SQLite's automatic checkpoint runs inside the COMMIT that takes the WAL past 1,000 pages, on the
    committing thread, the reactor's: it writes the pages back and fsyncs the database there
    (bench/lag.py saw one such COMMIT hold the reactor 378 ms, others 8-13 ms, status.json and
    list-jobs.json waiting behind them). A PASSIVE checkpoint on another connection lets the writer and
    the readers go on meanwhile, and Python's sqlite3 lets go of the GIL while SQLite works. The store
    asks for one every `every` writes; requests made while one runs fold into the next.
    """

    def __init__(self, path, every=CHECKPOINT_EVERY):
        self.path = path
        self.every = every
        self.runs = 0  # checkpoints done
        self.last_error = None  # the last checkpoint's error (the next one tries again); None once one works
        self._writes = 0
        self._asked = self._done = 0
        self._stopping = False
        self._cond = threading.Condition()
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def wrote(self):
        """A write was committed; every `every`-th asks for a checkpoint."""
        self._writes += 1
        if self._writes >= self.every:
            self._writes = 0
            self.request()

    def request(self):
        with self._cond:
            self._asked += 1
            self._cond.notify_all()

    def wait(self, timeout=None):
        """Until every checkpoint asked for so far is done; False if `timeout` passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._done >= self._asked or self._thread is None, timeout)

    def stop(self, timeout=10):
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @staticmethod
    def _restart_wal(db):
        """Start the WAL again from its beginning here, with a write that changes nothing.

        The first write after a complete checkpoint rewrites the WAL's header and fsyncs it (also with
        synchronous=NORMAL): left to the store's next write, that fsync is the reactor's (strace showed
        it there after each checkpoint; from 0.4 ms on an idle disk to 70 ms on a busy one). Only if no
        other write holds the lock at that moment (that write then restarts the WAL, as before). A write
        of the store that comes while this one holds the lock waits for it (the busy timeout): a rare
        collision with a short write, where before every checkpoint cost the reactor that fsync."""
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # another write is on: it restarts the WAL itself
            return
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            db.execute(f"PRAGMA user_version = {int(version)}")
            db.execute("COMMIT")
        except sqlite3.Error:
            if db.in_transaction:  # never keep the write lock: the store's writes would wait for it
                db.execute("ROLLBACK")
            raise

    def _connect(self):
        # timeout=0: never wait for the store's writes (see _restart_wal).
        return sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=0)

    def _run(self):
        db = self._connect()
        try:
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._stopping or self._done < self._asked)
                    if self._stopping:
                        return
                    asked = self._asked
                try:
                    busy, frames, copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    if not busy and frames and copied == frames:
                        self._restart_wal(db)
                    self.last_error = None
                except sqlite3.Error as e:  # busy, full disk: the WAL just grows until the next one works
                    self.last_error = e
                    db.close()  # and with it any lock it still held
                    db = self._connect()
                with self._cond:
                    self.runs += 1
                    self._done = asked
                    self._cond.notify_all()
        finally:
            db.close()
            with self._cond:
                self._done = self._asked
                self._cond.notify_all()


def _writes(method=None, *, jobs=None):
    """A write that hits a full disk raises StorageFull (nothing was written) instead of a bare sqlite3 error.

    Each committed write is counted towards the next checkpoint (a write within a caller's transaction
    is counted with it). `jobs(*args)` names the jobs the write stores, so pages of list-jobs it cannot
    change are kept (pages.py); a write without it drops them all."""
    if method is None:
        return functools.partial(_writes, jobs=jobs)

    @functools.wraps(method)
    def write(self, *args, **kwargs):
        try:
            result = method(self, *args, **kwargs)
            if self.checkpointer is not None and not self._db.in_transaction:
                self.checkpointer.wrote()
            return result
        except sqlite3.OperationalError as e:
            if "full" not in str(e) and "disk I/O" not in str(e):
                raise
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
        finally:
            # Even a write that failed may have changed rows before its transaction rolled back.
            self.pages.touched(None if jobs is None else [job.status for job in jobs(*args, **kwargs)])
        raise StorageFull(f"the disk holding {self.path} is full; nothing was changed: free some space "
                          "and try again")
    return write


@implementer(IJobStore, IDeliveryStore)
class SqliteStore:
    """`path` may be ':memory:'. Nothing is touched until `open()`."""

    def __init__(self, path, zone=zones.UTC, checkpoint_every=CHECKPOINT_EVERY):
        self.path = str(path)
        self.zone = zone
        self._db = None
        self._checkpoint_every = checkpoint_every
        #: Checkpointer: copies the WAL into the database off the caller's thread; None for ':memory:'.
        self.checkpointer = None
        self.pages = PageCache()

    @property
    def generation(self):
        """A number that changes with every write (committed or not): what was read before it is the same
        still while it is unchanged."""
        return self.pages.writes

    def open(self):
        try:
            _make_private(self.path)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            migrate(self._db, self.path, Context(zone=self.zone))
            if self.path != ":memory:":
                # Never checkpoint inside a COMMIT on the caller's (the reactor's) thread: see Checkpointer.
                self._db.execute("PRAGMA wal_autocheckpoint=0")
                self.checkpointer = Checkpointer(self.path, self._checkpoint_every)
                self.checkpointer.start()
        except OSError as e:
            raise UnusableStore(f"cannot open the database {self.path}: {e.strerror}") from None
        except sqlite3.DatabaseError as e:
            raise UnusableStore(f"cannot open the database {self.path}: {e}; "
                               "restore it from the .bak copy next to it or move it away") from None
        return self

    def close(self):
        if self.checkpointer is not None:
            self.checkpointer.stop()
            self.checkpointer = None
        if self._db is not None:
            self._db.close()  # the last connection to close checkpoints what is left

    @contextmanager
    def _transaction(self):
        if self._db.in_transaction:  # part of a caller's (bulk) transaction
            yield
            return
        self._db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _t(self, moment):
        return zones.show(moment, self.zone)

    # -- runs and schedules ---------------------------------------------

    def _values(self, job):
        if isinstance(job, Run):
            return "runs", _RUN_COLUMNS, (
                job.identifier, job.status.value, job.actor.value, job.project, job.options.spider,
                job.options.priority, _options(job), self._t(job.timestamp), self._t(job.started),
                self._t(job.finished), job.duration, job.exit_code, job.handle, job.schedule_id, job.reason,
                None if job.stats is None else json.dumps(job.stats, ensure_ascii=False), job.errors,
                json.dumps(job.samples) if job.samples else None, job.report_key)
        return "schedules", _SCHEDULE_COLUMNS, (
            job.identifier, job.status.value, job.actor.value, job.project, job.options.spider,
            job.options.priority, _options(job), job.spec, self._t(job.timestamp), self._t(job.finished),
            self._t(job.next_run), job.timezone, job.overlap, int(job.catch_up), int(job.paused), job.skipped,
            job.name)

    @_writes(jobs=lambda job: [job])
    def add_job(self, job):
        table, columns, values = self._values(job)
        with self._transaction():
            seq = self._db.execute("UPDATE counters SET value = value + 1 WHERE name = 'seq' "
                                   "RETURNING value").fetchone()[0]
            marks = ", ".join("?" * (len(columns) + 1))
            self._db.execute(f"INSERT INTO {table} (seq, {', '.join(columns)}) VALUES ({marks})", (seq, *values))

    @_writes(jobs=list)
    def add_jobs(self, jobs):
        with self._transaction():
            for job in jobs:
                self.add_job(job)

    @_writes(jobs=lambda job: [job])
    def update_job(self, job):
        table, columns, values = self._values(job)
        sets = ", ".join(f"{c} = ?" for c in columns[1:])
        self._db.execute(f"UPDATE {table} SET {sets} WHERE identifier = ?", (*values[1:], values[0]))

    @_writes(jobs=list)
    def update_jobs(self, jobs):
        with self._transaction():
            for job in jobs:
                self.update_job(job)

    def get_job(self, identifier):
        for table in _TABLE_COLUMNS:
            row = self._db.execute(f"SELECT seq, {_SELECT['rows'][table]} FROM {table} WHERE identifier = ?",
                                   (identifier,)).fetchone()
            if row is not None:
                return _record(row[1:])
        return None

    @_writes(jobs=lambda job, *counters: [job])
    def record(self, job, *counters):
        with self._transaction():
            self.update_job(job)
            for counter in counters:
                self.bump(counter)

    def schedule_named(self, name):
        row = self._db.execute("SELECT identifier FROM schedules WHERE name = ? AND status = 'SCHEDULED'",
                               (name,)).fetchone()
        return None if row is None else self.get_job(row[0])

    def has_pending(self, schedule_id):
        return self._db.execute("SELECT 1 FROM runs WHERE schedule_id = ? AND status = 'PENDING' LIMIT 1",
                                (schedule_id,)).fetchone() is not None

    @staticmethod
    def _where(statuses, project, spider, parent=None):
        clauses, args = [], []
        if parent is not None:  # runs only (see _tables)
            clauses.append("schedule_id = ?")
            args.append(parent)
        if statuses is not None:
            statuses = sorted(s.value for s in statuses)
            clauses.append(f"status IN ({', '.join('?' * len(statuses))})")
            args += statuses
        if project is not None:
            clauses.append("project = ?")
            args.append(project)
        if spider is not None:
            clauses.append("spider = ?")
            args.append(spider)
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), args

    def _select(self, what, statuses, project, spider, limit, offset, oldest_first, parent=None):
        order = "ASC" if oldest_first else "DESC"
        parts, args = [], []
        for table, wanted in _tables(statuses, parent):
            # One indexed, ordered, limited scan per status, merged: SQLite
            # would otherwise sort every matching row to return a page.
            for status in ([None] if wanted is None or limit is None else sorted(wanted, key=lambda s: s.value)):
                where, part_args = self._where(wanted if status is None else [status], project, spider, parent)
                inner = f"SELECT seq, {_SELECT[what][table]} FROM {table}{where}"
                if limit is not None:
                    inner = f"SELECT * FROM ({inner} ORDER BY seq {order} LIMIT ?)"
                    part_args = [*part_args, limit + offset]
                parts.append(inner)
                args += part_args
        if not parts:
            return []
        sql = " UNION ALL ".join(parts) + f" ORDER BY seq {order} LIMIT ? OFFSET ?"
        return [r[1:] for r in self._db.execute(sql, [*args, -1 if limit is None else limit, offset])]

    def list_jobs(self, statuses=None, project=None, spider=None, limit=None, offset=0, oldest_first=False,
                  parent=None):
        return [_record(r) for r in self._select("rows", statuses, project, spider, limit, offset, oldest_first,
                                                 parent)]

    def pending_queue(self, limit, exclude=(), skip=()):
        """The first `limit` PENDING runs in the order they start: highest priority, then oldest;
        none of the (project, spider) pairs in `exclude` nor the identifiers in `skip`.

        The scan of the queue index stops at the `limit`-th match, so `limit`
        should be what is wanted (the free slots), with the rest in `skip`."""
        where = "".join(" AND NOT (project = ? AND spider = ?)" for _ in exclude)
        if skip:
            where += f" AND identifier NOT IN ({', '.join('?' * len(skip))})"
        args = [JobStatus.PENDING.value, *(v for pair in sorted(exclude) for v in pair), *sorted(skip), limit]
        rows = self._db.execute(f"SELECT {_SELECT['rows']['runs']} FROM runs WHERE status = ?{where} "
                                "ORDER BY priority DESC, seq ASC LIMIT ?", args)
        return [_record(r) for r in rows]

    def list_jobs_json(self, statuses=None, project=None, spider=None, limit=None, offset=0, parent=None):
        key = (None if statuses is None else frozenset(statuses), project, spider, limit, offset, parent)
        page = self.pages.get(key, statuses)
        if page is None:
            page = [r[0] for r in self._select("json", statuses, project, spider, limit, offset, False, parent)]
            self.pages.put(key, statuses, page)
        return page

    def count_jobs(self, statuses=None, project=None, spider=None, parent=None):
        if project is None and spider is None and parent is None:
            # Kept by triggers (schema v3): no row is counted.
            where, args = ("", []) if statuses is None else \
                (f" WHERE status IN ({', '.join('?' * len(statuses))})", sorted(s.value for s in statuses))
            return self._db.execute(f"SELECT COALESCE(SUM(n), 0) FROM job_counts{where}", args).fetchone()[0]
        total = 0
        for table, wanted in _tables(statuses, parent):
            where, args = self._where(wanted, project, spider, parent)
            total += self._db.execute(f"SELECT COUNT(*) FROM {table}{where}", args).fetchone()[0]
        return total

    @_writes
    def purge_completed(self, keep):
        doomed = [(r[0], r[1]) for r in self._select_ids(COMPLETED, keep)]
        with self._transaction():
            for table, identifier in doomed:
                self._db.execute(f"DELETE FROM {table} WHERE identifier = ?", (identifier,))
        return [identifier for _, identifier in doomed]

    def _select_ids(self, statuses, keep):
        parts, args = [], []
        for table, wanted in _tables(statuses):
            where, part_args = self._where(wanted, None, None)
            parts.append(f"SELECT seq, '{table}', identifier FROM {table}{where}")
            args += part_args
        sql = " UNION ALL ".join(parts) + " ORDER BY seq DESC LIMIT -1 OFFSET ?"
        return [r[1:] for r in self._db.execute(sql, [*args, keep])]

    # -- projects and counters -------------------------------------------

    @_writes(jobs=lambda project: [])
    def save_project(self, project):
        self._db.execute("INSERT OR REPLACE INTO projects (name, spiders, tree, pushed, environment) "
                         "VALUES (?, ?, ?, ?, ?)",
                         (project.name, json.dumps(list(project.spiders)), project.tree, self._t(project.pushed),
                          None if project.environment is None else json.dumps(project.environment)))

    def _project(self, row):
        return Project(name=row[0], spiders=tuple(json.loads(row[1])), tree=row[2],
                       pushed=zones.parse_shown(row[3]), environment=json.loads(row[4]) if row[4] else None)

    def get_project(self, name):
        row = self._db.execute("SELECT name, spiders, tree, pushed, environment FROM projects WHERE name = ?",
                               (name,)).fetchone()
        return None if row is None else self._project(row)

    def list_projects(self):
        rows = self._db.execute("SELECT name, spiders, tree, pushed, environment FROM projects "
                                "ORDER BY name").fetchall()
        return [self._project(r) for r in rows]

    @_writes
    def remove_project(self, name):
        self._db.execute("DELETE FROM projects WHERE name = ?", (name,))

    def counters(self):
        return {name: value for name, value in self._db.execute("SELECT name, value FROM counters")
                if name in COUNTERS}

    @_writes(jobs=lambda counter: [])
    def bump(self, counter):
        self._db.execute("UPDATE counters SET value = value + 1 WHERE name = ?", (counter,))

    # -- webhook deliveries ----------------------------------------------

    @_writes(jobs=lambda deliveries: [])
    def add_deliveries(self, deliveries):
        """Keep new deliveries, all or none; one whose key is already kept (the same news for the same URL, told
        twice) is left out. Returns those added."""
        added = []
        with self._transaction():
            for d in deliveries:
                cursor = self._db.execute(
                    f"INSERT OR IGNORE INTO deliveries ({', '.join(_DELIVERY_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(_DELIVERY_COLUMNS))})", _delivery_values(d))
                if cursor.rowcount:
                    added.append(d)
        return added

    @_writes(jobs=lambda delivery: [])
    def update_delivery(self, delivery):
        self._db.execute(f"UPDATE deliveries SET {', '.join(f'{c} = ?' for c in _DELIVERY_COLUMNS[1:])} "
                         "WHERE id = ?", (*_delivery_values(delivery)[1:], delivery.id))

    @staticmethod
    def _pending_where(skip, skip_urls):
        where = "state = 'pending'"
        if skip:
            where += f" AND id NOT IN ({', '.join('?' * len(skip))})"
        if skip_urls:
            where += f" AND url NOT IN ({', '.join('?' * len(skip_urls))})"
        return where, (*skip, *skip_urls)

    def pending_deliveries(self, limit, skip=(), skip_urls=(), due_by=None, one_per_url=False):
        """The first `limit` pending deliveries due by `due_by` (any, if None), soonest first, but those in
        `skip` and those to `skip_urls`; with `one_per_url`, only the oldest of each URL."""
        where, args = self._pending_where(skip, skip_urls)
        if due_by is not None:
            where += " AND due <= ?"
            args = (*args, due_by)
        if one_per_url:
            return self._oldest_per_url(limit, skip, skip_urls, due_by)
        rows = self._db.execute(f"SELECT {', '.join(_DELIVERY_COLUMNS)} FROM deliveries WHERE {where} "
                                "ORDER BY due, seq LIMIT ?", (*args, limit)).fetchall()
        return [_delivery(r) for r in rows]

    def _oldest_per_url(self, limit, skip, skip_urls, due_by):
        """The oldest due delivery of each receiver with one: index seeks per receiver (a skip-scan of the
        receivers, then one row each), not a pass over the whole backlog."""
        urls = [r[0] for r in self._db.execute(
            "WITH RECURSIVE u(url) AS (SELECT MIN(url) FROM deliveries WHERE state = 'pending' UNION ALL "
            "SELECT (SELECT MIN(url) FROM deliveries WHERE state = 'pending' AND url > u.url) FROM u "
            "WHERE u.url IS NOT NULL) SELECT url FROM u WHERE url IS NOT NULL")]
        skip, found = set(skip), []
        for url in urls:
            if url in skip_urls:
                continue
            for row in self._db.execute(f"SELECT {', '.join(_DELIVERY_COLUMNS)} FROM deliveries INDEXED BY "
                                        "deliveries_by_url WHERE state = 'pending' AND url = ? ORDER BY seq LIMIT ?",
                                        (url, len(skip) + 64)):
                delivery = _delivery(row)
                if delivery.id in skip or (due_by is not None and delivery.due > due_by):
                    continue
                found.append(delivery)
                break
        found.sort(key=lambda d: (d.due, d.created))
        return found[:limit]

    def next_due(self, skip=(), skip_urls=()):
        """When the soonest pending delivery (but those in `skip` and to `skip_urls`) is due, or None."""
        where, args = self._pending_where(skip, skip_urls)
        return self._db.execute(f"SELECT MIN(due) FROM deliveries WHERE {where}", args).fetchone()[0]

    def list_deliveries(self, limit, state=None):
        """The newest deliveries first (any state, or `state`), without their bodies' weight beyond one page."""
        where, args = (" WHERE state = ?", [state]) if state else ("", [])
        rows = self._db.execute(f"SELECT {', '.join(_DELIVERY_COLUMNS)} FROM deliveries{where} "
                                "ORDER BY seq DESC LIMIT ?", (*args, limit)).fetchall()
        return [_delivery(r) for r in rows]

    def count_deliveries(self):
        """{state: n} over all kept deliveries."""
        return dict(self._db.execute("SELECT state, COUNT(*) FROM deliveries GROUP BY state").fetchall())

    @_writes(jobs=lambda keep: [])
    def purge_deliveries(self, keep):
        """Forget all but the `keep` newest ended (delivered or given up) deliveries."""
        self._db.execute("DELETE FROM deliveries WHERE seq IN (SELECT seq FROM deliveries WHERE state != "
                         "'pending' ORDER BY seq DESC LIMIT -1 OFFSET ?)", (keep,))


_DELIVERY_COLUMNS = ("id", "key", "url", "event", "job", "body", "created", "due", "attempts", "state",
                     "last_error", "ended")


def _delivery_values(d):
    return (d.id, d.key, d.url, d.event, d.job, d.body, d.created, d.due, d.attempts, d.state, d.last_error,
            d.ended)


def _delivery(row):
    return Delivery(*row[:5], bytes(row[5]), *row[6:])


def _make_private(path):
    """The database is the daemon's alone (mode 0600; SQLite gives its -wal and -shm files the same)."""
    if str(path) == ":memory:":
        return
    os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600))
    for name in (str(path), f"{path}-wal", f"{path}-shm"):
        try:
            os.chmod(name, 0o600)
        except FileNotFoundError:
            pass
