"""`scrapy-do-cl`'s new flags and output, against a fake HTTP session: exactly what is sent, and what is printed."""

import io
import json

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from scrapy_do.client.api import ScrapyDoClient
from scrapy_do.client.cli import JOB_COLUMNS, build_parser, main
from scrapy_do.domain.records import TABLE_COLUMNS

JOB = "5b30c8a2-42e5-4ad5-b143-4cb0420955a5"


def response(status=200, body=b"", headers=None):
    r = requests.Response()
    r.status_code = status
    r._content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r.headers = CaseInsensitiveDict(headers or {})
    return r


class FakeSession:
    """Answers from `routes` (path -> response, or a list of them taken in turn); records each request."""

    def __init__(self, routes):
        self.routes = routes
        self.requests = []

    def request(self, method, url, **kwargs):
        path = "/" + url.split("/", 3)[3]
        self.requests.append((method, path, kwargs))
        if path not in self.routes:  # as a daemon answers a path it does not serve
            return response(404, {"status": "error", "msg": f"no such endpoint {path!r}; see /openapi.json"})
        answer = self.routes[path]
        return answer.pop(0) if isinstance(answer, list) else answer


def run_cl(session, *argv):
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    code = main(["--url", "http://daemon", *argv], stdout=out, defaults={},
                client_factory=lambda url, user, password, verify: ScrapyDoClient(url, session=session))
    out.flush()
    return code, out.buffer.getvalue().decode()


def scheduled(*flags):
    session = FakeSession({"/schedule-job.json": response(body={"status": "ok", "identifier": JOB})})
    code, _ = run_cl(session, "schedule-job", "--project", "p", "--spider", "s", *flags)
    assert code == 0
    [(method, path, kwargs)] = session.requests
    return kwargs["data"]


def test_without_the_new_flags_only_the_original_fields_are_sent():
    """No args, settings, priority or timeout field unless the flag is given: the daemon's defaults stand."""
    assert scheduled() == {"project": "p", "spider": "s", "when": "now", "description": "", "payload": "{}"}


def test_arguments_settings_priority_and_timeout_are_sent():
    """-a/-s become JSON objects of strings (the last repetition wins); --priority, --timeout whole numbers."""
    data = scheduled("-a", "category=books", "--arg", "pages=3", "-a", "pages=4", "-a", "q=x=y", "-a", "empty=",
                     "-s", "DOWNLOAD_DELAY=2", "--set", "MY_SETTING=ünï", "--priority", "-5", "--timeout", "60")
    assert json.loads(data["args"]) == {"category": "books", "pages": "4", "q": "x=y", "empty": ""}
    assert json.loads(data["settings"]) == {"DOWNLOAD_DELAY": "2", "MY_SETTING": "ünï"}
    assert (data["priority"], data["timeout"]) == ("-5", "60")


@pytest.mark.parametrize("argv, names", [
    (["-a", "category"], "argument -a/--arg: expected KEY=VALUE"),
    (["--arg", "=books"], "argument -a/--arg: expected KEY=VALUE"),
    (["-s", "DOWNLOAD_DELAY"], "argument -s/--set: expected NAME=VALUE"),
    (["-a", "payload={}"], "give it with --payload"),
    (["--priority", "high"], "argument --priority: invalid int value"),
    (["--timeout", "1.5"], "argument --timeout: invalid int value"),
])
def test_malformed_flags_are_usage_errors(capsys, argv, names):
    with pytest.raises(SystemExit) as exited:
        build_parser({}).parse_args(["schedule-job", "--project", "p", "--spider", "s", *argv])
    assert exited.value.code == 2 and names in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--json", "list-jobs"], ["list-jobs", "--json"]])
def test_json_before_or_after_the_command(argv):
    assert build_parser({}).parse_args(argv).json is True
    assert build_parser({}).parse_args(["list-jobs"]).json is False


def test_list_jobs_status_any_case_offset_and_columns():
    """--status is sent upper case, --offset as given; the table adds priority, next-run, reason at its end."""
    job = {c: None for c in JOB_COLUMNS} | {"identifier": JOB, "priority": 3, "reason": "exit code 1",
                                             "next-run": None}
    session = FakeSession({"/list-jobs.json": response(body={"status": "ok", "jobs": [job]})})
    code, text = run_cl(session, "list-jobs", "--status", "Completed", "--limit", "5", "--offset", "10")
    assert code == 0 and session.requests[0][2]["params"] == {"status": "COMPLETED", "limit": 5, "offset": 10}
    header = [c.strip() for c in text.splitlines()[1].strip("|").split("|")]
    assert header == [*TABLE_COLUMNS, "priority", "next-run", "reason", "items", "requests", "errors"]
    assert "exit code 1" in text


def test_status_words_the_uptime():
    """The daemon's worded uptime replaces the raw seconds; from a daemon without it the client words them."""
    session = FakeSession({"/status.json": [
        response(body={"status": "ok", "uptime-seconds": 87144.7, "jobs-run": 1, "uptime": "1d 12m 24s"}),
        response(body={"status": "ok", "uptime-seconds": 3725.2}),
    ]})
    for words in ("1d 12m 24s", "1h 2m 5s"):
        code, text = run_cl(session, "status")
        assert code == 0 and "uptime-seconds" not in text and f"| {words}" in text, text
        assert text.count("uptime") == 1


def test_log_tail_asks_for_a_suffix_and_drops_the_cut_line():
    session = FakeSession({f"/get-log/data/{JOB}.err": [
        response(206, b"ut line\nsecond\nthird\n", {"Content-Range": "bytes 100-121/122"}),
        response(206, b"first\nsecond\n", {"Content-Range": "bytes 0-12/13"}),
        response(416, {"status": "error", "msg": "the log has 0 bytes"}),
    ]})
    client = ScrapyDoClient("http://daemon", session=session)
    assert client.log_tail(JOB, size=22) == "second\nthird"
    assert session.requests[0][2]["headers"] == {"Range": "bytes=-22"}
    assert client.log_tail(JOB, lines=1) == "second"
    assert client.log_tail(JOB) == ""


@pytest.mark.parametrize("status, reason", [("FAILED", "exit code 1"), ("CANCELED", "canceled")])
def test_wait_prints_the_end_of_the_error_log_when_the_job_does_not_succeed(capsys, status, reason):
    log = "".join(f"line {i}\n" for i in range(100)).encode()
    done = {"identifier": JOB, "status": status, "duration": 1, "reason": reason}
    session = FakeSession({
        "/schedule-job.json": response(body={"status": "ok", "identifier": JOB}),
        "/list-jobs.json": response(body={"status": "ok", "jobs": [done]}),
        f"/get-log/data/{JOB}.err": response(206, log[-200:], {"Content-Range": f"bytes {len(log) - 200}-"}),
    })
    code, text = run_cl(session, "schedule-job", "--project", "p", "--spider", "s", "--wait")
    err = capsys.readouterr().err.splitlines()
    assert code == 3 and status in text
    assert err[0] == f"[!] Job {JOB} ended {status} ({reason}); the last lines of its error log:"
    assert err[1:-1] == [f"line {i}" for i in range(80, 100)]
    assert session.requests[-1][2]["headers"] == {"Range": "bytes=-8192"}


def test_wait_reports_an_unreadable_log_and_still_exits_3(capsys):
    done = {"identifier": JOB, "status": "FAILED", "duration": 1, "reason": None}
    session = FakeSession({
        "/schedule-job.json": response(body={"status": "ok", "identifier": JOB}),
        "/list-jobs.json": response(body={"status": "ok", "jobs": [done]}),
        f"/get-log/data/{JOB}.err": response(404, {"status": "error", "msg": "no log"}),
    })
    code, _ = run_cl(session, "schedule-job", "--project", "p", "--spider", "s", "--wait")
    assert code == 3 and "its error log cannot be read: 404: no log" in capsys.readouterr().err


def test_wait_with_a_periodic_job_does_not_wait(capsys):
    session = FakeSession({"/schedule-job.json": response(body={"status": "ok", "identifier": JOB})})
    code, text = run_cl(session, "--json", "schedule-job", "--project", "p", "--spider", "s", "--when",
                        "every day at 10:30", "--wait")
    assert code == 0 and json.loads(text) == {"identifier": JOB} and len(session.requests) == 1
    assert "'every day at 10:30' is a periodic job" in capsys.readouterr().err


def test_wait_asks_the_daemon_to_answer_at_the_end_instead_of_polling():
    """--wait long-polls wait-job.json until it says done; no list-jobs polling."""
    running = {"identifier": JOB, "status": "RUNNING", "duration": None, "reason": None}
    done = {"identifier": JOB, "status": "SUCCESSFUL", "duration": 3, "reason": None}
    session = FakeSession({
        "/schedule-job.json": response(body={"status": "ok", "identifier": JOB}),
        "/wait-job.json": [response(body={"status": "ok", "done": False, "job": running}),
                           response(body={"status": "ok", "done": True, "job": done})],
    })
    code, text = run_cl(session, "schedule-job", "--project", "p", "--spider", "s", "--wait")
    assert code == 0 and "SUCCESSFUL" in text
    assert [path for _, path, _ in session.requests] == ["/schedule-job.json", "/wait-job.json", "/wait-job.json"]
    assert session.requests[1][2]["params"] == {"job_id": JOB, "timeout": 50}


def test_remove_project_sends_purge_only_when_asked():
    for flags, expected in (((), {"name": "p"}), (("--purge",), {"name": "p", "purge": "on"})):
        session = FakeSession({"/remove-project.json": response(body={"status": "ok"})})
        code, _ = run_cl(session, "remove-project", "--name", "p", *flags)
        assert code == 0 and session.requests[0][2]["data"] == expected
