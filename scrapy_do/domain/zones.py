"""Instants and time zones.

Inside the daemon an instant is an aware UTC `datetime`. A zone is used for
two things only: computing calendar rules (`at 10:30`, weekdays) and showing
times to people. dateutil does the zone work: it reads the system's tz
database (with a bundled copy as fallback) and answers the two DST questions
that stdlib leaves to us, `datetime_exists` and `datetime_ambiguous`.
"""

import os
from datetime import datetime, timezone

from dateutil import tz

UTC = timezone.utc


def instant(seconds):
    """The aware UTC instant of epoch `seconds` (what an IReactorTime clock says)."""
    return datetime.fromtimestamp(seconds, UTC)


def resolve_zone(name=None, environ=os.environ, localtime="/etc/localtime"):
    """(tzinfo, name) for an IANA zone name, or for the machine's zone when `name` is empty.

    The machine's zone is TZ if set, else /etc/localtime. Raises ValueError
    for a name the tz database does not know.
    """
    name = (name or "").strip() or environ.get("TZ", "").strip().lstrip(":")
    if name:
        zone = tz.gettz(name)
        if zone is None:
            raise ValueError(f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin or UTC")
        return zone, name
    try:
        target = os.path.realpath(localtime)
        zone = tz.tzfile(localtime)
    except OSError:
        return tz.UTC, "UTC"
    marker = "/zoneinfo/"
    shown = target.split(marker, 1)[1] if marker in target else "localtime"
    return zone, shown


def wall_to_instant(wall, zone):
    """The UTC instant of a naive wall-clock time in `zone`.

    A wall time that does not exist (skipped by a spring-forward change)
    moves forward by the size of the gap; one that happens twice (fall-back)
    means its first occurrence.
    """
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
