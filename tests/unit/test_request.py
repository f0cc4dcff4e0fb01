"""LimitedRequest, fed raw HTTP bytes through a real Site: form parsing, the body cap, bad bodies."""

import random
import re

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web import resource, server

from scrapy_do.web.request import LimitedRequest

BOUNDARY = b"sd-Boundary-7q"
MP = b"multipart/form-data; boundary=" + BOUNDARY


class Recorder(resource.Resource):
    isLeaf = True

    def __init__(self):
        super().__init__()
        self.seen = []

    def render(self, request):
        self.seen.append({
            "args": {k: list(v) for k, v in request.args.items()},
            "too_large": request.too_large,
            "bad_body": request.bad_body,
            "ctype": request.requestHeaders.getRawHeaders(b"content-type"),
            "content": request.content.read(),
            # Twisted's private switch for its own form parsing; True unless someone turned it off.
            "twisted_parses_forms": getattr(request, "_parsePOSTFormSubmission", True),
        })
        return b"recorded"


def serve(raw, max_body=None):
    """Feed `raw` to a new connection of a Site using LimitedRequest; return (the request seen, response)."""
    recorder = Recorder()
    site = server.Site(recorder, timeout=None, reactor=Clock())
    factory = LimitedRequest if max_body is None else type("R", (LimitedRequest,), {"max_body": max_body})
    site.requestFactory = factory
    site.log = lambda request: None
    transport = StringTransport()
    channel = site.buildProtocol(None)
    channel.makeConnection(transport)
    channel.dataReceived(raw)
    response = transport.value()
    assert len(recorder.seen) == 1, response[:200]
    assert response.startswith(b"HTTP/1.1 200 OK") and response.endswith(b"recorded"), response[:200]
    return recorder.seen[0], response


def request(body, ctype, path=b"/", method=b"POST", chunks=None):
    """Raw HTTP/1.1 request bytes, with Content-Length, or chunked when `chunks` sizes the chunks."""
    head = method + b" " + path + b" HTTP/1.1\r\nHost: test\r\n"
    if ctype is not None:
        head += b"Content-Type: " + ctype + b"\r\n"
    if chunks is None:
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    pieces = [body[i:i + chunks] for i in range(0, len(body), chunks)]
    return (head + b"Transfer-Encoding: chunked\r\n\r\n"
            + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n")


def part(name, value, filename=None, boundary=BOUNDARY, disposition=None):
    cd = disposition or b'form-data; name="%s"' % name + (b'; filename="%s"' % filename if filename else b"")
    extra = b"Content-Type: application/zip\r\n" if filename else b""
    return b"--" + boundary + b"\r\nContent-Disposition: " + cd + b"\r\n" + extra + b"\r\n" + value + b"\r\n"


def multipart(*parts, boundary=BOUNDARY):
    return b"".join(parts) + b"--" + boundary + b"--\r\n"


def tricky_bytes(size, seed=7):
    """About `size` bytes of binary data full of CRLFs and near-delimiters that must not end the part."""
    rnd = random.Random(seed)
    near = [b"\r\n--" + BOUNDARY[:i] + b"\x00" for i in range(len(BOUNDARY))]
    near += [b"x--" + BOUNDARY + b"\r\n", b"\r\n--" + BOUNDARY + b"-x", b"\r\n\r\n",
             b"\r\n--" + BOUNDARY.upper() + b"\r\n"]
    out = bytearray(b"\r\n")
    while len(out) < size:
        out += rnd.randbytes(rnd.randrange(40)) + b"." + rnd.choice(near)
    out += b"\r\n"
    assert not re.search(rb"[\r\n]--" + re.escape(BOUNDARY) + rb"(--|[ \t]*[\r\n])", out)
    return bytes(out)


def test_urlencoded_body_fills_args_as_twisted_does():
    """An urlencoded POST body is parsed by Twisted as before, with its Content-Type left in place."""
    seen, _ = serve(request(b"a=1&b=x+y&a=%C3%A4&e=", b"application/x-www-form-urlencoded"))
    assert seen["args"] == {b"a": [b"1", "ä".encode()], b"b": [b"x y"], b"e": [b""]}
    assert seen["ctype"] == [b"application/x-www-form-urlencoded"]
    assert seen["bad_body"] is None and seen["too_large"] is False


def test_query_string_fills_args_and_an_urlencoded_body_replaces_its_keys():
    """Query arguments keep blanks and repeats, and an urlencoded body replaces a query key, as in Twisted."""
    seen, _ = serve(request(b"", None, path=b"/x?a=1&a=2&e=&z=%FF", method=b"GET"))
    assert seen["args"] == {b"a": [b"1", b"2"], b"e": [b""], b"z": [b"\xff"]}
    seen, _ = serve(request(b"a=body", b"application/x-www-form-urlencoded", path=b"/x?a=q&c=1"))
    assert seen["args"] == {b"a": [b"body"], b"c": [b"1"]}


def test_multipart_values_follow_the_query_values():
    """Multipart fields are added after the query string's values of the same name."""
    seen, _ = serve(request(multipart(part(b"a", b"body"), part(b"b", b"2")), MP, path=b"/x?a=q&c=1"))
    assert seen["args"] == {b"a": [b"q", b"body"], b"b": [b"2"], b"c": [b"1"]}


def test_multipart_text_and_binary_file_fields_arrive_byte_for_byte():
    """Text fields and a binary file with CRLFs and boundary-like bytes arrive exactly, header and body intact."""
    blob = tricky_bytes(300_000)   # over Twisted's 100 kB, so the body is kept in a temporary file
    body = multipart(part(b"project", b"demo"), part(b"archive", blob, filename=b"demo.zip"),
                     part(b"empty", b""), part(b"crlf", b"\r\n"))
    seen, _ = serve(request(body, MP))
    assert seen["args"] == {b"project": [b"demo"], b"archive": [blob], b"empty": [b""], b"crlf": [b"\r\n"]}
    assert seen["ctype"] == [MP]
    assert seen["content"] == body
    assert seen["bad_body"] is None


@pytest.mark.parametrize("offset", [2 << 16, 3 << 16])
def test_value_is_exact_when_a_64k_offset_falls_inside_the_closing_delimiter(offset):
    """A file ends where its delimiter starts even when a 64 KiB offset falls between the closing dashes."""
    head = part(b"archive", b"", filename=b"a.zip")[:-2]
    size = offset - len(head) - len(b"\r\n--" + BOUNDARY + b"-")
    blob = (b"PK\x03\x04\r\n" * size)[:size]
    body = multipart(head + blob + b"\r\n")
    assert body.index(b"\r\n--" + BOUNDARY + b"--") + len(b"\r\n--" + BOUNDARY + b"-") == offset
    seen, _ = serve(request(body, MP))
    assert seen["args"] == {b"archive": [blob]}


@pytest.mark.parametrize("ctype, body, why", [
    (b"multipart/form-data; boundary=other", multipart(part(b"a", b"1")), "no part starts"),
    (b"multipart/form-data", multipart(part(b"a", b"1")), "no boundary"),
    (MP, b"", "no part starts"),
    (MP, b"--" + BOUNDARY + b"--\r\n", "no parts"),
    (MP, part(b"a", b"1") + part(b"archive", b"cut off here"), "ends inside a part"),
])
def test_unparsable_multipart_sets_bad_body_and_still_reaches_the_resource(ctype, body, why):
    """An unparsable multipart body sets bad_body, leaves only the query's args and still reaches the resource."""
    seen, _ = serve(request(body, ctype, path=b"/?q=1"))
    assert "cannot be parsed" in seen["bad_body"] and why in seen["bad_body"]
    assert seen["args"] == {b"q": [b"1"]}
    assert seen["ctype"] == [ctype]


def test_part_with_unreadable_headers_is_ignored_without_bad_body():
    """A part with unreadable headers is ignored like a nameless one: earlier parts stay, bad_body stays unset."""
    seen, _ = serve(request(b"--x\r\n\r\n\xff" * 50, b"multipart/form-data; boundary=x"))
    assert seen["bad_body"] is None and seen["args"] == {}
    body = part(b"a", b"kept") + b"--" + BOUNDARY + b"\r\nX-Junk: \xff\r\n\r\nv\r\n" + multipart()
    seen, _ = serve(request(body, MP))
    assert seen["bad_body"] is None and seen["args"] == {b"a": [b"kept"]}


def test_nameless_and_empty_named_parts_are_left_out():
    """Parts without a name or with an empty name are left out, as Twisted left them out."""
    body = multipart(part(None, b"x", disposition=b"form-data"), part(b"", b"y"), part(b"a", b"z"))
    seen, _ = serve(request(body, MP))
    assert seen["args"] == {b"a": [b"z"]} and seen["bad_body"] is None


@pytest.mark.parametrize("chunks", [None, 37])
def test_body_over_max_body_sets_too_large_and_gives_no_args(chunks):
    """A body one byte over max_body (Content-Length or chunked) sets too_large and leaves only query args."""
    body = multipart(part(b"a", b"x" * 100))
    seen, _ = serve(request(body, MP, path=b"/?q=1", chunks=chunks), max_body=len(body) - 1)
    assert seen["too_large"] is True
    assert seen["args"] == {b"q": [b"1"]}
    assert seen["content"] == b"" and seen["bad_body"] is None


@pytest.mark.parametrize("chunks", [None, 37])
def test_body_of_exactly_max_body_is_parsed(chunks):
    """A body of exactly max_body bytes, sent with Content-Length or chunked, is kept and parsed."""
    body = multipart(part(b"a", b"x" * 100))
    seen, _ = serve(request(body, MP, path=b"/?q=1", chunks=chunks), max_body=len(body))
    assert seen["too_large"] is False
    assert seen["args"] == {b"q": [b"1"], b"a": [b"x" * 100]}


def test_non_ascii_field_names_and_values_arrive_as_utf8_bytes():
    """Non-ASCII field names (raw UTF-8 or RFC 2231) become their UTF-8 bytes and values are kept undecoded."""
    body = multipart(part("größe".encode(), "€ ü".encode()),
                     part(None, b"v", disposition=b"form-data; name*=UTF-8''%E2%82%AC"),
                     part(b"raw", b"\xff\xfe\x00"))
    seen, _ = serve(request(body, MP))
    assert seen["args"] == {"größe".encode(): ["€ ü".encode()], "€".encode(): [b"v"],
                            b"raw": [b"\xff\xfe\x00"]}


def test_repeated_fields_keep_their_order():
    """Repeated multipart fields keep the body's order, after the query's values."""
    body = multipart(part(b"a", b"1"), part(b"b", b"x"), part(b"a", b"2"), part(b"a", b"3"))
    seen, _ = serve(request(body, MP, path=b"/?a=0"))
    assert seen["args"] == {b"a": [b"0", b"1", b"2", b"3"], b"b": [b"x"]}


def test_multipart_is_parsed_for_post_only():
    """A multipart body of a PUT is left unparsed, as Twisted leaves it."""
    seen, _ = serve(request(multipart(part(b"a", b"1")), MP, method=b"PUT"))
    assert seen["args"] == {} and seen["bad_body"] is None and seen["ctype"] == [MP]


def test_unreadable_content_type_sets_bad_body():
    """A Content-Type that the email parser rejects sets bad_body instead of breaking the connection."""
    ctype = b"multipart/form-data;\x0bboundary=" + BOUNDARY
    seen, _ = serve(request(multipart(part(b"a", b"1")), ctype))
    assert seen["bad_body"] == "the Content-Type header cannot be read"
    assert seen["ctype"] == [ctype]


def test_twisteds_private_form_flag_is_left_alone():
    """Parsing a multipart body leaves Twisted's private _parsePOSTFormSubmission switch as Twisted set it."""
    seen, _ = serve(request(multipart(part(b"a", b"1")), MP))
    assert seen["args"] == {b"a": [b"1"]}
    assert seen["twisted_parses_forms"] is True
