"""The OpenAPI 3 description of the REST API, served at /openapi.json."""

import dataclasses

from scrapy_do import __version__
from scrapy_do.domain.options import EDITABLE_OPTIONS, OPTION_FIELDS, SCHEDULE_PARAMS, param_name
from scrapy_do.domain.records import JOB_FIELDS

STATUSES = ["SCHEDULED", "PENDING", "RUNNING", "SUCCESSFUL", "FAILED", "CANCELED", "ACTIVE", "COMPLETED"]


def _param(name, description, required=False, schema=None, where="query"):
    return {"name": name, "in": where, "required": required, "description": description,
            "schema": schema or {"type": "string"}}


def _form(properties, required, files=()):
    schema = {"type": "object", "properties": properties, "required": list(required)}
    media = {"application/x-www-form-urlencoded": {"schema": schema}}
    multipart_props = {k: ({"type": "string", "format": "binary"} if k in files else v)
                       for k, v in properties.items()}
    media["multipart/form-data"] = {"schema": {**schema, "properties": multipart_props}}
    return {"required": True, "content": media}


def _ok(description, properties=None, required=()):
    schema = {"type": "object", "required": ["status", *required],
              "properties": {"status": {"type": "string", "enum": ["ok"]}, **(properties or {})}}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = {"$ref": "#/components/responses/Error"}
_STR = {"type": "string"}
_STRS = {"type": "array", "items": _STR}


def _responses(ok, *codes):
    out = {"200": ok}
    out.update({str(c): _ERROR for c in codes})
    return out


def openapi_document():
    job = {
        "type": "object",
        "required": [f.key for f in JOB_FIELDS if f.contract],
        "properties": {f.key: dict(f.schema) for f in JOB_FIELDS},
    }
    schedule_params = {name: {"type": "string", "description": help_text}
                       for name, (_, _, help_text) in SCHEDULE_PARAMS.items()}
    options = {param_name(f): {**f.metadata["schema"], "description": f.metadata["schema"].get(
        "description", f.metadata["help"])} for f in OPTION_FIELDS}
    job_id_form = _form({"job_id": {"type": "string", "format": "uuid"}}, ["job_id"])
    one_job = _ok("the job as it is now", {"job": job}, ["job"])
    status_props = {k: {"type": "integer"} for k in (
        "jobs-run", "jobs-successful", "jobs-failed", "jobs-canceled", "jobs-scheduled", "jobs-pending",
        "jobs-running", "job-slots", "projects", "spiders")}
    status_props.update({"memory-usage": {"type": "number"}, "cpu-usage": {"type": "number"},
                         "uptime-seconds": {"type": "number"}, "time": _STR, "timezone": _STR,
                         "hostname": _STR, "uptime": _STR, "daemon-version": _STR,
                         "launch-problem": {"type": ["string", "null"], "description": "why jobs wait PENDING "
                                            "although slots are free (e.g. the Ray head does not answer); null "
                                            "when launches work"}})
    return {
        "openapi": "3.1.0",
        "info": {"title": "Scrapy Do", "version": __version__,
                 "description": "Run Scrapy spiders now or on a schedule. Every parameter may be sent in the "
                                "query string or in the body (urlencoded or multipart)."},
        "paths": {
            "/status.json": {"get": {
                "summary": "Daemon status and counters",
                "description": "503 (with Retry-After) while the daemon is starting: it stops crawls its "
                               "previous run left behind before it serves as ready.",
                "responses": _responses(_ok("status", status_props, list(status_props)), 503)}},
            "/push-project.json": {"post": {
                "summary": "Push a zipped project, replacing one of the same name",
                "requestBody": _form({"archive": _STR}, ["archive"], files=("archive",)),
                "responses": _responses(_ok("pushed", {
                    "name": _STR, "spiders": _STRS,
                    "environment": {"type": "object", "description": "only for a project with a requirements.txt: "
                                    "its environment, built or reused", "properties": {
                                        "requirements": {"type": "integer"}, "reused": {"type": "boolean"},
                                        "seconds": {"type": "number"}}}},
                    ["name", "spiders"]), 400, 409, 413)}},
            "/list-projects.json": {"get": {
                "summary": "Project names",
                "responses": _responses(_ok("projects", {"projects": _STRS}, ["projects"]))}},
            "/list-spiders.json": {"get": {
                "summary": "Spiders of a project",
                "parameters": [_param("project", "project name", True)],
                "responses": _responses(_ok("spiders", {"project": _STR, "spiders": _STRS},
                                            ["project", "spiders"]), 400, 404)}},
            "/schedule-job.json": {"post": {
                "summary": "Schedule a job now or periodically",
                "description": "Fields the endpoint does not know are refused (400): spider arguments go in "
                               "args.",
                "requestBody": _form({"project": _STR,
                                      "when": {"type": "string", "description": "'now' (default), a spec such as "
                                               "'every 10 minutes', or a cron expression such as "
                                               "'*/15 9-17 * * mon-fri'"},
                                      **options, **schedule_params},
                                     ["project"] + [param_name(f) for f in OPTION_FIELDS
                                                    if f.default is dataclasses.MISSING
                                                    and f.default_factory is dataclasses.MISSING]),
                "responses": _responses(_ok("scheduled", {"identifier": _STR}, ["identifier"]),
                                        400, 404, 413)}},
            "/pause-job.json": {"post": {
                "summary": "Pause a SCHEDULED (periodic) job: it spawns nothing until resumed",
                "requestBody": job_id_form,
                "responses": _responses(one_job, 400, 404, 409)}},
            "/resume-job.json": {"post": {
                "summary": "Resume a paused job; its next run is computed from now",
                "requestBody": job_id_form,
                "responses": _responses(one_job, 400, 404, 409)}},
            "/edit-job.json": {"post": {
                "summary": "Change a SCHEDULED job in place (same identifier, next run recomputed), or the "
                           "priority of a PENDING job",
                "requestBody": _form({"job_id": {"type": "string", "format": "uuid"}, "when": _STR,
                                      **{param_name(f): options[param_name(f)] for f in OPTION_FIELDS
                                         if f.name in EDITABLE_OPTIONS}, **schedule_params}, ["job_id"]),
                "responses": _responses(one_job, 400, 404, 409)}},
            "/list-jobs.json": {"get": {
                "summary": "Jobs by status (newest first) or by id",
                "parameters": [
                    _param("status", "a status, ACTIVE or COMPLETED", schema={"type": "string",
                                                                                "enum": STATUSES}),
                    _param("id", "a job identifier"),
                    _param("project", "only this project"), _param("spider", "only this spider"),
                    _param("limit", "at most this many", schema={"type": "integer", "minimum": 0}),
                    _param("offset", "skip this many", schema={"type": "integer", "minimum": 0}),
                    _param("parent", "only the runs this SCHEDULED job spawned")],
                "responses": _responses(_ok("jobs", {"jobs": {"type": "array", "items": job},
                                                     "total": {"type": "integer", "description":
                                                               "how many match, ignoring limit and offset"}},
                                            ["jobs"]), 400, 404)}},
            "/wait-job.json": {"get": {
                "summary": "Wait for a job to end: answers at its end (done: true) or after timeout seconds "
                           "(done: false) with the job's record",
                "parameters": [_param("job_id", "the job's identifier (or id)", True),
                               _param("timeout", "seconds to wait at most (0-3600, default 60)",
                                      schema={"type": "integer", "minimum": 0, "maximum": 3600})],
                "responses": _responses(_ok("the job, and whether it has ended",
                                            {"done": {"type": "boolean"}, "job": job}, ["done", "job"]),
                                        400, 404)}},
            "/get-stats/{job_id}.json": {"get": {
                "summary": "A job's whole Scrapy stats: live while it runs (every 2 s), final once it ended",
                "parameters": [_param("job_id", "the job's identifier", True, where="path")],
                "responses": _responses(_ok("stats", {
                    "identifier": _STR, "stats": {"type": "object"},
                    "samples": {"type": "array", "description": "the job's progress for a chart, oldest first (at "
                                "most 120): [elapsed seconds, items, requests]",
                                "items": {"type": "array", "items": {"type": "number"}}}},
                    ["identifier", "stats", "samples"]), 400, 404)}},
            "/report/{job_id}/items.jl": {"post": {
                "summary": "Where a crawl hands over its scraped items as JSON Lines, in batches (the daemon's own "
                           "extension, with its job's token as Authorization: Bearer; not for users)",
                "parameters": [_param("job_id", "the job's identifier", True, where="path"),
                               _param("first", "the index of the batch's first item (a batch sent again is kept "
                                      "once)", True, schema={"type": "integer", "minimum": 0})],
                "requestBody": {"required": True, "content": {"application/x-ndjson": {"schema": _STR}}},
                "responses": _responses(_ok("taken", {"received": {"type": "integer"},
                                                      "capped": {"type": "boolean"}}, ["received", "capped"]),
                                        400, 403, 413)}},
            "/report/{job_id}/log.{kind}": {"post": {
                "summary": "Where a crawl on a cluster sends its stdout (log.out) or stderr (log.err), in pieces "
                           "(its wrapper, scrapy_do.launchers.remote, with its job's token as Authorization: "
                           "Bearer; not for users)",
                "parameters": [_param("job_id", "the job's identifier", True, where="path"),
                               _param("kind", "out or err", True, where="path",
                                      schema={"type": "string", "enum": ["out", "err"]}),
                               _param("offset", "the byte of the output the piece starts at (a piece sent again "
                                      "is written once)", True, schema={"type": "integer", "minimum": 0})],
                "requestBody": {"required": True, "content": {"application/octet-stream": {"schema": _STR}}},
                "responses": _responses(_ok("taken", {"received": {"type": "integer"}}, ["received"]),
                                        400, 403, 404, 409, 413)}},
            "/report/{job_id}.json": {"post": {
                "summary": "Where a crawl reports its stats (the daemon's own extension, with its job's token as "
                           "Authorization: Bearer; not for users)",
                "parameters": [_param("job_id", "the job's identifier", True, where="path")],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["stats", "summary"],
                    "properties": {"stats": {"type": "object"}, "summary": {"type": "object"},
                                   "final": {"type": "boolean"}, "finish-reason": _STR}}}}},
                "responses": _responses(_ok("taken"), 400, 403, 413)}},
            "/cancel-job.json": {"post": {
                "summary": "Cancel a scheduled, pending or running job",
                "requestBody": _form({"id": _STR}, ["id"]),
                "responses": _responses(_ok("canceled"), 400, 404, 409)}},
            "/list-data.json": {"get": {
                "summary": "The files a project's crawls wrote in its data directory (feeds, caches)",
                "parameters": [_param("project", "project name", True)],
                "responses": _responses(_ok("files", {
                    "project": _STR, "truncated": {"type": "boolean", "description": "more than 1,000 files"},
                    "files": {"type": "array", "items": {"type": "object", "properties": {
                        "path": _STR, "size": {"type": "integer"}, "modified": _STR}}}},
                    ["project", "files", "truncated"]), 400, 404)}},
            "/get-data/{project}/{path}": {"get": {
                "summary": "Download one of a project's data files (as an attachment; never through a symlink)",
                "parameters": [_param("project", "project name", True, where="path"),
                               _param("path", "the file's path in list-data.json", True, where="path")],
                "responses": {"200": {"description": "the file",
                                      "content": {"application/octet-stream": {"schema": _STR}}},
                              "404": _ERROR}}},
            "/remove-project.json": {"post": {
                "summary": "Remove a project without scheduled jobs (its data directory too with purge=on)",
                "requestBody": _form({"name": {"type": "string", "description": "the project (or send it as "
                                                                                 "project)"},
                                      "project": _STR,
                                      "purge": {"type": "string", "description": "on: also delete what its "
                                                "crawls wrote (default off: kept)"}}, []),
                "responses": _responses(_ok("removed"), 400, 404, 409)}},
            "/get-log/data/{filename}": {"get": {
                "summary": "A job's stdout (.out) or stderr (.err) log; follows a running job until it ends",
                "parameters": [_param("filename", "<job-id>.out or <job-id>.err", True, where="path"),
                               _param("Range", "bytes=N- (from offset N) or bytes=-N (last N bytes)",
                                      where="header")],
                "responses": {"200": {"description": "the log", "content": {"text/plain": {"schema": _STR}}},
                              "206": {"description": "part of the log",
                                      "content": {"text/plain": {"schema": _STR}}},
                              "404": _ERROR, "416": _ERROR}}},
            "/project-environment.json": {"get": {
                "summary": "A project's environment (from its requirements.txt): the packages it holds over the "
                           "daemon's, and its build log; null for a project without one",
                "parameters": [_param("project", "the project's name", True)],
                "responses": _responses(_ok("the environment", {
                    "project": _STR,
                    "environment": {"type": ["object", "null"], "properties": {
                        "requirements": {"type": "integer"}, "reused": {"type": "boolean"},
                        "seconds": {"type": "number"}, "log": _STR,
                        "packages": {"type": "array", "items": {"type": "object", "properties": {
                            "name": _STR, "version": _STR}}}}}}, ["project", "environment"]), 400, 404)}},
            "/get-log/build/{project}.log": {"get": {
                "summary": "The output of the build of a project's environment (a project pushed with a "
                           "requirements.txt)",
                "parameters": [_param("project", "the project's name", True, where="path"),
                               _param("Range", "bytes=N-, bytes=-N or bytes=N-M", where="header")],
                "responses": {"200": {"description": "the build's output",
                                      "content": {"text/plain": {"schema": _STR}}},
                              "206": {"description": "part of it", "content": {"text/plain": {"schema": _STR}}},
                              "404": _ERROR, "416": _ERROR}}},
            "/get-items/{job_id}.jl": {"get": {
                "summary": "A job's scraped items as JSON Lines (one object per line); follows a running job "
                           "until it ends",
                "parameters": [_param("job_id", "the job's identifier", True, where="path"),
                               _param("Range", "bytes=N- (from offset N) or bytes=-N (last N bytes)",
                                      where="header")],
                "responses": {"200": {"description": "the items",
                                      "content": {"application/x-ndjson": {"schema": _STR}}},
                              "206": {"description": "part of the items",
                                      "content": {"application/x-ndjson": {"schema": _STR}}},
                              "404": _ERROR, "416": _ERROR}}},
            "/get-items/{job_id}.csv": {"get": {
                "summary": "A job's scraped items as CSV: a column per key (first-seen order), nested values as "
                           "JSON; a download",
                "parameters": [_param("job_id", "the job's identifier", True, where="path")],
                "responses": {"200": {"description": "the items", "content": {"text/csv": {"schema": _STR}}},
                              "404": _ERROR}}},
            "/preview-schedule.json": {"get": {
                "summary": "Check a scheduling spec and preview its next run times (in its zone, with offsets)",
                "parameters": [_param("when", "a spec such as 'every 10 minutes', a cron expression, or 'now'"),
                               _param("timezone", "the IANA zone the spec is read in (default: the daemon's)"),
                               _param("count", "how many run times (1-50, default 5)",
                                      schema={"type": "integer", "minimum": 1, "maximum": 50})],
                "responses": _responses(_ok("the next run times", {"when": _STR, "next": _STRS},
                                            ["when", "next"]), 400)}},
            "/events": {"get": {
                "summary": "Server-Sent Events: status (first, then after changes), job, job-removed, project",
                "responses": {"200": {"description": "an endless text/event-stream",
                                      "content": {"text/event-stream": {"schema": _STR}}}}}},
            "/": {"get": {
                "summary": "The web dashboard (HTML)",
                "responses": {"200": {"description": "the dashboard",
                                      "content": {"text/html": {"schema": _STR}}}}}},
            "/webhooks.json": {"get": {
                "summary": "The webhooks ([webhooks] hooks, by origin) and the newest deliveries: state, attempts, "
                           "next attempt and last error",
                "parameters": [_param("limit", "how many deliveries, newest first: 1 to 500 (default 50)",
                                      schema={"type": "integer", "minimum": 1, "maximum": 500}),
                               _param("state", "only deliveries in this state",
                                      schema={"type": "string", "enum": ["pending", "delivered", "failed"]})],
                "responses": _responses(_ok("hooks and deliveries", {
                    "hooks": {"type": "array", "items": {"type": "object", "properties": {
                        "url": _STR, "events": _STRS}}},
                    "pending": {"type": "integer"}, "delivered": {"type": "integer"}, "failed": {"type": "integer"},
                    "deliveries": {"type": "array", "items": {"type": "object", "properties": {
                        "id": _STR, "event": _STR, "url": {"type": "string", "description": "scheme and host"},
                        "job": {"type": ["string", "null"]},
                        "state": {"type": "string", "enum": ["pending", "delivered", "failed"]},
                        "attempts": {"type": "integer"}, "created": _STR,
                        "next-attempt": {"type": ["string", "null"]},
                        "last-error": {"type": ["string", "null"]}, "ended": {"type": ["string", "null"]}}}}},
                    ["hooks", "pending", "delivered", "failed", "deliveries"]), 400)}},
            "/metrics": {"get": {
                "summary": "Prometheus metrics in its text format: jobs by status, runs ended by project, spider "
                           "and outcome, crawl durations, items and requests scraped, bytes of logs and items, "
                           "schedule lag, busy slots, API requests by route and code",
                "description": "Behind the same authentication as the rest, unless [web] metrics-auth = off.",
                "responses": {"200": {"description": "the metrics", "content": {"text/plain": {"schema": _STR}}}}}},
            "/openapi.json": {"get": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3 document",
                                      "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        },
        "components": {"responses": {"Error": {
            "description": "what went wrong and what to do",
            "content": {"application/json": {"schema": {
                "type": "object", "required": ["status", "msg"],
                "properties": {"status": {"type": "string", "enum": ["error"]}, "msg": _STR}}}}}}},
    }
