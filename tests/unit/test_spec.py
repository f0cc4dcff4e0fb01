"""Unit tests for scrapy_do.domain.spec: the `every ...` grammar and next-run arithmetic."""

import datetime
import random
import types

import pytest

from scrapy_do.domain.spec import InvalidSpec, Spec, is_now, next_fires, parse

UTC = datetime.timezone.utc


def DT(*args):
    """An aware UTC instant (in UTC, schedule's naive arithmetic and ours agree)."""
    return datetime.datetime(*args, tzinfo=UTC)


TD = datetime.timedelta
MONDAY = DT(2026, 11, 23, 10, 7, 0)  # 2026-11-23 is a Monday


# --------------------------------------------------------------------------- parsing

VALID = [
    # text, interval, latest, unit, weekday, at, normalised text
    ("every 10 minutes", 10, None, "minutes", None, None, "every 10 minutes"),
    ("every minute", 1, None, "minutes", None, None, "every minute"),
    ("every second", 1, None, "seconds", None, None, "every second"),
    ("every 10 seconds", 10, None, "seconds", None, None, "every 10 seconds"),
    ("every 5 to 15 minutes", 5, 15, "minutes", None, None, "every 5 to 15 minutes"),
    ("every 2 to 3 hours", 2, 3, "hours", None, None, "every 2 to 3 hours"),
    ("every 5 to 5 seconds", 5, 5, "seconds", None, None, "every 5 to 5 seconds"),
    ("every monday at 12:30", 1, None, "weeks", 0, (12, 30, 0), "every monday at 12:30"),
    ("every wednesday", 1, None, "weeks", 2, None, "every wednesday"),
    ("every sunday at 23:59:59", 1, None, "weeks", 6, (23, 59, 59), "every sunday at 23:59:59"),
    ("every hour at 00:15", 1, None, "hours", None, (0, 0, 15), "every hour at 00:15"),
    ("every hour at :15", 1, None, "hours", None, (0, 15, 0), "every hour at :15"),
    ("every 2 hours at 30:00", 2, None, "hours", None, (0, 30, 0), "every 2 hours at :30"),
    ("every day at 10:30", 1, None, "days", None, (10, 30, 0), "every day at 10:30"),
    ("every day at 10:30:15", 1, None, "days", None, (10, 30, 15), "every day at 10:30:15"),
    ("every day at 00:00", 1, None, "days", None, (0, 0, 0), "every day at 00:00"),
    ("every 3 days at 08:00", 3, None, "days", None, (8, 0, 0), "every 3 days at 08:00"),
    ("every week", 1, None, "weeks", None, None, "every week"),
    ("every 2 weeks", 2, None, "weeks", None, None, "every 2 weeks"),
    ("every minute at :30", 1, None, "minutes", None, (0, 0, 30), "every minute at :30"),
    ("every 1 minutes", 1, None, "minutes", None, None, "every minute"),
    ("every 1 monday", 1, None, "weeks", 0, None, "every monday"),
    ("  EVERY   10\tMinutes ", 10, None, "minutes", None, None, "every 10 minutes"),
    ("Every Friday At 07:05", 1, None, "weeks", 4, (7, 5, 0), "every friday at 07:05"),
]


@pytest.mark.parametrize("text,interval,latest,unit,weekday,at,normalised", VALID)
def test_parse_valid(text, interval, latest, unit, weekday, at, normalised):
    """A valid spec parses into the fields schedule would hold for the same fluent calls."""
    assert parse(text) == Spec(
        text=normalised, interval=interval, latest=latest, unit=unit, weekday=weekday, at=at
    )


@pytest.mark.parametrize("text", [row[0] for row in VALID])
def test_normalised_text_round_trips(text):
    """Parsing a spec's normalised text gives back the same spec."""
    spec = parse(text)
    assert parse(spec.text) == spec


@pytest.mark.parametrize("text", ["now", "NOW", "  Now \n"])
def test_now(text):
    """`now` in any case and spacing is the immediate spec: parse returns None."""
    assert is_now(text)
    assert parse(text) is None


@pytest.mark.parametrize("text", ["every minute", "now please", "", "nowadays", None])
def test_is_now_rejects_other_text(text):
    """Only the word `now` itself counts as the immediate spec."""
    assert not is_now(text)


INVALID = [
    # text, a word the message must mention
    ("every", "unit"),
    ("every 10", "unit"),
    ("every 0 minutes", "'0'"),
    ("every -1 minutes", "'-1'"),
    ("every 1.5 hours", "'1.5'"),
    ("every 5 to 3 minutes", "3"),
    ("every 5 to", "'to'"),
    ("every 5 to x minutes", "'x'"),
    ("every 5 to 0 minutes", "'0'"),
    ("every 2 minute", "minutes"),
    ("every 2 second", "seconds"),
    ("every 2 hour", "hours"),
    ("every 3 day", "days"),
    ("every 2 week", "weeks"),
    ("every 1 to 3 minute", "minutes"),
    ("every 2 mondays", "mondays"),
    ("every mondays", "mondays"),
    ("every 2 monday", "monday"),
    ("every 2 to 3 tuesday", "tuesday"),
    ("every monday to 3", "'to'"),
    ("every 10 minutes to 20", "'to'"),
    ("every day at 25:00", "25:00"),
    ("every day at 12:61", "12:61"),
    ("every day at 12:30:60", "12:30:60"),
    ("every day at noon", "noon"),
    ("every day at 9:30", "9:30"),
    ("every monday at :30", ":30"),
    ("every hour at 10:30:00", "10:30:00"),
    ("every hour at :60", ":60"),
    ("every minute at 12:30", "12:30"),
    ("every 10 seconds at :10", "seconds"),
    ("every week at 10:00", "week"),
    ("every 10 minutes at", "'at'"),
    ("every at 10:30", "'at'"),
    ("every 10 minutes please", "please"),
    ("every day at 10:30 sharp", "sharp"),
    ("every 10 fortnights", "fortnights"),
    ("every 10 ３", "３"),
    ("hourly", "hourly"),
    ("run every 10 minutes", "run"),
    ("", "empty"),
    ("   ", "empty"),
    ("every 5219 weeks", "5219"),
]


@pytest.mark.parametrize("text,word", INVALID)
def test_parse_invalid(text, word):
    """An invalid spec raises InvalidSpec whose message names the offending part."""
    with pytest.raises(InvalidSpec) as caught:
        parse(text)
    assert word in str(caught.value)


def test_invalid_spec_message_says_how_to_fix():
    """The message for an unknown unit lists the units that would work."""
    with pytest.raises(InvalidSpec, match="unknown unit 'fortnights' in 'every 2 fortnights': use seconds"):
        parse("every 2 fortnights")


def test_invalid_spec_is_a_value_error():
    """Callers that only know ValueError still catch a bad spec."""
    with pytest.raises(ValueError):
        parse("every 0 minutes")


def test_parse_rejects_non_strings():
    """A spec that is not a string (e.g. a JSON number) is an InvalidSpec, not a crash."""
    with pytest.raises(InvalidSpec, match="string"):
        parse(10)


# --------------------------------------------------------------------------- next_fire

NEXT_FIRE = [
    # spec, after, expected
    ("every 10 minutes", MONDAY, DT(2026, 11, 23, 10, 17)),
    ("every minute", MONDAY, DT(2026, 11, 23, 10, 8)),
    ("every 10 seconds", MONDAY, DT(2026, 11, 23, 10, 7, 10)),
    ("every day at 10:30", MONDAY, DT(2026, 11, 23, 10, 30)),
    ("every day at 10:30", DT(2026, 11, 23, 10, 31), DT(2026, 11, 24, 10, 30)),
    ("every day at 10:30", DT(2026, 11, 23, 10, 30), DT(2026, 11, 24, 10, 30)),
    ("every day at 10:30:15", DT(2026, 11, 23, 10, 30), DT(2026, 11, 23, 10, 30, 15)),
    ("every day at 00:00", DT(2026, 12, 31, 23, 59, 59), DT(2027, 1, 1)),
    ("every monday at 12:30", MONDAY, DT(2026, 11, 23, 12, 30)),
    ("every monday at 12:30", DT(2026, 11, 23, 13, 0), DT(2026, 11, 30, 12, 30)),
    ("every sunday at 08:00", MONDAY, DT(2026, 11, 29, 8, 0)),
    ("every wednesday", MONDAY, DT(2026, 11, 25, 10, 7)),
    ("every monday", MONDAY, DT(2026, 11, 30, 10, 7)),
    ("every hour at :15", MONDAY, DT(2026, 11, 23, 10, 15)),
    ("every hour at :15", DT(2026, 11, 23, 10, 20), DT(2026, 11, 23, 11, 15)),
    ("every hour at 00:15", MONDAY, DT(2026, 11, 23, 11, 0, 15)),
    ("every minute at :30", MONDAY, DT(2026, 11, 23, 10, 7, 30)),
    ("every minute at :30", DT(2026, 11, 23, 10, 7, 45), DT(2026, 11, 23, 10, 8, 30)),
    ("every week", MONDAY, DT(2026, 11, 30, 10, 7)),
    ("every 2 weeks", MONDAY, DT(2026, 12, 7, 10, 7)),
    # schedule adds one period up front whenever the interval is not 1, even
    # when the aligned time is still ahead today: 08:00 three days on, not today.
    ("every 3 days at 08:00", DT(2026, 11, 23, 7, 0), DT(2026, 11, 26, 8, 0)),
    ("every 3 days at 08:00", MONDAY, DT(2026, 11, 26, 8, 0)),
    ("every 2 hours at :15", MONDAY, DT(2026, 11, 23, 12, 15)),
]


@pytest.mark.parametrize("text,after,expected", NEXT_FIRE)
def test_next_fire(text, after, expected):
    """next_fire lands where schedule would put the next run of a job last run at `after`."""
    assert parse(text).next_fire(after) == expected


def test_next_fire_is_strictly_after():
    """For every spec the next run is later than the given instant."""
    for text, *_ in VALID:
        spec = parse(text)
        for after in (MONDAY, DT(2026, 11, 29, 23, 59, 59, 999999), DT(2026, 11, 25, 0, 0)):
            assert spec.next_fire(after, rng=random.Random(1)) > after


def test_next_fire_keeps_microseconds_without_at():
    """Without `at` the period is added to the exact instant, as schedule does."""
    after = MONDAY.replace(microsecond=250000)
    assert parse("every 10 seconds").next_fire(after) == after + TD(seconds=10)


def test_next_fire_drops_microseconds_with_at():
    """With `at` the run is on the whole second."""
    after = MONDAY.replace(microsecond=250000)
    assert parse("every minute at :30").next_fire(after) == DT(2026, 11, 23, 10, 7, 30)


def test_random_interval_within_bounds():
    """`every 2 to 3 hours` fires between 2 and 3 whole hours later."""
    spec = parse("every 2 to 3 hours")
    rng = random.Random(42)
    seen = {spec.next_fire(MONDAY, rng=rng) - MONDAY for _ in range(50)}
    assert seen == {TD(hours=2), TD(hours=3)}


def test_random_interval_is_deterministic_given_rng():
    """The same seed gives the same run times."""
    spec = parse("every 5 to 15 minutes")
    first = next_fires(spec, MONDAY, 10, rng=random.Random(7))
    second = next_fires(spec, MONDAY, 10, rng=random.Random(7))
    assert first == second
    gaps = [b - a for a, b in zip([MONDAY] + first, first)]
    assert all(TD(minutes=5) <= gap <= TD(minutes=15) for gap in gaps)


def test_random_interval_uses_default_rng():
    """Without an rng the module's own generator supplies the period."""
    fire = parse("every 1 to 2 days").next_fire(MONDAY)
    assert fire - MONDAY in (TD(days=1), TD(days=2))


def test_next_fires_sequence():
    """next_fires chains next_fire, each run computed from the previous one."""
    t0 = MONDAY
    assert next_fires(parse("every 13 seconds"), t0, 3) == [
        t0 + TD(seconds=13),
        t0 + TD(seconds=26),
        t0 + TD(seconds=39),
    ]


def test_next_fires_daily_and_weekly():
    """Daily and weekday previews step one day or one week at a time."""
    assert next_fires(parse("every day at 10:30"), MONDAY, 3) == [
        DT(2026, 11, 23, 10, 30),
        DT(2026, 11, 24, 10, 30),
        DT(2026, 11, 25, 10, 30),
    ]
    assert next_fires(parse("every friday at 18:00"), MONDAY, 2) == [
        DT(2026, 11, 27, 18, 0),
        DT(2026, 12, 4, 18, 0),
    ]


def test_next_fires_zero_count():
    """Asking for no runs gives an empty list."""
    assert next_fires(parse("every minute"), MONDAY, 0) == []


# --------------------------------------------------------------------------- cross-check

schedule = pytest.importorskip("schedule")


def _frozen_clock(monkeypatch):
    """Make schedule's `datetime.datetime.now()` return a settable instant."""
    clock = types.SimpleNamespace(now=None)

    class FrozenDateTime(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return clock.now

    fake = types.SimpleNamespace(
        datetime=FrozenDateTime, timedelta=datetime.timedelta, time=datetime.time, date=datetime.date
    )
    monkeypatch.setattr(schedule, "datetime", fake)
    return clock


CROSS_CHECK = [
    ("every 10 minutes", lambda s: s.every(10).minutes),
    ("every minute", lambda s: s.every().minute),
    ("every 13 seconds", lambda s: s.every(13).seconds),
    ("every 5 to 15 minutes", lambda s: s.every(5).to(15).minutes),
    ("every 1 to 3 hours", lambda s: s.every(1).to(3).hours),
    ("every monday at 12:30", lambda s: s.every().monday.at("12:30")),
    ("every wednesday", lambda s: s.every().wednesday),
    ("every sunday at 00:00:30", lambda s: s.every().sunday.at("00:00:30")),
    ("every hour at 00:15", lambda s: s.every().hour.at("00:15")),
    ("every hour at :15", lambda s: s.every().hour.at(":15")),
    ("every 2 hours at :45", lambda s: s.every(2).hours.at(":45")),
    ("every day at 10:30", lambda s: s.every().day.at("10:30")),
    ("every day at 10:30:15", lambda s: s.every().day.at("10:30:15")),
    ("every 3 days at 08:00", lambda s: s.every(3).days.at("08:00")),
    ("every 2 to 4 days at 23:00", lambda s: s.every(2).to(4).days.at("23:00")),
    ("every week", lambda s: s.every().week),
    ("every 2 weeks", lambda s: s.every(2).weeks),
    ("every minute at :30", lambda s: s.every().minute.at(":30")),
]

STARTS = [
    MONDAY,
    DT(2026, 11, 23, 7, 0, 0),
    DT(2026, 11, 23, 12, 30, 0),
    DT(2026, 11, 25, 23, 59, 59, 500000),
    DT(2026, 11, 29, 0, 0, 0),
]


@pytest.mark.parametrize("text,build", CROSS_CHECK)
@pytest.mark.parametrize("start", STARTS)
def test_matches_schedule_library(monkeypatch, text, build, start):
    """Successive next_fire results equal the real schedule Job's next_run under a frozen clock."""
    clock = _frozen_clock(monkeypatch)
    monkeypatch.setattr(schedule, "random", random.Random(3))
    clock.now = start.replace(tzinfo=None)
    job = build(schedule.Scheduler()).do(lambda: None)

    expected = []
    for _ in range(5):
        expected.append(job.next_run)
        clock.now = job.next_run  # the job ran exactly when due
        job._schedule_next_run()

    ours = next_fires(parse(text), start, 5, rng=random.Random(3))
    assert [moment.replace(tzinfo=None) for moment in ours] == expected
