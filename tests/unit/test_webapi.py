"""Every endpoint through the Klein resource with StubTreq: no socket, fake crawls, a Clock."""

import json
import re

import pytest
from treq.testing import StubTreq

from scrapy_do.web.api import HotRoutes, WebAPI, format_uptime
from tests.helpers import result_of


@pytest.fixture
def api(controller, config):
    controller.push("proj", ("quick", "slow"))
    return WebAPI(controller, config)


@pytest.fixture
def http(api):
    return StubTreq(api.app.resource())


def call(http, method, path, **kwargs):
    response = pump(http, getattr(http, method)("http://x" + path, **kwargs))
    body = pump(http, response.content())
    return response, body


def pump(http, d, rounds=50):
    """Flush the in-memory connection until `d` has a result (a file producer writes a chunk per flush)."""
    box = []
    d.addBoth(lambda r: box.append(r) or r)
    for _ in range(rounds):
        if box:
            break
        http.flush()
    return result_of(d)


def jcall(http, method, path, **kwargs):
    response, body = call(http, method, path, **kwargs)
    assert response.headers.getRawHeaders("content-type") == ["application/json"]
    return response.code, json.loads(body)


def test_status_has_contract_and_extra_keys(http):
    """status.json carries every key of the contract plus the at-a-glance extras."""
    code, body = jcall(http, "get", "/status.json")
    assert code == 200 and body["status"] == "ok"
    contract = {"memory-usage", "cpu-usage", "time", "timezone", "hostname", "uptime", "jobs-run",
                "jobs-successful", "jobs-failed", "jobs-canceled"}
    extras = {"daemon-version", "projects", "spiders", "jobs-scheduled", "jobs-pending", "jobs-running",
              "job-slots"}
    assert contract | extras <= set(body)
    assert (body["projects"], body["spiders"], body["job-slots"]) == (1, 2, 2)


@pytest.mark.parametrize("seconds, text", [(0, "0s"), (59, "59s"), (3600 + 61, "1h 1m 1s"),
                                           (86400 + 12 * 60 + 24, "1d 12m 24s")])
def test_uptime_format_matches_original(seconds, text):
    """Uptime prints like the original: `1d 12m 24s`, zero parts left out."""
    assert format_uptime(seconds) == text


def test_list_projects_and_spiders(http):
    """The project list and its spiders come back as in the contract."""
    assert jcall(http, "get", "/list-projects.json") == (200, {"status": "ok", "projects": ["proj"]})
    assert jcall(http, "get", "/list-spiders.json?project=proj") == (
        200, {"status": "ok", "project": "proj", "spiders": ["quick", "slow"]})


@pytest.mark.parametrize("how", ["query", "urlencoded", "multipart"])
def test_schedule_accepts_parameters_from_query_and_body(http, how, launcher):
    """Parameters work from the query string, an urlencoded body and a multipart body."""
    fields = {"project": "proj", "spider": "quick", "when": "now", "payload": '{"a": "é"}'}
    if how == "query":
        from urllib.parse import urlencode

        code, body = jcall(http, "post", "/schedule-job.json?" + urlencode(fields))
    elif how == "urlencoded":
        code, body = jcall(http, "post", "/schedule-job.json", data=fields)
    else:
        from tests.helpers import multipart

        data, ctype = multipart(fields)
        code, body = jcall(http, "post", "/schedule-job.json", data=data, headers={"Content-Type": ctype})
    assert code == 200 and body["status"] == "ok"
    assert launcher.launched[-1].request.options.payload == '{"a": "é"}'


def test_list_jobs_by_status_and_id_with_contract_keys(http, launcher):
    """list-jobs answers by status group or id, newest first, with the contract's keys."""
    first = jcall(http, "post", "/schedule-job.json", data={"project": "proj", "spider": "quick"})[1]
    second = jcall(http, "post", "/schedule-job.json",
                   data={"project": "proj", "spider": "slow", "when": "every 10 minutes"})[1]
    code, body = jcall(http, "get", "/list-jobs.json?status=ACTIVE")
    assert [j["identifier"] for j in body["jobs"]] == [second["identifier"], first["identifier"]]
    keys = ["identifier", "status", "actor", "schedule", "project", "spider", "description", "timestamp",
            "duration", "payload"]
    assert list(body["jobs"][0])[: len(keys)] == keys
    code, body = jcall(http, "get", f"/list-jobs.json?id={first['identifier']}")
    assert body["jobs"][0]["status"] == "RUNNING"
    launcher.launched[0].finish(0)
    code, body = jcall(http, "get", "/list-jobs.json?status=COMPLETED")
    assert [j["status"] for j in body["jobs"]] == ["SUCCESSFUL"]


def test_list_jobs_filters_and_paging(http, controller):
    """project/spider/limit/offset narrow the list."""
    for i in range(5):
        controller.schedule_job("proj", "slow", "every hour", description=str(i))
    controller.schedule_job("proj", "quick", "every hour", description="q")
    code, body = jcall(http, "get", "/list-jobs.json?status=SCHEDULED&spider=slow&limit=2&offset=1")
    assert [j["description"] for j in body["jobs"]] == ["3", "2"]
    code, body = jcall(http, "get", "/list-jobs.json?status=SCHEDULED&project=other")
    assert body["jobs"] == []


def test_cancel_and_remove(http, controller):
    """cancel-job cancels; remove-project then removes the project."""
    job = controller.schedule_job("proj", "slow", "every hour")
    assert jcall(http, "post", "/cancel-job.json", data={"id": job.identifier}) == (200, {"status": "ok"})
    assert jcall(http, "post", "/remove-project.json", data={"name": "proj"}) == (200, {"status": "ok"})
    assert controller.list_projects() == []


BAD = [
    ("get", "/list-spiders.json", 400, "missing parameter 'project'"),
    ("get", "/list-spiders.json?project=nope", 404, "unknown project 'nope'"),
    ("post", "/schedule-job.json?project=proj", 400, "missing parameter 'spider'"),
    ("post", "/schedule-job.json?project=nope&spider=quick", 404, "unknown project"),
    ("post", "/schedule-job.json?project=proj&spider=nope", 404, "no spider 'nope'"),
    ("post", "/schedule-job.json?project=proj&spider=quick&when=every%20fortnight", 400, "fortnight"),
    ("post", "/schedule-job.json?project=proj&spider=quick&payload=%7Bbad", 400, "payload is not valid JSON"),
    ("post", "/schedule-job.json?project=proj&spider=quick&payload=%FF", 400, "not valid UTF-8"),
    ("get", "/list-jobs.json", 400, "'status'"),
    ("get", "/list-jobs.json?status=DONE", 400, "unknown status"),
    ("get", "/list-jobs.json?status=ACTIVE&limit=-1", 400, "'limit'"),
    ("get", "/list-jobs.json?status=ACTIVE&offset=18446744073709551616", 400, "at most"),
    ("get", "/list-jobs.json?id=nope", 400, "not a job identifier"),
    ("get", "/list-jobs.json?id=5b30c8a2-42e5-4ad5-b143-4cb0420955a5", 404, "unknown job"),
    ("post", "/cancel-job.json", 400, "missing parameter 'id'"),
    ("post", "/cancel-job.json?id=5b30c8a2-42e5-4ad5-b143-4cb0420955a5", 404, "unknown job"),
    ("post", "/remove-project.json?name=nope", 404, "unknown project"),
    ("post", "/push-project.json", 400, "missing parameter 'archive'"),
    ("get", "/schedule-job.json", 405, "use POST"),
    ("post", "/status.json", 405, "use GET"),
    ("get", "/nope", 404, "no such endpoint"),
    ("get", "/get-log/data/5b30c8a2-42e5-4ad5-b143-4cb0420955a5.out", 404, "unknown job"),
    ("get", "/get-log/data/..%2F..%2Fetc%2Fpasswd", 404, "no log"),
    ("get", "/get-log/data/%2e%2e/%2e%2e/scrapy-do.db", 404, "no log"),
    ("get", "/get-log/data//etc/passwd", 404, "no such endpoint"),
    ("get", "/get-log/data/5b30c8a2-42e5-4ad5-b143-4cb0420955a5.db", 404, "no log"),
]


@pytest.mark.parametrize("method, path, code, text", BAD, ids=[f"{m} {p}" for m, p, _, _ in BAD])
def test_errors_are_json_with_real_codes(http, method, path, code, text):
    """Each bad request gets its proper 4xx code and a JSON message saying what to fix."""
    got, body = jcall(http, method, path)
    assert (got, body["status"]) == (code, "error")
    assert text in body["msg"]


def test_cancel_finished_job_is_409(http, controller, launcher):
    """Canceling a finished job is a conflict, not a bad request."""
    job = controller.schedule_job("proj", "quick")
    launcher.launched[0].finish(0)
    code, body = jcall(http, "post", "/cancel-job.json", data={"id": job.identifier})
    assert code == 409 and "already finished" in body["msg"]


def test_remove_with_scheduled_jobs_is_409(http, controller):
    """Removing a project with scheduled jobs is refused with 409."""
    controller.schedule_job("proj", "slow", "every hour")
    code, body = jcall(http, "post", "/remove-project.json", data={"name": "proj"})
    assert code == 409 and "scheduled" in body["msg"]


def test_oversized_field_is_413(http):
    """A field over 64 KiB is refused with 413."""
    code, body = jcall(http, "post", "/schedule-job.json",
                       data={"project": "proj", "spider": "quick", "description": "x" * (65 << 10)})
    assert code == 413 and "description" in body["msg"]


def test_bug_becomes_500_with_short_message(http, controller, monkeypatch):
    """An unexpected exception is a 500 with a short message; details go to the log only."""
    monkeypatch.setattr(controller, "list_projects", lambda: 1 / 0)
    code, body = jcall(http, "get", "/list-projects.json")
    assert code == 500 and "ZeroDivision" not in body["msg"]


def test_openapi_documents_exactly_the_routes(http, api):
    """Every Klein route is in /openapi.json with its methods, and nothing else is."""
    code, doc = jcall(http, "get", "/openapi.json")
    documented = {(path, m.upper()) for path, ops in doc["paths"].items() for m in ops}
    routes = set()
    for rule in api.app.url_map.iter_rules():
        if rule.rule.startswith("/ui/"):
            continue  # the dashboard's static files
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        routes |= {(path, m) for m in rule.methods if m not in ("HEAD", "OPTIONS")}
    assert documented == routes


def test_warm_reaches_the_launcher_shows_in_records_and_is_edited(http, launcher):
    """warm=off goes to the launcher as the run's options.warm; records show it; edit-job switches it."""
    cold = jcall(http, "post", "/schedule-job.json", data={"project": "proj", "spider": "quick", "warm": "off"})[1]
    assert launcher.launched[-1].request.options.warm is False
    jcall(http, "post", "/schedule-job.json", data={"project": "proj", "spider": "quick"})
    assert launcher.launched[-1].request.options.warm is True
    assert jcall(http, "get", f"/list-jobs.json?id={cold['identifier']}")[1]["jobs"][0]["warm"] is False
    schedule = jcall(http, "post", "/schedule-job.json",
                     data={"project": "proj", "spider": "slow", "when": "every 10 minutes"})[1]["identifier"]
    for value, expected in (("off", False), ("on", True), ("no", False)):
        code, body = jcall(http, "post", "/edit-job.json", data={"job_id": schedule, "warm": value})
        assert code == 200 and body["job"]["warm"] is expected, body
    code, body = jcall(http, "post", "/edit-job.json", data={"job_id": schedule, "warm": "maybe"})
    assert code == 400 and "warm must be on or off" in body["msg"]
    assert jcall(http, "get", f"/list-jobs.json?id={schedule}")[1]["jobs"][0]["warm"] is False


def test_openapi_documents_warm_for_schedule_and_edit(http):
    """schedule-job and edit-job take warm (on or off); job records have it as a boolean."""
    doc = jcall(http, "get", "/openapi.json")[1]
    for path in ("/schedule-job.json", "/edit-job.json"):
        schema = doc["paths"][path]["post"]["requestBody"]["content"]
        params = next(iter(schema.values()))["schema"]["properties"]
        assert params["warm"]["enum"] == ["on", "off"] and "cold" in params["warm"]["description"], path
    assert '"warm": {"type": "boolean"}' in json.dumps(doc["paths"]["/list-jobs.json"])


def test_preview_schedule_lists_next_run_times(http, clock):
    """preview-schedule.json normalises the spec and lists the next run times from the daemon's clock."""
    code, body = jcall(http, "get", "/preview-schedule.json?when=every%2010%20Minutes&count=3")
    assert (code, body["when"]) == (200, "every 10 minutes")
    assert body["next"] == ["2026-11-23 10:10:00+00:00", "2026-11-23 10:20:00+00:00", "2026-11-23 10:30:00+00:00"]


@pytest.mark.parametrize("query, text", [("when=every%20blue%20moon", "blue"), ("count=0", "'count'"),
                                         ("count=51", "at most 50")])
def test_preview_schedule_rejects_bad_input(http, query, text):
    """A bad spec or count is a 400 naming the problem."""
    code, body = jcall(http, "get", "/preview-schedule.json?" + query)
    assert code == 400 and text in body["msg"]




def test_a_full_disk_answers_507_in_json_and_stores_nothing(http, controller, monkeypatch):
    """schedule-job on a full disk answers 507 naming the disk, and no job appears."""
    from scrapy_do.errors import StorageFull

    controller.push()

    def full(job):
        raise StorageFull("the disk holding /srv/scrapy-do.db is full; nothing was changed: free some space "
                          "and try again")

    monkeypatch.setattr(controller.store, "add_job", full)
    code, body = jcall(http, "post", "/schedule-job.json", data={"project": "proj", "spider": "quick"})
    assert code == 507
    assert body == {"status": "error", "msg": "the disk holding /srv/scrapy-do.db is full; nothing was changed: "
                                              "free some space and try again"}
    assert controller.list_jobs() == []


def test_status_is_503_with_retry_after_until_recovery_is_over(controller, config):
    """A readiness check: status.json answers 503 (JSON, Retry-After) while the daemon recovers."""
    http = StubTreq(WebAPI(controller, config).app.resource())
    controller.running = 0  # as between startService and the end of recovery
    response, body = call(http, "get", "/status.json")
    assert response.code == 503 and response.headers.getRawHeaders("retry-after") == ["1"]
    assert json.loads(body)["status"] == "error" and "starting" in json.loads(body)["msg"]
    controller.running = 1
    response, _ = call(http, "get", "/status.json")
    assert response.code == 200


def test_the_hot_status_route_answers_as_the_klein_route_and_leaves_every_error_to_it(api, controller,
                                                                                       monkeypatch):
    """HotRoutes serves GET /status.json itself with the Klein route's answer; while the daemon recovers, or
    when building the answer fails, the Klein route answers (503 with Retry-After, 500): errors map in one
    place."""
    class Counted:
        """The Klein resource, counting the requests that reach it."""
        isLeaf, calls = True, 0

        def __init__(self, resource):
            self.resource = resource

        def render(self, request):
            Counted.calls += 1
            return self.resource.render(request)

    hot, klein = StubTreq(HotRoutes(Counted(api.app.resource()), api)), StubTreq(api.app.resource())
    volatile = {"time", "uptime", "uptime-seconds", "cpu-usage", "memory-usage"}
    (code, fast), (_, slow) = jcall(hot, "get", "/status.json"), jcall(klein, "get", "/status.json")
    assert code == 200 and {k: v for k, v in fast.items() if k not in volatile} == \
        {k: v for k, v in slow.items() if k not in volatile}
    assert Counted.calls == 0  # answered by HotRoutes itself
    assert jcall(hot, "get", "/list-projects.json")[1]["projects"] == ["proj"] and Counted.calls == 1
    assert jcall(hot, "post", "/status.json")[0] == 405
    controller.running = 0
    response, body = call(hot, "get", "/status.json")
    assert response.code == 503 and response.headers.getRawHeaders("retry-after") == ["1"]
    controller.running = 1
    monkeypatch.setattr(controller, "status", lambda: 1 / 0)
    code, body = jcall(hot, "get", "/status.json")
    assert code == 500 and body["status"] == "error" and "ZeroDivision" not in body["msg"]
