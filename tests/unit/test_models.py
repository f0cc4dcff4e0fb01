"""Unit tests for scrapy_do.domain.models: status transitions, new jobs, to_dict and payloads."""

import dataclasses
import itertools
import json
import uuid
from datetime import datetime

import pytest

from scrapy_do.errors import BadRequest, Conflict, InvalidPayload
from scrapy_do.domain.models import (
    ACTIVE, COMPLETED, TRANSITIONS, Actor, Job, JobStatus, Project, new_job, normalise_payload, transition,
)

S = JobStatus
NOW = datetime(2026, 11, 23, 10, 0, 0)

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
    job = Job(identifier="job-1", status=status, actor=Actor.USER, schedule="now", project="proj",
              spider="quotes", timestamp=NOW)
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
    moved = transition(job, target, pid=42, exit_code=0)
    assert moved.status is target
    assert (moved.pid, moved.exit_code) == (42, 0)
    assert dataclasses.replace(moved, status=source, pid=None, exit_code=None) == job
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


# --------------------------------------------------------------------------- new jobs


@pytest.mark.parametrize("schedule,status", [
    ("now", S.PENDING),
    ("every 10 minutes", S.SCHEDULED),
    ("every monday at 12:30", S.SCHEDULED),
])
def test_new_job_status(schedule, status):
    """A job for `now` starts PENDING; a job with a periodic spec starts SCHEDULED."""
    assert new_job("proj", "quotes", schedule, NOW).status is status


def test_new_job_fields():
    """new_job fills in what it is given and leaves run-time fields empty."""
    job = new_job("proj", "quotes", "now", NOW, actor=Actor.SCHEDULER, description="nightly",
                  payload='{"a": 1}', parent="parent-id")
    assert (job.project, job.spider, job.schedule, job.timestamp) == ("proj", "quotes", "now", NOW)
    assert (job.actor, job.description, job.payload, job.parent) == (Actor.SCHEDULER, "nightly", '{"a": 1}', "parent-id")
    assert (job.duration, job.started, job.finished, job.exit_code, job.pid, job.pid_created) == (None,) * 6


def test_new_job_defaults():
    """By default a job is the user's, with no description, an empty payload and no parent."""
    job = new_job("proj", "quotes", "now", NOW)
    assert (job.actor, job.description, job.payload, job.parent) == (Actor.USER, "", "{}", None)


def test_new_job_identifier_is_uuid4():
    """Identifiers are canonical UUID4 strings, different for every job."""
    ids = [new_job("proj", "quotes", "now", NOW).identifier for _ in range(50)]
    for identifier in ids:
        parsed = uuid.UUID(identifier)
        assert parsed.version == 4
        assert str(parsed) == identifier
    assert len(set(ids)) == 50


def test_jobs_are_immutable():
    """A Job cannot be changed in place; transition() returns a new one."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        make_job().status = S.RUNNING


# --------------------------------------------------------------------------- to_dict

CONTRACT_KEYS = ["identifier", "status", "actor", "schedule", "project", "spider", "description",
                 "timestamp", "duration", "payload"]


def test_to_dict_contract_keys_first():
    """to_dict starts with exactly the contract's keys, in the contract's order, then extras."""
    keys = list(make_job().to_dict())
    assert keys[:len(CONTRACT_KEYS)] == CONTRACT_KEYS
    assert keys[len(CONTRACT_KEYS):] == ["started", "finished", "exit-code", "parent"]


def test_to_dict_values():
    """to_dict gives enum values as strings and datetimes in 'YYYY-MM-DD HH:MM:SS' form."""
    job = make_job(S.SUCCESSFUL, description="d", payload='{"k": "v"}', duration=12,
                   started=datetime(2026, 11, 23, 10, 0, 5), finished=datetime(2026, 11, 23, 10, 0, 17),
                   exit_code=0, parent="p", pid=99, pid_created=1.5)
    assert job.to_dict() == {
        "identifier": "job-1",
        "status": "SUCCESSFUL",
        "actor": "USER",
        "schedule": "now",
        "project": "proj",
        "spider": "quotes",
        "description": "d",
        "timestamp": "2026-11-23 10:00:00",
        "duration": 12,
        "payload": '{"k": "v"}',
        "started": "2026-11-23 10:00:05",
        "finished": "2026-11-23 10:00:17",
        "exit-code": 0,
        "parent": "p",
    }


def test_to_dict_of_fresh_job_is_json():
    """A fresh job's dict has None for unset fields and serialises to JSON as is."""
    d = new_job("proj", "quotes", "every hour", NOW, actor=Actor.SCHEDULER).to_dict()
    assert (d["status"], d["actor"], d["duration"], d["started"], d["finished"], d["exit-code"]) == \
        ("SCHEDULED", "SCHEDULER", None, None, None, None)
    assert json.loads(json.dumps(d)) == d


def test_to_dict_leaves_out_process_details():
    """Process bookkeeping (pid, pid_created) stays internal."""
    d = make_job(S.RUNNING, pid=1234, pid_created=99.5).to_dict()
    assert "pid" not in d and "pid_created" not in d and "pid-created" not in d


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
