"""Schedules as code: a YAML file of named schedules, checked, compared with the daemon's, and written back.

Pure, no I/O: `parse` turns a document into `Desired` schedules, each value
checked with the daemon's own domain parsers and remembered with its line;
`plan` compares them with the daemon's job records and says what `apply`
must do; `export` writes records as a document that `parse` reads back to
the same schedules. cli.py does the talking.

A key left out of an entry means the daemon's default, not "leave as it is":
the file says all there is to say about each of its schedules. Scalars are
read as the text written (`description: yes` is "yes", `name: 1.10` is
"1.10") and handed to the parsers the API uses, so YAML's guesses about
booleans, numbers and dates never change a value.
"""

import dataclasses
import difflib
import json

import yaml

from scrapy_do.domain import spec as specs
from scrapy_do.domain.options import (OPTION_FIELDS, normalise_payload, param_name, parse_args, parse_catch_up,
                                      parse_name, parse_notify, parse_overlap, parse_settings, parse_switch,
                                      parse_timezone)
from scrapy_do.errors import BadRequest

#: The keys of an entry, in the order export writes them.
KEYS = ("name", "project", "spider", "when", "timezone", "description", "payload", "args", "settings", "priority",
        "timeout", "overlap", "catch-up", "fail-on-errors", "notify", "warm", "paused")
REQUIRED = ("name", "project", "spider", "when")
#: What edit-job cannot change: a different value means cancelling the schedule and creating it again.
REPLACED_BY = ("project", "spider", "payload")
#: What a key left out means: the daemon's default.
DEFAULTS = {"timezone": None, "description": "", "payload": {}, "args": {}, "settings": {}, "priority": 0,
            "timeout": None, "overlap": "allow", "catch-up": False, "fail-on-errors": None, "notify": "",
            "warm": True, "paused": False}
_NULL = "tag:yaml.org,2002:null"
_SHAPE = ("a 'schedules' list at the top, one entry per schedule ('- name: nightly' with project, spider and when "
          "below it); 'schedules: []' for none")


class FileError(Exception):
    """The file cannot be applied; `problems` holds (line, message) pairs, `str()` one `file:line: ...` each."""

    def __init__(self, filename, problems):
        self.filename = filename
        self.problems = sorted(problems, key=lambda p: p[0])
        super().__init__("\n".join(f"{filename}:{line}: {message}" for line, message in self.problems))


class _Bad(Exception):
    """A value is wrong; `line` overrides the value's own line (a key inside a mapping)."""

    def __init__(self, message, line=None):
        super().__init__(message)
        self.line = line


@dataclasses.dataclass(frozen=True)
class Desired:
    """One schedule of the file: `values` holds every key but name, defaults filled in; `lines` where each was."""

    name: str
    values: dict
    lines: dict
    line: int

    def line_of(self, key):
        return self.lines.get(key, self.line)


# -- reading values ------------------------------------------------------------

def _kind(node):
    return {yaml.MappingNode: "a mapping", yaml.SequenceNode: "a list"}.get(type(node), "text")


def _text(node):
    if not isinstance(node, yaml.ScalarNode):
        raise _Bad(f"must be text, not {_kind(node)}")
    return node.value


def _nonempty(what):
    def read(node):
        value = _text(node).strip()
        if not value:
            raise _Bad(f"is empty: give the {what}")
        return value
    return read


def _when(node):
    parsed = specs.parse(_text(node))
    if parsed is None:
        raise _Bad("'now' runs once, it is no schedule: give a periodic spec such as 'every day at 02:00' or a "
                   "cron expression (schedule one-off runs with scrapy-do-cl schedule-job)")
    return parsed.text


def _jsonable(node):
    """A mapping node as JSON text, refusing what YAML reads but JSON has not (dates, .nan)."""
    try:
        value = yaml.constructor.SafeConstructor().construct_object(node, deep=True)
    except yaml.YAMLError as e:  # a list as a key, say
        raise _Bad(f"cannot be read: {getattr(e, 'problem', None) or e}", _line(node)) from None
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        raise _Bad("holds a value JSON cannot carry (YAML reads an unquoted 2026-01-01 as a date, .nan as a "
                   "number): quote it, as in since: '2026-01-01'", _line(node)) from None


def _object(parse, example):
    """A JSON object given as a YAML mapping (each key checked on its own line) or as JSON text."""
    def read(node):
        if isinstance(node, yaml.ScalarNode):
            return parse(node.value)
        if not isinstance(node, yaml.MappingNode):
            raise _Bad(f"must be a mapping such as {example}, not {_kind(node)}")
        for key, value in node.value:
            try:
                parse(_jsonable(yaml.MappingNode("tag:yaml.org,2002:map", [(key, value)], key.start_mark)))
            except BadRequest as e:
                raise _Bad(e.msg, key.start_mark.line + 1) from None
        return parse(_jsonable(node))
    return read


def _payload(node):
    text = node.value if isinstance(node, yaml.ScalarNode) else _jsonable(node)
    return json.loads(normalise_payload(text))


def _option(name):
    """The daemon's parser of a run option, as RunOptions declares it."""
    return next(f.metadata["parse"] for f in OPTION_FIELDS if param_name(f) == name)


def _required_name(name):
    if name is None:
        raise BadRequest("name must not be empty: apply knows each schedule by its name")
    return name


def _parsed(parse):
    return lambda node: parse(_text(node))


_READERS = {
    "name": _parsed(lambda text: _required_name(parse_name(text))),
    "project": _nonempty("project's name"),
    "spider": _nonempty("spider's name"),
    "when": _when,
    "timezone": _parsed(parse_timezone),
    "description": _text,
    "payload": _payload,
    "args": _object(parse_args, "{category: books}"),
    "settings": _object(parse_settings, "{DOWNLOAD_DELAY: 2}"),
    "priority": _parsed(_option("priority")),
    "timeout": _parsed(_option("timeout")),
    "overlap": _parsed(parse_overlap),
    "catch-up": _parsed(parse_catch_up),
    "fail-on-errors": _parsed(_option("fail-on-errors")),
    "notify": _parsed(parse_notify),
    "warm": _parsed(_option("warm")),
    "paused": _parsed(lambda text: parse_switch("paused", text)),
}


def _line(node):
    return node.start_mark.line + 1


def _message(key, e):
    """The problem, led by its key: our own messages read on from it ("args must be..."), the domain's are
    quoted after it unless they name it already."""
    message = e.msg if isinstance(e, BadRequest) else str(e)
    if message.startswith(key):
        return message
    return f"{key} {message}" if isinstance(e, _Bad) else f"{key}: {message}"


def _keys_hint(word, known):
    close = difflib.get_close_matches(word, known, n=1)
    return f"did you mean {close[0]!r}? keys: {', '.join(known)}" if close else f"keys: {', '.join(known)}"


def _pairs(node, known, where, problems):
    """A mapping node's (key, key node, value node) triples, unknown and repeated keys reported."""
    seen = {}
    for key_node, value_node in node.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
        line = _line(key_node)
        if key not in known:
            problems.append((line, f"unknown key {str(key)[:40]!r}{where} ({_keys_hint(str(key), known)})"))
        elif key in seen:
            problems.append((line, f"{key!r} is given twice{where} (first at line {seen[key]}): keep one"))
        else:
            seen[key] = line
            yield key, key_node, value_node


# -- parsing a document ----------------------------------------------------------

def parse(text, filename="schedules.yaml"):
    """The schedules of a document, in file order; raise FileError listing every problem with its line."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        hint = ""
        if any("alias" in (text or "") for text in (problem, getattr(e, "context", None))):
            hint = " (a cron spec starting with * must be quoted: when: '*/15 * * * *')"
        raise FileError(filename, [((mark.line + 1) if mark else 1, f"not valid YAML: {problem}{hint}")]) from None
    if root is None:
        raise FileError(filename, [(1, f"the file is empty: it needs {_SHAPE}")])
    if not isinstance(root, yaml.MappingNode):
        raise FileError(filename, [(_line(root), f"the file holds {_kind(root)}; it needs {_SHAPE}")])
    problems = []
    entries = None
    for _, key_node, value in _pairs(root, ("schedules",), " at the top", problems):
        if isinstance(value, yaml.ScalarNode) and value.tag == _NULL:
            # Maybe a file cut short: with --prune it would remove every named schedule.
            problems.append((_line(value), "schedules is empty: list entries under it, or write 'schedules: []' "
                                           "to have none"))
        elif not isinstance(value, yaml.SequenceNode):
            problems.append((_line(value), f"schedules must be a list of entries ('- name: ...'), not {_kind(value)}"))
        else:
            entries = value.value
    if entries is None and not problems:
        problems.append((_line(root), f"no 'schedules' key: the file needs {_SHAPE}"))
    desired, names = [], {}
    for number, node in enumerate(entries or (), 1):
        name, line, entry = _entry(node, number, problems)
        if name in names:
            problems.append((line, f"name {name!r} is given twice (first at line {names[name]}): names are "
                                   "unique"))
        elif name is not None:
            names[name] = line
        if entry is not None and not problems:
            desired.append(entry)
    if problems:
        raise FileError(filename, problems)
    return desired


def _entry(node, number, problems):
    """(its name, the name's line, the Desired schedule or None when the entry has problems)."""
    if not isinstance(node, yaml.MappingNode):
        problems.append((_line(node), f"schedule {number} is {_kind(node)}; each entry is a mapping of keys "
                                      f"({', '.join(REQUIRED)} and more)"))
        return None, None, None
    values, lines, failed = {}, {}, False
    for key, _, value_node in _pairs(node, KEYS, "", problems):
        lines[key] = _line(value_node)
        if isinstance(value_node, yaml.ScalarNode) and value_node.tag == _NULL:
            if key in REQUIRED:
                problems.append((lines[key], f"{key} has no value: give the schedule's {key}"))
                failed = True
            continue  # empty: the default
        try:
            values[key] = _READERS[key](value_node)
        except (_Bad, BadRequest) as e:
            problems.append((getattr(e, "line", None) or lines[key], _message(key, e)))
            failed = True
    missing = [k for k in REQUIRED if k not in lines]
    if missing:
        label = f"schedule {values['name']!r}" if "name" in values else f"schedule {number}"
        problems.append((_line(node), f"{label} has no {', '.join(repr(k) for k in missing)} (required: "
                                      f"{', '.join(REQUIRED)})"))
    name, line = values.pop("name", None), lines.get("name")
    if missing or failed:
        return name, line, None
    return name, line, Desired(name, {**DEFAULTS, **values}, lines, _line(node))


def unknown_targets(desired, spiders):
    """FileError problems for projects and spiders the daemon lacks; `spiders`: project -> its spiders, or None
    for a project the daemon does not have."""
    problems = []
    known = sorted(p for p, s in spiders.items() if s is not None)
    for d in desired:
        project, spider = d.values["project"], d.values["spider"]
        have = spiders.get(project)
        if have is None:
            problems.append((d.line_of("project"), f"the daemon has no project {project!r} (it has: "
                                                   f"{', '.join(known) or 'none'}); push it first"))
        elif spider not in have:
            problems.append((d.line_of("spider"), f"project {project!r} has no spider {spider!r} (its spiders: "
                                                  f"{', '.join(have) or 'none'})"))
    return problems


# -- the daemon's side -----------------------------------------------------------

def _spec_text(text):
    try:
        parsed = specs.parse(text)
    except specs.InvalidSpec:
        return text
    return text if parsed is None else parsed.text


def current(record):
    """A SCHEDULED job record as the file's values (every key but name), defaults where the record has none."""
    def get(key):
        value = record.get(key)
        return DEFAULTS[key] if value is None else value
    payload = record.get("payload") or "{}"
    try:
        payload = json.loads(payload)
    except ValueError:
        pass  # compared as text: always a change
    return {"project": record.get("project"), "spider": record.get("spider"),
            "when": _spec_text(record.get("schedule") or ""),
            **{k: get(k) for k in DEFAULTS if k not in ("payload", "catch-up", "paused")},
            "payload": payload, "catch-up": bool(record.get("catch-up")), "paused": bool(record.get("paused"))}


def _canon(value):
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _show(value):
    if value is None:
        return "default"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False)
        return text if len(text) <= 60 else text[:57] + "..."
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:57] + "...")
    return str(value)


@dataclasses.dataclass(frozen=True)
class Action:
    """What apply does to one named schedule; `changes` holds (key, old, new) for change and replace."""

    kind: str  # create, change, replace, remove
    name: str
    desired: Desired | None = None
    record: dict | None = None
    changes: tuple = ()

    @property
    def identifier(self):
        return self.record["identifier"] if self.record else None

    def describe(self):
        mark = {"create": "+", "change": "~", "replace": "±", "remove": "-"}[self.kind]
        shown = ", ".join(f"{k} {_show(old)} -> {_show(new)}" for k, old, new in self.changes)
        return f"{mark} {self.kind} {self.name}" + (f": {shown}" if shown else "")


@dataclasses.dataclass(frozen=True)
class Plan:
    """The actions in order (file order, then removals by name); names left as they are; unnamed records."""

    actions: tuple
    unchanged: tuple
    kept: tuple      # named schedules the file lacks, left because --prune was not given
    unnamed: tuple

    def counts(self):
        counts = {kind: 0 for kind in ("create", "change", "replace", "remove")}
        for action in self.actions:
            counts[action.kind] += 1
        return {**counts, "unchanged": len(self.unchanged)}

    def summary(self):
        c = self.counts()
        return (f"{c['create']} to create, {c['change']} to change, {c['replace']} to replace, "
                f"{c['remove']} to remove, {c['unchanged']} unchanged")

    def as_json(self):
        return {"actions": [{"action": a.kind, "name": a.name, "identifier": a.identifier,
                             "changes": {k: [old, new] for k, old, new in a.changes}} for a in self.actions],
                "unchanged": list(self.unchanged), "kept": list(self.kept),
                "unnamed": [r["identifier"] for r in self.unnamed], "summary": self.counts()}


def diff(desired, record):
    """(key, old, new) for each value the record has otherwise, in KEYS order."""
    have = current(record)
    return tuple((k, have[k], desired.values[k]) for k in KEYS[1:] if _canon(have[k]) != _canon(desired.values[k]))


def plan(desired, records, prune=False):
    """What makes the daemon's named schedules (SCHEDULED `records`) match `desired`; unnamed ones never change."""
    named = {r["name"]: r for r in records if r.get("name")}
    actions, unchanged = [], []
    for d in desired:
        record = named.pop(d.name, None)
        if record is None:
            actions.append(Action("create", d.name, d))
            continue
        changes = diff(d, record)
        if not changes:
            unchanged.append(d.name)
        elif any(k in REPLACED_BY for k, _, _ in changes):
            actions.append(Action("replace", d.name, d, record, changes))
        else:
            actions.append(Action("change", d.name, d, record, changes))
    left = sorted(named)
    if prune:
        actions += [Action("remove", name, record=named[name]) for name in left]
    return Plan(tuple(actions), tuple(unchanged), () if prune else tuple(left),
                tuple(r for r in records if not r.get("name")))


# -- calls: what the client is asked to do ---------------------------------------

def create_call(desired):
    """Keyword arguments of ScrapyDoClient.schedule_job for a schedule; defaults are not sent."""
    v = desired.values
    return {"project": v["project"], "spider": v["spider"], "when": v["when"], "description": v["description"],
            "payload": json.dumps(v["payload"], ensure_ascii=False), "name": desired.name,
            "args": v["args"] or None, "settings": v["settings"] or None,
            "priority": v["priority"] or None, "timeout": v["timeout"], "timezone": v["timezone"],
            "overlap": None if v["overlap"] == "allow" else v["overlap"], "catch_up": v["catch-up"] or None,
            "fail_on_errors": v["fail-on-errors"], "notify": v["notify"] or None,
            "warm": None if v["warm"] else False}


#: edit-job's keyword per key, and the keys whose default is sent as "" (back to the daemon's default).
_EDIT = {"when": "when", "timezone": "timezone", "description": "description", "args": "args",
         "settings": "settings", "priority": "priority", "timeout": "timeout", "overlap": "overlap",
         "catch-up": "catch_up", "fail-on-errors": "fail_on_errors", "notify": "notify", "warm": "warm"}


def edit_call(action):
    """Keyword arguments of ScrapyDoClient.edit_job for a change: only what changed (an edit recomputes the next
    run); {} when only `paused` changed."""
    out = {}
    for key, _, new in action.changes:
        if key in _EDIT:
            out[_EDIT[key]] = "" if new is None else new
    return out


def pause_call(action):
    """True to pause, False to resume, None when `paused` did not change."""
    return next((new for key, _, new in action.changes if key == "paused"), None)


# -- export ------------------------------------------------------------------------

class _Dumper(yaml.SafeDumper):
    """Lists indented under their key, as people write them."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def entry(record):
    """A named record as a file entry: the required keys, then only what differs from the default."""
    have = current(record)
    out = {"name": record["name"], "project": have["project"], "spider": have["spider"], "when": have["when"]}
    out.update((k, have[k]) for k in KEYS[4:] if _canon(have[k]) != _canon(DEFAULTS[k]))
    return out


def export(records, header=""):
    """(YAML text of the named records, sorted by name; the unnamed records it leaves out)."""
    named = sorted((r for r in records if r.get("name")), key=lambda r: r["name"])
    body = yaml.dump({"schedules": [entry(r) for r in named]}, Dumper=_Dumper, sort_keys=False,
                     allow_unicode=True, default_flow_style=False, width=100)
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    return comment + body, [r for r in records if not r.get("name")]
