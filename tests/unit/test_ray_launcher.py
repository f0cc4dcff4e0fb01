"""The Ray backend's logic against a stand-in for a Ray head's Jobs REST API (its HTTP boundary, served in
process by treq.testing), on a test clock; tests/integration/test_ray_backend.py runs it against a real head."""

import json

import pytest
from treq.testing import StubTreq
from twisted.internet import defer, task
from twisted.web import resource

from scrapy_do.domain.models import RunOptions
from scrapy_do.errors import LaunchError
from scrapy_do.launchers import ray, rayjobs
from scrapy_do.launchers.local import LaunchSpec
from scrapy_do.launchers.rayjobs import RayAnswerError, RayJobs, Unreachable
from tests.helpers import result_of


class FakeHead(resource.Resource):
    """The Jobs API as a Ray head answers it: submissions by id, their states, packages, stop requests."""

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.jobs = {}
        self.packages = {}
        self.stops = []
        self.submitted = []
        self.garbage = False

    def render(self, request):
        path = request.path.decode()
        method = request.method.decode()
        request.setHeader(b"content-type", b"application/json")
        if self.garbage:
            return b"<html>not a Ray head</html>"
        if path == "/api/version":
            return json.dumps({"ray_version": "2.60.0"}).encode()
        if path.startswith("/api/packages/gcs/"):
            name = path.rsplit("/", 1)[1]
            if method == "PUT":
                self.packages[name] = request.content.read()
                return b"{}"
            request.setResponseCode(200 if name in self.packages else 404)
            return b"{}"
        if path == "/api/jobs/" and method == "POST":
            body = json.loads(request.content.read())
            sid = body["submission_id"]
            if sid in self.jobs:
                request.setResponseCode(400)
                return f"Job with submission_id {sid} already exists. Please use a different submission_id.".encode()
            self.submitted.append(body)
            self.jobs[sid] = {"submission_id": sid, "status": "PENDING", "message": "", "driver_exit_code": None,
                              "entrypoint": body["entrypoint"], "runtime_env": body["runtime_env"]}
            return json.dumps({"submission_id": sid}).encode()
        if path.endswith("/stop") and method == "POST":
            sid = path.split("/")[3]
            self.stops.append(sid)
            return json.dumps({"stopped": sid in self.jobs}).encode()
        if path.startswith("/api/jobs/") and method == "GET":
            sid = path.split("/")[3]
            if sid not in self.jobs:
                request.setResponseCode(404)
                return b"{}"
            return json.dumps(self.jobs[sid]).encode()
        request.setResponseCode(404)
        return b"{}"


@pytest.fixture
def head():
    return FakeHead()


@pytest.fixture
def clock():
    return task.Clock()


def launcher_for(head, clock, **kw):
    jobs = RayJobs(clock, "http://ray-head:8265", http=StubTreq(head))
    return ray.RayLauncher(clock, jobs, poll=1.0, **kw)


def spec(tmp_path, job_id="0e5d3f9c-7c1b-4f0e-9d7a-2f8e0b1c2d3e", **options):
    tree = tmp_path / "tree"
    tree.mkdir(exist_ok=True)
    (tree / "scrapy.cfg").write_text("[settings]\ndefault = p.settings\n")
    return LaunchSpec(job_id=job_id, options=RunOptions(spider="quick", **options), cwd=str(tree),
                      out_path=str(tmp_path / f"{job_id}.out"), err_path=str(tmp_path / f"{job_id}.err"),
                      report={"url": "http://d/report/x.json", "token": "s3cret", "logs": "http://d/report/x/log"},
                      project="proj")


def test_a_run_is_one_submission_with_the_tree_the_daemons_package_and_its_arguments_out_of_the_entrypoint(
        head, clock, tmp_path):
    launcher = launcher_for(head, clock, num_cpus=0.5, runtime_env={"env_vars": {"A": "1"}, "py_modules": ["x"]})
    run = result_of(launcher.launch(spec(tmp_path, args={"color": "blue"})))
    (body,) = head.submitted
    assert body["submission_id"] == "scrapy-do-0e5d3f9c-7c1b-4f0e-9d7a-2f8e0b1c2d3e"
    assert body["entrypoint"] == "python -m scrapy_do.launchers.remote" and body["entrypoint_num_cpus"] == 0.5
    env = body["runtime_env"]
    assert env["working_dir"].startswith("gcs://_ray_pkg_") and len(env["py_modules"]) == 2
    assert env["py_modules"][1] == "x" and env["env_vars"]["A"] == "1"
    job = json.loads(env["env_vars"]["SCRAPY_DO_JOB"])
    assert job["spider"] == "quick" and "color=blue" in job["args"] and job["report"]["token"] == "s3cret"
    assert "s3cret" not in body["entrypoint"] and "pip" not in env
    assert {f"_ray_pkg_{u.split('_ray_pkg_')[1]}" for u in (env["working_dir"], env["py_modules"][0])} == \
        set(head.packages)
    assert run.handle == "ray:" + body["submission_id"] and run.detached


def test_packages_are_uploaded_once_and_requirements_go_as_pip_packages(head, clock, tmp_path):
    launcher = launcher_for(head, clock, find_links=("/wheels",))
    first = spec(tmp_path)
    (tmp_path / "tree" / "requirements.txt").write_text("Acme_Helper==1.5\n")
    result_of(launcher.launch(first))
    uploaded = dict(head.packages)
    puts = []
    original = head.render

    def render(request):
        if request.method == b"PUT":
            puts.append(request.path)
        return original(request)
    head.render = render
    result_of(launcher.launch(spec(tmp_path, job_id="1e5d3f9c-7c1b-4f0e-9d7a-2f8e0b1c2d3e")))
    assert puts == [] and head.packages == uploaded and len(head.submitted) == 2  # found there: not again
    # The head deleted them (some minutes after their last job, or a restart): uploaded again.
    head.packages.clear()
    result_of(launcher.launch(spec(tmp_path, job_id="2e5d3f9c-7c1b-4f0e-9d7a-2f8e0b1c2d3e")))
    assert len(puts) == 2 and head.packages == uploaded
    pip = head.submitted[2]["runtime_env"]["pip"]
    assert pip["packages"] == ["acme-helper==1.5"] and pip["pip_install_options"][-2:] == ["--find-links", "/wheels"]


def test_a_submission_that_exists_already_is_followed_not_submitted_again(head, clock, tmp_path):
    launcher = launcher_for(head, clock)
    sid = rayjobs.submission_id("0e5d3f9c-7c1b-4f0e-9d7a-2f8e0b1c2d3e")
    head.jobs[sid] = {"submission_id": sid, "status": "RUNNING"}
    run = result_of(launcher.launch(spec(tmp_path)))
    assert head.submitted == [] and run.sid == sid


def test_a_run_follows_its_submission_on_the_clock_to_its_exit_code(head, clock, tmp_path):
    run = result_of(launcher_for(head, clock).launch(spec(tmp_path)))
    ended = []
    run.ended.addCallback(ended.append)
    info = head.jobs[run.sid]
    clock.advance(1)
    info["status"] = "RUNNING"
    clock.advance(1)
    assert ended == []
    info.update(status="FAILED", driver_exit_code=3, message="Job entrypoint command failed with exit code 3")
    clock.advance(1)
    assert ended == [3]
    err = (tmp_path / "0e5d3f9c-7c1b-4f0e-9d7a-2f8e0b1c2d3e.err").read_text()
    assert "Ray reports submission" in err and "failed with exit code 3" in err
    assert clock.getDelayedCalls() == []  # nothing asks any more


def test_stop_asks_ray_and_again_after_the_grace(head, clock, tmp_path):
    run = result_of(launcher_for(head, clock).launch(spec(tmp_path)))
    run.stop(5)
    assert head.stops == [run.sid]
    clock.advance(5)
    assert head.stops == [run.sid, run.sid]
    head.jobs[run.sid].update(status="STOPPED", message="Job was intentionally stopped.")
    clock.advance(1)
    assert result_of(run.ended) == -15


def test_a_submission_ray_forgot_or_an_answer_that_makes_no_sense_ends_the_run_with_the_reason(head, clock,
                                                                                                tmp_path):
    launcher = launcher_for(head, clock)
    forgotten = result_of(launcher.launch(spec(tmp_path)))
    del head.jobs[forgotten.sid]
    clock.advance(1)
    assert result_of(forgotten.ended) == -1
    assert "no longer knows" in (tmp_path / "0e5d3f9c-7c1b-4f0e-9d7a-2f8e0b1c2d3e.err").read_text()
    other = result_of(launcher.launch(spec(tmp_path, job_id="1e5d3f9c-7c1b-4f0e-9d7a-2f8e0b1c2d3e")))
    head.garbage = True
    clock.advance(1)
    assert result_of(other.ended) == -1
    assert "not JSON" in (tmp_path / "1e5d3f9c-7c1b-4f0e-9d7a-2f8e0b1c2d3e.err").read_text()


def test_a_head_that_does_not_answer_is_transient_and_one_that_answers_nonsense_is_not(clock, tmp_path):
    class Broken(resource.Resource):
        isLeaf = True

        def render(self, request):
            request.setResponseCode(503)
            return b"busy"

    with pytest.raises(Unreachable) as down:
        result_of(launcher_for(Broken(), clock).launch(spec(tmp_path)))
    assert down.value.transient and "answered 503" in down.value.msg
    garbage = FakeHead()
    garbage.garbage = True
    with pytest.raises(LaunchError) as nonsense:
        result_of(launcher_for(garbage, clock).launch(spec(tmp_path)))
    assert isinstance(nonsense.value, RayAnswerError) and not nonsense.value.transient


def test_a_run_keeps_following_while_the_head_is_away(head, clock, tmp_path):
    run = result_of(launcher_for(head, clock).launch(spec(tmp_path)))

    class Away:
        def request(self, *args, **kwargs):
            return defer.fail(ConnectionRefusedError("refused"))
    jobs = run._launcher.jobs
    real, jobs.http = jobs.http, Away()
    clock.advance(1)
    assert not run.done and clock.getDelayedCalls()[0].getTime() == 1 + ray.UNREACHABLE_POLL
    jobs.http = real
    head.jobs[run.sid].update(status="SUCCEEDED", driver_exit_code=0)
    clock.advance(ray.UNREACHABLE_POLL)
    assert result_of(run.ended) == 0


def test_output_is_appended_once_whatever_is_sent_again(head, clock, tmp_path):
    run = result_of(launcher_for(head, clock).launch(spec(tmp_path)))
    assert run.take_output("out", 0, b"hello ") == 6
    assert run.take_output("out", 0, b"hello ") == 6  # sent again: its answer was lost
    assert run.take_output("out", 3, b"lo world\n") == 12  # overlapping
    assert run.take_output("err", 0, b"log\n") == 4
    assert (tmp_path / "0e5d3f9c-7c1b-4f0e-9d7a-2f8e0b1c2d3e.out").read_bytes() == b"hello world\n"


def test_reattach_follows_a_ray_handle_and_nothing_else(head, clock, tmp_path):
    launcher = launcher_for(head, clock)
    assert result_of(launcher.reattach("pid:12@3.0", ("a.out", "a.err"))) is None
    head.jobs["scrapy-do-x"] = {"submission_id": "scrapy-do-x", "status": "SUCCEEDED", "driver_exit_code": 0}
    run = result_of(launcher.reattach("ray:scrapy-do-x", (str(tmp_path / "x.out"), str(tmp_path / "x.err"))))
    clock.advance(0)
    assert result_of(run.ended) == 0 and head.submitted == []


def test_runtime_env_keys_of_the_configuration_are_merged_under_the_daemons():
    merged = ray.merge_runtime_env({"env_vars": {"A": "1", "SCRAPY_DO_JOB": "x"}, "pip": ["scrapy==2.19.0"],
                                    "config": {"setup_timeout_seconds": 60}},
                                   {"working_dir": "gcs://t", "env_vars": {"SCRAPY_DO_JOB": "{}"},
                                    "pip": {"packages": ["acme"], "pip_check": False}})
    assert merged == {"env_vars": {"A": "1", "SCRAPY_DO_JOB": "{}"}, "config": {"setup_timeout_seconds": 60},
                      "pip": {"packages": ["scrapy==2.19.0", "acme"], "pip_check": False}, "working_dir": "gcs://t"}


@pytest.mark.parametrize("key, value, says", [
    ("backend", "kubernetes", "use local"),
    ("ray-address", "127.0.0.1:8265", "http:// or https://"),
    ("ray-entrypoint-num-cpus", "-1", "must not be negative"),
    ("ray-runtime-env", "{", "is not JSON"),
    ("ray-runtime-env", "[]", "must be a JSON object"),
    ("ray-runtime-env", '{"working_dir": "."}', "the daemon's"),
    ("ray-runtime-env", '{"env_vars": {"A": 1}}', "map names to strings"),
    ("ray-report-url", "daemon:7654", "http:// or https://"),
    ("ray-poll-interval", "0", "0.1 to 60"),
])
def test_bad_executor_settings_stop_the_start_naming_the_key(tmp_path, key, value, says):
    from scrapy_do import config
    from scrapy_do.errors import ConfigError

    path = tmp_path / "scrapy-do.conf"
    path.write_text(f"[executor]\n{'' if key == 'backend' else 'backend = ray'}\n{key} = {value}\n")
    with pytest.raises(ConfigError) as e:
        config.load(path)
    assert f"[executor] {key}" in e.value.msg and says in e.value.msg
