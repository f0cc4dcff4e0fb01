"""What a run is asked to do: one frozen value built at the API edge.

`RunOptions` travels unchanged from the request to the store, the launcher
and back out in job records. Each field says how the API names, parses and
documents it, so adding an option is adding a field here (and teaching the
launcher what it means), not editing every layer.
"""

import dataclasses
import json
import re
from dataclasses import dataclass, field

from scrapy_do.errors import BadRequest, InvalidPayload

#: Spider arguments, and setting overrides, may each take this much (as JSON text); the API refuses a
#: longer field before (413), this guards other callers.
MAX_ARGUMENTS = 64 << 10
PRIORITY_RANGE = (-1000, 1000)
TIMEOUT_RANGE = (1, 604800)
_SETTING_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_WHOLE = re.compile(r"^[+-]?[0-9]{1,12}$")
#: Settings the daemon sets for every crawl, and why a job may not override them.
OWNED_SETTINGS = {
    "LOG_FILE": "the daemon writes the crawl's log itself, from its output (the job's .err log)",
}


def normalise_payload(text):
    """Validate a payload as a JSON object and return its canonical text."""
    if text is None or str(text).strip() == "":
        return "{}"
    try:
        value = json.loads(text)
    except ValueError as e:
        raise InvalidPayload(f"payload is not valid JSON ({e}); send a JSON object such as {{\"key\": 1}}") from None
    except RecursionError:
        raise InvalidPayload("payload is nested too deeply; flatten it") from None
    if not isinstance(value, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")
        raise InvalidPayload(f"payload must be a JSON object such as {{\"key\": 1}}, not {kind}")
    text = json.dumps(value, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidPayload("payload holds an unpaired surrogate escape (like \\ud800); send valid Unicode") \
            from None
    return text


def _kind(value):
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def _valid_unicode(name, text):
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{name} holds an unpaired surrogate escape (like \\ud800); send valid Unicode") from None


def _json_object(name, text, example):
    if len(text.encode("utf-8", "surrogatepass")) > MAX_ARGUMENTS:
        raise BadRequest(f"{name} is longer than {MAX_ARGUMENTS // 1024} KiB; pass big inputs in a file the spider "
                         "reads, or in its data directory")
    try:
        value = json.loads(text)
    except ValueError as e:
        raise BadRequest(f"{name} is not valid JSON ({e}); send a JSON object such as {example}") from None
    except RecursionError:
        raise BadRequest(f"{name} is nested too deeply; flatten it") from None
    if not isinstance(value, dict):
        raise BadRequest(f"{name} must be a JSON object such as {example}, not {_kind(value)}")
    _valid_unicode(name, json.dumps(value, ensure_ascii=False))
    return value


def parse_args(text):
    """Spider arguments: a JSON object of identifiers; each becomes `-a KEY=VALUE`."""
    value = _json_object("args", text, '{"category": "books"}')
    for key in value:
        if key == "payload":
            raise BadRequest("args may not hold 'payload': that is the job's own argument; send it in the "
                             "payload field")
        if not key.isidentifier():
            raise BadRequest(f"args: {key!r} is not a spider argument name; use Python identifiers such as "
                             "category or max_pages")
    return value


def parse_settings(text):
    """Scrapy setting overrides: a JSON object of setting names; each becomes `-s NAME=VALUE`."""
    value = _json_object("settings", text, '{"DOWNLOAD_DELAY": 2}')
    for name in value:
        if not _SETTING_NAME.match(name):
            raise BadRequest(f"settings: {name!r} is not a Scrapy setting name; names are upper case, such as "
                             "DOWNLOAD_DELAY or CLOSESPIDER_ITEMCOUNT")
        if name in OWNED_SETTINGS:
            raise BadRequest(f"settings may not override {name}: {OWNED_SETTINGS[name]}")
    return value


def _whole(name, low, high, unit=""):
    def parse(text):
        text = text.strip()
        value = int(text) if _WHOLE.match(text) else None
        if value is None or not low <= value <= high:
            raise BadRequest(f"{name} must be a whole number from {low} to {high}{unit}, not {text[:40]!r}")
        return value
    return parse


def command_value(value):
    """A `-a`/`-s` value on Scrapy's command line: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _text(value):
    return value


def parse_notify(text):
    """A run's `notify` URL: who hears when it ends (empty: nobody)."""
    from scrapy_do.domain.urls import url_problem

    text = text.strip()
    if not text:
        return ""
    problem = url_problem(text)
    if problem:
        raise BadRequest(f"notify must be an http:// or https:// URL that hears when the run ends, such as "
                         f"https://hooks.example.com/scrapy-do; {text[:60]!r} {problem}")
    return text


def option(default=dataclasses.MISSING, *, help, parse=_text, schema=None, record=None, column=False, cli=None,
           factory=dataclasses.MISSING, param=None):
    """A RunOptions field: its API parameter (`param`, default the field name), parser, JSON schema and help.

    `schema` is the request parameter's (text in a form), `record` the value's
    in a job record when that differs (an object, a number). `column` options
    are stored in their own column (they are filtered or sorted on); the
    others share one JSON column. `cli` is the client's flag default.
    """
    schema = schema or {"type": "string"}
    meta = {"help": help, "parse": parse, "schema": schema, "record": record or schema, "column": column,
            "cli": cli, "param": param}
    if factory is not dataclasses.MISSING:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class RunOptions:
    spider: str = option(help="spider name", column=True)
    description: str = option("", help="a short description", cli="")
    payload: str = option("{}", help="a JSON object passed to the spider as -a payload=...",
                          parse=normalise_payload, schema={"type": "string", "description": "a JSON object, as text"},
                          cli="{}")
    args: dict = option(factory=dict, parse=parse_args,
                        help="spider arguments, a JSON object: each KEY is passed as -a KEY=VALUE",
                        schema={"type": "string", "description": 'a JSON object, as text, e.g. {"category": "books"}'},
                        record={"type": "object"})
    settings: dict = option(factory=dict, parse=parse_settings,
                            help="Scrapy setting overrides, a JSON object: each NAME is passed as -s NAME=VALUE",
                            schema={"type": "string", "description": 'a JSON object, as text, e.g. {"DOWNLOAD_DELAY": 2}'},
                            record={"type": "object"})
    priority: int = option(0, parse=_whole("priority", *PRIORITY_RANGE), column=True,
                           help="-1000 to 1000; pending jobs start highest priority first, then oldest first",
                           schema={"type": "string", "description": "a whole number from -1000 to 1000"},
                           record={"type": "integer"})
    timeout: int | None = option(None, parse=_whole("timeout", *TIMEOUT_RANGE, " seconds"),
                                 help="a hard time limit in seconds (1 to 604800): then SIGTERM, SIGKILL after "
                                      "cancel-grace, and the job FAILED with reason timeout",
                                 schema={"type": "string", "description": "whole seconds, 1 to 604800"},
                                 record={"type": ["integer", "null"]})
    fail_on_errors: bool | None = option(None, param="fail-on-errors", parse=lambda text: _optional_switch(
                                             "fail-on-errors", text),
                                         help="on or off: a crawl that exits 0 but raised in callbacks or logged "
                                              "errors ends FAILED with reason errors (default: [scrapy-do] "
                                              "fail-on-errors)",
                                         schema={"type": "string", "enum": ["on", "off"]},
                                         record={"type": ["boolean", "null"],
                                                 "description": "null: the daemon's fail-on-errors"})
    notify: str = option("", parse=parse_notify,
                         help="an http:// or https:// URL that gets a signed POST of the job record when the run "
                              "ends (each run, for a periodic job); empty: none",
                         schema={"type": "string", "description": "an http:// or https:// URL, or empty"})
    warm: bool = option(True, parse=lambda text: parse_switch("warm", text),
                        help="on (default) or off: off starts this job's runs cold, in a fresh interpreter as "
                             "`scrapy crawl` from a shell, instead of forked in milliseconds from the daemon's warm "
                             "parent process (which already imported Scrapy and the project); for spiders that "
                             "start threads or open connections at import time, change global state later runs "
                             "must not inherit, or rely on per-process imports. With [scrapy-do] warm-start = off "
                             "every run starts cold",
                        schema={"type": "string", "enum": ["on", "off"]},
                        record={"type": "boolean"})

    @classmethod
    def from_params(cls, get):
        """Build the options from `get(name) -> str | None` (a request's parameters)."""
        values = {}
        for f in dataclasses.fields(cls):
            raw = get(param_name(f))
            if raw is None:
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    raise BadRequest(f"missing parameter {f.name!r}: {f.metadata['help']}")
                continue
            values[f.name] = f.metadata["parse"](raw)
        return cls(**values)

    @classmethod
    def parse_given(cls, get, names):
        """The fields among `names` that `get(name)` gives, parsed: {name: value} (for edits).

        An empty `timeout` or `fail-on-errors` puts the field back to its default (the daemon's setting applies).
        """
        fields = {f.name: f for f in dataclasses.fields(cls)}
        out = {}
        for name in names:
            raw = get(param_name(fields[name]))
            if raw is None:
                continue
            if name in ("timeout", "fail_on_errors") and not raw.strip():
                out[name] = None
                continue
            out[name] = fields[name].metadata["parse"](raw)
        return out

    def stored(self):
        """The options kept in the shared JSON column, as text (defaults left out)."""
        return json.dumps({f.name: getattr(self, f.name) for f in OPTION_FIELDS
                           if not f.metadata["column"] and (f.name in _ALWAYS_STORED or getattr(self, f.name) !=
                                                            _default(f))},
                          ensure_ascii=False)

    @classmethod
    def from_stored(cls, text, **columns):
        """Options from their JSON column plus their own columns; unknown keys (a newer daemon's) are kept out."""
        data = json.loads(text or "{}")
        known = {f.name for f in OPTION_FIELDS}
        return cls(**{k: v for k, v in data.items() if k in known}, **columns)


def param_name(f):
    """The API's name of an option field."""
    return f.metadata.get("param") or f.name


def _optional_switch(name, text):
    return parse_switch(name, text) if text.strip() else None


def _default(f):
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


OPTION_FIELDS = tuple(dataclasses.fields(RunOptions))
#: What edit-job may change of a job's options (not its spider or payload: those make another job).
EDITABLE_OPTIONS = ("description", "args", "settings", "priority", "timeout", "fail_on_errors", "notify", "warm")
#: What databases of earlier versions always hold, whatever its value.
_ALWAYS_STORED = {"description", "payload"}
#: The options' defaults, by name (what a record shows for an option its stored JSON leaves out).
OPTION_DEFAULTS = {f.name: _default(f) for f in OPTION_FIELDS if f.default is not dataclasses.MISSING
                   or f.default_factory is not dataclasses.MISSING}


# -- how a schedule runs (not options of its runs) ---------------------------

OVERLAP_CHOICES = ("allow", "skip")
_SWITCH = {"on": True, "off": False, "true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}


def parse_timezone(text):
    from scrapy_do.domain import zones

    name = text.strip()
    if not name:
        return None
    try:
        zones.resolve_zone(name)
    except ValueError:
        raise BadRequest(f"timezone {name[:60]!r} is not a time zone this server knows; use an IANA name such "
                         "as Europe/Berlin, America/New_York or UTC") from None
    return name


def parse_overlap(text):
    value = text.strip().lower()
    if value not in OVERLAP_CHOICES:
        raise BadRequest(f"overlap must be allow or skip, not {text[:40]!r}")
    return value


def parse_switch(name, text):
    value = _SWITCH.get(text.strip().lower())
    if value is None:
        raise BadRequest(f"{name} must be on or off, not {text[:40]!r}")
    return value


def parse_catch_up(text):
    return parse_switch("catch-up", text)


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def parse_name(text):
    """A schedule's name: what `scrapy-do-cl apply` knows it by (unique among SCHEDULED schedules); empty: none
    (edit-job with an empty name takes a schedule out of apply's hands)."""
    name = text.strip()
    if not name:
        return None
    if not _NAME.match(name):
        raise BadRequest(f"name must be 1 to 100 letters, digits, '.', '_' or '-', starting with a letter or a "
                         f"digit, such as nightly-books; not {name[:60]!r}")
    return name


#: Request parameter -> (Schedule attribute, parser, help) for what a schedule does besides its runs' options.
SCHEDULE_PARAMS = {
    "timezone": ("timezone", parse_timezone, "the IANA zone in which 'at HH:MM' specs and cron expressions are "
                                             "read (default: [scrapy-do] timezone)"),
    "overlap": ("overlap", parse_overlap, "allow (default) or skip: skip a due run while the previous run of "
                                          "the schedule is still PENDING or RUNNING"),
    "catch-up": ("catch_up", parse_catch_up, "off (default) or on: a run missed while the daemon was down "
                                             "starts once at start-up"),
    "name": ("name", parse_name, "a unique name for the schedule (letters, digits, '.', '_', '-'; at most 100), "
                                 "by which `scrapy-do-cl apply` manages it; empty: none"),
}


def schedule_settings(get):
    """The schedule parameters a request gives, as Schedule attributes: {attr: value}."""
    out = {}
    for param, (attr, parse, _) in SCHEDULE_PARAMS.items():
        raw = get(param)
        if raw is not None:
            out[attr] = parse(raw)
    return out
