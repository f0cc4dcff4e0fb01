"""`scrapy-do-cl apply` and `export` against the real daemon: what a file makes of the daemon's named schedules."""

import io
import json
import textwrap

import pytest

from scrapy_do.client.cli import main
from tests.helpers import OFFLINE
from tests.integration.daemonproc import DaemonProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def module_daemon(tmp_path_factory):
    d = DaemonProcess(tmp_path_factory.mktemp("daemon")).start()
    assert cl(d, "push-project", "--project-path", str(OFFLINE))[0] == 0
    yield d
    d.stop()


@pytest.fixture
def daemon(module_daemon):
    """The module's daemon with no schedules: each test starts from nothing."""
    for job in schedules(module_daemon):
        assert module_daemon.request("/cancel-job.json", {"id": job["identifier"]})[0] == 200
    return module_daemon


def cl(daemon, *argv):
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    code = main(["--url", daemon.url, *argv], stdout=out, defaults={})
    out.flush()
    return code, out.buffer.getvalue().decode()


def schedules(daemon):
    code, body = daemon.get("/list-jobs.json", status="SCHEDULED")
    assert code == 200, body
    return body["jobs"]


def by_name(daemon):
    return {j["name"]: j for j in schedules(daemon) if j["name"]}


def write(tmp_path, text, name="schedules.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


FULL = """\
    schedules:
      - name: nightly-books
        project: offline
        spider: quick
        when: every day at 02:00
        timezone: Europe/Berlin
        description: the books
        payload: {key: 1}
        args: {category: books}
        settings: {DOWNLOAD_DELAY: 2}
        priority: 5
        timeout: 3600
        overlap: skip
        catch-up: true
        fail-on-errors: true
        notify: https://hooks.example.com/x
        warm: off
        paused: true
      - name: hourly
        project: offline
        spider: quick
        when: every 2 hours
"""


def test_apply_creates_then_a_second_apply_changes_nothing(daemon, tmp_path):
    """apply creates each schedule with every key of the file; the same file again changes nothing."""
    path = write(tmp_path, FULL)
    code, text = cl(daemon, "apply", path)
    assert code == 0 and text.splitlines() == ["+ create nightly-books", "+ create hourly",
                                               "Applied: 2 created, 0 changed, 0 replaced, 0 removed, 0 unchanged."]
    jobs = by_name(daemon)
    books = jobs["nightly-books"]
    assert {k: books[k] for k in ("project", "spider", "schedule", "timezone", "description", "payload", "args",
                                  "settings", "priority", "timeout", "overlap", "catch-up", "fail-on-errors",
                                  "notify", "warm", "paused")} == {
        "project": "offline", "spider": "quick", "schedule": "every day at 02:00", "timezone": "Europe/Berlin",
        "description": "the books", "payload": '{"key": 1}', "args": {"category": "books"},
        "settings": {"DOWNLOAD_DELAY": 2}, "priority": 5, "timeout": 3600, "overlap": "skip", "catch-up": True,
        "fail-on-errors": True, "notify": "https://hooks.example.com/x", "warm": False, "paused": True}
    assert cl(daemon, "apply", path) == (0, f"No changes: the daemon's named schedules match {path} (2 schedules).\n")
    assert by_name(daemon) == jobs  # not even the next runs moved


def test_a_change_is_made_in_place(daemon, tmp_path):
    """Changed keys go through edit-job (and resume-job): same identifier, only what changed is said."""
    assert cl(daemon, "apply", write(tmp_path, FULL))[0] == 0
    before = by_name(daemon)
    changed = FULL.replace("when: every 2 hours", "when: EVERY day at 02:00\n        priority: 5") \
                  .replace("paused: true", "paused: false").replace("        timeout: 3600\n", "")
    code, text = cl(daemon, "apply", write(tmp_path, changed, "v2.yaml"))
    assert code == 0 and text.splitlines() == [
        "~ change nightly-books: timeout 3600 -> default, paused true -> false",
        "~ change hourly: when 'every 2 hours' -> 'every day at 02:00', priority 0 -> 5",
        "Applied: 0 created, 2 changed, 0 replaced, 0 removed, 0 unchanged."]
    after = by_name(daemon)
    assert {n: j["identifier"] for n, j in after.items()} == {n: j["identifier"] for n, j in before.items()}
    assert (after["hourly"]["schedule"], after["hourly"]["priority"]) == ("every day at 02:00", 5)
    assert (after["nightly-books"]["timeout"], after["nightly-books"]["paused"]) == (None, False)
    assert after["nightly-books"]["args"] == {"category": "books"}  # untouched keys stay


def test_a_new_spider_replaces_the_schedule(daemon, tmp_path):
    """A spider edit-job cannot change: the old schedule is canceled and a new one gets the name."""
    assert cl(daemon, "apply", write(tmp_path, FULL))[0] == 0
    old = by_name(daemon)["hourly"]
    code, text = cl(daemon, "--json", "apply", write(tmp_path, FULL.replace("spider: quick\n        when: every 2",
                                                                             "spider: slow\n        when: every 2"),
                                                    "v2.yaml"))
    report = json.loads(text)
    assert code == 0 and report["summary"] == {"create": 0, "change": 0, "replace": 1, "remove": 0, "unchanged": 1}
    [action] = report["actions"]
    new = by_name(daemon)["hourly"]
    assert action == {"action": "replace", "name": "hourly", "identifier": new["identifier"],
                      "previous": old["identifier"], "changes": {"spider": ["quick", "slow"]}}
    assert new["identifier"] != old["identifier"] and new["spider"] == "slow"
    assert daemon.job(old["identifier"])["status"] == "CANCELED"


def test_prune_removes_named_schedules_only(daemon, tmp_path, capsys):
    """Without --prune a schedule the file lacks stays (stderr says so); with it it is canceled; unnamed stay."""
    unnamed = daemon.schedule("offline", "quick", when="every 3 hours")
    assert cl(daemon, "apply", write(tmp_path, FULL))[0] == 0
    only_hourly = FULL.split("  - name: nightly-books")[0] + "  - name: hourly" + FULL.split("  - name: hourly")[1]
    path = write(tmp_path, only_hourly, "v2.yaml")
    capsys.readouterr()
    assert cl(daemon, "apply", path)[1].startswith("No changes")
    assert "1 named schedule not in" in capsys.readouterr().err and "nightly-books" in by_name(daemon)
    books = by_name(daemon)["nightly-books"]["identifier"]
    assert cl(daemon, "apply", path, "--prune")[1].splitlines()[0] == "- remove nightly-books"
    assert daemon.job(books)["status"] == "CANCELED"
    assert set(by_name(daemon)) == {"hourly"} and daemon.job(unnamed)["status"] == "SCHEDULED"
    assert cl(daemon, "apply", write(tmp_path, "schedules: []\n", "none.yaml"), "--prune")[0] == 0
    assert [j["identifier"] for j in schedules(daemon)] == [unnamed]


def test_dry_run_prints_the_plan_and_changes_nothing(daemon, tmp_path):
    """--dry-run prints each action and the summary, and the daemon's schedules stay exactly as they were."""
    assert cl(daemon, "apply", write(tmp_path, FULL.split("  - name: hourly")[0]))[0] == 0
    before = schedules(daemon)
    code, text = cl(daemon, "apply", write(tmp_path, FULL.replace("priority: 5", "priority: 6"), "v2.yaml"),
                    "--dry-run")
    assert code == 0 and text.splitlines() == [
        "~ change nightly-books: priority 5 -> 6", "+ create hourly",
        "Plan: 1 to create, 1 to change, 0 to replace, 0 to remove, 0 unchanged. Dry run: nothing was changed."]
    assert schedules(daemon) == before


def test_a_file_with_errors_changes_nothing_and_names_the_lines(daemon, tmp_path, capsys):
    """Every problem is printed as FILE:LINE; a good entry next to them is not created either."""
    path = write(tmp_path, FULL.replace("spider: quick\n        when: every 2", "sipder: quick\n        when: every 2")
                 .replace("project: offline\n        spider: quick\n        when: every day",
                          "project: offline\n        spider: nope\n        when: every day"))
    capsys.readouterr()
    code, _ = cl(daemon, "apply", path)
    err = capsys.readouterr().err.splitlines()
    assert code == 1 and err[0].startswith(f"[!] {path}:19: schedule 'hourly' has no 'spider'")
    assert err[1].startswith(f"[!] {path}:21: unknown key 'sipder' (did you mean 'spider'?")
    assert err[-1] == f"[!] {path}: 2 problems, nothing was changed"
    path = write(tmp_path, FULL.split("  - name: hourly")[0].replace("spider: quick", "spider: nope"), "v2.yaml")
    assert cl(daemon, "apply", path)[0] == 1
    assert capsys.readouterr().err.splitlines()[0] == (f"[!] {path}:4: project 'offline' has no spider 'nope' (its "
                                                       "spiders: broken, bulk, erring, mixed, quick, slow)")
    assert schedules(daemon) == []


def test_export_then_apply_is_no_change_and_unnamed_are_named_to_be_managed(daemon, tmp_path, capsys):
    """export writes what apply reads back as no change; an unnamed schedule is left out, with how to name it."""
    unnamed = daemon.schedule("offline", "mixed", when="*/20 * * * *", priority="3")
    assert cl(daemon, "apply", write(tmp_path, FULL))[0] == 0
    exported = tmp_path / "exported.yaml"
    capsys.readouterr()
    assert cl(daemon, "export", "-o", str(exported)) == (0, "")
    err = capsys.readouterr().err
    assert "1 unnamed schedule left out" in err and "edit-job --job-id ID --name NAME" in err and unnamed in err
    assert cl(daemon, "apply", str(exported), "--prune")[1].startswith("No changes")
    assert cl(daemon, "edit-job", "--job-id", unnamed, "--name", "every-20")[0] == 0
    code, text = cl(daemon, "export")
    assert code == 0 and "name: every-20" in text and "when: '*/20 * * * *'" in text
    assert cl(daemon, "apply", write(tmp_path, text, "again.yaml"), "--prune")[1].startswith("No changes")
    assert daemon.job(unnamed)["status"] == "SCHEDULED"


def test_schedule_job_names_a_schedule_and_a_taken_name_is_refused(daemon, capsys):
    """schedule-job --name names the job apply then manages; a second schedule of that name is a 409."""
    argv = ["schedule-job", "--project", "offline", "--spider", "quick", "--when", "every 5 hours", "--name", "five"]
    assert cl(daemon, *argv)[0] == 0 and set(by_name(daemon)) == {"five"}
    capsys.readouterr()
    assert cl(daemon, *argv)[0] == 1 and capsys.readouterr().err.startswith("[!] 409: ")
