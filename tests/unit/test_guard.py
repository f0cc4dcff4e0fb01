"""CrossSiteGuard in front of the real WebAPI: raw HTTP bytes through a real Site, fake crawls."""

import json

import pytest
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from zope.interface import implementer

from scrapy_do.web.api import WebAPI
from scrapy_do.web.auth import AuthWrapper
from scrapy_do.web.guard import CrossSiteGuard, ServedHosts, parse_authority
from tests.helpers import multipart

PORT = 7654
LOOPBACK = (("127.0.0.1", PORT), ("::1", PORT))
NAMES = ("builder", "builder.lan.example")


@pytest.fixture
def api(controller, config, clock):
    controller.push("proj", ("quick", "slow"))
    return WebAPI(controller, config, clock)


def make_site(api, interfaces=LOOPBACK, allowed=(), auth_db=None, addresses=(), clock=None):
    """The API's own Site, wrapped as make_service wraps it (the guard outside, authentication inside)."""
    served = ServedHosts(interfaces, allowed, names=lambda: set(NAMES), addresses=lambda: list(addresses),
                         **({"clock": clock} if clock else {}))
    inner = (lambda r: AuthWrapper(r, auth_db)) if auth_db else (lambda r: r)
    return api.site(lambda r: CrossSiteGuard(inner(r), served))


def raw_request(method="GET", path="/status.json", host="127.0.0.1:7654", headers=(), body=None, version="1.1"):
    lines = [f"{method} {path} HTTP/{version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    lines += [f"{k}: {v}" for k, v in headers]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + (body or b"")


class Response:
    def __init__(self, data):
        head, _, self.body = data.partition(b"\r\n\r\n")
        status, *lines = head.decode("latin-1").split("\r\n")
        self.code = int(status.split()[1])
        self.status_line = status
        self.headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            self.headers.setdefault(name.strip().lower(), []).append(value.strip())
        if self.headers.get("transfer-encoding") == ["chunked"]:
            self.body = dechunk(self.body)

    def json(self):
        assert self.headers["content-type"] == ["application/json"]
        return json.loads(self.body)


def dechunk(data):
    out = []
    while True:
        size, _, data = data.partition(b"\r\n")
        size = int(size, 16)
        if size == 0:
            return b"".join(out)
        out.append(data[:size])
        data = data[size + 2:]


def serve(site, raw, port=PORT, secure=False, local=None):
    """Feed `raw` to a new connection arriving on `port` (TLS if `secure`); return the Response."""
    address = local or IPv4Address("TCP", "127.0.0.1", port)
    transport = (TLSTransport if secure else StringTransport)(
        hostAddress=address, peerAddress=IPv4Address("TCP", "127.0.0.1", 50123))
    channel = site.buildProtocol(None)
    channel.makeConnection(transport)
    channel.dataReceived(raw)
    return Response(transport.value())


@implementer(ISSLTransport)
class TLSTransport(StringTransport):
    """A connection that says it is TLS, as listenSSL's are (Request.isSecure() is true)."""

    def setTcpNoDelay(self, enabled):
        pass


def schedule(site, headers=(), host="127.0.0.1:7654", **kwargs):
    body = b"project=proj&spider=quick"
    return serve(site, raw_request("POST", "/schedule-job.json", host,
                                   [("Content-Type", "application/x-www-form-urlencoded"), *headers], body),
                 **kwargs)


def jobs(controller):
    return controller.list_jobs()


# -- parsing the Host header ------------------------------------------------------------------------


@pytest.mark.parametrize("text, parsed", [
    ("127.0.0.1:7654", ("127.0.0.1", 7654)),
    ("LocalHost.", ("localhost", None)),
    ("[::1]:7654", ("::1", 7654)),
    ("[0:0:0:0:0:0:0:1]", ("::1", None)),
    ("[FE80::1%25eth0]:80", ("fe80::1", 80)),
    ("Proxy.Example.:", ("proxy.example", None)),
])
def test_authority_is_read_as_browsers_write_it(text, parsed):
    """Host values are compared without case, trailing dot, brackets, zone or the long form of IPv6."""
    assert parse_authority(text) == parsed


@pytest.mark.parametrize("text", ["::1", "[::1", "[evil.example]:80", "host:99999", "host:port", ":7654", "a b",
                                  "", "evil.example/x", "user@host"])
def test_unreadable_authority_is_refused(text):
    """A value that is not host[:port] (bare IPv6, bad port, stray characters) cannot be read."""
    with pytest.raises(ValueError):
        parse_authority(text)


# -- the Host check -----------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1:7654", "localhost:7654", "LOCALHOST.:7654", "[::1]:7654",
                                  "[0:0:0:0:0:0:0:1]:7654", "10.8.0.1:7654", "10.8.0.1", "proxy.example",
                                  "PROXY.EXAMPLE.:8443", "builder:7654", "builder.lan.example", None])
def test_hosts_the_daemon_serves_are_answered(api, host):
    """Interface addresses, loopback names, allowed-hosts and (beyond loopback) the machine's names pass."""
    site = make_site(api, LOOPBACK + (("10.8.0.1", PORT),), allowed=("proxy.example",))
    response = serve(site, raw_request(host=host))
    assert response.code == 200 and response.json()["status"] == "ok"


def test_request_without_host_header_http10_is_answered(api):
    """An HTTP/1.0 request with no Host header is answered (no browser sends one)."""
    response = serve(make_site(api), raw_request(host=None, version="1.0"))
    assert response.code == 200 and response.json()["status"] == "ok"


@pytest.mark.parametrize("host, shown", [
    ("evil.example", "evil.example"),
    ("Evil.Example.:7654", "evil.example"),
    ("127.0.0.2:7654", "127.0.0.2"),
    ("localhost.evil.example:7654", "localhost.evil.example"),
    ("[::2]:7654", "::2"),
    ("10.8.0.1:7654", "10.8.0.1"),
    ("builder:7654", "builder"),
])
def test_host_the_daemon_does_not_serve_is_refused_421(api, host, shown):
    """A loopback daemon refuses other names and addresses, its machine's names too, with a JSON 421."""
    response = serve(make_site(api), raw_request(host=host))
    assert response.status_line == "HTTP/1.1 421 Misdirected Request"
    assert response.json() == {"status": "error", "msg": f"Host '{shown}' is not one this daemon serves; add it to "
                                                         "[web] allowed-hosts if it is yours"}


@pytest.mark.parametrize("path", ["/", "/ui/app.js", "/events", "/get-log/data/x.out", "/no-such-path", "/a/b/c"])
def test_host_check_covers_every_path(api, path):
    """The dashboard, its files, the event stream and unknown paths are all refused for a foreign Host."""
    response = serve(make_site(api), raw_request(path=path, host="rebind.example:7654"))
    assert response.code == 421 and "rebind.example" in response.json()["msg"]


def test_dashboard_files_are_served_through_the_guard(api):
    """The guard passes the whole path on: the dashboard page and its static files are found."""
    site = make_site(api)
    page = serve(site, raw_request(path="/"))
    # HEAD: a static file's body comes from a producer that needs the reactor (the integration test GETs it).
    script = serve(site, raw_request("HEAD", "/ui/app.js"))
    assert page.code == 200 and b"<html" in page.body.lower()
    assert script.code == 200 and script.headers["content-type"] == ["text/javascript"]
    assert int(script.headers["content-length"][0]) > 0


def test_head_refusal_has_no_body(api):
    """A refused HEAD gets the status and the JSON content type but no body."""
    response = serve(make_site(api), raw_request("HEAD", "/", host="rebind.example"))
    assert response.code == 421 and response.body == b""
    assert response.headers["content-type"] == ["application/json"]


@pytest.mark.parametrize("host", ["[::1", "host:99999", "a@b", "é.example"])
def test_unreadable_host_is_refused_400(api, host):
    """A Host header that cannot be read is a 400 that names Host and the expected form."""
    response = serve(make_site(api), raw_request(host=host))
    assert response.code == 400
    assert response.json()["msg"].startswith("Host ") and "host:port" in response.json()["msg"]


def test_several_host_headers_are_refused_400(api):
    """Two Host headers (one of them foreign) get a 400, not an answer for either."""
    raw = raw_request(headers=[("Host", "evil.example")])
    response = serve(make_site(api), raw)
    assert response.code == 400 and "several Host headers" in response.json()["msg"]


def test_wildcard_interface_serves_every_address_of_the_machine(api):
    """On 0.0.0.0 the machine's addresses and names are served, and other hosts still are not."""
    site = make_site(api, (("0.0.0.0", PORT),), addresses=["192.0.2.7", "fe80::1%eth0", "fd00::2"])
    for host in ("192.0.2.7:7654", "[fe80::1]:7654", "[fd00::2]:7654", "builder:7654", "localhost:7654"):
        assert serve(site, raw_request(host=host)).code == 200, host
    assert serve(site, raw_request(host="0.0.0.0:7654")).code == 421
    assert serve(site, raw_request(host="rebind.example:7654")).code == 421


def test_wildcard_interface_learns_addresses_that_appear_later(api):
    """An address the machine gains after start-up is served once it shows up (re-read at most once a second)."""
    addresses, clock = ["192.0.2.7"], Clock()
    served = ServedHosts((("::", PORT),), names=lambda: set(), addresses=lambda: list(addresses),
                         clock=clock.seconds)
    assert "192.0.2.7" in served and "198.51.100.9" not in served
    addresses.append("198.51.100.9")
    assert "198.51.100.9" not in served  # read less than a second ago
    clock.advance(1.5)
    assert "198.51.100.9" in served


# -- the Origin check ---------------------------------------------------------------------------------


@pytest.mark.parametrize("origin, why", [
    ("http://evil.example", "is not this daemon's own origin"),
    ("https://evil.example:7654", "is not this daemon's own origin"),
    ("http://127.0.0.1:8000", "another port"),
    ("http://localhost:3000", "another port"),
    ("http://127.0.0.1", "another port"),
    ("null", "opaque origin"),
    ("chrome-extension://abcdef", "not http or https"),
    ("http://[::1", "cannot be read"),
    ("", "cannot be read"),
])
def test_state_change_from_a_foreign_origin_is_refused_and_does_nothing(api, controller, launcher, origin, why):
    """A POST whose Origin is not the daemon's own gets a 403 naming the header and value, and no job is made."""
    before = jobs(controller)
    response = schedule(make_site(api), [("Origin", origin)])
    assert response.code == 403
    msg = response.json()["msg"]
    assert msg.startswith(f"Origin {origin!r} ") and why in msg and "neither Origin nor Referer" in msg
    assert jobs(controller) == before and launcher.launched == []


def test_push_from_a_foreign_origin_is_refused_and_adds_no_project(api, controller):
    """A cross-site multipart push-project.json is refused before the archive reaches the controller."""
    controller.fake_projects.next = ("evil", ("x",))
    body, ctype = multipart({"archive": ("evil.zip", b"PK\x05\x06" + b"\0" * 18)})
    raw = raw_request("POST", "/push-project.json", headers=[("Origin", "http://evil.example"),
                                                             ("Content-Type", ctype)], body=body)
    response = serve(make_site(api), raw)
    assert response.code == 403 and "'http://evil.example'" in response.json()["msg"]
    assert controller.list_projects() == ["proj"]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH"])
def test_every_state_changing_method_is_checked(api, method):
    """Not only POST: any method but GET, HEAD and OPTIONS is refused from a foreign Origin."""
    response = serve(make_site(api), raw_request(method, "/schedule-job.json",
                                                 headers=[("Origin", "http://evil.example")], body=b""))
    assert response.code == 403 and f"a {method} is accepted only" in response.json()["msg"]


@pytest.mark.parametrize("host, origin, port", [
    ("127.0.0.1:7654", "http://127.0.0.1:7654", PORT),        # the dashboard, as opened by default
    ("localhost:7654", "http://localhost:7654", PORT),
    ("[::1]:7654", "http://[::1]:7654", PORT),
    ("127.0.0.1:7654", "http://localhost:7654", PORT),        # another name of the same daemon
    ("localhost:9000", "http://localhost:9000", PORT),        # ssh -L 9000:localhost:7654
    ("127.0.0.1:7654", "https://proxy.example", PORT),        # nginx in front, default proxy Host
    ("proxy.example", "https://proxy.example:8443", PORT),    # a listed name counts with any port
    ("127.0.0.1", "http://127.0.0.1", 80),                    # default port on both sides
])
def test_state_change_from_the_daemons_own_origin_is_done(api, controller, host, origin, port):
    """A POST from one of the daemon's own origins (direct, tunnelled or proxied) schedules the job."""
    response = schedule(make_site(api, allowed=("proxy.example",)), [("Origin", origin)], host=host, port=port)
    assert response.code == 200, response.body
    assert [j.identifier for j in jobs(controller)] == [response.json()["identifier"]]


def test_loopback_name_in_allowed_hosts_keeps_its_port_check(api, controller):
    """Listing localhost in allowed-hosts does not let other local servers (localhost:3000) post."""
    response = schedule(make_site(api, allowed=("localhost",)), [("Origin", "http://localhost:3000")])
    assert response.code == 403 and jobs(controller) == []


def test_foreign_origin_from_an_allowed_host_name_gets_a_hint(api):
    """An Origin on a host the daemon does not serve says that allowed-hosts is where to add it."""
    msg = schedule(make_site(api), [("Origin", "https://ops.example")]).json()["msg"]
    assert msg.endswith("if the site 'ops.example' is yours, add it to [web] allowed-hosts")


def test_tls_daemon_refuses_http_origin(api, controller):
    """Over TLS only an https origin is the daemon's own; http on the same host and port is refused."""
    site = make_site(api)
    refused = schedule(site, [("Origin", "http://127.0.0.1:7654")], secure=True)
    assert refused.code == 403 and "serves https" in refused.json()["msg"] and jobs(controller) == []
    assert schedule(site, [("Origin", "https://127.0.0.1:7654")], secure=True).code == 200


def test_ipv6_connection_port_is_the_daemons_own(api, controller):
    """The port the request arrived on counts, for a connection on an IPv6 interface too."""
    local = IPv6Address("TCP", "::1", PORT)
    response = schedule(make_site(api), [("Origin", "http://[::1]:7654")], host=None, local=local)
    assert response.code == 200


@pytest.mark.parametrize("referer, code", [
    ("http://evil.example/attack.html", 403),
    ("http://127.0.0.1:8000/", 403),
    ("http://127.0.0.1:7654/", 200),
    ("http://127.0.0.1:7654/ui/views/jobs.js?x=1#y", 200),
])
def test_referer_is_checked_when_there_is_no_origin(api, controller, referer, code):
    """Without an Origin the Referer's origin decides, and a refusal names the Referer."""
    response = schedule(make_site(api), [("Referer", referer)])
    assert response.code == code
    if code == 403:
        assert response.json()["msg"].startswith(f"Referer {referer!r} ") and jobs(controller) == []


def test_own_referer_does_not_excuse_a_foreign_origin(api, controller):
    """When both are sent the Origin decides: a foreign Origin is refused even with an own Referer."""
    response = schedule(make_site(api), [("Origin", "http://evil.example"), ("Referer", "http://127.0.0.1:7654/")])
    assert response.code == 403 and jobs(controller) == []


def test_state_change_without_origin_or_referer_is_done(api, controller):
    """curl, scripts and both command-line clients send neither header and keep working."""
    response = schedule(make_site(api))
    assert response.code == 200 and len(jobs(controller)) == 1


@pytest.mark.parametrize("path", ["/list-jobs.json?status=ACTIVE", "/status.json", "/"])
def test_reads_from_a_foreign_origin_are_answered(api, path):
    """GET from a foreign page is answered: without CORS headers that page cannot read the answer."""
    response = serve(make_site(api), raw_request(path=path, headers=[("Origin", "http://evil.example")]))
    assert response.code == 200
    assert "access-control-allow-origin" not in response.headers


# -- headers and composition --------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    raw_request(path="/"),
    raw_request("HEAD", "/ui/style.css"),
    raw_request(path="/status.json"),
    raw_request(host="rebind.example"),
    raw_request("POST", "/schedule-job.json", headers=[("Origin", "null")], body=b""),
])
def test_every_response_forbids_sniffing_and_framing(api, raw):
    """Answers and refusals alike carry nosniff and X-Frame-Options: DENY (no clickjacking of the dashboard)."""
    response = serve(make_site(api), raw)
    assert response.headers["x-content-type-options"] == ["nosniff"]
    assert response.headers["x-frame-options"] == ["DENY"]


def test_foreign_host_is_refused_before_authentication(api, tmp_path):
    """With auth on, a rebinding request gets the 421, not a login challenge; the daemon's own host gets 401."""
    auth_db = tmp_path / "auth.db"
    auth_db.write_text("alice:s3cret\n")
    site = make_site(api, auth_db=auth_db)
    refused = serve(site, raw_request(host="rebind.example"))
    assert refused.code == 421 and "www-authenticate" not in refused.headers
    challenged = serve(site, raw_request())
    assert challenged.code == 401 and challenged.headers["www-authenticate"]
    assert challenged.headers["x-frame-options"] == ["DENY"]
