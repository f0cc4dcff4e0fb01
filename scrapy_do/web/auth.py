"""HTTP authentication in front of everything the daemon serves.

Credentials come from `auth-db` (`username:password` lines, as in 0.5.0),
read on each login so edits apply without a restart. Digest is offered
always (the 0.5.0 client speaks it); Basic only over HTTPS, where the
password is not sent in the clear: the daemon's own HTTPS, or a request from
a `[web] trusted-proxies` address that says `X-Forwarded-Proto: https` (a
reverse proxy terminating TLS). With `[web] tokens-db`, `Authorization:
Bearer TOKEN` is taken too (see web.tokens); a read-only token on anything
but GET or HEAD is 403. Failures are 401 with the challenges and a JSON body
that tells nothing about the daemon or which users and tokens exist.

A request with a body is checked as soon as its headers are in (see web.request): without valid
credentials its 401 (or a read-only token's 403) goes out before the body is read, and the body is dropped.
The challenge is the same as for any 401 (one Digest factory for all requests, so one key for nonces and
opaques, although whether Basic is offered varies per request), and valid credentials are checked once more
when the request is processed.
"""

import ipaddress
import json

from twisted.cred import error as cred_error
from twisted.cred.checkers import FilePasswordDB
from twisted.cred.portal import IRealm, Portal
from twisted.python.failure import Failure
from twisted.web.guard import BasicCredentialFactory, DigestCredentialFactory
from twisted.web.resource import IResource
from twisted.web.util import DeferredResource
from zope.interface import implementer

from scrapy_do.errors import StartupError
from scrapy_do.web.tokens import READ_METHODS, TokenFileError, TokenStore

REALM = b"Scrapy Do"


def check_auth_db(path, tokens_db=None):
    """Fail start-up early if a credentials file is unusable; the TokenStore of `tokens_db` (None without)."""
    try:
        with open(path, "rb") as f:
            users = [line for line in f.read().splitlines() if line.strip() and not line.startswith(b"#")]
    except OSError as e:
        raise StartupError(f"[web] auth-db: cannot read {path}: {e.strerror}") from None
    if not users or not all(b":" in u for u in users):
        raise StartupError(f"[web] auth-db: {path} must hold 'username:password' lines")
    if tokens_db is None:
        return None
    try:
        return TokenStore.load(tokens_db)
    except TokenFileError as e:
        raise StartupError(f"[web] tokens-db: {e} (scrapy-do-token --db {tokens_db} add NAME writes it)") from None


@implementer(IRealm)
class _Realm:
    def __init__(self, resource):
        self.resource = resource

    def requestAvatar(self, avatar_id, mind, *interfaces):
        if IResource not in interfaces:
            raise NotImplementedError()
        return IResource, self.resource, lambda: None


@implementer(IResource)
class Unauthorized:
    isLeaf = True

    def __init__(self, factories):
        self.factories = factories

    def render(self, request):
        request.setResponseCode(401)
        for factory in self.factories:
            challenge = factory.getChallenge(request)
            params = ", ".join(f'{k}="{v.decode() if isinstance(v, bytes) else v}"' for k, v in challenge.items())
            request.responseHeaders.addRawHeader(b"www-authenticate", factory.scheme.capitalize() + b" "
                                                 + params.encode())
        request.setHeader(b"content-type", b"application/json")
        if request.method == b"HEAD":
            return b""
        return json.dumps({"status": "error", "msg": "authentication required"}).encode()

    def getChildWithDefault(self, path, request):
        return self


@implementer(IResource)
class ReadOnly:
    """The 403 of a read-only token on a method that may change something."""

    isLeaf = True

    def render(self, request):
        request.setResponseCode(403)
        request.setHeader(b"content-type", b"application/json")
        method = request.method.decode("latin-1")[:20]
        msg = (f"this token is read-only: it may GET and HEAD, not {method}; use a full token "
               "(scrapy-do-token add NAME, without --read-only)")
        return b"" if request.method == b"HEAD" else json.dumps({"status": "error", "msg": msg}).encode()

    def getChildWithDefault(self, path, request):
        return self


class BearerChallenge:
    """The `WWW-Authenticate: Bearer` challenge, shaped like twisted.web.guard's factories for Unauthorized."""

    scheme = b"bearer"

    def getChallenge(self, request):
        return {"realm": REALM}


def _https_via_proxy(request, trusted):
    """Whether a trusted reverse proxy forwarded `request` from HTTPS (the value it appended last counts)."""
    if not trusted:
        return False
    values = request.requestHeaders.getRawHeaders(b"x-forwarded-proto")
    if not values or b",".join(values).split(b",")[-1].strip().lower() != b"https":
        return False
    try:
        peer = ipaddress.ip_address(getattr(request.getClientAddress(), "host", ""))
    except ValueError:  # a UNIX socket, or no address at all
        return False
    if peer.version == 6 and peer.ipv4_mapped:
        peer = peer.ipv4_mapped
    return any(peer in network for network in trusted)


@implementer(IResource)
class AuthWrapper:
    """Lets a request reach `resource` only with valid credentials."""

    isLeaf = False

    #: Paths that carry their own credentials (a crawl's report has its job's token) instead of a user's.
    OPEN = (b"/report/",)

    def __init__(self, resource, auth_db, basic=False, open_metrics=False, tokens=None, trusted_proxies=()):
        """`basic`: the daemon serves HTTPS; `tokens`: a web.tokens.TokenStore or None;
        `trusted_proxies`: ipaddress networks whose `X-Forwarded-Proto: https` is believed."""
        self._resource = resource
        #: `[web] metrics-auth = off`: Prometheus scrapes /metrics without credentials.
        self._open_paths = (b"/metrics",) if open_metrics else ()
        self._portal = Portal(_Realm(resource), [FilePasswordDB(str(auth_db), cache=False)])
        self._tokens = tokens
        self._basic = basic
        self._trusted = tuple(trusted_proxies)
        # One Digest factory for every request: its key signs the nonces and opaques it hands out.
        self._digest = DigestCredentialFactory(b"md5", REALM)
        self._basic_factory = BasicCredentialFactory(REALM)

    def _factories(self, request):
        """The schemes offered and accepted for `request`: Basic only where the password travelled over TLS."""
        factories = [self._digest]
        if self._basic or _https_via_proxy(request, self._trusted):
            factories.append(self._basic_factory)
        if self._tokens is not None:
            factories.append(BearerChallenge())
        return factories

    def _authorized(self, request):
        if request.path.startswith(self.OPEN) or request.path in self._open_paths:
            return self._resource
        factories = self._factories(request)
        header = request.getHeader(b"authorization")
        if not header:
            return Unauthorized(factories)
        scheme, _, response = header.partition(b" ")
        scheme = scheme.strip().lower()
        if scheme == b"bearer" and self._tokens is not None:
            token = self._tokens.lookup(response.strip())
            if token is None:
                return Unauthorized(factories)
            if token.role != "full" and request.method not in READ_METHODS:
                return ReadOnly()
            return self._resource
        for factory in factories:
            if factory.scheme.lower() == scheme and not isinstance(factory, BearerChallenge):
                try:
                    credentials = factory.decode(response.strip(), request)
                except (cred_error.LoginFailed, ValueError):
                    return Unauthorized(factories)
                d = self._portal.login(credentials, None, IResource)
                d.addCallbacks(lambda result: result[1], lambda _: Unauthorized(factories))
                # The password file is read at once, so the answer is known now: the protected resource or
                # the 401. Being plain resources, either can be told apart when the request's headers are
                # checked before its body (web.request). An asynchronous checker would leave it for later.
                known = []
                d.addBoth(lambda result: known.append(result) or result)
                return known[0] if known and not isinstance(known[0], Failure) else DeferredResource(d)
        return Unauthorized(factories)

    def render(self, request):
        return self._authorized(request).render(request)

    def getChildWithDefault(self, path, request):
        # The protected resource sees the whole path, as if it were the root.
        request.postpath.insert(0, request.prepath.pop())
        return self._authorized(request)

    def putChild(self, path, child):
        raise NotImplementedError()
