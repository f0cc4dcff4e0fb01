"""The REST API of the Scrapy Do contract, as one Klein app on an object.

Handlers only translate HTTP to controller calls; every error is a
ScrapyDoError mapped to a status code in ERROR_CODES, in one place.
"""

import json
import time

import psutil
from klein import Klein
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web.static import File

from scrapy_do import errors
from scrapy_do.errors import BadRequest

log = Logger(namespace="scrapy_do.webapi")

ERROR_CODES = [
    (errors.TooLarge, 413),
    (errors.BadRequest, 400),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.ScrapyDoError, 400),
]

MAX_FIELD = 64 << 10


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
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    return json.dumps(data, ensure_ascii=False).encode("utf-8")


class WebAPI:
    app = Klein()

    def __init__(self, controller, config):
        self.controller = controller
        self.config = config
        self._process = psutil.Process()
        self._process.cpu_percent()

    # -- helpers ----------------------------------------------------------

    def _arg(self, request, name, required=True, default=None, limit=MAX_FIELD):
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

    def _int_arg(self, request, name, default=None, minimum=0):
        raw = self._arg(request, name, required=False)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise BadRequest(f"parameter {name!r} must be a whole number, not {raw!r}") from None
        if value < minimum:
            raise BadRequest(f"parameter {name!r} must be at least {minimum}")
        return value

    # -- errors -----------------------------------------------------------

    @app.handle_errors(errors.ScrapyDoError)
    def domain_error(self, request, failure):
        code = next(c for cls, c in ERROR_CODES if failure.check(cls))
        return to_json(request, {"status": "error", "msg": failure.value.msg}, code)

    @app.handle_errors
    def unexpected_error(self, request, failure):
        log.failure("unexpected error answering {uri}", failure=failure, uri=request.uri)
        return to_json(request, {"status": "error", "msg": f"internal error: {failure.getErrorMessage()}"}, 500)

    # -- endpoints --------------------------------------------------------

    @app.route("/status.json", methods=["GET"])
    def status(self, request):
        data = self.controller.status()
        memory = self._process.memory_info().rss / (1024 * 1024)
        data.update({
            "status": "ok",
            "memory-usage": round(memory, 2),
            "cpu-usage": self._process.cpu_percent(),
            "uptime": format_uptime(data["uptime-seconds"]),
            "spiders": sum(len(self.controller.list_spiders(p)) for p in self.controller.list_projects()),
        })
        return to_json(request, data)

    @app.route("/push-project.json", methods=["POST"])
    @defer.inlineCallbacks
    def push_project(self, request):
        values = request.args.get(b"archive")
        if not values:
            raise BadRequest("missing parameter 'archive': send the zipped project as a file field, "
                             "e.g. curl -F archive=@proj.zip")
        if len(values[0]) > self.config.max_archive_size:
            raise errors.TooLarge(f"the archive is larger than {self.config.max_archive_size} bytes "
                                  "(max-archive-size)")
        project = yield self.controller.push_project(values[0])
        return to_json(request, {"status": "ok", "name": project.name, "spiders": list(project.spiders)})

    @app.route("/list-projects.json", methods=["GET"])
    def list_projects(self, request):
        return to_json(request, {"status": "ok", "projects": self.controller.list_projects()})

    @app.route("/list-spiders.json", methods=["GET"])
    def list_spiders(self, request):
        name = self._arg(request, "project")
        return to_json(request, {"status": "ok", "project": name, "spiders": self.controller.list_spiders(name)})

    @app.route("/schedule-job.json", methods=["POST"])
    def schedule_job(self, request):
        job = self.controller.schedule_job(
            project=self._arg(request, "project"),
            spider=self._arg(request, "spider"),
            when=self._arg(request, "when", required=False, default="now"),
            description=self._arg(request, "description", required=False, default=""),
            payload=self._arg(request, "payload", required=False, default="{}"),
        )
        return to_json(request, {"status": "ok", "identifier": job.identifier})

    @app.route("/list-jobs.json", methods=["GET"])
    def list_jobs(self, request):
        identifier = self._arg(request, "id", required=False)
        if identifier is not None:
            jobs = [self.controller.get_job(identifier)]
        else:
            status = self._arg(request, "status", required=False)
            if status is None:
                raise BadRequest("give either 'status' (a status name, ACTIVE or COMPLETED) or 'id'")
            jobs = self.controller.list_jobs(
                status=status,
                project=self._arg(request, "project", required=False),
                spider=self._arg(request, "spider", required=False),
                limit=self._int_arg(request, "limit"),
                offset=self._int_arg(request, "offset", default=0),
            )
        return to_json(request, {"status": "ok", "jobs": [j.to_dict() for j in jobs]})

    @app.route("/cancel-job.json", methods=["POST"])
    @defer.inlineCallbacks
    def cancel_job(self, request):
        yield self.controller.cancel_job(self._arg(request, "id"))
        return to_json(request, {"status": "ok"})

    @app.route("/remove-project.json", methods=["POST"])
    def remove_project(self, request):
        self.controller.remove_project(self._arg(request, "name"))
        return to_json(request, {"status": "ok"})

    @app.route("/get-log/data/<string:filename>", methods=["GET"])
    def get_log(self, request, filename):
        identifier, _, kind = filename.rpartition(".")
        path = self.controller.log_path(identifier, kind)
        resource = File(str(path), defaultType="text/plain; charset=utf-8")
        resource.type = "text/plain; charset=utf-8"
        resource.encoding = None
        return resource
