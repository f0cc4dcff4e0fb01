"""API tokens and trusted proxies against the real daemon: every endpoint of the OpenAPI document, tokens added
and revoked with the real `scrapy-do-token` while the daemon runs, Digest untouched, Basic through a proxy."""

import json
import re
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from requests.auth import HTTPBasicAuth, HTTPDigestAuth

from scrapy_do.web.auth import AuthWrapper
from scrapy_do.web.openapi import openapi_document
from tests.helpers import multipart, offline_zip
from tests.integration.daemonproc import DaemonProcess

pytestmark = pytest.mark.integration

TOKEN_COMMAND = Path(sys.executable).with_name("scrapy-do-token")
CONF = ("[scrapy-do]\njob-slots = 1\ncancel-grace = 5\n[web]\ninterfaces = 127.0.0.1:0\nauth = on\n"
        "auth-db = auth.db\ntokens-db = tokens.db\n")
UNKNOWN_JOB = str(uuid.UUID(int=1, version=4))
#: Values for an OpenAPI path's parameters; any other parameter gets "x".
FILL = {"job_id": UNKNOWN_JOB, "filename": f"{UNKNOWN_JOB}.out", "project": "offline"}
DIGEST = HTTPDigestAuth("alice", "s3cret")


def endpoints(method):
    """The OpenAPI paths answering `method`, with their parameters filled in; /report/ paths aside (they take
    their job's token, not a user's: AuthWrapper.OPEN)."""
    paths = [re.sub(r"\{(\w+)\}", lambda m: FILL.get(m.group(1), "x"), path)
             for path, ops in sorted(openapi_document()["paths"].items()) if method in ops]
    return [p for p in paths if not p.startswith(tuple(o.decode() for o in AuthWrapper.OPEN))]


def token_command(db, *args):
    proc = subprocess.run([str(TOKEN_COMMAND), "--db", str(db), *args], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """auth = on with alice's password, a read-only and a full token, trusted-proxies = 127.0.0.1; the offline
    project pushed with the full token."""
    tmp = tmp_path_factory.mktemp("tokens")
    (tmp / "auth.db").write_text("alice:s3cret\n")
    d = DaemonProcess(tmp, CONF + "trusted-proxies = 127.0.0.1\n")
    d.tokens = {"read-only": token_command(tmp / "tokens.db", "add", "ci", "--read-only"),
                "full": token_command(tmp / "tokens.db", "add", "deploy")}
    d.start()
    body, ctype = multipart({"archive": ("offline.zip", offline_zip())})
    response = requests.post(d.url + "/push-project.json", data=body, timeout=60,
                             headers={"Content-Type": ctype, **bearer(d.tokens["full"])})
    assert response.status_code == 200, response.text
    yield d
    d.stop()


def call(daemon, method, path, token=None, **kwargs):
    headers = {**kwargs.pop("headers", {}), **(bearer(token) if token else {})}
    with requests.request(method, daemon.url + path, headers=headers, timeout=30, stream=True, **kwargs) as r:
        if path != "/events":  # a stream that never ends: its status and headers are enough
            r.content  # noqa: B018 - read the body while the connection is open
        return r


@pytest.mark.parametrize("path", endpoints("get"))
def test_a_read_only_token_may_get_every_endpoint(daemon, path):
    """Every GET of the OpenAPI document is answered (200 or the endpoint's own 4xx) to a read-only token."""
    response = call(daemon, "GET", path, daemon.tokens["read-only"])
    assert response.status_code not in (401, 403), (response.status_code, response.text[:300])
    assert call(daemon, "GET", path).status_code == 401  # and nothing is open without it


@pytest.mark.parametrize("path", endpoints("post"))
def test_a_read_only_token_gets_403_on_every_post(daemon, path):
    """Every POST of the OpenAPI document, with a body or without, is a JSON 403 to a read-only token."""
    for data in ({"x": "1"}, None):
        response = call(daemon, "POST", path, daemon.tokens["read-only"], data=data)
        assert response.status_code == 403, response.text[:300]
        assert response.json()["msg"].startswith("this token is read-only: ")
        assert set(response.json()) == {"status", "msg"} and response.json()["status"] == "error"


@pytest.mark.parametrize("path", endpoints("post"))
def test_a_full_token_passes_auth_on_every_post(daemon, path):
    """A full token reaches every POST endpoint (which then answers for itself, here 400 or 404)."""
    response = call(daemon, "POST", path, daemon.tokens["full"], data={"x": "1"})
    assert response.status_code not in (401, 403), response.text[:300]


def test_a_full_token_pushes_schedules_and_cancels(daemon):
    """With a full token a script pushes a project, schedules a job and cancels it."""
    token = daemon.tokens["full"]
    body, ctype = multipart({"archive": ("offline.zip", offline_zip())})
    push = call(daemon, "POST", "/push-project.json", token, data=body, headers={"Content-Type": ctype})
    assert push.status_code == 200 and push.json()["name"] == "offline", push.text
    scheduled = call(daemon, "POST", "/schedule-job.json", token,
                     data={"project": "offline", "spider": "quick", "when": "every 2 hours"})
    assert scheduled.status_code == 200, scheduled.text
    identifier = scheduled.json()["identifier"]
    job = call(daemon, "GET", f"/list-jobs.json?id={identifier}", daemon.tokens["read-only"]).json()["jobs"][0]
    assert job["status"] == "SCHEDULED"
    assert call(daemon, "POST", "/cancel-job.json", token, data={"id": identifier}).status_code == 200


def test_a_read_only_upload_is_refused_from_its_headers(daemon):
    """A read-only push announcing 10 MiB gets its 403 before a byte of the body is sent."""
    port = int(daemon.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"POST /push-project.json HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                     f"Authorization: Bearer {daemon.tokens['read-only']}\r\n"
                     "Content-Type: multipart/form-data; boundary=x\r\n"
                     f"Content-Length: {10 << 20}\r\n\r\n".encode())
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 403 ") and b"this token is read-only" in answer


def test_an_unknown_token_gets_the_401_with_every_challenge(daemon):
    """A token that was never issued is the usual 401, with the Bearer challenge beside Digest."""
    response = call(daemon, "GET", "/status.json", "sdo_" + "A" * 43)
    assert response.status_code == 401
    assert response.json() == {"status": "error", "msg": "authentication required"}
    assert 'Bearer realm="Scrapy Do"' in response.headers["WWW-Authenticate"]
    assert "Digest" in response.headers["WWW-Authenticate"]


def test_tokens_added_and_revoked_apply_without_restart(daemon):
    """A token added with scrapy-do-token works at once; once revoked it is a 401, and the others still work."""
    db = daemon.workdir / "tokens.db"
    token = token_command(db, "add", "temporary")
    assert call(daemon, "POST", "/cancel-job.json", token, data={"id": UNKNOWN_JOB}).status_code == 404
    token_command(db, "revoke", "temporary")
    assert call(daemon, "GET", "/status.json", token).status_code == 401
    assert call(daemon, "GET", "/status.json", daemon.tokens["full"]).status_code == 200
    assert "temporary" not in token_command(db, "list")


def test_digest_still_works_and_basic_needs_the_proxy_header(daemon):
    """Digest logs in as before; Basic over plain HTTP is neither offered nor taken unless the trusted proxy
    (127.0.0.1 here) says X-Forwarded-Proto: https, as curl -u does through nginx."""
    assert call(daemon, "GET", "/status.json", auth=DIGEST).status_code == 200
    assert call(daemon, "POST", "/cancel-job.json", auth=DIGEST, data={"id": UNKNOWN_JOB}).status_code == 404
    plain = call(daemon, "GET", "/status.json", auth=HTTPBasicAuth("alice", "s3cret"))
    assert plain.status_code == 401 and "Basic" not in plain.headers["WWW-Authenticate"]
    proxied = call(daemon, "GET", "/status.json", headers={"X-Forwarded-Proto": "https"})
    assert 'Basic realm="Scrapy Do"' in proxied.headers["WWW-Authenticate"]
    curl = subprocess.run(["curl", "-s", "-u", "alice:s3cret", "-H", "X-Forwarded-Proto: https",
                           daemon.url + "/status.json"], capture_output=True, text=True, timeout=30)
    assert json.loads(curl.stdout)["status"] == "ok", curl.stdout
    wrong = call(daemon, "GET", "/status.json", auth=HTTPBasicAuth("alice", "nope"),
                 headers={"X-Forwarded-Proto": "https"})
    assert wrong.status_code == 401


def test_the_http_layer_refuses_nul_and_oversized_headers_and_the_daemon_lives(daemon):
    """A token with a NUL or an Authorization header over Twisted's 16 KiB is refused by the HTTP parser."""
    port = int(daemon.url.rsplit(":", 1)[1])
    for value in (b"Bearer " + daemon.tokens["full"].encode() + b"\x00", b"Bearer " + b"A" * 20000):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /status.json HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: " + value + b"\r\n\r\n")
            answer = sock.recv(65536)
        assert not answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert call(daemon, "GET", "/status.json", daemon.tokens["full"]).status_code == 200


def test_no_token_reaches_the_daemons_output(daemon):
    """After every request above, the daemon's log and stderr hold none of the tokens (no access log)."""
    output = daemon.log.read_text() + daemon.err.read_text()
    assert "[web] tokens-db: 2 token(s) in" in output  # logged at start-up: the log is the right one
    assert not [role for role, token in daemon.tokens.items() if token in output]
    assert "sdo_" not in output


def test_the_proxy_header_from_an_untrusted_address_changes_nothing(tmp_path):
    """Trusting only 10.0.0.0/8, a request from 127.0.0.1 with X-Forwarded-Proto: https gets no Basic."""
    (tmp_path / "auth.db").write_text("alice:s3cret\n")
    (tmp_path / "tokens.db").write_text("")
    d = DaemonProcess(tmp_path, CONF + "trusted-proxies = 10.0.0.0/8\n").start()
    try:
        forged = call(d, "GET", "/status.json", auth=HTTPBasicAuth("alice", "s3cret"),
                      headers={"X-Forwarded-Proto": "https"})
        assert forged.status_code == 401 and "Basic" not in forged.headers["WWW-Authenticate"]
        assert call(d, "GET", "/status.json", auth=DIGEST).status_code == 200
    finally:
        d.stop()


@pytest.mark.parametrize("conf, tokens_db, text", [
    (CONF, "ci:full:not-a-hash\n", "[web] tokens-db: "),
    (CONF, None, "[web] tokens-db: cannot read"),
    ("[web]\ninterfaces = 127.0.0.1:0\ntokens-db = tokens.db\n", "", "[web] auth is off"),
])
def test_an_unusable_tokens_db_stops_startup(tmp_path, conf, tokens_db, text):
    """A malformed or missing tokens-db, or one set with auth off, stops start-up with one clear line."""
    (tmp_path / "auth.db").write_text("alice:s3cret\n")
    if tokens_db is not None:
        (tmp_path / "tokens.db").write_text(tokens_db)
    (tmp_path / "c.conf").write_text(conf)
    proc = subprocess.run([sys.executable, "-m", "scrapy_do", "--config", "c.conf"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=30)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and text in lines[0], proc.stderr
