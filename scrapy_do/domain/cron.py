"""Five-field cron expressions as scheduling specs: `minute hour day-of-month month day-of-week`.

`parse_cron('*/15 9-17 * * mon-fri')` gives a `CronSpec` whose `next_fire`
keeps `Spec.next_fire`'s contract: the next run strictly after an aware
instant, as an aware UTC instant, computed on the wall clock of a zone.
croniter finds the wall times that match; which instants they stand for is
decided here, so that daylight saving behaves as cron users expect from
Vixie cron and cronie:

* Syntax is Vixie cron's: numbers, `*`, ranges `a-b`, steps `*/n` and
  `a-b/n`, lists `a,b`, month names `jan`-`dec` and weekday names
  `sun`-`sat` (0 and 7 are both Sunday; a weekday range may end on Sunday,
  `fri-sun`). croniter's extensions (`L`, `W`, `#`, `?`, `H`, `@daily`, a
  seconds or year field) and ranges that run backwards (`50-10`) are
  refused, as is `10/5` (Vixie cron reads it as 10, croniter as 10-59/5).
* Day of month and day of week: if both are restricted (neither starts
  with `*`), a day matching either runs (`0 0 1 * mon`: the 1st and every
  Monday); otherwise both must match (Vixie cron's rule).
* A wall time that does not exist (the spring-forward gap, 02:30 on
  2026-03-29 in Europe/Berlin) runs once, at the instant
  `zones.wall_to_instant` gives (moved forward by the size of the gap:
  03:30 CEST); if that instant is also due for another wall time (the
  gap's `02:00` and the real `03:00` of `0 * * * *`), it runs once.
* A wall time that happens twice (fall-back, 02:30 on 2026-10-25 in
  Europe/Berlin) runs once, at its first occurrence (02:30 CEST), when the
  hour field names hours (`30 2 * * *`, `*/10 2 * * *`, `0 9-17 * * *`).
* When the hour field starts with `*` (`*/15 * * * *`, `0 * * * *`,
  `0 */2 * * *`) the job runs in both passes of the repeated hour, as
  cronie does: such a job follows elapsed time, so `*/15 * * * *` stays
  15 minutes apart and `0 * * * *` an hour apart across both changes.

Two differences from cronie, both to keep one run per wall time for jobs
pinned to hours: cronie also runs `*/10 2 * * *` (a `*` minute) in both
passes, and it drops the gap's wall times of `*`-hour jobs (for the usual
one-hour gap those coincide with the runs after it, so only odd cases such
as `0 */2 * * *` differ: it runs at 03:00 CEST here, not at all in cronie).

Runs are whole minutes, strictly increasing from one `next_fire` to the
next. An expression that never runs (`0 0 30 2 *`) is refused at parse
time; croniter gives up after 50 years without a run, so no call loops.
"""

from __future__ import annotations

import datetime
import random
import re
from dataclasses import dataclass, field

from scrapy_do.domain import zones
from scrapy_do.errors import InvalidSpec


__all__ = ["CronSpec", "parse_cron", "looks_like_cron"]

FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_MAXIMA = (59, 23, 31, 12, 7)
_NAMES = (
    {},
    {},
    {},
    {name: number for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), start=1)},
    {name: number for number, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))},
)
_HINT = "write five fields: minute hour day-of-month month day-of-week, e.g. '*/15 9-17 * * mon-fri'"
_SYNTAX_HINT = ("use numbers, names (jan-dec, sun-sat), *, ranges a-b, steps */n or a-b/n and lists a,b; "
                "e.g. '*/15 9-17 * * mon-fri'")
_ITEM = re.compile(r"^(?:\*|(?P<low>[0-9]+|[a-z]+)(?:-(?P<high>[0-9]+|[a-z]+))?)(?:/(?P<step>[0-9]+))?$")
# A minute field (every cron expression starts with one) starts with a digit or `*`
# (or is Jenkins' hashed `H`, refused with its own message).
_CRON_START = re.compile(r"^(?:[0-9*]|h(?:$|[(/]))")
_CRON_WORD = re.compile(r"^[0-9a-z*/,?#-]+$")
# Any wall time is its instant plus an offset the zone uses within this reach of it
# (real offsets lie between -12 and +14 hours; a gap moves a time by at most a day).
_REACH_HOURS = 51
# Walls croniter may hand over in one next_fire: a day and a bit of every-minute
# runs, the most a lookback across a one-day gap needs (one hour in practice).
_MAX_STEPS = 4 * 24 * 60
# Parse-time proof that an expression runs at all (croniter searches 50 years on).
_PROBE = datetime.datetime(2001, 1, 1)


@dataclass(frozen=True)
class _Plan:
    """What next_fire needs, derived from the text once."""

    expression: str  # for croniter: equal ranges collapsed, weekday ranges ending on Sunday as `-7`
    day_or: bool
    hour_wildcard: bool


@dataclass(frozen=True)
class CronSpec:
    """A parsed five-field cron expression; `text` is it in lower case with single spaces."""

    text: str
    _plan: _Plan = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "_plan", _plan(self.text))

    def next_fire(
        self, after: datetime.datetime, zone: datetime.tzinfo = zones.UTC, rng: random.Random | None = None
    ) -> datetime.datetime:
        """Return the next run strictly after the aware instant `after`, as an aware UTC instant.

        The expression matches wall times of `zone`; gaps and repeats are
        resolved as the module docstring says. `rng` is unused (cron has no
        random periods); it is there to match `Spec.next_fire`.
        """
        from croniter import CroniterBadDateError, croniter

        if after.tzinfo is None:
            raise ValueError("next_fire needs an aware instant")
        after = after.astimezone(zones.UTC)
        plan = self._plan
        # A wall time stands for instants wall - offset, with an offset the zone uses near
        # them, and wall times come in order from croniter: start at the earliest wall that
        # could stand for an instant after `after` (a little before its own wall time, when
        # a gap or a repeat is near) and stop once no later wall can beat the best found.
        lowest, _ = _offsets(zone, after, -_REACH_HOURS, _REACH_HOURS)
        try:
            walls = croniter(plan.expression, after.replace(tzinfo=None) + lowest, day_or=plan.day_or)
        except OverflowError:
            raise ValueError(f"cron expression '{self.text}' has no run after {after}") from None
        best = limit = None
        for _ in range(_MAX_STEPS):
            try:
                wall = walls.get_next(datetime.datetime)
            except (CroniterBadDateError, ValueError, OverflowError) as e:
                if best is not None:
                    return best
                raise ValueError(f"cron expression '{self.text}' has no run after {after}: {e}") from None
            if limit is not None and wall >= limit:
                return best
            for moment in _instants(wall, zone, plan.hour_wildcard):
                if moment > after and (best is None or moment < best):
                    best = moment
                    _, highest = _offsets(zone, best, -_REACH_HOURS, 0)
                    limit = best.replace(tzinfo=None) + highest
        # Only walls of the lookback (a day of minutes at most) can stand for instants not after `after`.
        if best is None:
            raise ValueError(f"cron expression '{self.text}' has no run within {_MAX_STEPS} steps after {after}")
        return best


def looks_like_cron(text: str) -> bool:
    """Tell whether `text` is meant as a cron expression rather than an `every ...` spec.

    Five fields that start like a minute field (a digit or `*`), or six or
    seven fields of cron characters (a seconds or year field, refused with
    its own message), or an `@daily`-style alias.
    """
    words = text.lower().split()
    if not words or words[0] == "every":
        return False
    if len(words) == 5:
        return bool(_CRON_START.match(words[0]))
    if len(words) in (6, 7):
        return bool(_CRON_START.match(words[0])) and all(_CRON_WORD.match(word) for word in words)
    return len(words) == 1 and words[0].startswith("@")


def parse_cron(text: str) -> CronSpec:
    """Parse a five-field cron expression; raise InvalidSpec naming what is wrong and how to fix it."""
    if not isinstance(text, str):
        raise InvalidSpec(f"a cron expression must be a string, not {type(text).__name__}: {_HINT}")
    return CronSpec(" ".join(text.lower().split()))


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fail(text: str, problem: str, fix: str = _HINT) -> InvalidSpec:
    """The message quotes a hostile expression (or croniter's reason about it) in part only."""
    return InvalidSpec(f"invalid cron expression '{_clip(text, 80)}': {_clip(problem, 300)}; {fix}")


def _plan(text: str) -> _Plan:
    # On first use: `spec.parse` asks `looks_like_cron` about every spec, cron or not.
    from croniter import CroniterBadDateError, CroniterError, croniter

    words = text.split()
    if not words:
        raise _fail(text, "it is empty")
    if len(words) == 1 and words[0].startswith("@"):
        raise _fail(text, f"aliases such as '{words[0]}' are not supported",
                    "write the five fields instead, e.g. '0 0 * * *' for @daily")
    if len(words) == 6:
        raise _fail(text, "it has 6 fields, and a seconds (or year) field is not supported: "
                          "cron runs at most once a minute")
    if len(words) == 7:
        raise _fail(text, "it has 7 fields, and seconds and year fields are not supported")
    if len(words) != 5:
        raise _fail(text, f"it has {len(words)} field{'s' if len(words) != 1 else ''}, not 5")
    try:
        croniter(text, _PROBE)
        reason = None
    except (CroniterError, ValueError, TypeError) as e:
        reason = str(e)
    # Ours first, where they apply: they say more than croniter (which is quoted too).
    fields = [_field(text, index, word, reason) for index, word in enumerate(words)]
    if reason is not None:
        raise _fail(text, reason)
    expression = " ".join(fields)
    day_or = not (words[2].startswith("*") or words[4].startswith("*"))
    try:
        croniter(expression, _PROBE, day_or=day_or).get_next(datetime.datetime)
    except CroniterBadDateError as e:
        raise _fail(text, f"it never runs (croniter: {e})",
                    "pick days that the months have, e.g. '0 0 28 2 *' rather than '0 0 30 2 *'") from None
    except (CroniterError, ValueError, TypeError) as e:
        raise _fail(text, str(e)) from None
    return _Plan(expression=expression, day_or=day_or, hour_wildcard=words[1].startswith("*"))


def _field(text: str, index: int, word: str, reason: str | None) -> str:
    """One field as croniter should read it, after refusing what Vixie cron would not accept."""
    name = FIELDS[index]

    def fail(problem, fix):
        return _fail(text, problem + ("" if reason is None else f" (croniter: {reason})"), fix)

    items = []
    for item in word.split(","):
        match = _ITEM.match(item)
        if not item:
            raise fail(f"the {name} field '{word}' has an empty list item", _SYNTAX_HINT)
        if match is None:
            raise fail(f"'{item}' in the {name} field is not standard cron syntax "
                       "(extensions such as L, W, #, ? and H are not supported)", _SYNTAX_HINT)
        low, high, step = match["low"], match["high"], match["step"]
        if low is None:  # `*` or `*/n`
            items.append(item)
            continue
        first = _value(index, low)
        last = first if high is None else _value(index, high)
        for value, number in ((low, first), (high, last)):
            if number is None:
                known = ("numbers 0-59", "numbers 0-23", "numbers 1-31", "jan-dec or 1-12", "sun-sat or 0-7")[index]
                extension = value in ("l", "w", "h", "r")
                raise fail(f"'{value}' in the {name} field is "
                           + ("a cron extension that is not supported" if extension else "not a name cron knows"),
                           f"use {known}")
        if high is None:
            if step is not None:
                end = {3: "dec", 4: "sat"}.get(index) if not low.isdigit() else None
                end = end or str(_MAXIMA[index] if index != 4 else 6)
                raise fail(f"'{item}' in the {name} field has a step but no range",
                           f"write '{low}-{end}/{step}' (every {step} from {low} on) or just '{low}'")
            items.append(str(first))
            continue
        if index == 4 and last == 0 and first > 0:
            last = 7  # `fri-sun`: Sunday as the end of a weekday range
        if first > last:
            end, begin = {3: ("dec", "jan"), 4: ("sun", "sun")}.get(index, ("", ""))
            if low.isdigit():
                end = str(_MAXIMA[index])
            if high.isdigit():
                begin = "1" if index in (2, 3) else "0"
            raise fail(f"the range '{low}-{high}' in the {name} field runs backwards",
                       f"write the smaller bound first, or two ranges: '{low}-{end},{begin}-{high}'")
        if first == last:
            items.append(str(first))  # croniter reads `5-5` as the whole cycle
        else:
            items.append(f"{first}-{last}" + (f"/{step}" if step is not None else ""))
    return ",".join(items)


def _value(index: int, value: str) -> int | None:
    """A bound as a number (None for a name the field does not know); croniter checks the range."""
    if value.isdigit():
        digits = value.lstrip("0") or "0"
        return int(digits) if len(digits) < 6 else 10 ** 6  # int() refuses past 4300 digits
    return _NAMES[index].get(value)


def _offsets(zone: datetime.tzinfo, centre: datetime.datetime, start: int, end: int):
    """(lowest, highest) UTC offset `zone` has within [centre + start hours, centre + end hours]."""
    if isinstance(zone, datetime.timezone):
        offset = zone.utcoffset(None)
        return offset, offset
    seen = set()
    for hours in range(start, end + 1):
        try:
            seen.add((centre + datetime.timedelta(hours=hours)).astimezone(zone).utcoffset())
        except (OverflowError, ValueError):
            continue  # past year 1 or 9999
    if not seen:
        raise ValueError(f"{centre} is too close to the limits of datetime for time zone arithmetic")
    return min(seen), max(seen)


def _instants(wall: datetime.datetime, zone: datetime.tzinfo, hour_wildcard: bool):
    """The instants a matching wall time runs at: one, or both passes of a repeat for `*` hours."""
    from dateutil import tz

    local = wall.replace(tzinfo=zone)
    if hour_wildcard and tz.datetime_exists(local) and tz.datetime_ambiguous(local):
        return sorted({tz.enfold(local, fold=0).astimezone(zones.UTC), tz.enfold(local, fold=1).astimezone(zones.UTC)})
    return [zones.wall_to_instant(wall, zone)]
