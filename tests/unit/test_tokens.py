"""API tokens: the tokens-db file, scrapy-do-token, reloading, and AuthWrapper's Bearer and proxy checks."""

import base64
import dataclasses
import hashlib
import ipaddress
import json
import re
import stat

import pytest
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs
from twisted.web import resource

from scrapy_do.config import load
from scrapy_do.errors import StartupError
from scrapy_do.service import make_service
from scrapy_do.web import tokens
from scrapy_do.web.auth import AuthWrapper, check_auth_db
from scrapy_do.web.channel import GuardedSite
from scrapy_do.web.request import LimitedRequest
from scrapy_do.web.tokens import TokenFileError, TokenStore, main, parse, token_hash

TOKEN_SHAPE = re.compile(r"sdo_[A-Za-z0-9_-]{43}")


def add(db, name, *flags, capsys):
    assert main(["--db", str(db), "add", name, *flags]) == 0
    out = capsys.readouterr().out.strip()
    assert TOKEN_SHAPE.fullmatch(out), out
    return out


# -- the file and the command ------------------------------------------------------------------------

def test_add_prints_a_random_token_once_and_stores_only_its_sha256_in_a_0600_file(tmp_path, capsys):
    """`add` creates the file with mode 0600, prints a fresh sdo_ token and keeps only its SHA-256."""
    db = tmp_path / "tokens.db"
    first = add(db, "ci", "--read-only", capsys=capsys)
    second = add(db, "deploy", capsys=capsys)
    assert first != second
    text = db.read_text()
    assert first not in text and second not in text
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert [(t.name, t.role, t.digest) for t in parse(text)] == [
        ("ci", "read-only", hashlib.sha256(first.encode()).hexdigest()), ("deploy", "full", token_hash(second))]


def test_list_shows_names_and_roles_and_revoke_removes_one(tmp_path, capsys):
    """`list` prints name and role (no hashes); `revoke` drops the line; revoking it again fails naming it."""
    db = tmp_path / "tokens.db"
    add(db, "ci", "--read-only", capsys=capsys)
    add(db, "deploy", capsys=capsys)
    assert main(["--db", str(db), "list"]) == 0
    assert capsys.readouterr().out == "ci\tread-only\ndeploy\tfull\n"
    assert main(["--db", str(db), "revoke", "ci"]) == 0
    assert [t.name for t in tokens.read(db)] == ["deploy"]
    assert main(["--db", str(db), "revoke", "ci"]) == 1
    assert "no token named 'ci'" in capsys.readouterr().err


def test_add_refuses_a_taken_name_a_bad_name_and_a_malformed_file_without_touching_it(tmp_path, capsys):
    """A second token of one name, a name with a colon, or a file that does not parse: exit 1, file unchanged."""
    db = tmp_path / "tokens.db"
    add(db, "ci", capsys=capsys)
    before = db.read_bytes()
    assert main(["--db", str(db), "add", "ci"]) == 1
    assert "already" in capsys.readouterr().err
    assert main(["--db", str(db), "add", "a:b"]) == 1
    assert "is not a token name" in capsys.readouterr().err
    assert db.read_bytes() == before
    db.write_text("garbage\n")
    assert main(["--db", str(db), "add", "x"]) == 1
    assert "line 1: expected NAME:ROLE:SHA256HEX" in capsys.readouterr().err
    assert db.read_text() == "garbage\n"


def test_an_existing_file_keeps_its_mode(tmp_path, capsys):
    """Rewriting a file the admin made 0640 (group-readable for the daemon's group) keeps 0640."""
    db = tmp_path / "tokens.db"
    db.write_text("")
    db.chmod(0o640)
    add(db, "ci", capsys=capsys)
    assert stat.S_IMODE(db.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["tokens.db"]  # no temporary file left


@pytest.mark.parametrize("line, problem", [
    ("ci:full", "expected NAME:ROLE:SHA256HEX"),
    ("ci:full:" + "a" * 64 + ":x", "expected NAME:ROLE:SHA256HEX"),
    ("ci:admin:" + "a" * 64, "must be read-only or full"),
    ("ci:full:" + "a" * 63, "64 hex digits"),
    ("ci:full:" + "g" * 64, "64 hex digits"),
    ("c i:full:" + "a" * 64, "is not a token name"),
    (":full:" + "a" * 64, "is not a token name"),
])
def test_malformed_lines_are_named_by_number(line, problem):
    """Each kind of bad line is refused with its line number and what is wrong."""
    with pytest.raises(TokenFileError, match=re.escape(problem)) as info:
        parse(f"# comment\n\n{line}\n")
    assert "line 3" in str(info.value)


def test_a_name_twice_is_malformed():
    """Two lines of one name would make `revoke NAME` ambiguous: refused."""
    with pytest.raises(TokenFileError, match="appears twice"):
        parse("a:full:" + "1" * 64 + "\na:full:" + "2" * 64 + "\n")


# -- the store ---------------------------------------------------------------------------------------

def test_lookup_finds_only_the_exact_token(tmp_path, capsys):
    """The right token gives its entry; a wrong, truncated, NUL-carrying or oversized one gives None."""
    db = tmp_path / "tokens.db"
    token = add(db, "ci", "--read-only", capsys=capsys)
    store = TokenStore.load(db)
    assert store.lookup(token.encode()).role == "read-only"
    for other in (token[:-1], token + "x", token + "\x00", "\x00" + token, "sdo_" + "A" * 4000, "", " " + token):
        assert store.lookup(other.encode()) is None, other[:20]


def test_the_file_is_read_again_only_when_it_changes(tmp_path, capsys, monkeypatch):
    """Lookups stat the file and re-read it only after a change: an added token works, a revoked one stops."""
    db = tmp_path / "tokens.db"
    old = add(db, "old", capsys=capsys)
    store = TokenStore.load(db)
    reads = []
    real = tokens.read
    monkeypatch.setattr(tokens, "read", lambda path: reads.append(path) or real(path))
    for _ in range(3):
        assert store.lookup(old.encode()) is not None
    assert reads == []
    new = add(db, "new", capsys=capsys)
    del reads[:]  # the command's own read
    assert store.lookup(new.encode()).name == "new" and store.lookup(new.encode()) and len(reads) == 1
    assert main(["--db", str(db), "revoke", "old"]) == 0
    assert store.lookup(old.encode()) is None and store.lookup(new.encode()) is not None


def test_a_file_that_turns_malformed_or_vanishes_accepts_no_token_until_fixed(tmp_path, capsys):
    """Failing closed: a broken or removed file refuses every token and logs an error; fixing it restores them."""
    db = tmp_path / "tokens.db"
    token = add(db, "ci", capsys=capsys)
    good = db.read_text()
    store = TokenStore.load(db)
    with capturedLogs() as events:
        db.write_text(good + "broken line\n")
        assert store.lookup(token.encode()) is None
        db.unlink()
        assert store.lookup(token.encode()) is None
    errors = [e for e in events if e["log_level"] == LogLevel.error]
    assert len(errors) == 2 and "[web] tokens-db" in errors[0]["log_format"]
    assert "line 3" in errors[0]["problem"] and token not in str(errors)
    db.write_text(good)
    assert store.lookup(token.encode()).name == "ci"


def test_an_unusable_tokens_db_stops_startup_naming_the_setting(tmp_path):
    """A missing or malformed tokens-db at start-up is a StartupError that names [web] tokens-db."""
    auth_db = tmp_path / "auth.db"
    auth_db.write_text("alice:s3cret\n")
    with pytest.raises(StartupError, match=r"\[web\] tokens-db: cannot read .*missing\.db"):
        check_auth_db(auth_db, tmp_path / "missing.db")
    (tmp_path / "bad.db").write_text("ci:full:nothex\n")
    with pytest.raises(StartupError, match=r"\[web\] tokens-db: .*line 1"):
        check_auth_db(auth_db, tmp_path / "bad.db")
    (tmp_path / "empty.db").write_text("# every token revoked\n")
    assert check_auth_db(auth_db, tmp_path / "empty.db").lookup(b"sdo_x") is None


def test_tokens_db_with_auth_off_stops_startup(tmp_path):
    """tokens-db without auth = on would protect nothing: make_service refuses to build the daemon."""
    (tmp_path / "tokens.db").write_text("")
    config = dataclasses.replace(load(cwd=tmp_path), auth=False, tokens_db=tmp_path / "tokens.db")
    with pytest.raises(StartupError, match=r"\[web\] tokens-db is set but \[web\] auth is off"):
        make_service(config, Clock())


# -- AuthWrapper, through a site and its header check -------------------------------------------------

class Recorder(resource.Resource):
    isLeaf = True

    def __init__(self):
        super().__init__()
        self.seen = []

    def render(self, request):
        self.seen.append((request.method, request.content.read()))
        return b"reached"


@pytest.fixture
def setup(tmp_path, capsys):
    """(site factory, {role: token}): a site with AuthWrapper over a Recorder, a full and a read-only token."""
    (tmp_path / "auth.db").write_text("alice:s3cret\n")
    db = tmp_path / "tokens.db"
    issued = {"full": add(db, "deploy", capsys=capsys), "read-only": add(db, "ci", "--read-only", capsys=capsys)}

    def site(trusted=(), peer="192.168.1.1", with_tokens=True):
        inner = Recorder()
        store = TokenStore.load(db) if with_tokens else None
        wrapper = AuthWrapper(inner, tmp_path / "auth.db", tokens=store,
                              trusted_proxies=[ipaddress.ip_network(n) for n in trusted])

        class Request(LimitedRequest):
            protected = inner

        s = GuardedSite(wrapper, 100, None, reactor=Clock())
        s.requestFactory = Request
        s.log = lambda request: None
        s.timeOut = None
        s.inner, s.peer = inner, peer
        return s
    return site, issued


def exchange(site, method, headers=(), body=None, send_body=True):
    """(status line, headers text, body) of one request; `body` declares a Content-Length (sent or not)."""
    version = IPv6Address if ":" in site.peer else IPv4Address
    transport = StringTransport(peerAddress=version("TCP", site.peer, 40000), lenient=True)
    channel = site.buildProtocol(None)
    channel.makeConnection(transport)
    head = [f"{method} /push-project.json HTTP/1.1", "Host: 127.0.0.1:7654", *headers]
    if body is not None:
        head.append(f"Content-Length: {len(body)}")
    channel.dataReceived(("\r\n".join(head) + "\r\n\r\n").encode() + (body if body and send_body else b""))
    raw = transport.value()
    status, _, rest = raw.partition(b"\r\n")
    header_text, _, content = rest.partition(b"\r\n\r\n")
    return status.decode(), header_text.decode(), content


def bearer(token):
    return f"Authorization: Bearer {token}"


def test_a_full_token_reaches_the_resource_with_any_method(setup):
    """A full token lets GET and POST (with its body) through."""
    site, issued = setup
    s = site()
    assert exchange(s, "GET", [bearer(issued["full"])])[0] == "HTTP/1.1 200 OK"
    assert exchange(s, "POST", [bearer(issued["full"])], b"x=1")[2] == b"reached"
    assert s.inner.seen == [(b"GET", b""), (b"POST", b"x=1")]


def test_a_read_only_token_may_get_but_a_post_is_403_before_its_body(setup):
    """A read-only token's GET and HEAD pass; its 50 MiB POST gets the JSON 403 from the headers alone."""
    site, issued = setup
    s = site()
    assert exchange(s, "GET", [bearer(issued["read-only"])])[2] == b"reached"
    assert exchange(s, "HEAD", [bearer(issued["read-only"])])[0] == "HTTP/1.1 200 OK"
    status, headers, content = exchange(s, "POST", [bearer(issued["read-only"])], b"x" * (50 << 20),
                                        send_body=False)
    assert status == "HTTP/1.1 403 Forbidden" and "Connection: close" in headers
    answer = json.loads(content)
    assert answer["status"] == "error" and answer["msg"].startswith("this token is read-only: ")
    assert "POST" in answer["msg"] and "www-authenticate" not in headers.lower()
    assert s.inner.seen == [(b"GET", b""), (b"HEAD", b"")]


@pytest.mark.parametrize("header", ["Bearer sdo_unknown", "Bearer", "Bearer  ", "bearer x y",
                                    "Bearer " + "A" * 12000, "Token abc"])
def test_unknown_or_malformed_tokens_get_the_401_with_every_challenge(setup, header):
    """A token not in the file, or a Bearer header that is no token, is the usual 401 (Digest and Bearer)."""
    site, _ = setup
    status, headers, content = exchange(site(), "GET", [f"Authorization: {header}"])
    assert status == "HTTP/1.1 401 Unauthorized"
    assert json.loads(content) == {"status": "error", "msg": "authentication required"}
    challenges = re.findall(r"(?im)^www-authenticate: (\w+)", headers)
    assert challenges == ["Digest", "Bearer"]
    assert 'Bearer realm="Scrapy Do"' in headers


def test_without_tokens_db_a_bearer_header_is_refused_and_not_offered(setup):
    """With no tokens-db, even a valid-looking token is a 401 and no Bearer challenge is sent."""
    site, issued = setup
    status, headers, _ = exchange(site(with_tokens=False), "GET", [bearer(issued["full"])])
    assert status.startswith("HTTP/1.1 401") and "Bearer" not in headers


def basic(user="alice", password="s3cret"):
    return "Authorization: Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize("trusted, peer, proto, offered", [
    ((), "192.168.1.1", "https", False),                        # no trusted proxies: the header counts for nothing
    (("10.0.0.0/8",), "192.168.1.1", "https", False),           # a peer outside the trusted networks
    (("192.168.1.0/24",), "192.168.1.1", "http", False),        # trusted, but the client spoke plain HTTP
    (("192.168.1.0/24",), "192.168.1.1", "https", True),
    (("192.168.1.0/24",), "192.168.1.1", "HTTPS", True),
    (("192.168.1.0/24",), "192.168.1.1", "http, https", True),  # the trusted proxy's own value is the last
    (("192.168.1.0/24",), "192.168.1.1", "https, http", False),
    (("::ffff:0:0/96", "192.168.1.1/32"), "::ffff:192.168.1.1", "https", True),
])
def test_basic_is_offered_and_accepted_only_through_a_trusted_https_proxy(setup, trusted, peer, proto, offered):
    """Basic over plain HTTP needs a trusted peer saying X-Forwarded-Proto: https; elsewhere it is not taken."""
    site, _ = setup
    s = site(trusted=trusted, peer=peer)
    _, headers, _ = exchange(s, "GET", [f"X-Forwarded-Proto: {proto}"])
    assert ("Basic realm" in headers) is offered
    status, _, _ = exchange(s, "GET", [f"X-Forwarded-Proto: {proto}", basic()])
    assert status.startswith("HTTP/1.1 200" if offered else "HTTP/1.1 401")
    if offered:
        assert exchange(s, "GET", [f"X-Forwarded-Proto: {proto}", basic(password="wrong")])[0].startswith(
            "HTTP/1.1 401")


def test_a_token_is_never_in_the_logs(setup):
    """Requests with tokens, good and bad, log nothing that holds them."""
    site, issued = setup
    with capturedLogs() as events:
        s = site()
        for token in (issued["full"], issued["read-only"], "sdo_not-a-real-one"):
            exchange(s, "POST", [bearer(token)], b"x=1")
    assert not any(t in repr(e) for e in events for t in (*issued.values(), "sdo_not-a-real-one"))

