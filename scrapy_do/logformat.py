"""`log-format = json`: the daemon's log as one JSON object per line, for journald, Loki or any shipper.

Each line has `time` (UTC, ISO 8601 with Z), `level` (debug, info, warn, error, critical), `namespace`,
`message` (the text the `text` format shows) and, for a failure, `traceback`; `fields` holds the values
the message names (`job`, `port`...), so a shipper can filter on them without parsing the text. No event
can break a line: a value JSON cannot hold is written as its repr, a newline stays inside the string.
"""

import json
import math
import string
import sys
from datetime import datetime, timezone

from twisted.logger import FileLogObserver, formatEvent


def _plain(value):
    """`value` if JSON holds it as it is, else its repr (NaN and infinities are not JSON either)."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    try:
        return repr(value)
    except Exception:  # a broken __repr__ must not lose the line
        return f"<unrepresentable {type(value).__name__}>"


def _named_fields(event):
    """The event's values that its format string names ('{job!r}' -> job), as JSON can hold them."""
    fmt = event.get("log_format")
    if not isinstance(fmt, str):
        return {}
    names = set()
    try:
        for _, field, _, _ in string.Formatter().parse(fmt):
            if field:
                names.add(field.split(".", 1)[0].split("[", 1)[0])
    except ValueError:  # a malformed format: formatEvent says so in the message
        return {}
    return {name: _plain(event[name]) for name in sorted(names)
            if name in event and not name.startswith("log_")}


def _time(event):
    stamp = event.get("log_time")
    try:
        when = datetime.fromtimestamp(float(stamp), timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        when = datetime.now(timezone.utc)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _traceback(failure):
    try:
        return failure.getTraceback()
    except Exception:
        return repr(failure)


def event_as_json(event):
    """One log event as a line of JSON (with its newline)."""
    level = event.get("log_level")
    record = {
        "time": _time(event),
        "level": getattr(level, "name", "info"),
        "namespace": str(event.get("log_namespace", "")),
        "message": formatEvent(event),
    }
    if "log_failure" in event:
        record["traceback"] = _traceback(event["log_failure"])
    fields = _named_fields(event)
    if fields:
        record["fields"] = fields
    return json.dumps(record) + "\n"


def jsonLineObserver(out=None):  # noqa: N802 - named as twisted.logger's observer factories are
    """An observer writing `out` (default stdout) one JSON object per line, flushed each time. It is a
    factory twistd takes too: `twistd --logger scrapy_do.logformat.jsonLineObserver -n scrapy-do ...`."""
    return FileLogObserver(sys.stdout if out is None else out, event_as_json)


def observer_for(log_format, out=None):
    """The observer of `[scrapy-do] log-format` ("text" or "json") writing to `out` (default stdout)."""
    if log_format == "json":
        return jsonLineObserver(out)
    from twisted.logger import textFileLogObserver

    return textFileLogObserver(sys.stdout if out is None else out)
