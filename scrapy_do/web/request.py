"""The request class of the API's Site: a capped body, and multipart forms parsed without Twisted's internals.

Twisted parses form bodies itself in `Request.requestReceived`, but answers a multipart body it cannot
parse with a bare 400 and a hang-up, and the only ways around that are private (`_parsePOSTFormSubmission`,
`http._getMultiPartArgs`). `LimitedRequest` keeps to the public request interface instead: it hides the
Content-Type header of a multipart POST from `requestReceived` (so Twisted still parses the query string
and urlencoded bodies exactly as it always has, and leaves the multipart body alone), parses that body
itself, and puts the header back in `process()`, before the resource renders. Whether a body is multipart
is decided the way Twisted decides it, with the stdlib `email` package, so the two never disagree.

The parser is Werkzeug's sans-IO `MultipartDecoder`: Werkzeug is already a dependency (Klein's router),
kept by Pallets, and this decoder, unlike `werkzeug.formparser`, hands over each part's bytes untouched
(no decoding of values, no spooling to files, no per-part memory limit), so the 64 MiB archive and any
non-UTF-8 field reach the API exactly as sent.

A multipart body is bad (`bad_body`, answered with a JSON 400) when its boundary never opens a part (no
or a wrong boundary, an empty body, only the closing delimiter) or when a part is not closed by a
delimiter (a truncated value must not pass as a whole one). A part whose headers cannot be read (no
Content-Disposition, not UTF-8) has no usable name; Twisted ignored nameless parts, and so does this
class, but the decoder cannot find its way past it, so that part and any after it are ignored. Unlike
Twisted, a part's Content-Transfer-Encoding is not decoded (RFC 7578 deprecates it; no client sends it).
"""

import io
from email.message import EmailMessage

from twisted.web import server
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData, Preamble


class BadMultipart(ValueError):
    """The body is not a multipart/form-data body for the boundary its Content-Type declares."""


def media_type(ctype):
    """(media type, boundary) of a raw Content-Type header, read the way Twisted reads it (the stdlib `email`)."""
    msg = EmailMessage()
    msg["content-type"] = ctype.decode("latin-1")
    return msg.get_content_type(), msg.get_boundary()


def parse_multipart(body, boundary):
    """{name bytes: [value bytes, ...]} of a multipart/form-data body, in body order.

    Raises BadMultipart when the body is bad (see the module docstring).
    """
    if not boundary:
        raise BadMultipart("the Content-Type header has no boundary")
    try:
        decoder = MultipartDecoder(boundary.encode("latin-1"))
    except UnicodeEncodeError:
        raise BadMultipart("the boundary is not ASCII") from None
    # The whole body in one piece, never in chunks: it is in memory anyway (at most max_body), and the
    # decoder has a history of adding a stray byte to a value when a chunk ends inside a delimiter
    # (pallets/werkzeug#3065, #3118, #3119; #3285 is still open against 3.1.8).
    decoder.receive_data(body)
    decoder.receive_data(None)
    del body  # the decoder has its own copy; this saves one body's worth at the peak
    form = {}
    opened = False      # the boundary opened the body (a Preamble event)
    parts = 0           # parts whose headers were read
    in_data = False     # inside a part's data, before its closing delimiter
    name = chunks = None
    try:
        while not isinstance(event := decoder.next_event(), (Epilogue, NeedData)):
            if isinstance(event, Preamble):
                opened = True
            elif isinstance(event, (Field, File)):
                parts += 1
                in_data = True
                # Twisted left out parts without a name (or with an empty one); so does this.
                name = event.name.encode("utf-8") if event.name else None
                chunks = []
            elif isinstance(event, Data):
                if name is not None:
                    chunks.append(event.data)
                if not event.more_data:
                    if name is not None:
                        form.setdefault(name, []).append(b"".join(chunks))
                    in_data = False
                    name = chunks = None
        # Werkzeug raises at the end of a malformed body; NeedData there would mean the same.
        failed = isinstance(event, NeedData)
    except ValueError:  # the decoder's one way of saying the body is malformed
        failed = True
    if not opened:
        raise BadMultipart(f"no part starts with the line '--{boundary}'")
    if not failed and parts == 0:
        raise BadMultipart("the body has no parts")
    if failed and in_data:
        raise BadMultipart(f"the body ends inside a part, before a line '--{boundary}' closes it")
    return form


class LimitedRequest(server.Request):
    """Drops request bodies over `max_body` as they arrive instead of buffering them.

    The request still reaches the resource (without a body), which answers 413. A multipart/form-data
    POST body is parsed here, into `args` as Twisted would fill them (after the query string's values);
    if it cannot be parsed, `bad_body` says why and the resource is still called, so that it can answer
    in JSON.
    """

    max_body = 64 << 20
    too_large = False
    bad_body = None
    _form = None
    _hidden_ctype = None

    def gotLength(self, length):
        self.too_large = length is not None and length > self.max_body
        self._received = 0
        super().gotLength(None if self.too_large else length)

    def handleContentChunk(self, data):
        self._received += len(data)
        if self._received > self.max_body:
            if not self.too_large:
                self.too_large = True
                self.content.close()
                self.content = io.BytesIO()
            return
        super().handleContentChunk(data)

    def requestReceived(self, command, path, version):
        self.bad_body = None
        self._form = {}
        self._hidden_ctype = None
        if self.too_large:
            self.requestHeaders.removeHeader(b"content-type")
            self.content = io.BytesIO()
        ctypes = self.requestHeaders.getRawHeaders(b"content-type")
        if command == b"POST" and ctypes:
            try:
                kind, boundary = media_type(ctypes[0])
            except ValueError:
                # Twisted would raise reading it too (e.g. a vertical tab) and drop the connection.
                kind = boundary = None
                self._hidden_ctype = ctypes
                self.requestHeaders.removeHeader(b"content-type")
                self.bad_body = "the Content-Type header cannot be read"
            if kind == "multipart/form-data":
                # Twisted would answer a body it cannot parse with a bare 400 and
                # hang up; parse it here so the API can say what is wrong, in JSON,
                # and keep the header from Twisted until the resource runs.
                self._hidden_ctype = ctypes
                self.requestHeaders.removeHeader(b"content-type")
                # Read from the start, and leave the position at the end, where Twisted expects it.
                self.content.seek(0)
                try:
                    self._form = parse_multipart(self.content.read(), boundary)
                except BadMultipart as e:
                    self.bad_body = f"the multipart/form-data body cannot be parsed ({e}); check the boundary"
        super().requestReceived(command, path, version)

    def process(self):
        if self._hidden_ctype is not None:
            self.requestHeaders.setRawHeaders(b"content-type", self._hidden_ctype)
            self._hidden_ctype = None
        for key, values in (self._form or {}).items():
            self.args.setdefault(key, []).extend(values)
        super().process()
