"""The REST API of the Scrapy Do contract, as one Klein app on an object.

Handlers only translate HTTP to controller calls; every error is a
ScrapyDoError (or a routing error) mapped to a status code in ERROR_CODES,
in one place.
"""

import errno
import functools
import json
import os
import re
import time
from pathlib import Path
from urllib.parse import quote

import psutil
from klein import Klein
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import resource as web_resource
from twisted.web.static import File
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from scrapy_do import errors
from scrapy_do.engine.controller import LOG_KINDS, UUID
from scrapy_do.errors import BadRequest
from scrapy_do.domain import spec as specs
from scrapy_do.domain import zones
from scrapy_do.launchers.logfiles import LogHub
from scrapy_do.web.sse import EventStream
from scrapy_do.web.channel import GuardedSite, connection_cap
from scrapy_do.web.logs import LogFollower, SafeFile, bounded_int, finished_log, parse_open_range
from scrapy_do.domain.models import JobStatus, RunOptions
from scrapy_do.domain.options import (
    EDITABLE_OPTIONS, OPTION_FIELDS, SCHEDULE_PARAMS, param_name, parse_switch, schedule_settings,
)
from scrapy_do.domain.records import to_record
from scrapy_do.events import JobChanged
from scrapy_do.web.items import CsvProducer
from scrapy_do.web.openapi import openapi_document
from scrapy_do.web.request import LimitedRequest, UploadSlots

log = Logger(namespace="scrapy_do.web.api")

ERROR_CODES = [
    (errors.TooLarge, 413),
    (errors.StorageFull, 507),
    (errors.Starting, 503),
    (errors.BadRequest, 400),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.Forbidden, 403),
    (errors.ScrapyDoError, 400),
]

#: What schedule-job.json takes: the project, the spec, the run options and how a schedule runs.
SCHEDULE_FIELDS = {"project", "when", *(param_name(f) for f in OPTION_FIELDS), *SCHEDULE_PARAMS}
#: What edit-job.json takes.
EDIT_FIELDS = {"job_id", "id", "when", *(param_name(f) for f in OPTION_FIELDS if f.name in EDITABLE_OPTIONS),
               *SCHEDULE_PARAMS}

#: Data files served as text (the rest as bytes); always as attachments.
TEXT_DATA = {"json", "jsonl", "jl", "csv", "txt", "log", "tsv", "ndjson"}

#: The largest stats report a crawl may send.
MAX_REPORT = 1 << 20
#: The largest batch of items a crawl may send at once.
MAX_BATCH = 8 << 20

#: The longest wait-job.json waits, in seconds.
MAX_WAIT = 3600

#: Any parameter other than the archive.
MAX_FIELD = 64 << 10
#: Room for multipart framing and the other fields of a push.
BODY_SLACK = 1 << 20
UI_DIR = Path(__file__).parents[1] / "ui"
_LOG_NAME = re.compile(rf"^({UUID.pattern[1:-1]})\.({'|'.join(LOG_KINDS)})$")
JSON_LINES = "application/x-ndjson; charset=utf-8"


def format_uptime(seconds):
    """1d 12m 24s, as the original printed it (zero parts left out)."""
    seconds = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    parts.append(f"{seconds}s")
    return " ".join(parts)


def to_json(request, data, code=200):
    # Exactly 'application/json': the 0.5.0 client compares the header verbatim.
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


def error_body(request, code, msg):
    return to_json(request, {"status": "error", "msg": msg}, code)


def not_found_body(request):
    """The API's JSON 404 for a path it does not serve."""
    return error_body(request, 404, f"no such endpoint {request.path.decode('utf-8', 'replace')!r}; "
                                    "see /openapi.json")


class NotFound(web_resource.Resource):
    """The API's JSON 404, as a resource (for twisted.web.static.File's dead ends)."""

    isLeaf = True

    def render(self, request):
        body = not_found_body(request)
        return b"" if request.method == b"HEAD" else body

    def getChildWithDefault(self, path, request):
        return self


def _finished_file(request, path, content_type, what):
    """A file the daemon wrote and no longer writes (a log, items, a build log): ranges as `_static_range`
    normalises them, through a descriptor opened without following a link."""
    refused = _static_range(request, path.stat().st_size, what)
    if refused is not None:
        return refused
    resource = finished_log(str(path), defaultType=content_type)
    resource.type, resource.encoding = content_type, None
    resource.childNotFound = resource.forbidden = NotFound()  # a file removed meanwhile: JSON, not HTML
    return resource


def _bearer(request):
    """The token of a crawl's report (Authorization: Bearer ...); empty when it sends none."""
    scheme, _, token = (request.getHeader(b"authorization") or b"").decode("latin-1").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _report_body(request, limit, what):
    """A report's body, refused when longer than `limit` bytes."""
    body = request.content.read(limit + 1) if request.content is not None else b""
    if len(body) > limit:
        raise errors.TooLarge(f"{what} is larger than {limit} bytes")
    return body


class HotRoutes:
    """GET /status.json, the most asked-for route (dashboards, monitors, readiness checks), answered without
    Klein's routing and Deferred plumbing: they were a third of its cost (bench/peers.py). Everything else,
    and this route whenever it has anything but a plain answer to give, goes to the Klein app, the one place
    errors become HTTP answers."""

    isLeaf = True

    def __init__(self, resource, api):
        self._resource = resource
        self._api = api

    def render(self, request):
        if request.method == b"GET" and request.path == b"/status.json" and self._api.controller.ready:
            try:
                return to_json(request, self._api._status())
            except Exception:  # noqa: BLE001 -- answered below, by the route, as every error is
                pass
        return self._resource.render(request)


class ReportsOnly:
    """The API's report endpoints and nothing else (the loopback listener an HTTPS daemon's crawls report to)."""

    isLeaf = False
    PREFIX = b"/report/"

    def __init__(self, resource):
        self._resource = resource

    def _allowed(self, request):
        return self._resource if request.path.startswith(self.PREFIX) else NotFound()

    def render(self, request):
        return self._allowed(request).render(request)

    def getChildWithDefault(self, path, request):
        request.postpath.insert(0, request.prepath.pop())
        return self._allowed(request)


class UIFiles(File):
    """The dashboard's files under /ui/: regular files only, no directory listings, no index pages.

    A folder (with or without its trailing slash), a missing or unreadable file is the API's JSON 404.
    Being a subclass, this holds for every File it creates for the folders below it.
    """

    contentTypes = {**File.contentTypes, ".js": "text/javascript", ".mjs": "text/javascript",
                    ".css": "text/css", ".svg": "image/svg+xml"}
    indexNames = []
    childNotFound = NotFound()
    forbidden = NotFound()

    def directoryListing(self):
        return self.childNotFound

    def render_GET(self, request):
        self.restat(False)
        if self.isdir():
            return self.childNotFound.render(request)
        return super().render_GET(request)

    render_HEAD = render_GET


def _static_range(request, size, what="the log"):
    """Normalise the Range of a finished log before twisted.web.static.File sees it.

    File mishandles suffix ranges longer than the file and some sets of
    ranges (500s, hung connections). We serve one range: a set of several is
    ignored (a full 200, which RFC 9110 allows), a malformed header too, and
    an unsatisfiable one is our JSON 416. Returns an error body or None.
    """
    header = (request.getHeader(b"range") or b"").decode("latin-1").strip()
    if not header:
        return None
    m = re.fullmatch(r"bytes\s*=\s*([0-9]*)\s*-\s*([0-9]*)", header)
    if not m or not (m.group(1) or m.group(2)):
        request.requestHeaders.removeHeader(b"range")
        return None
    first, last = (bounded_int(g) if g else None for g in m.groups())
    if first is not None:
        start, end = first, min(last, size - 1) if last is not None else size - 1
        if last is not None and last < start:
            request.requestHeaders.removeHeader(b"range")
            return None
    else:
        start, end = max(0, size - last), size - 1
        if last == 0:
            start = size
    if start >= size:
        request.setHeader(b"content-range", f"bytes */{size}".encode())
        return error_body(request, 416, f"{what} has {size} bytes; ask for a range that starts within it")
    request.requestHeaders.setRawHeaders(b"range", [f"bytes={start}-{end}".encode()])
    return None


class WebAPI:
    app = Klein()
    # '//' must not redirect somewhere else: answer the path as given.
    app.url_map.merge_slashes = False

    def __init__(self, controller, config, reactor=None, watcher=None, metrics=None, webhooks=None, warm=None):
        self.controller = controller
        self.config = config
        #: launchers.warmpool.WarmPool: the warm parents status.json shows; None: warm starts are off.
        self.warm = warm
        #: engine.webhooks.Webhooks: what /webhooks.json shows; None: an empty answer.
        self.webhooks = webhooks
        #: scrapy_do.metrics.Metrics: /metrics, and each answered request counted; None: no /metrics.
        self.metrics = metrics
        self._routes = self.app.url_map.bind("localhost")
        self._endpoint = functools.lru_cache(maxsize=1024)(self._match_endpoint)
        self._reactor = reactor
        # Followers of a running log hear of each write from the daemon's LogHub.
        self._watcher = watcher if watcher is not None else LogHub()
        self._events = None
        self._process = psutil.Process()
        self._warm_sample = (float("-inf"), 0, 0.0)
        self._process.cpu_percent()
        self._sample = (float("-inf"), 0.0, 0.0)

    def site(self, wrap=None, reports_only=False):
        """A Site serving this API (through `wrap`, e.g. authentication), refusing bodies over the limit;
        `reports_only`: its report endpoints only.

        It gives each request `header-timeout` seconds for its headers and serves at most
        `max-connections` connections at once, fewer if the open-file limit needs it (see web.channel).
        """
        limit = self.config.max_archive_size + BODY_SLACK
        resource = HotRoutes(self.app.resource(), self)

        class Request(LimitedRequest):
            max_body = limit
            # Every part over MAX_FIELD is refused but the archive, which the store reads from its file.
            spool_at = MAX_FIELD
            spool_dir = str(self.config.project_store)
            protected = resource
            uploads = UploadSlots(self.config.max_uploads)
            upload_paths = frozenset({b"/push-project.json"})

        cap, files, reserve = connection_cap(self.config.max_connections, self.config.job_slots,
                                             self.config.max_uploads)
        root = wrap(resource) if wrap else resource
        if reports_only:
            root = ReportsOnly(root)
        site = GuardedSite(root, cap, self.config.header_timeout,
                           limit=files, reserve=reserve, reactor=self._reactor)
        site.requestFactory = Request
        site.displayTracebacks = False
        # No access log: a dashboard polling status.json would flood the
        # journal, and each line costs more than answering the request. Twisted calls it once per
        # answered request: where the metrics count them.
        site.log = self._answered if self.metrics is not None else (lambda request: None)
        return site

    def _answered(self, request):
        self.metrics.request_done(self._endpoint(request.path, request.method), request.code)

    def _match_endpoint(self, path, method):
        """The route a path and method match, for the metrics (kept per path in `_endpoint`: werkzeug's
        match is ~40 µs, and most requests repeat a handful of paths)."""
        try:
            rule, _ = self._routes.match(path.decode("latin-1"), method=method.decode("latin-1"), return_rule=True)
            return rule.rule
        except Exception:  # no such route (404, 405) or a path werkzeug cannot read
            return "unmatched"

    # -- helpers ----------------------------------------------------------

    def _arg(self, request, name, required=True, default=None, limit=MAX_FIELD):
        if name.encode() in getattr(request, "files", {}):  # only parts over MAX_FIELD are kept in files
            raise errors.TooLarge(f"parameter {name!r} is longer than {MAX_FIELD} bytes")
        values = request.args.get(name.encode())
        if not values:
            if required:
                raise BadRequest(f"missing parameter {name!r}")
            return default
        raw = values[0]
        if len(raw) > limit:
            raise errors.TooLarge(f"parameter {name!r} is longer than {limit} bytes")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest(f"parameter {name!r} is not valid UTF-8") from None

    def _int_arg(self, request, name, default=None, minimum=0, maximum=10**9):
        raw = self._arg(request, name, required=False)
        if raw is None:
            return default
        if not re.fullmatch(r"-?[0-9]+", raw.strip()):
            raise BadRequest(f"parameter {name!r} must be a whole number, not {raw!r}")
        # Bounded before int(): past 4300 digits int() raises (and a number that long is over any maximum).
        digits = raw.strip().lstrip("-")
        value = (-1 if raw.strip().startswith("-") else 1) * bounded_int(digits, maximum + 1)
        if value < minimum:
            raise BadRequest(f"parameter {name!r} must be at least {minimum}")
        if value > maximum:
            raise BadRequest(f"parameter {name!r} must be at most {maximum}")
        return value

    def _check_size(self, request):
        if getattr(request, "upload_error", None) is not None:
            raise RuntimeError(f"the request body cannot be stored: {request.upload_error}")
        if getattr(request, "bad_body", None):
            raise BadRequest(request.bad_body)
        if getattr(request, "too_large", False):
            raise errors.TooLarge(f"the request is larger than {self.config.max_archive_size} bytes "
                                  "(max-archive-size); push a smaller archive")

    def _only(self, request, known, hint=""):
        """Refuse a field the endpoint does not know: silently ignoring it would run something else than asked."""
        sent = {k.decode("utf-8", "replace") for k in (*request.args, *getattr(request, "files", {}))}
        unknown = sorted(sent - set(known))
        if unknown:
            names = ", ".join(repr(name[:40]) for name in unknown[:5])
            raise BadRequest(f"unknown parameter{'s' if len(unknown) > 1 else ''} {names}; this endpoint takes "
                             f"{', '.join(sorted(known))}{hint}")

    # -- errors: the one table ------------------------------------------

    @app.handle_errors(errors.ScrapyDoError)
    def domain_error(self, request, failure):
        code = next(c for cls, c in ERROR_CODES if failure.check(cls))
        if code == 503:
            request.setHeader(b"retry-after", b"1")
        return error_body(request, code, failure.value.msg)

    @app.handle_errors(HTTPException)
    def routing_error(self, request, failure):
        exc = failure.value
        if isinstance(exc, MethodNotAllowed):
            allowed = ", ".join(m for m in exc.valid_methods if m != "HEAD")
            request.setHeader(b"allow", ", ".join(exc.valid_methods).encode())
            return error_body(request, 405, f"{request.method.decode()} is not allowed here; use {allowed}")
        if exc.code == 404:
            return not_found_body(request)
        return error_body(request, exc.code, exc.description or exc.name)

    @app.handle_errors
    def unexpected_error(self, request, failure):
        log.failure("unexpected error answering {uri}", failure=failure, uri=request.uri)
        return error_body(request, 500, "internal error; the daemon log has the details")

    def _usage(self):
        """Memory (MiB) and CPU (%) of the daemon, sampled at most once a second.

        Reading /proc costs more than the rest of status.json; CPU % is only
        meaningful over an interval anyway.
        """
        now = time.monotonic()
        taken, memory, cpu = self._sample
        if now - taken >= 1.0:
            memory = round(self._process.memory_info().rss / (1024 * 1024), 2)
            cpu = self._process.cpu_percent()
            self._sample = (now, memory, cpu)
        return memory, cpu

    def _warm_usage(self):
        """How many warm parents there are, and their resident memory (MiB) sampled at most once a second."""
        if self.warm is None:
            return 0, 0.0
        now = time.monotonic()
        taken, count, memory = self._warm_sample
        if now - taken >= 1.0 or count != self.warm.count():
            parents = self.warm.describe()
            count, memory = len(parents), round(sum(p["rss"] for p in parents) / (1024 * 1024), 2)
            self._warm_sample = (now, count, memory)
        return count, memory

    # -- endpoints --------------------------------------------------------

    @app.route("/status.json", methods=["GET"])
    def status(self, request):
        if not self.controller.ready:
            # A readiness check (systemd, a load balancer, a script) waits until crawls left over from the
            # previous run are stopped and the queue is whole again.
            raise errors.Starting("the daemon is starting: it is stopping the crawls its previous run left "
                                  "behind and recovering the queue; ask again in a moment")
        return to_json(request, self._status())

    def _status(self):
        data = {"status": "ok"}
        data.update(self.controller.status())
        data["memory-usage"], data["cpu-usage"] = self._usage()
        data["warm-start"] = "on" if self.warm is not None else "off"
        data["warm-parents"], data["warm-memory"] = self._warm_usage()
        data["uptime"] = format_uptime(data["uptime-seconds"])
        return data

    def _reactor_or_global(self):
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
        return self._reactor

    @app.route("/events", methods=["GET"])
    def events(self, request):
        """Server-Sent Events for the dashboard (and anyone): see scrapy_do.events."""
        if self._events is None:
            self._events = EventStream(self.controller, self._reactor_or_global(), self._status,
                                       max_clients=self.config.max_event_clients)
        return self._events.open(request)

    @app.route("/preview-schedule.json", methods=["GET"])
    def preview_schedule(self, request):
        when = self._arg(request, "when", required=False, default="now")
        count = self._int_arg(request, "count", default=5, minimum=1)
        if count > 50:
            raise BadRequest("parameter 'count' must be at most 50")
        # Times are shown in the zone the spec is read in: the schedule's own, else the daemon's.
        timezone = schedule_settings(self._getter(request)).get("timezone")
        zone = zones.resolve_zone(timezone)[0] if timezone else self.controller.zone
        now = self.controller.now()
        parsed = specs.parse(when)
        if parsed is None:
            return to_json(request, {"status": "ok", "when": "now", "next": [zones.show(now, zone)]})
        runs = specs.next_fires(parsed, now, count, zone)
        return to_json(request, {"status": "ok", "when": parsed.text, "next": [zones.show(t, zone) for t in runs]})

    @app.route("/push-project.json", methods=["POST"])
    @defer.inlineCallbacks
    def push_project(self, request):
        self._check_size(request)
        self._only(request, {"archive"})
        # A big archive is in a temporary file (LimitedRequest.files), a small one in memory.
        values = getattr(request, "files", {}).get(b"archive") or request.args.get(b"archive")
        archive = values[0] if values else None
        size = (len(archive) if isinstance(archive, bytes) else os.fstat(archive.fileno()).st_size) \
            if archive is not None else 0
        if not size:
            raise BadRequest("missing parameter 'archive': send the zipped project folder as a file field, "
                             "e.g. curl -F archive=@proj.zip")
        if size > self.config.max_archive_size:
            raise errors.TooLarge(f"the archive is larger than {self.config.max_archive_size} bytes "
                                  "(max-archive-size)")
        project = yield self.controller.push_project(archive)
        answer = {"status": "ok", "name": project.name, "spiders": list(project.spiders)}
        if project.environment:
            answer["environment"] = {k: v for k, v in project.environment.items() if k != "key"}
        return to_json(request, answer)

    @app.route("/list-projects.json", methods=["GET"])
    def list_projects(self, request):
        return to_json(request, {"status": "ok", "projects": self.controller.list_projects()})

    @app.route("/list-spiders.json", methods=["GET"])
    def list_spiders(self, request):
        name = self._arg(request, "project")
        return to_json(request, {"status": "ok", "project": name, "spiders": self.controller.list_spiders(name)})

    @app.route("/schedule-job.json", methods=["POST"])
    def schedule_job(self, request):
        self._check_size(request)
        self._only(request, SCHEDULE_FIELDS, '; spider arguments go in args, a JSON object such as '
                                             '{"category": "travel"}')
        project = self._arg(request, "project")
        get = self._getter(request)
        options = RunOptions.from_params(get)
        when = get("when")
        job = self.controller.schedule_job(project, options, when="now" if when is None else when,
                                           settings=schedule_settings(get))
        return to_json(request, {"status": "ok", "identifier": job.identifier})

    def _getter(self, request):
        return lambda name: self._arg(request, name, required=False)

    def _job_id(self, request, name="job_id"):
        """A job's identifier, as `job_id` or `id` (cancel-job's 0.5.0 name)."""
        job_id = self._arg(request, "job_id", required=False) or self._arg(request, "id", required=False)
        if job_id is None:
            raise BadRequest(f"missing parameter {name!r}: the identifier of the job")
        return job_id

    def _job_answer(self, request, job):
        return to_json(request, {"status": "ok", "job": to_record(job, self.controller.zone)})

    def _toggle(self, request, action):
        self._check_size(request)
        self._only(request, {"job_id", "id"})
        return self._job_answer(request, action(self._job_id(request)))

    @app.route("/pause-job.json", methods=["POST"])
    def pause_job(self, request):
        return self._toggle(request, self.controller.pause_job)

    @app.route("/resume-job.json", methods=["POST"])
    def resume_job(self, request):
        return self._toggle(request, self.controller.resume_job)

    @app.route("/edit-job.json", methods=["POST"])
    def edit_job(self, request):
        self._check_size(request)
        self._only(request, EDIT_FIELDS, "; spider arguments go in args")
        get = self._getter(request)
        job_id = self._job_id(request)
        job = self.controller.edit_job(job_id, when=get("when"), settings=schedule_settings(get),
                                       options=RunOptions.parse_given(get, EDITABLE_OPTIONS))
        return self._job_answer(request, job)

    @app.route("/wait-job.json", methods=["GET"])
    def wait_job(self, request):
        """Answer once the job has ended (`done`: true), or after `timeout` seconds with it as it is then."""
        timeout = self._int_arg(request, "timeout", default=60, minimum=0, maximum=MAX_WAIT)
        job = self.controller.get_job(self._job_id(request))
        if job.status.completed or timeout == 0:
            return self._waited(request, job, job.status.completed)
        answered = defer.Deferred()
        channel = request.channel
        idle = getattr(channel, "timeOut", None)
        channel.setTimeout(None)  # the wait itself is bounded; the idle timeout would cut it

        def finish(record, done):
            if not answered.called:
                cleanup()
                answered.callback(self._waited(request, record, done))

        def on_event(event):
            if isinstance(event, JobChanged) and event.job.identifier == job.identifier and \
                    event.job.status.completed:
                finish(event.job, True)

        def cleanup(_=None):
            unsubscribe()
            if timer.active():
                timer.cancel()
            if channel.transport is not None:
                channel.setTimeout(idle)

        unsubscribe = self.controller.subscribe(on_event)
        timer = self._reactor_or_global().callLater(
            timeout, lambda: finish(self.controller.store.get_job(job.identifier) or job, False))
        request.notifyFinish().addBoth(cleanup)
        return answered

    def _waited(self, request, job, done):
        return to_json(request, {"status": "ok", "done": bool(done), "job": to_record(job, self.controller.zone)})

    @app.route("/report/<job_id>.json", methods=["POST"])
    def report(self, request, job_id):
        """A crawl's stats report (scrapy_do.crawl.reporter), with its job's token instead of credentials."""
        self._check_size(request)
        body = _report_body(request, MAX_REPORT, "a report")
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            raise BadRequest("a report is a JSON object") from None
        if not isinstance(data, dict):
            raise BadRequest("a report is a JSON object")
        self.controller.report(job_id, _bearer(request), data)
        return to_json(request, {"status": "ok"})

    @app.route("/report/<job_id>/items.jl", methods=["POST"])
    def report_items(self, request, job_id):
        """A batch of a crawl's items as JSON Lines; `first` is the index of its first item."""
        self._check_size(request)
        first = self._int_arg(request, "first", minimum=0, maximum=10 ** 12)
        if first is None:
            raise BadRequest("missing parameter 'first': the index of the batch's first item")
        body = _report_body(request, MAX_BATCH, "a batch of items")
        answer = self.controller.report_items(job_id, _bearer(request),
                                              first, body)
        return to_json(request, {"status": "ok", **answer})

    @app.route("/report/<job_id>/log.<kind>", methods=["POST"])
    def report_output(self, request, job_id, kind):
        """A piece of a remote crawl's stdout (`log.out`) or stderr (`log.err`); `offset` is its first byte's."""
        self._check_size(request)
        if kind not in ("out", "err"):
            raise errors.NotFound(f"a crawl reports its output to log.out or log.err, not log.{kind}")
        offset = self._int_arg(request, "offset", minimum=0, maximum=1 << 50)
        if offset is None:
            raise BadRequest("missing parameter 'offset': the byte of the output the piece starts at")
        body = _report_body(request, MAX_BATCH, "a piece of output")
        answer = self.controller.report_output(job_id, _bearer(request),
                                               kind, offset, body)
        return to_json(request, {"status": "ok", **answer})

    @app.route("/get-stats/<job_id>.json", methods=["GET"])
    def get_stats(self, request, job_id):
        """The whole Scrapy stats of a job (live while it runs, final once it ended) and its samples for a chart:
        [elapsed seconds, items, requests]."""
        stats, samples = self.controller.job_stats(job_id)
        return to_json(request, {"status": "ok", "identifier": job_id, "stats": stats,
                                 "samples": [list(s) for s in samples]})

    @app.route("/list-jobs.json", methods=["GET"])
    def list_jobs(self, request):
        identifier = self._arg(request, "id", required=False)
        if identifier is not None:
            job = self.controller.get_job(identifier)
            return to_json(request, {"status": "ok", "jobs": [to_record(job, self.controller.zone)]})
        status = self._arg(request, "status", required=False)
        if status is None:
            raise BadRequest("missing parameter: give 'status' (a status name, ACTIVE or COMPLETED) or 'id'")
        jobs, total = self.controller.list_jobs_json(
            status=status,
            project=self._arg(request, "project", required=False),
            spider=self._arg(request, "spider", required=False),
            limit=self._int_arg(request, "limit"),
            offset=self._int_arg(request, "offset", default=0),
            parent=self._arg(request, "parent", required=False),
        )
        request.setHeader(b"content-type", b"application/json")
        return ('{"status": "ok", "jobs": [' + ", ".join(jobs) + f'], "total": {total}}}').encode("utf-8")

    @app.route("/cancel-job.json", methods=["POST"])
    @defer.inlineCallbacks
    def cancel_job(self, request):
        self._check_size(request)
        self._only(request, {"id", "job_id"})
        yield self.controller.cancel_job(self._job_id(request, "id"))
        return to_json(request, {"status": "ok"})

    @app.route("/remove-project.json", methods=["POST"])
    def remove_project(self, request):
        self._check_size(request)
        self._only(request, {"name", "project", "purge"})
        name = self._arg(request, "name", required=False) or self._arg(request, "project", required=False)
        if not name:
            raise BadRequest("missing parameter 'name' (or 'project'): the project to remove")
        purge = self._arg(request, "purge", required=False)
        purge = parse_switch("purge", purge) if purge is not None else False
        self.controller.remove_project(name, purge=purge)
        return to_json(request, {"status": "ok"})

    @app.route("/list-data.json", methods=["GET"])
    @defer.inlineCallbacks
    def list_data(self, request):
        """The files a project's crawls wrote in its data directory (feeds, caches), newest pushes included."""
        name = self._arg(request, "project")
        files, truncated = yield self.controller.list_data(name)
        shown = [{**f, "modified": zones.show(zones.instant(f["modified"]), self.controller.zone)} for f in files]
        return to_json(request, {"status": "ok", "project": name, "files": shown, "truncated": truncated})

    @app.route("/get-data/<project>/<path:path>", methods=["GET", "HEAD"])
    def get_data(self, request, project, path):
        """A data file, as a download: never rendered by the browser (a crawl wrote it: it could be HTML)."""
        self.controller.open_data(project, path).close()  # 404 in JSON for what is not a plain file

        def opener():
            try:
                return self.controller.open_data(project, path)
            except errors.NotFound:  # changed since: File answers EACCES with its `forbidden`, our 404
                raise OSError(errno.EACCES, "no longer a plain file") from None

        name = path.rsplit("/", 1)[-1]
        text = name.rsplit(".", 1)[-1].lower() in TEXT_DATA
        resource = SafeFile(str(self.controller.data_path(project, path)), opener)
        resource.type = "text/plain; charset=utf-8" if text else "application/octet-stream"
        resource.encoding = None
        resource.childNotFound = resource.forbidden = NotFound()
        request.setHeader(b"content-disposition", f"attachment; filename*=UTF-8''{quote(name)}".encode())
        request.setHeader(b"content-security-policy", b"sandbox")
        return resource

    @app.route("/", methods=["GET", "HEAD"])
    def index(self, request):
        """The dashboard: static files that use this same API."""
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        request.setHeader(b"cache-control", b"no-cache")
        return (UI_DIR / "index.html").read_bytes()

    @app.route("/ui/", branch=True, methods=["GET", "HEAD"])
    def ui(self, request):
        resource = UIFiles(str(UI_DIR))
        # Revalidate after upgrades instead of running yesterday's scripts.
        request.setHeader(b"cache-control", b"no-cache")
        return resource

    @app.route("/metrics", methods=["GET"])
    def metrics_text(self, request):
        """Prometheus metrics (scrapy_do.metrics), in its text format."""
        if self.metrics is None:
            raise errors.NotFound("this daemon keeps no metrics")
        from scrapy_do.metrics import CONTENT_TYPE

        request.setHeader(b"content-type", CONTENT_TYPE.encode())
        return self.metrics.render()

    @app.route("/webhooks.json", methods=["GET"])
    def webhooks_json(self, request):
        """The configured hooks (by origin) and the newest deliveries, with their state and last error."""
        self._only(request, {"limit", "state"})
        limit = self._int_arg(request, "limit", default=50, minimum=1, maximum=500)
        state = self._arg(request, "state", required=False)
        if state is not None and state not in ("pending", "delivered", "failed"):
            raise errors.BadRequest(f"state must be pending, delivered or failed, not {state[:40]!r}")
        if self.webhooks is None:
            return to_json(request, {"status": "ok", "hooks": [], "pending": 0, "delivered": 0, "failed": 0,
                                     "deliveries": []})
        return to_json(request, {"status": "ok", **self.webhooks.summary(limit, state)})

    @app.route("/openapi.json", methods=["GET"])
    def openapi(self, request):
        return to_json(request, openapi_document())

    @app.route("/get-log/data/<path:filename>", methods=["GET", "HEAD"])
    def get_log(self, request, filename):
        m = _LOG_NAME.match(filename)
        if not m:
            raise errors.NotFound(f"no log {filename!r}: ask for /get-log/data/<job-id>.out or .err")
        identifier, kind = m.groups()
        path = self.controller.log_path(identifier, kind)
        return self._serve_output(request, identifier, path, "text/plain; charset=utf-8", "the log")

    @app.route("/project-environment.json", methods=["GET"])
    @defer.inlineCallbacks
    def project_environment(self, request):
        """A project's environment (from its requirements.txt): what it holds, and where its build log is."""
        name = self._arg(request, "project")
        environment = yield self.controller.project_environment(name)
        if environment is not None:
            environment["log"] = f"/get-log/build/{quote(name)}.log"
        return to_json(request, {"status": "ok", "project": name, "environment": environment})

    @app.route("/get-log/build/<project>.log", methods=["GET", "HEAD"])
    def get_build_log(self, request, project):
        """The output of uv building the project's environment (from its requirements.txt); while a push of
        the project builds one, that build's output, followed live until it ends."""
        live = self.controller.live_build(project)
        if live is not None and request.method == b"GET":
            path, ended = live
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            request.setHeader(b"x-scrapy-do-following", b"yes")
            follower = LogFollower(request, str(path), 0, self._watcher)
            ended.addBoth(lambda _: follower.end())
            return follower.start()
        path = self.controller.build_log_path(project)
        return _finished_file(request, path, "text/plain; charset=utf-8", "the build log")

    @app.route("/get-items/<job_id>.jl", methods=["GET", "HEAD"])
    def get_items_jl(self, request, job_id):
        """A job's scraped items as JSON Lines: ranges, and following a running job, as for logs."""
        identifier, path = self._items_of(job_id)
        return self._serve_output(request, identifier, path, JSON_LINES, "the items file")

    @app.route("/get-items/<job_id>.csv", methods=["GET", "HEAD"])
    def get_items_csv(self, request, job_id):
        """A job's scraped items as CSV (a running job's: those it has now), as a download."""
        identifier, path = self._items_of(job_id)
        request.setHeader(b"content-type", b"text/csv; charset=utf-8")
        request.setHeader(b"content-disposition", f'attachment; filename="{identifier}.csv"'.encode())
        if request.method == b"HEAD":
            return b""
        try:
            return CsvProducer(request, str(path)).start()
        except OSError:
            raise errors.NotFound(f"job {identifier} has no items file any more") from None

    def _items_of(self, job_id):
        """(identifier, path) of a job's items; what names no job is a 404, as for logs."""
        if not UUID.match(job_id.strip().lower()):
            raise errors.NotFound(f"no job {job_id[:80]!r}: items are at /get-items/<job-id>.jl or .csv")
        path = self.controller.items_path(job_id)
        return path.stem, path

    def _serve_output(self, request, identifier, path, content_type, what):
        """A job's log or items file: a running job's followed, a finished one's served as a static file."""
        job = self.controller.get_job(identifier)
        if job.status is JobStatus.RUNNING and request.method == b"GET":
            size = path.stat().st_size
            header = (request.getHeader(b"range") or b"").decode("latin-1")
            try:
                start = parse_open_range(header, size) if header else 0
            except ValueError:
                request.setHeader(b"content-range", f"bytes */{size}".encode())
                return error_body(request, 416, f"{what} has {size} bytes; ask for a range that starts "
                                                "within it")
            if start is not None:
                return self._follow(request, path, start, size, identifier, partial=bool(header),
                                    content_type=content_type)
        return _finished_file(request, path, content_type, what)

    def _follow(self, request, path, start, size, identifier, partial, content_type):
        request.setHeader(b"content-type", content_type.encode())
        request.setHeader(b"accept-ranges", b"bytes")
        request.setHeader(b"x-scrapy-do-following", b"yes")
        if partial:
            request.setResponseCode(206)
            request.setHeader(b"content-range", f"bytes {start}-{max(start, size - 1)}/*".encode())
        follower = LogFollower(request, str(path), start, self._watcher)

        def on_event(event):
            if isinstance(event, JobChanged) and event.job.identifier == identifier \
                    and event.job.status is not JobStatus.RUNNING:
                follower.end()

        follower.on_cleanup(self.controller.subscribe(on_event))
        d = follower.start()
        if self.controller.store.get_job(identifier).status is not JobStatus.RUNNING:
            follower.end()
        return d
