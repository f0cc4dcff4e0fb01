"""Unit tests for scrapy_do.config: defaults, overrides, parsing and validation."""

import dataclasses
import os
from pathlib import Path

import pytest

from scrapy_do.config import Config, load, parse_interfaces, parse_size
from scrapy_do.errors import ConfigError


def write_conf(tmp_path, text, name="scrapy-do.conf"):
    """Write `text` as a config file under `tmp_path` and return its path."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_text(tmp_path, text):
    """Load a config made of `text`, with relative paths taken from `tmp_path`."""
    return load(write_conf(tmp_path, text), cwd=tmp_path)


# --------------------------------------------------------------------------- defaults


def test_defaults_without_file(tmp_path):
    """Without a file, load() gives the 0.5.0 defaults with paths made absolute against cwd."""
    cfg = load(cwd=tmp_path)
    assert cfg.project_store == tmp_path / "projects"
    assert cfg.database == tmp_path / "projects" / "scrapy-do.db"
    assert cfg.job_slots == 3
    assert cfg.completed_cap == 50
    assert cfg.cancel_grace == 10.0
    assert cfg.max_archive_size == 64 * 1024 * 1024
    assert cfg.max_unpacked_size == 512 * 1024 * 1024
    assert cfg.max_archive_files == 10000
    assert cfg.spider_list_timeout == 60.0
    assert cfg.interfaces == (("127.0.0.1", 7654),)
    assert cfg.https is False
    assert cfg.auth is False
    assert cfg.key == tmp_path / "scrapy-do.key"
    assert cfg.cert == tmp_path / "scrapy-do.crt"
    assert cfg.chain is None
    assert cfg.auth_db == tmp_path / "auth.db"
    assert cfg.source == "<defaults>"


def test_embedded_defaults_match_dataclass_defaults(tmp_path):
    """default.conf and the Config dataclass agree on every default value they both carry."""
    cfg = load(cwd=tmp_path)
    for field in dataclasses.fields(Config):
        if field.default is not dataclasses.MISSING and field.name not in ("key", "cert", "auth_db", "timezone", "zone", "environments"):
            assert getattr(cfg, field.name) == field.default, field.name


def test_defaults_use_process_cwd_when_none_given(tmp_path, monkeypatch):
    """Without `cwd`, relative paths are taken from the process's working directory."""
    monkeypatch.chdir(tmp_path)
    assert load().project_store == tmp_path / "projects"


def test_config_is_frozen(tmp_path):
    """A loaded Config cannot be changed after the fact."""
    cfg = load(cwd=tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.job_slots = 7


def test_derived_directories(tmp_path):
    """log_dir and spider_data_dir live inside the project store."""
    cfg = load_text(tmp_path, "[scrapy-do]\nproject-store = /srv/do\n")
    assert cfg.log_dir == Path("/srv/do/log-dir")
    assert cfg.spider_data_dir == Path("/srv/do/spider-data")


def test_source_names_the_file(tmp_path):
    """The Config remembers which file it was read from."""
    path = write_conf(tmp_path, "[scrapy-do]\njob-slots = 4\n")
    assert load(path, cwd=tmp_path).source == str(path)


# --------------------------------------------------------------------------- overrides

OVERRIDES = [
    # section, key, value, attribute, expected
    ("scrapy-do", "job-slots", "8", "job_slots", 8),
    ("scrapy-do", "job-slots", "1", "job_slots", 1),
    ("scrapy-do", "completed-cap", "0", "completed_cap", 0),
    ("scrapy-do", "completed-cap", "1000", "completed_cap", 1000),
    ("scrapy-do", "cancel-grace", "2.5", "cancel_grace", 2.5),
    ("scrapy-do", "cancel-grace", "0", "cancel_grace", 0.0),
    ("scrapy-do", "max-archive-size", "1M", "max_archive_size", 1 << 20),
    ("scrapy-do", "max-unpacked-size", "2G", "max_unpacked_size", 2 << 30),
    ("scrapy-do", "max-archive-files", "5", "max_archive_files", 5),
    ("scrapy-do", "spider-list-timeout", "0.5", "spider_list_timeout", 0.5),
    ("web", "https", "on", "https", True),
    ("web", "https", "Yes", "https", True),
    ("web", "https", "1", "https", True),
    ("web", "https", "false", "https", False),
    ("web", "auth", "true", "auth", True),
    ("web", "auth", "OFF", "auth", False),
    ("web", "interfaces", "0.0.0.0:80", "interfaces", (("0.0.0.0", 80),)),
    ("web", "interfaces", "127.0.0.1:7654 [::1]:7655", "interfaces", (("127.0.0.1", 7654), ("::1", 7655))),
]


@pytest.mark.parametrize("section,key,value,attr,expected", OVERRIDES)
def test_file_overrides_key(tmp_path, section, key, value, attr, expected):
    """A key set in the file replaces the embedded default."""
    cfg = load_text(tmp_path, f"[{section}]\n{key} = {value}\n")
    assert getattr(cfg, attr) == expected


def test_file_overrides_only_what_it_sets(tmp_path):
    """Keys the file does not mention keep their defaults."""
    cfg = load_text(tmp_path, "[scrapy-do]\njob-slots = 9\n")
    assert (cfg.job_slots, cfg.completed_cap, cfg.interfaces) == (9, 50, (("127.0.0.1", 7654),))


PATHS = [
    # file text, attribute, expected path relative to tmp_path (None: absolute as written)
    ("[scrapy-do]\nproject-store = data/store\n", "project_store", "data/store"),
    ("[scrapy-do]\nproject-store = data/store\n", "database", "data/store/scrapy-do.db"),
    ("[scrapy-do]\ndatabase = state/jobs.db\n", "database", "state/jobs.db"),
    ("[scrapy-do]\nproject-store = /abs/store\n", "project_store", "/abs/store"),
    ("[scrapy-do]\nproject-store = /abs/store\n", "database", "/abs/store/scrapy-do.db"),
    ("[scrapy-do]\ndatabase = /abs/jobs.db\n", "database", "/abs/jobs.db"),
    ("[web]\nkey = tls/my.key\n", "key", "tls/my.key"),
    ("[web]\ncert = /etc/tls/my.crt\n", "cert", "/etc/tls/my.crt"),
    ("[web]\nchain = tls/chain.pem\n", "chain", "tls/chain.pem"),
    ("[web]\nauth-db = /var/lib/do/auth.db\n", "auth_db", "/var/lib/do/auth.db"),
    ("[web]\nkey =\n", "key", None),
]


@pytest.mark.parametrize("text,attr,expected", PATHS)
def test_paths_are_resolved_against_cwd(tmp_path, text, attr, expected):
    """Relative paths are taken from `cwd`, absolute ones are kept, empty ones become None."""
    value = getattr(load_text(tmp_path, text), attr)
    if expected is None:
        assert value is None
    else:
        assert value == tmp_path / expected  # joining an absolute path keeps it as is
        assert value.is_absolute()


def test_home_is_expanded_in_paths(tmp_path, monkeypatch):
    """A `~` in a path means the user's home directory."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    cfg = load_text(tmp_path, "[scrapy-do]\nproject-store = ~/store\n")
    assert cfg.project_store == tmp_path / "home" / "store"


def test_home_is_expanded_in_config_path(tmp_path, monkeypatch):
    """The config file's own path may start with `~`."""
    monkeypatch.setenv("HOME", str(tmp_path))
    write_conf(tmp_path, "[scrapy-do]\njob-slots = 6\n")
    assert load("~/scrapy-do.conf", cwd=tmp_path).job_slots == 6


def test_keys_are_case_insensitive(tmp_path):
    """Key names match regardless of case, as configparser does for the original."""
    assert load_text(tmp_path, "[scrapy-do]\nJob-Slots = 5\n").job_slots == 5


# --------------------------------------------------------------------------- interfaces

INTERFACES = [
    ("127.0.0.1:7654", (("127.0.0.1", 7654),)),
    ("127.0.0.1:7654 [::1]:7655", (("127.0.0.1", 7654), ("::1", 7655))),
    ("[::]:1", (("::", 1),)),
    ("localhost:65535", (("localhost", 65535),)),
    ("  a.example:80\tb.example:443\n", (("a.example", 80), ("b.example", 443))),
    ("[fe80::1%eth0]:8080", (("fe80::1%eth0", 8080),)),
    ("127.0.0.1:0", (("127.0.0.1", 0),)),  # 0 picks a free port
]


@pytest.mark.parametrize("text,expected", INTERFACES)
def test_parse_interfaces(text, expected):
    """Whitespace-separated HOST:PORT items parse into (host, port) pairs, IPv6 in brackets."""
    assert parse_interfaces(text) == expected


BAD_INTERFACES = [
    ("nohost", "is not HOST:PORT"),
    ("127.0.0.1", "is not HOST:PORT"),
    (":7654", "is not HOST:PORT"),
    ("::1:7654", "is not HOST:PORT"),
    ("[::1:7654", "is not HOST:PORT"),
    ("host:port", "is not HOST:PORT"),
    ("host:-1", "is not HOST:PORT"),
    ("host:65536", "port 65536 in 'host:65536' is out of range"),
    ("host:99999999", "is out of range"),
    ("127.0.0.1:70000", "port 70000 in '127.0.0.1:70000' is out of range"),
    ("a:1 nohost", "'nohost' is not HOST:PORT"),
    ("", "no interface given"),
    ("   ", "no interface given"),
]


@pytest.mark.parametrize("text,message", BAD_INTERFACES)
def test_parse_interfaces_rejects(text, message):
    """A malformed interface list raises ValueError saying what is wrong."""
    with pytest.raises(ValueError) as info:
        parse_interfaces(text)
    assert message in str(info.value)


def test_interfaces_key_wins_over_legacy_port(tmp_path):
    """When a file has both `interfaces` and the old `port`, `interfaces` is used."""
    cfg = load_text(tmp_path, "[web]\ninterfaces = 10.0.0.1:9000\ninterface = 0.0.0.0\nport = 1234\n")
    assert cfg.interfaces == (("10.0.0.1", 9000),)


LEGACY = [
    ("[web]\ninterface = 0.0.0.0\nport = 7655\n", (("0.0.0.0", 7655),)),
    ("[web]\nport = 8000\n", (("127.0.0.1", 8000),)),
    ("[web]\ninterface = [::1]\nport = 7654\n", (("::1", 7654),)),
]


@pytest.mark.parametrize("text,expected", LEGACY)
def test_legacy_interface_and_port_keys(tmp_path, text, expected):
    """Pre-0.4 files with `interface` and `port` (and no `interfaces`) still choose the listening address."""
    assert load_text(tmp_path, text).interfaces == expected


def test_legacy_port_out_of_range(tmp_path):
    """A legacy `port` outside 1-65535 is refused like any other bad interface."""
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, "[web]\nport = 70000\n")
    assert str(info.value).startswith("[web] ")
    assert "70000" in str(info.value)


# --------------------------------------------------------------------------- sizes

SIZES = [
    ("64M", 64 << 20),
    ("512K", 512 << 10),
    ("2G", 2 << 30),
    ("1T", 1 << 40),
    ("1024", 1024),
    ("0", 0),
    ("64m", 64 << 20),
    ("64MB", 64 << 20),
    ("64MiB", 64 << 20),
    ("10kb", 10 << 10),
    ("100B", 100),
    (" 7 K ", 7 << 10),
]


@pytest.mark.parametrize("text,expected", SIZES)
def test_parse_size(text, expected):
    """Sizes take an optional K/M/G/T suffix (binary units); plain numbers are bytes."""
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["12Q", "", "M", "1.5M", "-1M", "64 MBs", "ten", "0x10"])
def test_parse_size_rejects(text):
    """Anything but a whole number with an optional unit raises ValueError with an example."""
    with pytest.raises(ValueError) as info:
        parse_size(text)
    assert str(info.value) == f"{text!r} is not a size; write e.g. 512K, 64M or 2G"


@pytest.mark.parametrize("text,expected", SIZES[:5])
def test_sizes_in_file(tmp_path, text, expected):
    """max-archive-size in the file accepts the same size syntax."""
    assert load_text(tmp_path, f"[scrapy-do]\nmax-archive-size = {text}\n").max_archive_size == expected


# --------------------------------------------------------------------------- bad values

BAD_VALUES = [
    # section, key, value, expected fragment of the message after "[section] key: "
    ("scrapy-do", "job-slots", "0", "'0' must be at least 1"),
    ("scrapy-do", "job-slots", "-2", "'-2' must be at least 1"),
    ("scrapy-do", "job-slots", "abc", "'abc' is not a whole number"),
    ("scrapy-do", "job-slots", "2.5", "'2.5' is not a whole number"),
    ("scrapy-do", "job-slots", "", "'' is not a whole number"),
    ("scrapy-do", "completed-cap", "-1", "'-1' must not be negative"),
    ("scrapy-do", "completed-cap", "many", "'many' is not a whole number"),
    ("scrapy-do", "cancel-grace", "x", "'x' is not a number"),
    ("scrapy-do", "cancel-grace", "-0.5", "'-0.5' must not be negative"),
    ("scrapy-do", "cancel-grace", "nan", "'nan' must not be negative"),
    ("scrapy-do", "max-archive-size", "12Q", "'12Q' is not a size"),
    ("scrapy-do", "max-archive-size", "0", "'0' must be positive"),
    ("scrapy-do", "max-unpacked-size", "lots", "'lots' is not a size"),
    ("scrapy-do", "max-unpacked-size", "0M", "'0M' must be positive"),
    ("scrapy-do", "max-archive-files", "0", "'0' must be positive"),
    ("scrapy-do", "max-archive-files", "1e3", "'1e3' is not a whole number"),
    ("scrapy-do", "spider-list-timeout", "0", "'0' must be positive"),
    ("scrapy-do", "spider-list-timeout", "soon", "'soon' is not a number"),
    ("scrapy-do", "project-store", "", "must name a directory"),
    ("web", "interfaces", "nohost", "'nohost' is not HOST:PORT"),
    ("web", "interfaces", "127.0.0.1:70000", "port 70000 in '127.0.0.1:70000' is out of range"),
    ("web", "interfaces", "", "no interface given"),
    ("web", "https", "maybe", "'maybe' is not on/off, yes/no, true/false or 1/0"),
    ("web", "https", "", "'' is not on/off"),
    ("web", "auth", "2", "'2' is not on/off"),
]


@pytest.mark.parametrize("section,key,value,fragment", BAD_VALUES)
def test_bad_value_names_section_and_key(tmp_path, section, key, value, fragment):
    """Each invalid value raises ConfigError whose message starts with `[section] key:` and says why."""
    with pytest.raises(ConfigError) as info:
        load_text(tmp_path, f"[{section}]\n{key} = {value}\n")
    message = str(info.value)
    assert message.startswith(f"[{section}] {key}: ")
    assert fragment in message
    assert (info.value.section, info.value.key) == (section, key)
    assert info.value.msg == message


# --------------------------------------------------------------------------- unusable files


def test_missing_file(tmp_path):
    """A config path that does not exist raises ConfigError naming the path and the reason."""
    missing = tmp_path / "nope.conf"
    with pytest.raises(ConfigError) as info:
        load(missing, cwd=tmp_path)
    message = str(info.value)
    assert message.startswith(f"{missing}: ")
    assert "cannot read" in message
    assert message.endswith("No such file or directory")


def test_directory_as_file(tmp_path):
    """A directory given as the config file raises ConfigError, not IsADirectoryError."""
    with pytest.raises(ConfigError) as info:
        load(tmp_path, cwd=tmp_path)
    message = str(info.value)
    assert message.startswith(f"{tmp_path}: ")
    assert "cannot read" in message and "Is a directory" in message


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path):
    """A file without read permission raises ConfigError saying it cannot be read."""
    path = write_conf(tmp_path, "[scrapy-do]\n")
    path.chmod(0)
    try:
        with pytest.raises(ConfigError) as info:
            load(path, cwd=tmp_path)
    finally:
        path.chmod(0o600)
    assert "Permission denied" in str(info.value)


NOT_INI = [
    ("hello world\n", "File contains no section headers"),
    ("[scrapy-do\njob-slots = 3\n", "File contains no section headers"),
    ("[scrapy-do]\njob-slots = 3\njob-slots = 4\n", "option 'job-slots' in section 'scrapy-do' already exists"),
    ("[web]\n[web]\n", "section 'web' already exists"),
    ("[web]\nthis line has no equals sign\n", "Source contains parsing errors"),
]


@pytest.mark.parametrize("text,fragment", NOT_INI)
def test_not_an_ini_file(tmp_path, text, fragment):
    """A file that is not valid INI raises ConfigError naming the file and the parse problem."""
    path = write_conf(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load(path, cwd=tmp_path)
    message = str(info.value)
    assert message.startswith(f"{path}: not a valid INI file (")
    assert fragment in message


@pytest.mark.parametrize("data", [b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "[web]\nkey = caf\xe9.key\n".encode("latin-1")])
def test_non_utf8_file(tmp_path, data):
    """A file that is not UTF-8 text raises ConfigError naming the file instead of crashing."""
    path = tmp_path / "binary.conf"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        load(path, cwd=tmp_path)
    assert str(info.value) == f"{path}: not UTF-8 text; save the configuration as UTF-8"


def test_timezone_names_the_zone_of_calendar_rules(tmp_path):
    """`timezone = Europe/Berlin` gives that zone (with its DST rules) and its name."""
    conf = tmp_path / "c.conf"
    conf.write_text("[scrapy-do]\ntimezone = Europe/Berlin\n")
    cfg = load(conf, cwd=tmp_path)
    from datetime import datetime
    assert cfg.timezone == "Europe/Berlin"
    assert datetime(2026, 7, 1, tzinfo=cfg.zone).utcoffset().total_seconds() == 7200
    assert datetime(2026, 12, 1, tzinfo=cfg.zone).utcoffset().total_seconds() == 3600


def test_unknown_timezone_stops_start_up(tmp_path):
    """A zone the tz database does not know is a ConfigError naming the key and an example."""
    conf = tmp_path / "c.conf"
    conf.write_text("[scrapy-do]\ntimezone = Mars/Olympus\n")
    with pytest.raises(ConfigError) as info:
        load(conf, cwd=tmp_path)
    assert str(info.value).startswith("[scrapy-do] timezone: unknown time zone 'Mars/Olympus'")
    assert "Europe/Berlin" in str(info.value)


def test_empty_timezone_is_the_machines_zone_from_tz(tmp_path, monkeypatch):
    """Without a `timezone`, the TZ environment variable names the zone."""
    monkeypatch.setenv("TZ", "America/New_York")
    cfg = load(cwd=tmp_path)
    assert cfg.timezone == "America/New_York"


@pytest.mark.parametrize("value, july_offset", [
    ("Europe/Berlin", 7200), (":Europe/Berlin", 7200), ("CET-1CEST,M3.5.0,M10.5.0/3", 7200), ("UTC0", 0)])
def test_tz_environment_forms(tmp_path, monkeypatch, value, july_offset):
    """TZ may be an IANA name (with libc's optional colon) or a POSIX rule; each gives its zone."""
    from datetime import datetime

    monkeypatch.setenv("TZ", value)
    cfg = load(cwd=tmp_path)
    assert datetime(2026, 7, 1, tzinfo=cfg.zone).utcoffset().total_seconds() == july_offset


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/localtime", "Europe/../Berlin", "Mars/Olympus", ""])
def test_timezone_accepts_only_iana_names(tmp_path, name):
    """A path or anything but a known IANA name in `timezone` is refused, never opened as a file."""
    conf = tmp_path / "c.conf"
    conf.write_text(f"[scrapy-do]\ntimezone = {name or '/'}\n")
    with pytest.raises(ConfigError, match="unknown time zone"):
        load(conf, cwd=tmp_path)
