"""Schedules as code, the pure part: a file read with its line numbers, compared with job records, written back."""

import json
import textwrap

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from scrapy_do.client import schedules
from scrapy_do.client.schedules import DEFAULTS, FileError, parse, plan

FULL = """\
schedules:
  - name: nightly-books
    project: quotesbot
    spider: toscrape-css
    when: EVERY day at 02:00
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
    paused: false
"""


def one(text):
    [desired] = parse(textwrap.dedent(text))
    return desired


def entry(**keys):
    """A file of one schedule: the required keys, then `keys` (None: left out) as YAML flow values."""
    values = {"name": "a", "project": "p", "spider": "s", "when": "every 2 hours", **keys}
    lines = "".join(f"    {k}: {v}\n" for k, v in values.items() if v is not None)
    return "schedules:\n  -\n" + lines


def problems(text):
    with pytest.raises(FileError) as raised:
        parse(text, "s.yaml")
    return raised.value.problems


def record(name="a", **over):
    """A SCHEDULED job record as the daemon shows it, every option at its default."""
    base = {"identifier": f"id-{name}", "status": "SCHEDULED", "name": name, "project": "p", "spider": "s",
            "schedule": "every 2 hours", "description": "", "payload": "{}", "args": {}, "settings": {},
            "priority": 0, "timeout": None, "fail-on-errors": None, "notify": "", "timezone": None,
            "overlap": "allow", "catch-up": False, "paused": False, "warm": True}
    return {**base, **over}


# -- parsing -----------------------------------------------------------------------------------------------------

def test_every_key_is_read_validated_and_remembered_with_its_line():
    """Each key becomes its checked value (the spec normalised) and each value's line is kept."""
    d = one(FULL)
    assert d.name == "nightly-books" and d.line == 2
    assert d.values == {"project": "quotesbot", "spider": "toscrape-css", "when": "every day at 02:00",
                        "timezone": "Europe/Berlin", "description": "the books", "payload": {"key": 1},
                        "args": {"category": "books"}, "settings": {"DOWNLOAD_DELAY": 2}, "priority": 5,
                        "timeout": 3600, "overlap": "skip", "catch-up": True, "fail-on-errors": True,
                        "notify": "https://hooks.example.com/x", "warm": False, "paused": False}
    assert [d.line_of(k) for k in schedules.KEYS] == list(range(2, 19))


def test_keys_left_out_are_the_daemons_defaults():
    """An entry of the required keys alone has every other value at the daemon's default."""
    d = one(entry())
    assert d.values == {**DEFAULTS, "project": "p", "spider": "s", "when": "every 2 hours"}


def test_scalars_are_the_text_written_not_yamls_guesses():
    """`yes`, `1.10` and dates stay text where text is meant; numbers and switches read from that text."""
    d = one(entry(name="1.10", description="yes", project="2026-01-01", priority="'-5'", **{"catch-up": "on"}))
    assert (d.name, d.values["description"], d.values["project"]) == ("1.10", "yes", "2026-01-01")
    assert (d.values["priority"], d.values["catch-up"]) == (-5, True)


def test_an_empty_value_is_the_default():
    """`timeout:` or `fail-on-errors: ~` mean the daemon's default, as leaving the key out does."""
    d = one(entry(timeout="", **{"fail-on-errors": "~", "timezone": "null"}))
    assert (d.values["timeout"], d.values["fail-on-errors"], d.values["timezone"]) == (None, None, None)


def test_payload_args_and_settings_as_mappings_or_json_text():
    """A JSON object may be written as YAML or as JSON text; both give the same value."""
    a = one(entry(payload="{pages: [1, 2]}", args="{category: books}"))
    b = one(entry(payload="'{\"pages\": [1, 2]}'", args="'{\"category\": \"books\"}'"))
    assert a.values == b.values and a.values["payload"] == {"pages": [1, 2]}


def test_cron_specs_are_normalised():
    """A quoted cron expression is stored as the daemon stores it (lower case, single spaces)."""
    assert one(entry(when="'*/15  9-17 * * MON-FRI'")).values["when"] == "*/15 9-17 * * mon-fri"


def test_schedules_may_be_an_empty_list():
    """`schedules: []` is a file of no schedules (with --prune: remove every named one)."""
    assert parse("schedules: []\n") == []


@pytest.mark.parametrize("text, line, fragment", [
    (entry(sipder="x"), 7, "unknown key 'sipder' (did you mean 'spider'? keys: name, project, spider, when,"),
    (entry(catch_up="on"), 7, "unknown key 'catch_up' (did you mean 'catch-up'?"),
    ("schedules: []\nschedule: []\n", 2, "unknown key 'schedule' at the top (did you mean 'schedules'?"),
    (entry() + "    when: every day\n", 7, "'when' is given twice (first at line 6): keep one"),
    (entry(spider=None), 3, "schedule 'a' has no 'spider' (required: name, project, spider, when)"),
    (entry(name=None, when=None), 3, "schedule 1 has no 'name', 'when'"),
    (entry(project="~"), 4, "project has no value"),
    (entry(spider="' '"), 5, "spider is empty"),
    (entry(name="'a b'"), 3, "name must be 1 to 100 letters"),
    (entry(when="every 0 minutes"), 6, "when: interval '0' is not positive"),
    (entry(when="now"), 6, "when 'now' runs once, it is no schedule"),
    (entry(when="'61 * * * *'"), 6, "when: "),
    (entry(args="{payload: 1}"), 7, "args may not hold 'payload'"),
    (entry(args="\n      ok: 1\n      max-pages: 2"), 9, "args: 'max-pages' is not a spider argument name"),
    (entry(args="[1]"), 7, "args must be a mapping such as {category: books}, not a list"),
    (entry(args="{since: 2026-01-01}"), 7, "args holds a value JSON cannot carry"),
    (entry(settings="{download_delay: 2}"), 7, "settings: 'download_delay' is not a Scrapy setting name"),
    (entry(settings="{LOG_FILE: x}"), 7, "settings may not override LOG_FILE"),
    (entry(payload="'[1]'"), 7, "payload must be a JSON object"),
    (entry(payload="'{nope'"), 7, "payload is not valid JSON"),
    (entry(priority="1001"), 7, "priority must be a whole number from -1000 to 1000, not '1001'"),
    (entry(priority="2.5"), 7, "priority must be a whole number"),
    (entry(timeout="0"), 7, "timeout must be a whole number from 1 to 604800 seconds"),
    (entry(timezone="Mars/Olympus"), 7, "timezone 'Mars/Olympus' is not a time zone"),
    (entry(overlap="never"), 7, "overlap must be allow or skip, not 'never'"),
    (entry(**{"catch-up": "maybe"}), 7, "catch-up must be on or off"),
    (entry(**{"fail-on-errors": "sometimes"}), 7, "fail-on-errors must be on or off"),
    (entry(paused="perhaps"), 7, "paused must be on or off"),
    (entry(warm="maybe"), 7, "warm must be on or off, not 'maybe'"),
    (entry(warm="'  '"), 7, "warm must be on or off"),
    (entry(warm="[off]"), 7, "warm must be text, not a list"),
    (entry(notify="ftp://x"), 7, "notify must be an http:// or https:// URL"),
    (entry(description="[a]"), 7, "description must be text, not a list"),
    (entry(args="{[1]: 2}"), 7, "args cannot be read: found unhashable key"),
    (entry() + "  - name: a\n    project: p\n    spider: s\n    when: every day\n", 7,
     "name 'a' is given twice (first at line 3): names are unique"),
    (entry(when="*/15 * * * *"), 6, "not valid YAML: expected alphabetic or numeric character, but found '/' (a "
                                    "cron spec starting with * must be quoted: when: '*/15 * * * *')"),
    ("", 1, "the file is empty: it needs a 'schedules' list"),
    ("- a\n", 1, "the file holds a list; it needs a 'schedules' list"),
    ("other: 1\n", 1, "unknown key 'other' at the top"),
    ("schedules:\n", 1, "schedules is empty: list entries under it, or write 'schedules: []'"),
    ("schedules: {a: 1}\n", 1, "schedules must be a list of entries"),
    ("schedules:\n  - just text\n", 2, "schedule 1 is text; each entry is a mapping of keys"),
])
def test_each_problem_names_its_line(text, line, fragment):
    """Each kind of mistake is reported at the line to fix, with what is wrong and how to write it."""
    [(got_line, message)] = problems(text)
    assert got_line == line and fragment in message, message


def test_every_problem_is_reported_at_once_in_line_order():
    """A file with several problems lists them all, by line, each as FILE:LINE: message."""
    text = entry(priority="5000", sipder="x") + "  - name: b\n    project: p\n    spider: s\n    when: now\n"
    with pytest.raises(FileError) as raised:
        parse(text, "conf/s.yaml")
    lines = str(raised.value).splitlines()
    assert [ln.split(": ", 1)[0] for ln in lines] == ["conf/s.yaml:7", "conf/s.yaml:8", "conf/s.yaml:12"]
    assert lines[0].endswith("not '5000'") and "'sipder'" in lines[1] and "'now'" in lines[2]


def test_unknown_projects_and_spiders_are_problems_at_their_lines():
    """What the daemon lacks is reported at the project's or the spider's line, with what it has."""
    desired = parse(entry() + "  - name: b\n    project: q\n    spider: s\n    when: every day\n"
                    + "  - name: c\n    project: p\n    spider: t\n    when: every day\n")
    assert schedules.unknown_targets(desired, {"p": ["s", "u"], "q": None}) == [
        (8, "the daemon has no project 'q' (it has: p); push it first"),
        (13, "project 'p' has no spider 't' (its spiders: s, u)")]


# -- the plan ----------------------------------------------------------------------------------------------------

def test_plan_creates_changes_replaces_removes_and_leaves_unchanged():
    """Each named schedule gets the one action that makes it match; unnamed records are never in the plan."""
    desired = parse(entry(name="same") + entry(name="new")[11:] + entry(name="edit", priority="5")[11:]
                    + entry(name="moved", spider="t")[11:])
    records = [record("same"), record("edit"), record("moved"), record("gone"), record(None, identifier="free")]
    p = plan(desired, records, prune=True)
    assert [(a.kind, a.name) for a in p.actions] == [("create", "new"), ("change", "edit"), ("replace", "moved"),
                                                      ("remove", "gone")]
    assert p.unchanged == ("same",) and p.kept == () and [r["identifier"] for r in p.unnamed] == ["free"]
    assert [a.describe() for a in p.actions] == ["+ create new", "~ change edit: priority 0 -> 5",
                                                 "± replace moved: spider 's' -> 't'", "- remove gone"]
    assert p.summary() == "1 to create, 1 to change, 1 to replace, 1 to remove, 1 unchanged"


def test_without_prune_named_schedules_the_file_lacks_are_kept():
    """Without prune a schedule missing from the file is only listed as kept."""
    p = plan([], [record("old"), record(None)])
    assert p.actions == () and p.kept == ("old",)


def test_a_payload_change_replaces_and_lists_every_change_in_key_order():
    """project, spider and payload force a replace; the other differences are listed with them."""
    [d] = parse(entry(payload="{a: 1}", priority="3", when="every day"))
    [action] = plan([d], [record()]).actions
    assert action.kind == "replace"
    assert action.describe() == ("± replace a: when 'every 2 hours' -> 'every day', payload {} -> {\"a\": 1}, "
                                 "priority 0 -> 3")


@pytest.mark.parametrize("keys, have", [
    ({"when": "'EVERY  2 hours'"}, {}),
    ({"payload": "{b: 2, a: 1}"}, {"payload": '{"a": 1, "b": 2}'}),
    ({"timezone": "UTC"}, {"timezone": "UTC"}),
    ({"settings": "{DOWNLOAD_DELAY: 2}"}, {"settings": {"DOWNLOAD_DELAY": 2}}),
    ({}, {"overlap": None, "catch-up": None, "notify": None, "description": None}),
    ({}, {"schedule": "EVERY 2 HOURS"}),
])
def test_equal_values_written_differently_are_no_change(keys, have):
    """Specs are compared normalised, objects whatever their key order, and a missing record value as default."""
    assert plan(parse(entry(**keys)), [record(**have)]).unchanged == ("a",)


@pytest.mark.parametrize("keys, have, shown", [
    ({"args": "{pages: 1}"}, {"args": {"pages": True}}, "args {\"pages\": true} -> {\"pages\": 1}"),
    ({"args": "{pages: '1'}"}, {"args": {"pages": 1}}, "args {\"pages\": 1} -> {\"pages\": \"1\"}"),
    ({"fail-on-errors": "false"}, {}, "fail-on-errors default -> false"),
    ({}, {"timeout": 60}, "timeout 60 -> default"),
    ({}, {"paused": True}, "paused true -> false"),
])
def test_values_that_differ_in_kind_are_a_change(keys, have, shown):
    """1 is not true, "1" is not 1, and null (the daemon's default) is not false."""
    [action] = plan(parse(entry(**keys)), [record(**have)]).actions
    assert action.describe() == f"~ change a: {shown}"


def test_edit_call_sends_only_what_changed_and_clears_with_empty_text():
    """edit-job gets the changed keys alone (an edit moves the next run), a default as "" to clear it."""
    [d] = parse(entry(priority="5", **{"catch-up": "yes"}))
    [action] = plan([d], [record(timeout=60, timezone="UTC", notify="https://h/x", paused=True)]).actions
    assert schedules.edit_call(action) == {"timezone": "", "priority": 5, "timeout": "", "catch_up": True,
                                           "notify": ""}
    assert schedules.pause_call(action) is False
    [only_paused] = plan(parse(entry(paused="yes")), [record()]).actions
    assert schedules.edit_call(only_paused) == {} and schedules.pause_call(only_paused) is True


def test_create_call_sends_the_name_and_leaves_defaults_to_the_daemon():
    """A schedule with defaults only sends what schedule-job needs; the full one sends every value."""
    assert schedules.create_call(one(entry())) == {
        "project": "p", "spider": "s", "when": "every 2 hours", "description": "", "payload": "{}", "name": "a",
        "args": None, "settings": None, "priority": None, "timeout": None, "timezone": None, "overlap": None,
        "catch_up": None, "fail_on_errors": None, "notify": None, "warm": None}
    call = schedules.create_call(one(FULL))
    assert (call["payload"], call["args"], call["overlap"], call["catch_up"], call["notify"], call["warm"]) == (
        '{"key": 1}', {"category": "books"}, "skip", True, "https://hooks.example.com/x", False)


def test_plan_as_json_for_scripts():
    """--json's plan: each action with its identifier and changes as [old, new], and the counts."""
    p = plan(parse(entry(priority="2")), [record(), record("old")], prune=True)
    assert p.as_json() == {
        "actions": [{"action": "change", "name": "a", "identifier": "id-a", "changes": {"priority": [0, 2]}},
                    {"action": "remove", "name": "old", "identifier": "id-old", "changes": {}}],
        "unchanged": [], "kept": [], "unnamed": [],
        "summary": {"create": 0, "change": 1, "replace": 0, "remove": 1, "unchanged": 0}}


# -- export ------------------------------------------------------------------------------------------------------

def test_export_writes_named_schedules_by_name_with_only_what_is_not_default():
    """The required keys, then the values that differ from the default; unnamed records are handed back."""
    records = [record("z", priority=3, schedule="*/5 * * * *", description="yes"),
               record("b", args={"category": "books"}, paused=True), record(None, identifier="free")]
    text, unnamed = schedules.export(records, header="made by a test\n\nsecond")
    assert text == textwrap.dedent("""\
        # made by a test
        #
        # second
        schedules:
          - name: b
            project: p
            spider: s
            when: every 2 hours
            args:
              category: books
            paused: true
          - name: z
            project: p
            spider: s
            when: '*/5 * * * *'
            description: 'yes'
            priority: 3
        """)
    assert [r["identifier"] for r in unnamed] == ["free"]


@pytest.mark.parametrize("value, warm", [("off", False), ("no", False), ("false", False), ("on", True),
                                         ("yes", True), ("~", True)])
def test_warm_is_read_as_a_switch_and_left_out_is_on(value, warm):
    """`warm: off` makes the runs start cold; on, or left out, or empty, is the default (warm)."""
    assert one(entry(warm=value)).values["warm"] is warm
    assert one(entry()).values["warm"] is True


def test_warm_off_is_created_changed_and_exported_only_when_off():
    """Off is sent to schedule-job and edit-job; export writes `warm: false` only for a job that starts cold;
    a record of a daemon that shows no `warm` is on."""
    assert schedules.create_call(one(entry(warm="off")))["warm"] is False
    [action] = plan(parse(entry(warm="off")), [record()]).actions
    assert action.describe() == "~ change a: warm true -> false" and schedules.edit_call(action) == {"warm": False}
    [action] = plan(parse(entry()), [record(warm=False)]).actions
    assert schedules.edit_call(action) == {"warm": True}
    assert plan(parse(entry()), [record(warm=None)]).unchanged == ("a",)
    text, _ = schedules.export([record(warm=False), record("b")])
    assert "    warm: false\n" in text and text.count("warm") == 1
    assert plan(parse(text), [record(warm=False), record("b")]).unchanged == ("a", "b")


def test_export_of_nothing_is_an_empty_list_apply_accepts():
    """No named schedules export as `schedules: []`, which parses back to none."""
    text, _ = schedules.export([record(None)])
    assert text == "schedules: []\n" and parse(text) == []


def test_export_then_parse_of_every_key_is_no_change():
    """A record with every option set comes back from its export as the same schedule."""
    rec = record("full", schedule="every day at 02:00", timezone="Europe/Berlin", description="it's: #1\nline 2",
                 payload='{"key": [1, "x"]}', args={"category": "books", "n": 2}, settings={"DOWNLOAD_DELAY": 2.5},
                 priority=-5, timeout=3600, overlap="skip", **{"catch-up": True, "fail-on-errors": False},
                 notify="https://hooks.example.com/x", paused=True, warm=False)
    text, _ = schedules.export([rec])
    p = plan(parse(text), [rec])
    assert p.actions == () and p.unchanged == ("full",)


_text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=20)
_value = st.one_of(_text, st.integers(-10**6, 10**6), st.booleans(), st.none())
_ident = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True).filter(lambda k: k != "payload")
_records = st.builds(
    lambda name, desc, args, prio, timeout, paused, spec, payload: record(
        name, description=desc, args=args, priority=prio, timeout=timeout, paused=paused, schedule=spec,
        payload=json.dumps(payload, ensure_ascii=False)),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True), _text,
    st.dictionaries(_ident, _value, max_size=3), st.integers(-1000, 1000),
    st.one_of(st.none(), st.integers(1, 604800)), st.booleans(),
    st.sampled_from(["every 2 hours", "every monday at 10:30", "*/15 9-17 * * mon-fri", "every 5 to 10 minutes"]),
    st.dictionaries(_text, _value, max_size=3))


@settings(max_examples=150, deadline=None)
@given(st.lists(_records, max_size=4, unique_by=lambda r: r["name"]))
def test_export_then_apply_is_always_no_change(records):
    """Whatever the daemon holds, parsing its export plans no action (the round trip of export then apply)."""
    text, _ = schedules.export(records)
    p = plan(parse(text), records, prune=True)
    assert p.actions == () and sorted(p.unchanged) == sorted(r["name"] for r in records)


def test_export_is_plain_yaml():
    """The export is a YAML document any YAML reader loads (no Python tags)."""
    text, _ = schedules.export([record("a", args={"x": [1, {"y": None}]})])
    assert yaml.safe_load(text) == {"schedules": [{"name": "a", "project": "p", "spider": "s",
                                                   "when": "every 2 hours", "args": {"x": [1, {"y": None}]}}]}


class _Daemon:
    """What apply's steps ask of the client, recorded; schedule_job refuses when told to."""

    def __init__(self, refuse=False):
        self.calls, self.refuse = [], refuse

    def edit_job(self, job_id, **fields):
        self.calls.append(("edit", job_id, fields))

    def cancel_job(self, job_id):
        self.calls.append(("cancel", job_id))

    def pause_job(self, job_id):
        self.calls.append(("pause", job_id))

    def schedule_job(self, **fields):
        from scrapy_do.client.api import ClientError

        self.calls.append(("schedule", fields["name"]))
        if self.refuse:
            raise ClientError("400: refused")
        return "id-new"


def test_a_replace_gives_the_name_up_first_and_cancels_the_old_schedule_last():
    from scrapy_do.client.cli import _carry_out

    (action,) = plan(parse(entry(name="moved", spider="t")), [record("moved")]).actions
    daemon = _Daemon()
    assert _carry_out(daemon, action) == "id-new"
    assert daemon.calls == [("edit", "id-moved", {"name": ""}), ("schedule", "moved"), ("cancel", "id-moved")]


def test_a_refused_replace_leaves_the_old_schedule_as_it_was():
    from scrapy_do.client.api import ClientError
    from scrapy_do.client.cli import _carry_out

    (action,) = plan(parse(entry(name="moved", spider="t")), [record("moved")]).actions
    daemon = _Daemon(refuse=True)
    with pytest.raises(ClientError):
        _carry_out(daemon, action)
    assert daemon.calls == [("edit", "id-moved", {"name": ""}), ("schedule", "moved"),
                            ("edit", "id-moved", {"name": "moved"})]
