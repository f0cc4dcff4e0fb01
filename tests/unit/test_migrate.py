"""Reading a Scrapy Do 0.5.0 store (scrapy_do.migrate.read_store, archive_of): pure, read-only.

The stores here are made by hand in 0.5.0's exact format: its table
definitions as scrapy_do/schedule.py (0.5.0) creates them, and a metadata.pkl
the real 0.5.0 daemon wrote (its bytes below). tests/integration/test_migrate.py
runs the real 0.5.0 daemon.
"""

import io
import os
import pickle
import sqlite3
import sys
import types
import zipfile
from collections import namedtuple

import pytest

from scrapy_do import migrate
from scrapy_do.client.api import ClientError
from scrapy_do.migrate import NotAStore, read_store

#: metadata.pkl as the real 0.5.0 daemon wrote it after pushing the offline fixture (archive in /tmp/o1/store).
REAL_METADATA = bytes.fromhex(
    "80049587000000000000007d948c076f66666c696e65948c147363726170795f646f2e636f6e74726f6c6c6572948c075072"
    "6f6a65637494939468018c192f746d702f6f312f73746f72652f6f66666c696e652e7a6970945d94288c0662726f6b656e94"
    "8c0462756c6b948c06657272696e67948c056d69786564948c05717569636b948c04736c6f77946587948194732e")

#: 0.5.0's tables, verbatim (scrapy_do/schedule.py: Schedule.__init__ and _create_database).
V2_TABLES = [
    "CREATE TABLE IF NOT EXISTS schedule_metadata (key VARCHAR(255) PRIMARY KEY ON CONFLICT IGNORE, "
    "value VARCHAR(255) NOT NULL )",
    "CREATE TABLE IF NOT EXISTS schedule (identifier VARCHAR(36) PRIMARY KEY, status INTEGER NOT NULL, "
    "actor INTEGER NOT NULL, schedule VARCHAR(255), project VARCHAR(255) NOT NULL, spider VARCHAR(255) NOT NULL, "
    "timestamp DATETIME NOT NULL, duration INTEGER,description VARCHAR(512) NOT NULL,payload VARCHAR(4096) NOT NULL)",
]
ROWS = [  # identifier, status, actor, schedule, project, spider, timestamp, duration, description, payload
    ("b-sched", 1, 2, "every monday at 12:00", "offline", "slow", "2026-01-02 10:00:00.1", None, "", "{}"),
    ("a-sched", 1, 2, "every 10 minutes", "offline", "quick", "2026-01-01 10:00:00.5", None, "ten",
     '{"pages": 2}'),
    ("done", 5, 2, "now", "offline", "quick", "2026-01-01 11:00:00", 3, "", "{}"),
    ("failed", 6, 1, "now", "offline", "quick", "2026-01-01 11:10:00", 1, "", "{}"),
    ("waiting", 2, 1, "now", "offline", "quick", "2026-01-03 00:00:00", None, "", "{}"),
]


def make_store(folder, metadata=REAL_METADATA, rows=ROWS, tables=V2_TABLES, version="2"):
    folder.mkdir(exist_ok=True)
    (folder / "metadata.pkl").write_bytes(metadata)
    db = sqlite3.connect(folder / "schedule.db")
    for statement in tables:
        db.execute(statement)
    db.execute('INSERT INTO schedule_metadata (key, value) values ("version", ?)', (version,))
    width = len(rows[0]) if rows else 0
    for row in rows:
        db.execute(f"INSERT INTO schedule VALUES ({', '.join('?' * width)})", row)
    db.commit()
    db.close()
    return folder


def test_reads_projects_schedules_and_what_is_left(tmp_path):
    """The real daemon's project list, the SCHEDULED jobs oldest first, one-off runs left PENDING, and a count
    of finished runs."""
    store = read_store(make_store(tmp_path / "store"))
    [project] = store.projects
    assert project.name == "offline"
    assert project.spiders == ("broken", "bulk", "erring", "mixed", "quick", "slow")
    assert project.archive == tmp_path / "store" / "offline.zip"  # where 0.5.0 ran it from, not the pickled path
    assert [(j.identifier, j.spec, j.spider, j.description, j.payload) for j in store.schedules] == [
        ("a-sched", "every 10 minutes", "quick", "ten", '{"pages": 2}'),
        ("b-sched", "every monday at 12:00", "slow", "", "{}"),
    ]
    assert store.schedules[0].name == "v050-a-sched"
    assert [j.identifier for j in store.unfinished] == ["waiting"]
    assert store.finished == 2 and store.version == "2"


def test_reading_writes_nothing(tmp_path):
    """Reading leaves every file of the store byte for byte as it was, and adds none (no journal)."""
    folder = make_store(tmp_path / "store")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    read_store(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_a_version_1_store_has_empty_descriptions_and_payloads(tmp_path):
    """A store 0.5.0 never upgraded (schema 1: no description nor payload columns) reads with 0.5.0's defaults."""
    v1 = [V2_TABLES[0], V2_TABLES[1].split(",description")[0] + ")"]
    folder = make_store(tmp_path / "store", rows=[r[:8] for r in ROWS[:1]], tables=v1, version="1")
    [job] = read_store(folder).schedules
    assert (job.description, job.payload) == ("", "{}")


def test_a_hostile_pickle_is_refused_without_running_it(tmp_path):
    """A metadata.pkl naming anything but 0.5.0's Project is refused as not a store, and nothing of it runs."""
    marker = tmp_path / "ran"
    payload = pickle.dumps({"x": _Hostile(f"touch {marker}")})
    with pytest.raises(NotAStore, match="metadata.pkl is not the project list of Scrapy Do 0.5.0"):
        read_store(make_store(tmp_path / "store", metadata=payload))
    assert not marker.exists()


class _Hostile:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_a_project_list_pickled_by_0_5_0_code_reads(tmp_path, monkeypatch):
    """Any pickle of a dict of 0.5.0 Project tuples reads (any protocol), whatever archive path it names."""
    module = types.ModuleType("scrapy_do.controller")
    module.Project = namedtuple("Project", ["name", "archive", "spiders"], module="scrapy_do.controller")
    monkeypatch.setitem(sys.modules, "scrapy_do.controller", module)
    projects = {n: module.Project(n, f"/elsewhere/{n}.zip", ["s1"]) for n in ("b", "a")}
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        folder = make_store(tmp_path / f"store{protocol}", metadata=pickle.dumps(projects, protocol))
        assert [(p.name, p.archive.name) for p in read_store(folder).projects] == [("a", "a.zip"), ("b", "b.zip")]


@pytest.mark.parametrize(("setup", "missing"), [
    (lambda p: None, "no such folder"),
    (lambda p: p.write_text("x"), "it is a file"),
    (lambda p: p.mkdir(), "it has no metadata.pkl"),
    (lambda p: (p.mkdir(), (p / "metadata.pkl").write_bytes(REAL_METADATA)), "it has no schedule.db"),
    (lambda p: (p.mkdir(), (p / "metadata.pkl").write_bytes(REAL_METADATA), (p / "schedule.db").write_text("no")),
     "schedule.db is not the job database of Scrapy Do 0.5.0"),
    (lambda p: make_store(p, version="7"), "has schema version '7'"),
    (lambda p: (p.mkdir(), (p / "metadata.pkl").write_bytes(b"junk"), (p / "schedule.db").write_text("")),
     "metadata.pkl is not the project list"),
])
def test_what_is_not_a_store_says_what_is_missing(tmp_path, setup, missing):
    """A folder that is not a 0.5.0 store raises NotAStore, whose one-line message names what is wrong."""
    path = tmp_path / "store"
    setup(path)
    with pytest.raises(NotAStore) as e:
        read_store(path)
    assert missing in str(e.value) and "\n" not in str(e.value)


def _zip(names):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in names:
            zf.writestr(name, b"data of " + name.encode())
    return buf.getvalue()


def test_archive_of_passes_a_clean_archive_unchanged(tmp_path):
    """An archive holding only NAME/ is pushed as it is."""
    data = _zip(["offline/scrapy.cfg", "offline/offline/__init__.py"])
    (tmp_path / "offline.zip").write_bytes(data)
    assert migrate.archive_of(migrate.OldProject("offline", tmp_path / "offline.zip", ())) == (data, None)


def test_archive_of_leaves_out_what_0_5_0_never_ran(tmp_path):
    """Entries beside NAME/ (0.5.0 ran only that folder; this daemon refuses them) are left out, and said so."""
    (tmp_path / "offline.zip").write_bytes(_zip(["offline/scrapy.cfg", "README", "other/x.py"]))
    data, note = migrate.archive_of(migrate.OldProject("offline", tmp_path / "offline.zip", ()))
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.namelist() == ["offline/scrapy.cfg"]
        assert zf.read("offline/scrapy.cfg") == b"data of offline/scrapy.cfg"
    assert note == "left out 2 entries beside offline/ (0.5.0 never used them)"


class _Daemon:
    """What migrate() asks of ScrapyDoClient, answered as our daemon would; `schedule_errors` to refuse."""

    def __init__(self, schedule_errors=()):
        self.projects, self.jobs, self.schedule_errors = {}, [], list(schedule_errors)

    def list_projects(self):
        return list(self.projects)

    def list_spiders(self, name):
        return self.projects[name]

    def push_project(self, data):
        self.projects["offline"] = ["quick", "slow"]
        return {"status": "ok", "name": "offline", "spiders": ["quick", "slow"]}

    def list_jobs(self, status):
        return [j for j in self.jobs if j["status"] == status]

    def _json(self, method, path, data):
        if self.schedule_errors:
            raise self.schedule_errors.pop(0)
        self.jobs.append({"identifier": f"new-{len(self.jobs)}", "status": "SCHEDULED", **data})
        return {"status": "ok", "identifier": self.jobs[-1]["identifier"]}


def _migrate(tmp_path, daemon):
    folder = make_store(tmp_path / "store")
    (folder / "offline.zip").write_bytes(_zip(["offline/scrapy.cfg"]))
    report = migrate.Report()
    migrate.migrate(read_store(folder), daemon, report)
    return report


def test_a_daemon_without_schedule_names_gets_no_schedule(tmp_path):
    """A daemon that refuses the `name` parameter gets no schedule at all (a rerun would duplicate them), and
    each one is reported with the reason."""
    daemon = _Daemon([ClientError("400: unknown parameter 'name'; this endpoint takes project, when")])
    report = _migrate(tmp_path, daemon)
    assert daemon.jobs == []
    refused = [line for line in report.failed if "does not take schedule names" in line]
    assert len(refused) == 2 and "upgrade it" in refused[0]


class _RacingDaemon(_Daemon):
    """Another run schedules v050-a-sched after this one read the names in use."""

    def _json(self, method, path, data):
        if data["name"] == "v050-a-sched":
            self.jobs.append({"identifier": "other-run", "status": "SCHEDULED", "name": data["name"]})
            raise ClientError("409: name 'v050-a-sched' is taken by schedule other-run")
        return super()._json(method, path, data)


def test_a_name_taken_meanwhile_counts_as_carried_before(tmp_path):
    """A 409 for the v050- name (another run carried it meanwhile) is reported as carried before, not failed."""
    daemon = _RacingDaemon()
    report = _migrate(tmp_path, daemon)
    assert "schedule a-sched (offline/quick 'every 10 minutes', description 'ten', payload '{\"pages\": 2}'): " \
           "carried before, as other-run" in report.already
    assert [j["name"] for j in daemon.jobs] == ["v050-a-sched", "v050-b-sched"]
    assert [line for line in report.failed if line.startswith("schedule ")] == []


class _Made(_Daemon):
    def status(self):
        return {"status": "ok"}


def test_a_token_from_the_environment_is_used_instead_of_a_user(tmp_path, monkeypatch):
    folder = make_store(tmp_path / "store")
    (folder / "offline.zip").write_bytes(_zip(["offline/scrapy.cfg"]))
    made = []

    def factory(url, username, password, verify=True, **kwargs):
        made.append((username, password, kwargs.get("token")))
        return _Made()

    monkeypatch.setenv("SCRAPY_DO_TOKEN", "sdo_from-env")
    assert migrate.main([str(folder), "--username", "alice", "--password", "pw"], stdout=io.StringIO(),
                        client_factory=factory) == 1  # the waiting run is not carried
    assert made == [(None, None, "sdo_from-env")]
    monkeypatch.delenv("SCRAPY_DO_TOKEN")
    migrate.main([str(folder), "--username", "alice", "--password", "pw"], stdout=io.StringIO(),
                 client_factory=factory)
    assert made[-1] == ("alice", "pw", None)
