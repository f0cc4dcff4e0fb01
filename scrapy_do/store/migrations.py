"""Schema migrations: numbered steps, each run in one transaction.

A step is SQL text (run statement by statement, split where
`sqlite3.complete_statement` says a statement ends, so a `;` inside a string
or a trigger is safe) or a Python callable `step(db, context)` for what SQL
alone cannot do (time zones). Never edit a shipped step; add one.
"""

import shutil
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from scrapy_do.domain import zones
from scrapy_do.domain.options import RunOptions
from scrapy_do.errors import UnusableStore


@dataclass(frozen=True)
class Context:
    zone: object  # the daemon's zone: old naive local times are read in it


V1 = """
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
"""

V2_TABLES = """
CREATE TABLE runs (
    seq INTEGER PRIMARY KEY,
    identifier TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    actor TEXT NOT NULL,
    project TEXT NOT NULL,
    spider TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '{}',
    timestamp TEXT NOT NULL,
    started TEXT,
    finished TEXT,
    duration INTEGER,
    exit_code INTEGER,
    handle TEXT,
    schedule_id TEXT
);
CREATE INDEX runs_status ON runs (status, seq);
CREATE INDEX runs_project ON runs (project, spider, seq);
CREATE INDEX runs_schedule ON runs (schedule_id, status);
CREATE TABLE schedules (
    seq INTEGER PRIMARY KEY,
    identifier TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    actor TEXT NOT NULL,
    project TEXT NOT NULL,
    spider TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '{}',
    spec TEXT NOT NULL,
    timestamp TEXT NOT NULL,
    finished TEXT,
    next_run TEXT
);
CREATE INDEX schedules_status ON schedules (status, seq);
CREATE INDEX schedules_project ON schedules (project, spider, seq);
"""


def _aware(text, zone):
    """A v1 time (naive local text) as v2 text: the same wall time in `zone`, with its offset."""
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = zones.wall_to_instant(moment, zone)
    return zones.show(moment, zone)


def split_schedules(db, context):
    """v1 → v2: schedules get their own table, runs keep options as one value, times gain offsets."""
    run_script(db, V2_TABLES)
    zone = context.zone
    rows = db.execute("SELECT seq, identifier, status, actor, schedule, project, spider, description, payload, "
                      "timestamp, duration, started, finished, exit_code, pid, pid_created, parent FROM jobs")
    for (seq, ident, status, actor, spec, project, spider, description, payload, timestamp, duration, started,
         finished, exit_code, pid, pid_created, parent) in rows.fetchall():
        options = RunOptions(spider=spider, description=description, payload=payload).stored()
        if spec == "now":
            handle = None
            if pid:
                handle = f"pid:{pid}" + (f"@{pid_created!r}" if pid_created is not None else "")
            db.execute("INSERT INTO runs (seq, identifier, status, actor, project, spider, options, timestamp, "
                       "started, finished, duration, exit_code, handle, schedule_id) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (seq, ident, status, actor, project, spider, options, _aware(timestamp, zone),
                        _aware(started, zone), _aware(finished, zone), duration, exit_code, handle, parent))
        else:
            db.execute("INSERT INTO schedules (seq, identifier, status, actor, project, spider, options, spec, "
                       "timestamp, finished) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (seq, ident, status, actor, project, spider, options, spec, _aware(timestamp, zone),
                        _aware(finished, zone)))
    for name, pushed in db.execute("SELECT name, pushed FROM projects").fetchall():
        db.execute("UPDATE projects SET pushed = ? WHERE name = ?", (_aware(pushed, zone), name))
    last = db.execute("SELECT COALESCE(MAX(seq), 0) FROM jobs").fetchone()[0]
    db.execute("INSERT INTO counters VALUES ('seq', ?)", (last,))
    db.execute("DROP TABLE jobs")


# v2 → v3: priority (sorted on: a column), why a run ended, and how a schedule runs.
V3 = """
ALTER TABLE runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN reason TEXT;
ALTER TABLE runs ADD COLUMN stats TEXT;
ALTER TABLE schedules ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE schedules ADD COLUMN timezone TEXT;
ALTER TABLE schedules ADD COLUMN overlap TEXT NOT NULL DEFAULT 'allow';
ALTER TABLE schedules ADD COLUMN catch_up INTEGER NOT NULL DEFAULT 0;
ALTER TABLE schedules ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
ALTER TABLE schedules ADD COLUMN skipped INTEGER NOT NULL DEFAULT 0;
CREATE INDEX runs_queue ON runs (status, priority DESC, seq);
-- How many jobs have each status, kept by triggers: list-jobs answers its total without counting rows.
CREATE TABLE job_counts (status TEXT PRIMARY KEY, n INTEGER NOT NULL);
INSERT INTO job_counts SELECT status, COUNT(*) FROM (SELECT status FROM runs UNION ALL SELECT status FROM schedules)
    GROUP BY status;
"""

# The same three triggers keep the counts for both tables.
_COUNTED = """
CREATE TRIGGER {table}_counted_in AFTER INSERT ON {table} BEGIN
    INSERT INTO job_counts VALUES (NEW.status, 1) ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER {table}_counted_out AFTER DELETE ON {table} BEGIN
    UPDATE job_counts SET n = n - 1 WHERE status = OLD.status;
END;
CREATE TRIGGER {table}_counted_moved AFTER UPDATE OF status ON {table} WHEN OLD.status != NEW.status BEGIN
    UPDATE job_counts SET n = n - 1 WHERE status = OLD.status;
    INSERT INTO job_counts VALUES (NEW.status, 1) ON CONFLICT (status) DO UPDATE SET n = n + 1;
END;
"""
V3 += "".join(_COUNTED.format(table=table) for table in ("runs", "schedules"))

# v3 -> v4: a run's error count (shown), its samples for a chart and the hash of its report token (not shown:
# a crawl re-attached after a restart goes on reporting with the token it was given).
V4 = """
ALTER TABLE runs ADD COLUMN errors INTEGER;
ALTER TABLE runs ADD COLUMN samples TEXT;
ALTER TABLE runs ADD COLUMN report_key TEXT;
"""

# v4 -> v5: the environment a project's requirements.txt runs in.
V5 = """
ALTER TABLE projects ADD COLUMN environment TEXT;
"""

# v5 -> v6: a schedule's name (unique among SCHEDULED ones: schedules as code), and webhook deliveries, kept
# until a receiver acknowledged them (or they were given up), with their exact signed body.
V6 = """
ALTER TABLE schedules ADD COLUMN name TEXT;
CREATE UNIQUE INDEX schedules_named ON schedules (name) WHERE name IS NOT NULL AND status = 'SCHEDULED';
CREATE TABLE deliveries (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    key TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    event TEXT NOT NULL,
    job TEXT,
    body BLOB NOT NULL,
    created REAL NOT NULL,
    due REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT,
    ended REAL
);
CREATE INDEX deliveries_due ON deliveries (state, due);
-- The oldest pending delivery of each receiver, found without sorting the backlog.
CREATE INDEX deliveries_by_url ON deliveries (state, url, seq);
"""

# Each entry moves the schema from version i to i + 1.
MIGRATIONS = [V1, split_schedules, V3, V4, V5, V6]


def run_script(db, script):
    """Run SQL text statement by statement inside the caller's transaction."""
    statement = ""
    for piece in script.split(";"):
        statement += piece + ";"
        if sqlite3.complete_statement(statement):
            if statement.strip(" \t\r\n;"):
                db.execute(statement)
            statement = ""
    if statement.strip(" \t\r\n;"):
        raise ValueError(f"incomplete SQL statement in migration: {statement.strip()[:80]!r}")


def migrate(db, path, context, steps=None):
    """Bring the database at `path` to the newest version, backing it up first (`<db>.vN.bak`)."""
    steps = MIGRATIONS if steps is None else steps
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version > len(steps):
        raise UnusableStore(f"the database {path} has schema version {version}, newer than this "
                           f"Scrapy Do knows ({len(steps)}); upgrade Scrapy Do")
    if version == len(steps):
        return
    if version > 0 and path != ":memory:":
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        shutil.copy2(path, f"{path}.v{version}.bak")
    for number in range(version, len(steps)):
        db.execute("BEGIN")
        try:
            step = steps[number]
            if callable(step):
                step(db, context)
            else:
                run_script(db, step)
            db.execute(f"PRAGMA user_version={number + 1}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
