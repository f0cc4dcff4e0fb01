"""Schema-driven fuzzing (schemathesis) of a real `scrapy-do` process, from its own /openapi.json.

Every operation gets positive and negative examples (bounded: 25 of each, no shrinking), some of
their fields steered to things that exist (the pushed fixture project, its spiders, known job ids,
valid specs) so the fuzzer gets past the 404s. Each answer must pass schemathesis' checks: no 5xx,
documented status code and content type, body matching the schema. /events (an endless stream) gets
one bounded smoke check instead; /get-log only ever targets finished jobs, so it never follows a log.
"""

import time

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance, response_schema_conformance, status_code_conformance,
)

from tests.helpers import offline_zip
from tests.integration.daemonproc import DaemonProcess

pytestmark = pytest.mark.integration

CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance, content_type_conformance]
EXAMPLES = 25
#: No single operation may take longer than this (seconds); the whole test stays well under two minutes.
OPERATION_BUDGET = 40
SKIPPED = {"/events"}


@schemathesis.serializer("application/x-ndjson")
def _json_lines(ctx, value):
    """A crawl's batch of items: whatever was generated, as text lines (mostly refused: not JSON objects)."""
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass")


@schemathesis.deserializer("application/x-ndjson", "text/csv")
def _text(ctx, response):
    return response.content.decode("utf-8")
#: Read-only operations first, then the ones that change state; /remove-project last.
ORDER = ["/status.json", "/list-projects.json", "/list-spiders.json", "/list-jobs.json", "/wait-job.json",
         "/preview-schedule.json", "/list-data.json", "/get-data/{project}/{path}", "/get-stats/{job_id}.json",
         "/report/{job_id}.json", "/report/{job_id}/items.jl", "/report/{job_id}/log.{kind}", "/get-items/{job_id}.jl", "/get-items/{job_id}.csv",
         "/get-log/data/{filename}", "/get-log/build/{project}.log", "/project-environment.json", "/openapi.json", "/metrics", "/webhooks.json", "/", "/schedule-job.json", "/pause-job.json",
         "/resume-job.json", "/edit-job.json", "/cancel-job.json",
         "/push-project.json", "/remove-project.json"]
VALID_SPECS = ["every 2 hours", "every 5 to 10 minutes", "every monday at 10:30", "every day at 23:59:59",
               "every 3 days", "every hour at :15", "every minute at :30", "Every  12  Weeks", "every 36525 days"]
CONF = ("[scrapy-do]\njob-slots = 2\ncancel-grace = 2\nmax-archive-size = 4M\nspider-list-timeout = 30\n"
        "[web]\ninterfaces = 127.0.0.1:0\n")


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory):
    """A daemon with the fixture project, a guard job (so it cannot be removed), fodder jobs and a finished job."""
    daemon = DaemonProcess(tmp_path_factory.mktemp("fuzz"), CONF).start()
    code, body = daemon.request("/push-project.json", {"archive": ("offline.zip", offline_zip())})
    assert code == 200, body

    def schedule(spider, when):
        code, body = daemon.request("/schedule-job.json", {"project": "offline", "spider": spider, "when": when})
        assert code == 200, body
        return body["identifier"]

    daemon.guard = schedule("quick", "every 3 hours")
    daemon.fodder = [schedule("quick", "every 4 hours") for _ in range(6)]
    daemon.finished = schedule("quick", "now")
    daemon.wait_job(daemon.finished, {"SUCCESSFUL", "FAILED"})
    daemon.pushes_left = 3
    yield daemon
    daemon.stop()


def steer(case, data, target):
    """Replace some generated fields by values that exist, so more cases reach the handlers' real work."""
    path = case.operation.path
    pick = lambda *choices: data.draw(st.sampled_from(choices))  # noqa: E731
    keep = object()

    def set_field(where, key, *choices):
        value = pick(keep, *choices)
        if value is not keep and isinstance(where, dict):
            where[key] = value

    known_ids = [target.guard, target.finished, *target.fodder]
    if path == "/list-spiders.json":
        set_field(case.query, "project", "offline")
    elif path == "/list-jobs.json":
        set_field(case.query, "id", *known_ids, target.guard.upper())
        set_field(case.query, "project", "offline")
        set_field(case.query, "spider", "quick", "slow")
    elif path == "/preview-schedule.json":
        set_field(case.query, "when", *VALID_SPECS, "now")
    elif path == "/get-log/data/{filename}":
        set_field(case.path_parameters, "filename", f"{target.finished}.out", f"{target.finished}.err",
                  f"{target.guard}.out")
    elif path in ("/get-items/{job_id}.jl", "/get-items/{job_id}.csv", "/get-stats/{job_id}.json",
                  "/report/{job_id}/items.jl", "/report/{job_id}/log.{kind}"):
        set_field(case.path_parameters, "job_id", target.finished, target.guard)
    elif path == "/get-log/build/{project}.log":
        set_field(case.path_parameters, "project", "offline")
    elif path == "/schedule-job.json":
        set_field(case.body, "project", "offline")
        set_field(case.body, "spider", "quick", "broken")
        set_field(case.body, "when", *VALID_SPECS, *VALID_SPECS, "now")
        set_field(case.body, "payload", "{}", '{"pages": 1}', "[]")
    elif path == "/cancel-job.json":
        set_field(case.body, "id", *target.fodder)
    elif path == "/remove-project.json":
        set_field(case.body, "name", "offline")
    elif path == "/push-project.json":
        # A real push lists spiders in a subprocess (about a second): only a few of them. Always draw, so
        # what hypothesis generates does not depend on the counter.
        if pick(False, True) and isinstance(case.body, dict) and target.pushes_left > 0:
            target.pushes_left -= 1
            case.body["archive"] = offline_zip()


def fuzz_operation(operation, mode, target, session, failures, tally):
    """Run EXAMPLES cases of `operation` in `mode`, collecting (not raising) check failures."""
    deadline = time.monotonic() + OPERATION_BUDGET

    @settings(max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
    def run(case, data):
        steer(case, data, target)
        if time.monotonic() > deadline:
            return
        try:
            response = case.call(base_url=target.url, session=session, timeout=15)
        except requests.RequestException as e:
            failures.append(f"{operation.label} [{mode.value}]: no answer: {e!r}\n{case.as_curl_command()}")
            return
        tally[(operation.label, response.status_code)] = tally.get((operation.label, response.status_code), 0) + 1
        try:
            case.validate_response(response, checks=CHECKS)
        except (Exception, BaseExceptionGroup) as e:  # noqa: BLE001 - a FailureGroup; keep its report
            failures.append(f"{operation.label} [{mode.value}]:\n{str(e)[:3000]}")

    try:
        run()
    except Unsatisfiable:
        # No parameters to break: negative mode has nothing to generate for this operation.
        assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label


def test_every_operation_survives_schema_fuzzing(fuzz_target):
    """Positive and negative cases for each operation get no 5xx and answers that conform to the schema."""
    schema = schemathesis.openapi.from_url(fuzz_target.url + "/openapi.json", timeout=30)
    operations = {result.ok().path: result.ok() for result in schema.get_all_operations()}
    # A new operation must be added to ORDER (schemathesis leaves out the schema's own URL).
    assert set(operations) - SKIPPED <= set(ORDER), sorted(set(operations) - SKIPPED - set(ORDER))
    assert len(operations) >= 10, sorted(operations)
    failures, tally = [], {}
    started = time.monotonic()
    with requests.Session() as session:
        for path in [p for p in ORDER if p in operations]:
            for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
                fuzz_operation(operations[path], mode, fuzz_target, session, failures, tally)
    elapsed = time.monotonic() - started
    print(f"fuzzed for {elapsed:.1f} s; answers:", dict(sorted(tally.items())))
    unique = list(dict.fromkeys(failures))
    assert not unique, f"{len(unique)} failing case(s):\n\n" + "\n\n".join(unique[:10])
    assert elapsed < 110, f"fuzzing took {elapsed:.0f} s"
    code, body = fuzz_target.get("/status.json")
    assert code == 200 and fuzz_target.proc.poll() is None
    # The guard job kept the project from being removed by a fuzzed remove-project.
    assert fuzz_target.get("/list-projects.json")[1]["projects"] == ["offline"]


def test_events_stream_opens_as_documented(fuzz_target):
    """GET /events answers 200 text/event-stream and sends a first event within seconds (then we hang up)."""
    with requests.get(fuzz_target.url + "/events", stream=True, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        first = b""
        deadline = time.monotonic() + 10
        for chunk in response.iter_content(chunk_size=None):
            first += chunk
            if b"\n\n" in first or time.monotonic() > deadline:
                break
        assert b"data:" in first, first[:200]


@pytest.mark.parametrize("query", [{"status": "ACTIVE", "limit": 2 ** 64}, {"status": "COMPLETED", "offset": 2 ** 64},
                                   {"status": "ACTIVE", "limit": 2 ** 63 - 1, "offset": 1}])
def test_list_jobs_with_huge_integers_is_not_a_server_error(fuzz_target, query):
    """The schema allows any integer >= 0 for limit/offset; a huge one must be a 4xx, not a 500."""
    schema = schemathesis.openapi.from_url(fuzz_target.url + "/openapi.json", timeout=30)
    case = schema["/list-jobs.json"]["GET"].Case(query=query)
    response = case.call(base_url=fuzz_target.url, timeout=30)
    case.validate_response(response, checks=CHECKS)


def test_unsatisfiable_range_on_a_finished_log_is_the_documented_json_error(fuzz_target):
    """GET /get-log of a finished job with a Range past its end is a 416 JSON error, as documented."""
    schema = schemathesis.openapi.from_url(fuzz_target.url + "/openapi.json", timeout=30)
    case = schema["/get-log/data/{filename}"]["GET"].Case(
        path_parameters={"filename": f"{fuzz_target.finished}.out"}, headers={"Range": "bytes=100000000-"})
    response = case.call(base_url=fuzz_target.url, timeout=30)
    assert response.status_code == 416
    case.validate_response(response, checks=CHECKS)


def test_multi_range_on_a_finished_log_is_documented(fuzz_target):
    """GET /get-log of a finished job with several ranges answers (200 or 206) with a documented content type."""
    schema = schemathesis.openapi.from_url(fuzz_target.url + "/openapi.json", timeout=30)
    case = schema["/get-log/data/{filename}"]["GET"].Case(
        path_parameters={"filename": f"{fuzz_target.finished}.err"}, headers={"Range": "bytes=0-10,20-30"})
    response = case.call(base_url=fuzz_target.url, timeout=30)
    assert response.status_code in (200, 206)
    case.validate_response(response, checks=CHECKS)


@pytest.mark.parametrize("path", ["/schedule-job.json", "/cancel-job.json", "/push-project.json",
                                  "/remove-project.json"])
def test_unparsable_multipart_body_is_a_json_error(fuzz_target, path):
    """A POST whose multipart body has no parts is a 400 JSON error like any other bad request."""
    schema = schemathesis.openapi.from_url(fuzz_target.url + "/openapi.json", timeout=30)
    case = schema[path]["POST"].Case(body={}, media_type="multipart/form-data")
    response = requests.post(fuzz_target.url + path, data=b"--b--\r\n", timeout=30,
                             headers={"Content-Type": "multipart/form-data; boundary=b"})
    assert response.status_code == 400
    case.validate_response(response, checks=CHECKS)


@pytest.mark.parametrize("form", ["bytes={fifth}-,-{over}", "bytes=0-1,-{over}", "bytes=-{over},{half}-",
                                  "bytes=-{over},-{over2}", "bytes={past}-,{past2}-", "bytes="])
def test_range_requests_on_a_finished_log_answer_promptly_without_server_error(fuzz_target, form):
    """Any Range header on a finished job's log gets a complete non-5xx answer within seconds."""
    url = f"{fuzz_target.url}/get-log/data/{fuzz_target.finished}.err"
    size = len(requests.get(url, timeout=10).content)
    ranges = form.format(fifth=size // 5, half=size // 2, over=size + 1000, over2=size + 2000,
                         past=size + 5, past2=size + 9)
    response = requests.get(url, headers={"Range": ranges}, timeout=(5, 3))
    assert response.status_code < 500, (ranges, response.status_code)
