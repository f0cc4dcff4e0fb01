"""Scheduling specs: parse `every [N] [to M] <unit> [at <time>]` and compute run times.

The grammar is the `schedule` library's fluent API written as words (what the
original Scrapy Do accepted), so `every 5 to 10 minutes` means
`schedule.every(5).to(10).minutes`; every parsed spec is also built with that
API, which stays the reference for what the grammar accepts. `next_fire`
reproduces `schedule.Job._schedule_next_run` as pure arithmetic on an aware
instant and a zone (schedule itself only knows naive local `now()`), so the
daemon, the tests and a UI preview can compute run times without a clock.

A five-field cron expression (`*/15 9-17 * * mon-fri`) is a spec too:
`parse` hands it to `scrapy_do.domain.cron`, whose `CronSpec` has the same
`text` and `next_fire` (see there for its daylight saving rules).
"""

from __future__ import annotations

import datetime
import random
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

from scrapy_do.domain import zones
from scrapy_do.errors import InvalidSpec

if TYPE_CHECKING:
    from scrapy_do.domain.cron import CronSpec


__all__ = ["InvalidSpec", "Spec", "parse", "is_now", "next_fires"]

UNITS = ("seconds", "minutes", "hours", "days", "weeks")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_SINGULAR = {unit[:-1]: unit for unit in UNITS}
_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400, "weeks": 604800}
# Longer periods would only overflow `datetime` arithmetic later, inside the daemon.
_MAX_PERIOD_SECONDS = 36525 * 86400
# Numbers of more digits are longer than that in any unit (and int() refuses past 4300 digits).
_MAX_DIGITS = 100
_UNIT_HELP = "use seconds, minutes, hours, days, weeks or a weekday"
_EXAMPLE = "e.g. 'every 10 minutes', 'every day at 10:30', 'now' or a cron expression such as '*/15 * * * *'"
_NUMBER = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$")
_INTEGER = re.compile(r"^[+-]?[0-9]+$")

# Default source for the random period of `every N to M` specs.
_rng = random.Random()


@dataclass(frozen=True)
class Spec:
    """A parsed spec; the fields mirror `schedule.Job` (interval, latest, unit, start_day, at_time)."""

    text: str
    interval: int
    latest: int | None
    unit: str
    weekday: int | None
    at: tuple[int, int, int] | None

    def next_fire(
        self, after: datetime.datetime, zone: datetime.tzinfo = zones.UTC, rng: random.Random | None = None
    ) -> datetime.datetime:
        """Return the next run strictly after the aware instant `after`, as an aware UTC instant.

        Periods of seconds, minutes and hours are elapsed time: `every 10
        minutes` is 600 s apart whatever the clocks do. Days, weeks and
        weekdays follow the wall clock of `zone`, with `schedule`'s rules
        for `at` (see `zones.wall_to_instant` for DST gaps and repeats).
        """
        if after.tzinfo is None:
            raise ValueError("next_fire needs an aware instant")
        if self.latest is not None:
            interval = (_rng if rng is None else rng).randint(self.interval, self.latest)
        else:
            interval = self.interval
        period = datetime.timedelta(**{self.unit: interval})
        calendar = self.unit in ("days", "weeks") or self.weekday is not None
        if not calendar:
            moment = after.astimezone(zone)
            if self.at is not None:
                _, minute, second = self.at
                fields = {"second": second, "microsecond": 0}
                if self.unit == "hours":
                    fields["minute"] = minute
                moment = moment.replace(**fields)
            moment = moment.astimezone(zones.UTC)
            # schedule adds one period up front unless the interval is 1 ...
            if interval != 1:
                moment += period
            # ... and then as many as it takes to get past `after`.
            while moment <= after:
                moment += period
            return moment

        wall = after.astimezone(zone).replace(tzinfo=None, fold=0)
        if self.weekday is not None:
            wall += datetime.timedelta(days=(self.weekday - wall.weekday()) % 7)
        if self.at is not None:
            hour, minute, second = self.at
            wall = wall.replace(hour=hour, minute=minute, second=second, microsecond=0)
        if interval != 1:
            wall += period
        while zones.wall_to_instant(wall, zone) <= after:
            wall += period
        return zones.wall_to_instant(wall, zone)


def next_fires(
    spec: Union[Spec, "CronSpec"], after: datetime.datetime, count: int, zone: datetime.tzinfo = zones.UTC,
    rng: random.Random | None = None,
) -> list[datetime.datetime]:
    """Return the next `count` runs, each computed from the one before (for previews).

    Works for any spec `parse` returns: a `Spec` or a `CronSpec`.
    """
    fires = []
    moment = after
    for _ in range(count):
        moment = spec.next_fire(moment, zone, rng)
        fires.append(moment)
    return fires


def as_schedule_job(spec: Spec):
    """The same spec built with the `schedule` library's API (never run; it raises what it refuses).

    Only for `every ...` specs: a cron expression (`CronSpec`) has no `schedule` equivalent.
    """
    if not isinstance(spec, Spec):
        raise TypeError(f"as_schedule_job takes an 'every ...' Spec, not {type(spec).__name__}: "
                        "cron expressions have no schedule-library equivalent")
    import schedule

    job = schedule.Scheduler().every(spec.interval)
    if spec.latest is not None:
        job = job.to(spec.latest)
    job = getattr(job, WEEKDAYS[spec.weekday] if spec.weekday is not None else spec.unit)
    if spec.at is not None:
        hour, minute, second = spec.at
        if spec.unit == "days" or spec.weekday is not None:
            job.at(f"{hour:02d}:{minute:02d}:{second:02d}")
        elif spec.unit == "hours":
            job.at(f"{minute:02d}:{second:02d}")
        else:
            job.at(f":{second:02d}")
    return job


def is_now(text: str) -> bool:
    """Tell whether `text` is the special spec `now` (run once, immediately)."""
    return isinstance(text, str) and text.strip().lower() == "now"


def parse(text: str) -> Spec | CronSpec | None:
    """Parse a spec; return None for `now`, raise InvalidSpec naming the bad part otherwise.

    Five fields starting like a minute field (a digit or `*`), and not with
    `every`, are a cron expression: a `CronSpec` (six or seven such fields
    and `@daily`-style aliases are refused by the cron parser, with a
    message saying so). Anything else follows the `every ...` grammar.
    """
    if not isinstance(text, str):
        raise InvalidSpec(f"spec must be a string, not {type(text).__name__}: {_EXAMPLE}")
    if is_now(text):
        return None
    from scrapy_do.domain import cron  # on first use, as schedule: croniter stays unloaded without cron specs

    if cron.looks_like_cron(text):
        return cron.parse_cron(text)
    return _Parser(text).parse()


class _Parser:
    """One pass over the words of a spec, failing on the first word that does not fit."""

    def __init__(self, text: str):
        self.text = " ".join(text.split())
        self.words = self.text.lower().split()
        self.pos = 0

    def fail(self, problem: str, fix: str) -> InvalidSpec:
        return InvalidSpec(f"{problem} in '{self.text}': {fix}")

    def peek(self) -> str | None:
        return self.words[self.pos] if self.pos < len(self.words) else None

    def take(self) -> str | None:
        word = self.peek()
        if word is not None:
            self.pos += 1
        return word

    def number(self, word: str, what: str) -> int | None:
        """Return `word` as a positive int, None if it is no number at all."""
        if not _NUMBER.match(word):
            return None
        if not _INTEGER.match(word):
            raise self.fail(f"{what} '{word}' is not a whole number", "use a positive integer, e.g. 'every 10 minutes'")
        sign, digits = (word[0], word[1:]) if word[0] in "+-" else ("", word)
        digits = digits.lstrip("0")
        # Counted before int(), which raises past 4300 digits; this many is over 100 years in any unit.
        if len(digits) > _MAX_DIGITS:
            raise self.fail(f"{what} of {len(digits)} digits is too long", "the period may be at most 100 years")
        value = int(sign + (digits or "0"))
        if value <= 0:
            raise self.fail(f"{what} '{word}' is not positive", "use a positive integer, e.g. 'every 10 minutes'")
        return value

    def parse(self) -> Spec:
        if not self.words:
            raise InvalidSpec(f"empty spec: {_EXAMPLE}")
        first = self.take()
        if first != "every":
            raise self.fail(f"unknown word '{first}'", f"a spec starts with 'every' or is 'now', {_EXAMPLE}")

        interval, latest = self.interval()
        unit, weekday, unit_word = self.unit(interval, latest)
        at = self.at(unit, weekday, unit_word)

        extra = self.peek()
        if extra == "to" and weekday is not None:
            raise self.fail(
                f"'to' range with weekday '{WEEKDAYS[weekday]}'",
                f"a weekday runs once a week: write 'every {WEEKDAYS[weekday]}'",
            )
        if extra == "to":
            raise self.fail("'to' after the unit", "put the range before it, e.g. 'every 5 to 10 minutes'")
        if extra is not None:
            raise self.fail(f"unexpected word '{extra}'", "nothing may follow the unit or the 'at' time")

        longest = latest or interval
        if longest * _SECONDS[unit] > _MAX_PERIOD_SECONDS:
            raise self.fail(f"interval {longest} {unit} is too long", "the period may be at most 100 years")

        spec = Spec(
            text=self.canonical(interval, latest, unit, weekday, at),
            interval=interval,
            latest=latest,
            unit=unit,
            weekday=weekday,
            at=at,
        )
        import schedule  # on first use: an idle daemon without schedules does not load it

        try:
            as_schedule_job(spec)
        except (schedule.ScheduleError, ValueError, TypeError) as e:
            raise self.fail("the schedule library refuses it", str(e)) from None
        return spec

    def interval(self) -> tuple[int, int | None]:
        interval = 1
        word = self.peek()
        if word is not None:
            value = self.number(word, "interval")
            if value is not None:
                interval = value
                self.take()
        latest = None
        if self.peek() == "to":
            self.take()
            word = self.take()
            if word is None:
                raise self.fail("'to' without a number", "write e.g. 'every 5 to 10 minutes'")
            latest = self.number(word, "'to' bound")
            if latest is None:
                raise self.fail(f"'to' followed by '{word}' instead of a number", "write e.g. 'every 5 to 10 minutes'")
            if latest < interval:
                raise self.fail(
                    f"'to' bound {word} is smaller than the start {interval}",
                    f"use a bound of at least {interval}, e.g. 'every {interval} to {interval * 2} ...'",
                )
        return interval, latest

    def unit(self, interval: int, latest: int | None) -> tuple[str, int | None, str]:
        word = self.take()
        if word is None:
            raise self.fail("missing unit", _UNIT_HELP)
        if word in UNITS:
            return word, None, word
        if word in _SINGULAR:
            if interval != 1 or latest is not None:
                raise self.fail(f"singular unit '{word}' with interval {interval if latest is None else f'{interval} to {latest}'}", f"use '{_SINGULAR[word]}'")
            return _SINGULAR[word], None, word
        day = word[:-1] if word.endswith("s") and word[:-1] in WEEKDAYS else word
        if day in WEEKDAYS:
            if day != word:
                raise self.fail(f"plural weekday '{word}'", f"a weekday runs once a week: write 'every {day}'")
            if interval != 1 or latest is not None:
                raise self.fail(
                    f"weekday '{word}' with an interval or range",
                    f"a weekday runs once a week: write 'every {day}'",
                )
            return "weeks", WEEKDAYS.index(day), word
        if word == "at":
            raise self.fail("missing unit before 'at'", _UNIT_HELP)
        raise self.fail(f"unknown unit '{word}'", _UNIT_HELP)

    def at(self, unit: str, weekday: int | None, unit_word: str) -> tuple[int, int, int] | None:
        if self.peek() != "at":
            return None
        self.take()
        if unit in ("seconds", "weeks") and weekday is None:
            raise self.fail(f"'at' with unit '{unit_word}'", "'at' works with days, hours, minutes and weekdays")
        value = self.take()
        if value is None:
            raise self.fail("'at' without a time", _AT_HELP[unit if weekday is None else "days"])

        if unit == "days" or weekday is not None:
            match = re.match(r"^([0-9]{2}):([0-9]{2})(?::([0-9]{2}))?$", value)
            if match is None:
                raise self.fail(f"invalid time '{value}' for a daily job", _AT_HELP["days"])
            hour, minute, second = int(match[1]), int(match[2]), int(match[3] or 0)
        elif unit == "hours":
            match = re.match(r"^([0-9]{2})?:([0-9]{2})$", value)
            if match is None:
                raise self.fail(f"invalid time '{value}' for an hourly job", _AT_HELP["hours"])
            if match[1] is None:
                hour, minute, second = 0, int(match[2]), 0
            else:
                hour, minute, second = 0, int(match[1]), int(match[2])
        else:
            match = re.match(r"^:([0-9]{2})$", value)
            if match is None:
                raise self.fail(f"invalid time '{value}' for a minutely job", _AT_HELP["minutes"])
            hour, minute, second = 0, 0, int(match[1])

        for name, amount, limit in (("hour", hour, 24), ("minute", minute, 60), ("second", second, 60)):
            if amount >= limit:
                raise self.fail(f"{name} {amount:02d} out of range in time '{value}'", f"{name}s go from 00 to {limit - 1}")
        return hour, minute, second

    @staticmethod
    def canonical(interval, latest, unit, weekday, at) -> str:
        if weekday is not None:
            words = ["every", WEEKDAYS[weekday]]
        elif latest is not None:
            words = ["every", str(interval), "to", str(latest), unit]
        elif interval == 1:
            words = ["every", unit[:-1]]
        else:
            words = ["every", str(interval), unit]
        if at is not None:
            hour, minute, second = at
            if unit == "days" or weekday is not None:
                time = f"{hour:02d}:{minute:02d}" + (f":{second:02d}" if second else "")
            elif unit == "hours":
                time = f"{minute:02d}:{second:02d}" if second else f":{minute:02d}"
            else:
                time = f":{second:02d}"
            words += ["at", time]
        return " ".join(words)


_AT_HELP = {
    "days": "daily and weekday jobs take HH:MM or HH:MM:SS, e.g. 'at 10:30'",
    "hours": "hourly jobs take MM:SS or :MM, e.g. 'at :15'",
    "minutes": "minutely jobs take :SS, e.g. 'at :30'",
}
