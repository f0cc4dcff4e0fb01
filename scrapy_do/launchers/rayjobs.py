"""The Ray Jobs REST API of a cluster's head (`/api/jobs/`, `/api/packages/`), spoken over HTTP with treq.

The daemon never imports `ray`: a cluster's Ray version is its own, and the
REST API is the stable contract between them. Every call returns a Deferred;
the head not answering (refused, timed out, a 5xx) is `Unreachable`, which
the engine treats as transient (the job waits, PENDING); an answer that makes
no sense is `RayAnswerError`, which fails only the job concerned.
"""

import json

import treq
from twisted.internet import defer, error as net_error

from scrapy_do.errors import LaunchError
from scrapy_do.httpclient import quiet_client

#: Ray's job states; the last three are final.
ACTIVE = frozenset({"PENDING", "RUNNING"})
FINAL = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
#: What an exit code is when Ray gives none (its `driver_exit_code` is newer than the API).
_CODE_OF = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": -15}


class Unreachable(LaunchError):
    """The head does not answer; trying again later may work."""

    def __init__(self, msg):
        super().__init__(msg, transient=True)


class RayAnswerError(LaunchError):
    """The head answered something the daemon does not understand, or refused the request."""


def submission_id(job_id):
    """The Ray submission of a Scrapy Do run: one per job identifier, so a second submit is refused by Ray
    instead of running the crawl twice."""
    return f"scrapy-do-{job_id}"


def exit_code(info):
    """The crawl's exit code from a final job info: Ray's `driver_exit_code` when it has one."""
    code = info.get("driver_exit_code")
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    return _CODE_OF[info["status"]]


def check_info(info, wanted):
    """A job info as Ray sends it, or RayAnswerError naming what is wrong with it."""
    if not isinstance(info, dict) or info.get("status") not in ACTIVE | FINAL:
        raise RayAnswerError(f"the Ray head answered a job info the daemon does not understand for {wanted}: "
                             f"{str(info)[:300]}")
    return info


class RayJobs:
    """Calls to one head's Jobs API; `http` is a treq HTTPClient (or treq.testing's StubTreq)."""

    def __init__(self, reactor, address, http=None, timeout=10.0, headers=None):
        if http is None:
            http = quiet_client(reactor)
        self.reactor = reactor
        self.address = address.rstrip("/")
        self.http = http
        self.timeout = timeout
        self.headers = dict(headers or {})

    @defer.inlineCallbacks
    def _call(self, method, path, body=None, data=None, expect=(200,)):
        url = f"{self.address}{path}"
        kwargs = {"headers": self.headers, "timeout": self.timeout, "reactor": self.reactor}
        if body is not None:
            kwargs["data"] = json.dumps(body).encode()
            kwargs["headers"] = {**self.headers, "Content-Type": "application/json"}
        elif data is not None:
            kwargs["data"] = data
        try:
            response = yield self.http.request(method, url, **kwargs)
            content = yield treq.content(response)
        except (net_error.ConnectError, net_error.TimeoutError, net_error.ConnectionLost, defer.CancelledError,
                net_error.DNSLookupError, OSError) as e:
            raise Unreachable(f"the Ray head at {self.address} does not answer ({type(e).__name__}: {e})") from None
        except Exception as e:  # ResponseNeverReceived and friends: the connection broke
            raise Unreachable(f"the Ray head at {self.address} does not answer ({type(e).__name__})") from None
        if response.code >= 500:
            raise Unreachable(f"the Ray head at {self.address} answered {response.code} to {method} {path}: "
                              f"{content[:300].decode('utf-8', 'replace')}")
        return response.code, content

    @staticmethod
    def _json(content, what):
        try:
            return json.loads(content)
        except (ValueError, RecursionError):
            raise RayAnswerError(f"the Ray head answered {what} with something that is not JSON: "
                                 f"{content[:300].decode('utf-8', 'replace')}") from None

    @defer.inlineCallbacks
    def version(self):
        code, content = yield self._call("GET", "/api/version")
        if code != 200:
            raise RayAnswerError(f"{self.address}/api/version answered {code}: is this a Ray head's dashboard?")
        return self._json(content, "/api/version")

    @defer.inlineCallbacks
    def info(self, sid):
        """The job info of a submission, or None when the head does not know it."""
        code, content = yield self._call("GET", f"/api/jobs/{sid}")
        if code == 404:
            return None
        if code != 200:
            raise RayAnswerError(f"the Ray head answered {code} about submission {sid}: "
                                 f"{content[:300].decode('utf-8', 'replace')}")
        return check_info(self._json(content, f"submission {sid}"), sid)

    @defer.inlineCallbacks
    def submit(self, body):
        """Submit a job; True when accepted, False when a submission with its id exists already."""
        code, content = yield self._call("POST", "/api/jobs/", body=body)
        if code == 200:
            answer = self._json(content, "the submission")
            if not isinstance(answer, dict) or answer.get("submission_id") != body["submission_id"]:
                raise RayAnswerError(f"the Ray head accepted submission {body['submission_id']} but answered "
                                     f"{str(answer)[:300]}")
            return True
        text = content[:2000].decode("utf-8", "replace")
        if code == 400 and "already exists" in text:
            return False
        raise RayAnswerError(f"the Ray head refused the submission ({code}): {text}")

    @defer.inlineCallbacks
    def stop(self, sid):
        code, content = yield self._call("POST", f"/api/jobs/{sid}/stop")
        return code == 200

    @defer.inlineCallbacks
    def has_package(self, uri):
        code, _ = yield self._call("GET", "/api/packages/" + uri.replace("://", "/", 1))
        return code == 200

    @defer.inlineCallbacks
    def put_package(self, uri, data):
        code, content = yield self._call("PUT", "/api/packages/" + uri.replace("://", "/", 1), data=data)
        if code != 200:
            raise RayAnswerError(f"the Ray head refused the package {uri} ({code}): "
                                 f"{content[:300].decode('utf-8', 'replace')}")
