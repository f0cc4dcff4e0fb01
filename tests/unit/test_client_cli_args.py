"""`scrapy-do-cl`'s new flags and output, against a fake HTTP session: exactly what is sent, and what is printed."""

import io
import json

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from scrapy_do.client.api import ScrapyDoClient
from scrapy_do.client.cli import JOB_COLUMNS, WITH_ERRORS_NOTE, build_parser, main
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


# -- issue 13: get-items, fail-on-errors, jobs that succeeded with errors -------------------------------------


class Chunks:
    """A streamed body: `read` hands over one chunk at a time, as a followed answer arrives.

    `before_each(i)` runs before chunk i is handed over, to check what the client did with the earlier ones.
    """

    def __init__(self, chunks, before_each=None):
        self.chunks = list(chunks)
        self.before_each = before_each or (lambda i: None)
        self.given = 0

    def read(self, amt=None):
        if self.given == len(self.chunks):
            return b""
        self.before_each(self.given)
        self.given += 1
        return self.chunks[self.given - 1]

    def close(self):
        pass


def streamed(chunks, status=200, headers=None, before_each=None):
    r = response(status, b"", headers)
    r._content = False  # not read yet: iter_content reads `raw`
    r.raw = Chunks(chunks, before_each)
    return r


def job_list(*jobs):
    return response(body={"status": "ok", "jobs": list(jobs)})


def a_job(**fields):
    return {c: None for c in JOB_COLUMNS} | {"identifier": JOB, "status": "SUCCESSFUL"} | fields


@pytest.mark.parametrize("argv, expected", [
    ([], ("jl", False, None)),
    (["--follow"], ("jl", True, None)),
    (["-f", "--format", "jl", "-o", "x.jl"], ("jl", True, "x.jl")),
    (["--format", "csv", "--output", "x.csv"], ("csv", False, "x.csv")),
])
def test_get_items_arguments(argv, expected):
    args = build_parser({}).parse_args(["get-items", "--job-id", JOB, *argv])
    assert (args.format, args.follow, args.output) == expected


@pytest.mark.parametrize("argv, text", [
    (["get-items"], "the following arguments are required: --job-id"),
    (["get-items", "--job-id", JOB, "--format", "json"], "invalid choice: 'json'"),
    (["get-items", "--job-id", JOB, "--format", "csv", "--follow"], "--follow works with --format jl only"),
])
def test_get_items_usage_errors_send_nothing(capsys, argv, text):
    session = FakeSession({})
    with pytest.raises(SystemExit) as exited:
        run_cl(session, *argv)
    assert exited.value.code == 2 and text in capsys.readouterr().err and session.requests == []


def test_get_items_of_a_finished_job_prints_the_lines_as_sent():
    body = [b'{"n": 0}\n{"n": 1}\n', b'{"n": 2, "t": "\xc3\xbc"}\n']
    session = FakeSession({"/list-jobs.json": job_list(a_job()),
                           f"/get-items/{JOB}.jl": streamed(body, headers={"content-type": "application/x-ndjson"})})
    code, text = run_cl(session, "get-items", "--job-id", JOB)
    assert code == 0 and text == b"".join(body).decode()
    assert session.requests[-1][2]["headers"] is None  # a finished job's file whole, no range


def test_get_items_without_follow_asks_a_running_job_for_what_there_is_now():
    session = FakeSession({"/list-jobs.json": job_list(a_job(status="RUNNING")),
                           f"/get-items/{JOB}.jl": streamed([b'{"n": 0}\n'], 206)})
    assert run_cl(session, "get-items", "--job-id", JOB) == (0, '{"n": 0}\n')
    assert session.requests[-1][2]["headers"] == {"Range": f"bytes=0-{1 << 62}"}


def test_get_items_follow_writes_and_flushes_each_chunk_as_it_comes(tmp_path):
    """Each chunk is in the output before the next one arrives: a followed job's items show up at once."""
    chunks = [b'{"n": %d}\n' % i for i in range(4)]
    for output in (None, tmp_path / "items.jl"):
        sink = {}

        def before_each(i, output=output):
            if i:
                written = output.read_bytes() if output else sink["out"].buffer.getvalue()
                assert written == b"".join(chunks[:i])

        session = FakeSession({f"/get-items/{JOB}.jl": streamed(chunks, headers={"x-scrapy-do-following": "yes"},
                                                                  before_each=before_each)})
        out = sink["out"] = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
        argv = ["--url", "http://daemon", "get-items", "--job-id", JOB, "--follow"]
        argv += ["--output", str(output)] if output else []
        code = main(argv, stdout=out, defaults={},
                    client_factory=lambda url, user, password, verify: ScrapyDoClient(url, session=session))
        assert code == 0
        # --follow asks no job status and sends no range: the daemon follows the file until the job ends.
        assert [(p, kw["headers"], kw["stream"]) for _, p, kw in session.requests] == \
            [(f"/get-items/{JOB}.jl", None, True)]
        assert (output.read_bytes() if output else out.buffer.getvalue()) == b"".join(chunks)
        if output:
            assert out.buffer.getvalue() == b""


def test_get_items_csv_to_a_file(tmp_path):
    body = b'n,text\r\n0,plain\r\n1,"a, b"\r\n'
    session = FakeSession({f"/get-items/{JOB}.csv": streamed([body], headers={"content-type": "text/csv"})})
    code, text = run_cl(session, "get-items", "--job-id", JOB, "--format", "csv", "--output", str(tmp_path / "x.csv"))
    assert code == 0 and text == "" and (tmp_path / "x.csv").read_bytes() == body
    assert [p for _, p, _ in session.requests] == [f"/get-items/{JOB}.csv"]  # no status asked: CSV is a snapshot


def test_get_items_errors_are_one_line_and_leave_the_output_file_alone(tmp_path, capsys):
    """The daemon's 404 message as any other error, exit 1; an existing --output file is not truncated."""
    kept = tmp_path / "kept.jl"
    kept.write_bytes(b"old\n")
    session = FakeSession({
        "/list-jobs.json": job_list(a_job()),
        f"/get-items/{JOB}.jl": response(404, {"status": "error", "msg": f"job {JOB} has no items"}),
    })
    code, text = run_cl(session, "get-items", "--job-id", JOB, "--output", str(kept))
    err = capsys.readouterr().err.splitlines()
    assert code == 1 and text == "" and err == [f"[!] 404: job {JOB} has no items"]
    assert kept.read_bytes() == b"old\n"
    session = FakeSession({"/list-jobs.json": response(404, {"status": "error", "msg": f"unknown job '{JOB}'"})})
    assert run_cl(session, "get-items", "--job-id", JOB)[0] == 1
    assert capsys.readouterr().err.startswith("[!] 404: unknown job")


def test_get_items_of_an_empty_file_prints_nothing():
    session = FakeSession({"/list-jobs.json": job_list(a_job(status="RUNNING")),
                           f"/get-items/{JOB}.jl": response(416, {"status": "error", "msg": "0 bytes"})})
    assert run_cl(session, "get-items", "--job-id", JOB) == (0, "")


def test_get_items_quotes_the_job_id_into_the_path():
    session = FakeSession({})
    client = ScrapyDoClient("http://daemon", session=session)
    with pytest.raises(Exception):
        client.get_items("../status", "csv")
    assert session.requests[0][1] == "/get-items/..%2Fstatus.csv"


def test_a_broken_off_download_is_a_client_error(capsys):
    def drop(i):
        if i == 1:
            raise requests.ConnectionError("connection reset")
    session = FakeSession({f"/get-items/{JOB}.jl": streamed([b'{"n": 0}\n', b"x"], before_each=drop)})
    code, text = run_cl(session, "get-items", "--job-id", JOB, "-f")
    assert code == 1 and text == '{"n": 0}\n'
    assert capsys.readouterr().err.startswith("[!] the download broke off: ")


@pytest.mark.parametrize("flags, sent", [((), None), (("--fail-on-errors", "yes"), "on"),
                                         (("--fail-on-errors", "off"), "off"), (("--fail-on-errors", "No"), "off")])
def test_fail_on_errors_is_sent_only_when_given(flags, sent):
    assert scheduled(*flags).get("fail-on-errors") == sent


def test_fail_on_errors_takes_yes_or_no(capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser({}).parse_args(["schedule-job", "--project", "p", "--spider", "s", "--fail-on-errors", "maybe"])
    assert exited.value.code == 2 and "argument --fail-on-errors" in capsys.readouterr().err


@pytest.mark.parametrize("flags, sent", [((), None), (("--fail-on-errors", "yes"), "on"),
                                         (("--fail-on-errors", "default"), "")])
def test_edit_job_fail_on_errors_and_back_to_the_default(flags, sent):
    session = FakeSession({"/edit-job.json": response(body={"status": "ok", "job": a_job(status="SCHEDULED")})})
    assert run_cl(session, "edit-job", "--job-id", JOB, *flags)[0] == 0
    assert session.requests[0][2]["data"].get("fail-on-errors") == sent


@pytest.mark.parametrize("flags, sent", [((), None), (("--warm", "off"), "off"), (("--warm", "on"), "on"),
                                         (("--warm", "No"), "off"), (("--warm", "yes"), "on")])
def test_warm_is_sent_only_when_given(flags, sent):
    assert scheduled(*flags).get("warm") == sent


@pytest.mark.parametrize("command", [["schedule-job", "--project", "p", "--spider", "s"],
                                     ["edit-job", "--job-id", JOB]])
@pytest.mark.parametrize("value", ["maybe", "default", ""])
def test_warm_takes_on_or_off(capsys, command, value):
    with pytest.raises(SystemExit) as exited:
        build_parser({}).parse_args([*command, "--warm", value])
    assert exited.value.code == 2 and "argument --warm" in capsys.readouterr().err


@pytest.mark.parametrize("flags, sent", [((), None), (("--warm", "off"), "off"), (("--warm", "on"), "on")])
def test_edit_job_warm(flags, sent):
    session = FakeSession({"/edit-job.json": response(body={"status": "ok", "job": a_job(status="SCHEDULED")})})
    assert run_cl(session, "edit-job", "--job-id", JOB, *flags)[0] == 0
    assert session.requests[0][2]["data"].get("warm") == sent


def test_warm_is_explained_in_the_help(capsys):
    for command in ("schedule-job", "edit-job"):
        with pytest.raises(SystemExit):
            build_parser({}).parse_args([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--warm on/off" in text and "start cold" in text and "warm-start = off" in text


def list_jobs_table(*jobs, argv=()):
    session = FakeSession({"/list-jobs.json": job_list(*jobs)})
    code, text = run_cl(session, "list-jobs", "--status", "COMPLETED", *argv)
    assert code == 0
    return text


def rows_of(text):
    lines = [ln for ln in text.splitlines() if ln.startswith("|") and not ln.startswith("|-")]
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    return [dict(zip(cells[0], row)) for row in cells[1:]]


def test_list_jobs_marks_a_job_that_succeeded_with_errors_and_explains_the_mark():
    jobs = [a_job(identifier="a", errors=3, stats={"log_count/ERROR": 1}), a_job(identifier="b", errors=0),
            a_job(identifier="c", status="FAILED", errors=2, reason="errors"),
            a_job(identifier="d", stats={"errors": 4}),  # a running summary, or a daemon without `errors`
            a_job(identifier="e", errors=None, stats={"log_count/ERROR": 0})]
    text = list_jobs_table(*jobs)
    rows = {r["identifier"]: (r["status"], r["errors"], r["reason"]) for r in rows_of(text)}
    assert rows == {"a": ("SUCCESSFUL*", "3", ""), "b": ("SUCCESSFUL", "0", ""), "c": ("FAILED", "2", "errors"),
                    "d": ("SUCCESSFUL*", "4", ""), "e": ("SUCCESSFUL", "0", "")}
    assert text.splitlines()[-1] == WITH_ERRORS_NOTE == \
        "* succeeded with errors (see the errors column; get-log --job-id ID --log-type err)"


def test_list_jobs_without_such_a_job_has_no_footnote_and_json_stays_the_records():
    text = list_jobs_table(a_job(errors=0), a_job(status="FAILED", errors=5))
    assert "*" not in text and text.splitlines()[-1].startswith("+")
    job = a_job(errors=3)
    assert json.loads(list_jobs_table(job, argv=["--json"])) == [job]


def waited(done, capsys, *flags):
    session = FakeSession({
        "/schedule-job.json": response(body={"status": "ok", "identifier": JOB}),
        "/wait-job.json": response(body={"status": "ok", "done": True, "job": done}),
        f"/get-log/data/{JOB}.err": response(206, b"ERROR: an error logged on purpose\n",
                                             {"Content-Range": "bytes 0-33/34"}),
    })
    code, text = run_cl(session, "schedule-job", "--project", "p", "--spider", "s", "--wait", *flags)
    return code, text, capsys.readouterr().err.splitlines(), session


def test_wait_says_a_job_succeeded_with_errors_and_exits_0(capsys):
    code, text, err, _ = waited(a_job(duration=2, errors=2), capsys)
    assert code == 0 and "SUCCESSFUL" in text and "SUCCESSFUL*" not in text
    assert err == [f"[i] Job {JOB} succeeded with errors (2 errors); see them with scrapy-do-cl get-log "
                   f"--job-id {JOB} --log-type err"]
    one = waited(a_job(duration=2, errors=1), capsys)[2]
    assert one[0].startswith(f"[i] Job {JOB} succeeded with errors (1 error);")
    assert waited(a_job(duration=2, errors=0), capsys)[2] == []


def test_wait_says_a_job_failed_on_its_errors_and_exits_3(capsys):
    done = a_job(status="FAILED", duration=2, errors=3, reason="errors")
    code, text, err, session = waited(done, capsys, "--fail-on-errors", "yes")
    assert session.requests[0][2]["data"]["fail-on-errors"] == "on"
    assert code == 3 and "FAILED" in text
    assert err[:2] == [f"[!] Job {JOB} failed: errors (3 errors); the last lines of its error log:",
                       "ERROR: an error logged on purpose"]
    done = a_job(status="FAILED", duration=2, errors=1, reason="errors; items capped at max-items-size (10 bytes)")
    assert waited(done, capsys)[2][0] == \
        f"[!] Job {JOB} failed: errors (1 error); items capped at max-items-size (10 bytes); the last lines of its " \
        "error log:"
    # Another reason reads as before.
    assert waited(a_job(status="FAILED", duration=2, errors=3, reason="exit code 1"), capsys)[2][0] == \
        f"[!] Job {JOB} ended FAILED (exit code 1); the last lines of its error log:"


class Clock:
    def __init__(self):
        self.slept = []

    def sleep(self, seconds):
        self.slept.append(seconds)


def test_follow_waits_for_a_pending_job_to_start():
    """A PENDING job has no items file yet (404): --follow waits for its start instead of failing."""
    session = FakeSession({
        f"/get-items/{JOB}.jl": [response(404, {"status": "error", "msg": f"job {JOB} has no items yet; it is "
                                                                          "PENDING"}),
                                 streamed([b'{"n": 0}\n'])],
        "/list-jobs.json": [job_list(a_job(status=s)) for s in ("PENDING", "PENDING", "PENDING", "RUNNING")],
    })
    clock, waited = Clock(), []
    chunks = ScrapyDoClient("http://daemon", session=session).get_items(JOB, follow=True, on_wait=waited.append,
                                                                         clock=clock)
    assert b"".join(chunks) == b'{"n": 0}\n'
    assert [j["status"] for j in waited] == ["PENDING"] and clock.slept == pytest.approx([0.2, 0.3, 0.45])


@pytest.mark.parametrize("status, follow", [("SUCCESSFUL", True), ("PENDING", False), ("SCHEDULED", True)])
def test_no_items_is_an_error_at_once_unless_following_a_pending_job(capsys, status, follow):
    """A finished job without items, a periodic job (its runs are other jobs), or no --follow: no waiting."""
    session = FakeSession({
        f"/get-items/{JOB}.jl": response(404, {"status": "error", "msg": f"job {JOB} has no items"}),
        "/list-jobs.json": job_list(a_job(status=status)),
    })
    code, _ = run_cl(session, "get-items", "--job-id", JOB, *(["--follow"] if follow else []))
    assert code == 1 and capsys.readouterr().err == f"[!] 404: job {JOB} has no items\n"
    assert [p for _, p, _ in session.requests].count(f"/get-items/{JOB}.jl") == 1


# -- API tokens (--token, SCRAPY_DO_TOKEN, token in ~/.scrapy-do.cfg) and schedule names ---------------------------

def with_token(session, *argv, defaults=None):
    """Run scrapy-do-cl with a factory that takes the token as the default factory does; (code, client made)."""
    made = []

    def factory(url, user, password, verify, **kwargs):
        made.append(ScrapyDoClient(url, user, password, verify=verify, session=session, **kwargs))
        return made[-1]

    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    code = main(["--url", "http://daemon", *argv], stdout=out, defaults=defaults or {}, client_factory=factory)
    return code, made[0]


def status_session(n=1):
    return FakeSession({"/status.json": [response(body={"status": "ok"}) for _ in range(n)]})


def test_token_is_sent_as_a_bearer_header_on_every_request(monkeypatch):
    """--token makes each request carry `Authorization: Bearer TOKEN` and no other credentials."""
    monkeypatch.delenv("SCRAPY_DO_TOKEN", raising=False)
    session = FakeSession({"/list-jobs.json": response(body={"status": "ok", "jobs": [], "total": 0}),
                           "/list-projects.json": response(body={"status": "ok", "projects": []})})
    assert with_token(session, "--token", "t0k", "list-projects")[0] == 0
    client = ScrapyDoClient("http://daemon", session=session, token="t0k")
    client.list_jobs("SCHEDULED")
    client._call("GET", "/list-jobs.json", headers={"Range": "bytes=0-1"})
    assert [kw["headers"] for _, _, kw in session.requests] == [
        {"Authorization": "Bearer t0k"}, {"Authorization": "Bearer t0k"},
        {"Range": "bytes=0-1", "Authorization": "Bearer t0k"}]
    assert all(kw["auth"] is None for _, _, kw in session.requests)


def test_without_a_token_no_authorization_header_is_sent(monkeypatch):
    """No token anywhere: the request has no Authorization header of the client's making."""
    monkeypatch.delenv("SCRAPY_DO_TOKEN", raising=False)
    session = status_session()
    assert with_token(session, "status")[0] == 0
    assert session.requests[0][2]["headers"] is None


@pytest.mark.parametrize("env, flag, config, sent", [
    ("from-env", None, None, "from-env"),
    (None, None, "from-cfg", "from-cfg"),
    ("from-env", None, "from-cfg", "from-env"),
    ("from-env", "from-flag", "from-cfg", "from-flag"),
])
def test_the_token_comes_from_the_flag_then_the_environment_then_the_config(monkeypatch, env, flag, config, sent):
    """--token wins over SCRAPY_DO_TOKEN, which wins over `token` in ~/.scrapy-do.cfg."""
    if env is None:
        monkeypatch.delenv("SCRAPY_DO_TOKEN", raising=False)
    else:
        monkeypatch.setenv("SCRAPY_DO_TOKEN", env)
    session = status_session()
    argv = [*(["--token", flag] if flag else []), "status"]
    assert with_token(session, *argv, defaults={"token": config} if config else None)[0] == 0
    assert session.requests[0][2]["headers"] == {"Authorization": f"Bearer {sent}"}


def test_user_defaults_read_the_token_from_the_config_file(tmp_path):
    """`token` in the [scrapy-do] section of ~/.scrapy-do.cfg is a default like url and username."""
    from scrapy_do.client.cli import _user_defaults

    (tmp_path / ".scrapy-do.cfg").write_text("[scrapy-do]\nurl = http://h:1\ntoken = abc\n")
    assert _user_defaults(tmp_path)["token"] == "abc"


def test_a_token_wins_over_username_and_password(monkeypatch):
    """Given a token and a user name, the token is sent, no digest auth, and no password is asked for."""
    monkeypatch.setenv("SCRAPY_DO_TOKEN", "t0k")
    monkeypatch.setattr("getpass.getpass", lambda *a: pytest.fail("asked for a password"))
    session = status_session()
    code, client = with_token(session, "--username", "alice", "status")
    assert code == 0 and client.auth is None and session.requests[0][2]["auth"] is None
    assert session.requests[0][2]["headers"] == {"Authorization": "Bearer t0k"}
    assert ScrapyDoClient("http://d", "alice", "pw", token="t").auth is None
    assert ScrapyDoClient("http://d", "alice", "pw").auth is not None


def test_schedule_job_and_edit_job_send_name_and_notify():
    """--name and --notify are sent as the fields `name` and `notify`; edit-job's empty --notify clears it."""
    data = scheduled("--when", "every day", "--name", "nightly", "--notify", "https://h.example/x")
    assert (data["name"], data["notify"]) == ("nightly", "https://h.example/x")
    assert "name" not in scheduled() and "notify" not in scheduled()
    session = FakeSession({"/edit-job.json": response(body={"status": "ok", "job": a_job()})})
    assert run_cl(session, "edit-job", "--job-id", JOB, "--name", "renamed", "--notify", "")[0] == 0
    assert session.requests[0][2]["data"] == {"job_id": JOB, "name": "renamed", "notify": ""}
