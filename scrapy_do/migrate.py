"""`scrapy-do-migrate`: carry the projects and schedules of a Scrapy Do 0.5.0 store into this daemon.

The old store is only read: its SQLite database is opened read-only and its
pickled project list is unpickled with a loader that knows the one class it
holds and refuses anything else (a pickle can run code). Everything goes in
through the running daemon's REST API, so each project and spec is validated
as any push or schedule is, and the daemon stays the only writer of its store.

Each schedule gets the name `v050-<its 0.5.0 identifier>`: the daemon refuses
a taken name (409), so a second run finds it and changes nothing. A project
already on the daemon is kept as it is (it may hold newer code) unless
`--replace-projects` says to push the 0.5.0 archive over it.
"""

import argparse
import getpass
import io
import os
import pickle
import sqlite3
import sys
import zipfile
from collections import namedtuple
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from scrapy_do import __version__
from scrapy_do.client.api import ClientError, ScrapyDoClient

METADATA = "metadata.pkl"
DATABASE = "schedule.db"
#: The job statuses of 0.5.0's `schedule` table (scrapy_do/schedule.py: Status).
SCHEDULED, PENDING, RUNNING = 1, 2, 3
FINISHED = {4: "CANCELED", 5: "SUCCESSFUL", 6: "FAILED"}
#: Versions of the `schedule_metadata` table: 1 (0.4) had no description nor payload; 2 is 0.5.0's.
KNOWN_VERSIONS = ("1", "2")
NAME_PREFIX = "v050-"

EXIT_CARRIED, EXIT_PARTIAL, EXIT_NOTHING_DONE = 0, 1, 2

EPILOG = """\
examples:
  scrapy-do-migrate /var/lib/scrapy-do/projects --dry-run
  scrapy-do-migrate /var/lib/scrapy-do/projects
  scrapy-do-migrate ~/scrapy-do/projects --url https://scrapy.example.com:7654 --username admin

what is carried: every project (its archive, NAME.zip in the store) and every
SCHEDULED job (spec, spider, description, payload), named v050-<old identifier>.
What is not: finished runs (history) and one-off runs still PENDING or RUNNING.
Stop the 0.5.0 daemon first; start this one (on a store of its own) and run this.
Running it again is safe: schedules already carried are found by their name.

exit status: 0 everything was carried (or was already), 1 something could not be
carried (the rest was; the report says what and why), 2 nothing was done (the
folder is not a 0.5.0 store, or the daemon could not be reached).
"""


class NotAStore(Exception):
    """The folder is not a Scrapy Do 0.5.0 project store; `str()` names what is missing."""


@dataclass(frozen=True)
class OldProject:
    name: str
    archive: Path
    spiders: tuple


@dataclass(frozen=True)
class OldJob:
    identifier: str
    status: int
    spec: str
    project: str
    spider: str
    description: str
    payload: str

    @property
    def name(self):
        return NAME_PREFIX + self.identifier


@dataclass(frozen=True)
class OldStore:
    path: Path
    version: str
    projects: tuple  # OldProject, by name
    schedules: tuple  # OldJob with status SCHEDULED, oldest first
    unfinished: tuple  # one-off OldJob left PENDING or RUNNING
    finished: int  # runs in the history


# -- reading the 0.5.0 store (no writes) ----------------------------------------

#: 0.5.0's `scrapy_do.controller.Project`, the only class its metadata.pkl holds.
_Project = namedtuple("Project", ["name", "archive", "spiders"])


class _ProjectsUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("scrapy_do.controller", "Project"):
            return _Project
        raise pickle.UnpicklingError(f"unexpected object {module}.{name}")


def _read_projects(store):
    path = store / METADATA
    if not path.is_file():
        raise NotAStore(f"{store} is not a Scrapy Do 0.5.0 project store: it has no {METADATA} (its project "
                        "list); give the folder that [scrapy-do] project-store names in the 0.5.0 config")
    try:
        with open(path, "rb") as f:
            projects = _ProjectsUnpickler(f).load()
        if not isinstance(projects, dict) or not all(isinstance(p, _Project) for p in projects.values()):
            raise pickle.UnpicklingError("not a dict of projects")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise NotAStore(f"{path} is not the project list of Scrapy Do 0.5.0 ({e})") from None
    return tuple(OldProject(name, store / f"{name}.zip", tuple(p.spiders)) for name, p in sorted(projects.items()))


def _read_jobs(store):
    path = store / DATABASE
    if not path.is_file():
        raise NotAStore(f"{store} is not a Scrapy Do 0.5.0 project store: it has no {DATABASE} (its jobs)")
    try:
        db = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)
    except sqlite3.Error as e:
        raise NotAStore(f"{path} cannot be opened read-only: {e}") from None
    try:
        version = dict(db.execute("SELECT key, value FROM schedule_metadata")).get("version")
        if version not in KNOWN_VERSIONS:
            raise NotAStore(f"{path} has schema version {version!r}, not one of Scrapy Do 0.4-0.5.0 "
                            f"({', '.join(KNOWN_VERSIONS)})")
        columns = {row[1] for row in db.execute("PRAGMA table_info(schedule)")}
        description = "description" if "description" in columns else "''"
        payload = "payload" if "payload" in columns else "'{}'"
        rows = db.execute(f"SELECT identifier, status, schedule, project, spider, {description}, {payload} "  # column names of ours
                          "FROM schedule ORDER BY timestamp, identifier").fetchall()
    except sqlite3.Error as e:
        raise NotAStore(f"{path} is not the job database of Scrapy Do 0.5.0 ({e})") from None
    finally:
        db.close()
    return version, [OldJob(*row) for row in rows]


def read_store(path):
    """The projects and jobs of the 0.5.0 store at `path`, read without changing a byte of it."""
    store = Path(path).expanduser()
    if not store.is_dir():
        raise NotAStore(f"{store} is not a Scrapy Do 0.5.0 project store: "
                        f"{'it is a file' if store.exists() else 'no such folder'}; give the folder that "
                        "[scrapy-do] project-store names in the 0.5.0 config")
    projects = _read_projects(store)
    version, jobs = _read_jobs(store)
    return OldStore(
        path=store, version=version, projects=projects,
        schedules=tuple(j for j in jobs if j.status == SCHEDULED),
        unfinished=tuple(j for j in jobs if j.status in (PENDING, RUNNING)),
        finished=sum(1 for j in jobs if j.status in FINISHED),
    )


def archive_of(project):
    """The archive to push for `project`, and a note when it had to be trimmed.

    0.5.0 ran only the project's own folder of an archive, so entries beside
    it (which this daemon refuses) are left out.
    """
    data = project.archive.read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = zf.infolist()
        prefix = project.name + "/"
        outside = [m for m in members if not m.filename.startswith(prefix)]
        if not outside:
            return data, None
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as out:
            for member in members:
                if member.filename.startswith(prefix):
                    out.writestr(member, zf.read(member))
    return buf.getvalue(), f"left out {len(outside)} entries beside {prefix} (0.5.0 never used them)"


# -- carrying through the API ---------------------------------------------------


@dataclass
class Report:
    carried: list = field(default_factory=list)
    already: list = field(default_factory=list)
    failed: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def print(self, out):
        for title, lines in (("carried", self.carried), ("already there", self.already),
                             ("NOT carried", self.failed), ("not migrated by design", self.notes)):
            if lines:
                print(f"{title}:", file=out)
                for line in lines:
                    print(f"  {line}", file=out)
        print(f"summary: {len(self.carried)} carried, {len(self.already)} already there, "
              f"{len(self.failed)} not carried", file=out)


def _describe(job):
    extras = "".join(f", {k} {v!r}" for k, v in (("description", job.description), ("payload", job.payload))
                     if v not in ("", "{}"))
    return f"{job.project}/{job.spider} {job.spec!r}{extras}"


class NameRefused(Exception):
    """The daemon does not take schedule names, so a rerun could not find what was carried."""


def _push_projects(store, client, report, dry_run, replace):
    """Push the projects; return {name: its spiders} for each project the schedules can use."""
    on_daemon = set(client.list_projects())
    available = {}
    for project in store.projects:
        if project.name in on_daemon and not replace:
            available[project.name] = client.list_spiders(project.name)
            report.already.append(f"project {project.name}: on the daemon already, kept as it is "
                                  "(--replace-projects pushes the 0.5.0 archive over it)")
            continue
        if not project.archive.is_file():
            report.failed.append(f"project {project.name}: its archive {project.archive} is missing")
            continue
        try:
            data, note = archive_of(project)
        except (OSError, zipfile.BadZipFile, RuntimeError, NotImplementedError) as e:  # zipfile's errors
            report.failed.append(f"project {project.name}: its archive {project.archive} is unreadable: {e}")
            continue
        suffix = f"; {note}" if note else ""
        if dry_run:
            available[project.name] = list(project.spiders)  # as 0.5.0 listed them; the push lists again
            report.carried.append(f"project {project.name}: would be pushed from {project.archive}{suffix}")
            continue
        try:
            answer = client.push_project(data)
        except ClientError as e:
            report.failed.append(f"project {project.name}: the daemon refused its archive: {e}")
            continue
        available[project.name] = answer.get("spiders", [])
        report.carried.append(f"project {project.name}: pushed, spiders {', '.join(available[project.name])}"
                              f"{suffix}")
    return available


def _schedule(client, job):
    data = {"project": job.project, "spider": job.spider, "when": job.spec, "description": job.description,
            "payload": job.payload, "name": job.name}
    try:
        return client._json("POST", "/schedule-job.json", data=data)["identifier"]  # schedule_job() has no name
    except ClientError as e:
        if str(e).startswith("400") and "unknown parameter 'name'" in str(e):
            raise NameRefused(str(e)) from None
        raise


def _carried_before(client):
    """{name: record} of the schedules an earlier run made, still SCHEDULED or CANCELED since."""
    found = {}
    for status in ("CANCELED", "SCHEDULED"):  # a live schedule wins over a canceled one of the same name
        found.update({j["name"]: j for j in client.list_jobs(status=status)
                      if (j.get("name") or "").startswith(NAME_PREFIX)})
    return found


def _before(what, record):
    if record["status"] == "CANCELED":
        return f"{what}: carried before, as {record['identifier']}, and canceled since: not scheduled again"
    return f"{what}: carried before, as {record['identifier']}"


def _carry_schedules(store, client, report, dry_run, available):
    before = _carried_before(client)
    for number, job in enumerate(store.schedules):
        what = f"schedule {job.identifier} ({_describe(job)})"
        if job.name in before:
            report.already.append(_before(what, before[job.name]))
            continue
        if job.project not in available:
            report.failed.append(f"{what}: its project {job.project} was not carried")
            continue
        spiders = available[job.project]
        if job.spider not in spiders:
            report.failed.append(f"{what}: project {job.project} on the daemon has no spider {job.spider} "
                                 f"(it has {', '.join(spiders) or 'none'})")
            continue
        if dry_run:
            report.carried.append(f"{what}: would be scheduled as {job.name}")
            continue
        try:
            identifier = _schedule(client, job)
        except NameRefused as e:
            for rest in store.schedules[number:]:
                report.failed.append(f"schedule {rest.identifier} ({_describe(rest)}): not scheduled, this "
                                     f"daemon does not take schedule names, which make reruns safe ({e}); "
                                     "upgrade it")
            return
        except ClientError as e:
            if str(e).startswith("409"):  # a run started meanwhile took the name?
                before = _carried_before(client)
                if job.name in before:
                    report.already.append(_before(what, before[job.name]))
                    continue
            report.failed.append(f"{what}: the daemon refused it: {e}")
            continue
        report.carried.append(f"{what}: scheduled as {identifier} ({job.name})")


def migrate(store, client, report, dry_run=False, replace=False):
    """Carry `store` (an OldStore) into the daemon `client` talks to, saying what happened in `report`.

    Raises ClientError when the daemon stops answering; `report` then holds what was done until then.
    """
    available = _push_projects(store, client, report, dry_run, replace)
    _carry_schedules(store, client, report, dry_run, available)
    for job in store.unfinished:
        state = "RUNNING" if job.status == RUNNING else "PENDING"
        report.failed.append(f"run {job.identifier} ({_describe(job)}): a one-off run left {state} by 0.5.0 is "
                             "not carried; schedule it again if it is still wanted")
    if store.finished:
        report.notes.append(f"{store.finished} finished runs (their history; their logs stay in "
                            f"{store.path / 'log-dir'})")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="scrapy-do-migrate", epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Carry the projects and schedules of a Scrapy Do 0.5.0 project store into a running\n"
                    "Scrapy Do daemon, through its REST API. The old store is only read.")
    parser.add_argument("store", metavar="OLD_PROJECT_STORE",
                        help="the 0.5.0 store: the folder [scrapy-do] project-store names (it holds "
                             f"{METADATA}, {DATABASE} and a NAME.zip per project)")
    parser.add_argument("--url", default="http://localhost:7654", help="the new daemon (default %(default)s)")
    parser.add_argument("--username", help="user name, when the daemon has [web] auth = on")
    parser.add_argument("--password", help="password (prompted for when a username is given without one)")
    parser.add_argument("--token", default=os.environ.get("SCRAPY_DO_TOKEN"),
                        help="a full API token ([web] tokens-db) instead of a user; default: $SCRAPY_DO_TOKEN, "
                             "which keeps it out of the process list")
    parser.add_argument("--no-verify-ssl", dest="verify", action="store_false",
                        help="do not verify the daemon's TLS certificate")
    parser.add_argument("--dry-run", action="store_true",
                        help="only say what would be carried (asks the daemon, changes nothing)")
    parser.add_argument("--replace-projects", action="store_true",
                        help="push a project's 0.5.0 archive even when the daemon has that project already")
    parser.add_argument("--version", action="version", version=f"scrapy-do-migrate {__version__}")
    return parser


def main(argv=None, stdout=None, client_factory=ScrapyDoClient):
    stdout = stdout or sys.stdout
    args = build_parser().parse_args(argv)
    try:
        store = read_store(args.store)
    except NotAStore as e:
        print(f"scrapy-do-migrate: {e}", file=sys.stderr)
        return EXIT_NOTHING_DONE
    password = args.password
    if args.token:
        args.username = password = None  # the token wins, as in scrapy-do-cl
    elif args.username is not None and password is None:
        password = getpass.getpass()
    client = (client_factory(args.url, args.username, password, verify=args.verify, token=args.token)
              if args.token else client_factory(args.url, args.username, password, verify=args.verify))
    print(f"{'dry run: ' if args.dry_run else ''}{store.path}: 0.5.0 store (schema {store.version}), "
          f"{len(store.projects)} projects, {len(store.schedules)} schedules -> {args.url}", file=stdout)
    try:
        client.status()
    except ClientError as e:
        print(f"scrapy-do-migrate: nothing done, the daemon at {args.url} cannot be used: {e}", file=sys.stderr)
        return EXIT_NOTHING_DONE
    report = Report()
    try:
        migrate(store, client, report, dry_run=args.dry_run, replace=args.replace_projects)
    except ClientError as e:
        report.failed.append(f"stopped here, the daemon failed: {e}; run scrapy-do-migrate again for the rest")
    report.print(stdout)
    return EXIT_PARTIAL if report.failed else EXIT_CARRIED


if __name__ == "__main__":
    sys.exit(main())
