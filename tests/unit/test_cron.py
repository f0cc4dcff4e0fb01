"""Five-field cron expressions: parsing, run times in UTC, and both 2026 clock changes of two zones.

Europe/Berlin: forward on 29 March at 01:00 UTC (02:00 CET becomes 03:00
CEST, so 02:00-02:59 does not exist), back on 25 October at 01:00 UTC
(03:00 CEST becomes 02:00 CET, so 02:00-02:59 happens twice).
America/New_York: forward on 8 March at 07:00 UTC (02:00 EST becomes 03:00
EDT), back on 1 November at 06:00 UTC (02:00 EDT becomes 01:00 EST, so
01:00-01:59 happens twice).
"""

import datetime
import random
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from dateutil import tz

from scrapy_do.domain import spec, zones
from scrapy_do.domain.cron import CronSpec, looks_like_cron, parse_cron
from scrapy_do.errors import BadRequest, InvalidSpec

UTC = zones.UTC
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
HINT = "write five fields: minute hour day-of-month month day-of-week, e.g. '*/15 9-17 * * mon-fri'"


def Z(*fields):
    """An aware UTC instant."""
    return datetime.datetime(*fields, tzinfo=UTC)


def fires(text, after, count, zone=UTC):
    return spec.next_fires(parse_cron(text), after, count, zone)


# --------------------------------------------------------------------------- parsing

@pytest.mark.parametrize("text,normalised", [
    ("*/15 * * * *", "*/15 * * * *"),
    ("  0   9 *\t* MON-FRI ", "0 9 * * mon-fri"),
    ("30 2 * * *", "30 2 * * *"),
    ("0 0 1 JAN *", "0 0 1 jan *"),
    ("0,30 9-17/2 1-15 jan-jun sat,sun", "0,30 9-17/2 1-15 jan-jun sat,sun"),
    ("0 0 * * 7", "0 0 * * 7"),
    ("0 0 * * fri-sun", "0 0 * * fri-sun"),
    ("0 0 29 2 *", "0 0 29 2 *"),
])
def test_parse_valid(text, normalised):
    """A five-field expression parses to a CronSpec whose text is lower case with single spaces."""
    parsed = parse_cron(text)
    assert parsed == CronSpec(normalised)
    assert parsed.text == normalised
    assert parse_cron(parsed.text) == parsed
    assert parse_cron(parsed.text.upper()) == parsed


def test_cron_spec_is_frozen():
    with pytest.raises(AttributeError):
        parse_cron("0 * * * *").text = "1 * * * *"


@pytest.mark.parametrize("text", ["61 * * * *", "0 24 * * *", "0 0 0 * *", "0 0 1 13 *", "0 0 * * 8", "*/0 * * * *"])
def test_invalid_expression_quotes_croniter(text):
    """A value croniter refuses: the message names the expression, quotes croniter's reason and how to fix it."""
    with pytest.raises(Exception) as theirs:
        croniter(text)
    with pytest.raises(InvalidSpec) as ours:
        parse_cron(text)
    assert str(ours.value) == f"invalid cron expression '{text}': {theirs.value}; {HINT}"


def test_invalid_spec_is_a_bad_request():
    with pytest.raises(BadRequest):
        parse_cron("61 * * * *")


@pytest.mark.parametrize("text,words", [
    ("0 */15 * * * *", ["6 fields", "seconds"]),
    ("0 0 0 1 1 * 2026", ["7 fields", "seconds and year"]),
    ("0 0 * *", ["4 fields, not 5", HINT]),
    ("", ["empty"]),
])
def test_wrong_number_of_fields(text, words):
    """Six fields (seconds) and seven (seconds and year) are refused, and say why."""
    with pytest.raises(InvalidSpec) as caught:
        parse_cron(text)
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize("text,words", [
    ("0 0 L * *", ["'l'", "day-of-month", "extension"]),
    ("0 0 15w * *", ["'15w'", "not standard cron syntax"]),
    ("0 0 * * 1#2", ["'1#2'", "day-of-week"]),
    ("0 0 ? * *", ["'?'"]),
    ("H * * * *", ["'h'", "extension", "croniter: Hashed"]),
    ("@daily", ["'@daily'", "0 0 * * *"]),
    ("10/5 * * * *", ["step but no range", "'10-59/5'"]),
    ("0 0 * jan/2 *", ["step but no range", "'jan-dec/2'"]),
    ("50-10 * * * *", ["'50-10'", "backwards", "'50-59,0-10'"]),
    ("0 0 * nov-feb *", ["backwards", "'nov-dec,jan-feb'"]),
    ("0 0 * * sat-mon", ["backwards", "'sat-sun,sun-mon'"]),
    ("0 0 * foo *", ["'foo'", "month", "jan-dec", "croniter: "]),
    ("1,,2 * * * *", ["empty list item"]),
])
def test_extensions_and_non_vixie_syntax_are_refused(text, words):
    """croniter's extensions, steps without a range and backward ranges are refused with a hint."""
    with pytest.raises(InvalidSpec) as caught:
        parse_cron(text)
    assert str(caught.value).startswith(f"invalid cron expression '{text.lower()}': ")
    for word in words:
        assert word in str(caught.value)


@pytest.mark.parametrize("text", ["0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 31 2 *"])
def test_never_firing_is_refused_at_parse_time(text):
    """An expression with no day that exists is refused at once, with croniter's reason: no hang later."""
    with pytest.raises(InvalidSpec, match="never runs .croniter: failed to find next date.") as caught:
        parse_cron(text)
    assert f"'{text}'" in str(caught.value)


def test_rare_but_possible_dates_parse():
    """29 February runs in leap years; the 31st of some months only."""
    assert fires("0 0 29 2 *", Z(2026, 1, 1), 2) == [Z(2028, 2, 29), Z(2032, 2, 29)]
    assert fires("0 0 29 2 *", Z(2097, 1, 1), 1) == [Z(2104, 2, 29)]  # 2100 is no leap year
    assert fires("0 0 31 4-8 *", Z(2026, 1, 1), 3) == [Z(2026, 5, 31), Z(2026, 7, 31), Z(2026, 8, 31)]


def test_parse_cron_rejects_non_strings():
    with pytest.raises(InvalidSpec, match="string"):
        parse_cron(15)


# --------------------------------------------------------------------------- next fires in UTC

THURSDAY = Z(2026, 1, 1, 10, 7, 30)  # 2026-01-01 is a Thursday


@pytest.mark.parametrize("text,expected", [
    ("*/15 * * * *", [Z(2026, 1, 1, 10, 15), Z(2026, 1, 1, 10, 30), Z(2026, 1, 1, 10, 45)]),
    ("* * * * *", [Z(2026, 1, 1, 10, 8), Z(2026, 1, 1, 10, 9), Z(2026, 1, 1, 10, 10)]),
    ("0 * * * *", [Z(2026, 1, 1, 11), Z(2026, 1, 1, 12), Z(2026, 1, 1, 13)]),
    ("30 2 * * *", [Z(2026, 1, 2, 2, 30), Z(2026, 1, 3, 2, 30), Z(2026, 1, 4, 2, 30)]),
    ("0 9 * * mon-fri", [Z(2026, 1, 2, 9), Z(2026, 1, 5, 9), Z(2026, 1, 6, 9)]),
    ("*/20 9-10 * * *", [Z(2026, 1, 1, 10, 20), Z(2026, 1, 1, 10, 40), Z(2026, 1, 2, 9)]),
    ("0 0 1 * *", [Z(2026, 2, 1), Z(2026, 3, 1), Z(2026, 4, 1)]),
    ("0 12 * jan,jul sun", [Z(2026, 1, 4, 12), Z(2026, 1, 11, 12), Z(2026, 1, 18, 12)]),
    ("0 0 * * 7", [Z(2026, 1, 4), Z(2026, 1, 11), Z(2026, 1, 18)]),
    ("0 0 * * fri-sun", [Z(2026, 1, 2), Z(2026, 1, 3), Z(2026, 1, 4)]),
    ("5-5 * * * *", [Z(2026, 1, 1, 11, 5), Z(2026, 1, 1, 12, 5), Z(2026, 1, 1, 13, 5)]),  # croniter: every minute
    # Both days restricted: either one runs (Vixie cron): the 13th, or any Friday.
    ("0 0 13 * fri", [Z(2026, 1, 2), Z(2026, 1, 9), Z(2026, 1, 13)]),
    # One of them starts with `*`: both must match, so odd days that are Fridays.
    ("0 0 */2 * fri", [Z(2026, 1, 9), Z(2026, 1, 23), Z(2026, 2, 13)]),
])
def test_next_fires_utc(text, expected):
    assert fires(text, THURSDAY, 3) == expected


def test_next_fire_is_strictly_after():
    """A due time itself is not its own next run; seconds and microseconds round up to the next match."""
    parsed = parse_cron("*/15 * * * *")
    assert parsed.next_fire(Z(2026, 1, 1, 10, 15)) == Z(2026, 1, 1, 10, 30)
    assert parsed.next_fire(Z(2026, 1, 1, 10, 14, 59, 999999)) == Z(2026, 1, 1, 10, 15)
    assert parsed.next_fire(Z(2026, 1, 1, 10, 15, 0, 1)) == Z(2026, 1, 1, 10, 30)


def test_next_fire_accepts_any_aware_instant_and_answers_in_utc():
    berlin_noon = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=BERLIN)  # 11:00 UTC
    fire = parse_cron("0 * * * *").next_fire(berlin_noon)
    assert fire == Z(2026, 1, 1, 12) and fire.tzinfo is UTC


def test_next_fire_needs_an_aware_instant():
    with pytest.raises(ValueError, match="aware"):
        parse_cron("* * * * *").next_fire(datetime.datetime(2026, 1, 1))


def test_next_fire_ignores_rng():
    parsed = parse_cron("0 9 * * *")
    assert parsed.next_fire(THURSDAY, UTC, random.Random(1)) == parsed.next_fire(THURSDAY, UTC, random.Random(2))


def test_no_run_before_the_end_of_datetime_is_an_error_not_a_hang():
    with pytest.raises(ValueError, match="no run after"):
        parse_cron("0 0 1 1 *").next_fire(Z(9999, 6, 1))


# --------------------------------------------------------------------------- daylight saving

def test_berlin_spring_forward():
    """02:30 does not exist on 29 March: it runs once at 03:30 CEST; the rest keeps its wall time."""
    after = Z(2026, 3, 27, 12)
    assert fires("30 2 * * *", after, 4, BERLIN) == [
        Z(2026, 3, 28, 1, 30),  # 02:30 CET
        Z(2026, 3, 29, 1, 30),  # 02:30 does not exist: 03:30 CEST
        Z(2026, 3, 30, 0, 30),  # 02:30 CEST
        Z(2026, 3, 31, 0, 30),
    ]
    assert fires("0 3 * * *", after, 3, BERLIN) == [
        Z(2026, 3, 28, 2),  # 03:00 CET
        Z(2026, 3, 29, 1),  # 03:00 CEST, the first minute after the gap
        Z(2026, 3, 30, 1),
    ]
    assert fires("0 9 * * mon-fri", after, 2, BERLIN) == [
        Z(2026, 3, 30, 7),  # Monday 09:00 CEST
        Z(2026, 3, 31, 7),
    ]
    assert fires("0 9 * * mon-fri", Z(2026, 3, 27), 1, BERLIN) == [Z(2026, 3, 27, 8)]  # Friday 09:00 CET


def test_berlin_spring_forward_every_15_minutes_is_elapsed_time():
    """`*/15 * * * *` stays 15 minutes apart: 01:45 CET, then 03:00 CEST (02:xx never happens)."""
    assert fires("*/15 * * * *", Z(2026, 3, 29, 0, 20), 5, BERLIN) == [
        Z(2026, 3, 29, 0, 30),  # 01:30 CET
        Z(2026, 3, 29, 0, 45),  # 01:45 CET
        Z(2026, 3, 29, 1, 0),   # 03:00 CEST
        Z(2026, 3, 29, 1, 15),  # 03:15 CEST
        Z(2026, 3, 29, 1, 30),
    ]
    assert fires("0 * * * *", Z(2026, 3, 28, 23, 30), 3, BERLIN) == [
        Z(2026, 3, 29, 0),  # 01:00 CET
        Z(2026, 3, 29, 1),  # 03:00 CEST
        Z(2026, 3, 29, 2),  # 04:00 CEST
    ]


def test_berlin_fall_back():
    """02:30 happens twice on 25 October: it runs once, at the first (CEST) one."""
    after = Z(2026, 10, 23, 12)
    assert fires("30 2 * * *", after, 4, BERLIN) == [
        Z(2026, 10, 24, 0, 30),  # 02:30 CEST
        Z(2026, 10, 25, 0, 30),  # 02:30 CEST, the first of two
        Z(2026, 10, 26, 1, 30),  # 02:30 CET
        Z(2026, 10, 27, 1, 30),
    ]
    assert fires("0 3 * * *", after, 3, BERLIN) == [
        Z(2026, 10, 24, 1),  # 03:00 CEST
        Z(2026, 10, 25, 2),  # 03:00 CET (it happens once: 03:00 CEST became 02:00 CET)
        Z(2026, 10, 26, 2),
    ]
    assert fires("0 9 * * mon-fri", Z(2026, 10, 23), 2, BERLIN) == [
        Z(2026, 10, 23, 7),  # Friday 09:00 CEST
        Z(2026, 10, 26, 8),  # Monday 09:00 CET
    ]


@pytest.mark.parametrize("after", [
    Z(2026, 10, 25, 0, 45),  # 02:45 CEST, after the first 02:30
    Z(2026, 10, 25, 1, 10),  # 02:10 CET, before the second 02:30
    Z(2026, 10, 25, 1, 30),  # 02:30 CET, the second 02:30 itself
])
def test_berlin_fall_back_does_not_run_the_second_pass(after):
    assert parse_cron("30 2 * * *").next_fire(after, BERLIN) == Z(2026, 10, 26, 1, 30)


def test_berlin_fall_back_named_hours_run_in_the_first_pass_only():
    """Hours named in the hour field run in the first pass only, whatever the minutes."""
    assert fires("*/20 2 * * *", Z(2026, 10, 24, 23, 50), 4, BERLIN) == [
        Z(2026, 10, 25, 0, 0),   # 02:00 CEST
        Z(2026, 10, 25, 0, 20),  # 02:20 CEST
        Z(2026, 10, 25, 0, 40),  # 02:40 CEST
        Z(2026, 10, 26, 1, 0),   # 02:00 CET the next day: not 02:00 CET today
    ]


def test_berlin_fall_back_every_15_minutes_runs_in_both_passes():
    """With `*` hours the repeated hour runs twice, as in cronie: 15 minutes of elapsed time apart."""
    assert fires("*/15 * * * *", Z(2026, 10, 24, 23, 40), 10, BERLIN) == [
        Z(2026, 10, 24, 23, 45),  # 01:45 CEST
        Z(2026, 10, 25, 0, 0),    # 02:00 CEST
        Z(2026, 10, 25, 0, 15),
        Z(2026, 10, 25, 0, 30),
        Z(2026, 10, 25, 0, 45),   # 02:45 CEST
        Z(2026, 10, 25, 1, 0),    # 02:00 CET
        Z(2026, 10, 25, 1, 15),
        Z(2026, 10, 25, 1, 30),
        Z(2026, 10, 25, 1, 45),   # 02:45 CET
        Z(2026, 10, 25, 2, 0),    # 03:00 CET
    ]
    assert fires("0 * * * *", Z(2026, 10, 24, 22, 30), 4, BERLIN) == [
        Z(2026, 10, 24, 23),  # 01:00 CEST
        Z(2026, 10, 25, 0),   # 02:00 CEST
        Z(2026, 10, 25, 1),   # 02:00 CET
        Z(2026, 10, 25, 2),   # 03:00 CET
    ]
    # Asked in the first pass, after its last run: the second pass comes next, not 03:00.
    assert parse_cron("0 * * * *").next_fire(Z(2026, 10, 25, 0, 10), BERLIN) == Z(2026, 10, 25, 1)


def test_new_york_spring_forward():
    after = Z(2026, 3, 6, 18)
    assert fires("30 2 * * *", after, 3, NEW_YORK) == [
        Z(2026, 3, 7, 7, 30),  # 02:30 EST
        Z(2026, 3, 8, 7, 30),  # 02:30 does not exist: 03:30 EDT
        Z(2026, 3, 9, 6, 30),  # 02:30 EDT
    ]
    assert fires("0 3 * * *", after, 3, NEW_YORK) == [
        Z(2026, 3, 7, 8),  # 03:00 EST
        Z(2026, 3, 8, 7),  # 03:00 EDT
        Z(2026, 3, 9, 7),
    ]
    assert fires("*/15 * * * *", Z(2026, 3, 8, 6, 40), 3, NEW_YORK) == [
        Z(2026, 3, 8, 6, 45),  # 01:45 EST
        Z(2026, 3, 8, 7, 0),   # 03:00 EDT
        Z(2026, 3, 8, 7, 15),
    ]
    assert fires("0 9 * * mon-fri", Z(2026, 3, 6), 2, NEW_YORK) == [
        Z(2026, 3, 6, 14),  # Friday 09:00 EST
        Z(2026, 3, 9, 13),  # Monday 09:00 EDT
    ]


def test_new_york_fall_back():
    """New York repeats 01:00-01:59, so 02:30 happens once (EST); 01:30 runs at its first (EDT) pass."""
    after = Z(2026, 10, 30, 18)
    assert fires("30 2 * * *", after, 3, NEW_YORK) == [
        Z(2026, 10, 31, 6, 30),  # 02:30 EDT
        Z(2026, 11, 1, 7, 30),   # 02:30 EST
        Z(2026, 11, 2, 7, 30),
    ]
    assert fires("30 1 * * *", after, 3, NEW_YORK) == [
        Z(2026, 10, 31, 5, 30),  # 01:30 EDT
        Z(2026, 11, 1, 5, 30),   # 01:30 EDT, the first of two
        Z(2026, 11, 2, 6, 30),   # 01:30 EST
    ]
    assert fires("0 3 * * *", after, 3, NEW_YORK) == [
        Z(2026, 10, 31, 7),  # 03:00 EDT
        Z(2026, 11, 1, 8),   # 03:00 EST
        Z(2026, 11, 2, 8),
    ]
    assert fires("*/15 * * * *", Z(2026, 11, 1, 4, 40), 10, NEW_YORK) == [
        Z(2026, 11, 1, 4, 45),  # 00:45 EDT
        Z(2026, 11, 1, 5, 0),   # 01:00 EDT
        Z(2026, 11, 1, 5, 15),
        Z(2026, 11, 1, 5, 30),
        Z(2026, 11, 1, 5, 45),
        Z(2026, 11, 1, 6, 0),   # 01:00 EST
        Z(2026, 11, 1, 6, 15),
        Z(2026, 11, 1, 6, 30),
        Z(2026, 11, 1, 6, 45),
        Z(2026, 11, 1, 7, 0),   # 02:00 EST
    ]
    assert fires("0 9 * * mon-fri", Z(2026, 10, 30), 2, NEW_YORK) == [
        Z(2026, 10, 30, 13),  # Friday 09:00 EDT
        Z(2026, 11, 2, 14),   # Monday 09:00 EST
    ]


def test_gap_runs_merge_with_runs_due_at_the_same_instant():
    """In the gap 02:00 and 02:30 move to 03:00 and 03:30 CEST, where the real 03:00 and 03:30 run: once each."""
    assert fires("0,30 2-3 * * *", Z(2026, 3, 28, 23), 3, BERLIN) == [
        Z(2026, 3, 29, 1, 0),   # 02:00 -> 03:00 CEST, and 03:00 CEST
        Z(2026, 3, 29, 1, 30),  # 02:30 -> 03:30 CEST, and 03:30 CEST
        Z(2026, 3, 30, 0, 0),   # 02:00 CEST
    ]


# A reference without any lookback logic: every matching wall time of a week, mapped to
# instants by the documented rules, sorted. next_fire must pick the first one after `after`.

def reference_fires(parsed, zone, start, end):
    plan = parsed._plan
    found = set()
    walls = croniter(plan.expression, start.replace(tzinfo=None), day_or=plan.day_or)
    wall = walls.get_next(datetime.datetime)
    while wall < end.replace(tzinfo=None):
        local = wall.replace(tzinfo=zone)
        if plan.hour_wildcard and tz.datetime_exists(local) and tz.datetime_ambiguous(local):
            found.update({tz.enfold(local, fold=0).astimezone(UTC), tz.enfold(local, fold=1).astimezone(UTC)})
        else:
            found.add(zones.wall_to_instant(wall, zone))
        wall = walls.get_next(datetime.datetime)
    return sorted(found)


CHANGES = [
    (BERLIN, Z(2026, 3, 29, 1)), (BERLIN, Z(2026, 10, 25, 1)),
    (NEW_YORK, Z(2026, 3, 8, 7)), (NEW_YORK, Z(2026, 11, 1, 6)),
    (ZoneInfo("Australia/Lord_Howe"), Z(2026, 10, 3, 15, 30)),  # a 30-minute change
    (ZoneInfo("Pacific/Apia"), Z(2011, 12, 30, 10)),  # 30 December 2011 did not happen in Samoa
]


@pytest.mark.parametrize("zone,change", CHANGES, ids=lambda v: str(v))
@pytest.mark.parametrize("text", ["30 2 * * *", "0 3 * * *", "*/15 * * * *", "0 9 * * mon-fri", "0 */2 * * *",
                                  "*/7 * * * *", "0,30 1-3 * * *", "45 0-5 * * *"])
def test_next_fire_matches_the_reference_around_changes(zone, change, text):
    parsed = parse_cron(text)
    reference = reference_fires(parsed, zone, change - datetime.timedelta(days=3), change + datetime.timedelta(days=4))
    rng = random.Random(text)
    for _ in range(40):
        after = change + datetime.timedelta(seconds=rng.randint(-6 * 3600, 6 * 3600))
        assert parsed.next_fire(after, zone) == min(moment for moment in reference if moment > after), after


@pytest.mark.parametrize("zone,change", CHANGES[:4], ids=lambda v: str(v))
@pytest.mark.parametrize("text", ["30 2 * * *", "*/15 * * * *", "0 * * * *", "* * * * *"])
def test_next_fires_strictly_increase_and_never_repeat(zone, change, text):
    runs = fires(text, change - datetime.timedelta(hours=3), 300, zone)
    assert all(earlier < later for earlier, later in zip(runs, runs[1:]))
    assert all(run.second == 0 and run.microsecond == 0 for run in runs)


# --------------------------------------------------------------------------- spec.parse

@pytest.mark.parametrize("text", ["*/15 * * * *", "0 9 * * MON-FRI", "30 2 * * *", "5 4 * * sun"])
def test_spec_parse_returns_a_cron_spec(text):
    parsed = spec.parse(text)
    assert isinstance(parsed, CronSpec)
    assert parsed == parse_cron(text)
    assert spec.parse(parsed.text) == parsed


def test_spec_parse_keeps_every_and_now():
    assert spec.parse("now") is None
    assert isinstance(spec.parse("every 10 minutes"), spec.Spec)
    assert isinstance(spec.parse("every day at 10:30"), spec.Spec)


@pytest.mark.parametrize("text,word", [
    ("61 * * * *", "invalid cron expression '61 * * * *': [61 * * * *] is not acceptable"),
    ("0 */15 * * * *", "6 fields"),
    ("0 0 30 2 *", "never runs"),
    ("@hourly", "aliases"),
    # Not cron-shaped: the `every ...` grammar answers, as before.
    ("evry 5 to 10 minutes", "unknown word 'evry' in 'evry 5 to 10 minutes'"),
    ("run every 10 minutes", "unknown word 'run'"),
    ("10 minutes", "unknown word '10'"),
    ("every 5 to 10 minutes please", "unexpected word 'please'"),
])
def test_spec_parse_errors(text, word):
    with pytest.raises(InvalidSpec) as caught:
        spec.parse(text)
    assert word in str(caught.value)


def test_unknown_word_hint_mentions_cron():
    with pytest.raises(InvalidSpec, match=r"or a cron expression such as '\*/15 \* \* \* \*'"):
        spec.parse("hourly")


@pytest.mark.parametrize("text,expected", [
    ("*/15 * * * *", True), ("0 9 * * mon-fri", True), ("H * * * *", True), ("0 */15 * * * *", True),
    ("@daily", True), ("every 10 minutes", False), ("every 5 to 10 minutes", False), ("now", False),
    ("evry 5 to 10 minutes", False), ("10 minutes", False), ("every day at 10:30", False), ("", False),
])
def test_looks_like_cron(text, expected):
    assert looks_like_cron(text) is expected


def test_next_fires_over_a_change_through_spec_parse():
    assert spec.next_fires(spec.parse("30 2 * * *"), Z(2026, 3, 27, 12), 3, BERLIN) == [
        Z(2026, 3, 28, 1, 30), Z(2026, 3, 29, 1, 30), Z(2026, 3, 30, 0, 30),
    ]
    assert spec.next_fires(spec.parse("0 * * * *"), Z(2026, 10, 24, 23, 30), 3, BERLIN) == [
        Z(2026, 10, 25, 0), Z(2026, 10, 25, 1), Z(2026, 10, 25, 2),
    ]
    assert spec.next_fires(spec.parse("0 9 * * *"), THURSDAY, 0, BERLIN) == []


def test_as_schedule_job_is_only_for_every_specs():
    """The schedule-library cross-check does not apply to cron; it says so instead of failing oddly."""
    with pytest.raises(TypeError, match="cron"):
        spec.as_schedule_job(spec.parse("*/15 * * * *"))
    assert spec.as_schedule_job(spec.parse("every 10 minutes")).interval == 10
