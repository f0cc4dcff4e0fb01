"""A small Python client of the REST API; `scrapy-do-cl` is built on it.

The HTTP session is a parameter (a `requests.Session` by default), so scripts
can share one and tests can hand in their own. An API token (`token=`) is
sent as `Authorization: Bearer ...` on every request, instead of a user
name and password: given both, the token wins.
"""

import io
import json
import threading
import time
import zipfile
from urllib.parse import quote

import requests
from requests.auth import HTTPBasicAuth, HTTPDigestAuth

TERMINAL = {"SUCCESSFUL", "FAILED", "CANCELED"}
#: get-items' formats: JSON lines (followed while the job runs) and CSV (a snapshot).
ITEM_FORMATS = ("jl", "csv")
#: Bytes read at most at a time from a download: a big items file is not held in memory, and a followed
#: (chunked) answer still hands over each chunk as soon as it arrives.
CHUNK_SIZE = 1 << 16


class ClientError(Exception):
    """The daemon refused a request or could not be reached; `str()` says why."""


def _archive_name(archive):
    """The project's name: the top folder of the archive's members (build_archive puts everything there)."""
    try:
        with zipfile.ZipFile(io.BytesIO(archive) if isinstance(archive, bytes) else archive) as z:
            first = next(iter(z.namelist()), "")
    except (zipfile.BadZipFile, OSError):
        return None
    return first.split("/", 1)[0] or None


class ScrapyDoClient:
    def __init__(self, url="http://localhost:7654", username=None, password=None, verify=True, session=None,
                 timeout=60, token=None):
        self.url = url.rstrip("/")
        self.session = session or requests.Session()
        self.verify = verify
        self.timeout = timeout
        self.auth = None
        self.token = token or None
        if self.token is None and username is not None:
            # 0.5.0 spoke HTTP digest; over TLS basic is as safe and works with curl/browsers too.
            kind = HTTPBasicAuth if self.url.startswith("https://") else HTTPDigestAuth
            self.auth = kind(username, password or "")

    def _call(self, method, path, params=None, data=None, files=None, stream=False, headers=None, timeout=None):
        if self.token is not None:
            headers = {**(headers or {}), "Authorization": f"Bearer {self.token}"}
        try:
            response = self.session.request(method, self.url + path, params=params, data=data, files=files,
                                            auth=self.auth, verify=self.verify, stream=stream,
                                            timeout=None if stream else (timeout or self.timeout), headers=headers)
        except requests.RequestException as e:
            raise ClientError(f"cannot reach {self.url}: {e}") from None
        if response.status_code >= 400:
            try:
                message = response.json()["msg"]
            except (ValueError, KeyError, TypeError):
                message = response.text.strip()[:500] or response.reason
            raise ClientError(f"{response.status_code}: {message}")
        return response

    def _json(self, method, path, **kwargs):  # kwargs: those of _call
        response = self._call(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ClientError(f"{self.url}{path} did not answer JSON; is this a Scrapy Do daemon?") from None

    def status(self):
        return self._json("GET", "/status.json")

    def push_project(self, archive, on_build_output=None, wait_first=0.5):
        """Push the archive; the answer comes once the daemon built the project's environment (if it has a
        requirements.txt), which may take minutes: no read timeout. `on_build_output(bytes)` hears that
        build's output meanwhile (asked for over a connection of its own)."""
        if on_build_output is None:
            return self._json("POST", "/push-project.json", files={"archive": ("project.zip", archive)},
                              timeout=(self.timeout, None))
        answer = {}

        def push():
            try:
                answer["data"] = self.push_project(archive)
            except ClientError as e:
                answer["error"] = e

        pushing = threading.Thread(target=push, daemon=True)
        pushing.start()
        name = _archive_name(archive)
        followed = False
        while pushing.is_alive():
            pushing.join(wait_first)
            if pushing.is_alive() and name and not followed:
                followed = self._follow_build(name, on_build_output)
        if "error" in answer:
            raise answer["error"]
        return answer["data"]

    def _follow_build(self, name, on_output):
        """Stream the build a push of `name` waits for, if one runs now; whether one did."""
        other = ScrapyDoClient(self.url, verify=self.verify, timeout=self.timeout, token=self.token)
        other.auth = self.auth
        try:
            response = other._call("GET", f"/get-log/build/{quote(name, safe='')}.log", stream=True)
        except ClientError:
            return False  # no environment yet (its build has not started): look again
        with response:
            if response.headers.get("x-scrapy-do-following") != "yes":
                return False  # the log of the version pushed before, not this build's
            try:
                for chunk in response.iter_content(chunk_size=None):
                    on_output(chunk)
            except requests.RequestException:
                pass
        return True

    def list_projects(self):
        return self._json("GET", "/list-projects.json")["projects"]

    def list_spiders(self, project):
        return self._json("GET", "/list-spiders.json", params={"project": project})["spiders"]

    def schedule_job(self, project, spider, when="now", description="", payload="{}", args=None, settings=None,
                     priority=None, timeout=None, timezone=None, overlap=None, catch_up=None, fail_on_errors=None,
                     name=None, notify=None, warm=None):
        """Schedule a job; return its identifier.

        `args` (spider arguments, each `-a KEY=VALUE`) and `settings` (Scrapy
        settings, each `-s NAME=VALUE`) are dicts or JSON objects as text;
        `priority` (-1000..1000) and `timeout` (seconds) whole numbers;
        `timezone`, `overlap` and `catch_up` are for periodic jobs;
        `fail_on_errors` (bool) ends a run that exits 0 with errors FAILED;
        `name` names a periodic job (unique among SCHEDULED jobs: 409 when
        taken), `notify` is an http(s) URL told when each run ends;
        `warm` False makes its runs start cold (a fresh interpreter) even
        when the daemon starts crawls warm.
        An option left None is not sent, so the daemon's default applies.
        """
        data = {"project": project, "spider": spider, "when": when, "description": description,
                "payload": payload, **_schedule_fields(timezone, overlap, catch_up),
                **_switch("fail-on-errors", fail_on_errors), **_switch("warm", warm),
                **_given(name=name, notify=notify)}
        for name, value in (("args", args), ("settings", settings)):
            if value is not None:
                data[name] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        for name, value in (("priority", priority), ("timeout", timeout)):
            if value is not None:
                data[name] = str(value)
        return self._json("POST", "/schedule-job.json", data=data)["identifier"]

    def list_jobs(self, status="ACTIVE", job_id=None, project=None, spider=None, limit=None, offset=None):
        """Jobs with `status` (any case: a status name, ACTIVE or COMPLETED), newest first, or the job `job_id`."""
        if job_id is not None:
            params = {"id": job_id}
        else:
            params = {k: v for k, v in (("status", status), ("project", project), ("spider", spider),
                                        ("limit", limit), ("offset", offset)) if v is not None}
        return self._json("GET", "/list-jobs.json", params=params)["jobs"]

    def list_schedules(self, page=500):
        """Every SCHEDULED job; a daemon that pages its answer (fewer jobs than its `total`) is asked page by page."""
        answer = self._json("GET", "/list-jobs.json", params={"status": "SCHEDULED"})
        jobs = {job["identifier"]: job for job in answer["jobs"]}
        total = answer.get("total", len(jobs))
        while len(jobs) < total:
            more = self._json("GET", "/list-jobs.json",
                              params={"status": "SCHEDULED", "limit": page, "offset": len(jobs)})
            before = len(jobs)
            jobs.update((job["identifier"], job) for job in more["jobs"])
            if len(jobs) == before:  # the list shrank meanwhile
                break
            total = more.get("total", total)
        return list(jobs.values())

    def preview_schedule(self, when, timezone=None, count=1):
        """The daemon's normalised spec and its next `count` run times (it checks spec and zone itself)."""
        params = {"when": when, "count": count, **_given(timezone=timezone)}
        return self._json("GET", "/preview-schedule.json", params=params)

    def get_job(self, job_id):
        return self.list_jobs(job_id=job_id)[0]

    def get_log(self, job_id, kind="out", follow=False):
        """The log's bytes, chunk by chunk. Without `follow`, a running job's log so far."""
        headers = None
        if not follow and self.get_job(job_id)["status"] == "RUNNING":
            # The daemon follows a running log; a closed range asks for it as it is now.
            headers = {"Range": f"bytes=0-{1 << 62}"}
        try:
            response = self._call("GET", f"/get-log/data/{job_id}.{kind}", stream=True, headers=headers)
        except ClientError as e:
            if str(e).startswith("416"):  # an empty log has no byte 0
                return iter(())
            raise
        return response.iter_content(chunk_size=None)

    def log_tail(self, job_id, kind="err", lines=20, size=8192):
        """The last `lines` lines of a finished job's log (at most its last `size` bytes), as text.

        Asks for a suffix range, so a long log is not downloaded whole. A line
        cut by the range's start is left out; an empty log gives "".
        """
        try:
            response = self._call("GET", f"/get-log/data/{job_id}.{kind}", headers={"Range": f"bytes=-{size}"})
        except ClientError as e:
            if str(e).startswith("416"):  # an empty log has no last bytes
                return ""
            raise
        data = response.content
        if response.status_code == 206 and not (response.headers.get("Content-Range") or "").startswith("bytes 0-"):
            data = data.split(b"\n", 1)[1] if b"\n" in data else b""  # the first line is cut
        return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])

    def get_items(self, job_id, fmt="jl", follow=False, on_wait=None, clock=time, poll=0.2, max_poll=2.0):
        """The job's scraped items, chunk by chunk, as the daemon sends them: JSON lines or CSV (`fmt`).

        Without `follow`, a running job's items so far; with it the chunks go on
        until the job ends (the daemon keeps the answer open). Only JSON lines
        are followed: a CSV's header row, the union of all keys, is only known
        once it is written, so the daemon sends a snapshot.

        A PENDING job has no items file yet (404): with `follow` it is waited
        for (polled, `poll` s growing to `max_poll`; `on_wait(job)` is called
        once first), so `get-items --follow` right after `schedule-job` works.
        """
        if fmt not in ITEM_FORMATS:
            raise ValueError(f"fmt must be one of {', '.join(ITEM_FORMATS)}, not {fmt!r}")
        if follow and fmt != "jl":
            raise ValueError("only JSON lines (fmt='jl') can be followed")
        headers = None
        if fmt == "jl" and not follow and self.get_job(job_id)["status"] == "RUNNING":
            # As get_log: the daemon follows a running job's file; a closed range asks for it as it is now.
            headers = {"Range": f"bytes=0-{1 << 62}"}
        for attempt in range(3):
            try:
                response = self._call("GET", f"/get-items/{quote(job_id, safe='')}.{fmt}", stream=True,
                                      headers=headers)
            except ClientError as e:
                if str(e).startswith("416"):  # an empty items file has no byte 0
                    return iter(())
                if not (follow and str(e).startswith("404") and attempt < 2
                        and self._wait_started(job_id, on_wait, clock, poll, max_poll)):
                    raise
                continue
            return _chunks(response)

    def _wait_started(self, job_id, on_wait, clock, poll, max_poll):
        """Whether asking again may find the job's items file: once a PENDING job started (waited for here),
        or when it was RUNNING already (it had just started)."""
        job = self.get_job(job_id)
        waited = job["status"] == "PENDING"
        if waited and on_wait is not None:
            on_wait(job)
        while job["status"] == "PENDING":
            clock.sleep(poll)
            poll = min(poll * 1.5, max_poll)
            job = self.get_job(job_id)
        return job["status"] == "RUNNING" or (waited and job["status"] in TERMINAL)

    def get_stats(self, job_id):
        return self._json("GET", f"/get-stats/{job_id}.json")["stats"]

    def pause_job(self, job_id):
        return self._json("POST", "/pause-job.json", data={"job_id": job_id})["job"]

    def resume_job(self, job_id):
        return self._json("POST", "/resume-job.json", data={"job_id": job_id})["job"]

    def edit_job(self, job_id, when=None, description=None, args=None, settings=None, priority=None,
                 timeout=None, timezone=None, overlap=None, catch_up=None, fail_on_errors=None, name=None,
                 notify=None, warm=None):
        """Change a SCHEDULED job in place (or a PENDING job's priority); only what is not None is sent.

        `fail_on_errors` is True, False, or "" to put it back to the daemon's default; `name` renames the
        job (409 when taken); `notify` "" stops its notifications; `warm` is True or False (its runs start
        warm, or cold).
        """
        data = {"job_id": job_id, **_schedule_fields(timezone, overlap, catch_up),
                **_switch("fail-on-errors", fail_on_errors), **_switch("warm", warm),
                **_given(name=name, notify=notify)}
        for name, value in (("when", when), ("description", description), ("priority", priority),
                            ("timeout", timeout)):
            if value is not None:
                data[name] = str(value)
        for name, value in (("args", args), ("settings", settings)):
            if value is not None:
                data[name] = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        return self._json("POST", "/edit-job.json", data=data)["job"]

    def cancel_job(self, job_id):
        self._json("POST", "/cancel-job.json", data={"id": job_id})

    def remove_project(self, name, purge=False):
        """Remove a project; with `purge` also what its crawls wrote (its data directory)."""
        self._json("POST", "/remove-project.json", data={"name": name, **({"purge": "on"} if purge else {})})

    def wait_job(self, job_id, poll=0.2, max_poll=2.0, clock=time, wait=50):
        """Block until the job ends; return it.

        Asks the daemon to answer at the job's end (wait-job.json, `wait` s at a time); a daemon without it
        (0.5.0) is polled with a growing interval, capped at `max_poll` s.
        """
        while True:
            try:
                answer = self._json("GET", "/wait-job.json", params={"job_id": job_id, "timeout": wait},
                                    timeout=wait + self.timeout)
            except ClientError as e:
                if not str(e).startswith("404") or "unknown job" in str(e):
                    raise
                break  # no wait-job.json here: poll
            if answer.get("done"):
                return answer["job"]
        while True:
            job = self.get_job(job_id)
            if job["status"] in TERMINAL:
                return job
            clock.sleep(poll)
            poll = min(poll * 1.5, max_poll)


def dumps(data):
    return json.dumps(data, ensure_ascii=False, indent=2)


def _schedule_fields(timezone, overlap, catch_up):
    """How a periodic job runs, as the API's fields; only what was given."""
    data = {}
    if timezone is not None:
        data["timezone"] = timezone
    if overlap is not None:
        data["overlap"] = overlap
    data.update(_switch("catch-up", catch_up))
    return data


def _given(**fields):
    """The fields that are not None, as they are."""
    return {k: v for k, v in fields.items() if v is not None}


def _switch(name, value):
    """An on/off field: {} for None (not sent: the daemon's default), "" as it is (back to the default)."""
    if value is None:
        return {}
    return {name: value if value == "" else ("on" if value else "off")}


def _chunks(response):
    """A streamed answer's chunks; a connection lost midway is a ClientError like any other failure."""
    try:
        yield from response.iter_content(chunk_size=CHUNK_SIZE)
    except requests.RequestException as e:
        raise ClientError(f"the download broke off: {e}") from None
    finally:
        response.close()
