"""Uploads: checks on the headers before the body, multipart bodies parsed in safe pieces into temporary files,
parsing in a thread pool, bounded concurrent uploads, and the project store reading archives from files."""

import hashlib
import io
import json
import os
import re
import tempfile
import zipfile

import pytest
from hypothesis import given, settings, strategies as st
from twisted.internet import defer
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web import resource
from werkzeug.sansio.multipart import Data, MultipartDecoder, NeedData
from zope.interface import implementer

from scrapy_do.errors import BadArchive, TooLarge
from scrapy_do.projects import archives, store as stores
from scrapy_do.projects.archives import Limits
from scrapy_do.web.auth import AuthWrapper
from scrapy_do.web.channel import GuardedSite
from scrapy_do.web.guard import CrossSiteGuard, ServedHosts
from scrapy_do.web.request import (HEADER_MAX, LimitedRequest, UploadSlots, parse_multipart,
                                   parse_multipart_stream, route_of, safe_chunks)
from tests.helpers import offline_zip, result_of

B = b"sd-Boundary-7q"
MP = b"multipart/form-data; boundary=" + B


def part(name, value, filename=None):
    cd = b'form-data; name="%s"' % name + (b'; filename="%s"' % filename if filename else b"")
    return b"--" + B + b"\r\nContent-Disposition: " + cd + b"\r\n\r\n" + value + b"\r\n"


def form(*parts):
    return b"".join(parts) + b"--" + B + b"--\r\n"


def reader(data):
    return io.BytesIO(data).read


# -- safe pieces ---------------------------------------------------------------------------------------

def naive_parse(body, cut):
    """The values Werkzeug's decoder gives for `body` fed in two pieces split at `cut`."""
    decoder = MultipartDecoder(B)
    values, current = [], b""
    for piece in (body[:cut], body[cut:], None):
        decoder.receive_data(piece)
        while not isinstance(event := decoder.next_event(), NeedData):
            if isinstance(event, Data):
                current += event.data
                if not event.more_data:
                    values.append(current)
                    current = b""
            if decoder.state.name in ("EPILOGUE", "COMPLETE") and piece is None:
                return values
    return values


def test_werkzeug_still_corrupts_a_value_split_inside_the_closing_delimiter():
    """Pins why pieces are cut with care: a piece ending in '\\r\\n--boundary-' adds a stray '\\r' to the value."""
    body = form(part(b"a", b"hello world"))
    cut = body.index(b"\r\n--" + B + b"--") + len(b"\r\n--" + B + b"-")
    assert naive_parse(body, len(body)) == [b"hello world"]
    assert naive_parse(body, cut) == [b"hello world\r"]  # if this fails, Werkzeug fixed #3285


def near_delimiters():
    """Bytes full of CRLFs and near-delimiters that must not end a part."""
    pieces = [b"\r\n--" + B[:i] + b"\x00" for i in range(len(B))]
    pieces += [b"x--" + B + b"\r\n", b"\r\n--" + B + b"-x", b"\r\n\r\n", b"\r", b"\n", b"--", b"-",
               b"\r\n--" + B.upper() + b"\r\n"]
    return st.lists(st.one_of(st.sampled_from(pieces), st.binary(max_size=30)), max_size=40).map(b"".join)


values = near_delimiters()
parts_strategy = st.lists(st.tuples(st.sampled_from([b"a", b"archive", b"x"]), values, st.booleans()),
                          min_size=1, max_size=6)


def spans(body):
    """The places no piece may end: from 2 before each '--boundary' to 2 past the blank line after it."""
    out = []
    for m in re.finditer(re.escape(b"--" + B), body):
        blank = re.compile(rb"\r\n\r\n|\n\n|\r\r").search(body, m.end(), m.end() + HEADER_MAX)
        out.append((m.start() - 2, (blank.end() + 2) if blank else m.end() + HEADER_MAX))
    return out


@settings(max_examples=300, deadline=None)
@given(parts=parts_strategy, block=st.integers(1, 200), epilogue=st.binary(max_size=20))
def test_safe_pieces_parse_exactly_like_the_whole_body(parts, block, epilogue):
    """Fed in pieces of any size, a body full of near-delimiters parses exactly as when fed whole, and no piece
    ends inside a delimiter or its part's headers."""
    body = form(*(part(n, v, b"f.zip" if f else None) for n, v, f in parts)) + epilogue
    pieces = list(safe_chunks(reader(body), B, block))
    assert b"".join(pieces) == body
    ends = [sum(map(len, pieces[:i + 1])) for i in range(len(pieces) - 1)]
    for end in ends:
        assert not any(start < end < stop for start, stop in spans(body)), end
    whole = MultipartDecoder(B)
    whole.receive_data(body)
    whole.receive_data(None)
    expected = {}
    current = b""
    name = None
    while True:
        event = whole.next_event()
        if type(event).__name__ in ("Field", "File"):
            name = event.name.encode()
        elif isinstance(event, Data):
            current += event.data
            if not event.more_data:
                expected.setdefault(name, []).append(current)
                current = b""
        elif type(event).__name__ == "Epilogue":
            break
    assert parse_multipart_stream(reader(body), B.decode(), block=block) == expected


@pytest.mark.parametrize("block", [1, 7, 64, 1000])
def test_value_is_exact_when_any_offset_falls_inside_the_closing_delimiter(block):
    """A value ends where its delimiter starts whatever the block size, around the one cut Werkzeug gets wrong."""
    for size in range(0, 40):
        value = (b"PK\r\n" * size)[:size]
        body = form(part(b"archive", value, b"a.zip"))
        assert parse_multipart_stream(reader(body), B.decode(), block=block) == {b"archive": [value]}


def test_a_long_header_block_is_read_before_cutting():
    """A part whose headers run past a whole block is read on until a safe place, not split inside them."""
    headers = b"X-Long: " + b"h" * 5000 + b"\r\n"
    body = (b"--" + B + b"\r\n" + headers + b'Content-Disposition: form-data; name="a"\r\n\r\nvalue\r\n--'
            + B + b"--\r\n")
    pieces = list(safe_chunks(reader(body), B, 100))
    assert len(pieces[0]) > len(headers)
    assert parse_multipart_stream(reader(body), B.decode(), block=100) == {b"a": [b"value"]}


# -- spooling ---------------------------------------------------------------------------------------------

class Spool:
    def __init__(self):
        self.made = []

    def __call__(self):
        f = tempfile.TemporaryFile()
        self.made.append(f)
        return f


def test_long_parts_go_to_temporary_files_and_short_ones_stay_bytes():
    """Parts longer than spool_at are file objects at offset 0 holding exactly the value; shorter ones stay bytes."""
    big = os.urandom(300_000)
    spool = Spool()
    body = form(part(b"project", b"demo"), part(b"archive", big, b"a.zip"), part(b"edge", b"e" * 100),
                part(b"over", b"o" * 101))
    got = parse_multipart_stream(reader(body), B.decode(), spool_at=100, spool=spool, block=4096)
    assert got[b"project"] == [b"demo"] and got[b"edge"] == [b"e" * 100]
    archive, over = got[b"archive"][0], got[b"over"][0]
    assert archive.tell() == 0 and archive.read() == big
    assert over.read() == b"o" * 101
    assert len(spool.made) == 2


def test_nameless_parts_are_not_spooled():
    """A long part without a name is skipped without a temporary file."""
    body = b"--" + B + b"\r\nContent-Disposition: form-data\r\n\r\n" + b"z" * 1000 + b"\r\n" + form(part(b"a", b"1"))
    spool = Spool()
    assert parse_multipart_stream(reader(body), B.decode(), 10, spool) == {b"a": [b"1"]}
    assert spool.made == []


def test_a_bad_body_leaves_no_temporary_file_open():
    """When a body turns out bad after long parts were spooled, their files are closed before BadMultipart."""
    body = part(b"archive", b"x" * 1000, b"a.zip") + part(b"b", b"cut off")
    spool = Spool()
    with pytest.raises(ValueError, match="ends inside a part"):
        parse_multipart_stream(reader(body), B.decode(), 10, spool)
    assert spool.made and all(f.closed for f in spool.made)


def test_the_epilogue_is_not_read():
    """After the closing delimiter nothing more is read from the body."""
    body = form(part(b"a", b"1")) + b"e" * (10 << 20)
    source = io.BytesIO(body)
    assert parse_multipart_stream(source.read, B.decode(), block=1024) == {b"a": [b"1"]}
    assert source.tell() < 1 << 20


def test_parse_multipart_of_a_whole_body_is_unchanged():
    """parse_multipart (whole bodies in memory) still returns every value as bytes."""
    assert parse_multipart(form(part(b"a", b"1"), part(b"a", b"2" * 200_000)), B.decode()) == \
        {b"a": [b"1", b"2" * 200_000]}


# -- requests through a site ---------------------------------------------------------------------------

class SyncPool:
    """A thread pool that runs each job when told to (`run_all`), or at once with `immediate`."""

    def __init__(self, immediate=True):
        self.immediate = immediate
        self.jobs = []
        self.ran = 0

    def callInThreadWithCallback(self, on_result, fn, *args, **kwargs):
        self.jobs.append((on_result, fn, args, kwargs))
        if self.immediate:
            self.run_all()

    def run_all(self):
        while self.jobs:
            on_result, fn, args, kwargs = self.jobs.pop(0)
            self.ran += 1
            try:
                result = fn(*args, **kwargs)
            except BaseException:
                on_result(False, Failure())
            else:
                on_result(True, result)


@implementer(IReactorThreads)
class ThreadedClock(Clock):
    def __init__(self, pool):
        super().__init__()
        self.pool = pool

    def getThreadPool(self):
        return self.pool

    def callFromThread(self, fn, *args, **kwargs):
        fn(*args, **kwargs)

    def callInThread(self, fn, *args, **kwargs):
        fn(*args, **kwargs)

    def suggestThreadPoolSize(self, size):
        pass


class Recorder(resource.Resource):
    isLeaf = True

    def __init__(self):
        super().__init__()
        self.seen = []

    def render(self, request):
        self.seen.append({
            "args": dict(request.args),
            "files": {k: [f.read() for f in v] for k, v in request.files.items()},
            "file_objects": [f for v in request.files.values() for f in v],
            "bad_body": request.bad_body,
            "ctype": request.requestHeaders.getRawHeaders(b"content-type"),
            "content": request.content.read(),
        })
        return b"recorded"


def make_site(inner=None, wrap=None, reactor=None, uploads=None, max_body=64 << 20, spool_at=100):
    inner = inner or Recorder()
    root = wrap(inner) if wrap else inner

    class Request(LimitedRequest):
        pass

    Request.max_body = max_body
    Request.spool_at = spool_at
    Request.protected = inner
    Request.uploads = uploads
    Request.upload_paths = frozenset({b"/push-project.json"})
    site = GuardedSite(root, 100, None, reactor=reactor or Clock())
    site.requestFactory = Request
    site.log = lambda request: None
    site.timeOut = None
    site.inner = inner
    return site


class Conn:
    def __init__(self, site):
        self.transport = StringTransport(lenient=True)
        self.channel = site.buildProtocol(None)
        self.channel.makeConnection(self.transport)

    def send(self, data):
        self.channel.dataReceived(data)

    def value(self):
        return self.transport.value()

    def lose(self):
        self.channel.connectionLost(Failure(ConnectionDone()))


def post_head(length, path=b"/push-project.json", ctype=MP, extra=b""):
    return (b"POST " + path + b" HTTP/1.1\r\nHost: 127.0.0.1:7654\r\nContent-Type: " + ctype
            + b"\r\nContent-Length: %d\r\n" % length + extra + b"\r\n")


def test_a_big_multipart_body_is_parsed_in_the_thread_pool_into_files():
    """A body over thread_at is parsed by the reactor's thread pool; the resource gets long parts in files and the
    raw body is dropped once parsed."""
    pool = SyncPool()
    site = make_site(reactor=ThreadedClock(pool))
    big = os.urandom(400_000)
    body = form(part(b"project", b"demo"), part(b"archive", big, b"a.zip"))
    conn = Conn(site)
    conn.send(post_head(len(body)) + body)
    assert pool.ran == 1
    seen = site.inner.seen[0]
    assert seen["args"] == {b"project": [b"demo"]} and seen["files"] == {b"archive": [big]}
    assert seen["ctype"] == [MP] and seen["bad_body"] is None and seen["content"] == b""
    assert conn.value().startswith(b"HTTP/1.1 200 ") and conn.value().endswith(b"recorded")
    assert all(f.closed for f in seen["file_objects"])  # closed once the request finished


def test_a_client_that_leaves_during_parsing_is_not_served_and_its_files_are_closed():
    """If the connection is lost while the pool parses, the resource is never called and spooled files close."""
    pool = SyncPool(immediate=False)
    site = make_site(reactor=ThreadedClock(pool))
    body = form(part(b"archive", os.urandom(400_000), b"a.zip"))
    conn = Conn(site)
    conn.send(post_head(len(body)) + body)
    conn.lose()
    made = []
    real = tempfile.TemporaryFile

    def tracking(*args, **kwargs):
        f = real(*args, **kwargs)
        made.append(f)
        return f
    tempfile.TemporaryFile, saved = tracking, tempfile.TemporaryFile
    try:
        pool.run_all()
    finally:
        tempfile.TemporaryFile = saved
    assert site.inner.seen == []
    assert made and all(f.closed for f in made)


def test_a_bad_big_body_still_reaches_the_resource_with_bad_body():
    """A big body that cannot be parsed reaches the resource with bad_body set, as a small one does."""
    site = make_site(reactor=ThreadedClock(SyncPool()))
    body = part(b"archive", b"x" * 400_000, b"a.zip")  # never closed
    Conn(site).send(post_head(len(body)) + body)
    assert "ends inside a part" in site.inner.seen[0]["bad_body"]


# -- authentication on the headers ------------------------------------------------------------------------

@pytest.fixture
def auth_db(tmp_path):
    path = tmp_path / "auth.db"
    path.write_text("alice:s3cret\n")
    return path


def challenge_of(response):
    header = re.search(rb"(?im)^www-authenticate: Digest (.*)$", response).group(1).decode()
    return dict(re.findall(r'(\w+)="([^"]*)"', header))


def digest(challenge, method, uri, user="alice", password="s3cret"):
    md5 = lambda text: hashlib.md5(text.encode()).hexdigest()  # noqa: E731
    ha1, ha2 = md5(f"{user}:{challenge['realm']}:{password}"), md5(f"{method}:{uri}")
    nc, cnonce = "00000001", "0a4f113b"
    answer = md5(f"{ha1}:{challenge['nonce']}:{nc}:{cnonce}:auth:{ha2}")
    return (f'Digest username="{user}", realm="{challenge["realm"]}", nonce="{challenge["nonce"]}", '
            f'uri="{uri}", response="{answer}", opaque="{challenge["opaque"]}", qop=auth, nc={nc}, '
            f'cnonce="{cnonce}"').encode()


def test_an_unauthenticated_body_gets_its_401_before_any_of_it_is_sent(auth_db):
    """Headers alone of a 50 MiB push without credentials get the 401 with the Digest challenge; the body is
    then dropped as it comes and the connection closes once it is in."""
    site = make_site(wrap=lambda r: AuthWrapper(r, auth_db))
    conn = Conn(site)
    conn.send(post_head(50 << 20))
    head, _, body = conn.value().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401 Unauthorized") and b"Connection: close" in head
    assert json.loads(body) == {"status": "error", "msg": "authentication required"}
    assert challenge_of(conn.value())["qop"] == "auth"
    request = conn.channel.requests[0]
    for _ in range(50):
        conn.send(b"x" * (1 << 20))
    assert request.content.getvalue() == b"" and conn.transport.disconnecting
    assert site.inner.seen == [] and conn.value().count(b"HTTP/1.1 ") == 1


def test_expect_continue_gets_the_401_instead_of_100(auth_db):
    """An unauthenticated push with Expect: 100-continue gets 401 and no 100 Continue."""
    site = make_site(wrap=lambda r: AuthWrapper(r, auth_db))
    conn = Conn(site)
    conn.send(post_head(1 << 20, extra=b"Expect: 100-continue\r\n"))
    assert conn.value().startswith(b"HTTP/1.1 401 ") and b"100 Continue" not in conn.value()


def test_the_early_challenge_lets_the_client_in_and_wrong_passwords_are_refused_early(auth_db):
    """Credentials built on the challenge of an early 401 pass the header check (100 Continue, body parsed, resource
    reached); a wrong password is refused from the headers as well."""
    site = make_site(wrap=lambda r: AuthWrapper(r, auth_db))
    first = Conn(site)
    first.send(post_head(100, extra=b"Expect: 100-continue\r\n"))
    challenge = challenge_of(first.value())
    body = form(part(b"archive", b"zip", b"a.zip"))
    good = Conn(site)
    good.send(post_head(len(body), extra=b"Expect: 100-continue\r\nAuthorization: "
                        + digest(challenge, "POST", "/push-project.json") + b"\r\n"))
    assert good.value() == b"HTTP/1.1 100 Continue\r\n\r\n"
    good.send(body)
    assert site.inner.seen[0]["args"] == {b"archive": [b"zip"]}
    assert b"HTTP/1.1 200 " in good.value()
    bad = Conn(site)
    bad.send(post_head(len(body), extra=b"Authorization: " + digest(challenge, "POST", "/push-project.json",
                                                                      password="wrong") + b"\r\n"))
    assert bad.value().startswith(b"HTTP/1.1 401 ")


def test_requests_without_a_body_are_checked_as_before(auth_db):
    """A GET without credentials gets the usual 401 after processing, on a connection that stays open."""
    site = make_site(wrap=lambda r: AuthWrapper(r, auth_db))
    conn = Conn(site)
    conn.send(b"GET /status.json HTTP/1.1\r\nHost: 127.0.0.1:7654\r\n\r\n")
    assert conn.value().startswith(b"HTTP/1.1 401 ") and b"Connection: close" not in conn.value()
    assert not conn.transport.disconnecting


def test_the_cross_site_guard_still_answers_before_authentication(auth_db):
    """With the guard outside authentication, a POST with a foreign Host gets the guard's 421 from its headers."""
    served = ServedHosts((("127.0.0.1", 7654),), names=lambda: set(), addresses=lambda: [])
    site = make_site(wrap=lambda r: CrossSiteGuard(AuthWrapper(r, auth_db), served))
    conn = Conn(site)
    conn.send(post_head(1 << 20).replace(b"Host: 127.0.0.1:7654", b"Host: evil.example"))
    assert conn.value().startswith(b"HTTP/1.1 421 Misdirected Request")
    assert b"X-Frame-Options: DENY" in conn.value()


# -- upload slots ----------------------------------------------------------------------------------------------

def test_uploads_beyond_the_limit_get_503_from_their_headers_and_a_finished_one_frees_its_slot():
    """With one slot, a second push gets 503 with Retry-After at once; once the first is answered a third gets in."""
    site = make_site(uploads=UploadSlots(1))
    body = form(part(b"archive", b"zip", b"a.zip"))
    first = Conn(site)
    first.send(post_head(len(body)))
    second = Conn(site)
    second.send(post_head(len(body)))
    head, _, answer = second.value().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503 ") and b"Retry-After: 5" in head
    assert "max-uploads" in json.loads(answer)["msg"]
    first.send(body)
    assert b"HTTP/1.1 200 " in first.value()
    third = Conn(site)
    third.send(post_head(len(body)) + body)
    assert b"HTTP/1.1 200 " in third.value()


def test_a_lost_upload_frees_its_slot():
    """An upload whose client leaves before its body is in gives its slot back."""
    slots = UploadSlots(1)
    site = make_site(uploads=slots)
    conn = Conn(site)
    conn.send(post_head(1000))
    assert slots.busy == 1
    conn.lose()
    assert slots.busy == 0


@pytest.mark.parametrize("head, counted", [
    (post_head(300, path=b"/schedule-job.json"), False),
    (post_head(300), True),
    (post_head(300, path=b"/push%2Dproject.json?x=1"), True),
    (post_head((1 << 20) + 1, path=b"/schedule-job.json"), True),
    (b"POST /schedule-job.json HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", True),
    (b"GET /status.json HTTP/1.1\r\nHost: h\r\n\r\n", False),
])
def test_what_counts_as_an_upload(head, counted):
    """Pushes (however their path is spelled), bodies over 1 MiB and chunked bodies take a slot; small forms do not."""
    slots = UploadSlots(5)
    Conn(make_site(uploads=slots)).send(head)
    assert slots.busy == (1 if counted else 0)


def test_route_of_follows_twisted_and_klein():
    """route_of unquotes each segment as Twisted does and joins them as Klein does."""
    assert route_of(b"/push-project.json?a=b") == b"/push-project.json"
    assert route_of(b"/push%2Dproject.json") == b"/push-project.json"
    assert route_of(b"//push-project.json") == b"/push-project.json"  # Klein joins the segments again


# -- the project store reads archives from files --------------------------------------------------------------

@pytest.mark.parametrize("make", [
    lambda: offline_zip(),
    lambda: b"not a zip" * 10,
    lambda: b"",
    lambda: zip_of([("evil/../../x.py", b"1")]),
    lambda: zip_of([("evil/scrapy.cfg", b"[deploy]\nproject = evil\n"), ("evil/big", b"0" * 5000)]),
])
def test_extracting_from_a_file_matches_extracting_from_bytes(tmp_path, make):
    """store.extract (a file) gives the same tree, or the same error, as archives.extract (bytes)."""
    data, limits = make(), Limits(max_unpacked_size=4000, max_files=50)
    outcomes = []
    for i, run in enumerate((lambda d: archives.extract(data, d, limits),
                             lambda d: stores.extract(io.BytesIO(data), d, limits))):
        dest = tmp_path / str(i)
        try:
            outcomes.append(("ok", run(str(dest)), sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*"))))
        except (BadArchive, TooLarge) as e:
            outcomes.append((type(e).__name__, e.msg))
    assert outcomes[0] == outcomes[1]


def zip_of(entries):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries:
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def project_store(tmp_path, monkeypatch):
    reactor = ThreadedClock(SyncPool())
    ps = stores.ProjectStore(tmp_path / "store", reactor, Limits())
    ps.open()
    monkeypatch.setattr(ps, "list_spiders", lambda tree, name, python=None: defer.succeed(["quick"]))
    return ps


def test_a_push_from_a_file_is_staged_then_renamed_into_place(project_store):
    """An archive given as a file is unpacked, staged beside the kept archives, and renamed into place by commit;
    the caller may close its file at once."""
    data = offline_zip()
    upload = tempfile.TemporaryFile()
    upload.write(data)
    prepared = result_of(project_store.prepare(upload))
    upload.close()
    assert prepared.data.parent == project_store.archives and prepared.data.read_bytes() == data
    tree = project_store.commit(prepared)
    assert (tree / "scrapy.cfg").exists() and not prepared.data.exists()
    assert (project_store.archives / "offline.zip").read_bytes() == data


def test_a_discarded_or_failed_push_leaves_no_staged_archive(project_store):
    """Discarding a prepared push, or a push that fails its checks, leaves nothing in archives/."""
    prepared = result_of(project_store.prepare(offline_zip()))
    project_store.discard(prepared)
    failed = project_store.prepare(io.BytesIO(b"not a zip"))
    with pytest.raises(BadArchive):
        result_of(failed)
    assert list(project_store.archives.iterdir()) == []
    assert list(project_store.trees.iterdir()) == []


def test_garbage_collection_removes_staged_archives_of_interrupted_pushes(project_store):
    """Staged archives left by a push interrupted by a crash are removed with the unused trees."""
    (project_store.archives / ".incoming-dead.zip").write_bytes(b"x")
    project_store.collect_garbage([])
    assert list(project_store.archives.iterdir()) == []


def test_a_failed_spider_list_leads_with_the_cause_where_it_was_and_what_to_do():
    from scrapy_do.projects.store import error_cause

    tree = "/store/trees/.incoming-1"
    text = ('Traceback (most recent call last):\n'
            '  File "/usr/lib/python3/dist-packages/scrapy/utils/misc.py", line 88, in walk_modules\n'
            f'  File "{tree}/proj/spiders/news.py", line 3, in <module>\n'
            '    import dateparser\n'
            "ModuleNotFoundError: No module named 'dateparser'\n")
    assert error_cause(text, tree) == ("ModuleNotFoundError: No module named 'dateparser' (proj/spiders/news.py, "
                                       "line 3); if 'dateparser' is a package from an index, list it in "
                                       "requirements.txt next to scrapy.cfg and push again")
    syntax = f'  File "{tree}/proj/spiders/a.py", line 7\n    def (:\n        ^\nSyntaxError: invalid syntax\n'
    assert error_cause(syntax, tree) == "SyntaxError: invalid syntax (proj/spiders/a.py, line 7)"
    assert error_cause("just some words\n", tree) is None
