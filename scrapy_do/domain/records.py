"""The fields of a job record, declared once.

A job record is how the API shows a run or a schedule (0.5.0 called both
"jobs"). The store builds its JSON listings, the OpenAPI document its job
schema and the client its table columns from `JOB_FIELDS`; option fields come
from `RunOptions` itself.
"""

from dataclasses import dataclass

from scrapy_do.domain import zones
from scrapy_do.domain.options import OPTION_FIELDS, param_name

_TEXT = {"type": "string"}
_INSTANT = {"type": ["string", "null"],
            "description": "a time in the daemon's zone with its UTC offset, e.g. 2026-11-23 10:00:00.5+01:00"}
_INT = {"type": ["integer", "null"]}


@dataclass(frozen=True)
class RecordField:
    key: str                 # the API's name
    attr: str                # attribute of Run / Schedule (or of their options)
    kind: str                # text, enum, instant, int
    schema: dict
    contract: bool = False   # one of the 0.5.0 contract's keys (always present)
    table: int | None = None  # position among the client's default job columns
    option: bool = False

    def value(self, record, zone):
        value = getattr(record.options if self.option else record, self.attr, None)
        if self.kind == "enum":
            return value.value
        if self.kind == "instant":
            return zones.show(value, zone)
        return value


def _options():
    table = {"spider": 3, "description": 6, "payload": 10}
    return [RecordField(param_name(f), f.name, "text", f.metadata["record"], contract=f.name in table,
                        table=table.get(f.name), option=True) for f in OPTION_FIELDS]


_DECLARED = (
    RecordField("identifier", "identifier", "text", {"type": "string", "format": "uuid"}, True, 1),
    RecordField("status", "status", "enum", {"type": "string", "enum": [
        "SCHEDULED", "PENDING", "RUNNING", "SUCCESSFUL", "FAILED", "CANCELED"]}, True, 4),
    RecordField("actor", "actor", "enum", {"type": "string", "enum": ["USER", "SCHEDULER"]}, True, 7),
    RecordField("schedule", "schedule", "text",
                {"type": "string", "description": "'now' for a run, the spec for a schedule"}, True, 5),
    RecordField("project", "project", "text", _TEXT, True, 2),
    *_options(),
    RecordField("timestamp", "timestamp", "instant", _INSTANT, True, 8),
    RecordField("duration", "duration", "int",
                {"type": ["integer", "null"], "description": "elapsed seconds of a finished run"}, True, 9),
    RecordField("started", "started", "instant", _INSTANT),
    RecordField("finished", "finished", "instant", _INSTANT),
    RecordField("exit-code", "exit_code", "int", _INT),
    RecordField("reason", "reason", "text",
                {"type": ["string", "null"], "description": "why a run ended as it did: timeout, canceled, "
                                                            "exit code N, signal N, failed to start; null when "
                                                            "it succeeded"}),
    RecordField("stats", "stats", "json",
                {"type": ["object", "null"], "description": "while RUNNING: items, requests, responses, errors, "
                 "items-per-minute, pages-per-minute, elapsed (refreshed every 2 s); at the end Scrapy's final "
                 "stats plus finish-reason"}),
    RecordField("errors", "errors", "int",
                {"type": ["integer", "null"], "description": "errors the crawl logged plus exceptions its callbacks "
                 "raised (live while RUNNING); a SUCCESSFUL run with errors succeeded with errors"}),
    RecordField("parent", "parent", "text",
                {"type": ["string", "null"], "description": "the schedule that made this run"}),
    RecordField("next-run", "next_run", "instant",
                {**_INSTANT, "description": "a schedule's next due time (null for runs and paused schedules)"}),
    RecordField("timezone", "timezone", "text",
                {"type": ["string", "null"], "description": "a schedule's zone for calendar rules and cron; "
                                                            "null: the daemon's"}),
    RecordField("overlap", "overlap", "text", {"type": ["string", "null"], "enum": ["allow", "skip", None]}),
    RecordField("catch-up", "catch_up", "bool", {"type": ["boolean", "null"]}),
    RecordField("paused", "paused", "bool", {"type": ["boolean", "null"]}),
    RecordField("name", "name", "text",
                {"type": ["string", "null"], "description": "a schedule's unique name (null: unnamed, and for runs)"}),
    RecordField("skipped", "skipped", "int",
                {"type": ["integer", "null"], "description": "due runs a schedule skipped for overlap"}),
)

# The 0.5.0 contract's keys come first, in its order; the rest follow as declared.
_CONTRACT_ORDER = ("identifier", "status", "actor", "schedule", "project", "spider", "description", "timestamp",
                   "duration", "payload")
JOB_FIELDS = tuple(sorted(_DECLARED, key=lambda f: _CONTRACT_ORDER.index(f.key) if f.key in _CONTRACT_ORDER
                          else len(_CONTRACT_ORDER) + _DECLARED.index(f)))

#: The client's default job table, in 0.5.0's column order.
TABLE_COLUMNS = [f.key for f in sorted((f for f in JOB_FIELDS if f.table), key=lambda f: f.table)]


def to_record(job, zone=zones.UTC):
    """The API's dict for a Run or a Schedule."""
    return {f.key: f.value(job, zone) for f in JOB_FIELDS}
