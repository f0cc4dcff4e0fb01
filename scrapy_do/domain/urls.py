"""Which receiver URLs the daemon can POST to: checked where they come in (a hook, a job's notify).

A URL that passes here is one the HTTP client (treq, over hyperlink) takes, so a delivery never fails
before it leaves for a reason only the URL's text could have told.
"""

import re

import hyperlink

MAX_URL = 2000
_HOST = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}"
                   r"[A-Za-z0-9])?)*\.?$")


def url_problem(text):
    """Why `text` is not a receiver URL (http:// or https://, a host name or IPv4 address, an optional port),
    or None when it is one."""
    if len(text) > MAX_URL:
        return f"is longer than {MAX_URL} characters"
    if any(ord(c) < 33 or ord(c) == 127 for c in text):
        return "holds spaces or control characters"
    if not re.match(r"^https?://", text):
        return "is not an http:// or https:// URL (in lower case)"
    try:
        url = hyperlink.EncodedURL.from_text(text)
        url.to_uri().to_text()
    except Exception:
        if text.startswith(("http://[", "https://[")):
            return "has an IPv6 address in brackets, which the daemon's HTTP client cannot send to; use a host name"
        return "is not a URL the daemon can send to (check the host and the port)"
    if url.userinfo:
        return ("holds credentials (user:password@), which are not sent; put a token in the path or query, and "
                "check the signature")
    if not _HOST.match(url.host or ""):
        return "has no valid host name or IPv4 address"
    if url.port is None or not 0 < url.port < 65536:
        return "has a port out of range 1-65535"
    return None
