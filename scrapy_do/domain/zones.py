"""Instants and time zones.

Inside the daemon an instant is an aware UTC `datetime`. A zone is used for
two things only: computing calendar rules (`at 10:30`, weekdays) and showing
times to people. Zones are stdlib `zoneinfo` (the system's tz database, or
the `tzdata` package where the system has none); dateutil answers
the two DST questions stdlib leaves to us, `datetime_exists` and
`datetime_ambiguous`. It is imported on first use: a daemon without calendar
schedules never needs it, and its idle memory stays lower.
"""

import os
import re
import zoneinfo
from datetime import datetime, timezone

UTC = timezone.utc


def instant(seconds):
    """The aware UTC instant of epoch `seconds` (what an IReactorTime clock says)."""
    return datetime.fromtimestamp(seconds, UTC)


def resolve_zone(name=None, environ=os.environ, localtime="/etc/localtime"):
    """(tzinfo, name) for an IANA zone name, or for the machine's zone when `name` is empty.

    The machine's zone is TZ if set, else /etc/localtime. Raises ValueError
    for a name the tz database does not know.
    """
    name = (name or "").strip()
    if name:
        return _named(name), name
    name = environ.get("TZ", "").strip().lstrip(":")
    if name:
        return _from_environment(name), name
    try:
        target = os.path.realpath(localtime)
        with open(localtime, "rb") as f:
            zone = zoneinfo.ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError):
        return UTC, "UTC"
    marker = "/zoneinfo/"
    shown = target.split(marker, 1)[1] if marker in target else "localtime"
    return zone, shown


def _from_environment(value):
    """TZ may also hold a tz file path or a POSIX rule such as CET-1CEST,M3.5.0,M10.5.0/3."""
    if value.startswith("/"):
        try:
            with open(value, "rb") as f:
                return zoneinfo.ZoneInfo.from_file(f, key=value)
        except (OSError, ValueError):
            raise ValueError(f"TZ names the file {value!r}, which is not a tz file") from None
    try:
        return _named(value)
    except ValueError:
        from dateutil import tz

        try:
            if not _POSIX_RULE.match(value):
                raise ValueError(value)
            return tz.tzstr(value)
        except ValueError:
            raise ValueError(f"unknown time zone {value!r} in TZ; use an IANA name such as Europe/Berlin, "
                             "or set [scrapy-do] timezone") from None


_POSIX_RULE = re.compile(r"^(<[A-Za-z0-9+-]+>|[A-Za-z]{3,})[+-]?\d{1,2}(:\d\d){0,2}([A-Za-z]{3,}|<[A-Za-z0-9+-]+>)?")
_IANA = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$")


def _named(name):
    zone = None
    if _IANA.match(name):
        try:
            zone = zoneinfo.ZoneInfo(name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            pass
    if zone is None:
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin or UTC")
    return zone


def wall_to_instant(wall, zone):
    """The UTC instant of a naive wall-clock time in `zone`.

    A wall time that does not exist (skipped by a spring-forward change)
    moves forward by the size of the gap; one that happens twice (fall-back)
    means its first occurrence.
    """
    from dateutil import tz

    local = wall.replace(tzinfo=zone)
    if not tz.datetime_exists(local):
        local = tz.resolve_imaginary(local)
    elif tz.datetime_ambiguous(local):
        local = tz.enfold(local, fold=0)
    return local.astimezone(UTC)


def show(moment, zone):
    """How the API shows an instant: the 0.5.0 format in `zone`, plus the UTC offset."""
    return None if moment is None else str(moment.astimezone(zone))


def parse_shown(text):
    """The aware UTC instant of a time `show` wrote (naive text is taken as UTC)."""
    if text is None:
        return None
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
