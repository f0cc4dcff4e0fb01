"""Unit tests for scrapy_do.domain.models: status transitions, new jobs, to_dict and payloads."""

import dataclasses
import itertools
import json
import uuid
from datetime import datetime

import pytest

from scrapy_do.errors import BadRequest, Conflict, InvalidPayload
from scrapy_do.domain.models import (
    ACTIVE, COMPLETED, TRANSITIONS, Actor, JobStatus, Project, Run, RunOptions, new_run, new_schedule,
    normalise_payload, transition,
)
from scrapy_do.domain.options import EDITABLE_OPTIONS, OPTION_DEFAULTS
from scrapy_do.domain.records import JOB_FIELDS, TABLE_COLUMNS, to_record
from scrapy_do.domain.zones import UTC

S = JobStatus
NOW = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)

# The lifecycle the daemon promises; written out here so a change to the table must be deliberate.
ALLOWED = {
    (S.SCHEDULED, S.CANCELED),
    (S.PENDING, S.RUNNING),
    (S.PENDING, S.CANCELED),
    (S.RUNNING, S.SUCCESSFUL),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.CANCELED),
    (S.RUNNING, S.PENDING),
}
FORBIDDEN = sorted(set(itertools.product(S, S)) - ALLOWED, key=lambda e: (e[0].value, e[1].value))


def edge_id(edge):
    return f"{edge[0].value}->{edge[1].value}"


def make_job(status=S.PENDING, **changes):
    """A job in `status` with fixed, recognisable fields."""
    job = Run(identifier="job-1", status=status, actor=Actor.USER, project="proj",
              options=RunOptions(spider="quotes"), timestamp=NOW)
    return dataclasses.replace(job, **changes)


# --------------------------------------------------------------------------- statuses


def test_transition_table_is_the_documented_lifecycle():
    """TRANSITIONS allows exactly the documented edges, and lists every status."""
    assert set(TRANSITIONS) == set(S)
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == ALLOWED


@pytest.mark.parametrize("status,active,completed", [
    (S.SCHEDULED, True, False),
    (S.PENDING, True, False),
    (S.RUNNING, True, False),
    (S.SUCCESSFUL, False, True),
    (S.FAILED, False, True),
    (S.CANCELED, False, True),
])
def test_active_and_completed(status, active, completed):
    """Each status is either active or completed, never both."""
    assert (status.active, status.completed) == (active, completed)
    assert (status in ACTIVE, status in COMPLETED) == (active, completed)


@pytest.mark.parametrize("edge", sorted(ALLOWED, key=lambda e: (e[0].value, e[1].value)), ids=edge_id)
def test_allowed_transition(edge):
    """An allowed edge returns a new job in the target status with the given changes applied."""
    source, target = edge
    job = make_job(source)
    moved = transition(job, target, handle="pid:42", exit_code=0)
    assert moved.status is target
    assert (moved.handle, moved.exit_code) == ("pid:42", 0)
    assert dataclasses.replace(moved, status=source, handle=None, exit_code=None) == job
    assert job.status is source  # the original is untouched


@pytest.mark.parametrize("edge", FORBIDDEN, ids=edge_id)
def test_forbidden_transition_raises_conflict(edge):
    """Every edge not in the table raises Conflict naming the job and both statuses."""
    source, target = edge
    job = make_job(source)
    with pytest.raises(Conflict) as info:
        transition(job, target)
    message = str(info.value)
    assert "job-1" in message
    if source.completed:
        assert message == f"job job-1 already finished ({source.value}); nothing to do"
    else:
        assert message == f"job job-1 is {source.value} and cannot become {target.value}"


def test_transition_rejects_unknown_field():
    """Changing a field Job does not have is a programming error, not a silent no-op."""
    with pytest.raises(TypeError):
        transition(make_job(S.PENDING), S.RUNNING, no_such_field=1)


# --------------------------------------------------------------------------- new runs and schedules


def test_new_run_is_pending_with_empty_run_time_fields():
    """new_run fills in what it is given, starts PENDING and leaves run-time fields empty."""
    options = RunOptions(spider="quotes", description="nightly", payload='{"a": 1}')
    run = new_run("proj", options, NOW, actor=Actor.SCHEDULER, schedule_id="parent-id")
    assert (run.status, run.project, run.spider, run.schedule, run.timestamp) == (S.PENDING, "proj", "quotes",
                                                                                  "now", NOW)
    assert (run.actor, run.description, run.payload, run.parent) == (Actor.SCHEDULER, "nightly", '{"a": 1}',
                                                                      "parent-id")
    assert (run.duration, run.started, run.finished, run.exit_code, run.handle) == (None,) * 5


def test_new_schedule_is_scheduled_and_shows_its_spec():
    """new_schedule starts SCHEDULED; its `schedule` is the spec and it has no run-time fields."""
    job = new_schedule("proj", RunOptions(spider="quotes"), "every 10 minutes", NOW)
    assert (job.status, job.schedule, job.parent, job.started, job.duration) == (
        S.SCHEDULED, "every 10 minutes", None, None, None)
    assert (job.actor, job.description, job.payload) == (Actor.USER, "", "{}")


def test_new_identifiers_are_uuid4():
    """Identifiers are canonical UUID4 strings, different for every run and schedule."""
    ids = [new_run("proj", RunOptions(spider="q"), NOW).identifier for _ in range(25)]
    ids += [new_schedule("proj", RunOptions(spider="q"), "every day", NOW).identifier for _ in range(25)]
    for identifier in ids:
        parsed = uuid.UUID(identifier)
        assert parsed.version == 4
        assert str(parsed) == identifier
    assert len(set(ids)) == 50


def test_jobs_are_immutable():
    """A Run cannot be changed in place; transition() returns a new one."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        make_job().status = S.RUNNING


def test_run_options_from_params_parse_and_default():
    """Options are built from request parameters: the payload is normalised and absent ones take defaults."""
    given = {"spider": "quotes", "payload": ' {"a" : 1} '}
    assert RunOptions.from_params(given.get) == RunOptions(spider="quotes", description="", payload='{"a": 1}')


@pytest.mark.parametrize("text, warm", [("on", True), ("off", False), ("yes", True), ("no", False),
                                        (" OFF ", False), ("true", True), ("0", False)])
def test_warm_is_an_on_off_switch(text, warm):
    """`warm` takes on/off (and yes/no, true/false, 1/0), any case, around spaces."""
    assert RunOptions.from_params({"spider": "s", "warm": text}.get).warm is warm


def test_warm_defaults_to_on():
    """Without `warm` a job's runs start warm (when the daemon does)."""
    assert RunOptions.from_params({"spider": "s"}.get).warm is True


@pytest.mark.parametrize("text", ["maybe", "", "  ", "o" * 5000, "\x00", "on\x00"])
def test_warm_refuses_other_values_naming_it(text):
    """A value that is no switch is a 400 that names the parameter."""
    with pytest.raises(BadRequest, match="warm must be on or off"):
        RunOptions.from_params({"spider": "s", "warm": text}.get)


def test_warm_is_stored_only_when_off():
    """The default is left out of the stored options (earlier databases hold no `warm`) and reads back as on."""
    assert "warm" not in json.loads(RunOptions(spider="s").stored())
    off = RunOptions(spider="s", warm=False)
    assert json.loads(off.stored())["warm"] is False
    assert RunOptions.from_stored(off.stored(), spider="s") == off
    assert RunOptions.from_stored('{"description": "", "payload": "{}"}', spider="s").warm is True
    assert OPTION_DEFAULTS["warm"] is True


def test_warm_is_editable():
    """edit-job may switch warm starts; an empty value is refused (there is no daemon default to go back to)."""
    assert "warm" in EDITABLE_OPTIONS
    assert RunOptions.parse_given({"warm": "off"}.get, EDITABLE_OPTIONS) == {"warm": False}
    assert RunOptions.parse_given({"warm": "yes"}.get, EDITABLE_OPTIONS) == {"warm": True}
    assert RunOptions.parse_given({}.get, EDITABLE_OPTIONS) == {}
    with pytest.raises(BadRequest, match="warm must be on or off"):
        RunOptions.parse_given({"warm": ""}.get, EDITABLE_OPTIONS)


def test_record_shows_warm_false_when_off():
    """A job record has `"warm": false` for a job that starts cold."""
    assert to_record(make_job(options=RunOptions(spider="s", warm=False)))["warm"] is False


def test_run_options_need_a_spider():
    """Without a spider there is nothing to run: the error names the parameter."""
    with pytest.raises(BadRequest, match="missing parameter 'spider'"):
        RunOptions.from_params({}.get)


def test_run_options_survive_storage_and_ignore_unknown_keys():
    """Stored options come back equal; keys a newer daemon wrote are left out instead of crashing."""
    options = RunOptions(spider="s", description="Zoë", payload='{"k": "東京"}')
    assert RunOptions.from_stored(options.stored(), spider="s") == options
    assert RunOptions.from_stored('{"payload": "{}", "future": 1}', spider="s") == RunOptions(spider="s")


# --------------------------------------------------------------------------- records

CONTRACT_KEYS = ["identifier", "status", "actor", "schedule", "project", "spider", "description",
                 "timestamp", "duration", "payload"]


def test_record_contract_keys_first():
    """A record starts with exactly the contract's keys, in the contract's order, then extras."""
    keys = list(to_record(make_job()))
    assert keys[:len(CONTRACT_KEYS)] == CONTRACT_KEYS
    assert keys[len(CONTRACT_KEYS):] == ["args", "settings", "priority", "timeout", "fail-on-errors", "notify",
                                         "warm", "started", "finished", "exit-code", "reason", "stats", "errors",
                                         "parent", "next-run", "timezone", "overlap", "catch-up", "paused", "name", "skipped"]


def test_every_option_is_a_record_field():
    """Each RunOptions field shows up in job records without being listed by hand."""
    assert {f.name for f in dataclasses.fields(RunOptions)} <= {f.attr for f in JOB_FIELDS if f.option}
    assert {f.key for f in JOB_FIELDS if f.option} == {"spider", "description", "payload", "args", "settings",
                                                        "priority", "timeout", "fail-on-errors", "notify",
                                                        "warm"}


def test_client_table_is_the_0_5_0_column_order():
    """The client's job table keeps 0.5.0's columns and order."""
    assert TABLE_COLUMNS == ["identifier", "project", "spider", "status", "schedule", "description", "actor",
                             "timestamp", "duration", "payload"]


def test_record_values():
    """A record gives enum values as strings and instants in the zone asked for, with their offset."""
    from dateutil import tz

    job = make_job(S.SUCCESSFUL, options=RunOptions(spider="quotes", description="d", payload='{"k": "v"}'),
                   duration=12, started=datetime(2026, 11, 23, 10, 0, 5, tzinfo=UTC),
                   finished=datetime(2026, 11, 23, 10, 0, 17, 250000, tzinfo=UTC), exit_code=0,
                   schedule_id="p", handle="pid:99@1.5")
    assert to_record(job, tz.gettz("Europe/Berlin")) == {
        "identifier": "job-1",
        "status": "SUCCESSFUL",
        "actor": "USER",
        "schedule": "now",
        "project": "proj",
        "spider": "quotes",
        "description": "d",
        "timestamp": "2026-11-23 11:00:00+01:00",
        "duration": 12,
        "payload": '{"k": "v"}',
        "started": "2026-11-23 11:00:05+01:00",
        "finished": "2026-11-23 11:00:17.250000+01:00",
        "exit-code": 0,
        "reason": None,
        "stats": None,
        "errors": None,
        "parent": "p",
        "next-run": None,
        "timezone": None,
        "overlap": None,
        "catch-up": None,
        "paused": None,
        "skipped": None,
        "name": None,
        "args": {},
        "settings": {},
        "priority": 0,
        "timeout": None,
        "fail-on-errors": None,
        "notify": "",
        "warm": True,
    }


def test_record_of_fresh_schedule_is_json():
    """A fresh schedule's record has None for run-time fields and serialises to JSON as is."""
    d = to_record(new_schedule("proj", RunOptions(spider="quotes"), "every hour", NOW, actor=Actor.SCHEDULER))
    assert (d["status"], d["actor"], d["duration"], d["started"], d["finished"], d["exit-code"]) == \
        ("SCHEDULED", "SCHEDULER", None, None, None, None)
    assert d["timestamp"] == "2026-11-23 10:00:00+00:00"
    assert json.loads(json.dumps(d)) == d


def test_record_leaves_out_the_run_handle():
    """The launcher's handle (pid and creation time) stays internal."""
    d = to_record(make_job(S.RUNNING, handle="pid:1234@99.5"))
    assert "handle" not in d and "pid" not in d and "pid:1234@99.5" not in d.values()


def test_project_is_plain_frozen_data():
    """A Project keeps what it was given and cannot be changed in place."""
    project = Project(name="proj", spiders=("a", "b"), tree="/trees/proj.1", pushed=NOW)
    assert (project.name, project.spiders, project.tree, project.pushed) == ("proj", ("a", "b"), "/trees/proj.1", NOW)
    with pytest.raises(dataclasses.FrozenInstanceError):
        project.name = "other"


# --------------------------------------------------------------------------- payloads

PAYLOADS = [
    ('{"b":1,"a":[1,2]}', '{"b": 1, "a": [1, 2]}'),
    ('  {\n  "k" :  "v"\n}\n', '{"k": "v"}'),
    ("{}", "{}"),
    ('{"nested": {"x": null, "y": true}}', '{"nested": {"x": null, "y": true}}'),
    ('{"a": 1, "a": 2}', '{"a": 2}'),
    ('{"name": "Zoë", "city": "東京"}', '{"name": "Zoë", "city": "東京"}'),
    ('{"e": "\\u00e9"}', '{"e": "é"}'),
    ('{"n": 1.5e3}', '{"n": 1500.0}'),
    ("", "{}"),
    ("   ", "{}"),
    ("\n\t", "{}"),
    (None, "{}"),
]


@pytest.mark.parametrize("text,expected", PAYLOADS)
def test_normalise_payload(text, expected):
    """A JSON object comes back in canonical form (key order kept, non-ASCII kept); empty means {}."""
    assert normalise_payload(text) == expected


def test_normalise_payload_is_idempotent():
    """Normalising a canonical payload returns it unchanged."""
    once = normalise_payload('{ "z": [ 1 , {"é": "ü"} ] }')
    assert normalise_payload(once) == once


BAD_PAYLOADS = [
    # text, expected fragment
    ("{", "payload is not valid JSON (Expecting property name enclosed in double quotes: line 1 column 2"),
    ("{'a': 1}", "payload is not valid JSON ("),
    ('{"a": 1,}', "payload is not valid JSON ("),
    ("not json", "payload is not valid JSON (Expecting value: line 1 column 1"),
    ('{"a": 1} trailing', "payload is not valid JSON (Extra data"),
    ("[1, 2]", "payload must be a JSON object"),
    ("[]", "payload must be a JSON object"),
    ("1", "payload must be a JSON object"),
    ("-2.5", "payload must be a JSON object"),
    ('"text"', "payload must be a JSON object"),
    ("null", "payload must be a JSON object"),
    ("true", "payload must be a JSON object"),
]


@pytest.mark.parametrize("text,fragment", BAD_PAYLOADS)
def test_normalise_payload_rejects(text, fragment):
    """Anything but a JSON object raises InvalidPayload that says so and shows an example object."""
    with pytest.raises(InvalidPayload) as info:
        normalise_payload(text)
    message = str(info.value)
    assert message.startswith(fragment)
    assert 'JSON object such as {"key": 1}' in message


def test_invalid_payload_is_a_bad_request():
    """InvalidPayload is a BadRequest, so the web layer answers 400."""
    assert issubclass(InvalidPayload, BadRequest)


@pytest.mark.parametrize("text", ["[" * 100_000, '{"a":' * 100_000, "[" * 100_000 + "]" * 100_000])
def test_normalise_payload_deep_nesting(text):
    """A hostile, deeply nested payload is refused with InvalidPayload instead of crashing."""
    with pytest.raises(InvalidPayload) as info:
        normalise_payload(text)
    assert "nested too deeply" in str(info.value)
