"""HTTP authentication in front of everything the daemon serves.

Credentials come from `auth-db` (`username:password` lines, as in 0.5.0),
read on each login so edits apply without a restart. Digest is offered
always (the 0.5.0 client speaks it); Basic only over HTTPS, where the
password is not sent in the clear. Failures are 401 with the challenges and
a JSON body that tells nothing about the daemon.

A request with a body is checked as soon as its headers are in (see web.request): without valid
credentials its 401 goes out before the body is read, and the body is dropped. The challenge is the same
as for any 401 (one factory, so one Digest key for nonces and opaques), and valid credentials are checked
once more when the request is processed.
"""

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

REALM = b"Scrapy Do"


def check_auth_db(path):
    """Fail start-up early if the file is unusable."""
    try:
        with open(path, "rb") as f:
            users = [line for line in f.read().splitlines() if line.strip() and not line.startswith(b"#")]
    except OSError as e:
        raise StartupError(f"[web] auth-db: cannot read {path}: {e.strerror}") from None
    if not users or not all(b":" in u for u in users):
        raise StartupError(f"[web] auth-db: {path} must hold 'username:password' lines")


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
class AuthWrapper:
    """Lets a request reach `resource` only with valid credentials."""

    isLeaf = False

    #: Paths that carry their own credentials (a crawl's report has its job's token) instead of a user's.
    OPEN = (b"/report/",)

    def __init__(self, resource, auth_db, basic=False, open_metrics=False):
        self._resource = resource
        #: `[web] metrics-auth = off`: Prometheus scrapes /metrics without credentials.
        self._open_paths = (b"/metrics",) if open_metrics else ()
        self._portal = Portal(_Realm(resource), [FilePasswordDB(str(auth_db), cache=False)])
        self.factories = [DigestCredentialFactory(b"md5", REALM)]
        if basic:
            self.factories.append(BasicCredentialFactory(REALM))

    def _authorized(self, request):
        if request.path.startswith(self.OPEN) or request.path in self._open_paths:
            return self._resource
        header = request.getHeader(b"authorization")
        if not header:
            return Unauthorized(self.factories)
        scheme, _, response = header.partition(b" ")
        for factory in self.factories:
            if factory.scheme.lower() == scheme.strip().lower():
                try:
                    credentials = factory.decode(response.strip(), request)
                except (cred_error.LoginFailed, ValueError):
                    return Unauthorized(self.factories)
                d = self._portal.login(credentials, None, IResource)
                d.addCallbacks(lambda result: result[1], lambda _: Unauthorized(self.factories))
                # The password file is read at once, so the answer is known now: the protected resource or
                # the 401. Being plain resources, either can be told apart when the request's headers are
                # checked before its body (web.request). An asynchronous checker would leave it for later.
                known = []
                d.addBoth(lambda result: known.append(result) or result)
                return known[0] if known and not isinstance(known[0], Failure) else DeferredResource(d)
        return Unauthorized(self.factories)

    def render(self, request):
        return self._authorized(request).render(request)

    def getChildWithDefault(self, path, request):
        # The protected resource sees the whole path, as if it were the root.
        request.postpath.insert(0, request.prepath.pop())
        return self._authorized(request)

    def putChild(self, path, child):
        raise NotImplementedError()
