"""The request class of the API's Site: a capped body, checks on the headers before the body, and multipart
forms parsed without Twisted's internals (off the reactor, into temporary files, when they are big).

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

The body is fed to the decoder in pieces (`safe_chunks`), read from the request's temporary file, so a big
body is never all in memory. The decoder has a history of adding a stray byte to a value when a piece ends
inside a delimiter (pallets/werkzeug#3065, #3118, #3119; #3285 is still open against 3.1.8: a piece ending
in ``\\r\\n--boundary-`` leaves a ``\\r`` at the end of the value). So a piece never ends near a delimiter:
it ends at least a delimiter's length before the end of what has been read, and never between two bytes
before a ``--boundary`` and the end of the header block after it (or 64 KiB past it). Inside a part's data
and with no delimiter in sight the decoder holds back any tail that could begin one, which is correct.

With `spool_at` set, a part longer than that many bytes goes to an unnamed temporary file (in `spool_dir`)
and is offered in `request.files` instead of `request.args`; the body itself is kept in `spool_dir` too.
A body longer than `thread_at` is parsed in the reactor's thread pool, and the request reaches its
resource once that is done.

Headers first (`headers_received`, called by `web.channel.HeaderDeadlineChannel` once a request's headers
are complete and before any byte of its body is read): a request with a body is walked through the site's
resources as Twisted would walk it. If a wrapper stops it (a cross-site refusal, a 401 of `web.auth`),
that answer is rendered at once, with `Connection: close`; the body is then read and dropped, never
stored, and the connection closes once it is in (or at once, for `Expect: 100-continue`, which gets no
`100 Continue`). Wrappers must therefore refuse from the headers alone, which they do. A request that
passes and is an upload (a POST to an `upload_paths` path, or any body over `UPLOAD_MIN` or of unknown
length) takes one of `uploads`' slots until it is answered; without a free slot it gets `503` with
`Retry-After` at once.

A multipart body is bad (`bad_body`, answered with a JSON 400) when its boundary never opens a part (no
or a wrong boundary, an empty body, only the closing delimiter) or when a part is not closed by a
delimiter (a truncated value must not pass as a whole one). A part whose headers cannot be read (no
Content-Disposition, not UTF-8) has no usable name; Twisted ignored nameless parts, and so does this
class, but the decoder cannot find its way past it, so that part and any after it are ignored. Unlike
Twisted, a part's Content-Transfer-Encoding is not decoded (RFC 7578 deprecates it; no client sends it).
"""

import functools
import io
import os
import re
import tempfile
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote_to_bytes

from twisted.internet import threads
from twisted.internet.interfaces import IReactorThreads
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import server
from twisted.web.util import DeferredResource
from werkzeug.sansio.multipart import (Data, Epilogue, Field, File, MultipartDecoder, NeedData, Preamble,
                                       State)

from scrapy_do.web.channel import json_response

log = Logger(namespace="scrapy_do.web.request")

#: Bytes read from the body at a time; the decoder gets pieces of up to twice this.
BLOCK = 256 << 10
#: How far past a delimiter a piece never ends when no blank line closes its part's headers sooner.
HEADER_MAX = 64 << 10
#: Bodies longer than this (or of unknown length) count as uploads whatever their path.
UPLOAD_MIN = 1 << 20
#: Seconds a client refused for want of an upload slot is asked to wait.
RETRY_AFTER = 5
#: Twisted keeps smaller bodies in memory, larger ones in a temporary file.
IN_MEMORY_BODY = 100000
_BLANK_LINE = re.compile(rb"\r\n\r\n|\n\n|\r\r")


class BadMultipart(ValueError):
    """The body is not a multipart/form-data body for the boundary its Content-Type declares."""


@functools.lru_cache(maxsize=64)
def media_type(ctype):
    """(media type, boundary) of a raw Content-Type header, read the way Twisted reads it (the stdlib `email`).

    Kept per header value: `email` takes ~0.1 ms a time, and a crawl's reports send the same one each time."""
    msg = EmailMessage()
    msg["content-type"] = ctype.decode("latin-1")
    return msg.get_content_type(), msg.get_boundary()


def _safe_cut(buf, delim, cut):
    """The largest position <= `cut` at which `buf` may be split for the decoder (see the module docstring).

    A split may not fall strictly inside (q - 2, end) for an occurrence q of `delim`, where end is 2 past the
    first blank line after it, or HEADER_MAX past it. These ends grow with q, so only the last occurrence with
    q - 2 < cut has to be checked, and then the one before the position q - 2 it moves the cut to.
    """
    while cut > 0:
        q = buf.rfind(delim, 0, min(len(buf), cut + 1 + len(delim)))
        if q == -1:
            return cut
        after = q + len(delim)
        blank = _BLANK_LINE.search(buf, after, after + HEADER_MAX)
        end = blank.end() + 2 if blank else after + HEADER_MAX
        if end <= cut:
            return cut
        cut = q - 2
    return 0


def safe_chunks(read, boundary, block=BLOCK):
    """Yield what `read(n)` returns, in pieces that never end at a place the decoder may get wrong.

    `boundary` is the boundary as bytes. Nothing is yielded twice or left out; the last piece is whatever is
    left at the end.
    """
    delim = b"--" + boundary
    buf = bytearray()
    eof = False
    while True:
        while not eof and len(buf) < 2 * block:
            data = read(block)
            if data:
                buf += data
            else:
                eof = True
        if eof:
            if buf:
                yield bytes(buf)
            return
        cut = _safe_cut(buf, delim, len(buf) - len(delim) - 4)
        if cut <= 0:  # a delimiter with a long header block: read further before cutting
            data = read(block)
            if data:
                buf += data
            else:
                eof = True
            continue
        yield bytes(buf[:cut])
        del buf[:cut]


class _Value:
    """One part's data: in memory, or in a temporary file once it grows past `spool_at` bytes."""

    def __init__(self, spool_at, spool):
        self.spool_at = spool_at
        self.spool = spool
        self.chunks = []
        self.size = 0
        self.file = None

    def add(self, data):
        self.size += len(data)
        if self.file is not None:
            self.file.write(data)
            return
        self.chunks.append(data)
        if self.spool_at is not None and self.size > self.spool_at:
            self.file = self.spool()
            self.file.writelines(self.chunks)
            self.chunks = None

    def done(self):
        if self.file is None:
            return b"".join(self.chunks)
        self.file.flush()
        self.file.seek(0)
        return self.file


def close_values(form):
    """Close the temporary files among the values of `form` ({name: [bytes or file]})."""
    for values in form.values():
        for value in values:
            if not isinstance(value, bytes):
                value.close()


def parse_multipart_stream(read, boundary, spool_at=None, spool=None, block=BLOCK):
    """{name bytes: [value, ...]} of the multipart/form-data body `read(n)` returns, in body order.

    A value is bytes, or with `spool_at` set, for a part longer than `spool_at` bytes, a file object from
    `spool()` holding it (at offset 0; the caller closes it). Raises BadMultipart when the body is bad (see
    the module docstring); OSError when a temporary file cannot be written. Nothing stays open on error.
    """
    if not boundary:
        raise BadMultipart("the Content-Type header has no boundary")
    try:
        raw = boundary.encode("latin-1")
    except UnicodeEncodeError:
        raise BadMultipart("the boundary is not ASCII") from None
    decoder = MultipartDecoder(raw)
    form = {}
    opened = False      # the boundary opened the body (a Preamble event)
    parts = 0           # parts whose headers were read
    in_data = False     # inside a part's data, before its closing delimiter
    name = value = None
    failed = ended = False
    pieces = safe_chunks(read, raw, block)
    try:
        while not ended:
            # Once the closing delimiter is read, the rest is epilogue: it is not read at all.
            piece = None if decoder.state is State.EPILOGUE else next(pieces, None)
            decoder.receive_data(piece)
            while True:
                event = decoder.next_event()  # raises ValueError after the end of a malformed body
                if isinstance(event, NeedData):
                    break
                if isinstance(event, Epilogue):
                    ended = True
                    break
                if isinstance(event, Preamble):
                    opened = True
                elif isinstance(event, (Field, File)):
                    parts += 1
                    in_data = True
                    # Twisted left out parts without a name (or with an empty one); so does this.
                    name = event.name.encode("utf-8") if event.name else None
                    value = _Value(spool_at, spool) if name is not None else None
                elif isinstance(event, Data):
                    if value is not None:
                        value.add(event.data)
                    if not event.more_data:
                        if value is not None:
                            form.setdefault(name, []).append(value.done())
                        in_data = False
                        name = value = None
    except ValueError:  # the decoder's one way of saying the body is malformed
        failed = True
    except BaseException:
        close_values(form)
        if value is not None and value.file is not None:
            value.file.close()
        raise
    if value is not None and value.file is not None:
        value.file.close()
    problem = None
    if not opened:
        problem = f"no part starts with the line '--{boundary}'"
    elif not failed and parts == 0:
        problem = "the body has no parts"
    elif failed and in_data:
        problem = f"the body ends inside a part, before a line '--{boundary}' closes it"
    if problem:
        close_values(form)
        raise BadMultipart(problem)
    return form


def parse_multipart(body, boundary):
    """{name bytes: [value bytes, ...]} of a whole multipart/form-data body held in memory, in body order.

    Raises BadMultipart when the body is bad (see the module docstring).
    """
    return parse_multipart_stream(io.BytesIO(body).read, boundary)


class UploadSlots:
    """At most `limit` uploads at once: `take()` returns a function that gives the slot back, or None."""

    def __init__(self, limit):
        self.limit = limit
        self.busy = 0

    def take(self):
        if self.busy >= self.limit:
            return None
        self.busy += 1
        given = []

        def release(_=None):
            if not given:
                given.append(True)
                self.busy -= 1
        return release


def route_of(target):
    """The path Klein routes `target` (a request-target) by: Twisted's unquoted segments, joined again."""
    path = target.split(b"?", 1)[0]
    route = b"/".join(unquote_to_bytes(segment) for segment in path[1:].split(b"/"))
    return route if route.startswith(b"/") else b"/" + route


class LimitedRequest(server.Request):
    """Drops request bodies over `max_body` as they arrive instead of buffering them.

    The request still reaches the resource (without a body), which answers 413. A multipart/form-data
    POST body is parsed here, into `args` as Twisted would fill them (after the query string's values)
    and, for parts over `spool_at` bytes, into `files`; if it cannot be parsed, `bad_body` says why and the
    resource is still called, so that it can answer in JSON. `upload_error` is set when a temporary file
    could not be written. The class attributes below configure a site's requests (see the module docstring).
    """

    max_body = 64 << 20
    #: Parts longer than this many bytes go to temporary files (`files`); None keeps every part in `args`.
    spool_at = None
    #: The directory of the body's and the parts' temporary files; None: the system's temporary directory.
    spool_dir = None
    #: Multipart bodies longer than this are parsed in the reactor's thread pool (if it has one).
    thread_at = 256 << 10
    #: The resource every request reaches unless a wrapper refuses it; None: no checks on the headers.
    protected = None
    #: The UploadSlots shared by the site's requests; None: no limit.
    uploads = None
    #: Paths whose POSTs are uploads whatever their size.
    upload_paths = frozenset()

    too_large = False
    bad_body = None
    upload_error = None
    answered_early = False
    files = {}
    _form = None
    _hidden_ctype = None
    _received = 0

    # -- the headers --------------------------------------------------------------------------------

    def headers_received(self, method, target, version, length):
        """The headers are complete and nothing of the body is read: the response to send now, or None.

        Called by HeaderDeadlineChannel before `gotLength`; `length` is the body's declared length (None:
        chunked). A request without a body is left to the usual processing.
        """
        if length == 0:
            return None
        try:
            answer = self._refusal(method, target, version)
        except Exception:
            log.failure("checking the headers of {uri} failed; the request is served as usual", uri=target)
            answer = None
        if answer is None and self.uploads is not None and self._is_upload(method, target, length):
            release = self.uploads.take()
            if release is None:
                answer = json_response(503, "Service Unavailable",
                                       f"the daemon is receiving {self.uploads.limit} uploads already "
                                       f"(max-uploads); try again in {RETRY_AFTER} s",
                                       (f"Retry-After: {RETRY_AFTER}",))
            else:
                self.notifyFinish().addBoth(release)
        if answer is not None:
            self.answered_early = True
        return answer

    def _is_upload(self, method, target, length):
        if length is None or length > UPLOAD_MIN:
            return True
        return method == b"POST" and route_of(target) in self.upload_paths

    def _refusal(self, method, target, version):
        """The whole response of a wrapper that stops this request, rendered now; None if nothing stops it."""
        if self.protected is None or self.channel is None:
            return None
        # What Twisted sets in requestReceived and process, for a walk through the resources; both set it
        # all again later.
        self.method, self.uri, self.clientproto = method, target, version
        self.path, _, query = target.partition(b"?")
        self.args = parse_qs(query, keep_blank_values=True) if query else {}
        self.prepath = []
        self.postpath = [unquote_to_bytes(s) for s in self.path[1:].split(b"/")]
        resource = self.channel.site.getResourceFor(self)
        if isinstance(resource, DeferredResource):
            return None  # decided later (an asynchronous credentials check): the usual processing
        if resource is self.protected:
            return None
        body = resource.render(self)
        if not isinstance(body, bytes):
            return None
        head = [b"HTTP/1.1 %d %s" % (self.code, self.code_message)]
        for name, values in self.responseHeaders.getAllRawHeaders():
            if name.lower() not in (b"content-length", b"connection"):
                head += [name + b": " + value for value in values]
        if method == b"HEAD":
            body = b""
        head += [b"Content-Length: %d" % len(body), b"Connection: close"]
        return b"\r\n".join(head) + b"\r\n\r\n" + body

    # -- the body -----------------------------------------------------------------------------------

    def _temporary_file(self):
        if self.spool_dir is not None:
            try:
                return tempfile.TemporaryFile(dir=self.spool_dir)
            except OSError:
                pass  # the directory is gone: the system's will do
        return tempfile.TemporaryFile()

    def gotLength(self, length):
        self.too_large = length is not None and length > self.max_body
        self._received = 0
        if self.answered_early or self.too_large or (length is not None and length < IN_MEMORY_BODY):
            self.content = io.BytesIO()
        else:
            self.content = self._temporary_file()

    def handleContentChunk(self, data):
        self._received += len(data)
        if self.answered_early:
            if self._received > self.max_body:  # answered already: no reason to take more than that
                self.loseConnection()
            return
        if self._received > self.max_body:
            if not self.too_large:
                self.too_large = True
                self.content.close()
                self.content = io.BytesIO()
            return
        if not self.too_large:
            super().handleContentChunk(data)

    def requestReceived(self, command, path, version):
        if self.answered_early:
            # The answer went out with the headers; the body was dropped as it came.
            self.loseConnection()
            return
        self.bad_body = None
        self.upload_error = None
        self._form = {}
        self.files = {}
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
                reactor = getattr(getattr(self.channel, "site", None), "reactor", None)
                if self.content.tell() > self.thread_at and IReactorThreads.providedBy(reactor) \
                        and not isinstance(self.content, io.BytesIO):
                    self._parse_in_thread(reactor, boundary, command, path, version)
                    return
                # Read from the start, and leave the position at the end, where Twisted expects it.
                size = self.content.tell()
                self.content.seek(0)
                result = self._parse(self.content.read, boundary)
                self.content.seek(size)
                self._parsed(result)
        super().requestReceived(command, path, version)

    def _parse(self, read, boundary):
        """The form of the body `read` returns, or the BadMultipart or OSError that stopped parsing it."""
        try:
            return parse_multipart_stream(read, boundary, self.spool_at, self._temporary_file)
        except (BadMultipart, OSError) as e:
            return e

    def _parsed(self, result):
        if self.spool_at is not None and not isinstance(self.content, io.BytesIO):
            # A site that spools parts reads the form, never the raw body: free its disk space now.
            self.content.close()
            self.content = io.BytesIO()
        if isinstance(result, BadMultipart):
            self.bad_body = f"the multipart/form-data body cannot be parsed ({result}); check the boundary"
        elif isinstance(result, OSError):
            log.error("cannot store the upload of {uri}: {error}", uri=self.uri, error=result)
            self.upload_error = result
        else:
            self._form = result

    def _parse_in_thread(self, reactor, boundary, command, path, version):
        """Parse the body in the thread pool from a descriptor of its own, then carry on on the reactor."""
        self.content.flush()  # what Twisted wrote may still be in the file object's buffer
        fd = os.dup(self.content.fileno())

        def parse():
            offset = 0

            def read(n):
                nonlocal offset
                data = os.pread(fd, n, offset)
                offset += len(data)
                return data
            try:
                return self._parse(read, boundary)
            finally:
                os.close(fd)

        def done(result):
            if isinstance(result, Failure):  # a bug: answer 500 rather than hang
                log.failure("parsing the body of {uri} failed", failure=result, uri=path)
                result = OSError(str(result.value))
            if self.channel is None:  # the client left meanwhile
                if isinstance(result, dict):
                    close_values(result)
                return
            self._parsed(result)
            super(LimitedRequest, self).requestReceived(command, path, version)

        threads.deferToThreadPool(reactor, reactor.getThreadPool(), parse).addBoth(done)

    def process(self):
        if self._hidden_ctype is not None:
            self.requestHeaders.setRawHeaders(b"content-type", self._hidden_ctype)
            self._hidden_ctype = None
        for key, values in (self._form or {}).items():
            for value in values:
                if isinstance(value, bytes):
                    self.args.setdefault(key, []).append(value)
                else:
                    self.files.setdefault(key, []).append(value)
        form, self._form = self._form, None
        if self.files:
            self.notifyFinish().addBoth(lambda _: close_values(form))
        super().process()
