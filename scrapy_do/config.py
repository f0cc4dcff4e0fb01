"""Configuration: the original 0.5.0 INI sections and keys, validated up front.

`load()` reads the embedded defaults, then the user's file, and returns a
frozen `Config`; any bad value raises `ConfigError` naming the key, so the
daemon refuses to start instead of running half-configured.
"""

import configparser
import ipaddress
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from scrapy_do.domain import zones
from scrapy_do.domain.urls import url_problem
from scrapy_do.errors import ConfigError

_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_ADDRESS = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<host>[^:\[\]]+)):(?P<port>\d+)$")


@dataclass(frozen=True)
class Config:
    """Everything the daemon needs to know, with paths made absolute."""

    project_store: Path
    database: Path
    job_slots: int = 3
    completed_cap: int = 50
    cancel_grace: float = 10.0
    max_archive_size: int = 64 << 20
    max_unpacked_size: int = 512 << 20
    max_archive_files: int = 10000
    spider_list_timeout: float = 60.0
    max_log_size: int = 128 << 20
    interfaces: tuple = (("127.0.0.1", 7654),)
    https: bool = False
    key: Path | None = None
    cert: Path | None = None
    chain: Path | None = None
    auth: bool = False
    auth_db: Path | None = None
    timezone: str = "UTC"
    zone: object = zones.UTC
    allowed_hosts: tuple = ()
    max_connections: int = 512
    header_timeout: float = 10.0
    max_uploads: int = 2
    max_event_clients: int = 64
    metrics_auth: bool = True
    crawl_user: str = ""
    job_timeout: int = 0
    max_per_spider: int = 0
    keep_items: bool = True
    max_items_size: int = 1 << 30
    fail_on_errors: bool = False
    environments: Path | None = None  # None: <project-store>/envs
    index_url: str = ""
    extra_index_urls: tuple = ()
    find_links: tuple = ()
    environment_build_timeout: float = 600.0
    backend: str = "local"
    ray_address: str = "http://127.0.0.1:8265"
    ray_entrypoint_num_cpus: float = 1.0
    ray_runtime_env: dict = field(default_factory=dict)
    ray_report_url: str = ""
    ray_poll_interval: float = 1.0
    log_format: str = "text"
    warm_start: bool = True
    warm_parents: int = 4
    warm_idle: float = 900.0
    tokens_db: Path | None = None
    trusted_proxies: tuple = ()  # ipaddress networks whose X-Forwarded-Proto: https is believed
    webhooks: tuple = ()  # Hook(url, events) per line of [webhooks] hooks
    webhook_secret: str = ""
    webhook_timeout: float = 10.0
    webhook_concurrency: int = 4
    webhook_retry_for: float = 86400.0
    webhook_first_retry: float = 10.0
    source: str = "<defaults>"

    @property
    def log_dir(self):
        return self.project_store / "log-dir"

    @property
    def spider_data_dir(self):
        return self.project_store / "spider-data"


def parse_size(text):
    """'64M' -> 67108864; plain numbers are bytes."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"{text!r} is not a size; write e.g. 512K, 64M or 2G")
    return int(m.group(1)) * _SIZE_UNITS[m.group(2).lower()]


def parse_interfaces(text):
    """'127.0.0.1:7654 [::1]:7654' -> (('127.0.0.1', 7654), ('::1', 7654))."""
    out = []
    for item in text.split():
        m = _ADDRESS.match(item)
        if not m:
            raise ValueError(f"{item!r} is not HOST:PORT (IPv6 as [::1]:7654)")
        port = int(m.group("port"))
        if not 0 <= port < 65536:
            raise ValueError(f"port {port} in {item!r} is out of range 0-65535 (0 picks a free port)")
        out.append((m.group("v6") or m.group("host"), port))
    if not out:
        raise ValueError("no interface given; write e.g. 127.0.0.1:7654")
    return tuple(out)


def _defaults():
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(resources.files("scrapy_do").joinpath("default.conf").read_text())
    return parser


def load(path=None, cwd=None):
    """Read defaults plus `path` (if given) into a validated `Config`.

    Relative paths in the file are taken relative to `cwd` (the working
    directory by default), as the original did for `project-store`.
    """
    base = Path(cwd or os.getcwd())
    parser = _defaults()
    if path is not None:
        path = Path(path).expanduser()
        user = configparser.ConfigParser(interpolation=None)
        try:
            with open(path, encoding="utf-8") as f:
                user.read_file(f, source=str(path))
        except OSError as e:
            raise ConfigError(None, str(path), f"cannot read the configuration file: {e.strerror}") from None
        except configparser.Error as e:
            raise ConfigError(None, str(path), f"not a valid INI file ({str(e).splitlines()[0]})") from None
        except UnicodeDecodeError:
            raise ConfigError(None, str(path), "not UTF-8 text; save the configuration as UTF-8") from None
        parser.read_dict(user)
        if user.has_option("web", "port") and not user.has_option("web", "interfaces"):
            # Files older than 0.4 had `interface` and `port` instead of `interfaces`.
            host = user.get("web", "interface", fallback="127.0.0.1").strip()
            parser.set("web", "interfaces", f"{host}:{user.get('web', 'port').strip()}")
    return _build(parser, base, str(path) if path else "<defaults>")


def _get(parser, section, key, convert, check=None, problem=None):
    raw = parser.get(section, key, fallback="").strip()
    try:
        value = convert(raw)
    except ValueError as e:
        raise ConfigError(section, key, str(e)) from None
    if check is not None and not check(value):
        raise ConfigError(section, key, f"{raw!r} {problem}")
    return value


def _int(raw):
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a whole number") from None


def _float(raw):
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{raw!r} is not a number") from None


def _bool(raw):
    states = configparser.ConfigParser.BOOLEAN_STATES
    if raw.lower() not in states:
        raise ValueError(f"{raw!r} is not on/off, yes/no, true/false or 1/0")
    return states[raw.lower()]


def _backend(raw):
    if raw.lower() not in ("local", "ray"):
        raise ValueError(f"{raw!r} is not a backend: use local (crawls on this machine) or ray (on a Ray cluster)")
    return raw.lower()


def _http_url(raw):
    if not re.match(r"^https?://[^/\s]+(/\S*)?$", raw):
        raise ValueError(f"{raw!r} is not an http:// or https:// address such as http://127.0.0.1:8265")
    return raw.rstrip("/")


def _runtime_env(raw):
    """Extra keys of every Ray submission's runtime_env: a JSON object."""
    if not raw:
        return {}
    import json

    try:
        value = json.loads(raw)
    except ValueError as e:
        raise ValueError(f"is not JSON ({e}); write a JSON object such as {{\"env_vars\": {{\"A\": \"1\"}}}}") \
            from None
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object such as {\"env_vars\": {\"A\": \"1\"}}")
    if "working_dir" in value:
        raise ValueError("'working_dir' is the daemon's: each crawl gets its project version's tree")
    for key, kind, word in (("env_vars", dict, "object"), ("py_modules", list, "array"),
                            ("pip", (list, dict), "array or object")):
        if key in value and not isinstance(value[key], kind):
            raise ValueError(f"{key!r} must be a JSON {word}")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.get("env_vars", {}).items()):
        raise ValueError("env_vars must map names to strings")
    return value


def _log_format(raw):
    if raw.lower() not in ("text", "json"):
        raise ValueError(f"{raw!r} is not a log format: use text (lines for people) or json (an object per line)")
    return raw.lower()


def _networks(raw):
    """trusted-proxies: addresses or networks (10.0.0.0/8), space- or comma-separated."""
    out = []
    for item in raw.replace(",", " ").split():
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network such as 127.0.0.1 or 10.0.0.0/8") from None
    return tuple(out)


#: What a webhook may ask to hear of.
WEBHOOK_EVENTS = ("job-ended", "job-failed", "schedule-skipped", "project-pushed")


@dataclass(frozen=True)
class Hook:
    url: str
    events: frozenset


def _hooks(raw):
    """One hook per line: `URL [EVENT ...]`; no events: all of them."""
    out = []
    for line in raw.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        url, events = words[0], words[1:]
        problem = url_problem(url)
        if problem:
            raise ValueError(f"{url[:80]!r} {problem}; write one hook per line as URL [EVENT ...], the URL "
                             "http:// or https://")
        unknown = [e for e in events if e not in WEBHOOK_EVENTS]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not an event; events are {', '.join(WEBHOOK_EVENTS)}")
        out.append(Hook(url, frozenset(events or WEBHOOK_EVENTS)))
    return tuple(out)


def _secret(parser, base):
    """[webhooks] secret, or the first line of secret-file (kept out of a world-readable configuration)."""
    secret = parser.get("webhooks", "secret", fallback="").strip()
    name = parser.get("webhooks", "secret-file", fallback="").strip()
    if name:
        if secret:
            raise ConfigError("webhooks", "secret-file", "give secret or secret-file, not both")
        try:
            with open(base / Path(name).expanduser(), encoding="utf-8") as f:
                secret = f.readline().strip()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError("webhooks", "secret-file", f"cannot read {name}: {getattr(e, 'strerror', e)}") \
                from None
        if not secret:
            raise ConfigError("webhooks", "secret-file", f"{name} is empty; put the secret on its first line")
    return secret


def _links(text, base):
    """find-links entries: URLs as they are, folders made absolute against the configuration's folder."""
    out = []
    for item in text.split():
        out.append(item if "://" in item else str((Path(base) / Path(item).expanduser()).resolve()))
    return out


def _build(parser, base, source):
    def path(section, key):
        raw = parser.get(section, key, fallback="").strip()
        return (base / Path(raw).expanduser()) if raw else None

    sd, web, ex = "scrapy-do", "web", "executor"
    store = path(sd, "project-store")
    if store is None:
        raise ConfigError(sd, "project-store", "must name a directory")
    try:
        interfaces = parse_interfaces(parser.get(web, "interfaces", fallback=""))
    except ValueError as e:
        raise ConfigError(web, "interfaces", str(e)) from None
    try:
        zone, zone_name = zones.resolve_zone(parser.get(sd, "timezone", fallback=""))
    except ValueError as e:
        raise ConfigError(sd, "timezone", str(e)) from None
    hosts = tuple(h.lower() for h in parser.get(web, "allowed-hosts", fallback="").replace(",", " ").split())
    return Config(
        project_store=store,
        database=path(sd, "database") or store / "scrapy-do.db",
        job_slots=_get(parser, sd, "job-slots", _int, lambda v: v >= 1, "must be at least 1"),
        completed_cap=_get(parser, sd, "completed-cap", _int, lambda v: v >= 0, "must not be negative"),
        cancel_grace=_get(parser, sd, "cancel-grace", _float, lambda v: v >= 0, "must not be negative"),
        max_archive_size=_get(parser, sd, "max-archive-size", parse_size, lambda v: v > 0, "must be positive"),
        max_unpacked_size=_get(parser, sd, "max-unpacked-size", parse_size, lambda v: v > 0, "must be positive"),
        max_archive_files=_get(parser, sd, "max-archive-files", _int, lambda v: v > 0, "must be positive"),
        spider_list_timeout=_get(parser, sd, "spider-list-timeout", _float, lambda v: v > 0, "must be positive"),
        max_log_size=_get(parser, sd, "max-log-size", parse_size),
        interfaces=interfaces,
        https=_get(parser, web, "https", _bool),
        key=path(web, "key"),
        cert=path(web, "cert"),
        chain=path(web, "chain"),
        auth=_get(parser, web, "auth", _bool),
        auth_db=path(web, "auth-db"),
        timezone=zone_name,
        zone=zone,
        allowed_hosts=hosts,
        max_connections=_get(parser, web, "max-connections", _int, lambda v: v >= 8, "must be at least 8"),
        header_timeout=_get(parser, web, "header-timeout", _float, lambda v: v > 0, "must be positive"),
        max_uploads=_get(parser, web, "max-uploads", _int, lambda v: v >= 1, "must be at least 1"),
        max_event_clients=_get(parser, web, "max-event-clients", _int, lambda v: v >= 1, "must be at least 1"),
        metrics_auth=_get(parser, web, "metrics-auth", _bool),
        crawl_user=parser.get(sd, "crawl-user", fallback="").strip(),
        max_per_spider=_get(parser, sd, "max-per-spider", _int, lambda v: v >= 0, "must be 0 (no cap) or more"),
        job_timeout=_get(parser, sd, "job-timeout", _int, lambda v: 0 <= v <= 604800,
                         "must be 0 (no limit) to 604800 seconds"),
        keep_items=_get(parser, sd, "keep-items", _bool),
        max_items_size=_get(parser, sd, "max-items-size", parse_size, lambda v: v > 0,
                            "must be positive; turn items off with keep-items = off"),
        fail_on_errors=_get(parser, sd, "fail-on-errors", _bool),
        environments=path(sd, "environments") or store / "envs",
        index_url=parser.get(sd, "index-url", fallback="").strip(),
        extra_index_urls=tuple(parser.get(sd, "extra-index-url", fallback="").split()),
        find_links=tuple(_links(parser.get(sd, "find-links", fallback=""), base)),
        environment_build_timeout=_get(parser, sd, "environment-build-timeout", _float, lambda v: v > 0,
                                       "must be positive"),
        backend=_get(parser, ex, "backend", _backend),
        ray_address=_get(parser, ex, "ray-address", _http_url),
        ray_entrypoint_num_cpus=_get(parser, ex, "ray-entrypoint-num-cpus", _float, lambda v: v >= 0,
                                     "must not be negative (0: the crawl reserves no CPU)"),
        ray_runtime_env=_get(parser, ex, "ray-runtime-env", _runtime_env),
        ray_report_url=_get(parser, ex, "ray-report-url", lambda raw: _http_url(raw) if raw else ""),
        ray_poll_interval=_get(parser, ex, "ray-poll-interval", _float, lambda v: 0.1 <= v <= 60,
                               "must be 0.1 to 60 seconds"),
        log_format=_get(parser, sd, "log-format", _log_format),
        warm_start=_get(parser, sd, "warm-start", _bool),
        warm_parents=_get(parser, sd, "warm-parents", _int, lambda v: 0 <= v <= 64,
                          "must be 0 to 64 (0 starts every crawl cold)"),
        warm_idle=_get(parser, sd, "warm-idle", _float, lambda v: v > 0, "must be positive (seconds)"),
        tokens_db=path(web, "tokens-db"),
        trusted_proxies=_get(parser, web, "trusted-proxies", _networks),
        webhooks=_get(parser, "webhooks", "hooks", _hooks),
        webhook_secret=_secret(parser, base),
        webhook_timeout=_get(parser, "webhooks", "timeout", _float, lambda v: 0 < v <= 300,
                             "must be more than 0 and at most 300 seconds"),
        webhook_concurrency=_get(parser, "webhooks", "concurrency", _int, lambda v: 1 <= v <= 64,
                                 "must be 1 to 64"),
        webhook_retry_for=_get(parser, "webhooks", "retry-for", _float, lambda v: 0 <= v <= 7 * 86400,
                               "must be 0 to 604800 seconds"),
        webhook_first_retry=_get(parser, "webhooks", "first-retry", _float, lambda v: 0.1 <= v <= 3600,
                                 "must be 0.1 to 3600 seconds"),
        source=source,
    )
