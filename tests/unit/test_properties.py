"""Property tests (hypothesis): the parsers of user input fail only with their own error class.

Bounded: at most 300 examples per property, no deadline (the machine is shared).
"""

import datetime
import io
import json
import os
import random
import stat
import tempfile
import warnings
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, event, example, given, settings
from hypothesis import strategies as st

from scrapy_do.domain import spec
from scrapy_do.projects import archives
from scrapy_do.errors import BadArchive, InvalidPayload, InvalidSpec, TooLarge
from scrapy_do.domain.models import normalise_payload

BOUNDED = settings(max_examples=300, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# --------------------------------------------------------------------------- specs

UNIT_WORDS = [*spec.UNITS, *(u[:-1] for u in spec.UNITS), *spec.WEEKDAYS, *(d + "s" for d in spec.WEEKDAYS),
              "fortnight", "at", "to", "now", "every", ""]
NUMBER_WORDS = st.one_of(
    st.integers(min_value=-5, max_value=120).map(str),
    st.integers(min_value=0, max_value=10 ** 22).map(str),
    st.sampled_from(["0", "00", "+3", "-0", "1.5", ".5", "2.", "1e3", "0x10", "٣", "５", "7_0"]),
)
TIME_WORDS = st.one_of(
    st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 30), st.integers(0, 70)),
    st.builds(lambda h, m, s: f"{h:02d}:{m:02d}:{s:02d}", st.integers(0, 30), st.integers(0, 70), st.integers(0, 70)),
    st.builds(lambda m: f":{m:02d}", st.integers(0, 70)),
    st.sampled_from(["", ":", "7", "7:5", "10:30pm", "::", "24:00", "1:2:3:4", "ab:cd"]),
)


@st.composite
def valid_specs(draw):
    """Texts the grammar accepts (in random case and spacing)."""
    unit = draw(st.sampled_from([*spec.UNITS, *spec.WEEKDAYS]))
    if unit in spec.WEEKDAYS:
        words = ["every", unit]
    else:
        n = draw(st.integers(1, 150))
        words = ["every", unit[:-1]] if n == 1 and draw(st.booleans()) else ["every", str(n)]
        if n != 1 or words[-1] != unit[:-1]:
            if draw(st.booleans()):
                words += ["to", str(n + draw(st.integers(0, 50)))]
            words.append(unit)
    at_unit = "days" if unit in spec.WEEKDAYS else unit
    if at_unit != "seconds" and at_unit != "weeks" and draw(st.booleans()):
        h, m, sec = draw(st.integers(0, 23)), draw(st.integers(0, 59)), draw(st.integers(0, 59))
        words += ["at", {"days": f"{h:02d}:{m:02d}" + (f":{sec:02d}" if draw(st.booleans()) else ""),
                         "hours": f"{m:02d}:{sec:02d}" if draw(st.booleans()) else f":{m:02d}",
                         "minutes": f":{sec:02d}"}[at_unit]]
    words = [w.upper() if draw(st.integers(0, 4)) == 0 else w for w in words]
    return draw(st.sampled_from([" ", "  ", "\t"])).join(words)


@st.composite
def mangled_specs(draw):
    """Texts shaped like `every [N] [to M] <unit> [at <time>]`, often wrong in one place."""
    words = [draw(st.sampled_from(["every", "Every", "EVERY", "every", "evry"]))]
    if draw(st.booleans()):
        words.append(draw(NUMBER_WORDS))
    if draw(st.integers(0, 3)) == 0:
        words += ["to", draw(NUMBER_WORDS)]
    words.append(draw(st.sampled_from(UNIT_WORDS)))
    if draw(st.booleans()):
        words += ["at", draw(TIME_WORDS)]
    if draw(st.integers(0, 5)) == 0:
        words.append(draw(st.sampled_from(["to", "5", "at", "please", "every"])))
    separators = st.sampled_from([" ", "  ", "\t", " \n "])
    return "".join(w + draw(separators) for w in words).strip(draw(st.sampled_from(["", " "])))


grammar_specs = lambda: st.one_of(valid_specs(), mangled_specs())  # noqa: E731


AFTER = st.datetimes(min_value=datetime.datetime(1971, 1, 1), max_value=datetime.datetime(2500, 12, 31),
                     timezones=st.just(datetime.timezone.utc))


def check_parsed(text, after, seed):
    try:
        parsed = spec.parse(text)
    except InvalidSpec as e:
        assert str(e)
        event("invalid")
        return None
    event("now" if parsed is None else "parsed")
    if parsed is None:
        assert spec.is_now(text)
        return None
    assert spec.parse(parsed.text) == parsed
    assert spec.parse(parsed.text.upper()) == parsed
    if not isinstance(parsed, spec.Spec):  # a cron expression: checked in test_cron
        return None
    fire = parsed.next_fire(after, rng=random.Random(seed))
    assert fire > after
    longest = datetime.timedelta(**{parsed.unit: parsed.latest or parsed.interval})
    assert fire - after <= longest + datetime.timedelta(days=7)
    return parsed


@BOUNDED
@given(st.text(max_size=60), AFTER, st.integers(0, 2 ** 32))
@example("every 5 to 10 minutes", datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc), 0)
@example("every monday at 23:59:59", datetime.datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=datetime.timezone.utc), 0)
@example("every 36525 days", datetime.datetime(2500, 12, 31, tzinfo=datetime.timezone.utc), 0)
@example("NoW", datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc), 0)
def test_spec_parse_on_any_text_raises_only_invalid_spec(text, after, seed):
    """Any text parses to None (now), a Spec, or raises InvalidSpec; nothing else escapes."""
    check_parsed(text, after, seed)


@BOUNDED
@given(grammar_specs(), AFTER, st.integers(0, 2 ** 32))
def test_grammar_shaped_specs_round_trip_and_fire_in_the_future(text, after, seed):
    """A spec that parses fires strictly after `after`, within one period (+ a week), and its text re-parses equal."""
    check_parsed(text, after, seed)


# --------------------------------------------------------------------------- archives

LIMITS = archives.Limits(max_unpacked_size=4096, max_files=40)
SEGMENTS = st.one_of(
    st.sampled_from(["proj", "proj", "proj", "scrapy.cfg", "..", ".", "", "a", "spiders", "C:", "\\..\\x",
                     "x" * 256, "é", "日本", "a b", "-", ".hidden"]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=8),
)
MEMBER_NAMES = st.builds(lambda parts, lead, trail: lead + "/".join(parts) + trail,
                         st.lists(SEGMENTS, min_size=1, max_size=5),
                         st.sampled_from(["", "", "", "/", "./", "../"]),
                         st.sampled_from(["", "", "", "/"]))
MODES = st.sampled_from([None, None, None, stat.S_IFREG | 0o644, stat.S_IFDIR | 0o755, stat.S_IFLNK | 0o777,
                         stat.S_IFCHR | 0o644, stat.S_IFIFO | 0o644, 0o777, 0])
CFG = st.one_of(
    st.sampled_from(["proj", "../proj", "a/b", ".x", "", "proj\n", "p" * 200]).map(
        lambda n: f"[settings]\ndefault = x\n[deploy]\nproject = {n}\n".encode()),
    st.binary(max_size=64),
)


PROJECT_SEGMENTS = st.one_of(st.sampled_from(["proj", "spiders", "__init__.py", "settings.py", "a", "b.txt"]),
                            SEGMENTS)


@st.composite
def random_zips(draw):
    """Zips of random members (names with '..', '/', unicode, dirs, duplicates, odd modes), often almost valid."""
    members = []
    near_valid = draw(st.booleans())
    if near_valid or draw(st.booleans()):
        cfg = b"[deploy]\nproject = proj\n" if near_valid and draw(st.integers(0, 3)) else draw(CFG)
        members.append(("proj/scrapy.cfg", cfg, None))
    if near_valid:
        names = st.lists(PROJECT_SEGMENTS, min_size=1, max_size=4).map(lambda p: "proj/" + "/".join(p))
        modes = st.one_of(st.just(None), MODES) if draw(st.integers(0, 3)) == 0 else st.just(None)
        members += draw(st.lists(st.tuples(names, st.binary(max_size=300), modes), max_size=8))
    else:
        members += draw(st.lists(st.tuples(MEMBER_NAMES, st.binary(max_size=300), MODES), max_size=8))
    if members and draw(st.integers(0, 4)) == 0:
        members.append(draw(st.sampled_from(members)))  # a duplicate
    if draw(st.integers(0, 5)) == 0:
        members.append(("proj/big.bin", b"\0" * 5000, None))  # over LIMITS.max_unpacked_size
    draw(st.randoms()).shuffle(members)
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as zf:
        warnings.simplefilter("ignore")
        for name, data, mode in members:
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
            if mode is not None:
                info.external_attr = mode << 16
            zf.writestr(info, data)
    data = buf.getvalue()
    for _ in range(draw(st.integers(0, 3)) if draw(st.integers(0, 3)) == 0 else 0):  # corrupt a few bytes
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        data = data[:pos] + bytes([draw(st.integers(0, 255))]) + data[pos + 1:]
    return data


def all_paths(root):
    out = set()
    for base, dirs, files in os.walk(root):
        for name in dirs + files:
            out.add(os.path.relpath(os.path.join(base, name), root))
    return out


def check_archive(data):
    """open_archive + inspect and extract raise only BadArchive/TooLarge and never write outside dest."""
    try:
        with archives.open_archive(data) as zf:
            name, members = archives.inspect(zf, LIMITS)
        assert archives.check_name(name) == name
        assert all(".." not in parts and "" not in parts for _, parts in members)
    except (BadArchive, TooLarge) as e:
        assert e.msg
    with tempfile.TemporaryDirectory() as tmp:
        outside = Path(tmp) / "outside"
        outside.mkdir()
        dest = Path(tmp) / "trees" / "dest"
        dest.parent.mkdir()
        try:
            name = archives.extract(data, str(dest), LIMITS)
            event("extracted")
        except (BadArchive, TooLarge) as e:
            event(type(e).__name__ + ": " + e.msg.split(" ")[0] + " " + e.msg.split(" ")[1])
            name = None
        assert not any(outside.iterdir())
        assert {p.name for p in Path(tmp).iterdir()} == {"outside", "trees"}
        assert {p.name for p in dest.parent.iterdir()} <= {"dest"}
        if name is not None:
            for path in all_paths(dest):
                full = dest / path
                assert not full.is_symlink() and (full.is_file() or full.is_dir()), path
                assert os.path.realpath(full).startswith(str(dest.resolve()) + os.sep)
            assert (dest / "scrapy.cfg").is_file()


@settings(BOUNDED, phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(st.binary(max_size=2000))
@example(b"")
@example(b"PK\x05\x06" + b"\0" * 18)
@example(b"PK\x03\x04" + b"\xff" * 60)
def test_random_bytes_are_refused_as_bad_archives(data):
    """Arbitrary bytes are a BadArchive/TooLarge (or a project), never another exception."""
    check_archive(data)


@settings(BOUNDED, phases=[Phase.explicit, Phase.reuse, Phase.generate])  # shrinking corrupt zips takes minutes
@given(random_zips())
def test_random_zips_never_escape_dest_or_raise_unexpected_errors(data):
    """Randomly built (and sometimes corrupted) zips raise only BadArchive/TooLarge and stay inside dest."""
    check_archive(data)


def with_version_needed(data, version):
    """`data` with every central directory entry claiming it needs zip `version` (e.g. 64 = 6.4) to extract."""
    buf = bytearray(data)
    pos = zipfile.ZipFile(io.BytesIO(data)).start_dir
    while buf[pos:pos + 4] == b"PK\x01\x02":
        buf[pos + 6] = version
        nlen, xlen, clen = (int.from_bytes(buf[pos + o:pos + o + 2], "little") for o in (28, 30, 32))
        pos += 46 + nlen + xlen + clen
    return bytes(buf)


def test_zip_needing_a_newer_version_is_a_bad_archive():
    """A zip whose entries claim to need a newer zip version than Python reads is a BadArchive."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("proj/scrapy.cfg", "[deploy]\nproject = proj\n")
    with pytest.raises(BadArchive):
        archives.open_archive(with_version_needed(buf.getvalue(), 64))


def test_local_header_name_not_utf8_is_a_bad_archive(tmp_path):
    """A member whose local header flags UTF-8 but holds other bytes is a BadArchive, not a crash."""
    data = local_name_not_utf8()
    with pytest.raises(BadArchive):
        archives.extract(data, str(tmp_path / "dest"), LIMITS)


def local_name_not_utf8():
    """A valid project whose member proj/aa.py has, in its local header only, the UTF-8 flag and a 0x80 byte."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("proj/scrapy.cfg", "[deploy]\nproject = proj\n")
        zf.writestr("proj/aa.py", "x = 1\n")
    data = bytearray(buf.getvalue())
    offset = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("proj/aa.py").header_offset
    data[offset + 30:offset + 40] = b"proj/\x80a.py"
    data[offset + 6:offset + 8] = (0x800).to_bytes(2, "little")
    return bytes(data)


# --------------------------------------------------------------------------- payloads

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=20,
)
PAYLOAD_TEXTS = st.one_of(
    st.text(max_size=200),
    JSON_VALUES.map(json.dumps),
    st.dictionaries(st.text(max_size=5), JSON_VALUES, max_size=4).map(lambda d: json.dumps(d, ensure_ascii=False)),
    st.integers(1, 50000).map(lambda n: "[" * n),
    st.integers(1, 50000).map(lambda n: '{"a":' * n),
    st.sampled_from(["", "   ", "null", "NaN", "{}", "{\"a\": Infinity}", "1" * 5000, "{\"a\": " + "1" * 5000 + "}",
                     "\ufeff{}", "{\"a\": 1} x", "{\"a\": \"\\ud800\"}"]),
)


@BOUNDED
@given(PAYLOAD_TEXTS)
def test_normalise_payload_raises_only_invalid_payload(text):
    """A payload normalises to a JSON object text that normalises to itself, or raises InvalidPayload."""
    try:
        out = normalise_payload(text)
    except InvalidPayload as e:
        assert e.msg
        return
    assert isinstance(json.loads(out), dict)
    assert normalise_payload(out) == out


@BOUNDED
@given(PAYLOAD_TEXTS)
@example('{"a": "\\ud800"}')
def test_normalised_payload_is_valid_utf8(text):
    """Whatever normalise_payload accepts can be encoded as UTF-8 (stored in SQLite, passed on a command line)."""
    try:
        out = normalise_payload(text)
    except InvalidPayload:
        return
    out.encode("utf-8")
