"""Refuses cross-site and DNS-rebinding requests before anything else (authentication included) sees them.

Two checks, on every path the daemon serves (the API, /events, the dashboard and its files):

* **Host.** The host part of the ``Host`` header must be one the daemon serves (`ServedHosts`): its
  interface addresses, ``localhost``, ``127.0.0.1``, ``::1``, the names in ``[web] allowed-hosts`` and,
  when it listens beyond loopback, the machine's host name and FQDN (and, on a wildcard interface,
  every address of the machine). A page that reaches the daemon through DNS rebinding sends its own
  name and gets ``421 Misdirected Request``; an unreadable header gets ``400``. A request without a
  ``Host`` header (HTTP/1.0, raw scripts) passes: a browser always sends one.

* **Origin.** A state-changing request (any method but GET, HEAD and OPTIONS) that carries an
  ``Origin`` header, or else a ``Referer``, must come from the daemon's own origin: ``http`` or
  ``https`` (only ``https`` on a TLS connection), a host the daemon serves, and either the port the
  request was sent to (the port of its ``Host`` header) or the port it arrived on. Hosts from
  ``allowed-hosts`` that are not loopback count with any port: they are the operator's own sites,
  e.g. a reverse proxy's, whose ``Origin`` is ``https://name`` while the daemon listens on
  ``127.0.0.1:7654``. Anything else, ``Origin: null`` included, gets ``403``. A request with neither
  header (curl, scripts, both command-line clients) passes. Reads stay open to any origin: without
  CORS headers a foreign page cannot read the answers.

Every response also gets ``X-Content-Type-Options: nosniff`` and ``X-Frame-Options: DENY`` (no framing
of the dashboard) unless the resource sets its own.
"""

import functools
import ipaddress
import re
import socket
import time
from urllib.parse import urlsplit

import psutil
from twisted.web.resource import IResource
from zope.interface import implementer

from scrapy_do.web.api import error_body

#: Methods that change nothing; all others are checked for a foreign Origin.
SAFE_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS"})
ALWAYS_SERVED = ("localhost", "127.0.0.1", "::1")
WILDCARDS = frozenset({"0.0.0.0", "::"})
SECURITY_HEADERS = ((b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"))
DEFAULT_PORTS = {"http": 80, "https": 443}
#: Longest header value quoted back in an error message.
SHOWN = 200

_BRACKETED = re.compile(r"\[(?P<host>[^\[\]]+)\](?::(?P<port>\d*))?")
# RFC 3986 reg-name (unreserved, pct-encoded, sub-delims) or an IPv4 address, then an optional port.
_PLAIN = re.compile(r"(?P<host>[A-Za-z0-9._~%!$&'()*+,;=-]+)(?::(?P<port>\d*))?")


def canonical_host(host):
    """The form hosts are compared in: lower case, no trailing dot, IP addresses in their short form.

    IPv6 may come with or without brackets and with a zone (``fe80::1%eth0``), which is dropped.
    """
    host = host.strip().lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host.endswith("."):
        host = host[:-1]
    try:
        return str(ipaddress.ip_address(host.split("%", 1)[0] if ":" in host else host))
    except ValueError:
        return host


@functools.lru_cache(maxsize=256)
def parse_authority(text):
    """(canonical host, port or None) of a ``host[:port]`` as in a Host header; ValueError if unreadable.

    Kept per value (a refusal is not): every request asks, and ipaddress takes ~50 µs a time."""
    m = _BRACKETED.fullmatch(text) or _PLAIN.fullmatch(text)
    if not m:
        raise ValueError("not host[:port]")
    raw, port = m.group("host"), m.group("port")
    if text.startswith("["):
        try:
            ipaddress.IPv6Address(raw.split("%", 1)[0])
        except ValueError:
            raise ValueError("not an IPv6 address in brackets") from None
    host = canonical_host(raw)
    if not host:
        raise ValueError("no host")
    if port:
        if int(port) > 65535:
            raise ValueError("port out of range")
        return host, int(port)
    return host, None


def _loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost" or host.endswith(".localhost")


def _machine_names():
    names = {socket.gethostname()}
    try:
        names.add(socket.getfqdn())
    except OSError:
        pass
    return names


def _machine_addresses():
    return [a.address for addrs in psutil.net_if_addrs().values() for a in addrs
            if a.family in (socket.AF_INET, socket.AF_INET6)]


class ServedHosts:
    """The host names and addresses the daemon answers to, from its interfaces and `allowed_hosts`.

    On a wildcard interface (0.0.0.0 or ::) the machine's addresses are read again when a host is not
    found, at most once per `refresh` seconds, so an address that appears later (DHCP, a VPN) is served.
    """

    def __init__(self, interfaces, allowed_hosts=(), *, names=_machine_names, addresses=_machine_addresses,
                 clock=time.monotonic, refresh=1.0):
        hosts = {canonical_host(host) for host, _ in interfaces}
        self.wildcard = bool(hosts & WILDCARDS)
        self.allowed = frozenset(filter(None, (self._entry(h) for h in allowed_hosts)))
        fixed = (hosts - WILDCARDS) | set(ALWAYS_SERVED) | self.allowed
        if any(not _loopback(host) for host in hosts):
            fixed |= {canonical_host(n) for n in names() if n}
        self.fixed = frozenset(fixed)
        self._addresses = addresses
        self._clock = clock
        self._refresh = refresh
        self._dynamic = frozenset()
        self._read_at = None

    @staticmethod
    def _entry(text):
        """An allowed-hosts entry: a name or address, tolerating a port or brackets (which are dropped)."""
        try:
            return parse_authority(text)[0]
        except ValueError:
            return canonical_host(text)

    def __contains__(self, host):
        if host in self.fixed or host in self._dynamic:
            return True
        if not self.wildcard:
            return False
        now = self._clock()
        if self._read_at is not None and now - self._read_at < self._refresh:
            return False
        self._read_at = now
        self._dynamic = frozenset(canonical_host(a) for a in self._addresses())
        return host in self._dynamic

    def any_port(self, host):
        """Whether an Origin on `host` counts as the daemon's own whatever its port (an allowed-hosts site)."""
        return host in self.allowed and not _loopback(host)


@implementer(IResource)
class Refusal:
    """A JSON error for any path (the request never reaches the daemon's resources)."""

    isLeaf = True

    def __init__(self, code, msg):
        self.code = code
        self.msg = msg

    def render(self, request):
        body = error_body(request, self.code, self.msg)
        if self.code == 421:  # Twisted knows no reason phrase for it
            request.setResponseCode(421, b"Misdirected Request")
        return b"" if request.method == b"HEAD" else body

    def getChildWithDefault(self, path, request):
        return self

    def putChild(self, path, child):
        raise NotImplementedError()


def _shown(raw):
    text = raw.decode("latin-1")
    return text if len(text) <= SHOWN else text[:SHOWN] + "..."


@implementer(IResource)
class CrossSiteGuard:
    """Lets a request reach `resource` only if it is meant for this daemon and, if it changes state,
    comes from one of the daemon's own pages or from a client that is not a browser page (no Origin)."""

    isLeaf = False

    def __init__(self, resource, served):
        self._resource = resource
        self.served = served

    # -- the checks -------------------------------------------------------

    def _host(self, request):
        """(host, port) of the Host header, None without one, or a Refusal."""
        values = request.requestHeaders.getRawHeaders(b"host") or []
        if len(values) > 1:
            return Refusal(400, "the request has several Host headers; send exactly one")
        if not values or not values[0].strip():
            return None
        raw = values[0].strip()
        try:
            host, port = parse_authority(raw.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return Refusal(400, f"Host {_shown(raw)!r} cannot be read; send host or host:port "
                                "(IPv6 in brackets, e.g. [::1]:7654)")
        if host not in self.served:
            return Refusal(421, f"Host {host!r} is not one this daemon serves; add it to [web] allowed-hosts "
                                "if it is yours")
        return host, port

    def _origin(self, request, host_header):
        """None if the request may change state, else a Refusal naming the header that says it is foreign."""
        for name in (b"origin", b"referer"):
            values = request.requestHeaders.getRawHeaders(name)
            if values:
                break
        else:
            return None
        for raw in values:
            problem = self._foreign(raw, name == b"origin", request, host_header)
            if problem:
                why, hint = problem
                return Refusal(403, f"{name.decode().capitalize()} {_shown(raw)!r} {why}; a "
                                    f"{request.method.decode('latin-1')} is accepted only from the daemon's own "
                                    f"pages or from a client that sends neither Origin nor Referer{hint}")
        return None

    def _foreign(self, raw, is_origin, request, host_header):
        """None if `raw` (an Origin or Referer value) is one of the daemon's own origins, else (why not, hint)."""
        try:
            text = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            return "cannot be read (it is not ASCII)", ""
        if is_origin and text == "null":
            return "is an opaque origin (a sandboxed page, a local file or a redirect), not this daemon's own", ""
        try:
            parts = urlsplit(text)
            scheme = parts.scheme.lower()
            if is_origin and (parts.path not in ("", "/") or parts.query or parts.fragment):
                raise ValueError("an origin has no path")
            host, port = parse_authority(parts.netloc.rpartition("@")[2])
        except ValueError:
            return "cannot be read (expected http://host[:port] or https://host[:port])", ""
        foreign = "is not this daemon's own origin"
        if scheme not in DEFAULT_PORTS:
            return foreign + " (not http or https)", ""
        if host not in self.served:
            return foreign, f"; if the site {host!r} is yours, add it to [web] allowed-hosts"
        if request.isSecure() and scheme != "https":
            return foreign + " (this daemon serves https)", ""
        if self.served.any_port(host):
            return None
        ports = {getattr(request.getHost(), "port", None)}
        if host_header is not None:
            ports.add(DEFAULT_PORTS[scheme] if host_header[1] is None else host_header[1])
        if (DEFAULT_PORTS[scheme] if port is None else port) not in ports:
            return foreign + " (another port is another server)", ""
        return None

    def _check(self, request):
        """None if the request may reach the wrapped resource, else the Refusal to render instead."""
        for name, value in SECURITY_HEADERS:
            if not request.responseHeaders.hasHeader(name):
                request.setHeader(name, value)
        host = self._host(request)
        if isinstance(host, Refusal):
            return host
        if request.method in SAFE_METHODS:
            return None
        return self._origin(request, host)

    # -- IResource --------------------------------------------------------

    def render(self, request):
        refusal = self._check(request)
        return (refusal or self._resource).render(request)

    def getChildWithDefault(self, path, request):
        refusal = self._check(request)
        if refusal:
            return refusal
        # The guarded resource sees the whole path, as if it were the root (as AuthWrapper does).
        request.postpath.insert(0, request.prepath.pop())
        return self._resource

    def putChild(self, path, child):
        raise NotImplementedError()
