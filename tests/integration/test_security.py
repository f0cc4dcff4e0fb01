"""Authentication and TLS as users switch them on: real daemon, throwaway CA, real clients."""

import datetime
import ipaddress
import socket
import ssl
import subprocess
import sys
import time

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from requests.auth import HTTPBasicAuth, HTTPDigestAuth

from scrapy_do.client.api import ScrapyDoClient
from tests.integration.daemonproc import DaemonProcess

pytestmark = pytest.mark.integration


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca():
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name("Test CA")).issuer_name(_name("Test CA"))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def make_server_cert(ca, directory, cn="scrapy-do test"):
    ca_key, ca_cert = ca
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    (directory / "server.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    (directory / "server.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert


@pytest.fixture(scope="module")
def secure(tmp_path_factory):
    """A daemon with https = on and auth = on, its CA file and the one user's credentials."""
    tmp = tmp_path_factory.mktemp("secure")
    ca = make_ca()
    (tmp / "ca.crt").write_bytes(ca[1].public_bytes(serialization.Encoding.PEM))
    make_server_cert(ca, tmp)
    (tmp / "auth.db").write_text("# users\nalice:s3cret\n")
    conf = ("[web]\ninterfaces = 127.0.0.1:0\nhttps = on\nkey = server.key\ncert = server.crt\n"
            "auth = on\nauth-db = auth.db\n")
    daemon = DaemonProcess(tmp, conf)
    daemon.start_https = True
    daemon.start(wait=False)
    port = daemon.wait_ready_https()
    daemon.url = f"https://127.0.0.1:{port}"
    daemon.ca = ca
    daemon.cafile = str(tmp / "ca.crt")
    yield daemon
    daemon.stop()


def get(daemon, path, auth=None):
    return requests.get(daemon.url + path, auth=auth, verify=daemon.cafile, timeout=30)


@pytest.mark.parametrize("path", ["/status.json", "/list-jobs.json?status=ACTIVE", "/", "/ui/app.js",
                                  "/openapi.json", "/get-log/data/x.out"])
def test_every_path_needs_credentials(secure, path):
    """Without credentials every path is a 401 with both challenges and a JSON body that leaks nothing."""
    response = get(secure, path)
    assert response.status_code == 401
    challenges = response.headers["WWW-Authenticate"]
    assert "Digest" in challenges and "Basic" in challenges
    assert response.json() == {"status": "error", "msg": "authentication required"}


@pytest.mark.parametrize("auth", [HTTPDigestAuth("alice", "s3cret"), HTTPBasicAuth("alice", "s3cret")],
                         ids=["digest", "basic"])
def test_valid_credentials_over_tls(secure, auth):
    """Digest (the 0.5.0 client's) and Basic (curl, browsers) both let the user in over HTTPS."""
    response = get(secure, "/status.json", auth)
    assert response.status_code == 200 and response.json()["status"] == "ok"


@pytest.mark.parametrize("auth", [HTTPDigestAuth("alice", "wrong"), HTTPBasicAuth("alice", "wrong"),
                                  HTTPBasicAuth("mallory", "s3cret")])
def test_wrong_credentials_are_refused(secure, auth):
    """Wrong passwords or unknown users get 401 and no data."""
    response = get(secure, "/status.json", auth)
    assert response.status_code == 401 and "jobs-run" not in response.text


def test_our_client_works_with_auth_and_tls(secure):
    """scrapy-do-cl's client authenticates (basic over https) and verifies the certificate."""
    client = ScrapyDoClient(secure.url, "alice", "s3cret", verify=secure.cafile)
    assert client.status()["status"] == "ok"
    assert client.list_projects() == []


def peer_cert_cn(daemon):
    host, port = daemon.url.removeprefix("https://").split(":")
    context = ssl.create_default_context(cafile=daemon.cafile)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        with context.wrap_socket(sock, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    cert = x509.load_der_x509_certificate(der)
    return cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


def test_renewed_certificate_is_used_without_restart(secure):
    """Replacing the key and certificate on disk changes what new connections get, no restart."""
    assert peer_cert_cn(secure) == "scrapy-do test"
    make_server_cert(secure.ca, secure.workdir, cn="renewed")
    assert peer_cert_cn(secure) == "renewed"
    assert secure.proc.poll() is None


def test_digest_over_plain_http_for_the_original_client(tmp_path):
    """With auth on and https off, digest works and basic is not offered (no cleartext passwords)."""
    (tmp_path / "auth.db").write_text("bob:pw\n")
    daemon = DaemonProcess(tmp_path, "[web]\ninterfaces = 127.0.0.1:0\nauth = on\nauth-db = auth.db\n").start()
    try:
        response = requests.get(daemon.url + "/status.json", timeout=30)
        assert response.status_code == 401 and "Basic" not in response.headers["WWW-Authenticate"]
        response = requests.get(daemon.url + "/status.json", auth=HTTPDigestAuth("bob", "pw"), timeout=30)
        assert response.status_code == 200
    finally:
        daemon.stop()


@pytest.mark.parametrize("conf, text", [
    ("[web]\nhttps = on\nkey = missing.key\ncert = missing.crt\n", "[web] key: cannot read"),
    ("[web]\nauth = on\nauth-db = missing.db\n", "[web] auth-db: cannot read"),
    ("[web]\nauth = on\nauth-db = empty.db\n", "username:password"),
])
def test_unusable_security_files_stop_startup(tmp_path, conf, text):
    """A missing key, certificate or auth-db stops start-up with one clear line."""
    (tmp_path / "empty.db").write_text("")
    (tmp_path / "c.conf").write_text(conf)
    proc = subprocess.run([sys.executable, "-m", "scrapy_do", "--config", "c.conf"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=30)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and text in lines[0], proc.stderr


def test_public_interface_without_auth_logs_a_warning(tmp_path):
    """Building a daemon for a non-loopback address with auth off warns in the log."""
    from twisted.internet import reactor
    from twisted.logger import LogLevel, globalLogPublisher

    import dataclasses

    from scrapy_do.config import load
    from scrapy_do.service import make_service

    seen = []
    globalLogPublisher.addObserver(seen.append)
    try:
        config = dataclasses.replace(load(cwd=tmp_path), interfaces=(("0.0.0.0", 7654),))
        make_service(config, reactor).store.close()
    finally:
        globalLogPublisher.removeObserver(seen.append)
    warnings = [e for e in seen if e.get("log_level") == LogLevel.warn]
    assert any("auth off" in e["log_format"] for e in warnings)


def test_with_auth_on_crawls_report_with_their_token_and_nobody_else_gets_in(tmp_path):
    """A crawl has no user's password: its reports pass auth by their job's token; all else still needs one."""
    from tests.helpers import offline_zip, multipart

    (tmp_path / "auth.db").write_text("bob:pw\n")
    daemon = DaemonProcess(tmp_path, "[web]\ninterfaces = 127.0.0.1:0\nauth = on\nauth-db = auth.db\n").start()
    auth = HTTPDigestAuth("bob", "pw")
    try:
        body, ctype = multipart({"archive": ("offline.zip", offline_zip())})
        assert requests.post(daemon.url + "/push-project.json", data=body, headers={"Content-Type": ctype},
                             auth=auth, timeout=60).status_code == 200
        job = requests.post(daemon.url + "/schedule-job.json", data={"project": "offline", "spider": "quick"},
                            auth=auth, timeout=30).json()["identifier"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            record = requests.get(daemon.url + "/list-jobs.json", params={"id": job}, auth=auth,
                                  timeout=30).json()["jobs"][0]
            if record["status"] in ("SUCCESSFUL", "FAILED"):
                break
            time.sleep(0.2)
        assert record["status"] == "SUCCESSFUL" and record["stats"]["finish-reason"] == "finished", record
        assert requests.get(daemon.url + f"/get-stats/{job}.json", timeout=30).status_code == 401
        assert requests.post(daemon.url + f"/report/{job}.json", json={"stats": {}, "summary": {}},
                             timeout=30).status_code == 403
    finally:
        daemon.stop()


def test_an_https_daemons_crawls_report_stats_and_items_over_loopback_only(secure):
    """Over HTTPS the crawls report to a loopback listener that serves the report endpoints and nothing else."""
    import json
    import re

    from tests.helpers import offline_zip

    auth = HTTPDigestAuth("alice", "s3cret")
    pushed = requests.post(secure.url + "/push-project.json", files={"archive": ("o.zip", offline_zip())},
                           auth=auth, verify=secure.cafile, timeout=60)
    assert pushed.status_code == 200, pushed.text
    job = requests.post(secure.url + "/schedule-job.json", auth=auth, verify=secure.cafile, timeout=30,
                        data={"project": "offline", "spider": "mixed", "payload": '{"count": 7}'}).json()["identifier"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        record = get(secure, f"/list-jobs.json?id={job}", auth).json()["jobs"][0]
        if record["status"] in ("SUCCESSFUL", "FAILED"):
            break
        time.sleep(0.2)
    assert record["status"] == "SUCCESSFUL" and record["stats"]["item_scraped_count"] == 7, record
    items = get(secure, f"/get-items/{job}.jl", auth)
    assert items.status_code == 200 and len(items.content.splitlines()) == 7
    port = int(re.search(r"crawls report over loopback port (\d+)", secure.log.read_text()).group(1))
    for path in ("/status.json", "/", f"/get-items/{job}.jl", "/list-jobs.json?status=ACTIVE"):
        answer = requests.get(f"http://127.0.0.1:{port}{path}", timeout=10)
        assert answer.status_code == 404 and json.loads(answer.content)["status"] == "error", path
    late = requests.post(f"http://127.0.0.1:{port}/report/{job}.json", json={"stats": {}, "summary": {}},
                         headers={"Authorization": "Bearer x"}, timeout=10)
    assert late.status_code == 403
