"""Webhook deliveries as plain data: who gets what, the signed body, back-off, and which to send next.

Pure: no clock, no I/O. Times are epoch seconds (what an IReactorTime clock
says); the engine (engine.webhooks) stores, sends and re-arms.
"""

import hashlib
import hmac
import json
import uuid
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from scrapy_do.domain import zones
from scrapy_do.domain.models import JobStatus

#: The first retry comes this long after a failed attempt; each next one twice as long, at most CAP.
FIRST_RETRY = 10.0
CAP = 3600.0
#: What a receiver's error text may take in a delivery's record.
MAX_ERROR = 300
SIGNATURE_HEADER = "X-Scrapy-Do-Signature"

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class Delivery:
    id: str
    key: str         # what it tells whom: one delivery per (occurrence, URL), whatever events repeat
    url: str
    event: str
    job: str | None  # the job it is about, if any (shown; runs' deliveries are found by it)
    body: bytes
    created: float
    due: float
    attempts: int = 0
    state: str = PENDING
    last_error: str | None = None
    ended: float | None = None


def run_label(hook_events, status):
    """The event a hook hears of when a run ends with `status`, or None: job-ended if it asked for every end,
    job-failed if it asked only for failures and this is one."""
    if "job-ended" in hook_events:
        return "job-ended"
    if "job-failed" in hook_events and status is JobStatus.FAILED:
        return "job-failed"
    return None


def targets(hooks, occurrence, run=None):
    """(url, event) pairs for `occurrence` (job-ended, schedule-skipped, project-pushed): the configured hooks
    that want it, and for a run's end its own notify URL. One pair per URL."""
    out = {}
    for hook in hooks:
        if occurrence == "job-ended":
            label = run_label(hook.events, run.status)
        else:
            label = occurrence if occurrence in hook.events else None
        if label is not None:
            out.setdefault(hook.url, label)
    if run is not None and occurrence == "job-ended" and run.options.notify:
        out.setdefault(run.options.notify, "job-ended")
    return list(out.items())


def body_of(delivery_id, event, moment, **subject):
    """The exact bytes POSTed (and signed): the delivery id and the event's time travel inside the signed body,
    so a receiver can trust them and drop a delivery it already has."""
    return json.dumps({"delivery": delivery_id, "event": event, "timestamp": zones.instant(moment).isoformat(),
                       **subject}, ensure_ascii=False, separators=(",", ":"), sort_keys=False).encode("utf-8")


def new_delivery(key, url, event, moment, about=None, **subject):
    delivery_id = str(uuid.uuid4())
    return Delivery(id=delivery_id, key=f"{key} {url}", url=url, event=event, job=about,
                    body=body_of(delivery_id, event, moment, **subject), created=moment, due=moment)


def signature(secret, body):
    """`sha256=` and the hex HMAC-SHA256 of the body under the secret (GitHub's form), or None unsigned."""
    if not secret:
        return None
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def retry_delay(attempts, first=FIRST_RETRY):
    """Seconds before the next attempt after `attempts` failed ones: 10, 20, 40 ... (from `first`), at most an
    hour."""
    return min(first * 2 ** min(max(attempts - 1, 0), 40), max(CAP, first))


def after_failure(delivery, now, error, retry_for, first=FIRST_RETRY):
    """The delivery after a failed attempt at `now`: due again after its back-off, or FAILED once retrying
    would go past `retry_for` seconds after it was made."""
    attempts = delivery.attempts + 1
    error = (error or "failed")[:MAX_ERROR]
    due = now + retry_delay(attempts, first)
    if due > delivery.created + retry_for:
        return replace(delivery, attempts=attempts, state=FAILED, last_error=error, ended=now)
    return replace(delivery, attempts=attempts, last_error=error, due=due)


def after_success(delivery, now):
    return replace(delivery, attempts=delivery.attempts + 1, state=DELIVERED, ended=now)


def origin(url):
    """What the daemon shows and logs of a URL: its scheme and host (paths of chat hooks hold their secrets)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    shown = f"[{host}]" if ":" in host else host
    port = f":{parts.port}" if parts.port else ""
    rest = "/…" if (parts.path not in ("", "/") or parts.query) else "/"
    return f"{parts.scheme}://{shown}{port}{rest}"


def resting_until(url, failed_due, resting):
    """After a failed attempt to `url`, no other delivery goes there before the failed one is due again."""
    return {**resting, url: max(resting.get(url, 0), failed_due)}
